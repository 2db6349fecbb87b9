//! Example tests (readable scenarios) and a property test that drives the
//! machine through arbitrary interleavings with a simulated fleet and checks
//! the invariants after every call.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tollgate_crds::conditions::{STATUS_TRUE, reason, toll_policy as cond};
use tollgate_crds::toll_policy::{MAX_FAILURES, RolloutStrategy, StepSize, TollPolicyPhase};

use super::*;

fn rev(n: i64) -> RevisionRef {
    RevisionRef {
        number: n,
        hash: format!("sha256:{n:064}"),
    }
}

fn target(id: &str, applied: Option<i64>) -> Target {
    Target {
        id: id.to_owned(),
        ready: true,
        terminating: false,
        applied: applied.map(rev),
        last_error: None,
    }
}

fn strategy(canary: Option<StepSize>, batch: Option<StepSize>, bake: u32) -> RolloutStrategy {
    RolloutStrategy {
        canary,
        bake_seconds: bake,
        batch,
        ..RolloutStrategy::default()
    }
}

fn roundtrip(s: &RolloutState) -> RolloutState {
    let json = serde_json::to_string(s).expect("state serializes");
    serde_json::from_str(&json).expect("state deserializes")
}

/// The simulated world: the fleet (agents apply what they are sent when the
/// test delivers an outcome), the spec, the clock and the persisted state.
#[derive(Debug)]
struct Sim {
    state: RolloutState,
    desired: Desired,
    targets: Vec<Target>,
    /// Whether each target exists (pods join later, terminated ones go).
    present: Vec<bool>,
    /// The last request sent to each target, not answered yet.
    inflight: BTreeMap<String, Option<RevisionRef>>,
    now: Seconds,
    /// Targets that acknowledged the rollback of the current revision.
    acked_rollback: BTreeSet<String>,
    last: Option<Decision>,
    /// Plans made (for case counts).
    plans: usize,
    /// What the run went through (phases, rollback reasons), for the
    /// coverage check of the generator.
    seen: BTreeSet<String>,
}

impl Sim {
    fn new(
        targets: Vec<Target>,
        present: Vec<bool>,
        desired: Desired,
        state: RolloutState,
    ) -> Self {
        Self {
            state,
            desired,
            targets,
            present,
            inflight: BTreeMap::new(),
            now: 1_000_000,
            acked_rollback: BTreeSet::new(),
            last: None,
            plans: 0,
            seen: BTreeSet::new(),
        }
    }

    fn visible(&self) -> Vec<Target> {
        self.targets
            .iter()
            .zip(&self.present)
            .filter(|(_, p)| **p)
            .map(|(t, _)| t.clone())
            .collect()
    }

    fn apply_actions(&mut self, d: &Decision) {
        for a in &d.actions {
            match a {
                Action::Apply { target, revision } => {
                    self.inflight.insert(target.clone(), Some(revision.clone()));
                }
                Action::Rollback { target, to } => {
                    self.inflight.insert(target.clone(), to.clone());
                }
                _ => {}
            }
        }
    }

    fn step(&mut self, events: Vec<Event>) -> Decision {
        let visible = self.visible();
        let prev = self.state.clone();
        let d = plan(&prev, &self.desired, &visible, self.now, &events);
        // The state rebuilt from what was persisted gives the same decision.
        let again = plan(
            &roundtrip(&prev),
            &self.desired,
            &visible,
            self.now,
            &events,
        );
        assert_eq!(d, again, "restart from persisted state diverges");
        check_invariants(&prev, &d, &self.desired, &visible, &events);
        if d.state.current != prev.current {
            self.acked_rollback.clear();
        }
        self.apply_actions(&d);
        self.state = d.state.clone();
        self.last = Some(d.clone());
        self.plans += 1;
        self.seen.insert(format!("{:?}", d.status.phase));
        if let Some(r) = &d.state.rollback {
            self.seen.insert(format!("RolledBack/{}", r.reason));
        }
        if d.state.promoted {
            self.seen.insert("Promoted".into());
        }
        if d.actions
            .iter()
            .any(|a| matches!(a, Action::Rollback { to: None, .. }))
        {
            self.seen.insert("RemoveTenant".into());
        }
        d
    }

    /// The agent of target `i` answers its pending request.
    fn deliver(&mut self, i: usize, outcome: Outcome) -> Decision {
        let id = self.targets[i].id.clone();
        let Some(goal) = self.inflight.remove(&id).filter(|_| self.present[i]) else {
            return self.step(Vec::new());
        };
        let result = match outcome {
            Outcome::Ok => {
                if self.state.mode == Mode::RolledBack
                    && goal != self.state.current
                    && self.targets[i].applied == self.state.current
                {
                    self.acked_rollback.insert(id.clone());
                }
                self.targets[i].applied = goal.clone();
                let cur = self.state.current.clone();
                assert!(
                    !(self.acked_rollback.contains(&id) && self.targets[i].applied == cur),
                    "{id} got the rolled-back revision again"
                );
                ApplyResult::Ok {
                    hash: goal.as_ref().map_or(String::new(), |r| r.hash.clone()),
                }
            }
            Outcome::BadHash => ApplyResult::Ok {
                hash: "sha256:bad".to_owned(),
            },
            Outcome::Rejected => ApplyResult::Rejected {
                reason: "ReloadFailed".to_owned(),
                message: "reload refused".to_owned(),
            },
            Outcome::Unreachable => ApplyResult::Unreachable {
                message: "connection refused".to_owned(),
            },
        };
        self.step(vec![Event::Outcome {
            target: id,
            revision: goal,
            result,
        }])
    }

