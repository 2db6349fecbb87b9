//! The operator's Prometheus metrics (text exposition format). Labels are
//! bounded: results, call kinds and target states, never policy or target
//! names.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::runtime::reflector::ObjectRef;
use tollgate_crds::TollPolicy;

/// Histogram bucket bounds, seconds, of a reconcile.
const RECONCILE_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Histogram bucket bounds, seconds, of a rollout.
const ROLLOUT_BUCKETS: [f64; 9] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.len() != bounds.len() {
            self.counts = vec![0; bounds.len()];
        }
        for (i, b) in bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in bounds.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let lb = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{lb} {}", self.sum);
        let _ = writeln!(out, "{name}_count{lb} {}", self.count);
    }
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

/// The metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    reconcile_ok: AtomicU64,
    reconcile_error: AtomicU64,
    reconcile_seconds: Mutex<Histogram>,
    rollout_complete: Mutex<Histogram>,
    rollout_rolled_back: Mutex<Histogram>,
    /// call → result → count
    agent_calls: Mutex<HashMap<(&'static str, &'static str), u64>>,
    targets: Mutex<HashMap<ObjectRef<TollPolicy>, TargetCounts>>,
    /// When each policy's current rollout was first seen (revision, unix s).
    rollout_started: Mutex<HashMap<ObjectRef<TollPolicy>, (i64, i64)>>,
    leader: AtomicU64,
}

impl Metrics {
    /// A reconcile ended.
    pub fn reconciled(&self, ok: bool, seconds: f64) {
        if ok {
            self.reconcile_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reconcile_error.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut h) = self.reconcile_seconds.lock() {
            h.observe(&RECONCILE_BUCKETS, seconds);
        }
    }

    /// An agent call ended. `call`: state/apply/remove; `result`:
    /// ok/rejected/unreachable.
    pub fn agent_call(&self, call: &'static str, result: &'static str) {
        if let Ok(mut m) = self.agent_calls.lock() {
            *m.entry((call, result)).or_insert(0) += 1;
        }
    }

    /// The policy's targets now (`None`: the policy is gone).
    pub fn set_targets(&self, obj: &ObjectRef<TollPolicy>, counts: Option<TargetCounts>) {
        if let Ok(mut m) = self.targets.lock() {
            match counts {
                Some(c) => {
                    m.insert(obj.clone(), c);
                }
                None => {
                    m.remove(obj);
                }
            }
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
            let h = if complete {
                &self.rollout_complete
            } else {
                &self.rollout_rolled_back
            };
            if let Ok(mut h) = h.lock() {
                h.observe(&ROLLOUT_BUCKETS, (now - t0).max(0) as f64);
            }
        }
    }

    /// This process holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(u64::from(leader), Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        o.push_str(
            "# HELP tollgate_operator_reconciles_total Reconciles of TollPolicies, by result.\n",
        );
        o.push_str("# TYPE tollgate_operator_reconciles_total counter\n");
        let _ = writeln!(
            o,
            "tollgate_operator_reconciles_total{{result=\"ok\"}} {}",
            self.reconcile_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "tollgate_operator_reconciles_total{{result=\"error\"}} {}",
            self.reconcile_error.load(Ordering::Relaxed)
        );
        o.push_str("# HELP tollgate_operator_reconcile_duration_seconds Time one reconcile took (agent calls included).\n");
        o.push_str("# TYPE tollgate_operator_reconcile_duration_seconds histogram\n");
        if let Ok(h) = self.reconcile_seconds.lock() {
            h.render(
                &mut o,
                "tollgate_operator_reconcile_duration_seconds",
                "",
                &RECONCILE_BUCKETS,
            );
        }
        o.push_str("# HELP tollgate_operator_rollout_duration_seconds From the first reconcile that saw a rollout to its completion or rollback.\n");
        o.push_str("# TYPE tollgate_operator_rollout_duration_seconds histogram\n");
        for (outcome, h) in [
            ("complete", &self.rollout_complete),
            ("rolled_back", &self.rollout_rolled_back),
        ] {
            if let Ok(h) = h.lock() {
                h.render(
                    &mut o,
                    "tollgate_operator_rollout_duration_seconds",
                    &format!("outcome=\"{outcome}\""),
                    &ROLLOUT_BUCKETS,
                );
            }
        }
        o.push_str("# HELP tollgate_operator_targets Targets of all policies, by state.\n");
        o.push_str("# TYPE tollgate_operator_targets gauge\n");
        let mut sum = TargetCounts::default();
        if let Ok(m) = self.targets.lock() {
            for c in m.values() {
                sum.applied += c.applied;
                sum.pending += c.pending;
                sum.failing += c.failing;
                sum.ineligible += c.ineligible;
            }
        }
        for (state, n) in [
            ("applied", sum.applied),
            ("pending", sum.pending),
            ("failing", sum.failing),
            ("ineligible", sum.ineligible),
        ] {
            let _ = writeln!(o, "tollgate_operator_targets{{state=\"{state}\"}} {n}");
        }
        o.push_str(
            "# HELP tollgate_operator_agent_calls_total Calls to SBC agents, by call and result.\n",
        );
        o.push_str("# TYPE tollgate_operator_agent_calls_total counter\n");
        if let Ok(m) = self.agent_calls.lock() {
            let mut v: Vec<_> = m.iter().collect();
            v.sort();
            for ((call, result), n) in v {
                let _ = writeln!(
                    o,
                    "tollgate_operator_agent_calls_total{{call=\"{call}\",result=\"{result}\"}} {n}"
                );
            }
        }
        o.push_str(
            "# HELP tollgate_operator_leader 1 while this process holds the leader lease.\n",
        );
        o.push_str("# TYPE tollgate_operator_leader gauge\n");
        let _ = writeln!(
            o,
            "tollgate_operator_leader {}",
            self.leader.load(Ordering::Relaxed)
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bounded_series() {
        let m = Metrics::default();
        m.reconciled(true, 0.02);
        m.reconciled(false, 3.0);
        m.agent_call("apply", "ok");
        let obj = ObjectRef::<TollPolicy>::new("p").within("ns");
        m.set_targets(
            &obj,
            Some(TargetCounts {
                applied: 2,
                pending: 1,
                failing: 0,
                ineligible: 0,
            }),
        );
        m.rollout_seen(&obj, 1, 100);
        m.rollout_ended(&obj, 1, 130, true);
        let t = m.render();
        assert!(t.contains("tollgate_operator_reconciles_total{result=\"ok\"} 1"));
        assert!(t.contains("tollgate_operator_reconciles_total{result=\"error\"} 1"));
        assert!(t.contains("tollgate_operator_reconcile_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(t.contains("tollgate_operator_reconcile_duration_seconds_count 2"));
        assert!(t.contains("tollgate_operator_targets{state=\"applied\"} 2"));
        assert!(t.contains(
            "tollgate_operator_rollout_duration_seconds_bucket{outcome=\"complete\",le=\"60\"} 1"
        ));
        assert!(t.contains("tollgate_operator_agent_calls_total{call=\"apply\",result=\"ok\"} 1"));
        assert!(!t.contains("ns"), "no policy names in labels");
    }
}
