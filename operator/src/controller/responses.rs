//! Declared responses to fraud alerts, and rollbacks from alerts: the
//! operator's [`AlertSink`] ([`OperatorSink`]) and the pure rules the sink
//! and the reconciler share (docs/alerts.md, docs/operator.md).
//!
//! - A `Respond` action applies the policy's declared responses for the
//!   alert's trigger ([`responses_for`]): `alert` is an Event only; a block
//!   is first pushed to every target of the fleet in parallel
//!   (`PUT /v1/blocks`, the fast path), then recorded in
//!   `status.activeResponses` (durable), with an Event per step.
//! - Responses never loosen protection ([`merge`]): a response only makes a
//!   tenant's state stricter (a later expiry, or until acknowledged); a
//!   repeated alert changes nothing; resolved alerts do nothing.
//! - Only a person loosens: the annotation [`RELEASE_ANNOTATION`] (a rule id
//!   or `all`) makes the reconciler lift those blocks ([`release`]).
//! - Status writes of the sink and the reconciler are serialized per policy
//!   ([`Context::status_lock`]); each write reads `activeResponses` fresh
//!   under that lock, so the reconciler's whole-status apply never drops a
//!   response the sink just recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use tollgate_crds::policy::ResponseAction;
use tollgate_crds::toll_policy::{ActiveResponse, AlertReference};
use tollgate_crds::{PolicyRevision, SbcFleet, TollPolicy};

use super::agents::{AgentTarget, truncate};
use super::fleet::ResolvedTarget;
use super::{Context, Error, reconcile};
use crate::alerts::{AlertAction, AlertRef, AlertSink, responses_for};
use crate::rollout::EventKind;

/// Annotation a person sets to lift responses: a response rule id (as in
/// `status.activeResponses[].rule`), several separated by commas, or `all`.
pub const RELEASE_ANNOTATION: &str = "tollgate.dev/release";
/// Most entries of `status.activeResponses` (the CRD's limit).
pub const MAX_ACTIVE: usize = 32;

/// Event reasons.
pub const BLOCK_APPLIED: &str = "BlockApplied";
/// A block could not be set on some targets.
pub const BLOCK_FAILED: &str = "BlockFailed";
/// A declared `alert` response.
pub const RESPONSE_ALERT: &str = "ResponseAlert";
/// A response was recorded in status (or made stricter).
pub const RESPONSE_ACTIVE: &str = "ResponseActive";
/// A person released responses.
pub const RESPONSE_RELEASED: &str = "ResponseReleased";
/// A response's declared hold ended.
pub const RESPONSE_EXPIRED: &str = "ResponseExpired";

/// The agent's block keys of `action` for `tenant` (none for `alert`).
pub fn block_keys(tenant: &str, action: &ResponseAction) -> Vec<String> {
    match action {
        ResponseAction::Alert => Vec::new(),
        ResponseAction::BlockTenant => vec![tenant.to_owned()],
        ResponseAction::BlockClasses { classes } => {
            classes.iter().map(|c| format!("{tenant}::{c}")).collect()
        }
    }
}

/// The agent's expiry of a response: epoch seconds, 0 = until lifted.
pub fn agent_expiry(r: &ActiveResponse) -> i64 {
    if r.until_acknowledged {
        0
    } else {
        r.expires.as_ref().map_or(0, |t| t.0.as_second())
    }
}

/// The stricter of two agent expiries (0 = until lifted wins).
pub fn stricter(a: i64, b: i64) -> i64 {
    if a == 0 || b == 0 { 0 } else { a.max(b) }
}

/// Whether an agent's block (`held`) is at least as strict as `want`.
pub fn satisfied(held: Option<i64>, want: i64) -> bool {
    match held {
        None => false,
        Some(0) => true,
        Some(h) => want != 0 && h >= want,
    }
}

/// Still in force at `now` (until acknowledged, or not yet expired).
pub fn in_force(r: &ActiveResponse, now: i64) -> bool {
    r.until_acknowledged || r.expires.as_ref().is_some_and(|t| t.0.as_second() > now)
}

