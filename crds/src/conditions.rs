//! Status conditions: the condition types and reasons Tollgate's resources
//! use, and a pure helper to set one following the Kubernetes API
//! conventions (one entry per type; `lastTransitionTime` only moves when the
//! status changes).
//!
//! Conditions are the k8s-openapi [`Condition`] type (apimachinery
//! `meta/v1`), so `kubectl wait --for=condition=Applied` and generic tooling
//! understand them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition status `True`.
pub const STATUS_TRUE: &str = "True";
/// Condition status `False`.
pub const STATUS_FALSE: &str = "False";
/// Condition status `Unknown`.
pub const STATUS_UNKNOWN: &str = "Unknown";

/// Most conditions a resource's status holds; the schema's `maxItems` for
/// `status.conditions`.
pub const MAX_CONDITIONS: usize = 16;

/// Condition types of a `TollPolicy`.
pub mod toll_policy {
    /// The policy source compiled into the `CompiledPolicy` in the spec.
    pub const COMPILED: &str = "Compiled";
    /// The rendered SBC configuration passed the trial start and probe checks.
    pub const VALIDATED: &str = "Validated";
    /// A rollout of `status.currentRevision` is under way (canary, bake or batches).
    pub const PROGRESSING: &str = "Progressing";
    /// Every target of the fleet confirmed it applied `status.currentRevision`.
    pub const APPLIED: &str = "Applied";
    /// Some targets failed to apply or are unreachable; see `status.failures`.
    pub const DEGRADED: &str = "Degraded";
    /// The last rollout was rolled back to `status.lastGoodRevision`; see `status.lastRollbackReason`.
    pub const ROLLED_BACK: &str = "RolledBack";
    /// The fleet's `FleetCounting`, copied: whether the tenant's limits are counted over the whole fleet (absent: the fleet's SBCs do not count over the fleet).
    pub const FLEET_COUNTING: &str = "FleetCounting";

    /// All condition types, in display order.
    pub const ALL: [&str; 7] = [
        COMPILED,
        VALIDATED,
        PROGRESSING,
        APPLIED,
        DEGRADED,
        ROLLED_BACK,
        FLEET_COUNTING,
    ];
}

/// Condition types of an `SbcFleet`.
pub mod sbc_fleet {
    /// The selector or endpoints resolved to at least one target.
    pub const RESOLVED: &str = "Resolved";
    /// Every resolved target's agent answers.
    pub const READY: &str = "Ready";
    /// Every answering SBC counts its tenants' limits over the whole fleet (in the fleet's store); `False`: some decide alone with their share of each level. Absent when no SBC of the fleet is configured for fleet-wide counting.
    pub const FLEET_COUNTING: &str = "FleetCounting";

    /// All condition types, in display order.
    pub const ALL: [&str; 3] = [RESOLVED, READY, FLEET_COUNTING];
}

/// Condition reasons (CamelCase, as the API conventions ask).
pub mod reason {
    /// The policy compiled without errors.
    pub const COMPILE_SUCCEEDED: &str = "CompileSucceeded";
    /// The policy did not compile.
    pub const COMPILE_FAILED: &str = "CompileFailed";
    /// The PolicyChunks named by `spec.parts` are missing or do not match.
    pub const CHUNKS_INVALID: &str = "ChunksInvalid";
    /// The rendered configuration passed the trial start and probes.
    pub const VALIDATION_SUCCEEDED: &str = "ValidationSucceeded";
    /// The rendered configuration failed the trial start or a probe.
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    /// Rolling out to the canary targets.
    pub const CANARY: &str = "Canary";
    /// Waiting for the bake time to pass before the next step.
    pub const BAKING: &str = "Baking";
    /// Rolling out batch by batch.
    pub const ROLLING_OUT: &str = "RollingOut";
    /// `spec.rollout.paused` is set.
    pub const PAUSED: &str = "Paused";
    /// `spec.rollout.promoteRevision` skipped the remaining bake time.
    pub const PROMOTED: &str = "Promoted";
    /// The rollout finished: every target applied the revision.
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
    /// Some targets failed to apply the revision.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// Some targets did not answer.
    pub const TARGETS_UNREACHABLE: &str = "TargetsUnreachable";
    /// `spec.rollout.abortRevision` aborted the rollout.
    pub const ABORTED: &str = "Aborted";
    /// An anomaly alert during the rollout rolled it back.
    pub const ANOMALY_DETECTED: &str = "AnomalyDetected";
    /// Too many targets failed, so the rollout was rolled back.
    pub const FAILURE_THRESHOLD: &str = "FailureThresholdExceeded";
    /// Nothing to report (the condition holds its default state).
    pub const AS_EXPECTED: &str = "AsExpected";
    /// The fleet's selector or endpoints resolved to targets.
    pub const TARGETS_FOUND: &str = "TargetsFound";
    /// The fleet's selector or endpoints resolved to no target.
    pub const NO_TARGETS: &str = "NoTargets";
    /// Every agent of the fleet answered.
    pub const AGENTS_READY: &str = "AgentsReady";
    /// Some agents of the fleet did not answer.
    pub const AGENTS_NOT_READY: &str = "AgentsNotReady";
    /// Every answering SBC counts limits over the whole fleet.
    pub const COUNTING_FLEET_WIDE: &str = "CountingFleetWide";
    /// Some SBCs decide limits alone (the fleet's store out of their reach, or not configured).
    pub const COUNTING_DEGRADED: &str = "CountingDegraded";
}

