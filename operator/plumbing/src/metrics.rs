//! The one metrics registry of Tollgate's servers: [`prometheus_client`]'s
//! `Registry`, exposed in the Prometheus text format 0.0.4 (what Prometheus
//! and `curl | grep` read; no OpenMetrics `# EOF`).
//!
//! Each server builds one `Registry` at start, each part registers its
//! metrics in it (`register(&mut Registry)`), and `/metrics` answers
//! [`encode`] of it with [`CONTENT_TYPE`].
//!
//! What the encoder does with a registration, so names stay as documented:
//! a counter registered as `x` is exposed as `x_total` (its `# HELP` and
//! `# TYPE` lines too; registering a name ending in `_total` panics in
//! debug builds); the registry ends every help text with a period (register
//! it without one); histogram bounds are written as Go writes them
//! (`le="0.05"`, `le="60"`, `le="+Inf"`). Series of a labelled family come
//! in no fixed order.

pub use prometheus_client;
pub use prometheus_client::registry::Registry;

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The exposition text of `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // writing into a String cannot fail; an encoder error would leave the
    // text cut short, which a scrape reports as a parse error
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;

    /// The encoder's conventions the module docs promise.
    #[test]
    fn exposition_conventions() {
        let mut r = Registry::default();
        let c = Family::<[(&'static str, &'static str); 1], Counter>::default();
        r.register("demo_requests", "Requests, by result", c.clone());
        c.get_or_create(&[("result", "ok")]).inc();
        let g: Gauge = Gauge::default();
        r.register("demo_leader", "1 while leading", g.clone());
        g.set(1);
        let h = Histogram::new([0.05, 1.0, 60.0]);
        r.register("demo_seconds", "Time taken", h.clone());
        h.observe(0.02);
        h.observe(30.0);
        assert_eq!(
            encode(&r),
            "# HELP demo_requests_total Requests, by result.\n\
             # TYPE demo_requests_total counter\n\
             demo_requests_total{result=\"ok\"} 1\n\
             # HELP demo_leader 1 while leading.\n\
             # TYPE demo_leader gauge\n\
             demo_leader 1\n\
             # HELP demo_seconds Time taken.\n\
             # TYPE demo_seconds histogram\n\
             demo_seconds_bucket{le=\"0.05\"} 1\n\
             demo_seconds_bucket{le=\"1\"} 1\n\
             demo_seconds_bucket{le=\"60\"} 2\n\
             demo_seconds_bucket{le=\"+Inf\"} 2\n\
             demo_seconds_sum 30.02\n\
             demo_seconds_count 2\n"
        );
        assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    }
}
