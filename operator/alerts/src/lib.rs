//! The anomaly loop's receiving end: Alertmanager's webhook (payload
//! version 4) mapped to operator actions, and the Prometheus rules that
//! close the loop from a policy's thresholds ([`rules`]), and the rules of
//! the declared responses ([`responses`]: never loosening, folding,
//! acknowledgements, expiry). See docs/alerts.md.
//!
//! The pieces are independent of the controller: the operator's webhook
//! server (`tollgate_operator::webhook`) takes an [`AlertSink`] (the
//! operator's implementation applies the actions) and calls it once for every
//! alert it has not acted on before. Everything here is pure and unit-tested.
//!
//! Resolved alerts never loosen anything: they produce no action (only a
//! person loosens protection, with kubectl).

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod responses;
pub mod rules;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};
use tollgate_ir::{
    AlertLevel, CompiledPolicy, LimitMetric, Response as PolicyResponse, ResponseTrigger,
};

/// Label: the tenant (`tenant` is accepted too).
pub const L_TENANT: &str = "tollgate_tenant";
/// Label: the TollPolicy's name.
pub const L_POLICY: &str = "tollgate_policy";
/// Label: the TollPolicy's namespace.
pub const L_NAMESPACE: &str = "namespace";
/// Label: the policy revision the alert is about (rollback alerts).
pub const L_REVISION: &str = "tollgate_revision";
/// Label: the destination class of a limit.
pub const L_CLASS: &str = "tollgate_class";
/// Label: the anomaly kind (`new-destination`, `unusual-hours`, `traffic`).
pub const L_ANOMALY: &str = "tollgate_anomaly";
/// Label: the limit metric (`concurrent`, `rate`, `duration`).
pub const L_LIMIT: &str = "tollgate_limit";
/// Label: the level (`warning`, `critical`); `severity` is the fallback.
pub const L_LEVEL: &str = "tollgate_level";

/// The anomaly kinds an alert may carry.
pub const ANOMALIES: [&str; 3] = ["new-destination", "unusual-hours", "traffic"];

/// Alertmanager's webhook payload, version 4.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// Always `"4"` for this format; anything else is refused.
    pub version: String,
    /// Alertmanager's key of the group.
    #[serde(default)]
    pub group_key: String,
    /// Alerts left out because of the receiver's `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// `firing` or `resolved`.
    pub status: String,
    /// The receiver's name in the Alertmanager configuration.
    #[serde(default)]
    pub receiver: String,
    /// Labels the group is formed by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Labels all alerts share.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations all alerts share.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Alertmanager's own address.
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// One alert of a [`Payload`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// The alert's labels (the rule's labels plus the series').
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The alert's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 instant the alert started firing.
    #[serde(default)]
    pub starts_at: String,
    /// RFC 3339 instant it ended (`0001-01-01T00:00:00Z` while firing).
    #[serde(default)]
    pub ends_at: String,
    /// Link to the expression in Prometheus.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's fingerprint of the label set.
    #[serde(default)]
    pub fingerprint: String,
}

/// Why a payload is refused as a whole (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("unsupported payload version {0:?} (only \"4\")")]
    Version(String),
    #[error("invalid status {0:?} (firing or resolved)")]
    Status(String),
}

/// Parses and validates a webhook body.
pub fn parse_payload(body: &[u8]) -> Result<Payload, PayloadError> {
    // The version is checked first, so an old or future format is named as
    // such rather than as a shape error.
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    match v.get("version") {
        Some(serde_json::Value::String(s)) if s == "4" => {}
        Some(serde_json::Value::String(s)) => return Err(PayloadError::Version(s.clone())),
        Some(other) => return Err(PayloadError::Version(other.to_string())),
        None => return Err(PayloadError::Malformed("missing `version`".into())),
    }
    let p: Payload =
        serde_json::from_value(v).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    for s in std::iter::once(&p.status).chain(p.alerts.iter().map(|a| &a.status)) {
        if s != "firing" && s != "resolved" {
            return Err(PayloadError::Status(s.clone()));
        }
    }
    Ok(p)
}