/// Builds a condition.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation,
        last_transition_time: now,
    }
}

/// Finds the condition of type `type_`.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == STATUS_TRUE)
}

/// Sets `condition` in `conditions`: replaces the entry of the same type or
/// appends it. When an entry of that type exists with the same status, its
/// `lastTransitionTime` is kept (reason, message and observedGeneration are
/// still updated). Returns whether anything changed, so a caller can skip a
/// no-op status write.
pub fn set_condition(conditions: &mut Vec<Condition>, mut condition: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time.clone();
            }
            if *existing == condition {
                false
            } else {
                *existing = condition;
                true
            }
        }
        None => {
            conditions.push(condition);
            true
        }
    }
}

/// Removes the condition of type `type_`; returns whether one was removed.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    fn cond(status: &str, reason: &str, generation: i64, t: i64) -> Condition {
        new_condition(
            toll_policy::APPLIED,
            status,
            reason,
            format!("{reason} at {generation}"),
            Some(generation),
            at(t),
        )
    }

    #[test]
    fn appends_new_type() {
        let mut cs = Vec::new();
        assert!(set_condition(&mut cs, cond(STATUS_FALSE, "A", 1, 10)));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, at(10));
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_rest() {
        let mut cs = vec![cond(STATUS_FALSE, "A", 1, 10)];
        assert!(set_condition(&mut cs, cond(STATUS_FALSE, "B", 2, 20)));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, at(10));
        assert_eq!(cs[0].reason, "B");
        assert_eq!(cs[0].observed_generation, Some(2));
    }

    #[test]
    fn status_change_moves_transition_time() {
        let mut cs = vec![cond(STATUS_FALSE, "A", 1, 10)];
        assert!(set_condition(&mut cs, cond(STATUS_TRUE, "A", 1, 20)));
        assert_eq!(cs[0].last_transition_time, at(20));
        assert!(is_true(&cs, toll_policy::APPLIED));
    }

    #[test]
    fn identical_update_reports_no_change() {
        let mut cs = vec![cond(STATUS_TRUE, "A", 1, 10)];
        assert!(!set_condition(&mut cs, cond(STATUS_TRUE, "A", 1, 99)));
        assert_eq!(cs[0].last_transition_time, at(10));
    }

    #[test]
    fn other_types_untouched_and_order_kept() {
        let mut cs = vec![
            new_condition(toll_policy::COMPILED, STATUS_TRUE, "X", "", None, at(1)),
            cond(STATUS_FALSE, "A", 1, 10),
        ];
        set_condition(&mut cs, cond(STATUS_TRUE, "A", 2, 30));
        assert_eq!(cs[0].type_, toll_policy::COMPILED);
        assert_eq!(cs[0].last_transition_time, at(1));
        assert_eq!(cs[1].type_, toll_policy::APPLIED);
        assert!(remove_condition(&mut cs, toll_policy::COMPILED));
        assert!(!remove_condition(&mut cs, toll_policy::COMPILED));
        assert_eq!(cs.len(), 1);
    }
}