/// key → the stricter expiry over the responses in force.
pub fn desired_blocks(tenant: &str, active: &[ActiveResponse], now: i64) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for r in active.iter().filter(|r| in_force(r, now)) {
        let e = agent_expiry(r);
        for k in block_keys(tenant, &r.action) {
            out.entry(k)
                .and_modify(|x| *x = stricter(*x, e))
                .or_insert(e);
        }
    }
    out
}

/// What [`merge`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// A new entry.
    Added,
    /// An entry of the same rule now holds longer (or until acknowledged).
    Strengthened,
    /// Nothing changed (the same alert, or the entry is already as strict).
    Unchanged,
    /// No room (the CRD allows [`MAX_ACTIVE`]).
    Full,
}

/// Records `new` in `active` without ever loosening: per rule, the stricter
/// hold wins; the same alert (fingerprint) again changes nothing.
pub fn merge(active: &mut Vec<ActiveResponse>, new: ActiveResponse) -> Merge {
    let Some(old) = active.iter_mut().find(|r| r.rule == new.rule) else {
        if active.len() >= MAX_ACTIVE {
            return Merge::Full;
        }
        active.push(new);
        return Merge::Added;
    };
    if old.alert.fingerprint.is_some() && old.alert.fingerprint == new.alert.fingerprint {
        return Merge::Unchanged;
    }
    let (o, n) = (agent_expiry(old), agent_expiry(&new));
    if o == 0 || (n != 0 && n <= o) {
        return Merge::Unchanged;
    }
    old.until_acknowledged = new.until_acknowledged;
    old.expires = new.expires;
    old.alert = new.alert;
    old.action = new.action;
    Merge::Strengthened
}

/// Removes the entries whose declared hold ended by `now`; returns them.
pub fn prune(active: &mut Vec<ActiveResponse>, now: i64) -> Vec<ActiveResponse> {
    let (keep, gone): (Vec<_>, Vec<_>) = active.drain(..).partition(|r| in_force(r, now));
    *active = keep;
    gone
}

/// Removes the entries the release annotation's `value` names (`all`, or
/// rule ids separated by commas); returns them.
pub fn release(active: &mut Vec<ActiveResponse>, value: &str) -> Vec<ActiveResponse> {
    let names: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let all = names.contains(&"all");
    let (gone, keep): (Vec<_>, Vec<_>) = active
        .drain(..)
        .partition(|r| all || names.contains(&r.rule.as_str()));
    *active = keep;
    gone
}

/// The earliest expiry (epoch s) among the entries that expire.
pub fn next_expiry(active: &[ActiveResponse]) -> Option<i64> {
    active
        .iter()
        .filter(|r| !r.until_acknowledged)
        .filter_map(|r| r.expires.as_ref().map(|t| t.0.as_second()))
        .min()
}

/// The status entry of declared response `resp` set off by `alert` at `now`.
pub fn entry_for(
    resp: &tollgate_crds::policy::Response,
    alert: &AlertRef,
    now: Timestamp,
) -> ActiveResponse {
    let hold = resp.hold_seconds.unwrap_or(0);
    let until = resp.until_acknowledged || hold == 0;
    let expires = if until {
        None
    } else {
        let secs = i64::try_from(hold).unwrap_or(i64::MAX / 2);
        Timestamp::from_second(now.as_second().saturating_add(secs))
            .ok()
            .map(Time)
    };
    let name = if alert.name.is_empty() {
        "unnamed".to_owned()
    } else {
        truncate(&alert.name, 256)
    };
    ActiveResponse {
        rule: truncate(&resp.rule, 256),
        action: resp.action.clone(),
        since: Time(now),
        until_acknowledged: expires.is_none(),
        expires,
        alert: AlertReference {
            name,
            fingerprint: Some(truncate(&alert.fingerprint, 64)).filter(|f| !f.is_empty()),
        },
    }
}

/// Outcome of pushing blocks to targets.
#[derive(Debug, Default)]
pub struct PushReport {
    /// Targets that took every key.
    pub ok: usize,
    /// `target: message` of the failures.
    pub failed: Vec<String>,
}

