//! The labels `/metrics` derives from the applied policies
//! ([`MetricLabels`]): computed when they change, not on every scrape.

use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::LimitMetric;
use tollgate_kamailio::TenantRows;

use crate::metrics::{counter_seeds, policy_classes};
use crate::state::Persisted;

/// What `/metrics` derives from the applied policies: computed when they
/// change (`Agent::new`, every successful apply), not on every scrape.
#[derive(Debug, Default)]
pub(crate) struct MetricLabels {
    pub(crate) tenants: Vec<String>,
    /// Rule ids a `tollgate_calls_total` sample may carry.
    pub(crate) known_rules: BTreeSet<String>,
    /// (tenant, class) with a concurrency limit.
    pub(crate) class_limits: BTreeSet<(String, String)>,
    pub(crate) windows: Vec<(String, tollgate_ir::TimeWindow)>,
    pub(crate) seeds: Vec<(String, String, String)>,
    /// tenant → its revision as a number (`<n>@sha256:…` labels) or the
    /// label itself.
    pub(crate) revisions: Vec<(String, String)>,
    /// tenant → the classes its numbers can have.
    pub(crate) class_names: BTreeMap<String, BTreeSet<String>>,
}

impl MetricLabels {
    pub(crate) fn of(state: &Persisted, rows: &BTreeMap<String, TenantRows>) -> MetricLabels {
        let tenants: Vec<String> = rows.keys().cloned().collect();
        // tenant → its revision as a number (`<n>@sha256:…` labels) or
        // the label itself
        let revisions: Vec<(String, String)> = state
            .tenants
            .iter()
            .map(|(t, s)| {
                let r = s
                    .revision
                    .split_once('@')
                    .map_or(s.revision.as_str(), |(n, _)| n);
                (t.clone(), r.chars().take(128).collect())
            })
            .collect();
        // classes with a concurrency limit, and every window, per tenant
        let mut class_limits: BTreeSet<(String, String)> = BTreeSet::new();
        let mut windows = Vec::new();
        // tenant → the classes its numbers can have (the class label's values)
        let mut class_names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (t, s) in &state.tenants {
            class_names.insert(t.clone(), policy_classes(&s.policy));
            for l in &s.policy.limits {
                if let (LimitMetric::Concurrent, Some(c)) = (l.metric, &l.class) {
                    class_limits.insert((t.clone(), c.clone()));
                }
            }
            windows.extend(s.policy.windows.iter().map(|w| (t.clone(), w.clone())));
        }
        let seeds: Vec<(String, String, String)> = state
            .tenants
            .iter()
            .flat_map(|(t, s)| counter_seeds(t, &s.policy))
            .collect();
        let mut rules: BTreeSet<String> = [
            "src:unknown",
            "dst:invalid",
            "dst:unreadable",
            "dst:international",
            "dst:emergency",
            "sbc:tenant-missing",
            "sbc:class-tree-missing",
            "sbc:tree-missing",
            "sbc:unknown",
            "block:tenant",
            "crypto:tls",
            "crypto:client-certificate",
            "crypto:srtp",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        for s in state.tenants.values() {
            let p = &s.policy;
            rules.extend(p.rules.iter().map(|r| r.id.clone()));
            rules.extend(p.destinations.iter().map(|d| d.rule.clone()));
            rules.extend(p.sources.networks.iter().map(|n| n.rule.clone()));
            rules.extend(p.sources.geo.iter().map(|g| g.rule.clone()));
            rules.extend(p.limits.iter().map(|l| l.rule.clone()));
            rules.extend(p.windows.iter().map(|w| w.rule.clone()));
        }
        rules.extend(
            class_names
                .values()
                .flatten()
                .map(|c| format!("block:class:{c}")),
        );
        MetricLabels {
            tenants,
            known_rules: rules,
            class_limits,
            windows,
            seeds,
            revisions,
            class_names,
        }
    }
}