    fn deliver_all_ok(&mut self) {
        let ids: Vec<usize> = (0..self.targets.len())
            .filter(|i| self.inflight.contains_key(&self.targets[*i].id))
            .collect();
        for i in ids {
            self.deliver(i, Outcome::Ok);
        }
    }

    fn tick(&mut self, secs: i64) -> Decision {
        self.now += secs;
        self.step(Vec::new())
    }

    fn phase(&self) -> TollPolicyPhase {
        self.last
            .as_ref()
            .map_or(TollPolicyPhase::Pending, |d| d.status.phase)
    }

    fn holding(&self, n: i64) -> usize {
        self.visible()
            .iter()
            .filter(|t| t.applied.as_ref().map(|r| r.number) == Some(n))
            .count()
    }
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Ok,
    BadHash,
    Rejected,
    Unreachable,
}

fn assigned_count(s: &RolloutState, eligible: &[&Target]) -> usize {
    eligible
        .iter()
        .filter(|t| {
            (t.applied.is_some() && t.applied == s.current)
                || s.attempts
                    .get(&t.id)
                    .is_some_and(|a| a.goal.is_some() && a.goal == s.current)
        })
        .count()
}

fn check_invariants(
    prev: &RolloutState,
    d: &Decision,
    desired: &Desired,
    visible: &[Target],
    events: &[Event],
) {
    let s = &d.state;
    let mut eligible: Vec<&Target> = visible.iter().filter(|t| t.eligible()).collect();
    eligible.sort_by(|a, b| a.id.cmp(&b.id));
    let n = eligible.len() as u32;
    let cur = s.current.clone();

    // Actions sorted, no duplicates.
    assert!(
        d.actions.windows(2).all(|w| w[0] < w[1]),
        "actions not sorted"
    );

    // Only the current and the last good revision are ever sent.
    for a in &d.actions {
        match a {
            Action::Apply { revision, .. } => assert!(
                Some(revision) == cur.as_ref() || Some(revision) == s.last_good.as_ref(),
                "apply of {revision:?}, current {cur:?}, last good {:?}",
                s.last_good
            ),
            Action::Rollback { to, .. } => assert_eq!(to, &s.last_good, "rollback target"),
            _ => {}
        }
    }

    // Targets newly sent the current revision by this call.
    let prev_assigned: BTreeSet<&str> = eligible
        .iter()
        .filter(|t| {
            (t.applied.is_some() && t.applied == cur)
                || (prev.current == cur
                    && prev
                        .attempts
                        .get(&t.id)
                        .is_some_and(|a| a.goal.is_some() && a.goal == cur))
        })
        .map(|t| t.id.as_str())
        .collect();
    let newly: Vec<&str> = d
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Apply { target, revision }
                if Some(revision) == cur.as_ref() && !prev_assigned.contains(target.as_str()) =>
            {
                Some(target.as_str())
            }
            _ => None,
        })
        .collect();
    let rolling = s.mode == Mode::RollingOut;

    // Never more targets on the new revision than the step allows.
    if rolling && !newly.is_empty() {
        let q = if s.promoted {
            n
        } else {
            quota(&desired.strategy, s.step, n)
        };
        assert!(
            assigned_count(s, &eligible) as u32 <= q,
            "step {} allows {q} of {n}, {} assigned",
            s.step,
            assigned_count(s, &eligible)
        );
    }

    // After a rollback the rolled-back revision is never sent.
    if s.mode == Mode::RolledBack {
        assert!(
            !d.actions.iter().any(
                |a| matches!(a, Action::Apply { revision, .. } if Some(revision) == cur.as_ref())
            ),
            "apply of a rolled-back revision"
        );
        assert!(s.rollback.is_some());
        assert!(d.actions.iter().any(|a| matches!(
            a,
            Action::SetCondition {
                type_: cond::ROLLED_BACK,
                status: STATUS_TRUE,
                ..
            }
        )));
    }

    // A halted rollout assigns no new target.
    let halted_before = prev.current == cur
        && prev.mode == Mode::RollingOut
        && eligible.iter().any(|t| {
            !(t.applied.is_some() && t.applied == cur)
                && prev
                    .attempts
                    .get(&t.id)
                    .is_some_and(|a| a.failure.is_some() && a.goal.is_some() && a.goal == cur)
        });
    if halted_before && rolling {
        assert!(newly.is_empty(), "halted rollout assigned {newly:?}");
    }

    // Paused: no new step, no new target.
    if desired.strategy.paused && prev.mode == Mode::RollingOut && rolling && prev.current == cur {
        assert!(newly.is_empty(), "paused rollout assigned {newly:?}");
        assert_eq!(s.step, prev.step, "paused rollout advanced");
        if prev.step_started_at.is_none() {
            assert!(s.step_started_at.is_none(), "paused rollout started a step");
        }
    }

    // Applied only when every eligible target confirmed.
    if d.status.phase == TollPolicyPhase::Applied {
        assert!(n > 0);
        assert!(
            eligible.iter().all(|t| t.applied == cur),
            "Applied with stragglers"
        );
        assert_eq!(s.mode, Mode::Complete);
    }
    if s.mode == Mode::Complete {
        assert_eq!(s.last_good, s.current, "complete but last good differs");
    }
    if prev.mode == Mode::RollingOut && s.mode == Mode::Complete && prev.current == cur {
        assert!(eligible.iter().all(|t| t.applied == cur));
        assert!(n > 0);
    }
    // last_good moves only to a completed revision or back on a rollback.
    if s.last_good != prev.last_good {
        let completed = s.mode == Mode::Complete && s.last_good == s.current;
        let reverted = s.mode == Mode::RolledBack
            && prev
                .watch
                .as_ref()
                .is_some_and(|w| w.previous_good == s.last_good);
        assert!(
            completed || reverted,
            "last good changed from {:?} to {:?}",
            prev.last_good,
            s.last_good
        );
    }

    // x/y consistent with the targets.
    let live: Vec<&Target> = visible.iter().filter(|t| !t.terminating).collect();
    assert_eq!(d.status.total as usize, live.len());
    assert_eq!(
        d.status.applied as usize,
        eligible
            .iter()
            .filter(|t| t.applied.is_some() && t.applied == cur)
            .count()
    );
    assert!(d.status.applied <= d.status.total);
    assert_eq!(d.status.current_revision, cur.as_ref().map(|r| r.number));

    // Failures bounded, one per target, and the phase says so.
    assert!(d.status.failures.len() <= MAX_FAILURES);
    let ids: BTreeSet<&str> = d
        .status
        .failures
        .iter()
        .map(|f| f.target.as_str())
        .collect();
    assert_eq!(ids.len(), d.status.failures.len());
    if !d.status.failures.is_empty() && s.mode != Mode::RolledBack {
        assert_eq!(d.status.phase, TollPolicyPhase::Degraded);
    }

    // Bookkeeping only for eligible targets; nothing forgotten.
    let eligible_ids: BTreeSet<&str> = eligible.iter().map(|t| t.id.as_str()).collect();
    assert!(s.attempts.keys().all(|k| eligible_ids.contains(k.as_str())));
    let pending_work = !s.attempts.is_empty();
    if pending_work {
        assert!(
            d.actions
                .iter()
                .any(|a| matches!(a, Action::RequeueAfter(_))),
            "outstanding work but no requeue"
        );
    }
    let _ = events;
}