impl PushReport {
    /// Tallies the per-target outcomes of [`target_outcome`].
    fn from_outcomes(outcomes: Vec<Result<(), String>>) -> Self {
        let mut rep = Self::default();
        for o in outcomes {
            match o {
                Ok(()) => rep.ok += 1,
                Err(e) => rep.failed.push(e),
            }
        }
        rep
    }
}

/// One target's outcome: `Ok`, or `target: errors` (shortened).
fn target_outcome(id: &str, errs: &[String]) -> Result<(), String> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("{id}: {}", truncate(&errs.join("; "), 300)))
    }
}

/// `PUT /v1/blocks` of `blocks` (key → expiry) to every target, in
/// parallel (at most `agent_concurrency` in flight).
pub async fn push_blocks(
    ctx: &Context,
    targets: &[ResolvedTarget],
    token: Option<&String>,
    blocks: &BTreeMap<String, i64>,
) -> PushReport {
    let n = ctx.config.agent_concurrency.max(1);
    let results: Vec<Result<(), String>> = futures::stream::iter(targets.to_vec())
        .map(|r| async move {
            let at = AgentTarget {
                url: r.url.clone(),
                token: token.cloned(),
            };
            let calls = blocks.iter().map(|(k, e)| ctx.agents.put_block(&at, k, *e));
            let res: Vec<Result<(), String>> = futures::future::join_all(calls).await;
            let errs: Vec<String> = res.into_iter().filter_map(Result::err).collect();
            for _ in 0..blocks.len() - errs.len() {
                ctx.metrics.agent_call("block", "ok");
            }
            for _ in &errs {
                ctx.metrics.agent_call("block", "failed");
            }
            target_outcome(&r.id, &errs)
        })
        .buffer_unordered(n)
        .collect()
        .await;
    PushReport::from_outcomes(results)
}

/// `DELETE /v1/blocks/{key}` of `keys` on every target, in parallel.
pub async fn lift_blocks(
    ctx: &Context,
    targets: &[ResolvedTarget],
    token: Option<&String>,
    keys: &[String],
) -> PushReport {
    let n = ctx.config.agent_concurrency.max(1);
    let results: Vec<Result<(), String>> = futures::stream::iter(targets.to_vec())
        .map(|r| async move {
            let at = AgentTarget {
                url: r.url.clone(),
                token: token.cloned(),
            };
            let res =
                futures::future::join_all(keys.iter().map(|k| ctx.agents.delete_block(&at, k)))
                    .await;
            let errs: Vec<String> = res.into_iter().filter_map(Result::err).collect();
            ctx.metrics
                .agent_call("unblock", if errs.is_empty() { "ok" } else { "failed" });
            target_outcome(&r.id, &errs)
        })
        .buffer_unordered(n)
        .collect()
        .await;
    PushReport::from_outcomes(results)
}

/// The operator's [`AlertSink`]. It acts only while it holds a controller
/// context (the leader); otherwise [`AlertSink::ready`] is `false` and the
/// webhook answers 503, so Alertmanager retries (reaching the leader
/// through the Service eventually).
#[derive(Clone, Default)]
pub struct OperatorSink {
    slot: Arc<RwLock<Option<Arc<Context>>>>,
}

impl std::fmt::Debug for OperatorSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorSink")
            .field("ready", &self.current().is_some())
            .finish()
    }
}

impl OperatorSink {
    /// A sink acting through `ctx`.
    pub fn new(ctx: Arc<Context>) -> Self {
        let s = Self::default();
        s.set(Some(ctx));
        s
    }

    /// Sets (leader) or clears (not the leader) the context.
    pub fn set(&self, ctx: Option<Arc<Context>>) {
        if let Ok(mut g) = self.slot.write() {
            *g = ctx;
        }
    }

    fn current(&self) -> Option<Arc<Context>> {
        self.slot.read().ok().and_then(|g| g.clone())
    }
}

impl AlertSink for OperatorSink {
    fn ready(&self) -> bool {
        self.current().is_some()
    }

    async fn act(&self, action: AlertAction) -> Result<(), String> {
        self.act_checked(action).await.map(|_| ())
    }

