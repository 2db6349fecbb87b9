//! A policy's thresholds → Prometheus alerting rules over the metrics the
//! agent exports (docs/agent.md "Metrics"). Pure; the exact expressions
//! and their limits are in docs/alerts.md.
//!
//! Every rule carries the labels the receiver maps back to an action
//! ([`super::map_alert`]): `tollgate_tenant`, `tollgate_policy`,
//! `namespace`, and `tollgate_limit` + `tollgate_class` + `tollgate_level` +
//! `severity` for limits, or `tollgate_anomaly` for anomalies.

use super::{L_ANOMALY, L_CLASS, L_LEVEL, L_LIMIT, L_NAMESPACE, L_POLICY, L_TENANT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tollgate_ir::{CompiledPolicy, Limit, LimitMetric};

/// A Prometheus rules file: `groups:`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

/// One rule group (one per TollPolicy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
    /// Thresholds of the policy that got no rule, with the reason (not
    /// rendered; the CLI prints them on stderr).
    #[serde(skip)]
    pub skipped: Vec<String>,
}

/// One alerting rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub alert: String,
    pub expr: String,
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Tunables of the anomaly rules (PromQL durations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleOptions {
    /// How far back "called before" looks (default `30d`).
    pub history: String,
    /// How long a new country stays "new" (the alert's lifetime, default `10m`).
    pub fresh: String,
    /// Prometheus must hold the tenant's calls at least this long before a
    /// new-destination alert can fire (learning period, default `1d`): a
    /// fresh Prometheus does not call every country new.
    pub learning: String,
    /// Window of the rate and "calls in unusual hours" increases (default
    /// `1m`; the SBC's rate limits count per minute).
    pub rate_window: String,
}

impl Default for RuleOptions {
    fn default() -> Self {
        RuleOptions {
            history: "30d".into(),
            fresh: "10m".into(),
            learning: "1d".into(),
            rate_window: "1m".into(),
        }
    }
}

/// The PrometheusRule custom resource (prometheus-operator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRule {
    pub api_version: String,
    pub kind: String,
    pub metadata: PrometheusRuleMeta,
    pub spec: RuleFile,
}

/// Its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrometheusRuleMeta {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

/// Wraps a group as a PrometheusRule named `tollgate-<policy>`.
pub fn prometheus_rule(group: &RuleGroup, namespace: &str, policy_name: &str) -> PrometheusRule {
    PrometheusRule {
        api_version: "monitoring.coreos.com/v1".into(),
        kind: "PrometheusRule".into(),
        metadata: PrometheusRuleMeta {
            name: format!("tollgate-{policy_name}"),
            namespace: namespace.into(),
            labels: BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "tollgate".to_string(),
            )]),
        },
        spec: RuleFile {
            groups: vec![group.clone()],
        },
    }
}

/// A PromQL string literal.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The rules of one policy, with the default [`RuleOptions`].
pub fn rules_for(policy: &CompiledPolicy, namespace: &str, policy_name: &str) -> RuleGroup {
    rules_for_with(policy, namespace, policy_name, &RuleOptions::default())
}

fn metric_name(m: LimitMetric) -> &'static str {
    match m {
        LimitMetric::Concurrent => "concurrent",
        LimitMetric::Rate => "rate",
        LimitMetric::Duration => "duration",
    }
}

