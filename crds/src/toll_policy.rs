//! `TollPolicy`: one tenant's compiled policy, the fleet it lands on and how
//! it is rolled out. The operator reports the rollout in its status.

// `#[kube(printcolumn(...))]` repeats `type_ = ...` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use tollgate_ir::chunks::PolicyParts;
use tollgate_ir::{CompiledPolicy, ResponseAction};

/// Most entries in `status.failures` (a top-N, never one per call).
pub const MAX_FAILURES: usize = 10;

/// Most targets `status.targets` lists (a fleet beyond it lists those not at
/// the current revision first; `status.targetsNotListed` counts the rest).
pub const MAX_TARGETS_LISTED: usize = 100;
/// Most entries in `status.activeResponses`: as many as a policy may declare
/// responses (`spec.policy.responses`, a test keeps the two equal). Entries
/// of rules from older revisions can linger; when the list is full a new
/// response is folded into an entry (see `ActiveResponse::folded_rules`).
pub const MAX_ACTIVE_RESPONSES: usize = 64;
/// Most alert instances recorded per active response (`alerts`).
pub const MAX_RESPONSE_ALERTS: usize = 8;
/// Most rules folded into one active response (`foldedRules`).
pub const MAX_FOLDED_RULES: usize = 16;
/// Most entries in `status.acknowledgedAlerts`.
pub const MAX_ACKNOWLEDGED_ALERTS: usize = 128;

/// Desired state of a tenant's toll-fraud policy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "TollPolicy",
    plural = "tollpolicies",
    namespaced,
    status = "TollPolicyStatus",
    derive = "PartialEq",
    shortname = "tp",
    shortname = "tollpol",
    category = "tollgate",
    doc = "A tenant's compiled toll-fraud policy, the SBC fleet it is enforced on and its rollout strategy.",
    printcolumn(
        name = "Tenant",
        type_ = "string",
        json_path = ".spec.tenant",
        description = "Tenant the policy belongs to"
    ),
    printcolumn(
        name = "Revision",
        type_ = "integer",
        json_path = ".status.currentRevision",
        description = "PolicyRevision being rolled out or applied"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Rollout phase"
    ),
    printcolumn(
        name = "Applied",
        type_ = "string",
        json_path = ".status.applied",
        description = "Targets that applied the current revision, as x/y"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.tenant == self.policy.tenant").message("spec.tenant must equal spec.policy.tenant").field_path(".tenant"))]
#[x_kube(validation = Rule::new("!has(self.parts) || (size(self.policy.destinations) == 0 && size(self.policy.classes) == 0 && size(self.policy.sources.networks) == 0 && size(self.policy.rules) == 0)").message("a policy with spec.parts keeps its destinations, classes, source networks and rules in its chunks only").field_path(".parts"))]
#[serde(rename_all = "camelCase")]
pub struct TollPolicySpec {
    /// Tenant the policy belongs to (a DNS label). Must equal `policy.tenant`.
    #[schemars(length(min = 1, max = 63), pattern(crate::DNS_LABEL_PATTERN))]
    pub tenant: String,
    /// The compiled policy (output of `tollgate compile`): what every SBC of the fleet enforces for this tenant. With `parts`, only its head: the large lists are in the chunks.
    pub policy: CompiledPolicy,
    /// Set by `tollgate compile` for a policy too big for one object: the PolicyChunks (same namespace) holding its destinations, classes, source networks and source map, in order, and the hash of the whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<PolicyParts>,
    /// The SbcFleet (in the same namespace) the policy is rolled out to.
    pub fleet: FleetReference,
    /// How a new revision is rolled out across the fleet.
    #[serde(default)]
    pub rollout: RolloutStrategy,
    /// Content hash of the policy source the spec was compiled from (e.g. `sha256:<hex>`), for traceability back to Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub source_hash: Option<String>,
}

/// Reference to an SbcFleet in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FleetReference {
    /// Name of the SbcFleet.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Rollout strategy: a canary step, a bake time, then batches. The operator
/// rolls a new revision out to the canary targets, waits `bakeSeconds`, then
/// continues batch by batch (baking after each), and rolls back to the last
/// good revision when a target fails or an anomaly alert fires.
///
/// Promote and abort are idempotent markers set with `kubectl patch`: they
/// name the revision they act on, so a stale value left in the spec does
/// nothing to later revisions, and the operator never writes the spec.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// First step: how many targets get a new revision before everyone else. Absent: no canary, the first batch starts at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<StepSize>,
    /// Seconds to wait after the canary step and after each batch before going on, watching for failures and anomaly alerts (0–86400).
    #[serde(default = "default_bake_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub bake_seconds: u32,
    /// Targets per batch after the canary. Absent: all remaining targets in one batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<StepSize>,
    /// Stops the rollout after the current step; no new targets get the revision until it is cleared. Rollbacks still happen.
    #[serde(default)]
    pub paused: bool,
    /// Set to the revision number being rolled out (`status.currentRevision`) to skip the remaining bake time and roll it out to all remaining targets at once. Ignored for any other revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub promote_revision: Option<i64>,
    /// Set to the revision number being rolled out (`status.currentRevision`) to abort its rollout: the operator rolls every target back to `status.lastGoodRevision` and sets the RolledBack condition. Ignored for any other revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub abort_revision: Option<i64>,
}

