//! Alertmanager webhook payloads for tests: this crate's own and the
//! operator's webhook tests (feature `fixtures`, a dev-dependency there).

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Alert labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// One alert (payload version 4) with these labels.
pub fn alert(status: &str, fp: &str, pairs: &[(&str, &str)]) -> Value {
    json!({
        "status": status,
        "labels": labels(pairs),
        "annotations": {"summary": "acme: concurrent at or above 2"},
        "startsAt": "2026-11-25T10:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": fp,
    })
}

/// A webhook payload (version 4) carrying `alerts`.
pub fn payload(alerts: Vec<Value>) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"x\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "tollgate",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": alerts,
    })
}

/// The labels of a concurrent-calls critical breach of tenant acme.
pub const BREACH: &[(&str, &str)] = &[
    ("alertname", "TollgateConcurrentCritical"),
    ("tollgate_tenant", "acme"),
    ("tollgate_policy", "acme"),
    ("namespace", "tenants"),
    ("tollgate_limit", "concurrent"),
    ("tollgate_class", "international"),
    ("tollgate_level", "critical"),
    ("severity", "critical"),
];