    async fn act_checked(&self, action: AlertAction) -> Result<Option<String>, String> {
        let Some(ctx) = self.current() else {
            return Err("not the leader".into());
        };
        match action {
            AlertAction::Rollback {
                namespace,
                policy,
                revision,
                alert,
            } => rollback(&ctx, &namespace, &policy, &revision, &alert).await,
            AlertAction::Respond {
                namespace,
                policy,
                tenant,
                trigger,
                alert,
            } => respond(&ctx, &namespace, &policy, &tenant, &trigger, &alert)
                .await
                .map(|r| r.ignored),
        }
    }
}

/// The revision number an alert's `tollgate_revision` names: a number, or
/// the name of one of the policy's PolicyRevisions.
async fn revision_number(
    ctx: &Context,
    namespace: &str,
    policy: &str,
    revision: &str,
) -> Result<Option<i64>, String> {
    if let Ok(n) = revision.parse::<i64>() {
        return Ok(Some(n).filter(|n| *n >= 1));
    }
    let api: Api<PolicyRevision> = Api::namespaced(ctx.client.clone(), namespace);
    match api.get_opt(revision).await {
        Ok(Some(r)) if r.spec.policy_name == policy => Ok(Some(r.spec.revision)),
        Ok(_) => Ok(None),
        Err(e) => Err(format!("reading PolicyRevision {revision}: {e}")),
    }
}

async fn rollback(
    ctx: &Context,
    namespace: &str,
    policy: &str,
    revision: &str,
    alert: &AlertRef,
) -> Result<Option<String>, String> {
    let api: Api<TollPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    match api.get_opt(policy).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::error!(namespace, policy, alert = %alert.name,
                "rollback alert for an unknown TollPolicy; ignored");
            return Ok(Some(format!("no TollPolicy {namespace}/{policy}")));
        }
        Err(e) => return Err(format!("reading TollPolicy {namespace}/{policy}: {e}")),
    }
    let Some(n) = revision_number(ctx, namespace, policy, revision).await? else {
        tracing::error!(namespace, policy, revision, alert = %alert.name,
            "rollback alert names no revision of this policy; ignored");
        return Ok(Some(format!(
            "no revision {revision} of TollPolicy {namespace}/{policy}"
        )));
    };
    tracing::info!(namespace, policy, revision = n, alert = %alert.name, "anomaly alert: reported to the rollout");
    ctx.report_anomaly(namespace, policy, n, &alert.name);
    Ok(None)
}

/// What [`respond`] did (for tests and the benchmark).
#[derive(Debug, Default)]
pub struct Responded {
    /// Declared responses that matched.
    pub matched: usize,
    /// Block keys pushed → expiry.
    pub blocks: BTreeMap<String, i64>,
    /// The fast path's report.
    pub push: PushReport,
    /// Status entries added or strengthened.
    pub recorded: usize,
    /// Why nothing was done (unknown policy, another tenant).
    pub ignored: Option<String>,
}

