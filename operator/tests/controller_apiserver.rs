//! The controller against the real testbed API server
//! (`scripts/apiserver.sh start`, then `export KUBECONFIG=...`; the test
//! command `scripts/test.sh` does both), with three fake agents
//! (`controller::fake_agent`) served over real HTTP on loopback ports.
//!
//! Skipped, saying so, when KUBECONFIG is unset; refuses to run unless its
//! current context is `testbed`. Works in its own namespace, which it
//! deletes at the end.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::oneshot;

use tollgate_crds::sbc_fleet::SbcBackend;
use tollgate_crds::toll_policy::{FleetReference, RolloutStrategy, StepSize, TollPolicyPhase};
use tollgate_crds::{PolicyRevision, SbcFleet, SbcFleetSpec, TollPolicy, TollPolicySpec};
use tollgate_operator::controller::agents::{HttpAgents, revision_label};
use tollgate_operator::controller::metrics::Metrics;
use tollgate_operator::controller::revisions::{POLICY_LABEL, policy_hash, revision_name};
use tollgate_operator::controller::{Config, FINALIZER, Operator};
use tollgate_rollout::RevisionRef;
use tollgate_testkit::fake_agent::{
    ApplyRecord, FakeAgent, Via, no_bake, sample_policy, toll_policy,
};

use tollgate_testkit::{self as testkit, R, wait_for};

/// How often the waits poll.
const POLL: Duration = Duration::from_millis(200);

const TOKEN: &str = "fake-agent-token-0123456789";
const MANAGER: &str = "tollgate-operator-tests";

/// A controller running in this process; stopped (gracefully) or dropped.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn start_controller(client: &Client, ns: &str) -> Running {
    start_controller_with(client, ns, Arc::new(Metrics::default()))
}

/// [`start_controller`] counting in `metrics`.
fn start_controller_with(client: &Client, ns: &str, metrics: Arc<Metrics>) -> Running {
    start_controller_summaries(client, ns, metrics, Duration::from_secs(2))
}

/// [`start_controller_with`] keeping the agents' summaries `ttl` (as the
/// binary does, `--agent-summary-ttl-ms`, 2 s by default).
fn start_controller_summaries(
    client: &Client,
    ns: &str,
    metrics: Arc<Metrics>,
    ttl: Duration,
) -> Running {
    let (tx, rx) = oneshot::channel::<()>();
    let config = Config {
        namespace: Some(ns.to_owned()),
        instance: Some("controller-test".into()),
        ..Config::default()
    };
    let agents = Arc::new(
        HttpAgents::new(Duration::from_secs(3), Duration::from_secs(30)).with_summaries(ttl),
    );
    let op = Operator::new(client.clone(), config, agents, metrics);
    let task = tokio::spawn(op.run(async move {
        let _ = rx.await;
    }));
    Running {
        stop: Some(tx),
        task,
    }
}

impl Running {
    /// Kills it as a crash would: no graceful shutdown.
    async fn kill(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        self.stop.take();
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.task).await;
        self.task.abort();
    }
}

fn rev(number: i64, variant: u32) -> RevisionRef {
    RevisionRef {
        number,
        hash: policy_hash(&sample_policy("acme", variant)),
    }
}

async fn set_variant(api: &Api<TollPolicy>, variant: u32) -> R {
    let p = json!({"spec": {"policy": sample_policy("acme", variant)}});
    api.patch("acme", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    Ok(())
}

/// Waits until the policy's status shows `phase` for `revision`, and returns it.
async fn wait_phase(
    api: &Api<TollPolicy>,
    phase: TollPolicyPhase,
    revision: i64,
    secs: u64,
) -> R<TollPolicy> {
    let what = format!("phase {phase:?} of revision {revision}");
    let r = wait_for(&what, secs, POLL, || async {
        let p = api.get("acme").await?;
        let s = p.status.clone().unwrap_or_default();
        Ok((s.phase == Some(phase)
            && s.current_revision == Some(revision)
            && s.observed_generation == p.metadata.generation)
            .then_some(p))
    })
    .await;
    if r.is_err()
        && let Ok(p) = api.get("acme").await
    {
        eprintln!(
            "status at timeout: {}",
            serde_json::to_string_pretty(&p.status).unwrap_or_default()
        );
    }
    r
}

fn holds(agents: &[FakeAgent]) -> Vec<Option<String>> {
    agents
        .iter()
        .map(|a| a.tenants().get("acme").cloned())
        .collect()
}

fn put_times(agent: &FakeAgent, label: &str) -> Vec<SystemTime> {
    agent
        .applies()
        .iter()
        .filter(|a| a.revision.as_deref() == Some(label) && a.status == 200)
        .map(|a| a.at)
        .collect()
}

fn gap(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a).map(|d| d.as_secs_f64()).unwrap_or(-1.0)
}

