//! What `/metrics` counts and labels: the agent's own counters
//! ([`Metrics`], registered in the agent's registry) and the `tg_stat`
//! counters folded into families. The labels derived from the applied
//! policies are `labels`; the scrape of the SBC's figures is `scrape`.
//! Nothing here reads the agent's state, so the RPC client can count into
//! [`Metrics`] without a module cycle.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use tollgate_ir::{CompiledPolicy, LimitMetric};
use tollgate_kamailio::kamailio;
use tollgate_plumbing::metrics::Registry;
use tollgate_plumbing::metrics::prometheus_client::metrics::counter::Counter;
use tollgate_plumbing::metrics::prometheus_client::metrics::family::Family;
use tollgate_plumbing::metrics::prometheus_client::metrics::gauge::Gauge;

/// The result label of `tollgate_agent_applies_total`.
pub type ResultLabel = [(&'static str, &'static str); 1];

/// The agent's own counters (the SBC's figures are read at each scrape).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Applies and stages by result (`ok`, `rejected`, `failed`).
    pub applies: Family<ResultLabel, Counter>,
    /// Reloads asked of Kamailio (trees, address table, hash tables).
    pub reloads: Counter,
    /// Reloads Kamailio refused or did not answer.
    pub reload_failures: Counter,
    /// Times the reconcile loop re-applied the last good state.
    pub recoveries: Counter,
    /// Revisions staged (checked, not yet committed).
    pub stages: Counter,
    /// Duration of the last apply, in seconds.
    pub last_apply_seconds: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let m = Metrics {
            applies: Family::default(),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
            recoveries: Counter::default(),
            stages: Counter::default(),
            last_apply_seconds: Gauge::default(),
        };
        // every result is exported from the start, at 0
        for r in ["ok", "rejected", "failed"] {
            let _ = m.applies.get_or_create(&[("result", r)]);
        }
        m
    }
}

impl Metrics {
    /// Counts one apply (or stage) with `result`.
    pub fn applied(&self, result: &'static str) {
        self.applies.get_or_create(&[("result", result)]).inc();
    }

    /// Registers the counters in the agent's registry (counter names get
    /// `_total` from the encoder, help texts a period).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "tollgate_agent_applies",
            "Applies by result",
            self.applies.clone(),
        );
        r.register(
            "tollgate_agent_reloads",
            "Reloads asked of Kamailio (trees, address table, hash tables)",
            self.reloads.clone(),
        );
        r.register(
            "tollgate_agent_reload_failures",
            "Reloads Kamailio refused or did not answer",
            self.reload_failures.clone(),
        );
        r.register(
            "tollgate_agent_recoveries",
            "Times the reconcile loop re-applied the last good state",
            self.recoveries.clone(),
        );
        r.register(
            "tollgate_agent_stages",
            "Revisions staged (checked, not yet committed)",
            self.stages.clone(),
        );
        r.register(
            "tollgate_agent_last_apply_seconds",
            "Duration of the last apply",
            self.last_apply_seconds.clone(),
        );
    }
}

/// What the labels of the `tg_stat` families may hold.
pub(crate) struct StatLabels<'a> {
    /// The applied tenants.
    pub(crate) tenants: &'a [String],
    /// Every rule id the applied policies (and tollgate.cfg) can name.
    pub(crate) rules: &'a BTreeSet<String>,
    /// Applied tenant → its [`policy_classes`].
    pub(crate) classes: &'a BTreeMap<String, BTreeSet<String>>,
}

/// The `tg_stat` counters, labelled: one map per family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StatCounters {
    /// (tenant, outcome, rule): `tollgate_calls_total`.
    pub(crate) calls: BTreeMap<(String, String, String), u64>,
    /// (tenant, country): `tollgate_calls_by_country_total`.
    pub(crate) by_country: BTreeMap<(String, String), u64>,
    /// (tenant, rule): `tollgate_rate_limit_calls_total`.
    pub(crate) rated: BTreeMap<(String, String), u64>,
    /// (tenant, class, outcome): `tollgate_calls_by_class_total`.
    pub(crate) by_class: BTreeMap<(String, String, String), u64>,
}