// ---------------------------------------------------------------- examples

fn fleet(n: usize, applied: Option<i64>) -> (Vec<Target>, Vec<bool>) {
    let t = (0..n)
        .map(|i| target(&format!("sbc-{i}"), applied))
        .collect();
    (t, vec![true; n])
}

/// Previous rollout of revision 1 complete on every target, revision 2 in the spec.
fn upgrade(n: usize, strategy: RolloutStrategy) -> Sim {
    let (targets, present) = fleet(n, Some(1));
    let state = RolloutState {
        mode: Mode::Complete,
        current: Some(rev(1)),
        last_good: Some(rev(1)),
        ..RolloutState::default()
    };
    Sim::new(
        targets,
        present,
        Desired {
            revision: rev(2),
            strategy,
            anomaly_window_seconds: None,
        },
        state,
    )
}

fn applies(d: &Decision) -> Vec<(String, i64)> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::Apply { target, revision } => Some((target.clone(), revision.number)),
            _ => None,
        })
        .collect()
}

fn rollbacks(d: &Decision) -> Vec<(String, Option<i64>)> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::Rollback { target, to } => {
                Some((target.clone(), to.as_ref().map(|r| r.number)))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn canary_bake_batches_applied() {
    let mut sim = upgrade(
        5,
        strategy(Some(StepSize::count(1)), Some(StepSize::count(2)), 300),
    );
    let d = sim.tick(0);
    assert_eq!(applies(&d), vec![("sbc-0".to_owned(), 2)]);
    assert_eq!(d.status.phase, TollPolicyPhase::Canary);
    assert_eq!((d.status.applied, d.status.total), (0, 5));
    let d = sim.deliver(0, Outcome::Ok);
    assert!(applies(&d).is_empty());
    assert_eq!(d.state.bake_until, Some(sim.now + 300));
    assert!(d.actions.contains(&Action::RequeueAfter(300)));
    // Still baking.
    let d = sim.tick(299);
    assert!(applies(&d).is_empty());
    // Bake over: first batch of 2.
    let d = sim.tick(1);
    assert_eq!(
        applies(&d),
        vec![("sbc-1".to_owned(), 2), ("sbc-2".to_owned(), 2)]
    );
    assert_eq!(d.status.phase, TollPolicyPhase::Progressing);
    sim.deliver(1, Outcome::Ok);
    let d = sim.deliver(2, Outcome::Ok);
    assert_eq!((d.status.applied, d.status.total), (3, 5));
    assert!(d.state.bake_until.is_some());
    let d = sim.tick(300);
    assert_eq!(
        applies(&d),
        vec![("sbc-3".to_owned(), 2), ("sbc-4".to_owned(), 2)]
    );
    sim.deliver(3, Outcome::Ok);
    let d = sim.deliver(4, Outcome::Ok);
    assert_eq!(d.status.phase, TollPolicyPhase::Applied);
    assert_eq!(d.status.last_good_revision, Some(2));
    assert_eq!(d.state.mode, Mode::Complete);
    assert_eq!((d.status.applied, d.status.total), (5, 5));
    assert!(d.actions.contains(&Action::SetCondition {
        type_: cond::APPLIED,
        status: STATUS_TRUE,
        reason: reason::ROLLOUT_COMPLETE,
        message: "revision 2: 5 of 5 targets".to_owned(),
    }));
}

#[test]
fn failing_canary_rolls_back() {
    let mut sim = upgrade(4, strategy(Some(StepSize::count(2)), None, 60));
    sim.tick(0);
    sim.deliver(0, Outcome::Ok); // sbc-0 has revision 2
    let d = sim.deliver(1, Outcome::Rejected); // sbc-1 refuses it
    assert_eq!(d.state.mode, Mode::RolledBack);
    assert_eq!(d.status.phase, TollPolicyPhase::RolledBack);
    assert_eq!(rollbacks(&d), vec![("sbc-0".to_owned(), Some(1))]);
    assert!(
        d.status
            .last_rollback_reason
            .as_deref()
            .is_some_and(|r| r.contains("canary target sbc-1"))
    );
    let d = sim.deliver(0, Outcome::Ok);
    assert_eq!(sim.holding(1), 4);
    assert!(applies(&d).is_empty() && rollbacks(&d).is_empty());
    // Nothing more happens to revision 2, whatever the time.
    let d = sim.tick(10_000);
    assert!(applies(&d).is_empty());
    assert_eq!(d.status.phase, TollPolicyPhase::RolledBack);
}

#[test]
fn unreachable_canary_halts_and_retries() {
    let mut sim = upgrade(3, strategy(Some(StepSize::count(1)), None, 0));
    sim.tick(0);
    let d = sim.deliver(0, Outcome::Unreachable);
    assert_eq!(d.state.mode, Mode::RollingOut);
    assert_eq!(d.status.phase, TollPolicyPhase::Degraded);
    assert_eq!(d.status.failures[0].target, "sbc-0");
    assert_eq!(d.status.failures[0].reason, "Unreachable");
    assert!(
        d.actions
            .contains(&Action::RequeueAfter(RETRY_BASE_SECONDS))
    );
    let d = sim.tick(RETRY_BASE_SECONDS);
    assert_eq!(applies(&d), vec![("sbc-0".to_owned(), 2)]);
    let d = sim.deliver(0, Outcome::Unreachable);
    assert!(
        d.actions
            .contains(&Action::RequeueAfter(2 * RETRY_BASE_SECONDS))
    );
    sim.tick(2 * RETRY_BASE_SECONDS);
    let d = sim.deliver(0, Outcome::Ok);
    // Canary confirmed, bake 0: the rest at once.
    assert_eq!(
        applies(&d),
        vec![("sbc-1".to_owned(), 2), ("sbc-2".to_owned(), 2)]
    );
    assert!(d.status.failures.is_empty());
}

#[test]
fn failing_batch_target_halts_then_clears() {
    let mut sim = upgrade(5, strategy(None, Some(StepSize::count(2)), 0));
    let d = sim.tick(0);
    assert_eq!(applies(&d).len(), 2);
    sim.deliver(0, Outcome::Ok);
    let d = sim.deliver(1, Outcome::Rejected);
    assert_eq!(
        d.state.mode,
        Mode::RollingOut,
        "a batch failure halts, no rollback"
    );
    assert_eq!(d.status.phase, TollPolicyPhase::Degraded);
    assert_eq!(sim.holding(1), 4, "sbc-1 keeps revision 1");
    // Long after: only retries of sbc-1, nobody new.
    for _ in 0..10 {
        let d = sim.tick(RETRY_CAP_SECONDS);
        assert!(applies(&d).iter().all(|(t, _)| t == "sbc-1"));
        sim.deliver(1, Outcome::Rejected);
    }
    assert_eq!(sim.state.attempts["sbc-1"].failures, 11);
    sim.tick(RETRY_CAP_SECONDS);
    let d = sim.deliver(1, Outcome::Ok);
    assert_eq!(
        applies(&d),
        vec![("sbc-2".to_owned(), 2), ("sbc-3".to_owned(), 2)]
    );
    assert_eq!(d.status.phase, TollPolicyPhase::Progressing);
}

/// scripts/test-operator.sh 4b: an agent not yet assigned stops during a
/// bake; its re-baseline fails (Unreachable), then the next step assigns it.
/// The failure must stay reported across the assignment (the write-ahead
/// status of that decision) until the new apply's outcome replaces it:
/// `status.failures` empty while the target is still down was the flake.
#[test]
fn a_failed_target_assigned_to_the_next_step_stays_failing() {
    let mut sim = upgrade(
        3,
        strategy(Some(StepSize::count(1)), Some(StepSize::count(1)), 3),
    );
    sim.tick(0);
    sim.deliver(0, Outcome::Ok);
    sim.tick(3);
    sim.deliver(1, Outcome::Ok); // step 2 complete, baking
    // sbc-2's agent stops: it is seen holding nothing, and re-baselined
    sim.targets[2].applied = None;
    let d = sim.tick(0);
    assert_eq!(applies(&d), vec![("sbc-2".to_owned(), 1)]);
    let d = sim.deliver(2, Outcome::Unreachable);
    assert_eq!(d.status.phase, TollPolicyPhase::Degraded);
    assert_eq!(d.status.failures[0].revision, 1);
    // the bake ends: step 3 assigns sbc-2 (no halt: its failure is not the
    // current revision's); the failure is still reported
    let d = sim.tick(3);
    assert_eq!(applies(&d), vec![("sbc-2".to_owned(), 2)]);
    assert_eq!(d.status.phase, TollPolicyPhase::Degraded);
    assert_eq!(d.status.failures.len(), 1);
    assert_eq!(d.status.failures[0].target, "sbc-2");
    assert_eq!(d.status.failures[0].reason, "Unreachable");
    let d = sim.deliver(2, Outcome::Unreachable);
    assert_eq!(d.status.failures[0].revision, 2);
    assert_eq!(d.status.phase, TollPolicyPhase::Degraded);
    // the agent returns: confirmed, the failure clears
    sim.tick(RETRY_BASE_SECONDS);
    let d = sim.deliver(2, Outcome::Ok);
    assert!(d.status.failures.is_empty());
    assert_eq!(d.status.phase, TollPolicyPhase::Applied);
}

#[test]
fn anomaly_during_bake_rolls_back() {
    let mut sim = upgrade(4, strategy(Some(StepSize::percent(50)), None, 600));
    sim.tick(0);
    sim.deliver(0, Outcome::Ok);
    sim.deliver(1, Outcome::Ok);
    sim.tick(100);
    let d = sim.step(vec![Event::Anomaly {
        revision: 1,
        alert: "OldRevisionAlert".into(),
    }]);
    assert_eq!(
        d.state.mode,
        Mode::RollingOut,
        "an alert for another revision is ignored"
    );
    let d = sim.step(vec![Event::Anomaly {
        revision: 2,
        alert: "TollFraudSpike".into(),
    }]);
    assert_eq!(d.status.phase, TollPolicyPhase::RolledBack);
    assert_eq!(
        rollbacks(&d),
        vec![("sbc-0".to_owned(), Some(1)), ("sbc-1".to_owned(), Some(1))]
    );
    assert!(d.actions.contains(&Action::SetCondition {
        type_: cond::ROLLED_BACK,
        status: STATUS_TRUE,
        reason: reason::ANOMALY_DETECTED,
        message: "anomaly alert TollFraudSpike for revision 2; rolling back to revision 1".into(),
    }));
}

#[test]
fn anomaly_within_window_after_completion_rolls_back() {
    let mut s = strategy(None, None, 0);
    s.bake_seconds = 0;
    let mut sim = upgrade(2, s);
    sim.desired.anomaly_window_seconds = Some(600);
    sim.tick(0);
    sim.deliver(0, Outcome::Ok);
    let d = sim.deliver(1, Outcome::Ok);
    assert_eq!(d.status.phase, TollPolicyPhase::Applied);
    assert_eq!(d.status.last_good_revision, Some(2));
    sim.tick(599);
    let d = sim.step(vec![Event::Anomaly {
        revision: 2,
        alert: "X".into(),
    }]);
    assert_eq!(d.status.phase, TollPolicyPhase::RolledBack);
    assert_eq!(d.status.last_good_revision, Some(1));
    assert_eq!(rollbacks(&d).len(), 2);
    // After the window an alert does nothing.
    let mut sim = upgrade(1, strategy(None, None, 0));
    sim.desired.anomaly_window_seconds = Some(600);
    sim.tick(0);
    sim.deliver(0, Outcome::Ok);
    sim.tick(600);
    let d = sim.step(vec![Event::Anomaly {
        revision: 2,
        alert: "X".into(),
    }]);
    assert_eq!(d.status.phase, TollPolicyPhase::Applied);
}

#[test]
fn abort_rolls_back_even_when_paused() {
    let mut sim = upgrade(3, strategy(Some(StepSize::count(1)), None, 300));
    sim.tick(0);
    sim.deliver(0, Outcome::Ok);
    sim.desired.strategy.paused = true;
    let d = sim.tick(1);
    assert_eq!(d.status.phase, TollPolicyPhase::Paused);
    sim.desired.strategy.abort_revision = Some(1); // stale marker: ignored
    assert_eq!(sim.tick(1).state.mode, Mode::RollingOut);
    sim.desired.strategy.abort_revision = Some(2);
    let d = sim.tick(1);
    assert_eq!(rollbacks(&d), vec![("sbc-0".to_owned(), Some(1))]);
    assert_eq!(
        d.state.rollback.as_ref().map(|r| r.reason.as_str()),
        Some(reason::ABORTED)
    );
}

#[test]
fn promote_skips_bake() {
    let mut sim = upgrade(
        6,
        strategy(Some(StepSize::count(1)), Some(StepSize::count(1)), 3600),
    );
    sim.tick(0);
    sim.deliver(0, Outcome::Ok);
    let d = sim.tick(10);
    assert!(applies(&d).is_empty(), "baking");
    sim.desired.strategy.promote_revision = Some(2);
    let d = sim.tick(1);
    assert_eq!(applies(&d).len(), 5, "every remaining target at once");
    sim.deliver_all_ok();
    assert_eq!(sim.phase(), TollPolicyPhase::Applied);
}

#[test]
fn paused_holds_next_step() {
    let mut sim = upgrade(3, strategy(Some(StepSize::count(1)), None, 10));
    sim.tick(0);
    sim.desired.strategy.paused = true;
    sim.deliver(0, Outcome::Ok);
    let d = sim.tick(1000);
    assert!(applies(&d).is_empty());
    assert_eq!(d.status.phase, TollPolicyPhase::Paused);
    sim.desired.strategy.paused = false;
    let d = sim.tick(0);
    assert_eq!(applies(&d).len(), 2);
}

#[test]
fn pod_joins_mid_rollout_and_after() {
    let mut sim = upgrade(3, strategy(Some(StepSize::count(1)), None, 60));
    sim.targets.push(target("sbc-9", None));
    sim.present.push(false);
    sim.targets.push(target("sbc-a", None));
    sim.present.push(false);
    sim.tick(0);
    sim.deliver(0, Outcome::Ok);
    // A pod joins while the canary bakes: it gets the last good revision.
    sim.present[3] = true;
    let d = sim.tick(1);
    assert_eq!(applies(&d), vec![("sbc-9".to_owned(), 1)]);
    assert_eq!((d.status.applied, d.status.total), (1, 4));
    sim.deliver(3, Outcome::Ok);
    // The batch covers it too.
    let d = sim.tick(60);
    assert_eq!(applies(&d).len(), 3);
    sim.deliver_all_ok();
    assert_eq!(sim.phase(), TollPolicyPhase::Applied);
    // A pod that joins afterwards gets the current revision at once.
    sim.present[4] = true;
    let d = sim.tick(1);
    assert_eq!(applies(&d), vec![("sbc-a".to_owned(), 2)]);
    assert_eq!(d.status.phase, TollPolicyPhase::Progressing);
    let d = sim.deliver(4, Outcome::Ok);
    assert_eq!(d.status.phase, TollPolicyPhase::Applied);
    // Terminating pods are skipped and do not count.
    sim.targets[1].terminating = true;
    let d = sim.tick(1);
    assert_eq!((d.status.applied, d.status.total), (4, 4));
}

#[test]
fn new_revision_supersedes_and_restarts_from_canary() {
    let mut sim = upgrade(
        4,
        strategy(Some(StepSize::count(1)), Some(StepSize::count(1)), 0),
    );
    sim.tick(0);
    sim.deliver(0, Outcome::Ok);
    sim.deliver(1, Outcome::Ok);
    assert_eq!(sim.holding(2), 2);
    sim.desired.revision = rev(3);
    let d = sim.tick(1);
    assert_eq!(d.state.step, 0);
    assert_eq!(d.status.last_good_revision, Some(1));
    // Canary of 3 on sbc-0; sbc-1 (holding the superseded 2) back to 1.
    assert_eq!(applies(&d), vec![("sbc-0".to_owned(), 3)]);
    assert_eq!(rollbacks(&d), vec![("sbc-1".to_owned(), Some(1))]);
}

#[test]
fn first_rollout_without_last_good() {
    let (targets, present) = fleet(3, None);
    let mut sim = Sim::new(
        targets,
        present,
        Desired {
            revision: rev(1),
            strategy: strategy(Some(StepSize::count(1)), None, 0),
            anomaly_window_seconds: Some(0),
        },
        RolloutState::default(),
    );
    let d = sim.tick(0);
    assert_eq!(applies(&d), vec![("sbc-0".to_owned(), 1)]);
    sim.deliver(0, Outcome::Ok);
    sim.desired.strategy.abort_revision = Some(1);
    let d = sim.tick(1);
    // Nothing to go back to: the tenant is removed from the canary.
    assert_eq!(rollbacks(&d), vec![("sbc-0".to_owned(), None)]);
}

#[test]
fn revert_to_last_good_goes_everywhere_at_once() {
    let mut sim = upgrade(3, strategy(Some(StepSize::count(1)), None, 0));
    sim.desired.revision = rev(1);
    let d = sim.tick(0);
    assert!(applies(&d).is_empty());
    assert_eq!(d.status.phase, TollPolicyPhase::Applied);
}

#[test]
fn restart_mid_rollout_resumes() {
    let mut sim = upgrade(
        5,
        strategy(Some(StepSize::count(1)), Some(StepSize::count(2)), 30),
    );
    sim.tick(0);
    sim.deliver(0, Outcome::Ok);
    sim.tick(30);
    sim.deliver(1, Outcome::Ok);
    // Operator killed: in-flight answers lost; state from status only.
    sim.inflight.clear();
    sim.state = roundtrip(&sim.state);
    let d = sim.tick(1);
    assert!(applies(&d).is_empty(), "sbc-2 is waiting for its answer");
    let d = sim.tick(APPLY_TIMEOUT_SECONDS);
    assert_eq!(applies(&d), vec![("sbc-2".to_owned(), 2)]);
    sim.deliver(2, Outcome::Ok);
    sim.tick(30);
    sim.deliver_all_ok();
    assert_eq!(sim.phase(), TollPolicyPhase::Applied);
}

#[test]
fn status_written() {
    let mut sim = upgrade(2, strategy(None, None, 0));
    sim.tick(0);
    let d = sim.deliver(0, Outcome::Rejected);
    let mut status = tollgate_crds::TollPolicyStatus::default();
    assert!(write_status(&d, &mut status, Some(3), sim.now));
    assert_eq!(status.phase, Some(TollPolicyPhase::Degraded));
    assert_eq!(status.applied.as_deref(), Some("0/2"));
    assert_eq!(status.failures.len(), 1);
    assert_eq!(status.failures[0].reason, "ReloadFailed");
    assert_eq!(status.current_revision, Some(2));
    assert_eq!(status.last_good_revision, Some(1));
    assert!(tollgate_crds::conditions::is_true(
        &status.conditions,
        cond::DEGRADED
    ));
    assert!(
        !write_status(&d, &mut status, Some(3), sim.now + 5),
        "idempotent"
    );
}

#[test]
fn backoff_doubles_to_cap() {
    assert_eq!(backoff(1), 5);
    assert_eq!(backoff(2), 10);
    assert_eq!(backoff(4), 40);
    assert_eq!(backoff(7), 300);
    assert_eq!(backoff(u32::MAX), 300);
}

#[test]
fn quotas() {
    let s = strategy(Some(StepSize::count(1)), Some(StepSize::count(2)), 0);
    assert_eq!(
        (0..4).map(|k| quota(&s, k, 5)).collect::<Vec<_>>(),
        vec![1, 3, 5, 5]
    );
    assert_eq!(last_step(&s, 5), 2);
    let s = strategy(None, Some(StepSize::percent(30)), 0);
    assert_eq!(
        (0..4).map(|k| quota(&s, k, 10)).collect::<Vec<_>>(),
        vec![3, 6, 9, 10]
    );
    let s = strategy(None, None, 0);
    assert_eq!(quota(&s, 0, 7), 7);
    assert_eq!(quota(&s, 0, 0), 0);
}

// ---------------------------------------------------------------- properties

#[derive(Clone, Debug)]
enum Op {
    Deliver(usize, Outcome),
    Tick(i64),
    Pause(bool),
    Promote,
    Abort,
    Anomaly { current: bool },
    NewRevision,
    Join(usize),
    Leave(usize),
    Ready(usize, bool),
    PodRestart(usize),
    OperatorRestart,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Ok),
        1 => Just(Outcome::BadHash),
        1 => Just(Outcome::Rejected),
        1 => Just(Outcome::Unreachable),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // Rollback triggers are rare, so most runs get far into their rollout.
    prop_oneof![
        40 => (0..12usize, outcome()).prop_map(|(i, o)| Op::Deliver(i, o)),
        16 => prop_oneof![Just(1i64), Just(5), Just(30), Just(61), Just(301), Just(1000)]
            .prop_map(Op::Tick),
        4 => any::<bool>().prop_map(Op::Pause),
        2 => Just(Op::Promote),
        1 => Just(Op::Abort),
        1 => any::<bool>().prop_map(|current| Op::Anomaly { current }),
        2 => Just(Op::NewRevision),
        4 => (0..12usize).prop_map(Op::Join),
        2 => (0..12usize).prop_map(Op::Leave),
        4 => (0..12usize, any::<bool>()).prop_map(|(i, r)| Op::Ready(i, r)),
        2 => (0..12usize).prop_map(Op::PodRestart),
        4 => Just(Op::OperatorRestart),
    ]
}