/// Applies the declared responses of `policy` for `trigger`: fast path
/// (blocks on every target), then durable (status), with Events.
pub async fn respond(
    ctx: &Context,
    namespace: &str,
    policy_name: &str,
    tenant: &str,
    trigger: &tollgate_crds::policy::ResponseTrigger,
    alert: &AlertRef,
) -> Result<Responded, String> {
    let api: Api<TollPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let policy = match api.get_opt(policy_name).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            tracing::error!(namespace, policy = policy_name, alert = %alert.name,
                "response alert for an unknown TollPolicy; ignored");
            return Ok(Responded {
                ignored: Some(format!("no TollPolicy {namespace}/{policy_name}")),
                ..Responded::default()
            });
        }
        Err(e) => return Err(format!("reading TollPolicy {namespace}/{policy_name}: {e}")),
    };
    if policy.spec.tenant != tenant {
        tracing::error!(
            namespace,
            policy = policy_name,
            tenant,
            "alert's tenant is not the policy's tenant; ignored"
        );
        return Ok(Responded::default());
    }
    let declared = responses_for(&policy.spec.policy, trigger);
    let mut out = Responded {
        matched: declared.len(),
        ..Responded::default()
    };
    if declared.is_empty() {
        tracing::info!(namespace, policy = policy_name, alert = %alert.name,
            "no declared response for this alert");
        return Ok(out);
    }
    let now = Timestamp::now();
    let summary = alert.summary.as_deref().unwrap_or("");
    let mut entries = Vec::new();
    for r in &declared {
        if matches!(r.action, ResponseAction::Alert) {
            reconcile::publish(
                ctx,
                &policy,
                EventKind::Warning,
                RESPONSE_ALERT,
                format!("{} ({}): {}", alert.name, r.rule, summary),
            )
            .await;
        } else {
            entries.push(entry_for(r, alert, now));
        }
    }
    if entries.is_empty() {
        return Ok(out);
    }
    // Fast path: the stricter of what is in force and what is new, per key
    // (a weaker response must not shorten a block in force on the agents).
    let current = policy
        .status
        .as_ref()
        .map(|s| s.active_responses.clone())
        .unwrap_or_default();
    let mut merged = current.clone();
    for e in &entries {
        merge(&mut merged, e.clone());
    }
    let all = desired_blocks(tenant, &merged, now.as_second());
    let keys: std::collections::BTreeSet<String> = entries
        .iter()
        .flat_map(|e| block_keys(tenant, &e.action))
        .collect();
    out.blocks = all.into_iter().filter(|(k, _)| keys.contains(k)).collect();
    let fleets: Api<SbcFleet> = Api::namespaced(ctx.client.clone(), namespace);
    let fleet = fleets
        .get_opt(&policy.spec.fleet.name)
        .await
        .map_err(|e| format!("reading SbcFleet: {e}"))?;
    if let Some(fleet) = fleet {
        let targets: Vec<ResolvedTarget> = reconcile::resolve(ctx, namespace, &fleet)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|t| t.ready && !t.terminating)
            .collect();
        let token = reconcile::agent_token(ctx, namespace, &fleet)
            .await
            .map_err(|e| e.to_string())?;
        out.push = push_blocks(ctx, &targets, token.as_ref(), &out.blocks).await;
        let keys_s: Vec<&str> = out.blocks.keys().map(String::as_str).collect();
        reconcile::publish(
            ctx,
            &policy,
            EventKind::Warning,
            BLOCK_APPLIED,
            format!(
                "{} on {}/{} targets for alert {}",
                keys_s.join(", "),
                out.push.ok,
                targets.len(),
                alert.name
            ),
        )
        .await;
        if !out.push.failed.is_empty() {
            reconcile::publish(
                ctx,
                &policy,
                EventKind::Warning,
                BLOCK_FAILED,
                format!(
                    "{} targets did not take the block (the reconciler retries): {}",
                    out.push.failed.len(),
                    out.push.failed.join("; ")
                ),
            )
            .await;
        }
    } else {
        tracing::warn!(
            namespace,
            policy = policy_name,
            "fleet not found; block recorded in status only"
        );
    }
    // Durable: merge into the fresh status under the policy's status lock.
    let obj = ObjectRef::from(&policy);
    let lock = ctx.status_lock(&obj);
    let _g = lock.lock().await;
    let fresh = api
        .get_opt(policy_name)
        .await
        .map_err(|e| format!("reading TollPolicy: {e}"))?
        .ok_or_else(|| format!("TollPolicy {namespace}/{policy_name} was deleted"))?;
    let mut status = fresh.status.clone().unwrap_or_default();
    let mut notes = Vec::new();
    for e in entries {
        let rule = e.rule.clone();
        match merge(&mut status.active_responses, e) {
            Merge::Added => notes.push(format!("{rule} active")),
            Merge::Strengthened => notes.push(format!("{rule} held longer")),
            Merge::Unchanged => {}
            Merge::Full => {
                reconcile::publish(
                    ctx,
                    &policy,
                    EventKind::Warning,
                    BLOCK_FAILED,
                    format!("status.activeResponses is full ({MAX_ACTIVE}); {rule} not recorded"),
                )
                .await;
            }
        }
    }
    out.recorded = notes.len();
    if !notes.is_empty() {
        reconcile::patch_status(&api, policy_name, &status)
            .await
            .map_err(|e| e.to_string())?;
        reconcile::publish(
            ctx,
            &policy,
            EventKind::Warning,
            RESPONSE_ACTIVE,
            format!("{} (alert {})", notes.join("; "), alert.name),
        )
        .await;
    }
    // The reconciler keeps the blocks on new targets and ends them.
    Ok(out)
}