/// Folds `tg_stat`'s entries (`<t>::<o>::<r>` → count) into the families,
/// the `seeds` ([`counter_seeds`]) first at 0 so that a series' first call is
/// an increase. Labels are bounded by `labels`: a tenant that is not applied
/// is `other` in `tollgate_calls_total` (`_`, the unknown source, stays) and
/// dropped from the other families; an unknown rule, outcome or class is
/// `other`.
pub(crate) fn stat_counters(
    entries: &[(String, Value)],
    seeds: &[(String, String, String)],
    labels: &StatLabels<'_>,
) -> StatCounters {
    let mut out = StatCounters::default();
    let applied = |t: &str| labels.tenants.iter().any(|x| x == t);
    for (t, o, r) in seeds {
        if o == "country" {
            out.by_country.entry((t.clone(), r.clone())).or_default();
        } else if o == "rated" {
            out.rated.entry((t.clone(), r.clone())).or_default();
        } else if o == "class" {
            if let Some(known) = labels.classes.get(t) {
                let (oc, c) = class_labels(r, known);
                out.by_class
                    .entry((t.clone(), c.to_string(), oc.to_string()))
                    .or_default();
            }
        } else {
            out.calls
                .entry((t.clone(), o.clone(), r.clone()))
                .or_default();
        }
    }
    for (key, value) in entries {
        let n = match value {
            Value::Number(n) => n.as_u64().unwrap_or(0),
            Value::String(s) => s.parse().unwrap_or(0),
            _ => 0,
        };
        let mut it = key.splitn(3, "::");
        let (Some(t), Some(o), Some(r)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        // `<t>::country::<CC>`: allowed calls per destination country
        // (tollgate.cfg), for applied tenants
        if o == "country" {
            if applied(t) {
                *out.by_country
                    .entry((t.to_string(), country_label(r).to_string()))
                    .or_default() += n;
            }
            continue;
        }
        // `<t>::class::<outcome>::<class>`: every verdict after the class
        // lookup, once per class of the number (tollgate.cfg route
        // COUNT_CLASSES), for applied tenants
        if o == "class" {
            if let (true, Some(known)) = (applied(t), labels.classes.get(t)) {
                let (oc, c) = class_labels(r, known);
                *out.by_class
                    .entry((t.to_string(), c.to_string(), oc.to_string()))
                    .or_default() += n;
            }
            continue;
        }
        // `<t>::rated::<rule>`: calls a rate limit with a warning level saw
        // (tollgate.cfg route LIMIT_RATE)
        if o == "rated" {
            if applied(t) && labels.rules.contains(r) {
                *out.rated.entry((t.to_string(), r.to_string())).or_default() += n;
            }
            continue;
        }
        let t = if t == "_" || applied(t) { t } else { "other" };
        let o = if ["allow", "deny", "limit", "error", "warning"].contains(&o) {
            o
        } else {
            "other"
        };
        let r = if labels.rules.contains(r) { r } else { "other" };
        *out.calls
            .entry((t.to_string(), o.to_string(), r.to_string()))
            .or_default() += n;
    }
    out
}

/// The counters a tenant's policy can move, exported as 0 before their
/// first call: Prometheus sees no increase in a series that appears with
/// the value 1. (tenant, outcome, rule) for allowed destination rules
/// (`allow`) and limits (`limit`, `warning` for concurrency warnings and
/// `rated` for rate limits with a warning level),
/// (tenant, "country", XX) for `dst:country:XX` allow rules, and
/// `(tenant, "class", "allow::<class>")` for every class of the policy
/// ([`policy_classes`]): the `tg_stat` keys `<t>::<o>::<r>` they count.
pub fn counter_seeds(tenant: &str, p: &CompiledPolicy) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut add = |o: &str, r: &str| {
        out.insert((tenant.to_string(), o.to_string(), r.to_string()));
    };
    for d in &p.destinations {
        if d.action == tollgate_ir::Verdict::Allow {
            add("allow", &d.rule);
            if let Some(cc) = country_of_rule(&d.rule) {
                add("country", cc);
            }
        }
    }
    for l in &p.limits {
        if l.critical.is_some() && l.metric != LimitMetric::Duration {
            add("limit", &l.rule);
        }
        if l.warning.is_some() && l.metric == LimitMetric::Concurrent {
            add("warning", &l.rule);
        }
        if l.warning.is_some() && l.metric == LimitMetric::Rate {
            add("rated", &l.rule);
        }
    }
    for c in policy_classes(p) {
        add("class", &format!("allow::{c}"));
    }
    out
}

/// The classes a tenant's numbers can have: `national` and `international`
/// (every number is one of them) and each class its policy names.
pub fn policy_classes(p: &CompiledPolicy) -> BTreeSet<String> {
    ["national", "international"]
        .iter()
        .map(ToString::to_string)
        .chain(p.classes.iter().map(|c| c.class.clone()))
        .collect()
}

/// The outcomes of a `<t>::class::<outcome>::<class>` counter: the verdicts
/// counted after the class lookup.
pub const CLASS_OUTCOMES: [&str; 4] = ["allow", "deny", "limit", "error"];

