//! Publishing Kubernetes Events (events.k8s.io) about a TollPolicy.

use kube::Resource;
use kube::ResourceExt;
use kube::runtime::events::{Event as KEvent, EventType};
use tollgate_crds::TollPolicy;
use tollgate_rollout::EventKind;

use super::agents::{MAX_MESSAGE, truncate};
use super::context::Context;

/// Publishes an Event about `policy`; a failure is logged, never an error
/// (Events are a courtesy, the status is the record).
pub async fn publish(
    ctx: &Context,
    policy: &TollPolicy,
    kind: EventKind,
    reason: &str,
    note: String,
) {
    // kube's Recorder folds events with the same type, reason and action
    // into one series (the later notes are lost): the action carries the
    // note (events.k8s.io allows 128 characters), so only repeats of the
    // same message fold.
    let ev = KEvent {
        type_: match kind {
            EventKind::Normal => EventType::Normal,
            EventKind::Warning => EventType::Warning,
        },
        reason: reason.to_owned(),
        action: truncate(&note, 128),
        note: Some(truncate(&note, MAX_MESSAGE)),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &policy.object_ref(&())).await {
        tracing::warn!(policy = %policy.name_any(), error = %e, "publishing an event failed");
    }
}