fn step_size() -> impl Strategy<Value = Option<StepSize>> {
    prop_oneof![
        Just(None),
        (1..5u32).prop_map(|c| Some(StepSize::count(c))),
        (1..=100u32).prop_map(|p| Some(StepSize::percent(p))),
    ]
}

#[derive(Clone, Debug)]
struct Scenario {
    /// Per target: present at start, ready, terminating.
    fleet: Vec<(bool, bool, bool)>,
    /// Start from a completed rollout of revision 1 (else from nothing).
    upgrade: bool,
    canary: Option<StepSize>,
    batch: Option<StepSize>,
    bake: u32,
    window: Option<u32>,
    ops: Vec<Op>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(
            (
                prop::bool::weighted(0.8),
                prop::bool::weighted(0.85),
                prop::bool::weighted(0.1),
            ),
            1..=12,
        ),
        any::<bool>(),
        step_size(),
        step_size(),
        prop_oneof![Just(0u32), Just(30), Just(300)],
        prop_oneof![Just(None), Just(Some(0u32)), Just(Some(600))],
        prop::collection::vec(op(), 0..80),
    )
        .prop_map(
            |(fleet, upgrade, canary, batch, bake, window, ops)| Scenario {
                fleet,
                upgrade,
                canary,
                batch,
                bake,
                window,
                ops,
            },
        )
}

