//! What the commands print: text for people, JSON for scripts (the same
//! facts). No I/O here but what the caller prints.

use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::{Value, json};
use tollgate_crds::toll_policy::{TargetState, TollPolicyPhase};
use tollgate_crds::{PolicyRevision, TollPolicy};
use tollgate_ir::{CompiledPolicy, ResponseAction};
use tollgate_policy::diff::Change;
use tollgate_policy::eval::{Call, Decision};
use tollgate_policy::explain;

/// Not Degraded, RolledBack or Failed.
pub fn healthy(p: &TollPolicy) -> bool {
    !matches!(
        p.status.as_ref().and_then(|s| s.phase),
        Some(TollPolicyPhase::Degraded | TollPolicyPhase::RolledBack | TollPolicyPhase::Failed)
    )
}

fn hash_of(revs: &[PolicyRevision], n: Option<i64>) -> Option<&str> {
    let n = n?;
    revs.iter()
        .find(|r| r.spec.revision == n)
        .map(|r| r.spec.hash.as_str())
}

/// `sha256:` and the first 12 hex digits.
fn short(hash: &str) -> String {
    hash.chars().take(7 + 12).collect()
}

fn time(t: &Time) -> String {
    t.0.to_string()
}

fn phase_name(p: &TollPolicy) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase)
        .map_or_else(|| "-".to_owned(), |ph| format!("{ph:?}"))
}

/// The newest failure of `target` in `status.failures`.
fn last_failure<'a>(
    p: &'a TollPolicy,
    target: &str,
) -> Option<&'a tollgate_crds::toll_policy::TargetFailure> {
    p.status
        .as_ref()?
        .failures
        .iter()
        .filter(|f| f.target == target)
        .max_by_key(|f| f.time.0)
}

fn target_json(p: &TollPolicy, revs: &[PolicyRevision], t: &TargetState) -> Value {
    json!({
        "target": t.target,
        "revision": t.revision,
        "hash": hash_of(revs, t.revision),
        // a revision is reported only when the agent's read-back matched it
        "consistent": t.revision.is_some(),
        "state": t.state,
        "lastFailure": last_failure(p, &t.target).map(|f| json!({
            "revision": f.revision, "reason": f.reason, "message": f.message, "time": time(&f.time),
        })),
    })
}

pub fn status_json(p: &TollPolicy, revs: &[PolicyRevision]) -> Value {
    let s = p.status.clone().unwrap_or_default();
    json!({
        "policy": p.name_any(),
        "namespace": p.namespace(),
        "tenant": p.spec.tenant,
        "fleet": p.spec.fleet.name,
        "generation": p.metadata.generation,
        "observedGeneration": s.observed_generation,
        "phase": s.phase,
        "currentRevision": s.current_revision.map(|n| json!({"number": n, "hash": hash_of(revs, Some(n))})),
        "lastGoodRevision": s.last_good_revision.map(|n| json!({"number": n, "hash": hash_of(revs, Some(n))})),
        "applied": s.applied,
        "rollout": p.spec.rollout,
        "conditions": s.conditions.iter().map(|c| json!({
            "type": c.type_, "status": c.status, "reason": c.reason, "message": c.message,
        })).collect::<Vec<_>>(),
        "targets": s.targets.iter().map(|t| target_json(p, revs, t)).collect::<Vec<_>>(),
        "targetsNotListed": s.targets_not_listed,
        "lastRollbackReason": s.last_rollback_reason,
        "activeResponses": s.active_responses,
    })
}

fn action_text(a: &ResponseAction) -> String {
    match a {
        ResponseAction::Alert => "alert".to_owned(),
        ResponseAction::BlockClasses { classes } => format!("block {}", classes.join(", ")),
        ResponseAction::BlockTenant => "block the tenant".to_owned(),
    }
}

pub fn status_text(p: &TollPolicy, revs: &[PolicyRevision]) -> String {
    let s = p.status.clone().unwrap_or_default();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "TollPolicy {} (namespace {}): tenant {}, fleet {}",
        p.name_any(),
        p.namespace().unwrap_or_default(),
        p.spec.tenant,
        p.spec.fleet.name
    );
    let _ = writeln!(
        o,
        "phase:        {}   (generation {}, status for {})",
        phase_name(p),
        p.metadata.generation.unwrap_or(0),
        s.observed_generation.map_or("-".into(), |g| g.to_string())
    );
    let rev = |n: Option<i64>| match n {
        Some(n) => format!(
            "{n} {}",
            hash_of(revs, Some(n)).map(short).unwrap_or_default()
        ),
        None => "-".to_owned(),
    };
    let _ = writeln!(
        o,
        "revision:     {}   last good: {}",
        rev(s.current_revision),
        rev(s.last_good_revision)
    );
    let _ = writeln!(o, "applied:      {}", s.applied.as_deref().unwrap_or("-"));
    let conds: Vec<String> = s
        .conditions
        .iter()
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect();
    let _ = writeln!(o, "conditions:   {}", conds.join(" "));
    if let Some(r) = &s.last_rollback_reason {
        let _ = writeln!(o, "rolled back:  {r}");
    }
    let _ = writeln!(o);
    let w = s
        .targets
        .iter()
        .map(|t| t.target.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let _ = writeln!(
        o,
        "{:<w$}  {:<8}  {:<19}  {:<10}  {:<8}  LAST FAILURE",
        "SBC", "REVISION", "HASH", "CONSISTENT", "STATE"
    );
    for t in &s.targets {
        let failure = last_failure(p, &t.target).map_or("-".to_owned(), |f| {
            let msg: String = f.message.chars().take(80).collect();
            format!(
                "revision {}: {} {} ({})",
                f.revision,
                f.reason,
                msg,
                time(&f.time)
            )
        });
        let _ = writeln!(
            o,
            "{:<w$}  {:<8}  {:<19}  {:<10}  {:<8}  {failure}",
            t.target,
            t.revision.map_or("-".into(), |n| n.to_string()),
            hash_of(revs, t.revision).map_or("-".into(), short),
            if t.revision.is_some() { "yes" } else { "no" },
            format!("{:?}", t.state),
        );
    }
    if s.targets.is_empty() {
        let _ = writeln!(o, "(no target reported yet)");
    }
    if let Some(n) = s.targets_not_listed {
        let _ = writeln!(
            o,
            "... and {n} more targets at the current revision or waiting (not listed)"
        );
    }
    if !s.active_responses.is_empty() {
        let _ = writeln!(o, "\nresponses in force:");
        for r in &s.active_responses {
            let until = if r.until_acknowledged {
                "until released".to_owned()
            } else {
                r.expires
                    .as_ref()
                    .map_or("-".into(), |e| format!("until {}", time(e)))
            };
            let _ = writeln!(
                o,
                "  {}: {} since {}, {until} (alert {})",
                r.rule,
                action_text(&r.action),
                time(&r.since),
                r.alert.name
            );
        }
        let _ = writeln!(
            o,
            "  release: kubectl tollgate release {} RULE... | --all",
            p.name_any()
        );
    }
    o
}

