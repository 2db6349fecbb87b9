//! `GET /metrics`: the Prometheus text of a scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::agent::Agent;
use crate::labels::MetricLabels;
use crate::metrics::{StatCounters, StatLabels, family, sample, stat_counters};

impl Agent {
    /// Prometheus text.
    pub async fn metrics_text(&self) -> String {
        let labels_of = Arc::clone(&self.inner.lock().await.labels);
        let MetricLabels {
            tenants,
            known_rules,
            class_limits,
            windows,
            seeds,
            revisions,
            class_names,
        } = &*labels_of;
        let mut out = String::new();
        let labels = StatLabels {
            tenants,
            rules: known_rules,
            classes: class_names,
        };
        let (up, stats) = match self.rpc.htable_entries("tg_stat").await {
            Ok(entries) => (1, stat_counters(&entries, seeds, &labels)),
            Err(_) => (0, StatCounters::default()),
        };
        let StatCounters {
            calls,
            by_country,
            rated,
            by_class,
        } = stats;
        let o = &mut out;
        family(
            o,
            "tollgate_sbc_up",
            "gauge",
            Some("Kamailio answers JSON-RPC."),
        );
        sample(o, "tollgate_sbc_up", &[], up);
        family(
            o,
            "tollgate_tenant_revision_info",
            "gauge",
            Some("The revision each applied tenant holds (1 per tenant)."),
        );
        for (t, r) in revisions {
            sample(
                o,
                "tollgate_tenant_revision_info",
                &[("tenant", t), ("revision", r)],
                1,
            );
        }
        family(
            o,
            "tollgate_calls_total",
            "counter",
            Some("INVITEs evaluated by the SBC since its start (tg_stat)."),
        );
        for ((t, oc, r), n) in &calls {
            sample(
                o,
                "tollgate_calls_total",
                &[("tenant", t), ("outcome", oc), ("rule", r)],
                n,
            );
        }
        family(
            o,
            "tollgate_concurrent_calls",
            "gauge",
            Some("Calls up per tenant (dialog profile tg_t)."),
        );
        for t in tenants {
            if let Ok(v) = self.rpc.call("dlg.profile_get_size", &["tg_t", t]).await {
                sample(
                    o,
                    "tollgate_concurrent_calls",
                    &[("tenant", t)],
                    v.as_u64().unwrap_or(0),
                );
            }
        }
        family(
            o,
            "tollgate_concurrent_calls_by_class",
            "gauge",
            Some("Calls up per tenant and limited class (dialog profile tg_c)."),
        );
        for (t, c) in class_limits {
            let key = format!("{t}::{c}");
            if let Ok(v) = self.rpc.call("dlg.profile_get_size", &["tg_c", &key]).await {
                sample(
                    o,
                    "tollgate_concurrent_calls_by_class",
                    &[("tenant", t), ("class", c)],
                    v.as_u64().unwrap_or(0),
                );
            }
        }
        family(
            o,
            "tollgate_calls_by_country_total",
            "counter",
            Some(
                "Allowed calls (emergency calls excepted) per tenant and destination country, ZZ = no country (tg_stat).",
            ),
        );
        for ((t, c), n) in &by_country {
            sample(
                o,
                "tollgate_calls_by_country_total",
                &[("tenant", t), ("country", c)],
                n,
            );
        }
        family(
            o,
            "tollgate_calls_by_class_total",
            "counter",
            Some(
                "Verdicts reached after the number's classes are known (emergency calls, unknown or denied sources and invalid numbers excepted), per tenant, class of the number (each class once; other = not a class of the tenant's policy) and outcome (tg_stat).",
            ),
        );
        for ((t, c, oc), n) in &by_class {
            sample(
                o,
                "tollgate_calls_by_class_total",
                &[("tenant", t), ("class", c), ("outcome", oc)],
                n,
            );
        }
        family(
            o,
            "tollgate_rate_limit_calls_total",
            "counter",
            Some(
                "Calls counted against a call-rate limit that has a warning level, per tenant and limit rule (tg_stat).",
            ),
        );
        for ((t, r), n) in &rated {
            sample(
                o,
                "tollgate_rate_limit_calls_total",
                &[("tenant", t), ("rule", r)],
                n,
            );
        }
        family(
            o,
            "tollgate_window_open",
            "gauge",
            Some(
                "1 while the tenant's time window is open (the evaluator's semantics, at scrape time).",
            ),
        );
        let now = jiff::Timestamp::now();
        for (t, w) in windows {
            if let Ok(open) = tollgate_policy::window::is_open(w, now) {
                sample(
                    o,
                    "tollgate_window_open",
                    &[("tenant", t), ("window", &w.name)],
                    u8::from(open),
                );
            }
        }
        let m = &self.metrics;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        family(
            o,
            "tollgate_agent_applies_total",
            "counter",
            Some("Applies by result."),
        );
        for (r, a) in [
            ("ok", &m.applies_ok),
            ("rejected", &m.applies_rejected),
            ("failed", &m.applies_failed),
        ] {
            sample(o, "tollgate_agent_applies_total", &[("result", r)], g(a));
        }
        for (name, a) in [
            ("tollgate_agent_reloads_total", &m.reloads),
            ("tollgate_agent_reload_failures_total", &m.reload_failures),
            ("tollgate_agent_recoveries_total", &m.recoveries),
            ("tollgate_agent_stages_total", &m.stages),
        ] {
            family(o, name, "counter", None);
            sample(o, name, &[], g(a));
        }
        family(
            o,
            "tollgate_agent_last_apply_seconds",
            "gauge",
            Some("Duration of the last apply."),
        );
        sample(
            o,
            "tollgate_agent_last_apply_seconds",
            &[],
            g(&m.last_apply_us) as f64 / 1e6,
        );
        out
    }
}