/// The (`outcome`, `class`) labels of a `<t>::class::<outcome>::<class>`
/// counter from its `<outcome>::<class>`: the outcome when it is one of
/// [`CLASS_OUTCOMES`] and the class when it is one of `known` (the tenant's
/// [`policy_classes`]), each else `other`.
pub fn class_labels<'a>(rest: &'a str, known: &BTreeSet<String>) -> (&'a str, &'a str) {
    let (o, c) = rest.split_once("::").unwrap_or((rest, ""));
    (
        if CLASS_OUTCOMES.contains(&o) {
            o
        } else {
            "other"
        },
        if known.contains(c) { c } else { "other" },
    )
}

/// The `country` label of a `<t>::country::<CC>` counter: the code when it
/// is two capital letters (what the country tree holds), else `ZZ`.
pub fn country_label(cc: &str) -> &str {
    if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()) {
        cc
    } else {
        kamailio::NO_COUNTRY
    }
}

/// The destination country of a `dst:country:XX` rule id (optionally
/// `@window`): the ISO code when it is two capital letters.
pub fn country_of_rule(rule: &str) -> Option<&str> {
    let cc = rule.strip_prefix("dst:country:")?;
    let cc = cc.split_once('@').map_or(cc, |(c, _)| c);
    (cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase())).then_some(cc)
}

#[cfg(test)]
mod tests {
    use super::{country_label, country_of_rule};
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn country_labels() {
        assert_eq!(country_label("FR"), "FR");
        assert_eq!(country_label("ZZ"), "ZZ");
        for bad in ["", "fr", "FRA", "F", "F1", "\"\"", "É"] {
            assert_eq!(country_label(bad), "ZZ", "{bad}");
        }
    }

