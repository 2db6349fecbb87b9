//! The TollPolicy status writers. Each status field has ONE owner, which
//! writes it with server-side apply under its own field manager and never
//! writes another owner's fields (docs/operator.md, "Status"):
//!
//! | fields | owner | field manager |
//! | --- | --- | --- |
//! | `observedGeneration`, `conditions`, `phase`, `currentRevision`, `lastGoodRevision`, `applied`, `appliedTargets`, `totalTargets`, `failures`, `lastRollbackReason`, `rollout` | the reconciler ([`super::reconcile`]) | [`ROLLOUT_MANAGER`] |
//! | `activeResponses`, `acknowledgedAlerts` | the responses ([`super::responses`]: the alert sink and the reconciler's upkeep of responses) | [`RESPONSES_MANAGER`] |
//!
//! An apply names only its owner's fields, so it neither writes nor
//! removes the other owner's: the reconciler's rollout status needs no
//! fresh read of the responses, and a response needs none of the rollout.
//! Each owner applies all of its fields every time (a field it leaves out
//! is removed; an empty list is left out, i.e. removed). The writers of
//! one owner that read-modify-write (the sink and the upkeep of responses)
//! hold the policy's [`Context::status_lock`](super::context::Context::status_lock).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ManagedFieldsEntry};
use kube::Resource;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tollgate_crds::conditions::sbc_fleet as fleet_cond;
use tollgate_crds::conditions::toll_policy as policy_cond;
use tollgate_crds::conditions::{find_condition, new_condition, set_condition};
use tollgate_crds::toll_policy::{AcknowledgedAlert, ActiveResponse};
use tollgate_crds::{SbcFleetStatus, TollPolicy, TollPolicyStatus};

use super::context::MANAGER;
use super::error::Error;

/// Field manager of the rollout's status fields (the reconciler). The
/// operator's name, as before the fields were split: the rollout fields it
/// applied keep their owner.
pub const ROLLOUT_MANAGER: &str = MANAGER;
/// Field manager of `activeResponses` and `acknowledgedAlerts`.
pub const RESPONSES_MANAGER: &str = "tollgate-operator-responses";
/// The status fields the responses own, as named in `managedFields`.
pub const RESPONSE_FIELDS: [&str; 2] = ["f:activeResponses", "f:acknowledgedAlerts"];