fn condition(p: &TollPolicy, type_: &str) -> Option<(String, String)> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// (status, reason, message) of a condition.
fn condition_message(p: &TollPolicy, type_: &str) -> Option<(String, String, String)> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_rolls_out_over_fake_agents() {
    testkit::in_testbed_namespace("controller_apiserver", "t-ctl", MANAGER, async |c, ns| {
        scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn scenario(client: &Client, ns: &str) -> R {
    // Three agents; their ids sort as their ports do only by chance, so
    // order them as the rollout does (by target id).
    let mut agents = testkit::start_agents(3, TOKEN).await?;
    agents.sort_by_key(|a| format!("127.0.0.1:{}", a.addr().port()));

    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;

    let ctl = start_controller(client, ns);
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    let revs: Api<PolicyRevision> = Api::namespaced(client.clone(), ns);
    let policy = TollPolicy::new(
        "acme",
        TollPolicySpec {
            tenant: "acme".into(),
            policy: sample_policy("acme", 0),
            fleet: FleetReference {
                name: "edge".into(),
            },
            rollout: RolloutStrategy {
                canary: Some(StepSize::count(1)),
                bake_seconds: 2,
                batch: Some(StepSize::count(1)),
                ..RolloutStrategy::default()
            },
            source_hash: None,
            parts: None,
        },
    );
    api.create(&PostParams::default(), &policy).await?;

    // ---- 1. the first rollout: canary, bake, batch, bake, batch
    let t0 = Instant::now();
    let p = wait_phase(&api, TollPolicyPhase::Applied, 1, 60).await?;
    eprintln!(
        "revision 1 applied to 3 agents in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let s = p.status.clone().unwrap_or_default();
    let r1 = rev(1, 0);
    let l1 = revision_label(&r1);
    ensure(
        s.applied.as_deref() == Some("3/3"),
        format!("applied {:?}", s.applied),
    )?;
    ensure(s.last_good_revision == Some(1), "lastGoodRevision 1")?;
    ensure(s.failures.is_empty(), "no failures")?;
    for (t, want) in [
        ("Compiled", ("True", "CompileSucceeded")),
        ("Validated", ("True", "ValidationSucceeded")),
        ("Applied", ("True", "RolloutComplete")),
        ("Progressing", ("False", "AsExpected")),
        ("Degraded", ("False", "AsExpected")),
    ] {
        let got = condition(&p, t);
        ensure(
            got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())) == Some(want),
            format!("condition {t}: {got:?}, want {want:?}"),
        )?;
    }
    ensure(
        p.finalizers().iter().any(|f| f == FINALIZER),
        "finalizer set",
    )?;
    let rollout = s.rollout.clone().ok_or("status.rollout missing")?;
    ensure(
        rollout.get("mode") == Some(&json!("Complete")),
        format!("rollout {rollout:?}"),
    )?;
    let list = revs.list(&ListParams::default()).await?;
    ensure(
        list.items.len() == 1,
        format!("{} revisions", list.items.len()),
    )?;
    let pr = &list.items[0];
    ensure(
        pr.name_any() == revision_name("acme", &r1.hash),
        format!("name {}", pr.name_any()),
    )?;
    ensure(
        pr.spec.revision == 1 && pr.spec.hash == r1.hash,
        "revision spec",
    )?;
    ensure(
        pr.labels().get(POLICY_LABEL).map(String::as_str) == Some("acme"),
        "label",
    )?;
    let owner = pr.owner_references().first().cloned().ok_or("owner")?;
    ensure(
        owner.kind == "TollPolicy"
            && owner.controller == Some(true)
            && Some(owner.uid.clone()) == p.metadata.uid,
        format!("owner {owner:?}"),
    )?;
    ensure(
        holds(&agents) == vec![Some(l1.clone()); 3],
        format!("agents hold {:?}", holds(&agents)),
    )?;
    // the steps were observable: canary first, the others after the bake
    let t: Vec<SystemTime> = agents.iter().map(|a| put_times(a, &l1)[0]).collect();
    let (g1, g2) = (gap(t[0], t[1]), gap(t[1], t[2]));
    eprintln!("apply gaps: canary -> batch 1 {g1:.2} s, batch 1 -> batch 2 {g2:.2} s");
    // The machine counts whole seconds (`rollout::Seconds`): a bake of 2 s
    // ends between 1 and 2 s after the step's completion second.
    ensure(
        g1 >= 1.0 && g2 >= 1.0,
        format!("bake gaps {g1} {g2} (want >= 1 s)"),
    )?;
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), ns);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("acme"))
        .filter_map(|e| e.reason)
        .collect();
    eprintln!("events: {reasons:?}");
    ensure(
        !reasons.is_empty() && reasons.iter().any(|r| r == "RolloutComplete"),
        format!("events {reasons:?}"),
    )?;

    // ---- 2. a spec change gives revision 2
    set_variant(&api, 1).await?;
    let p = wait_phase(&api, TollPolicyPhase::Applied, 2, 60).await?;
    let l2 = revision_label(&rev(2, 1));
    ensure(
        p.status.as_ref().and_then(|s| s.last_good_revision) == Some(2),
        "last good 2",
    )?;
    ensure(
        holds(&agents) == vec![Some(l2.clone()); 3],
        format!("agents hold {:?}", holds(&agents)),
    )?;
    ensure(
        revs.list(&ListParams::default()).await?.items.len() == 2,
        "two revisions",
    )?;

    // ---- 3. a batch agent rejects: the rollout halts, the failure is in status
    agents[1].set_reject(Some("probe failed: mtree.match d:acme gave no chain"));
    set_variant(&api, 2).await?;
    let p = wait_phase(&api, TollPolicyPhase::Degraded, 3, 60).await?;
    let s = p.status.clone().unwrap_or_default();
    let f = s.failures.first().ok_or("no failure in status")?;
    ensure(
        f.target == format!("127.0.0.1:{}", agents[1].addr().port())
            && f.reason == "Rejected"
            && f.revision == 3
            && f.message.contains("probe failed"),
        format!("failure {f:?}"),
    )?;
    ensure(
        condition(&p, "Degraded").map(|c| c.0) == Some("True".into()),
        "Degraded=True",
    )?;
    let l3 = revision_label(&rev(3, 2));
    ensure(
        holds(&agents) == vec![Some(l3.clone()), Some(l2.clone()), Some(l2.clone())],
        format!("agents hold {:?}", holds(&agents)),
    )?;

    // ---- 4. the canary rejects a new revision: rolled back to the last good one
    agents[1].set_reject(None);
    agents[0].set_reject_matching("4@", "trial start failed");
    set_variant(&api, 3).await?;
    let p = wait_phase(&api, TollPolicyPhase::RolledBack, 4, 60).await?;
    let s = p.status.clone().unwrap_or_default();
    ensure(s.last_good_revision == Some(2), "last good still 2")?;
    ensure(s.last_rollback_reason.is_some(), "lastRollbackReason")?;
    ensure(
        condition(&p, "RolledBack").map(|c| c.0) == Some("True".into()),
        "RolledBack=True",
    )?;
    wait_for("every agent back on revision 2", 30, POLL, || async {
        Ok((holds(&agents) == vec![Some(l2.clone()); 3]).then_some(()))
    })
    .await?;
    agents[0].set_reject(None);

    // ---- 5. a restarted controller resumes mid-rollout from status.rollout
    let p = json!({"spec": {"policy": sample_policy("acme", 4), "rollout": {"bakeSeconds": 6}}});
    api.patch("acme", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    let l5 = revision_label(&rev(5, 4));
    wait_for("the canary on revision 5", 30, POLL, || async {
        Ok((holds(&agents)[0].as_deref() == Some(l5.as_str())).then_some(()))
    })
    .await?;
    ctl.kill().await;
    let persisted = api.get("acme").await?.status.unwrap_or_default();
    let mode = persisted
        .rollout
        .as_ref()
        .and_then(|r| r.get("mode").cloned());
    ensure(
        mode == Some(json!("RollingOut")),
        format!("persisted mode {mode:?}"),
    )?;
    ensure(
        holds(&agents)[1..] == [Some(l2.clone()), Some(l2.clone())],
        "others not yet",
    )?;
    let ctl = start_controller(client, ns);
    wait_phase(&api, TollPolicyPhase::Applied, 5, 60).await?;
    ensure(
        holds(&agents) == vec![Some(l5.clone()); 3],
        format!("agents hold {:?}", holds(&agents)),
    )?;
    let canary = put_times(&agents[0], &l5);
    ensure(
        canary.len() == 1,
        format!("the canary got revision 5 {} times", canary.len()),
    )?;
    let g = gap(canary[0], put_times(&agents[1], &l5)[0]);
    eprintln!("restart: canary -> batch 1 {g:.2} s across the restart (bake 6 s)");
    ensure(
        g >= 5.0,
        format!("bake across the restart {g} s (want >= 5 s)"),
    )?;

    // ---- 6. deletion removes the tenant from the agents, the revisions and the finalizer
    api.delete("acme", &DeleteParams::default()).await?;
    wait_for("the TollPolicy gone", 60, POLL, || async {
        Ok(api.get_opt("acme").await?.is_none().then_some(()))
    })
    .await?;
    ensure(
        holds(&agents) == vec![None, None, None],
        format!("agents hold {:?}", holds(&agents)),
    )?;
    ensure(
        revs.list(&ListParams::default()).await?.items.is_empty(),
        "revisions deleted",
    )?;
    ctl.stop().await;
    Ok(())
}

