//! One reconcile of one TollPolicy: finalizer, validation, revision, fleet
//! observation, then the rollout loop (plan → persist the state → act →
//! plan again with the outcomes). It owns the rollout's status fields
//! ([`status::apply_rollout`]); the responses' fields are the responses'
//! ([`responses::upkeep`], [`responses::blocks::ensure`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action as KubeAction;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use tollgate_crds::conditions::toll_policy as cond;
use tollgate_crds::conditions::{STATUS_FALSE, STATUS_TRUE, new_condition, reason, set_condition};
use tollgate_crds::toll_policy::TollPolicyPhase;
use tollgate_crds::{PolicyRevision, SbcFleet, TollPolicy, TollPolicyStatus};
use tollgate_ir::CompiledPolicy;

use super::agents::{
    AgentTarget, BatchItem, BatchResult, CommitResult, MAX_MESSAGE, StageResult, truncate,
};
use super::content::{self, ContentError};
use super::context::{Context, FINALIZER};
use super::error::{Error, RevisionError};
use super::events::publish;
use super::fleet::ResolvedTarget;
use super::lanes::{Planned, Work};
use super::metrics::TargetCounts;
use super::targets::{agent_token, resolve};
use super::{responses, revisions, status};
use tollgate_kamailio::Backend;
use tollgate_kamailio::kamailio::Kamailio;
use tollgate_rollout::{
    Action, ApplyResult, Decision, Desired, Event, EventKind, Mode, RevisionRef, RolloutState,
    Target, plan, write_status,
};

/// Condition reason: the policy's SbcFleet does not exist.
pub const FLEET_NOT_FOUND: &str = "FleetNotFound";

/// How soon a policy whose chunks are missing or wrong is looked at again.
const CHUNKS_RETRY: Duration = Duration::from_secs(10);

fn unix_now() -> i64 {
    Timestamp::now().as_second()
}

/// Why a reconcile stops short of the rollout: the condition it sets,
/// its reason and message.
struct Failed {
    /// Condition type and status.
    condition: (&'static str, &'static str),
    reason: &'static str,
    message: String,
}

impl Failed {
    /// Sets the condition and phase `Failed` on `status`; writes it and
    /// publishes a Warning Event only when that changes the status the
    /// server holds (`server`), so a policy that stays refused is not
    /// written again on every look.
    async fn record(
        self,
        ctx: &Context,
        api: &Api<TollPolicy>,
        policy: &TollPolicy,
        server: &TollPolicyStatus,
        mut status: TollPolicyStatus,
    ) -> Result<(), Error> {
        let (type_, value) = self.condition;
        set_condition(
            &mut status.conditions,
            new_condition(
                type_,
                value,
                self.reason,
                self.message.clone(),
                policy.metadata.generation,
                now_time(),
            ),
        );
        status.phase = Some(TollPolicyPhase::Failed);
        if status != *server {
            status::apply_rollout(api, &policy.name_any(), &status).await?;
            publish(ctx, policy, EventKind::Warning, self.reason, self.message).await;
        }
        Ok(())
    }
}