fn run(sc: &Scenario) -> Sim {
    let applied = sc.upgrade.then_some(1);
    let targets: Vec<Target> = sc
        .fleet
        .iter()
        .enumerate()
        .map(|(i, (_, ready, terminating))| Target {
            ready: *ready,
            terminating: *terminating,
            ..target(&format!("sbc-{i:02}"), applied)
        })
        .collect();
    let present = sc.fleet.iter().map(|(p, _, _)| *p).collect();
    let state = if sc.upgrade {
        RolloutState {
            mode: Mode::Complete,
            current: Some(rev(1)),
            last_good: Some(rev(1)),
            ..RolloutState::default()
        }
    } else {
        RolloutState::default()
    };
    let desired = Desired {
        revision: rev(2),
        strategy: strategy(sc.canary.clone(), sc.batch.clone(), sc.bake),
        anomaly_window_seconds: sc.window,
    };
    let mut sim = Sim::new(targets, present, desired, state);
    sim.tick(0);
    let n = sim.targets.len();
    for op in &sc.ops {
        match *op {
            Op::Deliver(i, o) => {
                sim.deliver(i % n, o);
            }
            Op::Tick(s) => {
                sim.tick(s);
            }
            Op::Pause(p) => {
                sim.desired.strategy.paused = p;
                sim.tick(0);
            }
            Op::Promote => {
                sim.desired.strategy.promote_revision = Some(sim.desired.revision.number);
                sim.tick(0);
            }
            Op::Abort => {
                sim.desired.strategy.abort_revision = Some(sim.desired.revision.number);
                sim.tick(0);
            }
            Op::Anomaly { current } => {
                let n = sim.desired.revision.number;
                sim.step(vec![Event::Anomaly {
                    revision: if current { n } else { n - 1 },
                    alert: "Spike".into(),
                }]);
            }
            Op::NewRevision => {
                sim.desired.revision = rev(sim.desired.revision.number + 1);
                sim.tick(0);
            }
            Op::Join(i) => {
                let i = i % n;
                if !sim.present[i] {
                    sim.present[i] = true;
                    sim.targets[i] = target(&sim.targets[i].id.clone(), None);
                }
                sim.tick(0);
            }
            Op::Leave(i) => {
                let i = i % n;
                if sim.targets[i].terminating {
                    sim.present[i] = false;
                    sim.inflight.remove(&sim.targets[i].id.clone());
                } else {
                    sim.targets[i].terminating = true;
                }
                sim.tick(0);
            }
            Op::Ready(i, r) => {
                sim.targets[i % n].ready = r;
                sim.tick(0);
            }
            Op::PodRestart(i) => {
                let i = i % n;
                sim.targets[i].applied = None;
                sim.inflight.remove(&sim.targets[i].id.clone());
                sim.tick(0);
            }
            Op::OperatorRestart => {
                sim.inflight.clear();
                sim.state = roundtrip(&sim.state);
                sim.tick(0);
            }
        }
    }
    sim
}

