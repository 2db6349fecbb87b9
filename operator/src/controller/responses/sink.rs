//! The operator's [`AlertSink`] ([`OperatorSink`]): rollbacks from alerts
//! (handed to the rollout) and declared responses (the fast path to every
//! target, then `status.activeResponses`, then Events). Only the leader
//! acts. Holds the policy's status lock from its read of the policy
//! through the fast path to its status write, so a release and a response
//! of the same policy never interleave.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use tollgate_alerts::responses::{
    ack_reason, acknowledged, entry_for, fold_note, record, reference,
};
use tollgate_alerts::{AlertAction, AlertRef, AlertSink, responses_for};
use tollgate_crds::toll_policy::ActiveResponse;
use tollgate_crds::{PolicyRevision, SbcFleet, TollPolicy, TollPolicyStatus};
use tollgate_ir::ResponseAction;
use tollgate_rollout::EventKind;

use super::blocks::{PushReport, push_blocks};
use super::reasons::{
    BLOCK_APPLIED, BLOCK_FAILED, RESPONSE_ACTIVE, RESPONSE_ALERT, RESPONSE_FOLDED,
};
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::events::publish;
use crate::controller::fleet::ResolvedTarget;
use crate::controller::status;
use crate::controller::targets::{agent_token, resolve};

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
    type Error = Error;

    fn ready(&self) -> bool {
        self.current().is_some()
    }

    async fn act(&self, action: AlertAction) -> Result<(), Error> {
        self.act_checked(action).await.map(|_| ())
    }

    async fn act_checked(&self, action: AlertAction) -> Result<Option<String>, Error> {
        let Some(ctx) = self.current() else {
            return Err(Error::NotLeader);
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
        r.inspect_err(|e| {
            // the webhook answers 500 (without the message): Alertmanager retries
            tracing::warn!(kind, error = %e, "alert action failed; the webhook answers 500");
        })
    }
}

/// The revision number an alert's `tollgate_revision` names: a number, or
/// the name of one of the policy's PolicyRevisions.
async fn revision_number(
    ctx: &Context,
    namespace: &str,
    policy: &str,
    revision: &str,
) -> Result<Option<i64>, Error> {
    if let Ok(n) = revision.parse::<i64>() {
        return Ok(Some(n).filter(|n| *n >= 1));
    }
    let api: Api<PolicyRevision> = Api::namespaced(ctx.client.clone(), namespace);
    let r = api
        .get_opt(revision)
        .await
        .map_err(Error::read(format!("PolicyRevision {revision}")))?;
    Ok(r.filter(|r| r.spec.policy_name == policy)
        .map(|r| r.spec.revision))
}

async fn rollback(
    ctx: &Context,
    namespace: &str,
    policy: &str,
    revision: &str,
    alert: &AlertRef,
) -> Result<Option<String>, Error> {
    let api: Api<TollPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let found = api
        .get_opt(policy)
        .await
        .map_err(Error::read(format!("TollPolicy {namespace}/{policy}")))?;
    if found.is_none() {
        tracing::error!(namespace, policy, alert = %alert.name,
            "rollback alert for an unknown TollPolicy; ignored");
        return Ok(Some(format!("no TollPolicy {namespace}/{policy}")));
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
) -> Result<Responded, Error> {
    let api: Api<TollPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let obj = ObjectRef::<TollPolicy>::new(policy_name).within(namespace);
    let lock = ctx.status_lock(&obj);
    let guard = lock.lock().await;
    let read = api
        .get_opt(policy_name)
        .await
        .map_err(Error::read(format!("TollPolicy {namespace}/{policy_name}")))?;
    let Some(policy) = read else {
        tracing::error!(namespace, policy = policy_name, alert = %alert.name,
            "response alert for an unknown TollPolicy; ignored");
        return Ok(Responded {
            ignored: Some(format!("no TollPolicy {namespace}/{policy_name}")),
            ..Responded::default()
        });
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
        out.recorded = record_blocks(
            ctx,
            &api,
            &policy,
            &mut status,
            &entries,
            alert,
            now,
            &mut out,
            &mut events,
        )
        .await?;
    }
    drop(guard);
    for (kind, reason, note) in events {
        publish(ctx, &policy, kind, reason, note).await;
    }
    Ok(out)
}

/// The blocks of `entries`: the fast path to every ready target, then the
/// status write (the caller holds the status lock and read `status`
/// under it). Returns how many entries changed the status; Events go to
/// `events`.
#[allow(clippy::too_many_arguments)]
async fn record_blocks(
    ctx: &Context,
    api: &Api<TollPolicy>,
    policy: &TollPolicy,
    status: &mut TollPolicyStatus,
    entries: &[ActiveResponse],
    alert: &AlertRef,
    now: Timestamp,
    out: &mut Responded,
    events: &mut Vec<(EventKind, &'static str, String)>,
) -> Result<usize, Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let policy_name = policy.name_any();
    let tenant = policy.spec.tenant.as_str();
    let rec = record(
        &mut status.active_responses,
        tenant,
        entries,
        now.as_second(),
    );
    for (rule, into, named) in &rec.folded {
        events.push((
            EventKind::Warning,
            RESPONSE_FOLDED,
            fold_note(rule, into, *named),
        ));
    }
    out.blocks = rec.blocks;
    let fleets: Api<SbcFleet> = Api::namespaced(ctx.client.clone(), &namespace);
    let fleet = fleets
        .get_opt(&policy.spec.fleet.name)
        .await
        .map_err(Error::read("SbcFleet"))?;
    if let Some(fleet) = fleet {
        let targets: Vec<ResolvedTarget> = resolve(ctx, &namespace, &fleet)
            .await?
            .into_iter()
            .filter(|t| t.ready && !t.terminating)
            .collect();
        let token = agent_token(ctx, &namespace, &fleet).await?;
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
    if rec.changed > 0 {
        status::apply_responses(
            api,
            &policy_name,
            &status.active_responses,
            &status.acknowledged_alerts,
        )
        .await?;
        events.push((
            EventKind::Warning,
            RESPONSE_ACTIVE,
            format!("{} (alert {})", rec.notes.join("; "), alert.name),
        ));
    }
    // The reconciler keeps the blocks on new targets and ends them.
    Ok(rec.changed)
}
