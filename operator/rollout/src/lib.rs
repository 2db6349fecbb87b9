//! The rollout state machine: how a TollPolicy's revision reaches the
//! targets (SBC agents) of its fleet. Pure logic: no I/O, no clock, no kube
//! client. The reconciler observes the fleet, calls [`plan`] with the
//! persisted [`RolloutState`], the spec ([`Desired`]), the observed
//! [`Target`]s, the time and the [`Event`]s since the last call, persists
//! [`Decision::state`] (write-ahead: BEFORE it carries out the actions), then
//! carries out [`Decision::actions`] and writes [`Decision::status`].
//!
//! # The picture
//!
//! Every call computes, for each eligible target (ready and not
//! terminating), the revision it should hold (its *goal*), and issues an
//! apply to each target that does not hold its goal yet (at once, or when
//! its retry time comes). The goal depends on the [`Mode`]:
//!
//! - [`Mode::RollingOut`]: targets *assigned* to the rollout (they hold the
//!   current revision or were sent it) have the current revision as goal;
//!   every other target has the *baseline*, `last_good` (none: no policy for
//!   the tenant). The rollout goes by steps: the canary
//!   ([`RolloutStrategy::canary`]), then batches ([`RolloutStrategy::batch`],
//!   all remaining when absent). Step `k` allows `quota(k)` targets on the
//!   current revision: `canary + k × batch` (or `(k + 1) × batch` without
//!   canary), capped at the number of eligible targets `n`; sizes come from
//!   [`StepSize::targets`] over `n`, recomputed every call (so a fleet that
//!   grows gets proportionally bigger steps). A step starts by assigning
//!   unassigned targets in id order up to the quota; it is complete when
//!   every assigned target confirmed the revision (read-back hash) and at
//!   least `quota(k)` did; then it bakes `bakeSeconds` from completion before
//!   the next step starts. The last step's completion ends the rollout.
//! - [`Mode::Complete`]: every eligible target has the current revision as
//!   goal (a new or restarted pod gets it at once); `last_good` = current.
//! - [`Mode::RolledBack`]: every eligible target has `last_good` as goal.
//!
//! # Semantics decided
//!
//! - **Pause** (`paused`) stops new assignments: no step starts and no
//!   target newly gets the current revision. Retries of assigned targets and
//!   rollbacks go on (a pause never blocks a rollback).
//! - **Promote** (`promoteRevision` = current) jumps to the last step: the
//!   remaining bake is skipped and every remaining target is assigned (still
//!   subject to pause and to a halt). It is remembered in the state, so
//!   clearing the marker later does not undo it.
//! - **Failures**. An agent that rejects the revision (`Rejected`, or an `Ok`
//!   whose read-back hash is not the revision's) or does not answer
//!   (`Unreachable`) leaves the target on its previous revision (the agent
//!   guarantees it). The target is retried with exponential backoff
//!   ([`RETRY_BASE_SECONDS`] doubling up to [`RETRY_CAP_SECONDS`]); an apply
//!   with no outcome and no confirmation is re-sent after
//!   [`APPLY_TIMEOUT_SECONDS`]. While a target assigned to the current
//!   revision has a failure, the rollout is *halted*: no step completes, no
//!   new target is assigned; phase `Degraded`, the target and reason are in
//!   `failures` (at most [`MAX_FAILURES`], newest first). The failure clears
//!   when the target confirms, or leaves (terminating or not ready); not when
//!   the target is given another goal (assigned to the next step, rolled
//!   back): it stays until that goal's outcome replaces it.
//! - **A failing canary** is one whose target *rejected* the revision
//!   during the canary step: that is evidence against the revision, so the
//!   rollout is rolled back. An *unreachable* canary is not (the revision
//!   was never tried), so it halts and retries like a batch.
//! - **Rollback** (abort marker for the current revision, anomaly alert for
//!   it, failing canary): mode `RolledBack`, every target holding the
//!   current revision is rolled back to `last_good` (with no `last_good`,
//!   the tenant is removed from the target, which is what it held before);
//!   condition `RolledBack=True` with the reason; `lastRollbackReason`. The
//!   rolled-back revision is never sent again: a new attempt needs a new
//!   revision number.
//! - **Anomaly window**: an anomaly alert (or the abort marker) for the
//!   current revision within [`Desired::anomaly_window_seconds`] (default:
//!   `bakeSeconds`) after the rollout completed still rolls back, to the
//!   revision that was last good before it (kept in [`Watch`]), which
//!   becomes `last_good` again. Alerts for other revisions are ignored.
//! - **New and restarted targets**. With the rollout complete, a target
//!   that does not hold the current revision gets it at once. During a
//!   rollout it gets `last_good` at once (it is the known-good revision, and
//!   handing it the new one would widen the blast radius beyond the step
//!   the operator chose); it becomes a candidate for the following steps
//!   like every unassigned target. With no `last_good` (first rollout) it
//!   waits for its step. Any target holding a revision other than the
//!   current and `last_good` (e.g. a superseded one) is treated the same.
//!   Terminating targets are skipped and do not count in `y` of `x/y`.
//! - **A new revision during a rollout supersedes it and restarts from the
//!   canary**: the new content has not been tried anywhere, so it gets the
//!   same guard as any other revision; `last_good` is unchanged (the
//!   superseded revision never completed), and targets holding the
//!   superseded revision go to the baseline unless assigned to the new
//!   rollout. A new revision equal to `last_good` (a revert to known-good)
//!   skips the steps and goes to every target at once.
//! - **Completion**: when the last step is complete (every eligible target
//!   confirmed, and at least one exists), mode `Complete`, phase `Applied`,
//!   `last_good` := current. An empty fleet never completes a rollout (a
//!   revision is not "good" without a single target having run it).
//! - **Restart**: everything that decides the next action is in
//!   [`RolloutState`] (serde, camelCase, bounded by the fleet size); the
//!   machine keeps no memory besides it, so an operator killed mid-rollout
//!   resumes from the persisted state and the observed targets. Outcomes of
//!   applies in flight at the crash are lost; their targets are re-sent the
//!   revision when [`APPLY_TIMEOUT_SECONDS`] passes.
//!
//! The persisted state's status-facing part maps onto
//! [`TollPolicyStatus`](tollgate_crds::TollPolicyStatus) through
//! [`write_status`]; the whole state is persisted by the reconciler in
//! `status.rollout` (see `docs/operator.md`).