/// The responses part of a reconcile, before the rollout: under the status
/// lock, drop expired entries and released ones (lifting their blocks),
/// remove the release annotation. (After the rollout the reconciler makes
/// every eligible target hold the blocks in force, [`ensure`].)
/// Returns the activeResponses after the changes. `policy` was read at
/// the start of this reconcile; a response the sink records meanwhile
/// changes the object, which triggers another reconcile.
pub async fn maintain(
    ctx: &Context,
    policy: &TollPolicy,
    targets: &[ResolvedTarget],
    token: Option<&String>,
) -> Result<Vec<ActiveResponse>, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let tenant = policy.spec.tenant.as_str();
    let api: Api<TollPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let release_value = policy
        .annotations()
        .get(RELEASE_ANNOTATION)
        .cloned()
        .filter(|v| !v.trim().is_empty());
    let now = Timestamp::now().as_second();
    let read = policy
        .status
        .as_ref()
        .map(|s| s.active_responses.clone())
        .unwrap_or_default();
    if release_value.is_none() && read.iter().all(|r| in_force(r, now)) {
        // Nothing to end or lift (the common case: no extra API call).
        return Ok(read);
    }
    let obj = ObjectRef::from(policy);
    let lock = ctx.status_lock(&obj);
    let g = lock.lock().await;
    let Some(fresh) = api.get_opt(&name).await? else {
        return Ok(Vec::new());
    };
    let mut status = fresh.status.clone().unwrap_or_default();
    let before_desired = desired_blocks(tenant, &status.active_responses, now);
    let expired = prune(&mut status.active_responses, now);
    let released = match &release_value {
        Some(v) => release(&mut status.active_responses, v),
        None => Vec::new(),
    };
    // Lift first (under the lock): the released entries leave the status
    // only once every target dropped their keys, so a failure is retried.
    let mut lift: Vec<String> = Vec::new();
    let mut rep = PushReport::default();
    if release_value.is_some() {
        // Lift the keys no remaining response holds; re-set the ones a
        // remaining response still holds (possibly shorter now: a person
        // loosened it).
        let after = desired_blocks(tenant, &status.active_responses, now);
        lift = released
            .iter()
            .flat_map(|r| block_keys(tenant, &r.action))
            .filter(|k| !after.contains_key(k))
            .collect();
        lift.sort();
        lift.dedup();
        let reset: BTreeMap<String, i64> = after
            .iter()
            .filter(|(k, e)| before_desired.get(*k) != Some(*e))
            .map(|(k, e)| (k.clone(), *e))
            .collect();
        rep = lift_blocks(ctx, targets, token, &lift).await;
        if !reset.is_empty() {
            push_blocks(ctx, targets, token, &reset).await;
        }
    }
    let lift_failed = !rep.failed.is_empty();
    if lift_failed {
        // keep the released entries (and the annotation): retried
        status.active_responses.extend(released.iter().cloned());
    }
    if !expired.is_empty() || (!released.is_empty() && !lift_failed) {
        reconcile::patch_status(&api, &name, &status).await?;
    }
    drop(g);
    for e in &expired {
        reconcile::publish(
            ctx,
            policy,
            EventKind::Normal,
            RESPONSE_EXPIRED,
            format!("{}: declared hold ended", e.rule),
        )
        .await;
    }
    if let Some(v) = &release_value {
        if lift_failed {
            reconcile::publish(
                ctx,
                policy,
                EventKind::Warning,
                BLOCK_FAILED,
                format!(
                    "lifting {} failed on: {}",
                    lift.join(", "),
                    rep.failed.join("; ")
                ),
            )
            .await;
            return Err(Error::Cleanup(format!(
                "lifting blocks failed on {} targets",
                rep.failed.len()
            )));
        }
        let rules: Vec<&str> = released.iter().map(|r| r.rule.as_str()).collect();
        reconcile::publish(
            ctx,
            policy,
            EventKind::Normal,
            RESPONSE_RELEASED,
            format!(
                "released by {RELEASE_ANNOTATION}={}: {} (lifted {} on {} targets)",
                truncate(v, 64),
                if rules.is_empty() {
                    "nothing active".to_owned()
                } else {
                    rules.join(", ")
                },
                if lift.is_empty() {
                    "no keys".to_owned()
                } else {
                    lift.join(", ")
                },
                rep.ok
            ),
        )
        .await;
        let patch = serde_json::json!({"metadata": {"annotations": {RELEASE_ANNOTATION: null}}});
        api.patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(status.active_responses)
}