pub fn history_json(p: &TollPolicy, revs: &[PolicyRevision]) -> Value {
    let s = p.status.clone().unwrap_or_default();
    json!({
        "policy": p.name_any(),
        "currentRevision": s.current_revision,
        "lastGoodRevision": s.last_good_revision,
        "revisions": revs.iter().map(|r| json!({
            "revision": r.spec.revision,
            "name": r.name_any(),
            "hash": r.spec.hash,
            "createdFrom": r.spec.created_from,
            "created": r.metadata.creation_timestamp.as_ref().map(time),
            "chunked": r.spec.parts.is_some(),
        })).collect::<Vec<_>>(),
    })
}

pub fn history_text(p: &TollPolicy, revs: &[PolicyRevision]) -> String {
    let s = p.status.clone().unwrap_or_default();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<8}  {:<19}  {:<10}  {:<25}  NOTE",
        "REVISION", "HASH", "GENERATION", "CREATED"
    );
    for r in revs {
        let n = Some(r.spec.revision);
        let mut note = Vec::new();
        if s.current_revision == n {
            note.push("current");
        }
        if s.last_good_revision == n {
            note.push("last good");
        }
        let _ = writeln!(
            o,
            "{:<8}  {:<19}  {:<10}  {:<25}  {}",
            r.spec.revision,
            short(&r.spec.hash),
            r.spec.created_from,
            r.metadata
                .creation_timestamp
                .as_ref()
                .map(time)
                .unwrap_or_default(),
            note.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "what changed: kubectl tollgate history {} --diff A B",
        p.name_any()
    );
    o
}

pub fn diff_json(p: &TollPolicy, a: i64, b: i64, changes: &[Change]) -> Value {
    json!({
        "policy": p.name_any(),
        "from": a,
        "to": b,
        "loosens": tollgate_policy::diff::loosens(changes),
        "changes": changes.iter().map(|c| json!({
            "area": c.area.name(),
            "effect": c.effect(),
            "description": c.description,
            "rules": {"before": c.rules.0, "after": c.rules.1},
        })).collect::<Vec<_>>(),
    })
}

/// As `tollgate diff` prints one tenant.
pub fn diff_text(p: &TollPolicy, a: i64, b: i64, changes: &[Change]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "TollPolicy {} (tenant {}), revision {a} → {b}:",
        p.name_any(),
        p.spec.tenant
    );
    if changes.is_empty() {
        let _ = writeln!(o, "  no changes");
    }
    o.push_str(&tollgate_policy::diff::text(changes));
    let _ = writeln!(o, "{}", tollgate_policy::diff::summary(changes));
    o
}

/// The responses in force block the call as they do on the SBC.
pub fn blocks_in_force(p: &TollPolicy, call: &mut Call) {
    let Some(s) = &p.status else { return };
    for r in &s.active_responses {
        match &r.action {
            ResponseAction::BlockTenant => call.blocked_tenant = true,
            ResponseAction::BlockClasses { classes } => {
                call.blocked_classes.extend(classes.iter().cloned());
            }
            ResponseAction::Alert => {}
        }
    }
}

pub fn explain_json(
    p: &TollPolicy,
    n: i64,
    policy: &CompiledPolicy,
    call: &Call,
    d: &Decision<'_>,
) -> Value {
    json!({
        "policy": p.name_any(),
        "tenant": policy.tenant,
        "revision": n,
        "call": explain::call_json(call),
        "decision": explain::decision_json(d, policy),
    })
}

pub fn explain_text(
    p: &TollPolicy,
    n: i64,
    policy: &CompiledPolicy,
    call: &Call,
    d: &Decision<'_>,
) -> String {
    let mut o = format!(
        "TollPolicy {} (tenant {}), revision {n} as the cluster holds it\n",
        p.name_any(),
        policy.tenant
    );
    if call.blocked_tenant || !call.blocked_classes.is_empty() {
        let mut b: Vec<String> = call.blocked_classes.iter().cloned().collect();
        if call.blocked_tenant {
            b.insert(0, "the tenant".into());
        }
        let _ = writeln!(o, "blocked now: {} (responses in force)", b.join(", "));
    }
    o.push_str(&explain::text(policy, call, d, &|rule| {
        explain::place_lines(policy, rule)
    }));
    o
}
