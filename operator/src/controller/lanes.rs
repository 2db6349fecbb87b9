//! Rollout work of several policies waiting for the same agents, combined
//! into batches (docs/operator.md, "Batches across policies").
//!
//! Each decision's actions ([`super::reconcile`]'s `act`) become one
//! [`Work`], queued in the lane of the agents it touches (their sorted
//! URLs) before the policy waits for those agents' locks. Whoever takes the
//! locks drains the lane: the work of every policy that queued meanwhile
//! (at most [`Limits`]) is carried out together and each policy gets its
//! own outcomes back. Under no contention a lane holds one work at a time
//! and nothing changes; when many policies change at once (a base edited
//! for every tenant) the works pile up behind the agents and each agent
//! gets one `POST /v1/batch` per round instead of a stage and a commit per
//! policy. The queue has no I/O: the drain's rules are unit-tested here.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tollgate_ir::CompiledPolicy;
use tollgate_rollout::{ApplyResult, Event, RevisionRef};

use super::agents::AgentTarget;

/// What one action of a decision does at its target.
#[derive(Clone, Debug)]
pub enum Planned {
    /// The outcome is known already (no such target, revision missing).
    Done(ApplyResult),
    /// Remove the tenant (a rollback to no revision).
    Remove(AgentTarget),
    /// Apply this revision.
    Apply(AgentTarget, RevisionRef, Arc<CompiledPolicy>),
}

impl Planned {
    /// The agent it goes to.
    pub fn url(&self) -> Option<&str> {
        match self {
            Planned::Done(_) => None,
            Planned::Remove(at) | Planned::Apply(at, ..) => Some(&at.url),
        }
    }
}

/// One decision's actions of one policy: per action its target, the
/// revision it moves to and what is done there.
#[derive(Debug)]
pub struct Work {
    /// The policy's tenant.
    pub tenant: String,
    /// (target id, revision, what is done).
    pub steps: Vec<(String, Option<RevisionRef>, Planned)>,
    /// Where the outcomes go, one [`Event::Outcome`] per step.
    pub reply: oneshot::Sender<Vec<Event>>,
}

