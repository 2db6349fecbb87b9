//! `SbcFleet.status`: a second, small controller (run next to the
//! TollPolicy controller, so only by the leader) that resolves each fleet's
//! targets ([`super::fleet`]; terminating pods left out), asks each
//! target's agent `GET /healthz` (no token: the endpoint needs none), and
//! writes `targets`, `ready`, `degraded`, `observedGeneration` and the
//! conditions `Resolved`, `Ready` and (when the fleet counts its limits in
//! a store) `FleetCounting` with one server-side apply of the status. A
//! status equal to the one on the server is not written. Each fleet is
//! looked at again every [`super::Config::fleet_status_interval`] and when
//! it or one of its pods changes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action as KubeAction;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tollgate_agent_api::{FleetCounting, FleetMode};
use tollgate_crds::conditions::sbc_fleet as cond;
use tollgate_crds::conditions::{STATUS_FALSE, STATUS_TRUE, new_condition, reason, set_condition};
use tollgate_crds::{SbcFleet, SbcFleetStatus};

use super::agents::AgentTarget;
use super::context::{Context, MANAGER};
use super::error::Error;
use super::fleet::ResolvedTarget;
use super::targets;

/// Most target ids a `Ready=False` message names.
pub const MAX_NAMED: usize = 10;

/// One target and whether its agent answered `GET /healthz` with 200.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Target id (`pod/<name>` or `<host>:<port>`).
    pub id: String,
    /// The agent answered 200.
    pub answered: bool,
    /// Its fleet-wide counting (`None`: the SBC counts alone by
    /// configuration, or did not answer).
    pub fleet: Option<FleetCounting>,
}

