//! The operator's agent client ([`HttpAgents`]) against the agent's test
//! double over real HTTP: staged applies, conflicts, re-checks at commit,
//! legacy and forgetful agents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;
use tollgate_operator::controller::agents::{
    AgentApi, AgentTarget, CommitResult, HttpAgents, StageResult, revision_label,
};
use tollgate_operator::controller::revisions::policy_hash;
use tollgate_rollout::{ApplyResult, RevisionRef};
use tollgate_testkit::fake_agent::*;

const TOKEN: &str = "fake-agent-unit-token";

fn rev(number: i64, variant: u32) -> RevisionRef {
    RevisionRef {
        number,
        hash: policy_hash(&sample_policy("acme", variant)),
    }
}

async fn setup() -> (FakeAgent, HttpAgents, AgentTarget) {
    let a = FakeAgent::start(TOKEN).await.unwrap();
    let t = AgentTarget {
        url: a.url(),
        token: Some(TOKEN.into()),
    };
    let h = HttpAgents::new(Duration::from_secs(5), Duration::from_secs(5));
    (a, h, t)
}

/// The rendered hash a commit's or PUT's `Ok` carries is the revision's.
fn confirmed(r: &RevisionRef) -> ApplyResult {
    ApplyResult::Ok {
        hash: r.hash.clone(),
    }
}

#[tokio::test]
async fn stage_then_commit_applies_and_a_second_commit_conflicts() {
    let (a, h, t) = setup().await;
    let (r1, p1) = (rev(1, 0), sample_policy("acme", 0));
    assert_eq!(h.stage(&t, "acme", &r1, &p1).await, StageResult::Staged);
    // staged, not applied
    assert!(a.tenants().is_empty());
    assert_eq!(a.staged().get("acme"), Some(&revision_label(&r1)));
    assert_eq!(
        h.state(&t, "acme").await.unwrap().applied,
        None,
        "a stage does not change what the agent holds"
    );
    assert_eq!(
        h.commit(&t, "acme", &r1).await,
        CommitResult::Done(confirmed(&r1))
    );
    assert_eq!(a.tenants().get("acme"), Some(&revision_label(&r1)));
    assert_eq!(h.state(&t, "acme").await.unwrap().applied, Some(r1.clone()));
    let applies = a.applies();
    assert_eq!(applies.len(), 1);
    assert_eq!(applies[0].via, Via::Commit);
    assert!(!applies[0].revalidated);
    assert!(applies[0].received >= a.stages()[0].at);
    // already committed: 409, nothing applied
    assert!(matches!(
        h.commit(&t, "acme", &r1).await,
        CommitResult::NotStaged { status: 409, message } if message.contains("nothing is staged")
    ));
    assert_eq!(a.applies().len(), 2);
    assert_eq!(a.applies()[1].status, 409);
    // a PUT is recorded as one
    let (r2, p2) = (rev(2, 1), sample_policy("acme", 1));
    assert_eq!(h.apply(&t, "acme", &r2, &p2).await, confirmed(&r2));
    assert_eq!(a.applies()[2].via, Via::Put);
}

#[tokio::test]
async fn a_commit_of_another_revision_conflicts_and_keeps_the_stage() {
    let (a, h, t) = setup().await;
    let (r1, p1) = (rev(1, 0), sample_policy("acme", 0));
    assert_eq!(h.stage(&t, "acme", &r1, &p1).await, StageResult::Staged);
    assert!(matches!(
        h.commit(&t, "acme", &rev(2, 1)).await,
        CommitResult::NotStaged { status: 409, message } if message.contains("is not staged")
    ));
    assert!(a.tenants().is_empty());
    assert_eq!(
        h.commit(&t, "acme", &r1).await,
        CommitResult::Done(confirmed(&r1))
    );
}

#[tokio::test]
async fn a_refused_stage_keeps_nothing() {
    let (a, h, t) = setup().await;
    a.set_reject_matching("1@", "probe failed: mtree.match");
    let r = h
        .stage(&t, "acme", &rev(1, 0), &sample_policy("acme", 0))
        .await;
    assert!(
        matches!(&r, StageResult::Failed(ApplyResult::Rejected { reason, message })
            if reason == "Rejected" && message.contains("probe failed")),
        "{r:?}"
    );
    assert!(a.staged().is_empty() && a.tenants().is_empty());
    assert_eq!(a.stages()[0].status, 422);
    // a policy that does not render is refused as by a PUT
    a.set_reject(None);
    let mut bad = sample_policy("acme", 0);
    bad.sources.networks[0].cidr = "127.10.0.300/16".into();
    assert!(matches!(
        h.stage(&t, "acme", &rev(2, 9), &bad).await,
        StageResult::Failed(ApplyResult::Rejected { .. })
    ));
    assert!(a.staged().is_empty());
}

