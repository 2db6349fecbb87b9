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
//!   tenant's state stricter (a later expiry, until acknowledged, more
//!   blocked); a re-sent alert instance changes nothing; resolved alerts do
//!   nothing. A full `activeResponses` folds a new response into an entry
//!   (made at least as strict as both) rather than dropping it.
//! - Only a person loosens: the annotation [`RELEASE_ANNOTATION`] (a rule id
//!   or `all`) makes the reconciler lift those blocks ([`release`]).
//! - Acknowledgements are durable: the alert instances (fingerprint +
//!   startsAt) of a released response, or of one whose hold ended, go to
//!   `status.acknowledgedAlerts` ([`acknowledge`]); the sink ignores a
//!   re-sent instance found there ([`acknowledged`]), also after a restart
//!   or a failover, when the receiver's in-memory set of handled alerts is
//!   empty. That set is only an optimisation.
//! - Status writes of the sink and the reconciler are serialized per policy
//!   ([`Context::status_lock`]); each write reads `activeResponses` and
//!   `acknowledgedAlerts` fresh under that lock, so the reconciler's
//!   whole-status apply never drops what the sink just recorded. The sink
//!   holds the lock from its read of the policy through the fast path to
//!   its status write, so a release and a response of the same policy never
//!   interleave (a release cannot miss a block pushed meanwhile, and a
//!   re-sent instance cannot slip past its acknowledgement).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use tollgate_crds::toll_policy::{
    AcknowledgedAlert, AcknowledgedReason, ActiveResponse, AlertReference, MAX_ACKNOWLEDGED_ALERTS,
    MAX_ACTIVE_RESPONSES, MAX_FOLDED_RULES, MAX_RESPONSE_ALERTS,
};
use tollgate_crds::{PolicyRevision, SbcFleet, TollPolicy};
use tollgate_ir::ResponseAction;

use super::agents::{AgentTarget, truncate};
use super::fleet::ResolvedTarget;
use super::{Context, Error, reconcile};
use tollgate_alerts::{AlertAction, AlertRef, AlertSink, responses_for};
use tollgate_rollout::EventKind;

/// Annotation a person sets to lift responses: a response rule id (as in
/// `status.activeResponses[].rule` or `foldedRules`), several separated by
/// commas, or `all`.
pub const RELEASE_ANNOTATION: &str = "tollgate.dev/release";
/// Most entries of `status.activeResponses` (the CRD's limit: as many as a
/// policy may declare responses).
pub const MAX_ACTIVE: usize = MAX_ACTIVE_RESPONSES;
/// Most classes of one `blockClasses` action (the CRD's limit); a fold
/// that would exceed it blocks the tenant instead.
pub const MAX_ACTION_CLASSES: usize = 64;

/// Event reasons.
pub const BLOCK_APPLIED: &str = "BlockApplied";
/// A block could not be set on some targets.
pub const BLOCK_FAILED: &str = "BlockFailed";
/// A declared `alert` response.
pub const RESPONSE_ALERT: &str = "ResponseAlert";
/// A response was recorded in status (or made stricter).
pub const RESPONSE_ACTIVE: &str = "ResponseActive";
/// `activeResponses` was full: a response was folded into an entry.
pub const RESPONSE_FOLDED: &str = "ResponseFolded";
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

/// Whether `a` blocks at least what `b` blocks.
pub fn covers(a: &ResponseAction, b: &ResponseAction) -> bool {
    match (a, b) {
        (_, ResponseAction::Alert) | (ResponseAction::BlockTenant, _) => true,
        (
            ResponseAction::BlockClasses { classes: x },
            ResponseAction::BlockClasses { classes: y },
        ) => y.iter().all(|c| x.contains(c)),
        _ => false,
    }
}

/// An action blocking everything `a` and `b` block: the tenant if either
/// blocks it, else the classes of both (`a`'s first); more classes than
/// the CRD allows in one action ([`MAX_ACTION_CLASSES`]) block the tenant.
pub fn union(a: &ResponseAction, b: &ResponseAction) -> ResponseAction {
    match (a, b) {
        (ResponseAction::Alert, x) | (x, ResponseAction::Alert) => x.clone(),
        (ResponseAction::BlockTenant, _) | (_, ResponseAction::BlockTenant) => {
            ResponseAction::BlockTenant
        }
        (
            ResponseAction::BlockClasses { classes: x },
            ResponseAction::BlockClasses { classes: y },
        ) => {
            let mut classes = x.clone();
            for c in y {
                if !classes.contains(c) {
                    classes.push(c.clone());
                }
            }
            if classes.len() > MAX_ACTION_CLASSES {
                ResponseAction::BlockTenant
            } else {
                ResponseAction::BlockClasses { classes }
            }
        }
    }
}

/// Whether agent expiry `new` holds longer than `old` (0 = until lifted).
fn longer(old: i64, new: i64) -> bool {
    old != 0 && (new == 0 || new > old)
}

/// The form `startsAt` is stored and compared in: the instant, in UTC
/// (RFC 3339); `None` for an empty or unparseable value.
pub fn normalize_instant(s: &str) -> Option<String> {
    s.trim().parse::<Timestamp>().ok().map(|t| t.to_string())
}

/// The status form of an alert (names cut to the CRD's limits, `startsAt`
/// normalized).
pub fn reference(alert: &AlertRef) -> AlertReference {
    let name = if alert.name.is_empty() {
        "unnamed".to_owned()
    } else {
        truncate(&alert.name, 256)
    };
    AlertReference {
        name,
        fingerprint: Some(truncate(&alert.fingerprint, 64)).filter(|f| !f.is_empty()),
        starts_at: normalize_instant(&alert.starts_at),
    }
}

