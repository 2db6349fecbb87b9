//! The reconciler's upkeep of responses, before the rollout: under the
//! policy's status lock, entries whose declared hold ended go, and a
//! person's release (the annotation [`RELEASE_ANNOTATION`]) is carried
//! out: the blocks no remaining response holds are lifted on every
//! target, the instances acknowledged, the annotation removed. The rules
//! are [`tollgate_alerts::responses::upkeep`].

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use tollgate_alerts::responses::{
    self as rules, RELEASE_ANNOTATION, in_force, released_rules, truncate,
};
use tollgate_crds::TollPolicy;
use tollgate_crds::toll_policy::ActiveResponse;
use tollgate_rollout::EventKind;

use super::blocks::{PushReport, lift_blocks, push_blocks};
use super::reasons::{BLOCK_FAILED, RESPONSE_EXPIRED, RESPONSE_RELEASED};
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::events::publish;
use crate::controller::fleet::ResolvedTarget;
use crate::controller::status::{self, RESPONSES_MANAGER};

/// The responses part of a reconcile, before the rollout: under the status
/// lock, drop expired entries and released ones (lifting their blocks),
/// remove the release annotation. (After the rollout the reconciler makes
/// every eligible target hold the blocks in force,
/// [`super::blocks::ensure`].) Returns the activeResponses after the
/// changes. `policy` was read at the start of this reconcile; a response
/// the sink records meanwhile changes the object, which triggers another
/// reconcile.
pub async fn upkeep(
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
    let plan = rules::upkeep(
        &status.active_responses,
        tenant,
        release_value.as_deref(),
        now,
    );
    // Lift first (under the lock): the released entries leave the status
    // only once every target dropped their keys, so a failure is retried.
    let mut rep = PushReport::default();
    if release_value.is_some() {
        rep = lift_blocks(ctx, targets, token, &plan.lift).await;
        if !plan.reset.is_empty() {
            push_blocks(ctx, targets, token, &plan.reset).await;
        }
    }
    let lift_failed = !rep.failed.is_empty();
    let (active, changed) = plan.settle(
        &mut status.acknowledged_alerts,
        !lift_failed,
        Timestamp::now(),
    );
    status.active_responses = active;
    if changed {
        status::apply_responses(
            &api,
            &name,
            &status.active_responses,
            &status.acknowledged_alerts,
        )
        .await?;
    }
    drop(g);
    for e in &plan.expired {
        publish(
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
            publish(
                ctx,
                policy,
                EventKind::Warning,
                BLOCK_FAILED,
                format!(
                    "lifting {} failed on: {}",
                    plan.lift.join(", "),
                    rep.failed.join("; ")
                ),
            )
            .await;
            return Err(Error::LiftFailed(rep.failed.len()));
        }
        let rules = released_rules(&plan.released);
        publish(
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
                if plan.lift.is_empty() {
                    "no keys".to_owned()
                } else {
                    plan.lift.join(", ")
                },
                rep.ok
            ),
        )
        .await;
        // the annotation is metadata, not status: a merge patch under the
        // responses' manager (it only ever removes this key)
        let patch = serde_json::json!({"metadata": {"annotations": {RELEASE_ANNOTATION: null}}});
        api.patch(
            &name,
            &PatchParams {
                field_manager: Some(RESPONSES_MANAGER.to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(status.active_responses)
}
