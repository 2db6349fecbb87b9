//! Declared responses against the real testbed API server, with fake
//! agents behind real HTTP (`FakeAgent`): the operator's alert sink and
//! reconciler keep `status.activeResponses` and the agents' blocks in step.
//!
//! Needs `KUBECONFIG` of the testbed API server (`scripts/apiserver.sh
//! start`); skips with a message otherwise (scripts/test.sh runs it with
//! the API server up).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tollgate_crds::policy::{
    AlertLevel, LimitMetric, Response as Declared, ResponseAction, ResponseTrigger,
};
use tollgate_crds::toll_policy::{FleetReference, RolloutStrategy, TollPolicyPhase};
use tollgate_crds::{SbcFleet, TollPolicy, TollPolicySpec};
use tollgate_operator::alerts::{AlertAction, AlertRef, AlertSink};
use tollgate_operator::controller::agents::HttpAgents;
use tollgate_operator::controller::fake_agent::{FakeAgent, sample_policy};
use tollgate_operator::controller::metrics::Metrics;
use tollgate_operator::controller::responses::{OperatorSink, RELEASE_ANNOTATION};
use tollgate_operator::controller::{Config, Operator};

use tollgate_operator::controller::testkit::{self, R, wait_for};

/// How often the waits poll.
const POLL: Duration = Duration::from_millis(200);

const TOKEN: &str = "fake-agent-token-0123456789";
const MANAGER: &str = "tollgate-operator-tests";
const KEY: &str = "acme::premium-rate";

fn ensure(cond: bool, msg: impl Into<String>) -> R {
    if cond { Ok(()) } else { Err(msg.into().into()) }
}

fn now() -> i64 {
    Timestamp::now().as_second()
}

fn trigger(level: AlertLevel) -> ResponseTrigger {
    ResponseTrigger::Breach {
        metric: LimitMetric::Concurrent,
        class: Some("premium-rate".into()),
        level,
    }
}

fn respond(ns: &str, level: AlertLevel, fp: &str) -> AlertAction {
    AlertAction::Respond {
        namespace: ns.into(),
        policy: "acme".into(),
        tenant: "acme".into(),
        trigger: trigger(level),
        alert: AlertRef {
            name: "TollgateConcurrentPremium".into(),
            fingerprint: fp.into(),
            starts_at: String::new(),
            summary: Some("premium-rate calls above the limit".into()),
        },
    }
}

#[tokio::test]
async fn responses_reach_every_agent_and_status() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some((client, ns)) = testkit::testbed_namespace("responses_apiserver", "t-resp", MANAGER)
        .await
        .expect("testbed namespace")
    else {
        return;
    };
    let result = scenario(&client, &ns).await;
    testkit::delete_namespace(&client, &ns).await;
    if let Err(e) = result {
        panic!("responses_apiserver (namespace {ns}): {e}");
    }
}