impl Work {
    /// Entries the work's largest revision holds (destinations, classes,
    /// networks, rules): what it adds to each agent's batch body.
    pub fn entries(&self) -> usize {
        self.steps
            .iter()
            .filter_map(|(_, _, p)| match p {
                Planned::Apply(_, _, c) => Some(
                    c.destinations.len()
                        + c.classes.len()
                        + c.sources.networks.len()
                        + c.rules.len(),
                ),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

/// How much one round of a lane carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most policies (tenants) per round.
    pub tenants: usize,
    /// Most entries per round (the sum of [`Work::entries`]), so a batch
    /// body stays far under the agent's request limit (256 MiB, about 1.4
    /// million entries); a single larger work still goes alone.
    pub entries: usize,
}

/// The default [`Limits::entries`].
pub const MAX_BATCH_ENTRIES: usize = 1_000_000;

/// The queues, per set of agents (sorted URLs).
#[derive(Debug, Default)]
pub struct Lanes {
    queues: Mutex<HashMap<Vec<String>, VecDeque<Work>>>,
}

impl Lanes {
    /// Queues `work` in the lane of `key` (sorted, deduplicated URLs).
    pub fn join(&self, key: &[String], work: Work) {
        if let Ok(mut q) = self.queues.lock() {
            q.entry(key.to_vec()).or_default().push_back(work);
        }
        // a poisoned map drops the work: its sender goes, and the policy
        // sees its actions abandoned (outcome unreachable, retried)
    }

    /// Takes the lane's next round: the oldest works, first in first out,
    /// one per tenant (a second work of a tenant waits for the next
    /// round), within `limits` (the oldest work always goes, however
    /// large). Empty when another holder of the agents took them.
    pub fn drain(&self, key: &[String], limits: Limits) -> Vec<Work> {
        let Ok(mut q) = self.queues.lock() else {
            return Vec::new();
        };
        let Some(queue) = q.get_mut(key) else {
            return Vec::new();
        };
        let mut taken: Vec<Work> = Vec::new();
        let mut tenants = BTreeSet::new();
        let mut entries = 0usize;
        let mut kept = VecDeque::new();
        while let Some(w) = queue.pop_front() {
            let e = w.entries();
            let fits = taken.is_empty()
                || (taken.len() < limits.tenants
                    && entries.saturating_add(e) <= limits.entries
                    && !tenants.contains(&w.tenant));
            if fits {
                tenants.insert(w.tenant.clone());
                entries = entries.saturating_add(e);
                taken.push(w);
            } else {
                kept.push_back(w);
                if taken.len() >= limits.tenants {
                    break;
                }
            }
        }
        kept.append(queue);
        if kept.is_empty() {
            q.remove(key);
        } else {
            *queue = kept;
        }
        taken
    }

    /// Works queued in every lane.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queues
            .lock()
            .map(|q| q.values().map(VecDeque::len).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn policy(tenant: &str, destinations: usize) -> Arc<CompiledPolicy> {
        let mut p = tollgate_testkit::fake_agent::sample_policy(tenant, 0);
        let d = p.destinations[0].clone();
        p.destinations = vec![d; destinations];
        Arc::new(p)
    }

    fn work(tenant: &str, size: usize) -> (Work, oneshot::Receiver<Vec<Event>>) {
        let (tx, rx) = oneshot::channel();
        let at = AgentTarget {
            url: "http://127.0.0.1:1".into(),
            token: None,
        };
        let r = RevisionRef {
            number: 1,
            hash: "sha256:00".into(),
        };
        let w = Work {
            tenant: tenant.into(),
            steps: vec![(
                "t".into(),
                Some(r.clone()),
                Planned::Apply(at, r, policy(tenant, size)),
            )],
            reply: tx,
        };
        (w, rx)
    }

    fn names(ws: &[Work]) -> Vec<&str> {
        ws.iter().map(|w| w.tenant.as_str()).collect()
    }

    const KEY: &[String] = &[];
    const WIDE: Limits = Limits {
        tenants: 100,
        entries: MAX_BATCH_ENTRIES,
    };

    #[test]
    fn a_lane_drains_in_order_and_empties() {
        let lanes = Lanes::default();
        assert!(lanes.drain(KEY, WIDE).is_empty());
        for t in ["a", "b", "c"] {
            lanes.join(KEY, work(t, 1).0);
        }
        assert_eq!(lanes.queued(), 3);
        assert_eq!(names(&lanes.drain(KEY, WIDE)), ["a", "b", "c"]);
        assert_eq!(lanes.queued(), 0);
        assert!(lanes.drain(KEY, WIDE).is_empty());
    }

    #[test]
    fn lanes_are_per_set_of_agents() {
        let lanes = Lanes::default();
        let one = vec!["http://a".to_owned()];
        let two = vec!["http://a".to_owned(), "http://b".to_owned()];
        lanes.join(&one, work("x", 1).0);
        lanes.join(&two, work("y", 1).0);
        assert_eq!(names(&lanes.drain(&two, WIDE)), ["y"]);
        assert_eq!(names(&lanes.drain(&one, WIDE)), ["x"]);
    }

    #[test]
    fn a_round_holds_at_most_the_limits_and_the_rest_waits_in_order() {
        let lanes = Lanes::default();
        for t in ["a", "b", "c", "d", "e"] {
            lanes.join(KEY, work(t, 10).0);
        }
        let by_count = Limits {
            tenants: 2,
            entries: MAX_BATCH_ENTRIES,
        };
        assert_eq!(names(&lanes.drain(KEY, by_count)), ["a", "b"]);
        // 10 + 10 + 10 entries with classes and the rest: two fit in 25
        let per = work("z", 10).0.entries();
        let by_size = Limits {
            tenants: 100,
            entries: 2 * per + per / 2,
        };
        assert_eq!(names(&lanes.drain(KEY, by_size)), ["c", "d"]);
        assert_eq!(names(&lanes.drain(KEY, by_size)), ["e"]);
    }

    #[test]
    fn the_oldest_work_goes_however_large() {
        let lanes = Lanes::default();
        lanes.join(KEY, work("big", 50).0);
        lanes.join(KEY, work("small", 1).0);
        let tight = Limits {
            tenants: 100,
            entries: 5,
        };
        assert_eq!(names(&lanes.drain(KEY, tight)), ["big"]);
        assert_eq!(names(&lanes.drain(KEY, tight)), ["small"]);
    }

    #[test]
    fn a_tenant_is_in_a_round_once_and_its_second_work_keeps_its_place() {
        let lanes = Lanes::default();
        for t in ["a", "b", "a", "c"] {
            lanes.join(KEY, work(t, 1).0);
        }
        assert_eq!(names(&lanes.drain(KEY, WIDE)), ["a", "b", "c"]);
        assert_eq!(names(&lanes.drain(KEY, WIDE)), ["a"]);
    }

    #[test]
    fn a_dropped_work_abandons_its_receiver() {
        let lanes = Lanes::default();
        let (w, rx) = work("a", 1);
        lanes.join(KEY, w);
        drop(lanes.drain(KEY, WIDE));
        assert!(rx.blocking_recv().is_err());
    }
}