    #[test]
    fn class_counter_labels() {
        let known: BTreeSet<String> = ["national", "international", "premium-rate"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let l = |r| super::class_labels(r, &known);
        assert_eq!(l("allow::national"), ("allow", "national"));
        assert_eq!(l("deny::premium-rate"), ("deny", "premium-rate"));
        assert_eq!(l("limit::international"), ("limit", "international"));
        assert_eq!(l("error::national"), ("error", "national"));
        // not a verdict counted per class, or no outcome at all
        assert_eq!(l("warning::national"), ("other", "national"));
        assert_eq!(l("national"), ("other", "other"));
        assert_eq!(l(""), ("other", "other"));
        // a class the policy does not name (e.g. dropped by a new revision)
        assert_eq!(l("allow::shared-cost"), ("allow", "other"));
        assert_eq!(l("allow::"), ("allow", "other"));
        assert_eq!(l("allow::national::x"), ("allow", "other"));
        assert_eq!(l("ALLOW::National"), ("other", "other"));
    }

    #[test]
    fn stat_entries_by_family() {
        use serde_json::json;
        let tenants = vec!["acme".to_string(), "globex".to_string()];
        let rules: BTreeSet<String> = ["dst:national", "src:unknown", "limit:rate"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let set = |v: &[&str]| v.iter().map(ToString::to_string).collect::<BTreeSet<_>>();
        let classes: BTreeMap<String, BTreeSet<String>> = [
            (
                "acme".to_string(),
                set(&["national", "international", "premium-rate"]),
            ),
            ("globex".to_string(), set(&["national", "international"])),
        ]
        .into_iter()
        .collect();
        let labels = super::StatLabels {
            tenants: &tenants,
            rules: &rules,
            classes: &classes,
        };
        let entries: Vec<(String, serde_json::Value)> = [
            ("acme::allow::dst:national", json!(5)),
            ("_::deny::src:unknown", json!(2)),
            ("acme::country::US", json!(4)),
            ("acme::rated::limit:rate", json!(3)),
            ("acme::class::allow::national", json!(5)),
            ("acme::class::deny::national", json!(1)),
            ("acme::class::deny::premium-rate", json!("1")),
            // not a class of acme's policy / not an outcome counted per
            // class: labelled other, never a calls_total row
            ("acme::class::deny::shared-cost", json!(6)),
            ("acme::class::deny::old-class", json!(1)),
            ("acme::class::bogus::national", json!(7)),
            // premium-rate is not a class of globex's policy
            ("globex::class::limit::premium-rate", json!(2)),
            // a tenant that is not applied (any more): dropped
            ("initech::class::allow::national", json!(9)),
            ("initech::allow::dst:national", json!(1)),
            ("acme::class", json!(1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let seeds: Vec<(String, String, String)> = [
            ("acme", "allow", "dst:national"),
            ("acme", "class", "allow::national"),
            ("acme", "class", "allow::international"),
            ("globex", "class", "allow::national"),
            ("initech", "class", "allow::national"),
        ]
        .iter()
        .map(|(t, o, r)| (t.to_string(), o.to_string(), r.to_string()))
        .collect();
        let got = super::stat_counters(&entries, &seeds, &labels);
        let tri = |m: &BTreeMap<(String, String, String), u64>| {
            m.iter()
                .map(|((a, b, c), n)| format!("{a} {b} {c} {n}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            tri(&got.by_class),
            [
                "acme international allow 0",
                "acme national allow 5",
                "acme national deny 1",
                "acme national other 7",
                "acme other deny 7",
                "acme premium-rate deny 1",
                "globex national allow 0",
                "globex other limit 2",
            ]
        );
        assert_eq!(
            tri(&got.calls),
            [
                "_ deny src:unknown 2",
                "acme allow dst:national 5",
                "other allow dst:national 1",
            ],
            "no class entry is a call of an outcome `class` or `other`"
        );
        let pair = |m: &BTreeMap<(String, String), u64>| {
            m.iter()
                .map(|((a, b), n)| format!("{a} {b} {n}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(pair(&got.by_country), ["acme US 4"]);
        assert_eq!(pair(&got.rated), ["acme limit:rate 3"]);
    }

    /// acme (US) with nothing in it.
    fn empty_policy() -> tollgate_ir::CompiledPolicy {
        serde_json::from_value(serde_json::json!({
            "tenant": "acme", "homeCountry": "US", "numberingPlan": "", "emergencyNumbers": ["911"],
            "destinations": [], "classes": [], "sources": {"networks": []}, "windows": [],
            "limits": [], "responses": [], "crypto": {"requireTls": false, "requireSrtp": false,
            "requireClientCertificate": false}, "rules": []
        }))
        .unwrap()
    }

    #[test]
    fn classes_of_a_policy() {
        let mut p = empty_policy();
        fn names(p: &tollgate_ir::CompiledPolicy) -> Vec<String> {
            crate::policy_classes(p).into_iter().collect()
        }
        assert_eq!(names(&p), ["international", "national"]);
        for (prefix, class) in [
            ("1900", "premium-rate"),
            ("1976", "premium-rate"),
            ("44", "national"),
        ] {
            p.classes.push(tollgate_ir::ClassPrefix {
                prefix: prefix.into(),
                class: class.into(),
            });
        }
        assert_eq!(names(&p), ["international", "national", "premium-rate"]);
    }

    #[test]
    fn countries_of_rules() {
        assert_eq!(country_of_rule("dst:country:FR"), Some("FR"));
        assert_eq!(country_of_rule("dst:country:US@trading"), Some("US"));
        assert_eq!(country_of_rule("dst:country:fr"), None);
        assert_eq!(country_of_rule("dst:country:FRA"), None);
        assert_eq!(country_of_rule("dst:prefix:33"), None);
        assert_eq!(country_of_rule("dst:country:"), None);
    }

    #[test]
    fn seeds() {
        use tollgate_ir::{DestinationRule, Limit, LimitMetric, Verdict};
        let mut p = empty_policy();
        for (prefix, action, rule) in [
            ("1", Verdict::Allow, "dst:national"),
            ("1416", Verdict::Allow, "dst:country:CA"),
            ("1212976", Verdict::Deny, "dst:prefix:1212976"),
        ] {
            p.destinations.push(DestinationRule {
                prefix: prefix.into(),
                action,
                rule: rule.into(),
                window: None,
            });
        }
        for (metric, warning, critical, rule) in [
            (
                LimitMetric::Concurrent,
                Some(2),
                Some(3),
                "limit:concurrent",
            ),
            (LimitMetric::Rate, Some(4), None, "limit:rate"),
            (LimitMetric::Duration, None, Some(60), "limit:duration"),
        ] {
            p.limits.push(Limit {
                metric,
                class: None,
                warning,
                critical,
                rule: rule.into(),
            });
        }
        p.classes.push(tollgate_ir::ClassPrefix {
            prefix: "1900".into(),
            class: "premium-rate".into(),
        });
        let got: Vec<String> = super::counter_seeds("acme", &p)
            .into_iter()
            .map(|(_, o, r)| format!("{o} {r}"))
            .collect();
        assert_eq!(
            got,
            [
                "allow dst:country:CA",
                "allow dst:national",
                "class allow::international",
                "class allow::national",
                "class allow::premium-rate",
                "country CA",
                "limit limit:concurrent",
                "rated limit:rate",
                "warning limit:concurrent"
            ]
        );
    }
}