mod status;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tollgate_crds::conditions::{STATUS_FALSE, STATUS_TRUE, reason, toll_policy as cond};
use tollgate_crds::toll_policy::{
    MAX_FAILURES, MAX_TARGETS_LISTED, RolloutStrategy, StepSize, TargetPhase, TargetState,
    TollPolicyPhase,
};

pub use status::write_status;

/// Seconds since the Unix epoch; the machine's only notion of time.
pub type Seconds = i64;

/// First retry delay after a failed apply.
pub const RETRY_BASE_SECONDS: i64 = 5;
/// Longest retry delay.
pub const RETRY_CAP_SECONDS: i64 = 300;
/// An apply with neither an outcome nor a confirmation is sent again after this.
pub const APPLY_TIMEOUT_SECONDS: i64 = 60;

/// A PolicyRevision: its number and content hash (what the agent's read-back
/// hash is compared with).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRef {
    /// `PolicyRevision.spec.revision`.
    pub number: i64,
    /// `PolicyRevision.spec.hash`.
    pub hash: String,
}

/// A target of the fleet as observed now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Pod name or `host:port`.
    pub id: String,
    /// The pod is ready (static endpoints: the agent answers).
    pub ready: bool,
    /// The pod is terminating.
    pub terminating: bool,
    /// The revision its agent reports applied AND consistent by read-back;
    /// `None` when the tenant is not applied there.
    pub applied: Option<RevisionRef>,
    /// The agent's `lastError`, informational only (the machine's failure
    /// bookkeeping is driven by [`Event::Outcome`]).
    pub last_error: Option<String>,
}

impl Target {
    /// Ready and not terminating: the targets the rollout acts on.
    pub fn eligible(&self) -> bool {
        self.ready && !self.terminating
    }
}

/// What the spec asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// The PolicyRevision of the current spec.
    pub revision: RevisionRef,
    /// `spec.rollout`.
    pub strategy: RolloutStrategy,
    /// How long after completion an anomaly alert still rolls back; `None`:
    /// `bakeSeconds`.
    pub anomaly_window_seconds: Option<u32>,
}

/// What an agent answered to an apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyResult {
    /// Applied; the read-back hash it reports.
    Ok {
        /// Read-back hash.
        hash: String,
    },
    /// Refused (422) or failed after the swap (500); previous state in force.
    Rejected {
        /// CamelCase reason, e.g. `ReloadFailed`.
        reason: String,
        /// The agent's message.
        message: String,
    },
    /// No answer.
    Unreachable {
        /// What the transport said.
        message: String,
    },
}