/// Whether `a` and `b` name the same alert instance: the same fingerprint
/// and the same `startsAt` (both absent counts as the same, for a sender
/// that gives none).
pub fn same_instance(a: &AlertReference, b: &AlertReference) -> bool {
    a.fingerprint.is_some() && a.fingerprint == b.fingerprint && a.starts_at == b.starts_at
}

/// The alert instances an entry records (`alert` and `alerts`, once each).
pub fn instances(r: &ActiveResponse) -> Vec<AlertReference> {
    let mut out: Vec<AlertReference> = Vec::new();
    for a in std::iter::once(&r.alert).chain(&r.alerts) {
        if !out.iter().any(|o| same_instance(o, a) || o == a) {
            out.push(a.clone());
        }
    }
    out
}

/// The acknowledgement of the instance `alert` names, if any. Only a
/// known instance (fingerprint and `startsAt`) is ever acknowledged.
pub fn acknowledged<'a>(
    acks: &'a [AcknowledgedAlert],
    alert: &AlertReference,
) -> Option<&'a AcknowledgedAlert> {
    alert.starts_at.as_ref()?;
    acks.iter().find(|a| same_instance(&a.alert, alert))
}

/// Records `alerts` (instances of response `rule`) as acknowledged at
/// `now`: newest first, one entry per instance (a newer one replaces an
/// older), at most [`MAX_ACKNOWLEDGED_ALERTS`] (the oldest go). Instances
/// without a fingerprint or `startsAt` are not recorded: they could never
/// be told from a new instance, and ignoring a new one would loosen.
pub fn acknowledge(
    acks: &mut Vec<AcknowledgedAlert>,
    rule: &str,
    alerts: impl IntoIterator<Item = AlertReference>,
    reason: AcknowledgedReason,
    now: Timestamp,
) {
    for alert in alerts {
        if alert.fingerprint.is_none() || alert.starts_at.is_none() {
            continue;
        }
        acks.retain(|a| !same_instance(&a.alert, &alert));
        acks.insert(
            0,
            AcknowledgedAlert {
                rule: truncate(rule, 256),
                alert,
                reason,
                time: Time(now),
            },
        );
    }
    acks.truncate(MAX_ACKNOWLEDGED_ALERTS);
}

/// What [`merge`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Merge {
    /// A new entry.
    Added,
    /// An entry of the same rule now holds longer (or until acknowledged)
    /// or blocks more.
    Strengthened,
    /// An entry of the same rule, already as strict, records the alert
    /// instance too (released with it).
    Joined,
    /// Nothing changed (the same alert instance again).
    Unchanged,
    /// `activeResponses` was full: the response went into the entry of
    /// rule `into`, made at least as strict as both; `named`: the rule is
    /// listed in its `foldedRules` (false when that list is full).
    Folded { into: String, named: bool },
}

/// Puts the alert of `new` first in `old.alerts` (once, at most
/// [`MAX_RESPONSE_ALERTS`]).
fn note_alert(old: &mut ActiveResponse, alert: &AlertReference) {
    old.alerts
        .retain(|a| !same_instance(a, alert) && a != alert);
    old.alerts.insert(0, alert.clone());
    old.alerts.truncate(MAX_RESPONSE_ALERTS);
}

/// Makes `old` at least as strict as `new`; `same_rule`: `new` is a
/// re-send of the rule (an instance it already recorded changes nothing).
/// Returns (made stricter, alert newly recorded).
fn absorb(old: &mut ActiveResponse, new: &ActiveResponse, same_rule: bool) -> (bool, bool) {
    let known = instances(old).iter().any(|a| same_instance(a, &new.alert));
    if same_rule && known {
        // a re-send of the same instance never extends a hold; it can only
        // widen what a changed declaration of the rule blocks
        if covers(&old.action, &new.action) {
            return (false, false);
        }
        old.action = union(&old.action, &new.action);
        return (true, false);
    }
    let extend = longer(agent_expiry(old), agent_expiry(new));
    let widen = !covers(&old.action, &new.action);
    if extend {
        old.until_acknowledged = new.until_acknowledged;
        old.expires = new.expires.clone();
    }
    if widen {
        old.action = union(&old.action, &new.action);
    }
    if extend || widen {
        old.alert = new.alert.clone();
    }
    note_alert(old, &new.alert);
    (extend || widen, !known)
}

/// How much stricter folding `new` into `host` makes `host`: (the keys
/// blocked anew or held longer, each class 1 and the tenant
/// [`MAX_ACTION_CLASSES`] + 1; no room to name the rule; not the same
/// action).
fn fold_cost(host: &ActiveResponse, new: &ActiveResponse) -> (usize, bool, bool) {
    let weight = |a: &ResponseAction| match a {
        ResponseAction::Alert => 0,
        ResponseAction::BlockTenant => MAX_ACTION_CLASSES + 1,
        ResponseAction::BlockClasses { classes } => classes.len(),
    };
    let u = union(&host.action, &new.action);
    let cost = if longer(agent_expiry(host), agent_expiry(new)) {
        // every key of the entry is held longer
        weight(&u)
    } else if u == host.action {
        0
    } else if u == ResponseAction::BlockTenant {
        weight(&u)
    } else {
        weight(&u).saturating_sub(weight(&host.action))
    };
    (
        cost,
        host.folded_rules.len() >= MAX_FOLDED_RULES,
        host.action != new.action,
    )
}