fn camel(s: &str) -> String {
    s.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The rules of one policy.
pub fn rules_for_with(
    policy: &CompiledPolicy,
    namespace: &str,
    policy_name: &str,
    opt: &RuleOptions,
) -> RuleGroup {
    let t = &policy.tenant;
    let tq = q(t);
    let mut rules = Vec::new();
    let mut skipped = Vec::new();
    let base = |extra: &[(&str, &str)]| {
        let mut l = BTreeMap::from([
            (L_TENANT.to_string(), t.clone()),
            (L_POLICY.to_string(), policy_name.to_string()),
            (L_NAMESPACE.to_string(), namespace.to_string()),
        ]);
        for (k, v) in extra {
            l.insert((*k).to_string(), (*v).to_string());
        }
        l
    };
    // rejections by this limit (the SBC counts `limit` outcomes with the
    // limit's rule id): catches breaches shorter than a scrape interval
    let rejected = |l: &Limit| {
        format!(
            "sum by (tenant) (increase(tollgate_calls_total{{tenant={tq},outcome=\"limit\",rule={}}}[{}])) > 0",
            q(&l.rule),
            opt.rate_window
        )
    };
    for l in &policy.limits {
        let metric = metric_name(l.metric);
        let what = match &l.class {
            Some(c) => format!("{metric} ({c})"),
            None => metric.to_string(),
        };
        // the measured value, one series per tenant: the sum over the
        // fleet's SBCs (each agent exports its own SBC's calls), as the
        // limits are counted (docs/sbc.md "Fleet-wide limits")
        let gauge = match (l.metric, &l.class) {
            (LimitMetric::Concurrent, None) => Some(format!(
                "sum by (tenant) (tollgate_concurrent_calls{{tenant={tq}}})"
            )),
            (LimitMetric::Concurrent, Some(c)) => Some(format!(
                "sum by (tenant) (tollgate_concurrent_calls_by_class{{tenant={tq},class={}}})",
                q(c)
            )),
            (LimitMetric::Rate, None) => Some(format!(
                "sum by (tenant) (increase(tollgate_calls_total{{tenant={tq},outcome=~\"allow|limit\",rule!=\"dst:emergency\"}}[{}]))",
                opt.rate_window
            )),
            // a class's rate: the calls its limit saw (counted by the SBC
            // only when the limit has a warning level)
            (LimitMetric::Rate, Some(_)) if l.warning.is_some() => Some(format!(
                "sum by (tenant) (increase(tollgate_rate_limit_calls_total{{tenant={tq},rule={}}}[{}]))",
                q(&l.rule),
                opt.rate_window
            )),
            (LimitMetric::Rate, Some(_)) | (LimitMetric::Duration, _) => None,
        };
        for (level, value) in [("warning", l.warning), ("critical", l.critical)] {
            let Some(v) = value else { continue };
            let expr = match (&gauge, level, l.metric) {
                (Some(g), "warning", LimitMetric::Concurrent) => format!(
                    "({g} >= {v}) or (sum by (tenant) (increase(tollgate_calls_total{{tenant={tq},outcome=\"warning\",rule={}}}[{}])) > 0)",
                    q(&l.rule),
                    opt.rate_window
                ),
                (Some(g), "warning", _) => format!("{g} >= {v}"),
                (Some(g), _, _) => format!("({g} >= {v}) or ({})", rejected(l)),
                (None, "critical", LimitMetric::Rate) => rejected(l),
                // a duration limit (the SBC ends the call at its level)
                (None, _, _) => {
                    skipped.push(format!(
                        "{t}: {what} {level} {v}: the SBC enforces it as the call's dialog timeout; the agent exports no call-duration metric"
                    ));
                    continue;
                }
            };
            let mut labels = base(&[(L_LIMIT, metric), (L_LEVEL, level), ("severity", level)]);
            if let Some(c) = &l.class {
                labels.insert(L_CLASS.to_string(), c.clone());
            }
            rules.push(Rule {
                alert: format!("Tollgate{}{}", camel(metric), camel(level)),
                expr,
                for_: None,
                labels,
                annotations: BTreeMap::from([(
                    "summary".to_string(),
                    format!(
                        "{t}: {what} at or above the {level} level {v}{} (rule {})",
                        if l.metric == LimitMetric::Rate {
                            " calls/min"
                        } else {
                            ""
                        },
                        l.rule
                    ),
                )]),
            });
        }
    }

    // first call to a destination country: the SBC counts every allowed
    // call per destination country (the fleet-wide country tree, `ZZ` for
    // numbers of no country); calls within the home country are not a
    // new destination
    let m = format!(
        "tollgate_calls_by_country_total{{tenant={tq},country!={}}}",
        q(&policy.home_country)
    );
    rules.push(Rule {
        alert: "TollgateNewDestination".into(),
        expr: format!(
            "(sum by (tenant, country) ({m}) > 0 unless on (tenant, country) sum by (tenant, country) (max_over_time({m}[{h}] offset {f})) > 0) and on (tenant) sum by (tenant) (present_over_time(tollgate_calls_total{{tenant={tq}}}[{h}] offset {l}))",
            h = opt.history,
            f = opt.fresh,
            l = opt.learning,
        ),
        for_: None,
        labels: base(&[(L_ANOMALY, "new-destination"), ("severity", "warning")]),
        annotations: BTreeMap::from([(
            "summary".to_string(),
            format!(
                "{t}: calls to {{{{ $labels.country }}}}, a destination country not called in the previous {}",
                opt.history
            ),
        )]),
    });

    // calls while every window of the tenant is closed
    if policy.windows.is_empty() {
        skipped.push(format!("{t}: unusual-hours: the policy declares no window"));
    } else {
        rules.push(Rule {
            alert: "TollgateUnusualHours".into(),
            expr: format!(
                "(sum by (tenant) (increase(tollgate_calls_total{{tenant={tq},outcome=\"allow\",rule!=\"dst:emergency\"}}[{}])) > 0) and on (tenant) (max by (tenant) (tollgate_window_open{{tenant={tq}}}) == 0)",
                opt.rate_window
            ),
            for_: None,
            labels: base(&[(L_ANOMALY, "unusual-hours"), ("severity", "warning")]),
            annotations: BTreeMap::from([(
                "summary".to_string(),
                format!(
                    "{t}: calls while all its windows ({}) are closed",
                    policy
                        .windows
                        .iter()
                        .map(|w| w.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )]),
        });
    }
    RuleGroup {
        name: format!("tollgate-{namespace}-{policy_name}"),
        rules,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_ir::{
        CryptoPolicy, DestinationRule, SourcePolicy, TimeWindow, Verdict, Weekday, WeeklySpan,
    };

    fn policy() -> CompiledPolicy {
        CompiledPolicy {
            tenant: "acme".into(),
            home_country: "US".into(),
            numbering_plan: String::new(),
            emergency_numbers: vec!["911".into()],
            destinations: vec![DestinationRule {
                prefix: "33".into(),
                action: Verdict::Allow,
                rule: "dst:country:FR".into(),
                window: None,
            }],
            classes: vec![],
            sources: SourcePolicy::default(),
            windows: vec![TimeWindow {
                name: "office".into(),
                zone: "America/New_York".into(),
                spans: vec![WeeklySpan {
                    days: vec![Weekday::Mon],
                    start_minute: 540,
                    end_minute: 1020,
                }],
                rule: "window:office".into(),
            }],
            limits: vec![
                Limit {
                    metric: LimitMetric::Concurrent,
                    class: None,
                    warning: Some(40),
                    critical: Some(60),
                    rule: "limit:concurrent".into(),
                },
                Limit {
                    metric: LimitMetric::Concurrent,
                    class: Some("international".into()),
                    warning: Some(5),
                    critical: Some(10),
                    rule: "limit:concurrent:international".into(),
                },
                Limit {
                    metric: LimitMetric::Rate,
                    class: None,
                    warning: Some(20),
                    critical: None,
                    rule: "limit:rate".into(),
                },
                Limit {
                    metric: LimitMetric::Rate,
                    class: Some("premium-rate".into()),
                    warning: Some(2),
                    critical: Some(4),
                    rule: "limit:rate:premium-rate".into(),
                },
                Limit {
                    metric: LimitMetric::Duration,
                    class: None,
                    warning: None,
                    critical: Some(3600),
                    rule: "limit:duration".into(),
                },
            ],
            responses: vec![],
            crypto: CryptoPolicy::default(),
            rules: vec![],
        }
    }

    fn find<'a>(g: &'a RuleGroup, alert: &str, class: Option<&str>) -> &'a Rule {
        g.rules
            .iter()
            .find(|r| r.alert == alert && r.labels.get(L_CLASS).map(String::as_str) == class)
            .expect("the rule is generated")
    }

    #[test]
    fn limits_become_rules() {
        let g = rules_for(&policy(), "tenants", "acme");
        assert_eq!(g.name, "tollgate-tenants-acme");
        let r = find(&g, "TollgateConcurrentWarning", None);
        assert_eq!(
            r.expr,
            "(sum by (tenant) (tollgate_concurrent_calls{tenant=\"acme\"}) >= 40) or (sum by (tenant) (increase(tollgate_calls_total{tenant=\"acme\",outcome=\"warning\",rule=\"limit:concurrent\"}[1m])) > 0)"
        );
        let want: BTreeMap<String, String> = [
            ("tollgate_tenant", "acme"),
            ("tollgate_policy", "acme"),
            ("namespace", "tenants"),
            ("tollgate_limit", "concurrent"),
            ("tollgate_level", "warning"),
            ("severity", "warning"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(r.labels, want);
        let r = find(&g, "TollgateConcurrentCritical", Some("international"));
        assert_eq!(
            r.expr,
            "(sum by (tenant) (tollgate_concurrent_calls_by_class{tenant=\"acme\",class=\"international\"}) >= 10) or (sum by (tenant) (increase(tollgate_calls_total{tenant=\"acme\",outcome=\"limit\",rule=\"limit:concurrent:international\"}[1m])) > 0)"
        );
        assert_eq!(r.labels["tollgate_level"], "critical");
        assert_eq!(r.labels["severity"], "critical");
        let r = find(&g, "TollgateRateWarning", None);
        assert_eq!(
            r.expr,
            "sum by (tenant) (increase(tollgate_calls_total{tenant=\"acme\",outcome=~\"allow|limit\",rule!=\"dst:emergency\"}[1m])) >= 20"
        );
        // per-class rate with a warning level: the calls the limit saw
        let seen = "sum by (tenant) (increase(tollgate_rate_limit_calls_total{tenant=\"acme\",rule=\"limit:rate:premium-rate\"}[1m]))";
        let r = find(&g, "TollgateRateWarning", Some("premium-rate"));
        assert_eq!(r.expr, format!("{seen} >= 2"));
        let r = find(&g, "TollgateRateCritical", Some("premium-rate"));
        assert_eq!(
            r.expr,
            format!(
                "({seen} >= 4) or (sum by (tenant) (increase(tollgate_calls_total{{tenant=\"acme\",outcome=\"limit\",rule=\"limit:rate:premium-rate\"}}[1m])) > 0)"
            )
        );
        // without a warning level the SBC does not count: only the rejections
        let mut p = policy();
        for l in p
            .limits
            .iter_mut()
            .filter(|l| l.rule == "limit:rate:premium-rate")
        {
            l.warning = None;
        }
        let g2 = rules_for(&p, "tenants", "acme");
        let r = find(&g2, "TollgateRateCritical", Some("premium-rate"));
        assert_eq!(
            r.expr,
            "sum by (tenant) (increase(tollgate_calls_total{tenant=\"acme\",outcome=\"limit\",rule=\"limit:rate:premium-rate\"}[1m])) > 0"
        );
        assert!(
            !g2.rules
                .iter()
                .any(|r| r.alert == "TollgateRateWarning" && r.labels.contains_key(L_CLASS))
        );
        assert!(
            !g.rules
                .iter()
                .any(|r| r.alert.starts_with("TollgateDuration"))
        );
        assert_eq!(g.skipped.len(), 1, "{:?}", g.skipped);
        // every limit rule maps back to a Respond action with its trigger
        for r in g.rules.iter().filter(|r| r.labels.contains_key(L_LIMIT)) {
            let a = super::super::Alert {
                status: "firing".into(),
                labels: r.labels.clone(),
                annotations: BTreeMap::new(),
                starts_at: String::new(),
                ends_at: String::new(),
                generator_url: String::new(),
                fingerprint: "x".into(),
            };
            assert!(
                matches!(super::super::map_alert(&a), super::super::Mapped::Action(_)),
                "{r:?}"
            );
        }
    }

    #[test]
    fn anomalies() {
        let g = rules_for(&policy(), "tenants", "acme");
        let r = find(&g, "TollgateNewDestination", None);
        assert_eq!(
            r.expr,
            "(sum by (tenant, country) (tollgate_calls_by_country_total{tenant=\"acme\",country!=\"US\"}) > 0 unless on (tenant, country) sum by (tenant, country) (max_over_time(tollgate_calls_by_country_total{tenant=\"acme\",country!=\"US\"}[30d] offset 10m)) > 0) and on (tenant) sum by (tenant) (present_over_time(tollgate_calls_total{tenant=\"acme\"}[30d] offset 1d))"
        );
        assert_eq!(r.labels["tollgate_anomaly"], "new-destination");
        assert_eq!(
            r.annotations["summary"],
            "acme: calls to {{ $labels.country }}, a destination country not called in the previous 30d"
        );
        let r = find(&g, "TollgateUnusualHours", None);
        assert_eq!(
            r.expr,
            "(sum by (tenant) (increase(tollgate_calls_total{tenant=\"acme\",outcome=\"allow\",rule!=\"dst:emergency\"}[1m])) > 0) and on (tenant) (max by (tenant) (tollgate_window_open{tenant=\"acme\"}) == 0)"
        );
        // every tenant gets the new-destination rule, whatever its
        // destination rules name (here: the whole international scope)
        let mut p = policy();
        p.windows.clear();
        p.home_country = "GB".into();
        p.destinations = vec![DestinationRule {
            prefix: String::new(),
            action: Verdict::Allow,
            rule: "dst:international".into(),
            window: None,
        }];
        let g = rules_for(&p, "tenants", "acme");
        let anomalies: Vec<&str> = g
            .rules
            .iter()
            .filter_map(|r| r.labels.get(L_ANOMALY).map(String::as_str))
            .collect();
        assert_eq!(anomalies, ["new-destination"]);
        let r = find(&g, "TollgateNewDestination", None);
        assert!(
            r.expr
                .contains("tollgate_calls_by_country_total{tenant=\"acme\",country!=\"GB\"}"),
            "{}",
            r.expr
        );
        // the duration limit (no metric), and the unusual hours
        assert_eq!(g.skipped.len(), 2, "{:?}", g.skipped);
        assert!(!g.skipped.iter().any(|s| s.contains("new-destination")));
    }

    #[test]
    fn renders_as_yaml() {
        let g = rules_for(&policy(), "tenants", "acme");
        let file = RuleFile {
            groups: vec![g.clone()],
        };
        let y = tollgate_ir::yaml::to_yaml(&file).unwrap();
        assert!(y.starts_with("groups:\n- name: tollgate-tenants-acme\n  rules:\n"));
        assert!(!y.contains("skipped"));
        let back: RuleFile = tollgate_ir::yaml::from_yaml(&y).unwrap();
        assert_eq!(back.groups[0].rules, g.rules);
        let pr = prometheus_rule(&g, "tenants", "acme");
        let y = tollgate_ir::yaml::to_yaml(&pr).unwrap();
        assert!(y.starts_with("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"));
        assert!(y.contains("name: tollgate-acme\n"));
    }

    #[test]
    fn quoting() {
        assert_eq!(q(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(camel("new-destination"), "NewDestination");
    }
}
