//! The labels `/metrics` derives from the applied policies
//! ([`MetricLabels`]): computed when they change, not on every scrape.

use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::LimitMetric;

use crate::metrics::{counter_seeds, policy_classes};
use crate::state::TenantState;

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
    /// The levels of every applied limit (`tollgate_limit_level`).
    pub(crate) limit_levels: Vec<LimitLevel>,
}

/// One level of one limit of an applied tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LimitLevel {
    pub(crate) tenant: String,
    /// `concurrent`, `rate` or `duration`.
    pub(crate) limit: &'static str,
    /// The class it counts, "" for the whole tenant.
    pub(crate) class: String,
    /// The limit's rule id (`tollgate_rate_limit_calls_total` counts by it).
    pub(crate) rule: String,
    /// `warning` or `critical`.
    pub(crate) level: &'static str,
    pub(crate) value: u64,
}

/// One tenant's part of [`MetricLabels`], computed when it is applied.
#[derive(Debug, Default)]
pub(crate) struct TenantLabels {
    rules: BTreeSet<String>,
    class_limits: BTreeSet<String>,
    windows: Vec<tollgate_ir::TimeWindow>,
    seeds: Vec<(String, String, String)>,
    revision: String,
    classes: BTreeSet<String>,
    /// The levels of its limits (`tenant` left empty).
    levels: Vec<LimitLevel>,
}

impl TenantLabels {
    pub(crate) fn of(t: &str, s: &TenantState) -> TenantLabels {
        let p = &s.policy;
        let revision = s
            .revision
            .split_once('@')
            .map_or(s.revision.as_str(), |(n, _)| n)
            .chars()
            .take(128)
            .collect();
        let class_limits = p
            .limits
            .iter()
            .filter_map(|l| match (l.metric, &l.class) {
                (LimitMetric::Concurrent, Some(c)) => Some(c.clone()),
                _ => None,
            })
            .collect();
        let mut rules: BTreeSet<String> = BTreeSet::new();
        rules.extend(p.rules.iter().map(|r| r.id.clone()));
        rules.extend(p.destinations.iter().map(|d| d.rule.clone()));
        rules.extend(p.sources.networks.iter().map(|n| n.rule.clone()));
        rules.extend(p.sources.geo.iter().map(|g| g.rule.clone()));
        rules.extend(p.limits.iter().map(|l| l.rule.clone()));
        rules.extend(p.windows.iter().map(|w| w.rule.clone()));
        let classes = policy_classes(p);
        rules.extend(classes.iter().map(|c| format!("block:class:{c}")));
        let mut levels = Vec::new();
        for l in &p.limits {
            let metric = match l.metric {
                LimitMetric::Concurrent => "concurrent",
                LimitMetric::Rate => "rate",
                LimitMetric::Duration => "duration",
            };
            for (level, v) in [("warning", l.warning), ("critical", l.critical)] {
                if let Some(value) = v {
                    levels.push(LimitLevel {
                        tenant: String::new(),
                        limit: metric,
                        class: l.class.clone().unwrap_or_default(),
                        rule: l.rule.clone(),
                        level,
                        value,
                    });
                }
            }
        }
        TenantLabels {
            levels,
            rules,
            class_limits,
            windows: p.windows.clone(),
            seeds: counter_seeds(t, p).into_iter().collect(),
            revision,
            classes,
        }
    }
}

impl MetricLabels {
    /// The labels of every applied tenant, from their parts (a pass over
    /// each tenant's distinct rule ids, not over its rows).
    pub(crate) fn of(parts: &BTreeMap<String, std::sync::Arc<TenantLabels>>) -> MetricLabels {
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
        let mut out = MetricLabels::default();
        for (t, l) in parts {
            out.tenants.push(t.clone());
            out.revisions.push((t.clone(), l.revision.clone()));
            for c in &l.class_limits {
                out.class_limits.insert((t.clone(), c.clone()));
            }
            out.windows
                .extend(l.windows.iter().map(|w| (t.clone(), w.clone())));
            out.seeds.extend(l.seeds.iter().cloned());
            out.class_names.insert(t.clone(), l.classes.clone());
            out.limit_levels
                .extend(l.levels.iter().map(|lv| LimitLevel {
                    tenant: t.clone(),
                    ..lv.clone()
                }));
            for r in &l.rules {
                if !rules.contains(r) {
                    rules.insert(r.clone());
                }
            }
        }
        out.known_rules = rules;
        out
    }
}