/// Records `new` in `active` without ever loosening and without ever
/// dropping it. An entry of the same rule (or one it was folded into)
/// takes the stricter hold and blocks what both block; the same alert
/// instance again changes nothing. With no entry of the rule and the list
/// full ([`MAX_ACTIVE`]), `new` is folded into the entry it makes least
/// stricter (the fewest keys blocked anew or held longer, the tenant
/// counting as more than every class; then one with room in `foldedRules`;
/// then the same action; then the first): that entry blocks the union of
/// both actions, holds as long as the longer, and lists the rule in
/// `foldedRules` (if there is room: the blocks go in regardless).
pub fn merge(active: &mut Vec<ActiveResponse>, new: ActiveResponse) -> Merge {
    if let Some(old) = active
        .iter_mut()
        .find(|r| r.rule == new.rule || r.folded_rules.contains(&new.rule))
    {
        return match absorb(old, &new, true) {
            (true, _) => Merge::Strengthened,
            (false, true) => Merge::Joined,
            (false, false) => Merge::Unchanged,
        };
    }
    if active.len() < MAX_ACTIVE {
        active.push(new);
        return Merge::Added;
    }
    let Some(i) = (0..active.len()).min_by_key(|i| (fold_cost(&active[*i], &new), *i)) else {
        // MAX_ACTIVE is not 0: a full list has an entry
        active.push(new);
        return Merge::Added;
    };
    let host = &mut active[i];
    absorb(host, &new, false);
    let named = host.folded_rules.len() < MAX_FOLDED_RULES;
    if named {
        host.folded_rules.push(new.rule.clone());
    }
    Merge::Folded {
        into: host.rule.clone(),
        named,
    }
}

/// Removes the entries whose declared hold ended by `now`; returns them.
pub fn prune(active: &mut Vec<ActiveResponse>, now: i64) -> Vec<ActiveResponse> {
    let (keep, gone): (Vec<_>, Vec<_>) = active.drain(..).partition(|r| in_force(r, now));
    *active = keep;
    gone
}

/// What [`release`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Released {
    /// Entries removed: every rule of theirs was named (or `all`).
    pub removed: Vec<ActiveResponse>,
    /// Named rules removed from entries that stay because other rules are
    /// folded into them: (rule, the entry's rule now). Their blocks stay.
    pub unfolded: Vec<(String, String)>,
    /// The alert instances of every entry touched, with the rule released:
    /// to be acknowledged.
    pub acknowledged: Vec<(String, AlertReference)>,
}

impl Released {
    /// Nothing was named that is active.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.unfolded.is_empty()
    }
}