fn default_bake_seconds() -> u32 {
    300
}

impl Default for RolloutStrategy {
    fn default() -> Self {
        Self {
            canary: None,
            bake_seconds: default_bake_seconds(),
            batch: None,
            paused: false,
            promote_revision: None,
            abort_revision: None,
        }
    }
}

/// A number of targets: either an absolute `count` or a `percent` of the fleet (rounded up, at least one target). Exactly one is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.count) != has(self.percent)").message("exactly one of count or percent must be set"))]
#[serde(rename_all = "camelCase")]
pub struct StepSize {
    /// Number of targets (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub count: Option<u32>,
    /// Percentage of the fleet's targets (1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub percent: Option<u32>,
}

impl StepSize {
    /// A step of `n` targets.
    pub fn count(n: u32) -> Self {
        Self {
            count: Some(n),
            percent: None,
        }
    }

    /// A step of `p` percent of the targets.
    pub fn percent(p: u32) -> Self {
        Self {
            count: None,
            percent: Some(p),
        }
    }

    /// Number of targets this step covers out of `total` (percentages round up; at least one target when `total > 0`; never more than `total`).
    pub fn targets(&self, total: u32) -> u32 {
        if total == 0 {
            return 0;
        }
        let n = match (self.count, self.percent) {
            (Some(c), _) => c,
            (None, Some(p)) => (u64::from(total) * u64::from(p)).div_ceil(100) as u32,
            (None, None) => total,
        };
        n.clamp(1, total)
    }
}

/// Rollout phase of a TollPolicy (a summary; the conditions are authoritative).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TollPolicyPhase {
    /// Accepted, not yet acted on.
    Pending,
    /// Rendering and validating the revision.
    Validating,
    /// Rolling out to the canary targets.
    Canary,
    /// Rolling out in batches.
    Progressing,
    /// `spec.rollout.paused` holds the rollout.
    Paused,
    /// Every target applied the current revision.
    Applied,
    /// Some targets failed to apply or are unreachable.
    Degraded,
    /// The rollout was rolled back to the last good revision.
    RolledBack,
    /// The policy cannot be rolled out (e.g. validation failed, fleet missing).
    Failed,
}

/// Observed state of a TollPolicy, written by the operator. Bounded: counts and top-N lists, never per-call data.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TollPolicyStatus {
    /// `metadata.generation` the status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current state per aspect: Compiled, Validated, Progressing, Applied, Degraded, RolledBack. One entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Summary of the rollout state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TollPolicyPhase>,
    /// Number of the PolicyRevision being rolled out or applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<i64>,
    /// Number of the last PolicyRevision every target applied without failure; rollbacks go back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good_revision: Option<i64>,
    /// Targets that confirmed the current revision, as `x/y` (for the printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub applied: Option<String>,
    /// Targets that confirmed the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub applied_targets: Option<i32>,
    /// Targets of the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub total_targets: Option<i32>,
    /// The most recent failures, at most one per target and at most 10 in all, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub failures: Vec<TargetFailure>,
    /// Emergency responses in force (blocks set off by limit breaches or anomaly alerts), at most 64 (as many as a policy declares responses at most).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ACTIVE_RESPONSES))]
    pub active_responses: Vec<ActiveResponse>,
    /// Operator-owned. Alert instances (fingerprint + startsAt) whose response ended: a person released it or its declared hold ended. While such an instance keeps firing, Alertmanager's re-sends of it do not set a response off again, also after an operator restart or a failover; a new instance of the alert (a new startsAt, after it resolved and fired again) still does. Newest first, at most 128: an instance pushed out acts again if re-sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ACKNOWLEDGED_ALERTS))]
    pub acknowledged_alerts: Vec<AcknowledgedAlert>,
    /// Why the last rollback happened (human readable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub last_rollback_reason: Option<String>,
    /// Operator bookkeeping; do not edit. The rollout state machine's persisted state (step, bake and retry times, per-target attempts, anomaly window), so that a restarted operator resumes where it stopped. Its layout belongs to the operator and may change between versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::opaque_object")]
    pub rollout: Option<serde_json::Map<String, serde_json::Value>>,
    /// Each target of the fleet (terminating pods left out) as the last
    /// reconcile saw it, sorted by name: the revision it holds and where the
    /// rollout is with it. At most [`MAX_TARGETS_LISTED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_TARGETS_LISTED))]
    pub targets: Vec<TargetState>,
    /// Targets left out of `targets` (a fleet of more than it lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub targets_not_listed: Option<i32>,
}