async fn scenario(client: &Client, ns: &str) -> R {
    let mut agents = testkit::start_agents(2, TOKEN).await?;
    testkit::create_token_secret(client, ns, TOKEN).await?;
    let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), ns);
    let fleet = testkit::static_fleet("edge", &agents, 9443, true);
    fleets.create(&PostParams::default(), &fleet).await?;

    let config = Config {
        namespace: Some(ns.to_owned()),
        instance: Some("responses-test".into()),
        ..Config::default()
    };
    let http = Arc::new(HttpAgents::new(
        Duration::from_secs(3),
        Duration::from_secs(30),
    ));
    let op = Operator::new(client.clone(), config, http, Arc::new(Metrics::default()));
    let sink = OperatorSink::new(op.context());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(op.run(async move {
        let _ = stop_rx.await;
    }));

    let mut policy = sample_policy("acme", 0);
    policy.responses = vec![
        Declared {
            trigger: trigger(AlertLevel::Critical),
            action: ResponseAction::BlockClasses {
                classes: vec!["premium-rate".into()],
            },
            hold_seconds: Some(3600),
            until_acknowledged: false,
            rule: "respond:critical".into(),
        },
        Declared {
            trigger: trigger(AlertLevel::Warning),
            action: ResponseAction::BlockClasses {
                classes: vec!["premium-rate".into()],
            },
            hold_seconds: Some(60),
            until_acknowledged: false,
            rule: "respond:warning".into(),
        },
    ];
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &TollPolicy::new(
            "acme",
            TollPolicySpec {
                tenant: "acme".into(),
                policy,
                fleet: FleetReference {
                    name: "edge".into(),
                },
                rollout: RolloutStrategy {
                    bake_seconds: 0,
                    ..RolloutStrategy::default()
                },
                source_hash: None,
            },
        ),
    )
    .await?;
    let r = async {
        wait_for("phase Applied", 60, POLL, || async {
            let p = api.get("acme").await?;
            Ok((p.status.and_then(|s| s.phase) == Some(TollPolicyPhase::Applied)).then_some(()))
        })
        .await?;

        // 1. the critical alert: the block on both agents, then in status
        let t0 = now();
        sink.act(respond(ns, AlertLevel::Critical, "fp-crit"))
            .await?;
        for a in &agents {
            let e = a.blocks().get(KEY).copied();
            ensure(
                e.is_some_and(|e| e >= t0 + 3600 && e <= now() + 3600),
                format!("agent {} block after the sink returned: {e:?}", a.url()),
            )?;
        }
        let p = api.get("acme").await?;
        let ar = p.status.clone().unwrap_or_default().active_responses;
        ensure(ar.len() == 1, format!("one active response: {ar:?}"))?;
        ensure(ar[0].rule == "respond:critical", "rule")?;
        ensure(
            ar[0].alert.fingerprint.as_deref() == Some("fp-crit"),
            "fingerprint",
        )?;
        ensure(
            !ar[0].until_acknowledged && ar[0].expires.is_some(),
            "expires",
        )?;
        let strong = agents[0].blocks()[KEY];

        // 2. the same alert again: nothing changes
        sink.act(respond(ns, AlertLevel::Critical, "fp-crit"))
            .await?;
        let p2 = api.get("acme").await?;
        ensure(
            p2.status.clone().unwrap_or_default().active_responses == ar,
            "a repeated alert changed activeResponses",
        )?;
        ensure(
            agents[0].blocks()[KEY] == strong,
            "a repeated alert changed the block",
        )?;

        // 3. a weaker response (60 s hold) does not shorten the stronger
        sink.act(respond(ns, AlertLevel::Warning, "fp-warn"))
            .await?;
        for a in &agents {
            ensure(
                a.blocks()[KEY] == strong,
                format!(
                    "the weaker response shortened the block on {}: {:?}",
                    a.url(),
                    a.blocks()
                ),
            )?;
        }
        let ar = api
            .get("acme")
            .await?
            .status
            .unwrap_or_default()
            .active_responses;
        ensure(
            ar.len() == 2,
            format!("the weaker one is recorded too: {ar:?}"),
        )?;

        // 4. a new target gets the active block from the reconciler
        agents.push(FakeAgent::start(TOKEN).await?);
        let patch = json!({"spec": {"endpoints": testkit::endpoints(&agents)}});
        fleets
            .patch("edge", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let newest = agents.last().unwrap();
        wait_for("the new target holds the block", 30, POLL, || async {
            Ok(newest
                .blocks()
                .get(KEY)
                .filter(|e| **e == strong)
                .map(|_| ()))
        })
        .await?;

        // 5. a person releases everything: blocks lifted, status empty,
        //    annotation removed, an Event
        let patch = json!({"metadata": {"annotations": {RELEASE_ANNOTATION: "all"}}});
        api.patch("acme", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        wait_for("released", 30, POLL, || async {
            let p = api.get("acme").await?;
            let gone = p
                .status
                .clone()
                .unwrap_or_default()
                .active_responses
                .is_empty()
                && !p.annotations().contains_key(RELEASE_ANNOTATION)
                && agents.iter().all(|a| !a.blocks().contains_key(KEY));
            Ok(gone.then_some(()))
        })
        .await?;
        let events: Api<CoreEvent> = Api::namespaced(client.clone(), ns);
        wait_for("a ResponseReleased event", 10, POLL, || async {
            let l = events.list(&ListParams::default()).await?;
            Ok(l.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("ResponseReleased"))
                .then_some(()))
        })
        .await?;
        let l = events.list(&ListParams::default()).await?;
        for reason in ["BlockApplied", "ResponseActive"] {
            ensure(
                l.items.iter().any(|e| e.reason.as_deref() == Some(reason)),
                format!("no {reason} event"),
            )?;
        }
        // nothing blocks again after the release (the reconciler does not
        // resurrect a released response)
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure(
            agents.iter().all(|a| !a.blocks().contains_key(KEY)),
            "a released block came back",
        )?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
    r
}