/// Carries out the release annotation's `value` (`all`, or rule ids
/// separated by commas) on `active`. An entry goes when each of its rules
/// (`rule` and `foldedRules`) is named; an entry with some rules named
/// loses those names and keeps its blocks (the rules not named still hold
/// them). The instances of every entry touched are to be acknowledged: a
/// re-send of one must not set a released rule off again.
pub fn release(active: &mut Vec<ActiveResponse>, value: &str) -> Released {
    let names: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let all = names.contains(&"all");
    let mut out = Released::default();
    let mut keep = Vec::new();
    for mut r in active.drain(..) {
        let named = |s: &str| all || names.contains(&s);
        let hit: Vec<String> = std::iter::once(&r.rule)
            .chain(&r.folded_rules)
            .filter(|s| named(s))
            .cloned()
            .collect();
        let Some(first) = hit.first().cloned() else {
            keep.push(r);
            continue;
        };
        for a in instances(&r) {
            out.acknowledged.push((first.clone(), a));
        }
        if hit.len() == 1 + r.folded_rules.len() {
            out.removed.push(r);
            continue;
        }
        r.folded_rules.retain(|s| !hit.contains(s));
        if hit.contains(&r.rule) && !r.folded_rules.is_empty() {
            r.rule = r.folded_rules.remove(0);
        }
        for h in hit {
            out.unfolded.push((h, r.rule.clone()));
        }
        keep.push(r);
    }
    *active = keep;
    out
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
pub fn entry_for(resp: &tollgate_ir::Response, alert: &AlertRef, now: Timestamp) -> ActiveResponse {
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
    let alert = reference(alert);
    ActiveResponse {
        rule: truncate(&resp.rule, 256),
        action: resp.action.clone(),
        since: Time(now),
        until_acknowledged: expires.is_none(),
        expires,
        alerts: vec![alert.clone()],
        alert,
        folded_rules: Vec::new(),
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
            let res = futures::future::join_all(calls).await;
            let errs: Vec<String> = res
                .into_iter()
                .filter_map(Result::err)
                .map(|e| e.to_string())
                .collect();
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
            let errs: Vec<String> = res
                .into_iter()
                .filter_map(Result::err)
                .map(|e| e.to_string())
                .collect();
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
        let kind = action.kind();
        let r = match action {
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
        };
        if let Err(e) = &r {
            // the webhook answers 500 (without the message): Alertmanager retries
            tracing::warn!(kind, error = %e, "alert action failed; the webhook answers 500");
        }
        r
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
    /// Status entries added, strengthened, joined or folded into.
    pub recorded: usize,
    /// Why nothing was done (unknown policy, another tenant, an alert
    /// instance already acknowledged).
    pub ignored: Option<String>,
}

/// Why an acknowledged alert instance is ignored (the webhook's answer).
pub fn ack_reason(a: &AcknowledgedAlert) -> String {
    let how = match a.reason {
        AcknowledgedReason::Released => "a person released its response",
        AcknowledgedReason::HoldEnded => "the declared hold of its response ended",
    };
    format!(
        "alert instance (fingerprint {}, startsAt {}) acknowledged: {how} ({}) at {}; it acts again when it fires anew",
        a.alert.fingerprint.as_deref().unwrap_or("-"),
        a.alert.starts_at.as_deref().unwrap_or("-"),
        a.rule,
        a.time.0
    )
}

/// Applies the declared responses of `policy` for `trigger`: fast path
/// (blocks on every target), then durable (status), then Events. Holds
/// the policy's status lock from the read of the policy to the status
/// write (see the module's header).
pub async fn respond(
    ctx: &Context,
    namespace: &str,
    policy_name: &str,
    tenant: &str,
    trigger: &tollgate_ir::ResponseTrigger,
    alert: &AlertRef,
) -> Result<Responded, String> {
    let api: Api<TollPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let obj = ObjectRef::<TollPolicy>::new(policy_name).within(namespace);
    let lock = ctx.status_lock(&obj);
    let guard = lock.lock().await;
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
        return Ok(Responded {
            ignored: Some(format!(
                "TollPolicy {namespace}/{policy_name} is not tenant {tenant}'s"
            )),
            ..Responded::default()
        });
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
    let mut status = policy.status.clone().unwrap_or_default();
    if let Some(a) = acknowledged(&status.acknowledged_alerts, &reference(alert)) {
        let reason = ack_reason(a);
        tracing::info!(namespace, policy = policy_name, alert = %alert.name, reason = %reason,
            "acknowledged alert instance re-sent; ignored");
        out.ignored = Some(reason);
        return Ok(out);
    }
    let now = Timestamp::now();
    let summary = alert.summary.as_deref().unwrap_or("");
    let mut events: Vec<(EventKind, &str, String)> = Vec::new();
    let mut entries = Vec::new();
    for r in &declared {
        if matches!(r.action, ResponseAction::Alert) {
            events.push((
                EventKind::Warning,
                RESPONSE_ALERT,
                format!("{} ({}): {}", alert.name, r.rule, summary),
            ));
        } else {
            entries.push(entry_for(r, alert, now));
        }
    }
    if !entries.is_empty() {
        out.recorded = record(
            ctx,
            &api,
            &policy,
            &mut status,
            entries,
            alert,
            now,
            &mut out,
            &mut events,
        )
        .await?;
    }
    drop(guard);
    for (kind, reason, note) in events {
        reconcile::publish(ctx, &policy, kind, reason, note).await;
    }
    Ok(out)
}

/// The blocks of `entries`: the fast path to every ready target, then the
/// status write (the caller holds the status lock and read `status`
/// under it). Returns how many entries changed the status; Events go to
/// `events`.
#[allow(clippy::too_many_arguments)]
async fn record(
    ctx: &Context,
    api: &Api<TollPolicy>,
    policy: &TollPolicy,
    status: &mut tollgate_crds::TollPolicyStatus,
    entries: Vec<ActiveResponse>,
    alert: &AlertRef,
    now: Timestamp,
    out: &mut Responded,
    events: &mut Vec<(EventKind, &'static str, String)>,
) -> Result<usize, String> {
    let namespace = policy.namespace().unwrap_or_default();
    let policy_name = policy.name_any();
    let tenant = policy.spec.tenant.as_str();
    // What status will hold; pushed per key as the stricter of what is in
    // force and what is new (a weaker response must not shorten a block in
    // force on the agents; a fold may lengthen another entry's keys).
    let before = desired_blocks(tenant, &status.active_responses, now.as_second());
    let mut notes = Vec::new();
    let mut changed = 0;
    for e in entries.iter().cloned() {
        let rule = e.rule.clone();
        match merge(&mut status.active_responses, e) {
            Merge::Added => notes.push(format!("{rule} active")),
            Merge::Strengthened => notes.push(format!("{rule} made stricter")),
            Merge::Joined => notes.push(format!("{rule} also set off by this alert")),
            Merge::Unchanged => continue,
            Merge::Folded { into, named } => {
                notes.push(format!("{rule} folded into {into}"));
                events.push((
                    EventKind::Warning,
                    RESPONSE_FOLDED,
                    format!(
                        "status.activeResponses is full ({MAX_ACTIVE}): {rule} folded into {into}, which now blocks what both block and holds as long as the longer{}",
                        if named {
                            String::new()
                        } else {
                            format!(" ({into} has {MAX_FOLDED_RULES} folded rules: {rule} is not named and ends with it)")
                        }
                    ),
                ));
            }
        }
        changed += 1;
    }
    let after = desired_blocks(tenant, &status.active_responses, now.as_second());
    let keys: BTreeSet<String> = entries
        .iter()
        .flat_map(|e| block_keys(tenant, &e.action))
        .chain(
            after
                .iter()
                .filter(|(k, e)| before.get(*k) != Some(*e))
                .map(|(k, _)| k.clone()),
        )
        .collect();
    out.blocks = after
        .into_iter()
        .filter(|(k, _)| keys.contains(k))
        .collect();
    let fleets: Api<SbcFleet> = Api::namespaced(ctx.client.clone(), &namespace);
    let fleet = fleets
        .get_opt(&policy.spec.fleet.name)
        .await
        .map_err(|e| format!("reading SbcFleet: {e}"))?;
    if let Some(fleet) = fleet {
        let targets: Vec<ResolvedTarget> = reconcile::resolve(ctx, &namespace, &fleet)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|t| t.ready && !t.terminating)
            .collect();
        let token = reconcile::agent_token(ctx, &namespace, &fleet)
            .await
            .map_err(|e| e.to_string())?;
        out.push = push_blocks(ctx, &targets, token.as_ref(), &out.blocks).await;
        let keys_s: Vec<&str> = out.blocks.keys().map(String::as_str).collect();
        events.push((
            EventKind::Warning,
            BLOCK_APPLIED,
            format!(
                "{} on {}/{} targets for alert {}",
                keys_s.join(", "),
                out.push.ok,
                targets.len(),
                alert.name
            ),
        ));
        if !out.push.failed.is_empty() {
            events.push((
                EventKind::Warning,
                BLOCK_FAILED,
                format!(
                    "{} targets did not take the block (the reconciler retries): {}",
                    out.push.failed.len(),
                    out.push.failed.join("; ")
                ),
            ));
        }
    } else {
        tracing::warn!(
            namespace,
            policy = policy_name,
            "fleet not found; block recorded in status only"
        );
    }
    // Durable: the status read under the lock, with the entries merged.
    if changed > 0 {
        reconcile::patch_status(api, &policy_name, status)
            .await
            .map_err(|e| e.to_string())?;
        events.push((
            EventKind::Warning,
            RESPONSE_ACTIVE,
            format!("{} (alert {})", notes.join("; "), alert.name),
        ));
    }
    // The reconciler keeps the blocks on new targets and ends them.
    Ok(changed)
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
    let stamp = Timestamp::now();
    for e in &expired {
        // a re-send of these instances must not set the hold off again
        acknowledge(
            &mut status.acknowledged_alerts,
            &e.rule,
            instances(e),
            AcknowledgedReason::HoldEnded,
            stamp,
        );
    }
    let kept = status.active_responses.clone();
    let released = match &release_value {
        Some(v) => release(&mut status.active_responses, v),
        None => Released::default(),
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
            .removed
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
        status.active_responses = kept;
    } else {
        // Durable acknowledgement: Alertmanager re-sends these instances
        // while they keep firing; none sets a released response off again,
        // whichever replica receives it, restarted or not.
        for (rule, a) in &released.acknowledged {
            acknowledge(
                &mut status.acknowledged_alerts,
                rule,
                [a.clone()],
                AcknowledgedReason::Released,
                stamp,
            );
        }
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
        let mut rules: Vec<String> = released
            .removed
            .iter()
            .map(|r| {
                if r.folded_rules.is_empty() {
                    r.rule.clone()
                } else {
                    format!("{} (with {})", r.rule, r.folded_rules.join(", "))
                }
            })
            .collect();
        rules.extend(released.unfolded.iter().map(|(rule, host)| {
            format!("{rule} (folded: its blocks stay with {host}, still active)")
        }));
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
                Err(e) => return (r.id.clone(), Err(e.to_string())),
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
                        errs.push(m.to_string());
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
    use proptest::prelude::*;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn alert(fp: &str, starts: i64) -> AlertReference {
        AlertReference {
            name: "A".into(),
            fingerprint: Some(fp.into()),
            starts_at: Some(Timestamp::from_second(starts).unwrap().to_string()),
        }
    }

    fn classes(c: &[&str]) -> ResponseAction {
        ResponseAction::BlockClasses {
            classes: c.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// An entry of `rule` set off by alert `fp` (instance started at 100).
    fn entry(rule: &str, expires: Option<i64>, fp: &str) -> ActiveResponse {
        entry_of(rule, expires, alert(fp, 100))
    }

    fn entry_of(rule: &str, expires: Option<i64>, a: AlertReference) -> ActiveResponse {
        ActiveResponse {
            rule: rule.into(),
            action: classes(&["international"]),
            since: at(1000),
            expires: expires.map(at),
            until_acknowledged: expires.is_none(),
            alerts: vec![a.clone()],
            alert: a,
            folded_rules: Vec::new(),
        }
    }

    #[test]
    fn merge_never_loosens() {
        let mut a = vec![];
        assert_eq!(merge(&mut a, entry("r1", Some(2000), "f1")), Merge::Added);
        // the same alert instance again (a re-send): nothing, even with a
        // later expiry (a re-send never extends a hold)
        assert_eq!(
            merge(&mut a, entry("r1", Some(9000), "f1")),
            Merge::Unchanged
        );
        // another alert, shorter: recorded with the entry, nothing loosened
        assert_eq!(merge(&mut a, entry("r1", Some(1500), "f2")), Merge::Joined);
        assert_eq!(agent_expiry(&a[0]), 2000);
        assert_eq!(a[0].alert.fingerprint.as_deref(), Some("f1"));
        assert_eq!(a[0].alerts.len(), 2);
        assert_eq!(a[0].alerts[0].fingerprint.as_deref(), Some("f2"));
        // longer wins
        assert_eq!(
            merge(&mut a, entry("r1", Some(3000), "f3")),
            Merge::Strengthened
        );
        assert_eq!(agent_expiry(&a[0]), 3000);
        assert_eq!(a[0].alert.fingerprint.as_deref(), Some("f3"));
        // until acknowledged wins and stays
        assert_eq!(merge(&mut a, entry("r1", None, "f4")), Merge::Strengthened);
        assert!(a[0].until_acknowledged && a[0].expires.is_none());
        assert_eq!(
            merge(&mut a, entry("r1", Some(99_999), "f5")),
            Merge::Joined
        );
        assert!(a[0].until_acknowledged);
        assert_eq!(a.len(), 1);
        // the same fingerprint fired anew (a new startsAt) is a new instance
        assert_eq!(
            merge(&mut a, entry_of("r1", None, alert("f1", 500))),
            Merge::Joined
        );
        assert_eq!(
            merge(&mut a, entry_of("r1", None, alert("f1", 500))),
            Merge::Unchanged
        );
        // at most MAX_RESPONSE_ALERTS instances, newest first
        for i in 0..20 {
            merge(&mut a, entry("r1", None, &format!("g{i}")));
        }
        assert_eq!(a[0].alerts.len(), MAX_RESPONSE_ALERTS);
        assert_eq!(a[0].alerts[0].fingerprint.as_deref(), Some("g19"));
    }

    #[test]
    fn a_fired_anew_alert_extends_a_hold() {
        let mut a = vec![entry_of("r1", Some(2000), alert("f1", 100))];
        // the same instance re-sent later: no extension
        assert_eq!(
            merge(&mut a, entry_of("r1", Some(5000), alert("f1", 100))),
            Merge::Unchanged
        );
        assert_eq!(agent_expiry(&a[0]), 2000);
        // resolved and fired again: a new instance acts
        assert_eq!(
            merge(&mut a, entry_of("r1", Some(5000), alert("f1", 1900))),
            Merge::Strengthened
        );
        assert_eq!(agent_expiry(&a[0]), 5000);
    }

    #[test]
    fn a_changed_declaration_of_a_rule_only_widens() {
        // the rule blocked the tenant until 5000; a later revision declares
        // it as a class block held longer: both hold (the tenant until 9000)
        let mut t = entry("r", Some(5000), "f1");
        t.action = ResponseAction::BlockTenant;
        let mut a = vec![t];
        assert_eq!(
            merge(&mut a, entry("r", Some(9000), "f2")),
            Merge::Strengthened
        );
        assert_eq!(a[0].action, ResponseAction::BlockTenant);
        assert_eq!(agent_expiry(&a[0]), 9000);
        // classes: the union
        let mut a = vec![entry("r", None, "f1")];
        let mut n = entry("r", Some(10), "f2");
        n.action = classes(&["premium-rate"]);
        assert_eq!(merge(&mut a, n), Merge::Strengthened);
        assert_eq!(a[0].action, classes(&["international", "premium-rate"]));
        assert!(a[0].until_acknowledged);
    }

    #[test]
    fn covers_and_union() {
        let i = classes(&["international"]);
        let ip = classes(&["international", "premium-rate"]);
        assert!(covers(&ip, &i) && !covers(&i, &ip));
        assert!(covers(&ResponseAction::BlockTenant, &ip));
        assert!(!covers(&ip, &ResponseAction::BlockTenant));
        assert!(covers(&i, &ResponseAction::Alert));
        assert_eq!(union(&i, &classes(&["premium-rate"])), ip);
        assert_eq!(union(&ip, &i), ip);
        assert_eq!(
            union(&i, &ResponseAction::BlockTenant),
            ResponseAction::BlockTenant
        );
        assert_eq!(union(&ResponseAction::Alert, &i), i);
        let many: Vec<String> = (0..MAX_ACTION_CLASSES).map(|n| format!("c{n}")).collect();
        let big = ResponseAction::BlockClasses { classes: many };
        assert_eq!(union(&big, &big), big);
        assert_eq!(
            union(&big, &classes(&["one-more"])),
            ResponseAction::BlockTenant
        );
    }

    /// A full list: the entry of every rule `x0..x63`, international
    /// blocked until 5000 except x7 (premium-rate, until acknowledged) and
    /// x9 (the tenant, until 3000).
    fn full() -> Vec<ActiveResponse> {
        let mut a: Vec<ActiveResponse> = (0..MAX_ACTIVE)
            .map(|i| entry(&format!("x{i}"), Some(5000), &format!("fx{i}")))
            .collect();
        a[7].action = classes(&["premium-rate"]);
        a[7].expires = None;
        a[7].until_acknowledged = true;
        a[9].action = ResponseAction::BlockTenant;
        a[9].expires = Some(at(3000));
        a
    }

    #[test]
    fn a_full_list_folds_and_never_drops() {
        // the same action, a hold within: into the first such entry, the
        // name recorded, nothing else changes
        let mut a = full();
        let before = a.clone();
        let m = merge(&mut a, entry("new", Some(4000), "fn"));
        assert_eq!(
            m,
            Merge::Folded {
                into: "x0".into(),
                named: true
            }
        );
        assert_eq!(a.len(), MAX_ACTIVE);
        assert_eq!(a[0].folded_rules, vec!["new".to_string()]);
        assert_eq!(agent_expiry(&a[0]), 5000);
        assert_eq!(desired_blocks("t", &a, 0), desired_blocks("t", &before, 0));
        // until acknowledged, premium-rate: x7 covers it exactly
        let mut a = full();
        let mut n = entry("p", None, "fp");
        n.action = classes(&["premium-rate"]);
        assert!(matches!(merge(&mut a, n), Merge::Folded { into, .. } if into == "x7"));
        // a longer hold of international: into the first entry of the same
        // action, held longer
        let mut a = full();
        let m = merge(&mut a, entry("long", Some(8000), "fl"));
        assert!(
            matches!(m, Merge::Folded { ref into, .. } if into == "x0"),
            "{m:?}"
        );
        assert_eq!(agent_expiry(&a[0]), 8000);
        assert_eq!(a[0].alert.fingerprint.as_deref(), Some("fl"));
        // a class nobody blocks: added to the least changed entry
        let mut a = full();
        let mut n = entry("mobile", Some(6000), "fm");
        n.action = classes(&["mobile"]);
        let m = merge(&mut a, n);
        assert!(
            matches!(m, Merge::Folded { ref into, .. } if into == "x7"),
            "{m:?}"
        );
        assert_eq!(a[7].action, classes(&["premium-rate", "mobile"]));
        assert!(a[7].until_acknowledged);
        // the rule again: found in foldedRules, an instance joins
        assert_eq!(
            merge(&mut a, {
                let mut n = entry("mobile", Some(6000), "fm2");
                n.action = classes(&["mobile"]);
                n
            }),
            Merge::Joined
        );
        // the tenant: into the tenant block
        let mut a = full();
        let mut n = entry("all", None, "ft");
        n.action = ResponseAction::BlockTenant;
        let m = merge(&mut a, n);
        assert!(
            matches!(m, Merge::Folded { ref into, .. } if into == "x9"),
            "{m:?}"
        );
        assert!(a[9].until_acknowledged);
        // a full foldedRules: the next host with room
        let mut a = full();
        for i in 0..MAX_FOLDED_RULES + 1 {
            merge(
                &mut a,
                entry(&format!("f{i}"), Some(4000), &format!("ff{i}")),
            );
        }
        assert_eq!(a[0].folded_rules.len(), MAX_FOLDED_RULES);
        assert_eq!(a[1].folded_rules, vec![format!("f{MAX_FOLDED_RULES}")]);
        // no room anywhere: the blocks still go in, the name does not
        let mut a = full();
        for e in &mut a {
            e.folded_rules = (0..MAX_FOLDED_RULES)
                .map(|i| format!("{}-{i}", e.rule))
                .collect();
        }
        let mut n = entry("late", None, "fl");
        n.action = classes(&["late"]);
        let m = merge(&mut a, n);
        assert_eq!(
            m,
            Merge::Folded {
                into: "x7".into(),
                named: false
            }
        );
        assert_eq!(a[7].action, classes(&["premium-rate", "late"]));
        assert_eq!(desired_blocks("t", &a, 0).get("t::late"), Some(&0));
    }

    fn arb_entry() -> impl Strategy<Value = ActiveResponse> {
        (
            0usize..80,
            prop::option::of(1000i64..9000),
            0usize..6,
            prop::collection::vec(0usize..5, 1..4),
            0u8..6,
            0i64..3,
        )
            .prop_map(|(rule, exp, kind, cls, fp, starts)| {
                let mut e = entry_of(
                    &format!("r{rule}"),
                    exp,
                    alert(&format!("f{fp}"), 100 + starts),
                );
                e.action = if kind == 0 {
                    ResponseAction::BlockTenant
                } else {
                    let mut c: Vec<String> = cls.iter().map(|n| format!("c{n}")).collect();
                    c.dedup();
                    ResponseAction::BlockClasses { classes: c }
                };
                e
            })
    }

    proptest! {
        /// Whatever is merged, in whatever order, into however full a
        /// list: no key in force before is weaker after; the keys of a
        /// response set off by an alert instance new to its rule hold at
        /// least as long as it declares (a re-sent instance never extends
        /// a hold); the list stays within the CRD's limits.
        #[test]
        fn merge_never_loosens_and_never_drops(
            seq in prop::collection::vec(arb_entry(), 1..200),
        ) {
            let mut a: Vec<ActiveResponse> = Vec::new();
            let mut seen: Vec<(String, AlertReference)> = Vec::new();
            for n in seq {
                let before = desired_blocks("t", &a, 0);
                let key = (n.rule.clone(), n.alert.clone());
                let want = if seen.contains(&key) {
                    BTreeMap::new()
                } else {
                    seen.push(key);
                    desired_blocks("t", std::slice::from_ref(&n), 0)
                };
                merge(&mut a, n);
                let after = desired_blocks("t", &a, 0);
                // the tenant block covers every class key
                let held = |k: &str| match (after.get(k), after.get("t")) {
                    (Some(a), Some(b)) => Some(stricter(*a, *b)),
                    (a, b) => a.or(b).copied(),
                };
                for (k, e) in before.iter().chain(want.iter()) {
                    let h = held(k);
                    prop_assert!(satisfied(h, *e), "{k}: {e} -> {h:?}");
                }
                prop_assert!(a.len() <= MAX_ACTIVE);
                for r in &a {
                    prop_assert!(r.alerts.len() <= MAX_RESPONSE_ALERTS);
                    prop_assert!(r.folded_rules.len() <= MAX_FOLDED_RULES);
                    if let ResponseAction::BlockClasses { classes } = &r.action {
                        prop_assert!(classes.len() <= MAX_ACTION_CLASSES);
                    }
                }
            }
        }
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
        let r = release(&mut a, "c, nope");
        assert_eq!(r.removed.len(), 1);
        assert!(r.unfolded.is_empty());
        assert_eq!(r.acknowledged, vec![("c".to_string(), alert("f3", 100))]);
        assert_eq!(a.len(), 1);
        let mut b = vec![entry("a", None, "f"), entry("b", None, "g")];
        let r = release(&mut b, "all");
        assert_eq!(r.removed.len(), 2);
        assert_eq!(r.acknowledged.len(), 2);
        assert!(b.is_empty());
        assert_eq!(next_expiry(&b), None);
        assert!(release(&mut b, "all").is_empty());
    }

    #[test]
    fn releasing_folded_rules() {
        let mut e = entry("host", None, "f1");
        e.folded_rules = vec!["x".into(), "y".into()];
        e.alerts.push(alert("f2", 100));
        // a folded rule: its name goes, the blocks stay with the others
        let mut a = vec![e.clone()];
        let r = release(&mut a, "x");
        assert!(r.removed.is_empty());
        assert_eq!(r.unfolded, vec![("x".to_string(), "host".to_string())]);
        assert_eq!(a[0].folded_rules, vec!["y".to_string()]);
        // every instance of the entry is acknowledged (which set x off is
        // not known; acknowledging the others changes nothing while the
        // entry stays)
        assert_eq!(r.acknowledged.len(), 2);
        // the entry's own rule: the next folded one takes its place
        let r = release(&mut a, "host");
        assert_eq!(r.unfolded, vec![("host".to_string(), "y".to_string())]);
        assert_eq!(a[0].rule, "y");
        assert!(a[0].folded_rules.is_empty());
        // the last rule: gone
        let r = release(&mut a, "y");
        assert_eq!(r.removed.len(), 1);
        assert!(a.is_empty());
        // every name at once
        let mut a = vec![e];
        let r = release(&mut a, "y,host,x");
        assert_eq!(r.removed.len(), 1);
        assert!(r.unfolded.is_empty());
    }

    #[test]
    fn acknowledgements_name_instances() {
        let mut acks = Vec::new();
        let t = Timestamp::from_second(5000).unwrap();
        acknowledge(
            &mut acks,
            "r1",
            [alert("f1", 100), alert("f2", 100)],
            AcknowledgedReason::Released,
            t,
        );
        assert_eq!(acks.len(), 2);
        assert_eq!(acks[0].alert.fingerprint.as_deref(), Some("f2"));
        // the same instance, a later acknowledgement: one entry, newest
        acknowledge(
            &mut acks,
            "r2",
            [alert("f1", 100)],
            AcknowledgedReason::HoldEnded,
            t,
        );
        assert_eq!(acks.len(), 2);
        assert_eq!(acks[0].rule, "r2");
        assert_eq!(acks[0].reason, AcknowledgedReason::HoldEnded);
        // an instance without startsAt or fingerprint is never recorded
        let mut no_start = alert("f3", 100);
        no_start.starts_at = None;
        let mut no_fp = alert("f4", 100);
        no_fp.fingerprint = None;
        acknowledge(
            &mut acks,
            "r",
            [no_start.clone(), no_fp],
            AcknowledgedReason::Released,
            t,
        );
        assert_eq!(acks.len(), 2);
        // matching: the same fingerprint and startsAt only
        assert!(acknowledged(&acks, &alert("f1", 100)).is_some());
        assert!(acknowledged(&acks, &alert("f1", 101)).is_none());
        assert!(acknowledged(&acks, &alert("f9", 100)).is_none());
        assert!(acknowledged(&acks, &no_start).is_none());
        // bounded, newest kept
        for i in 0..MAX_ACKNOWLEDGED_ALERTS + 10 {
            acknowledge(
                &mut acks,
                "r",
                [alert(&format!("g{i}"), 100)],
                AcknowledgedReason::Released,
                t,
            );
        }
        assert_eq!(acks.len(), MAX_ACKNOWLEDGED_ALERTS);
        let newest = format!("g{}", MAX_ACKNOWLEDGED_ALERTS + 9);
        assert_eq!(acks[0].alert.fingerprint.as_deref(), Some(newest.as_str()));
        assert!(acknowledged(&acks, &alert("f1", 100)).is_none());
        let reason = ack_reason(&acks[0]);
        assert!(
            reason.contains(&newest) && reason.contains("released"),
            "{reason}"
        );
    }

    #[test]
    fn instants_are_compared_normalized() {
        assert_eq!(
            normalize_instant("2026-01-01T01:00:00.5+01:00"),
            normalize_instant("2026-01-01T00:00:00.500000000Z")
        );
        assert_eq!(
            normalize_instant("2026-01-01T00:00:00.123456789Z").as_deref(),
            Some("2026-01-01T00:00:00.123456789Z")
        );
        assert_eq!(normalize_instant(""), None);
        assert_eq!(normalize_instant("yesterday"), None);
        let r = reference(&AlertRef {
            name: String::new(),
            fingerprint: "x".repeat(100),
            starts_at: "2026-01-01T02:00:00+02:00".into(),
            summary: None,
        });
        assert_eq!(r.name, "unnamed");
        assert_eq!(r.fingerprint.as_ref().map(String::len), Some(64));
        assert_eq!(r.starts_at.as_deref(), Some("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn entries_from_declared_responses() {
        use tollgate_ir::{AlertLevel, LimitMetric, Response, ResponseTrigger};
        let alert = AlertRef {
            name: "TollgateConcurrentCritical".into(),
            fingerprint: "abc".into(),
            starts_at: "2026-11-25T10:00:00.123Z".into(),
            summary: None,
        };
        let mut r = Response {
            trigger: ResponseTrigger::Breach {
                metric: LimitMetric::Concurrent,
                class: Some("international".into()),
                level: AlertLevel::Critical,
            },
            action: classes(&["international"]),
            hold_seconds: Some(600),
            until_acknowledged: false,
            rule: "respond:1".into(),
        };
        let now = Timestamp::from_second(1_000_000).unwrap();
        let e = entry_for(&r, &alert, now);
        assert_eq!(agent_expiry(&e), 1_000_600);
        assert!(!e.until_acknowledged);
        assert_eq!(e.alert.fingerprint.as_deref(), Some("abc"));
        assert_eq!(
            e.alert.starts_at.as_deref(),
            Some("2026-11-25T10:00:00.123Z")
        );
        assert_eq!(e.alerts, vec![e.alert.clone()]);
        r.hold_seconds = None;
        r.until_acknowledged = true;
        let e = entry_for(&r, &alert, now);
        assert!(e.until_acknowledged && e.expires.is_none());
        assert_eq!(agent_expiry(&e), 0);
    }
}