/// From any point, once the world behaves (no pause, every agent answers
/// OK, time passes), the machine settles: the revision everywhere, or the
/// last good one everywhere after a rollback.
fn settle(sim: &mut Sim) {
    sim.desired.strategy.paused = false;
    for t in &mut sim.targets {
        t.ready = true;
    }
    for _ in 0..60 {
        sim.deliver_all_ok();
        sim.tick(RETRY_CAP_SECONDS + 1);
    }
    sim.deliver_all_ok();
    let d = sim.tick(1);
    let eligible: Vec<Target> = sim.visible().into_iter().filter(Target::eligible).collect();
    if eligible.is_empty() {
        return;
    }
    match d.state.mode {
        Mode::Complete => {
            assert_eq!(d.status.phase, TollPolicyPhase::Applied, "{d:#?}");
            assert!(eligible.iter().all(|t| t.applied == d.state.current));
        }
        Mode::RolledBack => {
            assert!(
                eligible.iter().all(|t| t.applied == d.state.last_good),
                "{d:#?}"
            );
        }
        other => panic!("did not settle: {other:?} {d:#?}"),
    }
    assert!(d.status.failures.is_empty());
}

fn cases() -> u32 {
    std::env::var("ROLLOUT_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_interleavings(sc in scenario()) {
        let mut sim = run(&sc);
        settle(&mut sim);
    }
}

