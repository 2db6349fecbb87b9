//! Fleet resolution (pure): an SbcFleet's static endpoints or its selected
//! pods → the targets a rollout acts on, with the agent URL of each.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use tollgate_crds::SbcFleetSpec;

/// A target of a fleet and where its agent listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedTarget {
    /// `pod/<name>` or `<host>:<port>` (the rollout's target id).
    pub id: String,
    /// Agent base URL, `http://host:port` (no trailing slash).
    pub url: String,
    /// Pod Ready=True with an IP; static endpoints: always (whether the
    /// agent answers shows in the apply's outcome).
    pub ready: bool,
    /// The pod is being deleted.
    pub terminating: bool,
}

/// `host:port`, IPv6 literals bracketed.
fn host_port(host: &str, port: u16) -> String {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.contains(':') {
        format!("[{h}]:{port}")
    } else {
        format!("{h}:{port}")
    }
}

/// The targets of a static-endpoint fleet (empty for a selector fleet).
pub fn static_targets(spec: &SbcFleetSpec) -> Vec<ResolvedTarget> {
    let mut out: Vec<ResolvedTarget> = spec
        .endpoints
        .iter()
        .flatten()
        .map(|e| {
            let hp = host_port(&e.host, e.port.unwrap_or(spec.agent_port));
            ResolvedTarget {
                id: hp.clone(),
                url: format!("http://{hp}"),
                ready: true,
                terminating: false,
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out.dedup_by(|a, b| a.id == b.id);
    out
}

/// Whether `labels` match `selector` (matchLabels AND every
/// matchExpression). An expression with an unknown operator, or In/NotIn
/// without values, matches nothing (the API server would have refused it
/// on a built-in kind; here it fails closed). An empty selector matches
/// everything, as in Kubernetes.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let have = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or(&[]);
        let ok = match e.operator.as_str() {
            "In" => !values.is_empty() && have.is_some_and(|h| values.contains(h)),
            "NotIn" => !values.is_empty() && have.is_none_or(|h| !values.contains(h)),
            "Exists" => values.is_empty() && have.is_some(),
            "DoesNotExist" => values.is_empty() && have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether the fleet selects this pod (same namespace is the caller's check).
pub fn selects(spec: &SbcFleetSpec, pod: &Pod) -> bool {
    let Some(sel) = &spec.selector else {
        return false;
    };
    let empty = BTreeMap::new();
    selector_matches(sel, pod.metadata.labels.as_ref().unwrap_or(&empty))
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The targets of a selector fleet among `pods` (of the fleet's namespace):
/// the selected pods with an IP, id `pod/<name>`.
pub fn pod_targets<'a>(
    spec: &SbcFleetSpec,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<ResolvedTarget> {
    let mut out: Vec<ResolvedTarget> = pods
        .into_iter()
        .filter(|p| selects(spec, p))
        .filter_map(|p| {
            let name = p.metadata.name.as_deref()?;
            let ip = p.status.as_ref()?.pod_ip.as_deref()?;
            if ip.is_empty() {
                return None;
            }
            Some(ResolvedTarget {
                id: format!("pod/{name}"),
                url: format!("http://{}", host_port(ip, spec.agent_port)),
                ready: pod_ready(p),
                terminating: p.metadata.deletion_timestamp.is_some(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// A pod as the watch keeps it: what [`fleet::pod_targets`] reads (name,
/// namespace, labels, deletion, IP, Ready condition) and nothing else.
pub fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.owner_references = None;
    pod.spec = None;
    if let Some(st) = pod.status.as_mut() {
        *st = k8s_openapi::api::core::v1::PodStatus {
            pod_ip: st.pod_ip.take(),
            pod_ips: st.pod_ips.take(),
            conditions: st.conditions.take(),
            phase: st.phase.take(),
            ..Default::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;
    use tollgate_crds::sbc_fleet::{SbcBackend, StaticEndpoint};

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| (*v).to_owned()).collect())
            },
        }
    }

    fn spec(
        selector: Option<LabelSelector>,
        endpoints: Option<Vec<StaticEndpoint>>,
    ) -> SbcFleetSpec {
        SbcFleetSpec {
            selector,
            endpoints,
            backend: SbcBackend::Kamailio,
            agent_port: 9443,
            agent_token_secret: None,
        }
    }

    #[test]
    fn selector_table() {
        let pod = labels(&[("app", "sbc"), ("tier", "edge")]);
        let ml = |kv: &[(&str, &str)]| LabelSelector {
            match_labels: Some(labels(kv)),
            match_expressions: None,
        };
        let me = |es: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: None,
            match_expressions: Some(es),
        };
        let cases: Vec<(&str, LabelSelector, bool)> = vec![
            ("empty selects all", LabelSelector::default(), true),
            ("matchLabels hit", ml(&[("app", "sbc")]), true),
            (
                "matchLabels both",
                ml(&[("app", "sbc"), ("tier", "edge")]),
                true,
            ),
            ("matchLabels value differs", ml(&[("app", "web")]), false),
            ("matchLabels key absent", ml(&[("zone", "a")]), false),
            (
                "In hit",
                me(vec![expr("tier", "In", &["core", "edge"])]),
                true,
            ),
            ("In miss", me(vec![expr("tier", "In", &["core"])]), false),
            ("In absent key", me(vec![expr("zone", "In", &["a"])]), false),
            ("In no values", me(vec![expr("tier", "In", &[])]), false),
            (
                "NotIn hit",
                me(vec![expr("tier", "NotIn", &["core"])]),
                true,
            ),
            (
                "NotIn miss",
                me(vec![expr("tier", "NotIn", &["edge"])]),
                false,
            ),
            (
                "NotIn absent key",
                me(vec![expr("zone", "NotIn", &["a"])]),
                true,
            ),
            ("Exists", me(vec![expr("app", "Exists", &[])]), true),
            (
                "Exists absent",
                me(vec![expr("zone", "Exists", &[])]),
                false,
            ),
            (
                "Exists with values",
                me(vec![expr("app", "Exists", &["x"])]),
                false,
            ),
            (
                "DoesNotExist",
                me(vec![expr("zone", "DoesNotExist", &[])]),
                true,
            ),
            (
                "DoesNotExist present",
                me(vec![expr("app", "DoesNotExist", &[])]),
                false,
            ),
            (
                "unknown operator",
                me(vec![expr("app", "Gt", &["1"])]),
                false,
            ),
            (
                "labels and expressions AND",
                LabelSelector {
                    match_labels: Some(labels(&[("app", "sbc")])),
                    match_expressions: Some(vec![expr("tier", "NotIn", &["edge"])]),
                },
                false,
            ),
        ];
        for (name, sel, want) in cases {
            assert_eq!(selector_matches(&sel, &pod), want, "{name}");
        }
    }

    #[test]
    fn static_endpoints() {
        let s = spec(
            None,
            Some(vec![
                StaticEndpoint {
                    host: "sbc1.example".into(),
                    port: None,
                },
                StaticEndpoint {
                    host: "2001:db8::1".into(),
                    port: Some(9000),
                },
                StaticEndpoint {
                    host: "[2001:db8::2]".into(),
                    port: None,
                },
                StaticEndpoint {
                    host: "10.0.0.1".into(),
                    port: Some(80),
                },
            ]),
        );
        let t = static_targets(&s);
        let ids: Vec<&str> = t.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "10.0.0.1:80",
                "[2001:db8::1]:9000",
                "[2001:db8::2]:9443",
                "sbc1.example:9443"
            ]
        );
        assert_eq!(t[1].url, "http://[2001:db8::1]:9000");
        assert!(t.iter().all(|t| t.ready && !t.terminating));
    }

    fn pod(name: &str, l: &[(&str, &str)], ip: Option<&str>, ready: bool, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels(l)),
                deletion_timestamp: deleting.then_some(Time(Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                pod_ip: ip.map(Into::into),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn pods() {
        let s = spec(
            Some(LabelSelector {
                match_labels: Some(labels(&[("app", "sbc")])),
                match_expressions: None,
            }),
            None,
        );
        let pods = vec![
            pod("b", &[("app", "sbc")], Some("10.1.0.2"), true, false),
            pod("a", &[("app", "sbc")], Some("fd00::5"), false, false),
            pod("c", &[("app", "sbc")], None, true, false),
            pod("d", &[("app", "web")], Some("10.1.0.4"), true, false),
            pod("e", &[("app", "sbc")], Some("10.1.0.5"), true, true),
        ];
        let t = pod_targets(&s, &pods);
        assert_eq!(
            t,
            vec![
                ResolvedTarget {
                    id: "pod/a".into(),
                    url: "http://[fd00::5]:9443".into(),
                    ready: false,
                    terminating: false
                },
                ResolvedTarget {
                    id: "pod/b".into(),
                    url: "http://10.1.0.2:9443".into(),
                    ready: true,
                    terminating: false
                },
                ResolvedTarget {
                    id: "pod/e".into(),
                    url: "http://10.1.0.5:9443".into(),
                    ready: true,
                    terminating: true
                },
            ]
        );
        assert!(static_targets(&s).is_empty());
        // the watch's slimmed pods resolve to the same targets
        let mut slim = pods.clone();
        slim.iter_mut().for_each(slim_pod);
        assert_eq!(pod_targets(&s, &slim), t);
    }
}