/// Something that happened since the last call. Spec changes (new revision,
/// pause, promote, abort) are not events: they are read from [`Desired`]
/// every call, which makes the machine level-triggered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An agent answered (or failed to answer) an apply of `revision`
    /// (`None`: removal of the tenant).
    Outcome {
        /// Target id.
        target: String,
        /// What was sent.
        revision: Option<RevisionRef>,
        /// The answer.
        result: ApplyResult,
    },
    /// An anomaly alert that names a revision of this policy.
    Anomaly {
        /// Revision number the alert is about.
        revision: i64,
        /// Alert name.
        alert: String,
    },
}

/// Where the machine is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// No revision seen yet.
    #[default]
    Idle,
    /// Canary, bakes and batches of `current`.
    RollingOut,
    /// `current` reached every target; `last_good` = `current`.
    Complete,
    /// `current` was rolled back to `last_good`.
    RolledBack,
}

/// Why a rollout was rolled back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReason {
    /// Condition reason: `Aborted`, `AnomalyDetected` or `ApplyFailed`.
    pub reason: String,
    /// Human readable.
    pub message: String,
}

/// After completion: the revision that was last good before, to roll back
/// to on an anomaly alert until `until`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Watch {
    /// End of the anomaly window.
    pub until: Seconds,
    /// `last_good` before the rollout.
    pub previous_good: Option<RevisionRef>,
}

/// A failure of one target, as in `status.failures`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Target id.
    pub target: String,
    /// Revision it failed to apply (0 for a removal).
    pub revision: i64,
    /// CamelCase reason (`Unreachable`, `ReadBackMismatch`, or the agent's).
    pub reason: String,
    /// Message.
    pub message: String,
    /// When.
    pub time: Seconds,
}

/// The machine's bookkeeping for a target that does not hold its goal yet.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// Revision being sent (`None`: removal of the tenant).
    pub goal: Option<RevisionRef>,
    /// Failed attempts so far.
    pub failures: u32,
    /// When to send it (again).
    pub next_at: Seconds,
    /// The last failure, while it has not cleared.
    pub failure: Option<Failure>,
}

/// The persisted state: everything [`plan`] needs besides the spec, the
/// observed targets, the time and the events.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RolloutState {
    /// Mode.
    pub mode: Mode,
    /// Revision being rolled out / applied / rolled back (`status.currentRevision`).
    pub current: Option<RevisionRef>,
    /// Last revision every target applied (`status.lastGoodRevision`).
    pub last_good: Option<RevisionRef>,
    /// Step index (0 = canary when there is one).
    pub step: u32,
    /// When the step started; `None`: waiting to start (pause, halt).
    pub step_started_at: Option<Seconds>,
    /// When the step completed; the bake runs from there.
    pub step_completed_at: Option<Seconds>,
    /// End of the bake after the completed step.
    pub bake_until: Option<Seconds>,
    /// `promoteRevision` named the current revision.
    pub promoted: bool,
    /// Anomaly window after completion.
    pub watch: Option<Watch>,
    /// Targets that do not hold their goal yet, by id.
    pub attempts: BTreeMap<String, Attempt>,
    /// Why the last rollback happened.
    pub rollback: Option<RollbackReason>,
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

/// Something for the reconciler to do. Sorted in [`Decision::actions`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Roll `target` back from the revision it holds to `to` (`None`: remove
    /// the tenant from it).
    Rollback {
        /// Target id.
        target: String,
        /// Revision to go back to.
        to: Option<RevisionRef>,
    },
    /// Apply `revision` to `target`.
    Apply {
        /// Target id.
        target: String,
        /// Revision.
        revision: RevisionRef,
    },
    /// Record a Kubernetes Event.
    Event {
        /// Severity.
        kind: EventKind,
        /// CamelCase reason.
        reason: &'static str,
        /// Message.
        message: String,
    },
    /// Set a status condition (see `tollgate_crds::conditions::set_condition`).
    SetCondition {
        /// Condition type.
        type_: &'static str,
        /// `True` / `False`.
        status: &'static str,
        /// CamelCase reason.
        reason: &'static str,
        /// Message.
        message: String,
    },
    /// Call [`plan`] again after this many seconds at the latest.
    RequeueAfter(i64),
}

/// The status summary of a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSummary {
    /// Phase.
    pub phase: TollPolicyPhase,
    /// Current revision number.
    pub current_revision: Option<i64>,
    /// Last good revision number.
    pub last_good_revision: Option<i64>,
    /// x: ready, non-terminating targets confirming the current revision.
    pub applied: u32,
    /// y: non-terminating targets.
    pub total: u32,
    /// Active failures, newest first, at most [`MAX_FAILURES`].
    pub failures: Vec<Failure>,
    /// Why the last rollback happened.
    pub last_rollback_reason: Option<String>,
    /// Each non-terminating target, sorted by id, at most
    /// [`MAX_TARGETS_LISTED`] (those not at the current revision first).
    pub targets: Vec<TargetState>,
    /// Targets left out of `targets`.
    pub targets_not_listed: u32,
}