/// The generator reaches every interesting situation (so the property test
/// is not vacuous); prints how often.
#[test]
fn generator_covers_the_situations() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut plans = 0;
    let runs = 500;
    for _ in 0..runs {
        let sc = scenario()
            .new_tree(&mut runner)
            .expect("scenario")
            .current();
        let mut sim = run(&sc);
        settle(&mut sim);
        plans += sim.plans;
        for s in sim.seen {
            *counts.entry(s).or_default() += 1;
        }
    }
    println!("{runs} runs, {plans} plans; runs that went through: {counts:#?}");
    for want in [
        "Canary",
        "Progressing",
        "Paused",
        "Degraded",
        "Applied",
        "RolledBack",
        "RolledBack/Aborted",
        "RolledBack/AnomalyDetected",
        "RolledBack/ApplyFailed",
        "Promoted",
        "RemoveTenant",
    ] {
        assert!(
            counts.get(want).copied().unwrap_or(0) >= 5,
            "{want} too rare: {counts:?}"
        );
    }
}

/// `status.targets`: (target, revision held, phase) of every target.
fn target_rows(d: &Decision) -> Vec<(String, Option<i64>, TargetPhase)> {
    d.status
        .targets
        .iter()
        .map(|t| (t.target.clone(), t.revision, t.state))
        .collect()
}

