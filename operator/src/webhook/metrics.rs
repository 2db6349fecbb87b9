//! The alert receiver's counters (docs/alerts.md, "Receiver metrics"),
//! registered in the process's one registry next to the operator's.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tollgate_plumbing::metrics::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The receiver's counters. Each field is one series (present, at 0, from
/// the first scrape on); [`ReceiverMetrics::register`] exposes them.
#[derive(Debug)]
pub struct ReceiverMetrics {
    received: Family<StatusLabel, Counter>,
    actions: Family<KindLabel, Counter>,
    skipped: Family<ReasonLabel, Counter>,
    rejected: Family<ReasonLabel, Counter>,
    /// Firing alerts received.
    pub firing: Counter,
    /// Resolved alerts received.
    pub resolved: Counter,
    /// Rollbacks handed to the sink.
    pub rollback: Counter,
    /// Declared responses handed to the sink.
    pub respond: Counter,
    /// Firing alerts already acted on.
    pub duplicates: Counter,
    /// Firing alerts with nothing to act on.
    pub ignored: Counter,
    /// Actions the sink failed to apply.
    pub sink_failures: Counter,
    /// Requests refused: no or a wrong bearer token.
    pub unauthorized: Counter,
    /// Requests refused: body over the limit.
    pub too_large: Counter,
    /// Requests refused: malformed.
    pub bad_request: Counter,
    /// Requests refused: a payload version other than 4.
    pub bad_version: Counter,
    /// Requests refused: a method other than POST.
    pub method: Counter,
    /// Requests refused: a path other than /alerts.
    pub not_found: Counter,
    /// Requests refused: this replica is not the leader.
    pub not_leader: Counter,
}

impl Default for ReceiverMetrics {
    fn default() -> ReceiverMetrics {
        let received = Family::<StatusLabel, Counter>::default();
        let actions = Family::<KindLabel, Counter>::default();
        let skipped = Family::<ReasonLabel, Counter>::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        let status = |status| received.get_or_create_owned(&StatusLabel { status });
        let kind = |kind| actions.get_or_create_owned(&KindLabel { kind });
        let skip = |reason| skipped.get_or_create_owned(&ReasonLabel { reason });
        let reject = |reason| rejected.get_or_create_owned(&ReasonLabel { reason });
        ReceiverMetrics {
            firing: status("firing"),
            resolved: status("resolved"),
            rollback: kind("rollback"),
            respond: kind("respond"),
            duplicates: skip("duplicate"),
            ignored: skip("ignored"),
            sink_failures: skip("sink_failed"),
            unauthorized: reject("unauthorized"),
            too_large: reject("too_large"),
            bad_request: reject("bad_request"),
            bad_version: reject("bad_version"),
            method: reject("method"),
            not_found: reject("not_found"),
            not_leader: reject("not_leader"),
            received,
            actions,
            skipped,
            rejected,
        }
    }
}

impl ReceiverMetrics {
    /// Registers the counters in `registry` (the process's one registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tollgate_alerts_received",
            "Alerts received on /alerts, by status",
            self.received.clone(),
        );
        registry.register(
            "tollgate_alert_actions",
            "New actions handed to the operator, by kind",
            self.actions.clone(),
        );
        registry.register(
            "tollgate_alerts_skipped",
            "Firing alerts without a new action, by reason",
            self.skipped.clone(),
        );
        registry.register(
            "tollgate_alert_requests_rejected",
            "Webhook requests refused, by reason",
            self.rejected.clone(),
        );
    }

    /// The exposition text of these counters alone (a registry of their
    /// own; the operator serves the process's registry instead).
    pub fn text(&self) -> String {
        let mut r = Registry::default();
        self.register(&mut r);
        tollgate_plumbing::metrics::encode(&r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::metrics::tests::sorted_series;

    /// The exposition, pinned: names, types, HELP texts and labels as
    /// docs/alerts.md documents them and scripts/test-anomaly.sh reads them.
    #[test]
    fn exposition_is_pinned() {
        let m = ReceiverMetrics::default();
        m.firing.inc();
        m.respond.inc();
        m.not_leader.inc_by(2);
        let expected = r#"# HELP tollgate_alerts_received_total Alerts received on /alerts, by status.
# TYPE tollgate_alerts_received_total counter
tollgate_alerts_received_total{status="firing"} 1
tollgate_alerts_received_total{status="resolved"} 0
# HELP tollgate_alert_actions_total New actions handed to the operator, by kind.
# TYPE tollgate_alert_actions_total counter
tollgate_alert_actions_total{kind="respond"} 1
tollgate_alert_actions_total{kind="rollback"} 0
# HELP tollgate_alerts_skipped_total Firing alerts without a new action, by reason.
# TYPE tollgate_alerts_skipped_total counter
tollgate_alerts_skipped_total{reason="duplicate"} 0
tollgate_alerts_skipped_total{reason="ignored"} 0
tollgate_alerts_skipped_total{reason="sink_failed"} 0
# HELP tollgate_alert_requests_rejected_total Webhook requests refused, by reason.
# TYPE tollgate_alert_requests_rejected_total counter
tollgate_alert_requests_rejected_total{reason="bad_request"} 0
tollgate_alert_requests_rejected_total{reason="bad_version"} 0
tollgate_alert_requests_rejected_total{reason="method"} 0
tollgate_alert_requests_rejected_total{reason="not_found"} 0
tollgate_alert_requests_rejected_total{reason="not_leader"} 2
tollgate_alert_requests_rejected_total{reason="too_large"} 0
tollgate_alert_requests_rejected_total{reason="unauthorized"} 0
"#;
        assert_eq!(sorted_series(&m.text()), expected);
    }
}
