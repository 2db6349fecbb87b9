//! The operator's Prometheus metrics, registered in the process's one
//! registry (`tollgate_plumbing::metrics`). Labels are bounded: results,
//! call kinds and target states, never policy or target names.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::runtime::reflector::ObjectRef;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tollgate_crds::TollPolicy;
use tollgate_plumbing::metrics::Registry;

/// Histogram bucket bounds, seconds, of a reconcile.
const RECONCILE_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Histogram bucket bounds, seconds, of a rollout.
const ROLLOUT_BUCKETS: [f64; 9] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentCallLabels {
    call: &'static str,
    result: &'static str,
}

fn rollout_histogram() -> Histogram {
    Histogram::new(ROLLOUT_BUCKETS)
}

/// Targets of one policy by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetCounts {
    /// Confirmed the current revision.
    pub applied: u64,
    /// Eligible, not on the current revision yet, no failure.
    pub pending: u64,
    /// With an active failure.
    pub failing: u64,
    /// Not ready or terminating.
    pub ineligible: u64,
}

/// The metrics: handles that [`Metrics::register`] puts in a registry
/// (a clone of a handle shares its value).
#[derive(Debug)]
pub struct Metrics {
    reconciles: Family<ResultLabel, Counter>,
    reconcile_seconds: Histogram,
    rollout_seconds: Family<OutcomeLabel, Histogram>,
    targets: Family<StateLabel, Gauge>,
    agent_calls: Family<AgentCallLabels, Counter>,
    leader: Gauge,
    /// Each policy's targets; `targets` is their sum.
    per_policy: Mutex<HashMap<ObjectRef<TollPolicy>, TargetCounts>>,
    /// When each policy's current rollout was first seen (revision, unix s).
    rollout_started: Mutex<HashMap<ObjectRef<TollPolicy>, (i64, i64)>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let m = Metrics {
            reconciles: Family::default(),
            reconcile_seconds: Histogram::new(RECONCILE_BUCKETS),
            rollout_seconds: Family::new_with_constructor(rollout_histogram),
            targets: Family::default(),
            agent_calls: Family::default(),
            leader: Gauge::default(),
            per_policy: Mutex::default(),
            rollout_started: Mutex::default(),
        };
        // the bounded series are there, at 0, from the first scrape on
        for result in ["ok", "error"] {
            let _ = m.reconciles.get_or_create(&ResultLabel { result });
        }
        for outcome in ["complete", "rolled_back"] {
            let _ = m.rollout_seconds.get_or_create(&OutcomeLabel { outcome });
        }
        m.set_target_sums(&HashMap::new());
        m
    }
}

impl Metrics {
    /// Registers the metrics in `registry` (the process's one registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tollgate_operator_reconciles",
            "Reconciles of TollPolicies, by result",
            self.reconciles.clone(),
        );
        registry.register(
            "tollgate_operator_reconcile_duration_seconds",
            "Time one reconcile took (agent calls included)",
            self.reconcile_seconds.clone(),
        );
        registry.register(
            "tollgate_operator_rollout_duration_seconds",
            "From the first reconcile that saw a rollout to its completion or rollback",
            self.rollout_seconds.clone(),
        );
        registry.register(
            "tollgate_operator_targets",
            "Targets of all policies, by state",
            self.targets.clone(),
        );
        registry.register(
            "tollgate_operator_agent_calls",
            "Calls to SBC agents, by call and result",
            self.agent_calls.clone(),
        );
        registry.register(
            "tollgate_operator_leader",
            "1 while this process holds the leader lease",
            self.leader.clone(),
        );
    }

    /// The exposition text of these metrics alone (a registry of their
    /// own; the binary serves the process's registry instead).
    pub fn render(&self) -> String {
        let mut r = Registry::default();
        self.register(&mut r);
        tollgate_plumbing::metrics::encode(&r)
    }

    /// A reconcile ended.
    pub fn reconciled(&self, ok: bool, seconds: f64) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        self.reconcile_seconds.observe(seconds);
    }

    /// An agent call ended. `call`: state/apply/remove; `result`:
    /// ok/rejected/unreachable.
    pub fn agent_call(&self, call: &'static str, result: &'static str) {
        self.agent_calls
            .get_or_create(&AgentCallLabels { call, result })
            .inc();
    }

    fn set_target_sums(&self, per_policy: &HashMap<ObjectRef<TollPolicy>, TargetCounts>) {
        let mut sum = TargetCounts::default();
        for c in per_policy.values() {
            sum.applied += c.applied;
            sum.pending += c.pending;
            sum.failing += c.failing;
            sum.ineligible += c.ineligible;
        }
        for (state, n) in [
            ("applied", sum.applied),
            ("pending", sum.pending),
            ("failing", sum.failing),
            ("ineligible", sum.ineligible),
        ] {
            self.targets
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The policy's targets now (`None`: the policy is gone).
    pub fn set_targets(&self, obj: &ObjectRef<TollPolicy>, counts: Option<TargetCounts>) {
        if let Ok(mut m) = self.per_policy.lock() {
            match counts {
                Some(c) => {
                    m.insert(obj.clone(), c);
                }
                None => {
                    m.remove(obj);
                }
            }
            // under the lock: concurrent reconciles set the sums in turn
            self.set_target_sums(&m);
        }
        if counts.is_none()
            && let Ok(mut s) = self.rollout_started.lock()
        {
            s.remove(obj);
        }
    }

    /// A rollout of `revision` is under way at `now` (remembers the first
    /// time this process saw it).
    pub fn rollout_seen(&self, obj: &ObjectRef<TollPolicy>, revision: i64, now: i64) {
        if let Ok(mut s) = self.rollout_started.lock() {
            let e = s.entry(obj.clone()).or_insert((revision, now));
            if e.0 != revision {
                *e = (revision, now);
            }
        }
    }

    /// The rollout of `revision` ended (completed or rolled back) at `now`.
    pub fn rollout_ended(
        &self,
        obj: &ObjectRef<TollPolicy>,
        revision: i64,
        now: i64,
        complete: bool,
    ) {
        let started = self
            .rollout_started
            .lock()
            .ok()
            .and_then(|mut s| s.remove(obj))
            .filter(|(r, _)| *r == revision);
        if let Some((_, t0)) = started {
            let outcome = if complete { "complete" } else { "rolled_back" };
            self.rollout_seconds
                .get_or_create(&OutcomeLabel { outcome })
                .observe((now - t0).max(0) as f64);
        }
    }

    /// This process holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

#[cfg(test)]
pub(crate) mod tests;