/// The controller's reconcile function.
pub async fn reconcile(policy: Arc<TollPolicy>, ctx: Arc<Context>) -> Result<KubeAction, Error> {
    let started = Instant::now();
    let ns = policy
        .namespace()
        .ok_or_else(|| Error::Invalid("TollPolicy without a namespace".into()))?;
    let obj = ObjectRef::from(policy.as_ref());
    let api: Api<TollPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let c = Arc::clone(&ctx);
    let r = finalizer(&api, FINALIZER, policy, |ev| async move {
        match ev {
            Finalizer::Apply(p) => apply(p, &c).await,
            Finalizer::Cleanup(p) => cleanup(p, &c).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .reconciled(r.is_ok(), started.elapsed().as_secs_f64());
    if r.is_ok() {
        ctx.note_result(&obj, true);
    }
    r
}

/// The persisted rollout state (default when absent or unreadable).
pub fn load_state(status: &TollPolicyStatus, policy: &str) -> RolloutState {
    let Some(m) = &status.rollout else {
        return RolloutState::default();
    };
    // The API server keeps `null`s and may turn an empty object into one
    // (e.g. `attempts: {}` comes back as `attempts: null`): a null field is
    // an absent one.
    let m: serde_json::Map<String, serde_json::Value> = m
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match serde_json::from_value(serde_json::Value::Object(m)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(policy, error = %e, "status.rollout unreadable; starting from the default state");
            RolloutState::default()
        }
    }
}

fn state_map(s: &RolloutState) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn now_time() -> Time {
    Time(Timestamp::now())
}

/// What the eligible targets hold of the tenant, concurrently
/// ([`super::agents::AgentApi::state_among`]; `known`: the revisions the
/// rollout can name).
async fn observe(
    ctx: &Context,
    resolved: &[ResolvedTarget],
    token: Option<&String>,
    tenant: &str,
    known: &[RevisionRef],
) -> Vec<Target> {
    let n = ctx.config.agent_concurrency.max(1);
    futures::stream::iter(resolved.to_vec())
        .map(|r| async move {
            let mut t = Target {
                id: r.id.clone(),
                ready: r.ready,
                terminating: r.terminating,
                applied: None,
                last_error: None,
            };
            if t.eligible() {
                let at = AgentTarget {
                    url: r.url.clone(),
                    token: token.cloned(),
                };
                match ctx.agents.state_among(&at, tenant, known).await {
                    Ok(s) => {
                        ctx.metrics.agent_call("state", "ok");
                        t.applied = s.applied;
                        t.last_error = s.last_error;
                    }
                    Err(e) => {
                        ctx.metrics.agent_call("state", "unreachable");
                        tracing::debug!(target = %r.id, error = %e, "agent state unavailable");
                    }
                }
            }
            t
        })
        .buffered(n)
        .collect()
        .await
}

fn result_label(r: &ApplyResult) -> &'static str {
    match r {
        ApplyResult::Ok { .. } => "ok",
        ApplyResult::Rejected { .. } => "rejected",
        ApplyResult::Unreachable { .. } => "unreachable",
    }
}

/// What phase 2 of [`two_phase`] does for one action.
enum Step {
    /// The outcome is known already (no such target, revision missing,
    /// refused at stage).
    Done(ApplyResult),
    /// `DELETE` (a rollback to no revision).
    Remove(AgentTarget),
    /// Commit the staged revision; `PUT` it when the agent no longer has
    /// it staged.
    Commit(AgentTarget, RevisionRef, Arc<CompiledPolicy>),
    /// `PUT` the revision (the agent does not stage).
    Put(AgentTarget, RevisionRef, Arc<CompiledPolicy>),
}

/// Carries out the Apply/Rollback actions of one decision (a batch).
///
/// The work joins the lane of its agents ([`lanes`]) and waits for their
/// locks ([`Context::lock_agents`]); whoever holds them next carries out
/// every work queued in that lane meanwhile: alone, in two phases
/// ([`two_phase`]), or with other policies' works, in one `POST /v1/batch`
/// per agent ([`combined`]). Either way this policy gets its own outcomes.
///
/// Returns the outcomes, and updates `targets` for the confirmed ones (a
/// 200 from the agent means its read-back matched, `docs/agent.md`).
async fn act(
    ctx: &Context,
    policy: &TollPolicy,
    current: &Current,
    actions: Vec<(String, Option<RevisionRef>)>,
    resolved: &[ResolvedTarget],
    token: Option<&String>,
    targets: &mut [Target],
) -> Vec<Event> {
    let tenant = policy.spec.tenant.as_str();
    // every revision the batch names, read (and for a chunked policy
    // assembled) once, before waiting for the agents
    let mut contents: Vec<(String, Result<Arc<CompiledPolicy>, String>)> = Vec::new();
    for r in actions.iter().filter_map(|(_, r)| r.as_ref()) {
        if !contents.iter().any(|(h, _)| *h == r.hash) {
            let p = policy_for(ctx, policy, current, r)
                .await
                .map_err(|e| e.to_string());
            contents.push((r.hash.clone(), p));
        }
    }
    let steps: Vec<(String, Option<RevisionRef>, Planned)> = actions
        .into_iter()
        .map(|(target, revision)| {
            let planned = match resolved.iter().find(|r| r.id == target) {
                None => Planned::Done(ApplyResult::Unreachable {
                    message: "target no longer in the fleet".into(),
                }),
                Some(r) => {
                    let at = AgentTarget {
                        url: r.url.clone(),
                        token: token.cloned(),
                    };
                    match &revision {
                        None => Planned::Remove(at),
                        Some(rev) => match content_of(&contents, rev) {
                            Err(message) => Planned::Done(ApplyResult::Rejected {
                                reason: "RevisionMissing".into(),
                                message,
                            }),
                            Ok(p) => Planned::Apply(at, rev.clone(), p),
                        },
                    }
                }
            };
            (target, revision, planned)
        })
        .collect();
    drop(contents);
    let sent: Vec<(String, Option<RevisionRef>)> = steps
        .iter()
        .map(|(t, r, _)| (t.clone(), r.clone()))
        .collect();
    let mut urls: Vec<String> = steps
        .iter()
        .filter_map(|(_, _, p)| p.url().map(str::to_owned))
        .collect();
    urls.sort();
    urls.dedup();
    let (reply, answer) = tokio::sync::oneshot::channel();
    ctx.lanes.join(
        &urls,
        Work {
            tenant: tenant.to_owned(),
            steps,
            reply,
        },
    );
    {
        let _held = ctx.lock_agents(urls.clone()).await;
        let works = ctx.lanes.drain(&urls, ctx.batch_limits());
        if works.len() > 1 {
            combined(ctx, works).await;
        } else {
            for w in works {
                two_phase(ctx, w).await;
            }
        }
    }
    let outcomes = answer.await.unwrap_or_else(|_| {
        // the holder that took this work was cancelled (shutdown)
        sent.into_iter()
            .map(|(target, revision)| Event::Outcome {
                target,
                revision,
                result: ApplyResult::Unreachable {
                    message: "the batch carrying this apply was abandoned".into(),
                },
            })
            .collect()
    });
    for o in &outcomes {
        if let Event::Outcome {
            target,
            revision,
            result: ApplyResult::Ok { hash },
        } = o
            && let Some(t) = targets.iter_mut().find(|t| t.id == *target)
        {
            match revision {
                Some(r) if *hash == r.hash => t.applied = Some(r.clone()),
                Some(_) => {}
                None => t.applied = None,
            }
        }
    }
    outcomes
}

/// One policy's work alone, in two phases, each concurrent
/// (`agent_concurrency` at a time):
///
/// 1. every revision is *staged* on its target (`POST …/stage`: the agent
///    runs all the checks of an apply, trial start and probes included,
///    without touching the live SBC);
/// 2. once every stage of the batch has answered, the staged revisions are
///    *committed* (`POST …/commit`: swap, reload, read back), and the
///    removals (`DELETE`) go out.
///
/// The caller holds the work's agents from the first stage to the last
/// commit, so another policy's batch cannot stage on them in between
/// (which would make these commits check again).
///
/// So the targets of a batch switch within one commit time of each other,
/// and a refusal is known before the batch touches any SBC. A target whose
/// stage is refused (or unanswered) gets that outcome, mapped as a PUT's
/// answer; the batch's other targets still commit: the state machine
/// handles the refusal exactly as when every target was PUT (halt, retry,
/// canary rollback). Fallbacks to a `PUT` in phase 2: a stage answered
/// 404/405 (an agent predating staged applies), a commit answered 409 (the
/// agent lost the stage: restarted, or its stage was replaced) or 404/405.
async fn two_phase(ctx: &Context, work: Work) {
    let Work {
        tenant,
        steps,
        reply,
    } = work;
    let tenant = tenant.as_str();
    let n = ctx.config.agent_concurrency.max(1);
    // phase 1: stage
    let staged: Vec<(String, Option<RevisionRef>, Step)> = futures::stream::iter(steps)
        .map(|(target, revision, planned)| async move {
            let step = match planned {
                Planned::Done(result) => Step::Done(result),
                Planned::Remove(at) => Step::Remove(at),
                Planned::Apply(at, r, p) => match ctx.agents.stage(&at, tenant, &r, &p).await {
                    StageResult::Staged => {
                        ctx.metrics.agent_call("stage", "ok");
                        Step::Commit(at, r, p)
                    }
                    StageResult::Unsupported { status } => {
                        ctx.metrics.agent_call("stage", "unsupported");
                        tracing::debug!(%target, status,
                            "the agent does not stage; applying with a PUT");
                        Step::Put(at, r, p)
                    }
                    StageResult::Failed(result) => {
                        ctx.metrics.agent_call("stage", result_label(&result));
                        Step::Done(result)
                    }
                },
            };
            (target, revision, step)
        })
        .buffer_unordered(n)
        .collect()
        .await;
    // phase 2: commit (every stage of the batch has answered)
    let outcomes: Vec<Event> = futures::stream::iter(staged)
        .map(|(target, revision, step)| async move {
            let result = match step {
                Step::Done(result) => result,
                Step::Remove(at) => remove(ctx, &at, tenant).await,
                Step::Commit(at, r, p) => match ctx.agents.commit(&at, tenant, &r).await {
                    CommitResult::Done(result) => {
                        ctx.metrics.agent_call("commit", result_label(&result));
                        result
                    }
                    CommitResult::Rechecked(result) => {
                        ctx.metrics.agent_call("commit", result_label(&result));
                        tracing::info!(%target, revision = r.number,
                            "the agent checked the revision again at commit (its state changed since the stage)");
                        result
                    }
                    CommitResult::NotStaged { status, message } => {
                        ctx.metrics.agent_call("commit", "not_staged");
                        tracing::info!(%target, status, %message,
                            "the agent no longer holds the staged revision; applying with a PUT");
                        put(ctx, &at, tenant, &r, &p).await
                    }
                },
                Step::Put(at, r, p) => put(ctx, &at, tenant, &r, &p).await,
            };
            Event::Outcome {
                target,
                revision,
                result,
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    // the receiver is gone only when its reconcile was cancelled
    let _ = reply.send(outcomes);
}

/// Where a batch item came from: (work, step).
type Place = (usize, usize);

/// Several policies' works together: per agent, every change the works
/// send it goes in one `POST /v1/batch` (one trial of all the candidates,
/// one write, one reload per touched shard, one read-back; all or nothing
/// on that agent), the agents concurrently. Each tenant's outcome is mapped
/// as a PUT's (or DELETE's) answer. A batch the agent refuses (422: a
/// candidate failed its checks), finds too large (413) or does not know
/// (404/405) changed nothing there: its items are then sent one by one
/// (`PUT`, `DELETE`), so each policy meets its own outcome. Any other
/// failure (no answer, 500) is every item's outcome.
///
/// Unlike [`two_phase`], the targets of one policy do not wait for each
/// other's checks: each agent checks its whole batch before touching its
/// live SBC, and a refusal reaches the state machine exactly as a PUT's.
async fn combined(ctx: &Context, works: Vec<Work>) {
    let n = ctx.config.agent_concurrency.max(1);
    // outcomes[w][s], filled per agent
    let mut outcomes: Vec<Vec<Option<ApplyResult>>> = works
        .iter()
        .map(|w| {
            w.steps
                .iter()
                .map(|(_, _, p)| match p {
                    Planned::Done(r) => Some(r.clone()),
                    _ => None,
                })
                .collect()
        })
        .collect();
    // per agent: the target, (work, step) of each item, the items
    let mut per_agent: Vec<(AgentTarget, Vec<Place>, Vec<BatchItem>)> = Vec::new();
    for (wi, w) in works.iter().enumerate() {
        for (si, (_, _, planned)) in w.steps.iter().enumerate() {
            let (at, change) = match planned {
                Planned::Done(_) => continue,
                Planned::Remove(at) => (at, None),
                Planned::Apply(at, r, p) => (at, Some((r.clone(), Arc::clone(p)))),
            };
            let item = BatchItem {
                tenant: w.tenant.clone(),
                change,
            };
            match per_agent.iter_mut().find(|(a, _, _)| a.url == at.url) {
                Some((_, places, items)) => {
                    places.push((wi, si));
                    items.push(item);
                }
                None => per_agent.push((at.clone(), vec![(wi, si)], vec![item])),
            }
        }
    }
    let results: Vec<(Vec<Place>, Vec<ApplyResult>)> = futures::stream::iter(per_agent)
        .map(|(at, places, items)| async move {
            let results = match ctx.agents.batch(&at, &items).await {
                BatchResult::Done(rs) => {
                    let label = rs.iter().map(result_label).find(|l| *l != "ok");
                    ctx.metrics.agent_call("batch", label.unwrap_or("ok"));
                    rs
                }
                BatchResult::Failed(r) => {
                    ctx.metrics.agent_call("batch", result_label(&r));
                    vec![r; items.len()]
                }
                BatchResult::Split { status, message } => {
                    ctx.metrics.agent_call("batch", "split");
                    tracing::info!(agent = %at.url, status, %message, tenants = items.len(),
                            "the agent did not take the batch; sending its changes one by one");
                    let mut rs = Vec::with_capacity(items.len());
                    for i in &items {
                        rs.push(match &i.change {
                            None => remove(ctx, &at, &i.tenant).await,
                            Some((r, p)) => put(ctx, &at, &i.tenant, r, p).await,
                        });
                    }
                    rs
                }
            };
            (places, results)
        })
        .buffer_unordered(n)
        .collect()
        .await;
    for (places, rs) in results {
        for ((wi, si), r) in places.into_iter().zip(rs) {
            outcomes[wi][si] = Some(r);
        }
    }
    for (w, results) in works.into_iter().zip(outcomes) {
        let events = w
            .steps
            .into_iter()
            .zip(results)
            .map(|((target, revision, _), result)| Event::Outcome {
                target,
                revision,
                result: result.unwrap_or_else(|| ApplyResult::Unreachable {
                    message: "the agent's batch gave no outcome for this tenant".into(),
                }),
            })
            .collect();
        let _ = w.reply.send(events);
    }
}

/// `DELETE /v1/tenants/{tenant}`, counted as call `remove`.
async fn remove(ctx: &Context, at: &AgentTarget, tenant: &str) -> ApplyResult {
    let result = ctx.agents.remove(at, tenant).await;
    ctx.metrics.agent_call("remove", result_label(&result));
    result
}

/// `PUT /v1/tenants/{tenant}` (an agent that does not stage, or lost the
/// stage), counted as call `apply`.
async fn put(
    ctx: &Context,
    at: &AgentTarget,
    tenant: &str,
    r: &RevisionRef,
    p: &CompiledPolicy,
) -> ApplyResult {
    let result = ctx.agents.apply(at, tenant, r, p).await;
    ctx.metrics.agent_call("apply", result_label(&result));
    result
}

/// The spec's compiled policy (assembled from its chunks when it has some)
/// and its content hash.
#[derive(Debug)]
pub struct Current {
    /// `sha256:` hash of `policy`.
    pub hash: String,
    /// The whole policy.
    pub policy: Arc<CompiledPolicy>,
}

/// The policy read for revision `r` in [`act`].
fn content_of(
    contents: &[(String, Result<Arc<CompiledPolicy>, String>)],
    r: &RevisionRef,
) -> Result<Arc<CompiledPolicy>, String> {
    contents.iter().find(|(h, _)| *h == r.hash).map_or_else(
        || Err(format!("revision {} not read", r.number)),
        |(_, p)| p.clone(),
    )
}

/// The compiled policy of revision `r`: the spec's when it is the spec's
/// content, else the PolicyRevision's (a rollback to the last good one),
/// assembled from its chunks when it names some.
async fn policy_for(
    ctx: &Context,
    policy: &TollPolicy,
    current: &Current,
    r: &RevisionRef,
) -> Result<Arc<CompiledPolicy>, RevisionError> {
    if current.hash == r.hash {
        return Ok(Arc::clone(&current.policy));
    }
    let ns = policy.namespace().unwrap_or_default();
    let api: Api<PolicyRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let name = revisions::revision_name(&policy.name_any(), &r.hash);
    match api.get_opt(&name).await {
        Ok(Some(rev)) if rev.spec.hash == r.hash => {
            let p = content::assembled(&ctx.client, &ns, &rev.spec.policy, rev.spec.parts.as_ref())
                .await
                .map_err(|source| RevisionError::Content {
                    name: name.clone(),
                    source,
                })?;
            // an inline revision's hash is its name's; a chunked one's
            // assembly checked its chunks against `parts.hash`, which
            // must be the revision's
            if rev.spec.parts.as_ref().is_some_and(|p| p.hash != r.hash) {
                return Err(RevisionError::Missing {
                    name,
                    number: r.number,
                });
            }
            Ok(Arc::new(p))
        }
        Ok(_) => Err(RevisionError::Missing {
            name,
            number: r.number,
        }),
        Err(source) => Err(RevisionError::Read { name, source }),
    }
}

fn counts(d: &Decision, targets: &[Target]) -> TargetCounts {
    let mut c = TargetCounts::default();
    for t in targets {
        if !t.eligible() {
            c.ineligible += 1;
        } else if t.applied.is_some() && t.applied == d.state.current {
            c.applied += 1;
        } else if d
            .state
            .attempts
            .get(&t.id)
            .is_some_and(|a| a.failure.is_some())
        {
            c.failing += 1;
        } else {
            c.pending += 1;
        }
    }
    c
}

async fn apply(cached: Arc<TollPolicy>, ctx: &Context) -> Result<KubeAction, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let obj = ObjectRef::from(cached.as_ref());
    let api: Api<TollPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    // Read the object itself, not the watch cache: the cache may not have
    // seen this operator's last status write yet, and a stale
    // `status.rollout` would move the rollout back.
    let Some(policy) = api.get_opt(&name).await? else {
        return Ok(KubeAction::await_change());
    };
    if policy.metadata.deletion_timestamp.is_some() {
        // Deleted since the cache saw it: the next reconcile cleans up.
        return Ok(KubeAction::requeue(Duration::from_secs(1)));
    }
    if status::rollout_holds_responses(&policy) {
        // written by an operator before the status was split by owner
        let lock = ctx.status_lock(&obj);
        let _g = lock.lock().await;
        if let Some(fresh) = api.get_opt(&name).await?
            && status::rollout_holds_responses(&fresh)
        {
            status::hand_over_responses(&api, &fresh).await?;
        }
    }
    let generation = policy.metadata.generation;
    let server = policy.status.clone().unwrap_or_default();
    let mut status = server.clone();
    status.observed_generation = generation;

    // The content: inline, or assembled from its chunks (checked against
    // their hashes; refused, never guessed, when one is missing or wrong).
    let compiled = match content::assembled(
        &ctx.client,
        &ns,
        &policy.spec.policy,
        policy.spec.parts.as_ref(),
    )
    .await
    {
        Ok(p) => p,
        Err(ContentError::Chunks(e)) => {
            let failed = Failed {
                condition: (cond::COMPILED, STATUS_FALSE),
                reason: reason::CHUNKS_INVALID,
                message: truncate(&e.to_string(), MAX_MESSAGE),
            };
            failed.record(ctx, &api, &policy, &server, status).await?;
            // chunks applied after their policy arrive within this
            return Ok(KubeAction::requeue(CHUNKS_RETRY));
        }
        Err(e @ ContentError::Read { .. }) => {
            return Err(Error::Invalid(e.to_string()));
        }
    };
    let current = Current {
        hash: revisions::policy_hash(&compiled),
        policy: Arc::new(compiled),
    };
    set_condition(
        &mut status.conditions,
        new_condition(
            cond::COMPILED,
            STATUS_TRUE,
            reason::COMPILE_SUCCEEDED,
            if policy.spec.parts.is_some() {
                "spec.policy and its PolicyChunks assemble into a compiled policy"
            } else {
                "spec.policy is a compiled policy"
            },
            generation,
            now_time(),
        ),
    );

    // The revision this content already is, if the rollout knows it (the
    // current or the last good one): validated and recorded before, so
    // neither rendered nor listed again (a resync of many unchanged
    // policies costs a GET and the agents' state each).
    let known: Option<RevisionRef> = {
        let prior = load_state(&status, &name);
        [prior.current, prior.last_good]
            .into_iter()
            .flatten()
            .find(|r| r.hash == current.hash)
    };

    // Validation: the policy renders for the fleet's backend. The agent's
    // trial start and probes are the second gate, per target.
    let rendered = match known {
        Some(_) => Ok(()),
        None => Kamailio
            .render_tenant(&current.policy, "validate", Timestamp::now())
            .map(|_| ()),
    };
    if let Err(e) = rendered {
        let failed = Failed {
            condition: (cond::VALIDATED, STATUS_FALSE),
            reason: reason::VALIDATION_FAILED,
            message: truncate(&e.to_string(), MAX_MESSAGE),
        };
        failed.record(ctx, &api, &policy, &server, status).await?;
        return Ok(KubeAction::await_change());
    }
    set_condition(
        &mut status.conditions,
        new_condition(
            cond::VALIDATED,
            STATUS_TRUE,
            reason::VALIDATION_SUCCEEDED,
            "renders for the kamailio backend; each agent trial-starts it before applying",
            generation,
            now_time(),
        ),
    );

    let fleets: Api<SbcFleet> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(fleet) = fleets.get_opt(&policy.spec.fleet.name).await? else {
        let failed = Failed {
            condition: (cond::DEGRADED, STATUS_TRUE),
            reason: FLEET_NOT_FOUND,
            message: format!("SbcFleet {} not found in {ns}", policy.spec.fleet.name),
        };
        failed.record(ctx, &api, &policy, &server, status).await?;
        return Ok(KubeAction::requeue(ctx.config.idle_requeue));
    };

    // whether the tenant's limits count over the whole fleet: the fleet's
    // condition, copied (a change of the fleet's status wakes this policy)
    status::copy_fleet_counting(
        &mut status.conditions,
        &policy.spec.fleet.name,
        fleet.status.as_ref(),
        generation,
    );

    let mut state = load_state(&status, &name);
    let keep: Vec<i64> = [&state.current, &state.last_good]
        .into_iter()
        .flatten()
        .map(|r| r.number)
        .collect();
    let rev_api: Api<PolicyRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let revision = match known {
        Some(r) => r,
        None => revisions::ensure(&rev_api, &policy, &current.hash, &keep).await?,
    };

    let resolved = resolve(ctx, &ns, &fleet).await?;
    let token = agent_token(ctx, &ns, &fleet).await?;
    let tenant = policy.spec.tenant.clone();
    // Responses: drop expired ones, lift released ones (a person's
    // annotation); the blocks in force are ensured after the rollout.
    let active = responses::upkeep(ctx, &policy, &resolved, token.as_ref()).await?;
    let known: Vec<RevisionRef> = std::iter::once(revision.clone())
        .chain(state.current.clone())
        .chain(state.last_good.clone())
        .collect();
    let mut targets = observe(ctx, &resolved, token.as_ref(), &tenant, &known).await;
    let desired = Desired {
        revision,
        strategy: policy.spec.rollout.clone(),
        anomaly_window_seconds: None,
    };
    let mut events = ctx.anomalies.take(&obj);
    let mut written = server;
    let max = ctx.config.max_iterations.max(1);
    let mut requeue: Option<i64> = None;
    for i in 0..max {
        let now = unix_now();
        let before_mode = state.mode;
        let d = plan(&state, &desired, &targets, now, &events);
        write_status(&d, &mut status, generation, now);
        status.observed_generation = generation;
        status.rollout = state_map(&d.state);
        // Write-ahead: the state is persisted before anything is acted on.
        if status != written {
            status::apply_rollout(&api, &name, &status).await?;
            written = status.clone();
        }
        match (d.state.mode, &d.state.current) {
            (Mode::RollingOut, Some(c)) => ctx.metrics.rollout_seen(&obj, c.number, now),
            (Mode::Complete | Mode::RolledBack, Some(c)) if before_mode == Mode::RollingOut => {
                ctx.metrics
                    .rollout_ended(&obj, c.number, now, d.state.mode == Mode::Complete);
            }
            _ => {}
        }
        let mut work = Vec::new();
        requeue = None;
        for a in &d.actions {
            match a {
                Action::Apply { target, revision } => {
                    work.push((target.clone(), Some(revision.clone())));
                }
                Action::Rollback { target, to } => work.push((target.clone(), to.clone())),
                Action::Event {
                    kind,
                    reason,
                    message,
                } => publish(ctx, &policy, *kind, reason, message.clone()).await,
                Action::RequeueAfter(s) => {
                    requeue = Some(requeue.map_or(*s, |r: i64| r.min(*s)));
                }
                Action::SetCondition { .. } => {}
            }
        }
        ctx.metrics.set_targets(&obj, Some(counts(&d, &targets)));
        state = d.state;
        if work.is_empty() {
            break;
        }
        if i + 1 == max {
            // The decision's applies are recorded as sent: the machine
            // re-sends them after APPLY_TIMEOUT_SECONDS. Come back soon.
            tracing::warn!(policy = %obj, "rollout loop hit its iteration cap");
            requeue = Some(1);
            break;
        }
        events = act(
            ctx,
            &policy,
            &current,
            work,
            &resolved,
            token.as_ref(),
            &mut targets,
        )
        .await;
    }
    // Every eligible target (a new pod too) holds the blocks in force;
    // come back when the next declared hold ends.
    responses::blocks::ensure(ctx, &policy, &resolved, token.as_ref(), &active).await;
    if let Some(e) = responses::rules::next_expiry(&active) {
        let s = e.saturating_sub(unix_now()).max(1);
        requeue = Some(requeue.map_or(s, |r| r.min(s)));
    }
    let after = match requeue {
        Some(s) => Duration::from_secs(s.clamp(1, 86_400).unsigned_abs()),
        None => ctx.config.idle_requeue,
    };
    Ok(KubeAction::requeue(after))
}

async fn cleanup(policy: Arc<TollPolicy>, ctx: &Context) -> Result<KubeAction, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let fleets: Api<SbcFleet> = Api::namespaced(ctx.client.clone(), &ns);
    match fleets.get_opt(&policy.spec.fleet.name).await? {
        // The fleet is gone: nothing says where the tenant was applied, so
        // deletion goes on (a missing fleet must not block it forever).
        None => {
            tracing::warn!(policy = %name, fleet = %policy.spec.fleet.name,
                "fleet not found at deletion; the tenant cannot be removed from its former targets");
            publish(
                ctx,
                &policy,
                EventKind::Warning,
                FLEET_NOT_FOUND,
                format!(
                    "SbcFleet {} not found: tenant {} not removed from its former targets",
                    policy.spec.fleet.name, policy.spec.tenant
                ),
            )
            .await;
        }
        Some(fleet) => {
            let resolved: Vec<ResolvedTarget> = resolve(ctx, &ns, &fleet)
                .await?
                .into_iter()
                .filter(|t| !t.terminating)
                .collect();
            let token = agent_token(ctx, &ns, &fleet).await?;
            let tenant = policy.spec.tenant.as_str();
            let n = ctx.config.agent_concurrency.max(1);
            let token = token.as_ref();
            let failed: Vec<String> = futures::stream::iter(resolved)
                .map(|r| async move {
                    let at = AgentTarget {
                        url: r.url.clone(),
                        token: token.cloned(),
                    };
                    let res = ctx.agents.remove(&at, tenant).await;
                    ctx.metrics.agent_call("remove", result_label(&res));
                    match res {
                        ApplyResult::Ok { .. } => None,
                        ApplyResult::Rejected { message, .. }
                        | ApplyResult::Unreachable { message } => {
                            Some(format!("{}: {}", r.id, truncate(&message, 200)))
                        }
                    }
                })
                .buffer_unordered(n)
                .filter_map(|x| async move { x })
                .collect()
                .await;
            if !failed.is_empty() {
                let since = policy
                    .metadata
                    .deletion_timestamp
                    .as_ref()
                    .map_or(unix_now(), |t| t.0.as_second());
                let grace = i64::try_from(ctx.config.cleanup_grace.as_secs()).unwrap_or(i64::MAX);
                let msg = truncate(&failed.join("; "), MAX_MESSAGE);
                if unix_now().saturating_sub(since) < grace {
                    return Err(Error::Cleanup(msg));
                }
                publish(
                    ctx,
                    &policy,
                    EventKind::Warning,
                    "CleanupIncomplete",
                    format!("gave up removing tenant {tenant} after the grace period: {msg}"),
                )
                .await;
            }
        }
    }
    let rev_api: Api<PolicyRevision> = Api::namespaced(ctx.client.clone(), &ns);
    revisions::delete_all(&rev_api, &name).await?;
    ctx.metrics
        .set_targets(&ObjectRef::from(policy.as_ref()), None);
    Ok(KubeAction::await_change())
}