/// Which alert caused an action (for status and Events).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRef {
    /// The `alertname` label.
    pub name: String,
    /// Alertmanager's fingerprint (or a digest of the labels when absent).
    pub fingerprint: String,
    /// When the alert started firing.
    pub starts_at: String,
    /// The `summary` annotation, cut to 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// What an alert asks the operator to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum AlertAction {
    /// The alert names a revision: if it is being rolled out (or was, within
    /// the anomaly window), abort and roll back to the last good revision.
    /// The operator decides whether that is the case.
    #[serde(rename_all = "camelCase")]
    Rollback {
        namespace: String,
        policy: String,
        revision: String,
        alert: AlertRef,
    },
    /// A fraud alert: apply the policy's declared responses matching
    /// `trigger` ([`responses_for`]).
    #[serde(rename_all = "camelCase")]
    Respond {
        namespace: String,
        policy: String,
        tenant: String,
        trigger: ResponseTrigger,
        alert: AlertRef,
    },
}

impl AlertAction {
    /// `rollback` or `respond`.
    pub fn kind(&self) -> &'static str {
        match self {
            AlertAction::Rollback { .. } => "rollback",
            AlertAction::Respond { .. } => "respond",
        }
    }
}

/// What one alert maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// An action to take.
    Action(AlertAction),
    /// A resolved alert: nothing is loosened, nothing to do.
    Resolved,
    /// Not actionable (a needed label is missing or invalid); the reason.
    Ignored(String),
}

fn dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns_subdomain(s: &str) -> bool {
    (1..=253).contains(&s.len()) && s.split('.').all(dns_label)
}