/// One target of the fleet in `status.targets`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TargetState {
    /// The target: pod name for selector fleets, `host:port` for static endpoints.
    #[schemars(length(min = 1, max = 263))]
    pub target: String,
    /// The revision its agent reports applied and consistent by read-back;
    /// absent: none (not applied, or not what Kamailio holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Where the rollout is with it.
    pub state: TargetPhase,
}

/// Where a rollout is with one target.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetPhase {
    /// Holds the current revision.
    Current,
    /// Holds another revision, or none, and nothing was sent to it: the
    /// rollout has not reached it (canary, bake, batch, pause).
    Waiting,
    /// A revision (or the tenant's removal) was sent; no outcome yet.
    Pending,
    /// Its last attempt failed (`status.failures` says why); retried.
    Failing,
    /// Not ready: the rollout skips it.
    NotReady,
}

/// A target that failed to apply a revision.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetFailure {
    /// The target: pod name for selector fleets, `host:port` for static endpoints.
    #[schemars(length(min = 1, max = 263))]
    pub target: String,
    /// Revision it failed to apply.
    pub revision: i64,
    /// Machine-readable reason (CamelCase), e.g. `ReloadFailed`, `Unreachable`, `ProbeFailed`.
    #[schemars(length(min = 1, max = 64))]
    pub reason: String,
    /// What went wrong, as the agent reported it (truncated).
    #[schemars(length(max = 1024))]
    pub message: String,
    /// When it failed.
    pub time: Time,
}

/// An emergency response in force.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.expires) != (has(self.untilAcknowledged) && self.untilAcknowledged)").message("an active response has either expires or untilAcknowledged"))]
#[serde(rename_all = "camelCase")]
pub struct ActiveResponse {
    /// Id of the response rule that set it off (see `spec.policy.rules`).
    #[schemars(length(min = 1, max = 256))]
    pub rule: String,
    /// What it does.
    pub action: ResponseAction,
    /// When it started.
    pub since: Time,
    /// When it ends by itself; absent when it holds until acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Time>,
    /// It holds until a person acknowledges it.
    #[serde(default)]
    pub until_acknowledged: bool,
    /// The alert that set it off (or made it stricter last).
    pub alert: AlertReference,
    /// Every alert instance that set it off or matched it while in force, newest first, at most 8. Releasing the response acknowledges all of them (`acknowledgedAlerts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RESPONSE_ALERTS))]
    pub alerts: Vec<AlertReference>,
    /// Other response rules folded into this entry because `activeResponses` was full: the entry blocks the union of their actions and holds as long as the longest of them. Releasing one of its rules removes that rule's name; the blocks end when the entry's last rule is released (or `all`), or when the hold ends. At most 16 names: a rule folded beyond that is not named and ends with the entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FOLDED_RULES), inner(length(min = 1, max = 256)))]
    pub folded_rules: Vec<String>,
}

/// How an alert instance came to be acknowledged.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AcknowledgedReason {
    /// A person released the response (the `tollgate.dev/release` annotation).
    Released,
    /// The response's declared hold (`holdSeconds`) ended.
    HoldEnded,
}

/// An alert instance whose response ended; its re-sends do not act again.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AcknowledgedAlert {
    /// Id of the response rule that ended.
    #[schemars(length(min = 1, max = 256))]
    pub rule: String,
    /// The alert instance (name, fingerprint, startsAt).
    pub alert: AlertReference,
    /// Released by a person, or the declared hold ended.
    pub reason: AcknowledgedReason,
    /// When.
    pub time: Time,
}

/// An alert, as Alertmanager identifies it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AlertReference {
    /// The alert's `alertname` label.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Alertmanager's fingerprint of the alert, to correlate with its notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub fingerprint: Option<String>,
    /// When this instance of the alert started firing (RFC 3339, UTC). With the fingerprint it names one instance: an alert that resolves and fires again has a new startsAt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub starts_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_targets() {
        assert_eq!(StepSize::count(2).targets(10), 2);
        assert_eq!(StepSize::count(20).targets(10), 10);
        assert_eq!(StepSize::percent(10).targets(10), 1);
        assert_eq!(StepSize::percent(15).targets(10), 2);
        assert_eq!(StepSize::percent(1).targets(3), 1);
        assert_eq!(StepSize::percent(100).targets(7), 7);
        assert_eq!(StepSize::percent(50).targets(0), 0);
    }
}