// ---------------------------------------------------------------- two-phase applies

/// The applies (PUT, commit) of `label` the agent answered.
fn applies_of(agent: &FakeAgent, label: &str) -> Vec<ApplyRecord> {
    agent
        .applies()
        .into_iter()
        .filter(|a| a.revision.as_deref() == Some(label))
        .collect()
}

/// (via, status) of the applies of `label`.
fn vias(agent: &FakeAgent, label: &str) -> Vec<(Via, u16)> {
    applies_of(agent, label)
        .iter()
        .map(|a| (a.via, a.status))
        .collect()
}

/// Statuses of the stages of `label`.
fn stage_statuses(agent: &FakeAgent, label: &str) -> Vec<u16> {
    agent
        .stages()
        .iter()
        .filter(|s| s.revision.as_deref() == Some(label))
        .map(|s| s.status)
        .collect()
}

fn agent_calls(metrics: &Metrics, call: &str, result: &str) -> u64 {
    let want =
        format!("tollgate_operator_agent_calls_total{{call=\"{call}\",result=\"{result}\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(want.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_staged_everywhere_then_committed() {
    testkit::in_testbed_namespace("controller_apiserver", "t-stage", MANAGER, async |c, ns| {
        two_phase_scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn two_phase_scenario(client: &Client, ns: &str) -> R {
    let mut agents = testkit::start_agents(3, TOKEN).await?;
    agents.sort_by_key(|a| format!("127.0.0.1:{}", a.addr().port()));
    // the stages answer at different times (the agent's checks take ~1 s
    // for a large policy); the commits must all wait for the slowest
    for (a, ms) in agents.iter().zip([0, 300, 900]) {
        a.set_delay(Duration::from_millis(ms));
        a.set_commit_delay(Duration::from_millis(50));
    }
    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;
    let metrics = Arc::new(Metrics::default());
    let ctl = start_controller_with(client, ns, Arc::clone(&metrics));
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    // one batch of every target: no canary, no bake
    let policy = toll_policy("acme", sample_policy("acme", 0), "edge", no_bake());
    api.create(&PostParams::default(), &policy).await?;

    // ---- 1. stage on all three, then commit on all three; no PUT
    wait_phase(&api, TollPolicyPhase::Applied, 1, 60).await?;
    let l1 = revision_label(&rev(1, 0));
    ensure(
        holds(&agents) == vec![Some(l1.clone()); 3],
        format!("agents hold {:?}", holds(&agents)),
    )?;
    for (i, a) in agents.iter().enumerate() {
        ensure(
            stage_statuses(a, &l1) == [200] && vias(a, &l1) == [(Via::Commit, 200)],
            format!(
                "agent {i}: stages {:?}, applies {:?}",
                stage_statuses(a, &l1),
                vias(a, &l1)
            ),
        )?;
    }
    let last_stage = agents
        .iter()
        .flat_map(|a| a.stages())
        .map(|s| s.at)
        .max()
        .ok_or("no stage")?;
    let all: Vec<ApplyRecord> = agents.iter().flat_map(|a| applies_of(a, &l1)).collect();
    let first_commit = all.iter().map(|a| a.received).min().ok_or("no commit")?;
    let last_commit = all.iter().map(|a| a.at).max().ok_or("no commit")?;
    let first_stage = agents
        .iter()
        .flat_map(|a| a.stages())
        .map(|s| s.received)
        .min()
        .ok_or("no stage")?;
    eprintln!(
        "stages {:.2} s (first sent -> last answered), then the commits within {:.2} s \
         (first sent {:.3} s after the last stage answered)",
        gap(first_stage, last_stage),
        gap(first_commit, last_commit),
        gap(last_stage, first_commit),
    );
    ensure(
        first_commit >= last_stage,
        format!(
            "a commit was sent {:.3} s before the last stage answered",
            gap(first_commit, last_stage)
        ),
    )?;
    ensure(
        agent_calls(&metrics, "stage", "ok") == 3
            && agent_calls(&metrics, "commit", "ok") == 3
            && agent_calls(&metrics, "apply", "ok") == 0,
        format!("metrics:\n{}", metrics.render()),
    )?;

    // ---- 2. an agent that predates staged applies (404) gets a PUT
    agents[2].set_legacy(true);
    set_variant(&api, 1).await?;
    wait_phase(&api, TollPolicyPhase::Applied, 2, 60).await?;
    let l2 = revision_label(&rev(2, 1));
    ensure(
        holds(&agents) == vec![Some(l2.clone()); 3],
        format!("agents hold {:?}", holds(&agents)),
    )?;
    for (i, want) in [(0, Via::Commit), (1, Via::Commit), (2, Via::Put)] {
        let got = vias(&agents[i], &l2);
        ensure(
            got == [(want, 200)],
            format!("agent {i}: applies of revision 2 {got:?}, want {want:?}"),
        )?;
    }
    ensure(
        stage_statuses(&agents[2], &l2).is_empty(),
        "the legacy agent recorded a stage",
    )?;
    ensure(
        agent_calls(&metrics, "stage", "unsupported") == 1
            && agent_calls(&metrics, "apply", "ok") == 1,
        format!("metrics:\n{}", metrics.render()),
    )?;
    agents[2].set_legacy(false);

    // ---- 3. an agent that lost its stage (409 on commit) gets a PUT
    agents[1].set_forget_stages(true);
    set_variant(&api, 2).await?;
    wait_phase(&api, TollPolicyPhase::Applied, 3, 60).await?;
    let l3 = revision_label(&rev(3, 2));
    ensure(
        holds(&agents) == vec![Some(l3.clone()); 3],
        format!("agents hold {:?}", holds(&agents)),
    )?;
    let got = vias(&agents[1], &l3);
    ensure(
        got == [(Via::Commit, 409), (Via::Put, 200)],
        format!("agent 1: applies of revision 3 {got:?}"),
    )?;
    for i in [0, 2] {
        let got = vias(&agents[i], &l3);
        ensure(
            got == [(Via::Commit, 200)],
            format!("agent {i}: applies of revision 3 {got:?}"),
        )?;
    }
    ensure(
        agent_calls(&metrics, "commit", "not_staged") == 1,
        format!("metrics:\n{}", metrics.render()),
    )?;
    agents[1].set_forget_stages(false);

    // ---- 4. a target refusing at stage stays on its revision; the others
    // of the batch commit and the rollout halts (Degraded), as with PUTs
    agents[0].set_reject_matching("4@", "probe failed: mtree.match d:acme gave no chain");
    set_variant(&api, 3).await?;
    let p = wait_phase(&api, TollPolicyPhase::Degraded, 4, 60).await?;
    let l4 = revision_label(&rev(4, 3));
    let f = p
        .status
        .as_ref()
        .and_then(|s| s.failures.first().cloned())
        .ok_or("no failure in status")?;
    ensure(
        f.target == format!("127.0.0.1:{}", agents[0].addr().port())
            && f.reason == "Rejected"
            && f.revision == 4
            && f.message.contains("probe failed"),
        format!("failure {f:?}"),
    )?;
    wait_for("agents 1 and 2 on revision 4", 30, POLL, || async {
        Ok((holds(&agents)[1..] == [Some(l4.clone()), Some(l4.clone())]).then_some(()))
    })
    .await?;
    ensure(
        holds(&agents)[0].as_deref() == Some(l3.as_str()),
        format!("the refusing agent holds {:?}", holds(&agents)[0]),
    )?;
    ensure(
        applies_of(&agents[0], &l4).is_empty()
            && stage_statuses(&agents[0], &l4).first() == Some(&422),
        format!(
            "refusing agent: stages {:?}, applies {:?}",
            stage_statuses(&agents[0], &l4),
            vias(&agents[0], &l4)
        ),
    )?;
    ctl.stop().await;
    Ok(())
}

fn ensure(cond: bool, msg: impl Into<String>) -> R {
    if cond { Ok(()) } else { Err(msg.into().into()) }
}

// ---------------------------------------------------------------- the binary

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `GET http://127.0.0.1:<port><path>` → (status, body), or None when
/// nothing answers.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// A `tollgate-operator` process, killed when dropped.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_operator(ns: &str, identity: &str, port: u16) -> Proc {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate-operator"))
        .args([
            "--namespace",
            ns,
            "--lease-namespace",
            ns,
            "--identity",
            identity,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tollgate-operator starts");
    Proc(child)
}

async fn leader_gauge(port: u16) -> Option<u8> {
    let (code, body) = http_get(port, "/metrics").await?;
    if code != 200 {
        return None;
    }
    body.lines()
        .find_map(|l| l.strip_prefix("tollgate_operator_leader "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_elects_one_leader_and_hands_over_on_sigterm() {
    testkit::in_testbed_namespace("controller_apiserver", "t-lease", MANAGER, async |c, ns| {
        leader_scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn leader_scenario(client: &Client, ns: &str) -> R {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let (pa, pb) = (free_port(), free_port());
    let a = spawn_operator(ns, "op-a", pa);
    wait_for("op-a leads", 30, POLL, || async {
        Ok((leader_gauge(pa).await == Some(1)).then_some(()))
    })
    .await?;
    let b = spawn_operator(ns, "op-b", pb);
    wait_for("op-b up", 30, POLL, || async {
        Ok(http_get(pb, "/healthz")
            .await
            .map(|(c, _)| c == 200)
            .filter(|x| *x))
    })
    .await?;
    let ready = http_get(pb, "/readyz").await.map(|x| x.0);
    ensure(ready == Some(200), format!("op-b /readyz {ready:?}"))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure(
        leader_gauge(pb).await == Some(0),
        "op-b must not lead while op-a holds the lease",
    )?;
    let lease = leases.get("tollgate-operator").await?;
    let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
    ensure(
        holder.as_deref() == Some("op-a"),
        format!("holder {holder:?}"),
    )?;

    // SIGTERM: op-a stops its controller and releases the lease; op-b takes over
    let pid = a.0.id().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    ensure(st.success(), "kill -TERM")?;
    let t0 = Instant::now();
    let mut a = a;
    let exited = wait_for("op-a exits", 30, POLL, || {
        let r = a.0.try_wait().map(|s| s.map(|s| s.success()));
        async move { Ok(r?) }
    })
    .await?;
    ensure(exited, "op-a exit status 0")?;
    wait_for("op-b leads", 40, POLL, || async {
        Ok((leader_gauge(pb).await == Some(1)).then_some(()))
    })
    .await?;
    eprintln!(
        "handover after SIGTERM: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let lease = leases.get("tollgate-operator").await?;
    let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
    ensure(
        holder.as_deref() == Some("op-b"),
        format!("holder {holder:?}"),
    )?;
    let metrics = http_get(pb, "/metrics")
        .await
        .map(|x| x.1)
        .unwrap_or_default();
    ensure(
        metrics.contains("tollgate_operator_reconciles_total{result=\"ok\"}"),
        "metrics text",
    )?;
    drop(b);
    Ok(())
}

// ---------------------------------------------------------------- a pod fleet

fn sbc_pod(name: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "sbc", "tier": "edge"}},
        "spec": {"containers": [{"name": "sbc", "image": "example.invalid/sbc:1"}]}
    }))
    .expect("pod")
}

/// What a kubelet would report: the pod runs at `ip` and is Ready.
async fn pod_running(pods: &Api<k8s_openapi::api::core::v1::Pod>, name: &str, ip: &str) -> R {
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_fleet_follows_its_pods() {
    testkit::in_testbed_namespace("controller_apiserver", "t-pods", MANAGER, async |c, ns| {
        pods_scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn pods_scenario(client: &Client, ns: &str) -> R {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    // two "pods" on 127.0.0.2 and 127.0.0.3, the same agent port
    let probe = std::net::TcpListener::bind("127.0.0.2:0")?;
    let port = probe.local_addr()?.port();
    drop(probe);
    let a = FakeAgent::start_on(format!("127.0.0.2:{port}").parse()?, TOKEN).await?;
    let b = FakeAgent::start_on(format!("127.0.0.3:{port}").parse()?, TOKEN).await?;
    let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), ns);
    let selector: LabelSelector = serde_json::from_value(json!({
        "matchLabels": {"app": "sbc"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge", "core"]}]
    }))?;
    fleets
        .create(
            &PostParams::default(),
            &SbcFleet::new(
                "pods",
                SbcFleetSpec {
                    selector: Some(selector),
                    endpoints: None,
                    backend: SbcBackend::Kamailio,
                    agent_port: port,
                    agent_token_secret: None,
                },
            ),
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &sbc_pod("sbc-a"))
        .await?;
    pod_running(&pods, "sbc-a", "127.0.0.2").await?;

    // the token from --agent-token-file (Config::agent_token): no Secret here
    let (tx, rx) = oneshot::channel::<()>();
    let config = Config {
        namespace: Some(ns.to_owned()),
        agent_token: Some(TOKEN.into()),
        ..Config::default()
    };
    let agents = Arc::new(HttpAgents::new(
        Duration::from_secs(3),
        Duration::from_secs(30),
    ));
    let op = Operator::new(client.clone(), config, agents, Arc::new(Metrics::default()));
    let ctx = op.context();
    let ctl = Running {
        stop: Some(tx),
        task: tokio::spawn(op.run(async move {
            let _ = rx.await;
        })),
    };
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &toll_policy("acme", sample_policy("acme", 0), "pods", no_bake()),
    )
    .await?;
    let p = wait_phase(&api, TollPolicyPhase::Applied, 1, 30).await?;
    let applied = p.status.and_then(|s| s.applied);
    ensure(
        applied.as_deref() == Some("1/1"),
        format!("applied {applied:?}"),
    )?;
    let l1 = revision_label(&rev(1, 0));
    ensure(
        a.tenants().get("acme") == Some(&l1),
        "pod a holds revision 1",
    )?;

    // a new pod becomes Ready: the pod watch reconciles the policy, which
    // hands it the revision at once (long before the 60 s idle requeue)
    let t0 = Instant::now();
    pods.create(&PostParams::default(), &sbc_pod("sbc-b"))
        .await?;
    pod_running(&pods, "sbc-b", "127.0.0.3").await?;
    wait_for("pod b on revision 1 and 2/2", 20, POLL, || async {
        let s = api.get("acme").await?.status.unwrap_or_default();
        Ok(
            (b.tenants().get("acme") == Some(&l1) && s.applied.as_deref() == Some("2/2"))
                .then_some(()),
        )
    })
    .await?;
    eprintln!(
        "new pod got the revision {:.2} s after it became Ready",
        t0.elapsed().as_secs_f64()
    );

    // a pod the selector no longer matches leaves the fleet
    let relabel = json!({"metadata": {"labels": {"tier": "test"}}});
    pods.patch("sbc-b", &PatchParams::default(), &Patch::Merge(&relabel))
        .await?;
    wait_for("1/1 again", 20, POLL, || async {
        let s = api.get("acme").await?.status.unwrap_or_default();
        Ok((s.applied.as_deref() == Some("1/1")).then_some(()))
    })
    .await?;

    // an anomaly alert for revision 2 during its bake rolls it back at once
    // (report_anomaly triggers the reconcile; the bake would requeue in 60 s)
    let p = json!({"spec": {"policy": sample_policy("acme", 1),
        "rollout": {"bakeSeconds": 60, "canary": {"count": 1}}}});
    api.patch("acme", &PatchParams::default(), &Patch::Merge(&p))
        .await?;
    let l2 = revision_label(&rev(2, 1));
    wait_for("the canary on revision 2", 20, POLL, || async {
        Ok((a.tenants().get("acme") == Some(&l2)).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    ctx.report_anomaly(ns, "acme", 2, "TollgateCallRateAnomaly");
    let p = wait_phase(&api, TollPolicyPhase::RolledBack, 2, 20).await?;
    eprintln!(
        "anomaly -> RolledBack in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let why = p
        .status
        .and_then(|s| s.last_rollback_reason)
        .unwrap_or_default();
    ensure(
        why.contains("TollgateCallRateAnomaly"),
        format!("lastRollbackReason {why:?}"),
    )?;
    wait_for("pod a back on revision 1", 20, POLL, || async {
        Ok((a.tenants().get("acme") == Some(&l1)).then_some(()))
    })
    .await?;
    ctl.stop().await;
    Ok(())
}

// ------------------------------------- two policies rolling out at once

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_policies_on_one_fleet_commit_what_they_staged() {
    testkit::in_testbed_namespace("controller_apiserver", "t-two", MANAGER, async |c, ns| {
        two_policies_scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// acme and globex roll out over the same three agents at the same time.
/// Each agent keeps the checks of its newest stage only, so two policies'
/// stages interleaving on one agent would make every such commit check
/// again; the operator holds each agent for one batch, stage to commit (or
/// sends both in one `POST /v1/batch` when they queued together).
async fn two_policies_scenario(client: &Client, ns: &str) -> R {
    let agents = testkit::start_agents(3, TOKEN).await?;
    for a in &agents {
        // stages take a while, as the agent's checks of a large policy do:
        // long enough for both policies' batches to be under way at once
        a.set_delay(Duration::from_millis(1000));
    }
    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;
    let ctl = start_controller_with(client, ns, Arc::new(Metrics::default()));
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    let policy = |tenant: &str| toll_policy(tenant, sample_policy(tenant, 0), "edge", no_bake());
    let pp = PostParams::default();
    let (acme, globex) = (policy("acme"), policy("globex"));
    let (a, g) = tokio::join!(api.create(&pp, &acme), api.create(&pp, &globex));
    a?;
    g?;
    wait_for("acme and globex Applied", 60, POLL, || async {
        let mut done = true;
        for name in ["acme", "globex"] {
            let s = api.get(name).await?.status.unwrap_or_default();
            done &= s.phase == Some(TollPolicyPhase::Applied) && s.current_revision == Some(1);
        }
        Ok(done.then_some(()))
    })
    .await?;
    for (i, a) in agents.iter().enumerate() {
        let tenants = a.tenants();
        ensure(
            tenants.contains_key("acme") && tenants.contains_key("globex"),
            format!("agent {i} holds {tenants:?}"),
        )?;
        let applies: Vec<(String, Via, u16, bool)> = a
            .applies()
            .into_iter()
            .map(|r| (r.tenant, r.via, r.status, r.revalidated))
            .collect();
        // each policy alone (a commit of what it staged), or both in one
        // batch when the second queued while the first held the agents
        ensure(
            applies.len() == 2
                && applies.iter().all(|(_, via, status, again)| {
                    matches!(via, Via::Commit | Via::Batch) && *status == 200 && !again
                }),
            format!(
                "agent {i}: every apply a commit of what was staged or a batch, none checked again: {applies:?}"
            ),
        )?;
    }
    ctl.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_changed_together_reach_each_agent_in_batches() {
    testkit::in_testbed_namespace("controller_apiserver", "t-batch", MANAGER, async |c, ns| {
        batches_scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until each of `names` is Applied at `revision`.
async fn wait_applied(api: &Api<TollPolicy>, names: &[String], revision: i64) -> R {
    wait_for(
        &format!("{} policies Applied at revision {revision}", names.len()),
        90,
        POLL,
        || async {
            for n in names {
                let p = api.get(n).await?;
                let s = p.status.unwrap_or_default();
                if s.phase != Some(TollPolicyPhase::Applied)
                    || s.current_revision != Some(revision)
                    || s.observed_generation != p.metadata.generation
                {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await
}

fn label_of(tenant: &str, number: i64, variant: u32) -> String {
    revision_label(&RevisionRef {
        number,
        hash: policy_hash(&sample_policy(tenant, variant)),
    })
}

/// Eight tenants on three agents whose checks take 0.8 s (as a large
/// policy's do). (1) Created together: the first reconcile to reach the
/// agents goes alone, in two phases; the others queue behind it and reach
/// each agent in `POST /v1/batch`es, so each agent answers fewer calls than
/// the 16 a stage and a commit per policy would take. (2) One policy
/// changed first, then the seven others together, one of which (t3) every
/// agent refuses: the batch carrying it is refused whole (422), its
/// changes go again one by one, so the six others are Applied and t3 alone
/// fails with the agents' reason and keeps its revision.
async fn batches_scenario(client: &Client, ns: &str) -> R {
    let agents = testkit::start_agents(3, TOKEN).await?;
    for a in &agents {
        a.set_delay(Duration::from_millis(800));
    }
    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;
    let metrics = Arc::new(Metrics::default());
    let ctl = start_controller_with(client, ns, Arc::clone(&metrics));
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    let names: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();

    // ---- 1. created together
    let pp = PostParams::default();
    let creates = names.iter().map(|t| {
        let api = api.clone();
        let pp = pp.clone();
        async move {
            api.create(&pp, &toll_policy(t, sample_policy(t, 0), "edge", no_bake()))
                .await
        }
    });
    for r in futures::future::join_all(creates).await {
        r?;
    }
    wait_applied(&api, &names, 1).await?;
    for (i, a) in agents.iter().enumerate() {
        let held = a.tenants();
        for t in &names {
            ensure(
                held.get(t) == Some(&label_of(t, 1, 0)),
                format!("agent {i} holds {held:?}"),
            )?;
        }
        let batches = a.batches();
        let calls = a.stages().len() + batches.len();
        eprintln!("agent {i}: batches (tenants, status) {batches:?}, {calls} stages and batches");
        ensure(
            batches.iter().any(|&(n, s)| n >= 2 && s == 200) && calls < names.len(),
            format!("agent {i}: batches {batches:?}, {calls} stages and batches for 8 policies"),
        )?;
    }

    // ---- 2. a refused tenant in a batch
    let bad = label_of("t3", 2, 1);
    for a in &agents {
        a.set_reject_matching(&bad, "probe failed: t3 refused");
    }
    let patch = |t: String| {
        let api = api.clone();
        async move {
            let p = json!({"spec": {"policy": sample_policy(&t, 1)}});
            api.patch(&t, &PatchParams::default(), &Patch::Merge(&p))
                .await
        }
    };
    patch("t0".into()).await?;
    // t0's stage holds the agents (0.8 s) while the others queue
    tokio::time::sleep(Duration::from_millis(300)).await;
    for r in futures::future::join_all(names[1..].iter().cloned().map(patch)).await {
        r?;
    }
    let good: Vec<String> = names.iter().filter(|t| *t != "t3").cloned().collect();
    wait_applied(&api, &good, 2).await?;
    let p = wait_for("t3's refusal in its status", 60, POLL, || async {
        let p = api.get("t3").await?;
        let s = p.status.clone().unwrap_or_default();
        Ok(s.failures
            .iter()
            .any(|f| f.revision == 2 && f.reason == "Rejected")
            .then_some(p))
    })
    .await?;
    let s = p.status.unwrap_or_default();
    ensure(
        s.phase != Some(TollPolicyPhase::Applied)
            && s.failures
                .iter()
                .all(|f| f.message.contains("t3 refused") && f.revision == 2),
        format!("t3: phase {:?}, failures {:?}", s.phase, s.failures),
    )?;
    for (i, a) in agents.iter().enumerate() {
        let held = a.tenants();
        ensure(
            held.get("t3") == Some(&label_of("t3", 1, 0))
                && good.iter().all(|t| held.get(t) == Some(&label_of(t, 2, 1))),
            format!("agent {i} holds {held:?}"),
        )?;
        let batches = a.batches();
        ensure(
            batches.iter().any(|&(n, s)| n >= 2 && s == 422),
            format!("agent {i}: no batch holding t3 was refused: {batches:?}"),
        )?;
        // after the refused batch, each of its changes alone: a PUT
        let puts: Vec<(String, u16)> = a
            .applies()
            .into_iter()
            .filter(|r| r.via == Via::Put)
            .map(|r| (r.tenant, r.status))
            .collect();
        ensure(
            puts.contains(&("t3".to_owned(), 422))
                && puts.iter().filter(|(_, s)| *s == 200).count() >= 1,
            format!("agent {i}: PUTs after the refused batch {puts:?}"),
        )?;
    }
    ensure(
        agent_calls(&metrics, "batch", "split") >= 3,
        format!("metrics:\n{}", metrics.render()),
    )?;
    ctl.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_policy_is_assembled_checked_and_refused_when_wrong() {
    testkit::in_testbed_namespace(
        "controller_apiserver",
        "t-chunks",
        MANAGER,
        async |c, ns| chunks_scenario(c, ns).await,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A policy past the inline limits (30,000 destination entries and their
/// source map) travels as a head and PolicyChunks, as `tollgate compile`
/// writes it: refused while a chunk is missing (nothing reaches an agent),
/// rolled out whole once they are there (every agent rendered the whole
/// policy), and refused again, keeping what the agents hold, when a chunk
/// is edited in place.
async fn chunks_scenario(client: &Client, ns: &str) -> R {
    use tollgate_crds::PolicyChunk;
    use tollgate_ir::chunks;
    use tollgate_kamailio::Backend;
    use tollgate_kamailio::kamailio::Kamailio;

    let agents = testkit::start_agents(3, TOKEN).await?;
    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;
    let mut full = sample_policy("big", 0);
    for i in 0..30_000u32 {
        let prefix = format!("1212{}", 200_000 + i);
        let rule = format!("dst:prefix:{prefix}");
        full.destinations.push(tollgate_ir::DestinationRule {
            prefix: prefix.clone(),
            action: tollgate_ir::Verdict::Deny,
            rule: rule.clone(),
            window: None,
        });
        full.rules.push(tollgate_ir::RuleSource {
            id: rule,
            file: "big.tgp".into(),
            line: i + 2,
            column: 3,
            text: format!("deny prefix +{prefix}"),
        });
    }
    full.destinations.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    ensure(
        chunks::needs_chunks(&full),
        "the policy is past the inline limits",
    )?;
    let (head, parts, pieces) = chunks::split(full.clone());
    ensure(pieces.len() > 2, format!("{} chunks", pieces.len()))?;
    let label = format!("1@{}", parts.hash);
    let want_rows = Kamailio
        .render_tenant(&full, &label, jiff::Timestamp::now())
        .map_err(|e| e.to_string())?
        .hash();

    let ctl = start_controller(client, ns);
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    let chunk_api: Api<PolicyChunk> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    let mut tp = toll_policy("big", head, "edge", no_bake());
    tp.spec.parts = Some(parts.clone());
    api.create(&pp, &tp).await?;
    // every chunk but the last
    for c in pieces.iter().take(pieces.len() - 1) {
        chunk_api
            .create(&pp, &PolicyChunk::from_chunk(c.clone(), ns))
            .await?;
    }
    // (the first look may have come before any chunk; it retries)
    let last = &pieces[pieces.len() - 1].name;
    let missing = wait_for(
        "Compiled False: the last chunk is missing",
        40,
        POLL,
        || async {
            let p = api.get("big").await?;
            Ok(condition_message(&p, "Compiled")
                .filter(|(s, _, m)| s == "False" && m.contains(last.as_str()))
                .map(|c| (p, c)))
        },
    )
    .await?;
    ensure(
        missing.1.1 == "ChunksInvalid"
            && missing.1.2.contains(last.as_str())
            && missing.1.2.contains("is missing"),
        format!("the message names the missing chunk: {:?}", missing.1),
    )?;
    ensure(
        missing.0.status.as_ref().and_then(|s| s.phase) == Some(TollPolicyPhase::Failed),
        "phase Failed",
    )?;
    ensure(
        agents
            .iter()
            .all(|a| a.applies().is_empty() && a.stages().is_empty()),
        "nothing reached an agent",
    )?;

    // the last chunk arrives: the whole policy rolls out
    let t0 = Instant::now();
    chunk_api
        .create(
            &pp,
            &PolicyChunk::from_chunk(pieces[pieces.len() - 1].clone(), ns),
        )
        .await?;
    let p = wait_for("big Applied at revision 1", 60, POLL, || async {
        let p = api.get("big").await?;
        let s = p.status.clone().unwrap_or_default();
        Ok(
            (s.phase == Some(TollPolicyPhase::Applied) && s.current_revision == Some(1))
                .then_some(p),
        )
    })
    .await?;
    println!(
        "chunks: Applied {:.1} s after the last chunk",
        t0.elapsed().as_secs_f64()
    );
    ensure(
        condition(&p, "Compiled").is_some_and(|(s, _)| s == "True"),
        "Compiled True",
    )?;
    for (i, a) in agents.iter().enumerate() {
        ensure(
            a.tenants().get("big") == Some(&label),
            format!("agent {i} holds {label}: {:?}", a.tenants()),
        )?;
        ensure(
            a.rendered().get("big") == Some(&want_rows),
            format!("agent {i} rendered the whole policy"),
        )?;
    }
    let revs: Api<PolicyRevision> = Api::namespaced(client.clone(), ns);
    let r1 = revs.get(&revision_name("big", &parts.hash)).await?;
    ensure(
        r1.spec.parts.as_ref() == Some(&parts) && r1.spec.policy.destinations.is_empty(),
        "the PolicyRevision names the same chunks, and holds only the head",
    )?;

    // a chunk edited in place: refused, the agents keep revision 1
    let victim = &pieces[1].name;
    let mut c = chunk_api.get(victim).await?;
    c.spec.part.destinations[0].action = tollgate_ir::Verdict::Allow;
    c.spec.hash = chunks::content_hash(&c.spec.part);
    chunk_api.replace(victim, &pp, &c).await?;
    let before: Vec<usize> = agents.iter().map(|a| a.applies().len()).collect();
    api.patch(
        "big",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"poke": "1"}}})),
    )
    .await?;
    let edited = wait_for("Compiled False: a chunk was edited", 30, POLL, || async {
        let p = api.get("big").await?;
        Ok(condition_message(&p, "Compiled").filter(|(s, _, _)| s == "False"))
    })
    .await?;
    ensure(
        edited.2.contains(victim.as_str()) && edited.2.contains("hashes to"),
        format!("the message names the edited chunk: {edited:?}"),
    )?;
    let after: Vec<usize> = agents.iter().map(|a| a.applies().len()).collect();
    ensure(before == after, "nothing was applied")?;
    for a in &agents {
        ensure(a.tenants().get("big") == Some(&label), "revision 1 stays")?;
    }
    ctl.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_share_each_agents_summary() {
    testkit::in_testbed_namespace(
        "controller_apiserver",
        "t-summary",
        MANAGER,
        async |c, ns| summary_scenario(c, ns).await,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

fn reconciles_ok(metrics: &Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_operator_reconciles_total{result=\"ok\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Eight policies on three agents: once they are applied, reconciling all
/// of them again asks each agent for its summary at most once (kept 30 s
/// here, and kept up to date with the operator's own applies) and never
/// for a tenant.
async fn summary_scenario(client: &Client, ns: &str) -> R {
    let agents = testkit::start_agents(3, TOKEN).await?;
    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;
    let metrics = Arc::new(Metrics::default());
    let ctl = start_controller_summaries(client, ns, Arc::clone(&metrics), Duration::from_secs(30));
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    let names: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    for n in &names {
        api.create(
            &PostParams::default(),
            &toll_policy(n, sample_policy(n, 0), "edge", no_bake()),
        )
        .await?;
    }
    wait_for("8 policies Applied 3/3", 60, POLL, || async {
        let mut done = 0;
        for n in &names {
            let s = api.get(n).await?.status.unwrap_or_default();
            if s.phase == Some(TollPolicyPhase::Applied) && s.applied.as_deref() == Some("3/3") {
                done += 1;
            }
        }
        Ok((done == names.len()).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<(u64, u64)> = agents.iter().map(FakeAgent::state_reads).collect();
    let r0 = reconciles_ok(&metrics);
    for n in &names {
        api.patch(
            n,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"poke": "1"}}})),
        )
        .await?;
    }
    wait_for("8 more reconciles", 30, POLL, || async {
        Ok((reconciles_ok(&metrics) >= r0 + 8).then_some(()))
    })
    .await?;
    let after: Vec<(u64, u64)> = agents.iter().map(FakeAgent::state_reads).collect();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        ensure(
            a.0 == b.0 && a.1 <= b.1 + 1,
            format!("agent {i}: 8 reconciles asked (tenant, summary) {b:?} -> {a:?}"),
        )?;
    }
    ctl.stop().await;
    Ok(())
}