#[tokio::test]
async fn a_changed_state_is_checked_again_at_commit() {
    let (a, h, t) = setup().await;
    let (r1, p1) = (rev(1, 0), sample_policy("acme", 0));
    assert_eq!(h.stage(&t, "acme", &r1, &p1).await, StageResult::Staged);
    // unchanged state: a refusal set after the stage does not matter
    a.set_reject(Some("too late"));
    assert_eq!(
        h.commit(&t, "acme", &r1).await,
        CommitResult::Done(confirmed(&r1))
    );
    a.set_reject(None);
    // another apply in between: the commit checks again
    let (r2, p2) = (rev(2, 1), sample_policy("acme", 1));
    assert_eq!(h.stage(&t, "acme", &r2, &p2).await, StageResult::Staged);
    let other = sample_policy("beta", 0);
    let rb = RevisionRef {
        number: 1,
        hash: policy_hash(&other),
    };
    assert_eq!(h.apply(&t, "beta", &rb, &other).await, confirmed(&rb));
    assert_eq!(
        h.commit(&t, "acme", &r2).await,
        CommitResult::Rechecked(confirmed(&r2))
    );
    assert!(a.applies().last().unwrap().revalidated);
    // and a refusal then counts
    let (r3, p3) = (rev(3, 2), sample_policy("acme", 2));
    assert_eq!(h.stage(&t, "acme", &r3, &p3).await, StageResult::Staged);
    assert!(h.put_block(&t, "acme::premium-rate", 0).await.is_ok());
    a.set_reject(Some("probe failed"));
    assert!(matches!(
        h.commit(&t, "acme", &r3).await,
        CommitResult::Done(ApplyResult::Rejected { .. })
    ));
    assert_eq!(a.tenants().get("acme"), Some(&revision_label(&r2)));
}

#[tokio::test]
async fn a_later_stage_of_another_tenant_makes_the_commit_check_again() {
    let (_a, h, t) = setup().await;
    let (r1, p1) = (rev(1, 0), sample_policy("acme", 0));
    let other = sample_policy("beta", 0);
    let rb = RevisionRef {
        number: 1,
        hash: policy_hash(&other),
    };
    assert_eq!(h.stage(&t, "acme", &r1, &p1).await, StageResult::Staged);
    assert_eq!(h.stage(&t, "beta", &rb, &other).await, StageResult::Staged);
    // the agent keeps the newest stage's checks only (beta's)
    assert_eq!(
        h.commit(&t, "acme", &r1).await,
        CommitResult::Rechecked(confirmed(&r1))
    );
    // and acme's commit changed the state beta's checks were made on
    assert_eq!(
        h.commit(&t, "beta", &rb).await,
        CommitResult::Rechecked(confirmed(&rb))
    );
}

#[tokio::test]
async fn a_legacy_agent_answers_404_and_a_forgetful_one_409() {
    let (a, h, t) = setup().await;
    let (r1, p1) = (rev(1, 0), sample_policy("acme", 0));
    a.set_legacy(true);
    assert_eq!(
        h.stage(&t, "acme", &r1, &p1).await,
        StageResult::Unsupported { status: 404 }
    );
    assert!(matches!(
        h.commit(&t, "acme", &r1).await,
        CommitResult::NotStaged { status: 404, message } if message == "no such endpoint"
    ));
    assert!(a.stages().is_empty() && a.applies().is_empty());
    a.set_legacy(false);
    a.set_forget_stages(true);
    assert_eq!(h.stage(&t, "acme", &r1, &p1).await, StageResult::Staged);
    assert!(a.staged().is_empty());
    assert!(matches!(
        h.commit(&t, "acme", &r1).await,
        CommitResult::NotStaged { status: 409, .. }
    ));
    assert!(a.tenants().is_empty());
}
