//! The agents' side of responses: `PUT /v1/blocks` and
//! `DELETE /v1/blocks/{key}` to every target of a fleet, and keeping the
//! blocks in force on every eligible target (a new or restarted one too).

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use tollgate_alerts::responses::{desired_blocks, satisfied};
use tollgate_crds::TollPolicy;
use tollgate_crds::toll_policy::ActiveResponse;
use tollgate_rollout::EventKind;

use super::reasons::BLOCK_APPLIED;
use crate::controller::agents::{AgentTarget, truncate};
use crate::controller::context::Context;
use crate::controller::events::publish;
use crate::controller::fleet::ResolvedTarget;

/// Outcome of pushing blocks to targets.
#[derive(Debug, Default)]
pub struct PushReport {
    /// Targets that took every key.
    pub ok: usize,
    /// `target: message` of the failures.
    pub failed: Vec<String>,
}

impl PushReport {
    /// Tallies the per-target failures of [`target_failure`] (`None`: the
    /// target took every key).
    fn from_outcomes(outcomes: Vec<Option<String>>) -> Self {
        let mut rep = Self::default();
        for o in outcomes {
            match o {
                None => rep.ok += 1,
                Some(e) => rep.failed.push(e),
            }
        }
        rep
    }
}

/// One target's failure for the report, `target: errors` (shortened);
/// `None` without errors.
fn target_failure(id: &str, errs: &[String]) -> Option<String> {
    (!errs.is_empty()).then(|| format!("{id}: {}", truncate(&errs.join("; "), 300)))
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
    let results: Vec<Option<String>> = futures::stream::iter(targets.to_vec())
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
            target_failure(&r.id, &errs)
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
    let results: Vec<Option<String>> = futures::stream::iter(targets.to_vec())
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
            target_failure(&r.id, &errs)
        })
        .buffer_unordered(n)
        .collect()
        .await;
    PushReport::from_outcomes(results)
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
        publish(
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