/// Names of at most [`MAX_NAMED`] ids, then "and N more".
fn named(ids: &[&str]) -> String {
    let mut s = ids
        .iter()
        .take(MAX_NAMED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > MAX_NAMED {
        s.push_str(&format!(" and {} more", ids.len() - MAX_NAMED));
    }
    s
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The status for `probes` (pure). Only the `Resolved` and `Ready`
/// conditions are produced (conditions of other types in `old` are not
/// this controller's and are left out of its apply); a condition whose
/// status did not change keeps its `lastTransitionTime` from `old`.
pub fn compute(
    generation: Option<i64>,
    probes: &[Probe],
    old: Option<&SbcFleetStatus>,
    now: &Time,
) -> SbcFleetStatus {
    let mut conditions: Vec<Condition> = old
        .map(|s| {
            s.conditions
                .iter()
                .filter(|c| cond::ALL.contains(&c.type_.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let targets = probes.len();
    let down: Vec<&str> = probes
        .iter()
        .filter(|p| !p.answered)
        .map(|p| p.id.as_str())
        .collect();
    let ready = targets - down.len();
    let c = |type_, status, reason, message: String| {
        new_condition(type_, status, reason, message, generation, now.clone())
    };
    let resolved = if targets > 0 {
        c(
            cond::RESOLVED,
            STATUS_TRUE,
            reason::TARGETS_FOUND,
            format!("{targets} target(s)"),
        )
    } else {
        c(
            cond::RESOLVED,
            STATUS_FALSE,
            reason::NO_TARGETS,
            "the selector or endpoints resolved to no target".into(),
        )
    };
    let ready_c = if targets == 0 {
        c(
            cond::READY,
            STATUS_FALSE,
            reason::NO_TARGETS,
            "no target to ask".into(),
        )
    } else if down.is_empty() {
        c(
            cond::READY,
            STATUS_TRUE,
            reason::AGENTS_READY,
            format!("{ready}/{targets} agents answer GET /healthz"),
        )
    } else {
        c(
            cond::READY,
            STATUS_FALSE,
            reason::AGENTS_NOT_READY,
            format!(
                "{ready}/{targets} agents answer GET /healthz; not answering: {}",
                named(&down)
            ),
        )
    };
    set_condition(&mut conditions, resolved);
    set_condition(&mut conditions, ready_c);
    // Fleet-wide counting: only when some SBC counts over the fleet. An
    // answering SBC that decides alone (cut off from the store, or not
    // configured for it) is degraded.
    let answering: Vec<&Probe> = probes.iter().filter(|p| p.answered).collect();
    let counting = answering.iter().any(|p| p.fleet.is_some());
    let alone: Vec<&str> = answering
        .iter()
        .filter(|p| {
            p.fleet
                .as_ref()
                .is_none_or(|f| f.mode == FleetMode::Degraded)
        })
        .map(|p| p.id.as_str())
        .collect();
    let degraded = if counting { alone.len() } else { 0 };
    if counting {
        let members = answering
            .iter()
            .filter_map(|p| p.fleet.as_ref())
            .filter(|f| f.mode == FleetMode::Fleet)
            .map(|f| f.members)
            .max()
            .unwrap_or(0);
        let fc = if alone.is_empty() {
            c(
                cond::FLEET_COUNTING,
                STATUS_TRUE,
                reason::COUNTING_FLEET_WIDE,
                format!(
                    "{n}/{n} answering SBCs count limits over the fleet ({members} alive in the store)",
                    n = answering.len()
                ),
            )
        } else {
            c(
                cond::FLEET_COUNTING,
                STATUS_FALSE,
                reason::COUNTING_DEGRADED,
                format!(
                    "{}/{} answering SBCs decide limits alone, each with its share of every level (the fleet's store out of reach, or not configured): {}",
                    alone.len(),
                    answering.len(),
                    named(&alone)
                ),
            )
        };
        // `conditions` holds the old one (kept from `old`): its transition
        // time stays when the status is the same
        set_condition(&mut conditions, fc);
    } else {
        conditions.retain(|k| k.type_ != cond::FLEET_COUNTING);
    }
    // display order, whatever order `old` had
    conditions.sort_by_key(|c| cond::ALL.iter().position(|t| *t == c.type_));
    SbcFleetStatus {
        observed_generation: generation,
        conditions,
        targets: count(targets),
        ready: count(ready),
        degraded: count(degraded),
    }
}

/// Whether writing `new` would change what `old` holds of this
/// controller's fields (its conditions, counts, observedGeneration).
pub fn unchanged(old: Option<&SbcFleetStatus>, new: &SbcFleetStatus) -> bool {
    let Some(old) = old else {
        return false;
    };
    let ours: Vec<&Condition> = old
        .conditions
        .iter()
        .filter(|c| cond::ALL.contains(&c.type_.as_str()))
        .collect();
    old.observed_generation == new.observed_generation
        && old.targets == new.targets
        && old.ready == new.ready
        && old.degraded == new.degraded
        && ours.len() == new.conditions.len()
        && new.conditions.iter().all(|n| ours.contains(&n))
}

/// `GET /healthz` on every target that is not terminating, concurrently.
async fn probe(ctx: &Context, resolved: &[ResolvedTarget]) -> Vec<Probe> {
    let n = ctx.config.agent_concurrency.max(1);
    let live: Vec<ResolvedTarget> = resolved
        .iter()
        .filter(|r| !r.terminating)
        .cloned()
        .collect();
    futures::stream::iter(live)
        .map(|r| async move {
            let at = AgentTarget {
                url: r.url.clone(),
                token: None,
            };
            let (answered, fleet) = match ctx.agents.health(&at).await {
                Ok(fleet) => {
                    ctx.metrics.agent_call("health", "ok");
                    (true, fleet)
                }
                Err(e) => {
                    ctx.metrics.agent_call("health", "unreachable");
                    tracing::debug!(target = %r.id, error = %e, "agent health");
                    (false, None)
                }
            };
            Probe {
                id: r.id,
                answered,
                fleet,
            }
        })
        .buffered(n)
        .collect()
        .await
}

/// One look at one fleet: resolve, probe, write the status if it changed.
pub async fn reconcile_fleet(fleet: Arc<SbcFleet>, ctx: Arc<Context>) -> Result<KubeAction, Error> {
    let ns = fleet
        .namespace()
        .ok_or_else(|| Error::Invalid("SbcFleet without a namespace".into()))?;
    let name = fleet.name_any();
    let resolved = targets::resolve(&ctx, &ns, &fleet).await?;
    let probes = probe(&ctx, &resolved).await;
    let status = compute(
        fleet.meta().generation,
        &probes,
        fleet.status.as_ref(),
        &Time(Timestamp::now()),
    );
    if !unchanged(fleet.status.as_ref(), &status) {
        let api: Api<SbcFleet> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({
            "apiVersion": SbcFleet::api_version(&()),
            "kind": SbcFleet::kind(&()),
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        tracing::debug!(fleet = %name, namespace = %ns, targets = status.targets, ready = status.ready, degraded = status.degraded, "fleet status written");
    }
    Ok(KubeAction::requeue(ctx.config.fleet_status_interval))
}

/// Errors: log and look again in 10 s.
pub fn error_policy(fleet: Arc<SbcFleet>, error: &Error, _ctx: Arc<Context>) -> KubeAction {
    tracing::warn!(fleet = %ObjectRef::from(fleet.as_ref()), error = %error, "fleet status failed");
    KubeAction::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_crds::conditions::find_condition;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn probes(states: &[bool]) -> Vec<Probe> {
        states
            .iter()
            .enumerate()
            .map(|(i, a)| Probe {
                id: format!("10.0.0.{i}:9443"),
                answered: *a,
                fleet: None,
            })
            .collect()
    }

    fn get<'a>(s: &'a SbcFleetStatus, t: &str) -> &'a Condition {
        find_condition(&s.conditions, t).unwrap()
    }

    #[test]
    fn all_answer() {
        let s = compute(Some(3), &probes(&[true, true, true]), None, &at(10));
        assert_eq!((s.targets, s.ready, s.observed_generation), (3, 3, Some(3)));
        let r = get(&s, cond::RESOLVED);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("True", "TargetsFound")
        );
        let r = get(&s, cond::READY);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("True", "AgentsReady")
        );
        assert_eq!(r.observed_generation, Some(3));
        assert_eq!(s.conditions.len(), 2);
        assert_eq!(s.conditions[0].type_, cond::RESOLVED);
    }

    #[test]
    fn one_down_named_and_transition_time_moves() {
        let before = compute(Some(1), &probes(&[true, true, true]), None, &at(10));
        let s = compute(
            Some(1),
            &probes(&[true, false, true]),
            Some(&before),
            &at(20),
        );
        assert_eq!((s.targets, s.ready), (3, 2));
        let r = get(&s, cond::READY);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "AgentsNotReady")
        );
        assert!(
            r.message.ends_with("not answering: 10.0.0.1:9443"),
            "{}",
            r.message
        );
        assert_eq!(r.last_transition_time, at(20));
        // Resolved did not change status: its time stays
        assert_eq!(get(&s, cond::RESOLVED).last_transition_time, at(10));
        assert!(!unchanged(Some(&before), &s));
    }

    fn counting(modes: &[Option<FleetMode>]) -> Vec<Probe> {
        modes
            .iter()
            .enumerate()
            .map(|(i, m)| Probe {
                id: format!("pod/sbc-{i}"),
                answered: true,
                fleet: m.map(|mode| FleetCounting {
                    changed_unix: 1,
                    members: 3,
                    mode,
                }),
            })
            .collect()
    }

    #[test]
    fn fleet_counting_condition() {
        use FleetMode::{Degraded, Fleet};
        // no SBC counts over the fleet: no condition, nothing degraded
        let s = compute(Some(1), &probes(&[true, true]), None, &at(1));
        assert!(find_condition(&s.conditions, cond::FLEET_COUNTING).is_none());
        assert_eq!(s.degraded, 0);
        // all fleet-wide
        let ok = compute(Some(1), &counting(&[Some(Fleet); 3]), None, &at(1));
        let c = get(&ok, cond::FLEET_COUNTING);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), ok.degraded),
            ("True", "CountingFleetWide", 0)
        );
        assert!(
            c.message.contains("3/3") && c.message.contains("3 alive"),
            "{}",
            c.message
        );
        assert_eq!(ok.conditions.last().unwrap().type_, cond::FLEET_COUNTING);
        // one cut off the store, one not configured: both decide alone
        let d = compute(
            Some(1),
            &counting(&[Some(Fleet), Some(Degraded), None]),
            Some(&ok),
            &at(9),
        );
        let c = get(&d, cond::FLEET_COUNTING);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), d.degraded),
            ("False", "CountingDegraded", 2)
        );
        assert!(c.message.ends_with("pod/sbc-1, pod/sbc-2"), "{}", c.message);
        assert_eq!(c.last_transition_time, at(9));
        assert!(!unchanged(Some(&ok), &d));
        // rejoined: True again, a new transition; the same again: no write
        let back = compute(Some(1), &counting(&[Some(Fleet); 3]), Some(&d), &at(20));
        assert_eq!(
            get(&back, cond::FLEET_COUNTING).last_transition_time,
            at(20)
        );
        let same = compute(Some(1), &counting(&[Some(Fleet); 3]), Some(&back), &at(30));
        assert_eq!(same, back);
        assert!(unchanged(Some(&back), &same));
        // an SBC that does not answer is not counted as degraded (Ready says it)
        let mut p = counting(&[Some(Fleet), Some(Fleet)]);
        p[1].answered = false;
        p[1].fleet = None;
        let s = compute(Some(1), &p, None, &at(1));
        assert_eq!(s.degraded, 0);
        assert!(get(&s, cond::FLEET_COUNTING).message.starts_with("1/1"));
        // the store no longer used by any SBC: the condition goes away
        let gone = compute(Some(1), &probes(&[true, true, true]), Some(&back), &at(40));
        assert!(find_condition(&gone.conditions, cond::FLEET_COUNTING).is_none());
    }

    #[test]
    fn no_targets() {
        let s = compute(Some(1), &[], None, &at(1));
        assert_eq!((s.targets, s.ready), (0, 0));
        for t in cond::ALL {
            if t == cond::FLEET_COUNTING {
                continue;
            }
            let c = get(&s, t);
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                ("False", "NoTargets")
            );
        }
    }

    #[test]
    fn message_names_at_most_ten() {
        let s = compute(Some(1), &probes(&[false; 14]), None, &at(1));
        let m = &get(&s, cond::READY).message;
        assert_eq!(m.matches(":9443").count(), MAX_NAMED);
        assert!(m.ends_with(" and 4 more"), "{m}");
        assert_eq!(s.ready, 0);
    }

    #[test]
    fn same_state_is_a_no_op_and_foreign_conditions_are_ignored() {
        let first = compute(Some(2), &probes(&[true, false]), None, &at(1));
        let mut on_server = first.clone();
        on_server.conditions.insert(
            0,
            new_condition("SomeoneElses", STATUS_TRUE, "X", "", None, at(1)),
        );
        let again = compute(Some(2), &probes(&[true, false]), Some(&on_server), &at(99));
        assert_eq!(again, first);
        assert!(unchanged(Some(&on_server), &again));
        // a new generation is a change
        let next = compute(Some(3), &probes(&[true, false]), Some(&on_server), &at(99));
        assert!(!unchanged(Some(&on_server), &next));
        assert!(!unchanged(None, &next));
    }
}
