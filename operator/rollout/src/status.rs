//! Writing a [`Decision`] into a `TollPolicyStatus`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tollgate_crds::conditions::{new_condition, set_condition};
use tollgate_crds::toll_policy::{TargetFailure, TollPolicyStatus};

use super::{Action, Decision, Seconds};

fn time(s: Seconds) -> Time {
    Time(Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Writes the decision's status summary and conditions into `status`
/// (`observedGeneration` is the caller's). Returns whether anything changed,
/// so the caller can skip a no-op write.
pub fn write_status(
    decision: &Decision,
    status: &mut TollPolicyStatus,
    generation: Option<i64>,
    now: Seconds,
) -> bool {
    let before = status.clone();
    let s = &decision.status;
    status.phase = Some(s.phase);
    status.current_revision = s.current_revision;
    status.last_good_revision = s.last_good_revision;
    status.applied = Some(format!("{}/{}", s.applied, s.total));
    status.applied_targets = Some(i32::try_from(s.applied).unwrap_or(i32::MAX));
    status.total_targets = Some(i32::try_from(s.total).unwrap_or(i32::MAX));
    status.failures = s
        .failures
        .iter()
        .map(|f| TargetFailure {
            target: f.target.clone(),
            revision: f.revision,
            reason: f.reason.clone(),
            message: f.message.clone(),
            time: time(f.time),
        })
        .collect();
    status.last_rollback_reason = s.last_rollback_reason.clone();
    status.targets = s.targets.clone();
    status.targets_not_listed =
        (s.targets_not_listed > 0).then(|| i32::try_from(s.targets_not_listed).unwrap_or(i32::MAX));
    for a in &decision.actions {
        if let Action::SetCondition {
            type_,
            status: st,
            reason,
            message,
        } = a
        {
            set_condition(
                &mut status.conditions,
                new_condition(type_, st, reason, message.clone(), generation, time(now)),
            );
        }
    }
    *status != before
}
