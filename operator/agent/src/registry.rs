//! The agent's one metrics registry: its own counters
//! ([`Metrics`](crate::metrics::Metrics)) and [`SbcCollector`], which
//! encodes the SBC's figures a scrape read from Kamailio ([`Scrape`],
//! read by `scrape`). The SBC's families and series come in a fixed order.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

#[cfg(test)]
use tollgate_plumbing::metrics;
use tollgate_plumbing::metrics::Registry;
use tollgate_plumbing::metrics::prometheus_client::collector::Collector;
use tollgate_plumbing::metrics::prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric,
};
use tollgate_plumbing::metrics::prometheus_client::metrics::MetricType;
use tollgate_plumbing::metrics::prometheus_client::metrics::counter::ConstCounter;
use tollgate_plumbing::metrics::prometheus_client::metrics::gauge::ConstGauge;

use crate::fleet::FleetFigures;
use crate::metrics::StatCounters;
use tollgate_agent_api::FleetMode;

/// The SBC's figures at one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Scrape {
    /// Kamailio answered JSON-RPC (`tg_stat` was read).
    pub(crate) up: bool,
    /// (tenant, revision) of each applied tenant.
    pub(crate) revisions: Vec<(String, String)>,
    /// The `tg_stat` counters (empty when Kamailio did not answer).
    pub(crate) stats: StatCounters,
    /// (tenant, calls up) from the dialog profile `tg_t`.
    pub(crate) concurrent: Vec<(String, u64)>,
    /// (tenant, class, calls up) from the dialog profile `tg_c`.
    pub(crate) concurrent_by_class: Vec<(String, String, u64)>,
    /// (tenant, window, open) at the scrape's time.
    pub(crate) windows: Vec<(String, String, bool)>,
    /// The levels of the applied limits.
    pub(crate) limit_levels: Vec<crate::labels::LimitLevel>,
    /// (tenant, class or "" for the whole tenant) of each block in force.
    pub(crate) blocks: Vec<(String, String)>,
    /// Fleet-wide counting's state (`None`: not configured, or unreadable).
    pub(crate) fleet: Option<FleetFigures>,
}

/// The registry's collector of the SBC's figures: encodes the last
/// [`Scrape`] stored in it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SbcCollector(Arc<Mutex<Scrape>>);

impl SbcCollector {
    pub(crate) fn store(&self, s: Scrape) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = s;
    }
}

/// The agent's registry: its counters and the SBC's figures.
#[derive(Debug)]
pub(crate) struct AgentRegistry {
    pub(crate) registry: Registry,
    pub(crate) sbc: SbcCollector,
    /// One scrape at a time reads Kamailio, stores and encodes.
    pub(crate) scraping: tokio::sync::Mutex<()>,
}

impl AgentRegistry {
    /// A registry holding `m` and an empty [`SbcCollector`].
    pub(crate) fn new(m: &crate::metrics::Metrics) -> AgentRegistry {
        let mut registry = Registry::default();
        let sbc = SbcCollector::default();
        registry.register_collector(Box::new(sbc.clone()));
        m.register(&mut registry);
        AgentRegistry {
            registry,
            sbc,
            scraping: tokio::sync::Mutex::new(()),
        }
    }
}