/// The outcome of [`plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The state to persist (before carrying out the actions).
    pub state: RolloutState,
    /// What to do, sorted.
    pub actions: Vec<Action>,
    /// Status to write.
    pub status: StatusSummary,
}

/// Retry delay after `failures` failed attempts.
pub fn backoff(failures: u32) -> i64 {
    let exp = failures.saturating_sub(1).min(16);
    (RETRY_BASE_SECONDS << exp).min(RETRY_CAP_SECONDS)
}

/// Targets step `step` allows on the new revision, out of `n` eligible.
pub fn quota(strategy: &RolloutStrategy, step: u32, n: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    let all = StepSize::percent(100);
    let batch = u64::from(strategy.batch.as_ref().unwrap_or(&all).targets(n));
    let q = match &strategy.canary {
        Some(c) => u64::from(c.targets(n)) + u64::from(step) * batch,
        None => (u64::from(step) + 1) * batch,
    };
    q.min(u64::from(n)) as u32
}

/// The index of the last step for `n` eligible targets.
pub fn last_step(strategy: &RolloutStrategy, n: u32) -> u32 {
    let mut k = 0;
    while quota(strategy, k, n) < n {
        k += 1;
    }
    k
}

/// Decides what to do now. Deterministic: the same inputs give the same
/// decision; actions are sorted.
pub fn plan(
    state: &RolloutState,
    desired: &Desired,
    targets: &[Target],
    now: Seconds,
    events: &[Event],
) -> Decision {
    let mut m = Machine {
        s: state.clone(),
        desired,
        now,
        actions: Vec::new(),
    };
    m.run(targets, events);
    let status = m.summary(targets);
    let mut actions = m.actions;
    actions.sort();
    actions.dedup();
    Decision {
        state: m.s,
        actions,
        status,
    }
}

struct Machine<'a> {
    s: RolloutState,
    desired: &'a Desired,
    now: Seconds,
    actions: Vec<Action>,
}