/// Every eligible target holds each block in force at least as strictly
/// as declared (`GET /v1/state` `blocks`); missing or weaker ones are set.
pub async fn ensure(
    ctx: &Context,
    policy: &TollPolicy,
    targets: &[ResolvedTarget],
    token: Option<&String>,
    active: &[ActiveResponse],
) {
    let tenant = policy.spec.tenant.as_str();
    let want = desired_blocks(tenant, active, Timestamp::now().as_second());
    if want.is_empty() {
        return;
    }
    let n = ctx.config.agent_concurrency.max(1);
    let want = &want;
    let eligible: Vec<ResolvedTarget> = targets
        .iter()
        .filter(|t| t.ready && !t.terminating)
        .cloned()
        .collect();
    let fixed: Vec<(String, Result<usize, String>)> = futures::stream::iter(eligible)
        .map(|r| async move {
            let at = AgentTarget {
                url: r.url.clone(),
                token: token.cloned(),
            };
            let held = match ctx.agents.state(&at, tenant).await {
                Ok(s) => s.blocks,
                Err(e) => return (r.id.clone(), Err(e)),
            };
            let missing: BTreeMap<String, i64> = want
                .iter()
                .filter(|(k, e)| !satisfied(held.get(*k).copied(), **e))
                .map(|(k, e)| (k.clone(), *e))
                .collect();
            let mut errs = Vec::new();
            for (k, e) in &missing {
                match ctx.agents.put_block(&at, k, *e).await {
                    Ok(()) => ctx.metrics.agent_call("block", "ok"),
                    Err(m) => {
                        ctx.metrics.agent_call("block", "failed");
                        errs.push(m);
                    }
                }
            }
            if errs.is_empty() {
                (r.id.clone(), Ok(missing.len()))
            } else {
                (r.id.clone(), Err(errs.join("; ")))
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    let set: Vec<&str> = fixed
        .iter()
        .filter(|(_, r)| matches!(r, Ok(n) if *n > 0))
        .map(|(id, _)| id.as_str())
        .collect();
    if !set.is_empty() {
        reconcile::publish(
            ctx,
            policy,
            EventKind::Normal,
            BLOCK_APPLIED,
            format!(
                "active responses set on {} target(s) that lacked them: {}",
                set.len(),
                truncate(&set.join(", "), 300)
            ),
        )
        .await;
    }
    for (id, r) in &fixed {
        if let Err(e) = r {
            tracing::warn!(policy = %policy.name_any(), target = %id, error = %e,
                "active response not on target yet");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn entry(rule: &str, expires: Option<i64>, fp: &str) -> ActiveResponse {
        ActiveResponse {
            rule: rule.into(),
            action: ResponseAction::BlockClasses {
                classes: vec!["international".into()],
            },
            since: at(1000),
            expires: expires.map(at),
            until_acknowledged: expires.is_none(),
            alert: AlertReference {
                name: "A".into(),
                fingerprint: Some(fp.into()),
            },
        }
    }

    #[test]
    fn merge_never_loosens() {
        let mut a = vec![];
        assert_eq!(merge(&mut a, entry("r1", Some(2000), "f1")), Merge::Added);
        // the same alert again: nothing
        assert_eq!(
            merge(&mut a, entry("r1", Some(9000), "f1")),
            Merge::Unchanged
        );
        // shorter: nothing
        assert_eq!(
            merge(&mut a, entry("r1", Some(1500), "f2")),
            Merge::Unchanged
        );
        assert_eq!(agent_expiry(&a[0]), 2000);
        // longer wins
        assert_eq!(
            merge(&mut a, entry("r1", Some(3000), "f3")),
            Merge::Strengthened
        );
        assert_eq!(agent_expiry(&a[0]), 3000);
        // until acknowledged wins and stays
        assert_eq!(merge(&mut a, entry("r1", None, "f4")), Merge::Strengthened);
        assert!(a[0].until_acknowledged && a[0].expires.is_none());
        assert_eq!(
            merge(&mut a, entry("r1", Some(99_999), "f5")),
            Merge::Unchanged
        );
        assert!(a[0].until_acknowledged);
        assert_eq!(a.len(), 1);
        for i in 1..MAX_ACTIVE {
            assert_eq!(
                merge(&mut a, entry(&format!("x{i}"), Some(5000), "f")),
                Merge::Added
            );
        }
        assert_eq!(merge(&mut a, entry("over", Some(5000), "f")), Merge::Full);
    }

    #[test]
    fn keys_and_desired_take_the_stricter() {
        let mut t = entry("t", Some(5000), "f");
        t.action = ResponseAction::BlockTenant;
        let a = vec![
            entry("weak", Some(2000), "f1"),
            entry("strong", Some(4000), "f2"),
            t,
        ];
        let d = desired_blocks("acme", &a, 1500);
        assert_eq!(d.get("acme::international"), Some(&4000));
        assert_eq!(d.get("acme"), Some(&5000));
        // after the weak one's end the strong one still holds
        let d = desired_blocks("acme", &a, 3000);
        assert_eq!(d.get("acme::international"), Some(&4000));
        let mut u = a.clone();
        u.push(entry("ack", None, "f3"));
        assert_eq!(
            desired_blocks("acme", &u, 1500).get("acme::international"),
            Some(&0)
        );
        assert!(block_keys("acme", &ResponseAction::Alert).is_empty());
    }

    #[test]
    fn satisfied_compares_strictness() {
        assert!(!satisfied(None, 100));
        assert!(satisfied(Some(0), 100));
        assert!(satisfied(Some(0), 0));
        assert!(!satisfied(Some(100), 0));
        assert!(satisfied(Some(200), 100));
        assert!(!satisfied(Some(50), 100));
        assert_eq!(stricter(0, 5), 0);
        assert_eq!(stricter(7, 5), 7);
    }

    #[test]
    fn prune_release_and_next_expiry() {
        let mut a = vec![
            entry("a", Some(2000), "f1"),
            entry("b", Some(4000), "f2"),
            entry("c", None, "f3"),
        ];
        assert_eq!(next_expiry(&a), Some(2000));
        let gone = prune(&mut a, 2000);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].rule, "a");
        assert_eq!(next_expiry(&a), Some(4000));
        let gone = release(&mut a, "c, nope");
        assert_eq!(gone.len(), 1);
        assert_eq!(a.len(), 1);
        let mut b = vec![entry("a", None, "f"), entry("b", None, "g")];
        assert_eq!(release(&mut b, "all").len(), 2);
        assert!(b.is_empty());
        assert_eq!(next_expiry(&b), None);
    }

    #[test]
    fn entries_from_declared_responses() {
        use tollgate_crds::policy::{AlertLevel, LimitMetric, Response, ResponseTrigger};
        let alert = AlertRef {
            name: "TollgateConcurrentCritical".into(),
            fingerprint: "abc".into(),
            starts_at: String::new(),
            summary: None,
        };
        let mut r = Response {
            trigger: ResponseTrigger::Breach {
                metric: LimitMetric::Concurrent,
                class: Some("international".into()),
                level: AlertLevel::Critical,
            },
            action: ResponseAction::BlockClasses {
                classes: vec!["international".into()],
            },
            hold_seconds: Some(600),
            until_acknowledged: false,
            rule: "respond:1".into(),
        };
        let now = Timestamp::from_second(1_000_000).unwrap();
        let e = entry_for(&r, &alert, now);
        assert_eq!(agent_expiry(&e), 1_000_600);
        assert!(!e.until_acknowledged);
        assert_eq!(e.alert.fingerprint.as_deref(), Some("abc"));
        r.hold_seconds = None;
        r.until_acknowledged = true;
        let e = entry_for(&r, &alert, now);
        assert!(e.until_acknowledged && e.expires.is_none());
        assert_eq!(agent_expiry(&e), 0);
    }
}