/// One labelled family of constant values.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut fam = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        value.encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for SbcCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let e = &mut enc;
        let (counter, gauge) = (MetricType::Counter, MetricType::Gauge);
        let up = ConstGauge::new(i64::from(s.up));
        up.encode(e.encode_descriptor(
            "tollgate_sbc_up",
            "Kamailio answers JSON-RPC.",
            None,
            gauge,
        )?)?;
        family(
            e,
            "tollgate_tenant_revision_info",
            "The revision each applied tenant holds (1 per tenant).",
            gauge,
            s.revisions
                .iter()
                .map(|(t, r)| ([("tenant", t), ("revision", r)], ConstGauge::new(1))),
        )?;
        // counters: the encoder adds `_total` to the name
        family(
            e,
            "tollgate_calls",
            "INVITEs evaluated by the SBC since its start (tg_stat).",
            counter,
            s.stats.calls.iter().map(|((t, oc, r), n)| {
                (
                    [("tenant", t), ("outcome", oc), ("rule", r)],
                    ConstCounter::new(*n),
                )
            }),
        )?;
        family(
            e,
            "tollgate_concurrent_calls",
            "Calls up per tenant (dialog profile tg_t).",
            gauge,
            s.concurrent
                .iter()
                .map(|(t, n)| ([("tenant", t)], ConstGauge::new(*n))),
        )?;
        family(
            e,
            "tollgate_concurrent_calls_by_class",
            "Calls up per tenant and limited class (dialog profile tg_c).",
            gauge,
            s.concurrent_by_class
                .iter()
                .map(|(t, c, n)| ([("tenant", t), ("class", c)], ConstGauge::new(*n))),
        )?;
        family(
            e,
            "tollgate_calls_by_country",
            "Allowed calls (emergency calls excepted) per tenant and destination country, ZZ = no country (tg_stat).",
            counter,
            s.stats
                .by_country
                .iter()
                .map(|((t, c), n)| ([("tenant", t), ("country", c)], ConstCounter::new(*n))),
        )?;
        family(
            e,
            "tollgate_calls_by_class",
            "Verdicts reached after the number's classes are known (emergency calls, unknown or denied sources and invalid numbers excepted), per tenant, class of the number (each class once; other = not a class of the tenant's policy) and outcome (tg_stat).",
            counter,
            s.stats.by_class.iter().map(|((t, c, oc), n)| {
                (
                    [("tenant", t), ("class", c), ("outcome", oc)],
                    ConstCounter::new(*n),
                )
            }),
        )?;
        family(
            e,
            "tollgate_rate_limit_calls",
            "Calls counted against a call-rate limit that has a warning level, per tenant and limit rule (tg_stat).",
            counter,
            s.stats
                .rated
                .iter()
                .map(|((t, r), n)| ([("tenant", t), ("rule", r)], ConstCounter::new(*n))),
        )?;
        family(
            e,
            "tollgate_window_open",
            "1 while the tenant's time window is open (the evaluator's semantics, at scrape time).",
            gauge,
            s.windows.iter().map(|(t, w, open)| {
                (
                    [("tenant", t), ("window", w)],
                    ConstGauge::new(i64::from(*open)),
                )
            }),
        )?;
        family(
            e,
            "tollgate_limit_level",
            "The levels of the applied tenants' limits: concurrent calls, new calls per minute (rate) or seconds of one call (duration), per tenant, limit, class (empty for the whole tenant), rule and level.",
            gauge,
            s.limit_levels.iter().map(|l| {
                (
                    [
                        ("tenant", l.tenant.as_str()),
                        ("limit", l.limit),
                        ("class", l.class.as_str()),
                        ("rule", l.rule.as_str()),
                        ("level", l.level),
                    ],
                    ConstGauge::new(i64::try_from(l.value).unwrap_or(i64::MAX)),
                )
            }),
        )?;
        family(
            e,
            "tollgate_block_active",
            "1 per emergency block in force on the SBC (tg_block), per tenant and class (empty: the whole tenant).",
            gauge,
            s.blocks
                .iter()
                .map(|(t, c)| ([("tenant", t), ("class", c)], ConstGauge::new(1))),
        )?;
        // fleet-wide counting: only on an SBC configured for it
        let Some(f) = &s.fleet else { return Ok(()) };
        let degraded = ConstGauge::new(i64::from(f.counting.mode == FleetMode::Degraded));
        degraded.encode(e.encode_descriptor(
            "tollgate_fleet_degraded",
            "1 while the SBC cannot reach its fleet's store and decides its tenants' limits alone, with its share of each level.",
            None,
            gauge,
        )?)?;
        ConstGauge::new(i64::from(f.counting.members)).encode(e.encode_descriptor(
            "tollgate_fleet_members",
            "SBCs of the fleet alive at the SBC's last heartbeat (the divisor of its share while degraded).",
            None,
            gauge,
        )?)?;
        ConstCounter::new(f.local).encode(e.encode_descriptor(
            "tollgate_fleet_local_decisions",
            "Calls whose concurrent or rate limits the SBC decided alone (degraded).",
            None,
            counter,
        )?)?;
        ConstCounter::new(f.leased).encode(e.encode_descriptor(
            "tollgate_fleet_leased_decisions",
            "Calls admitted into spare slots the SBC already held in its fleet's store, without asking it.",
            None,
            counter,
        )?)?;
        ConstCounter::new(f.partitions).encode(e.encode_descriptor(
            "tollgate_fleet_partitions",
            "Times the SBC lost its fleet's store.",
            None,
            counter,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LimitLevel;
    use crate::metrics::Metrics;

    /// The whole text of a scrape: names, HELP and TYPE lines, labels in
    /// order, values.
    #[test]
    fn exposition_text() {
        let m = Metrics::default();
        let r = AgentRegistry::new(&m);
        let mut stats = StatCounters::default();
        stats
            .calls
            .insert(("acme".into(), "allow".into(), "dst:national".into()), 3);
        stats.by_country.insert(("acme".into(), "GB".into()), 2);
        stats
            .by_class
            .insert(("acme".into(), "national".into(), "allow".into()), 3);
        stats
            .rated
            .insert(("acme".into(), "limit:rate:cpm".into()), 1);
        r.sbc.store(Scrape {
            up: true,
            revisions: vec![("acme".into(), "r7".into())],
            stats,
            concurrent: vec![("acme".into(), 2)],
            concurrent_by_class: vec![("acme".into(), "international".into(), 1)],
            windows: vec![("acme".into(), "office".into(), false)],
            limit_levels: vec![
                LimitLevel {
                    tenant: "acme".into(),
                    limit: "concurrent",
                    class: String::new(),
                    rule: "limit:concurrent".into(),
                    level: "critical",
                    value: 60,
                },
                LimitLevel {
                    tenant: "acme".into(),
                    limit: "concurrent",
                    class: "international".into(),
                    rule: "limit:concurrent:international".into(),
                    level: "warning",
                    value: 5,
                },
            ],
            blocks: vec![
                ("acme".into(), "international".into()),
                ("globex".into(), String::new()),
            ],
            fleet: Some(FleetFigures {
                counting: tollgate_agent_api::FleetCounting {
                    changed_unix: 1,
                    members: 3,
                    mode: FleetMode::Degraded,
                },
                local: 5,
                leased: 9,
                partitions: 1,
            }),
        });
        m.applied("ok");
        m.applied("ok");
        m.applied("rejected");
        m.reloads.inc();
        m.stages.inc();
        m.last_apply_seconds.set(0.25);
        let text = metrics::encode(&r.registry);
        let want = r#"# HELP tollgate_sbc_up Kamailio answers JSON-RPC.
# TYPE tollgate_sbc_up gauge
tollgate_sbc_up 1
# HELP tollgate_tenant_revision_info The revision each applied tenant holds (1 per tenant).
# TYPE tollgate_tenant_revision_info gauge
tollgate_tenant_revision_info{tenant="acme",revision="r7"} 1
# HELP tollgate_calls_total INVITEs evaluated by the SBC since its start (tg_stat).
# TYPE tollgate_calls_total counter
tollgate_calls_total{tenant="acme",outcome="allow",rule="dst:national"} 3
# HELP tollgate_concurrent_calls Calls up per tenant (dialog profile tg_t).
# TYPE tollgate_concurrent_calls gauge
tollgate_concurrent_calls{tenant="acme"} 2
# HELP tollgate_concurrent_calls_by_class Calls up per tenant and limited class (dialog profile tg_c).
# TYPE tollgate_concurrent_calls_by_class gauge
tollgate_concurrent_calls_by_class{tenant="acme",class="international"} 1
# HELP tollgate_calls_by_country_total Allowed calls (emergency calls excepted) per tenant and destination country, ZZ = no country (tg_stat).
# TYPE tollgate_calls_by_country_total counter
tollgate_calls_by_country_total{tenant="acme",country="GB"} 2
# HELP tollgate_calls_by_class_total Verdicts reached after the number's classes are known (emergency calls, unknown or denied sources and invalid numbers excepted), per tenant, class of the number (each class once; other = not a class of the tenant's policy) and outcome (tg_stat).
# TYPE tollgate_calls_by_class_total counter
tollgate_calls_by_class_total{tenant="acme",class="national",outcome="allow"} 3
# HELP tollgate_rate_limit_calls_total Calls counted against a call-rate limit that has a warning level, per tenant and limit rule (tg_stat).
# TYPE tollgate_rate_limit_calls_total counter
tollgate_rate_limit_calls_total{tenant="acme",rule="limit:rate:cpm"} 1
# HELP tollgate_window_open 1 while the tenant's time window is open (the evaluator's semantics, at scrape time).
# TYPE tollgate_window_open gauge
tollgate_window_open{tenant="acme",window="office"} 0
# HELP tollgate_limit_level The levels of the applied tenants' limits: concurrent calls, new calls per minute (rate) or seconds of one call (duration), per tenant, limit, class (empty for the whole tenant), rule and level.
# TYPE tollgate_limit_level gauge
tollgate_limit_level{tenant="acme",limit="concurrent",class="",rule="limit:concurrent",level="critical"} 60
tollgate_limit_level{tenant="acme",limit="concurrent",class="international",rule="limit:concurrent:international",level="warning"} 5
# HELP tollgate_block_active 1 per emergency block in force on the SBC (tg_block), per tenant and class (empty: the whole tenant).
# TYPE tollgate_block_active gauge
tollgate_block_active{tenant="acme",class="international"} 1
tollgate_block_active{tenant="globex",class=""} 1
# HELP tollgate_fleet_degraded 1 while the SBC cannot reach its fleet's store and decides its tenants' limits alone, with its share of each level.
# TYPE tollgate_fleet_degraded gauge
tollgate_fleet_degraded 1
# HELP tollgate_fleet_members SBCs of the fleet alive at the SBC's last heartbeat (the divisor of its share while degraded).
# TYPE tollgate_fleet_members gauge
tollgate_fleet_members 3
# HELP tollgate_fleet_local_decisions_total Calls whose concurrent or rate limits the SBC decided alone (degraded).
# TYPE tollgate_fleet_local_decisions_total counter
tollgate_fleet_local_decisions_total 5
# HELP tollgate_fleet_leased_decisions_total Calls admitted into spare slots the SBC already held in its fleet's store, without asking it.
# TYPE tollgate_fleet_leased_decisions_total counter
tollgate_fleet_leased_decisions_total 9
# HELP tollgate_fleet_partitions_total Times the SBC lost its fleet's store.
# TYPE tollgate_fleet_partitions_total counter
tollgate_fleet_partitions_total 1
"#;
        // the registry's own metrics come first, then its collector's
        let at = text.find("# HELP tollgate_sbc_up").unwrap();
        let (own, sbc) = text.split_at(at);
        assert_eq!(sbc, want);
        // the agent's counters: every apply result from the start
        let mut own: Vec<&str> = own.lines().collect();
        own.sort_unstable();
        assert_eq!(
            own,
            [
                "# HELP tollgate_agent_applies_total Applies by result.",
                "# HELP tollgate_agent_last_apply_seconds Duration of the last apply.",
                "# HELP tollgate_agent_recoveries_total Times the reconcile loop re-applied the last good state.",
                "# HELP tollgate_agent_reload_failures_total Reloads Kamailio refused or did not answer.",
                "# HELP tollgate_agent_reloads_total Reloads asked of Kamailio (trees, address table, hash tables).",
                "# HELP tollgate_agent_stages_total Revisions staged (checked, not yet committed).",
                "# TYPE tollgate_agent_applies_total counter",
                "# TYPE tollgate_agent_last_apply_seconds gauge",
                "# TYPE tollgate_agent_recoveries_total counter",
                "# TYPE tollgate_agent_reload_failures_total counter",
                "# TYPE tollgate_agent_reloads_total counter",
                "# TYPE tollgate_agent_stages_total counter",
                "tollgate_agent_applies_total{result=\"failed\"} 0",
                "tollgate_agent_applies_total{result=\"ok\"} 2",
                "tollgate_agent_applies_total{result=\"rejected\"} 1",
                "tollgate_agent_last_apply_seconds 0.25",
                "tollgate_agent_recoveries_total 0",
                "tollgate_agent_reload_failures_total 0",
                "tollgate_agent_reloads_total 1",
                "tollgate_agent_stages_total 1",
            ]
        );
    }

    /// An SBC that does not answer: `up` 0 and empty families, each still
    /// described.
    #[test]
    fn sbc_down() {
        let m = Metrics::default();
        let r = AgentRegistry::new(&m);
        let text = metrics::encode(&r.registry);
        assert!(text.contains(
            "# HELP tollgate_sbc_up Kamailio answers JSON-RPC.\n# TYPE tollgate_sbc_up gauge\ntollgate_sbc_up 0\n"
        ));
        assert!(
            text.contains("# TYPE tollgate_calls_total counter\n# HELP tollgate_concurrent_calls ")
        );
        // no fleet-wide counting configured: no tollgate_fleet_* family
        assert!(!text.contains("tollgate_fleet_"), "{text}");
    }
}