impl Machine<'_> {
    fn event(&mut self, kind: EventKind, reason: &'static str, message: String) {
        self.actions.push(Action::Event {
            kind,
            reason,
            message,
        });
    }

    fn current_number(&self) -> Option<i64> {
        self.s.current.as_ref().map(|r| r.number)
    }

    fn run(&mut self, targets: &[Target], events: &[Event]) {
        let eligible: Vec<&Target> = {
            let mut v: Vec<&Target> = targets.iter().filter(|t| t.eligible()).collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v.dedup_by(|a, b| a.id == b.id);
            v
        };
        self.spec_change();
        self.outcomes(events);
        self.rollback_triggers(events);
        // Bookkeeping only for eligible targets that do not hold what they
        // were sent: a failure clears when its target confirms or leaves.
        let held: BTreeMap<&str, &Option<RevisionRef>> = eligible
            .iter()
            .map(|t| (t.id.as_str(), &t.applied))
            .collect();
        self.s
            .attempts
            .retain(|id, a| held.get(id.as_str()).is_some_and(|h| **h != a.goal));
        if self.s.mode == Mode::RollingOut {
            self.progress(&eligible);
        }
        self.converge(&eligible);
        self.conditions(&eligible);
        self.requeue();
    }

    /// A revision other than the current one in the spec starts a rollout.
    fn spec_change(&mut self) {
        let rev = &self.desired.revision;
        if self.s.current.as_ref() == Some(rev) {
            return;
        }
        let superseded = self.s.mode == Mode::RollingOut;
        let old = self.current_number();
        self.s.current = Some(rev.clone());
        self.s.step = 0;
        self.s.step_started_at = None;
        self.s.step_completed_at = None;
        self.s.bake_until = None;
        self.s.promoted = false;
        self.s.watch = None;
        self.s.rollback = None;
        if self.s.last_good.as_ref() == Some(rev) {
            self.s.mode = Mode::Complete;
            self.event(
                EventKind::Normal,
                reason::ROLLING_OUT,
                format!(
                    "revision {} is the last good revision: applying it to every target",
                    rev.number
                ),
            );
            return;
        }
        self.s.mode = Mode::RollingOut;
        let msg = match (superseded, old) {
            (true, Some(o)) => format!(
                "revision {} supersedes revision {o}: rollout restarts from the first step",
                rev.number
            ),
            _ => format!("rollout of revision {} started", rev.number),
        };
        self.event(EventKind::Normal, reason::ROLLING_OUT, msg);
    }

    fn outcomes(&mut self, events: &[Event]) {
        for e in events {
            let Event::Outcome {
                target,
                revision,
                result,
            } = e
            else {
                continue;
            };
            let now = self.now;
            let Some(a) = self.s.attempts.get_mut(target) else {
                continue; // nothing outstanding: a stale answer
            };
            if a.goal != *revision {
                continue; // answer to an apply the machine no longer wants
            }
            let (fail_reason, message) = match result {
                ApplyResult::Ok { hash } => match revision {
                    Some(r) if *hash != r.hash => (
                        "ReadBackMismatch".to_owned(),
                        format!("read-back hash {hash} is not the revision's {}", r.hash),
                    ),
                    // Confirmation comes from the observed target.
                    _ => continue,
                },
                ApplyResult::Rejected { reason, message } => (reason.clone(), message.clone()),
                ApplyResult::Unreachable { message } => ("Unreachable".to_owned(), message.clone()),
            };
            a.failures = a.failures.saturating_add(1);
            a.next_at = now + backoff(a.failures);
            let rev_number = revision.as_ref().map_or(0, |r| r.number);
            let message: String = message.chars().take(1024).collect();
            a.failure = Some(Failure {
                target: target.clone(),
                revision: rev_number,
                reason: fail_reason.chars().take(64).collect(),
                message: message.clone(),
                time: now,
            });
            let rejected = !matches!(result, ApplyResult::Unreachable { .. });
            self.actions.push(Action::Event {
                kind: EventKind::Warning,
                reason: if rejected {
                    reason::APPLY_FAILED
                } else {
                    reason::TARGETS_UNREACHABLE
                },
                message: format!(
                    "target {target} failed to apply revision {rev_number}: {message}"
                ),
            });
            let canary_failed = rejected
                && self.s.mode == Mode::RollingOut
                && self.s.step == 0
                && !self.s.promoted
                && self.desired.strategy.canary.is_some()
                && revision.is_some()
                && *revision == self.s.current;
            if canary_failed {
                self.rollback(
                    reason::APPLY_FAILED,
                    format!("canary target {target} rejected revision {rev_number}: {message}"),
                );
            }
        }
    }

    fn rollback_triggers(&mut self, events: &[Event]) {
        let Some(cur) = self.current_number() else {
            return;
        };
        let watching = self.s.mode == Mode::Complete
            && self.s.watch.as_ref().is_some_and(|w| self.now < w.until);
        if self.s.mode != Mode::RollingOut && !watching {
            return;
        }
        if self.desired.strategy.abort_revision == Some(cur) {
            self.rollback(
                reason::ABORTED,
                format!("rollout of revision {cur} aborted by spec.rollout.abortRevision"),
            );
            return;
        }
        for e in events {
            if let Event::Anomaly { revision, alert } = e
                && *revision == cur
            {
                self.rollback(
                    reason::ANOMALY_DETECTED,
                    format!("anomaly alert {alert} for revision {cur}"),
                );
                return;
            }
        }
    }

    fn rollback(&mut self, why: &'static str, message: String) {
        if self.s.mode == Mode::RolledBack {
            return;
        }
        if self.s.mode == Mode::Complete
            && let Some(w) = self.s.watch.take()
        {
            self.s.last_good = w.previous_good;
        }
        self.s.mode = Mode::RolledBack;
        self.s.step_started_at = None;
        self.s.step_completed_at = None;
        self.s.bake_until = None;
        let to = self
            .s
            .last_good
            .as_ref()
            .map_or("no policy (tenant removed)".to_owned(), |r| {
                format!("revision {}", r.number)
            });
        let message = format!("{message}; rolling back to {to}");
        self.event(EventKind::Warning, why, message.clone());
        self.s.rollback = Some(RollbackReason {
            reason: why.to_owned(),
            message,
        });
    }

    fn is_current(&self, t: &Target) -> bool {
        t.applied.is_some() && t.applied == self.s.current
    }

    /// Where the rollout is with `t` (after this plan's actions).
    fn target_phase(&self, t: &Target) -> TargetPhase {
        if !t.ready {
            TargetPhase::NotReady
        } else if self.is_current(t) {
            TargetPhase::Current
        } else if let Some(a) = self.s.attempts.get(&t.id) {
            if a.failure.is_some() {
                TargetPhase::Failing
            } else {
                TargetPhase::Pending
            }
        } else {
            TargetPhase::Waiting
        }
    }

    /// Eligible targets assigned to the current revision.
    fn assigned<'t>(&self, eligible: &[&'t Target]) -> Vec<&'t Target> {
        eligible
            .iter()
            .copied()
            .filter(|t| {
                self.is_current(t)
                    || self
                        .s
                        .attempts
                        .get(&t.id)
                        .is_some_and(|a| a.goal.is_some() && a.goal == self.s.current)
            })
            .collect()
    }

    fn halted(&self, eligible: &[&Target]) -> bool {
        eligible.iter().any(|t| {
            self.s.attempts.get(&t.id).is_some_and(|a| {
                a.failure.is_some() && a.goal.is_some() && a.goal == self.s.current
            })
        })
    }

    fn step_quota(&self, n: u32) -> u32 {
        if self.s.promoted {
            n
        } else {
            quota(&self.desired.strategy, self.s.step, n)
        }
    }

    /// Starts, fills, completes and advances steps.
    fn progress(&mut self, eligible: &[&Target]) {
        let strategy = &self.desired.strategy;
        let cur = self.current_number().unwrap_or_default();
        if !self.s.promoted && strategy.promote_revision == Some(cur) {
            self.s.promoted = true;
            self.s.step_completed_at = None;
            self.s.bake_until = None;
            self.event(
                EventKind::Normal,
                reason::PROMOTED,
                format!(
                    "revision {cur} promoted: remaining bake skipped, all remaining targets next"
                ),
            );
        }
        let n = eligible.len() as u32;
        let paused = strategy.paused;
        let bake = i64::from(strategy.bake_seconds);
        // A few rounds: a step can complete and the next start in one call
        // (bake 0, promote). Bounded by the number of steps.
        for _ in 0..=n.saturating_add(1) {
            let halted = self.halted(eligible);
            if self.s.step_started_at.is_none() {
                if paused || halted || n == 0 {
                    return;
                }
                self.s.step_started_at = Some(self.now);
                let q = self.step_quota(n);
                self.event(
                    EventKind::Normal,
                    if self.s.step == 0 && strategy.canary.is_some() && !self.s.promoted {
                        reason::CANARY
                    } else {
                        reason::ROLLING_OUT
                    },
                    format!(
                        "revision {cur}: step {} started ({q} of {n} targets)",
                        self.s.step + 1
                    ),
                );
            }
            let q = self.step_quota(n);
            let assigned = self.assigned(eligible);
            // Fill the step up to its quota (also after a target left).
            if !paused && !halted && (assigned.len() as u32) < q {
                let want = q as usize - assigned.len();
                let picked: Vec<String> = eligible
                    .iter()
                    .filter(|t| !assigned.iter().any(|a| a.id == t.id))
                    .take(want)
                    .map(|t| t.id.clone())
                    .collect();
                for id in picked {
                    // A target that failed its previous goal (e.g. the
                    // baseline, while its agent was down) keeps that
                    // failure until it confirms: `failures` and the phase
                    // must not flap to "no failure" between the write-ahead
                    // of this assignment and the new apply's outcome.
                    let failure = self.s.attempts.get(&id).and_then(|a| a.failure.clone());
                    self.s.attempts.insert(
                        id,
                        Attempt {
                            goal: self.s.current.clone(),
                            failures: 0,
                            next_at: self.now,
                            failure,
                        },
                    );
                }
                return; // the step cannot be complete: targets were just sent it
            }
            let confirmed = eligible.iter().filter(|t| self.is_current(t)).count() as u32;
            let complete = !halted && n > 0 && confirmed >= q && assigned.len() as u32 == confirmed;
            if !complete {
                return;
            }
            if q >= n {
                self.finish(n);
                return;
            }
            if self.s.step_completed_at.is_none() {
                self.s.step_completed_at = Some(self.now);
                self.s.bake_until = Some(self.now + bake);
                self.event(
                    EventKind::Normal,
                    reason::BAKING,
                    format!(
                        "revision {cur}: step {} complete ({confirmed} of {n} targets), baking {bake} s",
                        self.s.step + 1
                    ),
                );
            }
            let baked = self.s.bake_until.is_some_and(|b| self.now >= b);
            if !baked || paused {
                return;
            }
            self.s.step += 1;
            self.s.step_started_at = None;
            self.s.step_completed_at = None;
            self.s.bake_until = None;
        }
    }

    fn finish(&mut self, n: u32) {
        let cur = self.s.current.clone();
        let window = self
            .desired
            .anomaly_window_seconds
            .unwrap_or(self.desired.strategy.bake_seconds);
        self.s.watch = Some(Watch {
            until: self.now + i64::from(window),
            previous_good: self.s.last_good.clone(),
        });
        self.s.last_good = cur;
        self.s.mode = Mode::Complete;
        self.s.step_started_at = None;
        self.s.step_completed_at = None;
        self.s.bake_until = None;
        let number = self.current_number().unwrap_or_default();
        self.event(
            EventKind::Normal,
            reason::ROLLOUT_COMPLETE,
            format!("revision {number} applied on all {n} targets"),
        );
    }

    /// The revision a target should hold now.
    fn goal(&self, t: &Target, assigned: &[&Target]) -> Option<RevisionRef> {
        match self.s.mode {
            Mode::Idle => t.applied.clone(),
            Mode::Complete => self.s.current.clone(),
            Mode::RolledBack => self.s.last_good.clone(),
            Mode::RollingOut => {
                if assigned.iter().any(|a| a.id == t.id) {
                    self.s.current.clone()
                } else {
                    self.s.last_good.clone()
                }
            }
        }
    }

    /// Sends each eligible target its goal when due.
    fn converge(&mut self, eligible: &[&Target]) {
        let assigned = if self.s.mode == Mode::RollingOut {
            self.assigned(eligible)
        } else {
            Vec::new()
        };
        for t in eligible {
            let goal = self.goal(t, &assigned);
            if t.applied == goal {
                self.s.attempts.remove(&t.id);
                continue;
            }
            let now = self.now;
            let a = self.s.attempts.entry(t.id.clone()).or_insert(Attempt {
                goal: goal.clone(),
                failures: 0,
                next_at: now,
                failure: None,
            });
            if a.goal != goal {
                // A new goal starts a new count, but the target's last
                // failure stays reported until it confirms (or leaves):
                // nothing shows it answers again yet.
                *a = Attempt {
                    goal: goal.clone(),
                    failures: 0,
                    next_at: now,
                    failure: a.failure.take(),
                };
            }
            if now < a.next_at {
                continue;
            }
            if a.failure.is_none() {
                a.next_at = now + APPLY_TIMEOUT_SECONDS;
            } else {
                // A retry: wait for its answer at most the timeout, and keep
                // the failure (and the halt) until the target confirms.
                a.next_at = now + APPLY_TIMEOUT_SECONDS.max(backoff(a.failures));
            }
            let backwards =
                t.applied.is_some() && self.s.mode != Mode::Complete && goal == self.s.last_good;
            self.actions.push(match goal {
                Some(revision) if !backwards => Action::Apply {
                    target: t.id.clone(),
                    revision,
                },
                to => Action::Rollback {
                    target: t.id.clone(),
                    to,
                },
            });
        }
    }

    fn requeue(&mut self) {
        let mut next: Option<Seconds> = self.s.attempts.values().map(|a| a.next_at).min();
        let mut consider = |t: Option<Seconds>| {
            if let Some(t) = t
                && t > self.now
            {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.s.mode == Mode::RollingOut && !self.desired.strategy.paused {
            consider(self.s.bake_until);
        }
        if self.s.mode == Mode::Complete {
            consider(self.s.watch.as_ref().map(|w| w.until));
        }
        if let Some(t) = next {
            self.actions
                .push(Action::RequeueAfter((t - self.now).max(1)));
        }
    }

    fn active_failures(&self) -> Vec<Failure> {
        let mut f: Vec<Failure> = self
            .s
            .attempts
            .values()
            .filter_map(|a| a.failure.clone())
            .collect();
        f.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.target.cmp(&b.target)));
        f.truncate(MAX_FAILURES);
        f
    }

    fn phase(&self, eligible: &[&Target]) -> TollPolicyPhase {
        let failing = self.s.attempts.values().any(|a| a.failure.is_some());
        match self.s.mode {
            Mode::Idle => TollPolicyPhase::Pending,
            Mode::RolledBack => TollPolicyPhase::RolledBack,
            _ if failing => TollPolicyPhase::Degraded,
            Mode::Complete => {
                if !eligible.is_empty() && eligible.iter().all(|t| self.is_current(t)) {
                    TollPolicyPhase::Applied
                } else {
                    TollPolicyPhase::Progressing
                }
            }
            Mode::RollingOut => {
                if self.desired.strategy.paused {
                    TollPolicyPhase::Paused
                } else if self.s.step == 0
                    && self.desired.strategy.canary.is_some()
                    && !self.s.promoted
                {
                    TollPolicyPhase::Canary
                } else {
                    TollPolicyPhase::Progressing
                }
            }
        }
    }

    fn set(&mut self, type_: &'static str, on: bool, reason: &'static str, message: String) {
        self.actions.push(Action::SetCondition {
            type_,
            status: if on { STATUS_TRUE } else { STATUS_FALSE },
            reason,
            message,
        });
    }

    fn conditions(&mut self, eligible: &[&Target]) {
        if self.s.mode == Mode::Idle {
            return;
        }
        let phase = self.phase(eligible);
        let cur = self.current_number().unwrap_or_default();
        let n = eligible.len();
        let confirmed = eligible.iter().filter(|t| self.is_current(t)).count();
        let progressing = matches!(
            phase,
            TollPolicyPhase::Canary | TollPolicyPhase::Progressing | TollPolicyPhase::Paused
        ) || (self.s.mode == Mode::RollingOut
            && phase == TollPolicyPhase::Degraded);
        let (p_reason, p_msg) = if !progressing {
            (reason::AS_EXPECTED, String::new())
        } else if self.desired.strategy.paused && self.s.mode == Mode::RollingOut {
            (reason::PAUSED, format!("rollout of revision {cur} paused"))
        } else if self.s.bake_until.is_some() {
            (
                reason::BAKING,
                format!("revision {cur}: step {} baking", self.s.step + 1),
            )
        } else if phase == TollPolicyPhase::Canary {
            (reason::CANARY, format!("revision {cur}: canary"))
        } else {
            (
                reason::ROLLING_OUT,
                format!("revision {cur}: {confirmed} of {n} targets"),
            )
        };
        self.set(cond::PROGRESSING, progressing, p_reason, p_msg);
        let applied = phase == TollPolicyPhase::Applied;
        self.set(
            cond::APPLIED,
            applied,
            if applied {
                reason::ROLLOUT_COMPLETE
            } else {
                reason::AS_EXPECTED
            },
            format!("revision {cur}: {confirmed} of {n} targets"),
        );
        let failures = self.active_failures();
        let (d_reason, d_msg) = match failures.first() {
            None => (reason::AS_EXPECTED, String::new()),
            Some(f) => (
                if failures.iter().all(|f| f.reason == "Unreachable") {
                    reason::TARGETS_UNREACHABLE
                } else {
                    reason::APPLY_FAILED
                },
                format!(
                    "{} target(s) failing; latest {}: {} {}",
                    failures.len(),
                    f.target,
                    f.reason,
                    f.message
                ),
            ),
        };
        self.set(cond::DEGRADED, !failures.is_empty(), d_reason, d_msg);
        match (self.s.mode, self.s.rollback.clone()) {
            (Mode::RolledBack, Some(r)) => {
                let why = match r.reason.as_str() {
                    reason::ABORTED => reason::ABORTED,
                    reason::ANOMALY_DETECTED => reason::ANOMALY_DETECTED,
                    _ => reason::APPLY_FAILED,
                };
                self.set(cond::ROLLED_BACK, true, why, r.message);
            }
            _ => self.set(cond::ROLLED_BACK, false, reason::AS_EXPECTED, String::new()),
        }
    }

    fn summary(&self, targets: &[Target]) -> StatusSummary {
        let mut seen = BTreeSet::new();
        let live: Vec<&Target> = targets
            .iter()
            .filter(|t| !t.terminating && seen.insert(t.id.as_str()))
            .collect();
        let eligible: Vec<&Target> = live.iter().copied().filter(|t| t.ready).collect();
        let mut rows: Vec<TargetState> = live
            .iter()
            .map(|t| TargetState {
                target: t.id.clone(),
                revision: t.applied.as_ref().map(|r| r.number),
                state: self.target_phase(t),
            })
            .collect();
        // beyond the cap, those not at the current revision are kept first
        rows.sort_by(|a, b| {
            (a.state == TargetPhase::Current, &a.target)
                .cmp(&(b.state == TargetPhase::Current, &b.target))
        });
        let not_listed = rows.len().saturating_sub(MAX_TARGETS_LISTED);
        rows.truncate(MAX_TARGETS_LISTED);
        rows.sort_by(|a, b| a.target.cmp(&b.target));
        StatusSummary {
            targets: rows,
            targets_not_listed: u32::try_from(not_listed).unwrap_or(u32::MAX),
            phase: self.phase(&eligible),
            current_revision: self.current_number(),
            last_good_revision: self.s.last_good.as_ref().map(|r| r.number),
            applied: eligible.iter().filter(|t| self.is_current(t)).count() as u32,
            total: live.len() as u32,
            failures: self.active_failures(),
            last_rollback_reason: self.s.rollback.as_ref().map(|r| r.message.clone()),
        }
    }
}