async fn apply(
    api: &Api<TollPolicy>,
    name: &str,
    manager: &str,
    status: &TollPolicyStatus,
) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": TollPolicy::api_version(&()),
        "kind": TollPolicy::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The policy's `FleetCounting` condition: the fleet's (written by the
/// fleet status controller), copied with the fleet named, so `kubectl get
/// tollpolicy -o yaml` shows whether the tenant's limits count over the
/// whole fleet. Removed when the fleet has none (its SBCs count alone by
/// configuration). Pure.
pub fn copy_fleet_counting(
    conditions: &mut Vec<Condition>,
    fleet_name: &str,
    fleet: Option<&SbcFleetStatus>,
    generation: Option<i64>,
) {
    let theirs = fleet.and_then(|f| find_condition(&f.conditions, fleet_cond::FLEET_COUNTING));
    let Some(f) = theirs else {
        conditions.retain(|c| c.type_ != policy_cond::FLEET_COUNTING);
        return;
    };
    set_condition(
        conditions,
        new_condition(
            policy_cond::FLEET_COUNTING,
            &f.status,
            &f.reason,
            format!("SbcFleet {fleet_name}: {}", f.message),
            generation,
            f.last_transition_time.clone(),
        ),
    );
}

/// The rollout's fields of `status` (the responses' left out).
pub fn rollout_part(status: &TollPolicyStatus) -> TollPolicyStatus {
    TollPolicyStatus {
        active_responses: Vec::new(),
        acknowledged_alerts: Vec::new(),
        ..status.clone()
    }
}

/// Applies the rollout's fields of `status` ([`ROLLOUT_MANAGER`]); the
/// responses' fields in `status` are ignored.
pub async fn apply_rollout(
    api: &Api<TollPolicy>,
    name: &str,
    status: &TollPolicyStatus,
) -> Result<(), Error> {
    apply(api, name, ROLLOUT_MANAGER, &rollout_part(status)).await
}

/// Applies the responses' fields ([`RESPONSES_MANAGER`]). The caller holds
/// the policy's status lock and read what it changed under it.
pub async fn apply_responses(
    api: &Api<TollPolicy>,
    name: &str,
    active: &[ActiveResponse],
    acknowledged: &[AcknowledgedAlert],
) -> Result<(), Error> {
    let status = TollPolicyStatus {
        active_responses: active.to_vec(),
        acknowledged_alerts: acknowledged.to_vec(),
        ..TollPolicyStatus::default()
    };
    apply(api, name, RESPONSES_MANAGER, &status).await
}

/// The status fields (`f:<name>`) an entry of `managedFields` holds.
pub fn status_fields(entry: &ManagedFieldsEntry) -> Vec<String> {
    entry
        .fields_v1
        .as_ref()
        .and_then(|f| f.0.get("f:status"))
        .and_then(serde_json::Value::as_object)
        .map(|m| m.keys().filter(|k| k.starts_with("f:")).cloned().collect())
        .unwrap_or_default()
}

/// Whether the rollout's manager still holds a responses' field (an
/// operator before the split applied the whole status under one manager).
pub fn rollout_holds_responses(policy: &TollPolicy) -> bool {
    policy.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some(ROLLOUT_MANAGER)
            && m.subresource.as_deref() == Some("status")
            && status_fields(m)
                .iter()
                .any(|f| RESPONSE_FIELDS.contains(&f.as_str()))
    })
}

/// Hands the responses' fields over from the rollout's manager to theirs
/// (once, for a status an operator before the split wrote): the responses'
/// manager applies them as they are, then the rollout's manager applies its
/// fields as they are without them, so each field has one manager. Without
/// this the reconciler's first apply would remove the responses. The
/// caller holds the policy's status lock; `fresh` was read under it.
pub async fn hand_over_responses(api: &Api<TollPolicy>, fresh: &TollPolicy) -> Result<(), Error> {
    let name = fresh.name_any();
    let status = fresh.status.clone().unwrap_or_default();
    apply_responses(
        api,
        &name,
        &status.active_responses,
        &status.acknowledged_alerts,
    )
    .await?;
    apply_rollout(api, &name, &status).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn fleet_counting_is_copied_with_the_fleet_named() {
        let mut fleet = SbcFleetStatus::default();
        fleet.conditions.push(new_condition(
            fleet_cond::FLEET_COUNTING,
            "False",
            "CountingDegraded",
            "1/3 answering SBCs decide limits alone: pod/sbc-2",
            Some(4),
            at(100),
        ));
        let mut mine = vec![new_condition(
            "Applied",
            "True",
            "RolloutComplete",
            "",
            Some(2),
            at(1),
        )];
        copy_fleet_counting(&mut mine, "edge", Some(&fleet), Some(2));
        let c = find_condition(&mine, policy_cond::FLEET_COUNTING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.observed_generation),
            ("False", "CountingDegraded", Some(2))
        );
        assert_eq!(
            c.message,
            "SbcFleet edge: 1/3 answering SBCs decide limits alone: pod/sbc-2"
        );
        assert_eq!(c.last_transition_time, at(100));
        assert_eq!(mine.len(), 2);
        // the fleet counts alone by configuration (no condition): removed
        copy_fleet_counting(&mut mine, "edge", Some(&SbcFleetStatus::default()), Some(2));
        assert!(find_condition(&mine, policy_cond::FLEET_COUNTING).is_none());
        assert_eq!(mine.len(), 1);
        // no status yet: nothing added
        copy_fleet_counting(&mut mine, "edge", None, Some(2));
        assert_eq!(mine.len(), 1);
    }
}