/// A stable identity for an alert without a fingerprint: sha256 of its
/// sorted labels.
pub fn fingerprint_of(alert: &Alert) -> String {
    if !alert.fingerprint.is_empty() {
        return alert.fingerprint.clone();
    }
    let mut h = Sha256::new();
    for (k, v) in &alert.labels {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Maps one alert to an action. Pure: see docs/alerts.md for the table.
pub fn map_alert(alert: &Alert) -> Mapped {
    if alert.status != "firing" {
        return Mapped::Resolved;
    }
    let l = |k: &str| {
        alert
            .labels
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let Some(namespace) = l(L_NAMESPACE) else {
        return Mapped::Ignored(format!("no `{L_NAMESPACE}` label"));
    };
    if !dns_label(namespace) {
        return Mapped::Ignored(format!("`{L_NAMESPACE}` is not a namespace name"));
    }
    let Some(policy) = l(L_POLICY) else {
        return Mapped::Ignored(format!("no `{L_POLICY}` label"));
    };
    if !dns_subdomain(policy) {
        return Mapped::Ignored(format!("`{L_POLICY}` is not an object name"));
    }
    let alert_ref = AlertRef {
        name: l("alertname").unwrap_or("").chars().take(253).collect(),
        fingerprint: fingerprint_of(alert),
        starts_at: alert.starts_at.clone(),
        summary: alert
            .annotations
            .get("summary")
            .map(|s| s.chars().take(256).collect()),
    };
    if let Some(revision) = l(L_REVISION) {
        if !dns_subdomain(revision) {
            return Mapped::Ignored(format!("`{L_REVISION}` is not an object name"));
        }
        return Mapped::Action(AlertAction::Rollback {
            namespace: namespace.into(),
            policy: policy.into(),
            revision: revision.into(),
            alert: alert_ref,
        });
    }
    let Some(tenant) = l(L_TENANT).or_else(|| l("tenant")) else {
        return Mapped::Ignored(format!(
            "no `{L_REVISION}` and no `{L_TENANT}` (or `tenant`) label"
        ));
    };
    if !dns_label(tenant) {
        return Mapped::Ignored("the tenant label is not a tenant name".into());
    }
    let trigger = if let Some(kind) = l(L_ANOMALY) {
        if !ANOMALIES.contains(&kind) {
            return Mapped::Ignored(format!(
                "`{L_ANOMALY}` must be one of {}",
                ANOMALIES.join(", ")
            ));
        }
        ResponseTrigger::Anomaly {
            anomaly: kind.into(),
        }
    } else if let Some(metric) = l(L_LIMIT) {
        let metric = match metric {
            "concurrent" => LimitMetric::Concurrent,
            "rate" => LimitMetric::Rate,
            "duration" => LimitMetric::Duration,
            _ => {
                return Mapped::Ignored(format!(
                    "`{L_LIMIT}` must be concurrent, rate or duration"
                ));
            }
        };
        let level = match l(L_LEVEL).or_else(|| l("severity")) {
            Some("warning") => AlertLevel::Warning,
            Some("critical") => AlertLevel::Critical,
            _ => {
                return Mapped::Ignored(format!(
                    "a limit alert needs `{L_LEVEL}` (or `severity`) warning or critical"
                ));
            }
        };
        let class = match l(L_CLASS) {
            None => None,
            Some(c) if dns_label(c) => Some(c.to_string()),
            Some(_) => return Mapped::Ignored(format!("`{L_CLASS}` is not a class name")),
        };
        ResponseTrigger::Breach {
            metric,
            class,
            level,
        }
    } else {
        return Mapped::Ignored(format!(
            "neither `{L_ANOMALY}` nor `{L_LIMIT}`: not a Tollgate alert"
        ));
    };
    Mapped::Action(AlertAction::Respond {
        namespace: namespace.into(),
        policy: policy.into(),
        tenant: tenant.into(),
        trigger,
        alert: alert_ref,
    })
}

/// The policy's declared responses that `trigger` sets off, in declaration
/// order. A breach matches a response on the same metric, class (none = the
/// tenant-wide limit) and level exactly; an anomaly matches a response on
/// the same kind or on `any`. Breaches never match anomaly responses.
pub fn responses_for<'a>(
    policy: &'a CompiledPolicy,
    trigger: &ResponseTrigger,
) -> Vec<&'a PolicyResponse> {
    policy
        .responses
        .iter()
        .filter(|r| match (&r.trigger, trigger) {
            (
                ResponseTrigger::Breach {
                    metric: m1,
                    class: c1,
                    level: l1,
                },
                ResponseTrigger::Breach {
                    metric: m2,
                    class: c2,
                    level: l2,
                },
            ) => m1 == m2 && c1 == c2 && l1 == l2,
            (
                ResponseTrigger::Anomaly { anomaly: a1 },
                ResponseTrigger::Anomaly { anomaly: a2 },
            ) => a1 == "any" || a1 == a2,
            _ => false,
        })
        .collect()
}

/// Key of an alert already acted on: (fingerprint, startsAt, status).
pub type SeenKey = (String, String, String);

/// A bounded, time-bounded set of alerts already acted on (oldest evicted
/// first). Alertmanager re-sends a firing alert every `repeat_interval`
/// and on every group change with the same fingerprint and `startsAt`;
/// those yield no new action. An alert that fires again after resolving
/// has a new `startsAt` and acts again.
///
/// In memory only, so an optimisation: after a restart or on another
/// replica the set is empty, and a sink must decide from durable state
/// alone (the operator's sink keeps the alert instances in the
/// TollPolicy's status: [`responses::acknowledged`]).
#[derive(Debug)]
pub struct Seen {
    cap: usize,
    ttl: Duration,
    map: HashMap<SeenKey, Instant>,
    order: VecDeque<(SeenKey, Instant)>,
}

impl Seen {
    /// At most `cap` keys, each kept at most `ttl`.
    pub fn new(cap: usize, ttl: Duration) -> Seen {
        Seen {
            cap: cap.max(1),
            ttl,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((k, t)) = self.order.front() {
            let stale = self.map.get(k) != Some(t);
            let old = now.saturating_duration_since(*t) > self.ttl;
            if stale || old || self.map.len() > self.cap {
                if !stale {
                    self.map.remove(k);
                }
                self.order.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records `key`; `true` if it was not there (the caller acts on it).
    pub fn claim(&mut self, key: SeenKey, now: Instant) -> bool {
        self.expire(now);
        if self.map.contains_key(&key) {
            return false;
        }
        self.map.insert(key.clone(), now);
        self.order.push_back((key, now));
        self.expire(now);
        true
    }

    /// Forgets `key` (the action failed: a retry must act again).
    pub fn release(&mut self, key: &SeenKey) {
        self.map.remove(key);
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No keys held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What the operator implements: apply one action. An error makes the
/// webhook answer 500 so Alertmanager retries; the action is then not
/// remembered as done.
pub trait AlertSink: Send + Sync + 'static {
    /// Why an action failed (the sink reports it; the webhook's answer
    /// carries no message).
    type Error: std::error::Error + Send + 'static;

    /// Whether it acts now; `false` (e.g. not the leader replica) makes the
    /// webhook answer 503 to authenticated requests, so Alertmanager
    /// retries.
    fn ready(&self) -> bool {
        true
    }

    /// Applies `action`.
    fn act(&self, action: AlertAction) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// [`AlertSink::act`] that may find nothing to act on: `Ok(Some(reason))`
    /// lists the alert under `ignored` in the answer (200, not retried).
    /// The default acts and never ignores.
    fn act_checked(
        &self,
        action: AlertAction,
    ) -> impl Future<Output = Result<Option<String>, Self::Error>> + Send {
        let fut = self.act(action);
        async move { fut.await.map(|()| None) }
    }
}

#[cfg(test)]
mod tests;