#[test]
fn each_target_is_listed_with_its_revision_and_phase() {
    use TargetPhase::{Current, Failing, NotReady, Pending, Waiting};
    let mut sim = upgrade(4, strategy(Some(StepSize::count(1)), None, 300));
    sim.targets[3].ready = false;
    let d = sim.tick(0);
    assert_eq!(
        target_rows(&d),
        vec![
            ("sbc-0".to_owned(), Some(1), Pending),
            ("sbc-1".to_owned(), Some(1), Waiting),
            ("sbc-2".to_owned(), Some(1), Waiting),
            ("sbc-3".to_owned(), Some(1), NotReady),
        ]
    );
    let d = sim.deliver(0, Outcome::Ok);
    assert_eq!(target_rows(&d)[0], ("sbc-0".to_owned(), Some(2), Current));
    // bake over: the rest; one of them refuses
    sim.tick(300);
    let d = sim.deliver(1, Outcome::Rejected);
    assert_eq!(target_rows(&d)[1], ("sbc-1".to_owned(), Some(1), Failing));
    assert_eq!(target_rows(&d)[2], ("sbc-2".to_owned(), Some(1), Pending));
    assert_eq!(d.status.targets_not_listed, 0);
}

#[test]
fn a_large_fleet_lists_the_targets_not_at_the_current_revision_first() {
    let n = MAX_TARGETS_LISTED + 20;
    let mut sim = upgrade(n, strategy(Some(StepSize::count(5)), None, 300));
    let d = sim.tick(0);
    sim.deliver_all_ok();
    let d2 = sim.tick(1);
    assert_eq!(d.status.targets.len(), MAX_TARGETS_LISTED);
    assert_eq!(d2.status.targets_not_listed, 20);
    assert_eq!(sim.holding(2), 5);
    // the 5 canaries hold revision 2 (Current): among those left out
    assert!(
        d2.status
            .targets
            .iter()
            .all(|t| t.state == TargetPhase::Waiting),
        "{:?}",
        target_rows(&d2)
    );
    let mut names: Vec<&str> = d2
        .status
        .targets
        .iter()
        .map(|t| t.target.as_str())
        .collect();
    let sorted = {
        let mut s = names.clone();
        s.sort_unstable();
        s
    };
    assert_eq!(names, sorted, "sorted by name");
    names.dedup();
    assert_eq!(names.len(), MAX_TARGETS_LISTED);
}
