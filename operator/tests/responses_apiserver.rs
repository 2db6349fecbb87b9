//! Declared responses against the real testbed API server, with fake
//! agents behind real HTTP (`FakeAgent`): the operator's alert sink and
//! reconciler keep `status.activeResponses` and the agents' blocks in step.
//!
//! Needs `KUBECONFIG` of the testbed API server (`scripts/apiserver.sh
//! start`); skips with a message otherwise (scripts/test.sh runs it with
//! the API server up).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions::is_crd_established};
use kube::{Client, Config as KubeConfig, ResourceExt};
use serde_json::json;
use tollgate_crds::policy::{
    AlertLevel, LimitMetric, Response as Declared, ResponseAction, ResponseTrigger,
};
use tollgate_crds::sbc_fleet::{SbcBackend, SecretKeyReference, StaticEndpoint};
use tollgate_crds::toll_policy::{FleetReference, RolloutStrategy, TollPolicyPhase};
use tollgate_crds::{SbcFleet, SbcFleetSpec, TollPolicy, TollPolicySpec};
use tollgate_operator::alerts::{AlertAction, AlertRef, AlertSink};
use tollgate_operator::controller::agents::HttpAgents;
use tollgate_operator::controller::fake_agent::{FakeAgent, sample_policy};
use tollgate_operator::controller::metrics::Metrics;
use tollgate_operator::controller::responses::{OperatorSink, RELEASE_ANNOTATION};
use tollgate_operator::controller::{Config, Operator};

type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const TOKEN: &str = "fake-agent-token-0123456789";
const MANAGER: &str = "tollgate-operator-tests";
const KEY: &str = "acme::premium-rate";

async fn testbed_client() -> Option<Client> {
    let Some(path) = std::env::var_os("KUBECONFIG") else {
        eprintln!(
            "SKIPPED controller_apiserver: KUBECONFIG is not set. Run `eval \"$(scripts/apiserver.sh start)\"` \
             first (scripts/test.sh does)."
        );
        return None;
    };
    let kubeconfig = Kubeconfig::read_from(&path).expect("readable KUBECONFIG");
    assert_eq!(
        kubeconfig.current_context.as_deref(),
        Some("testbed"),
        "KUBECONFIG's current context is not \"testbed\": refusing to run against what may be a real cluster"
    );
    let options = KubeConfigOptions {
        context: Some("testbed".into()),
        ..KubeConfigOptions::default()
    };
    let config = KubeConfig::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("testbed kubeconfig");
    Some(Client::try_from(config).expect("client"))
}

async fn install_crds(client: &Client) -> R {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(MANAGER).force();
    for (_, crd) in tollgate_crds::all_crds() {
        let name = crd.name_any();
        crds.patch(&name, &params, &Patch::Apply(&crd)).await?;
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, is_crd_established()),
        )
        .await
        .map_err(|_| format!("CRD {name} not Established"))??;
    }
    Ok(())
}

fn suffix() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", h.finish() as u32)
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `secs`.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> R<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = R<Option<T>>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {secs} s waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

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

fn endpoints(agents: &[FakeAgent]) -> Vec<StaticEndpoint> {
    agents
        .iter()
        .map(|a| StaticEndpoint {
            host: "127.0.0.1".into(),
            port: Some(a.addr().port()),
        })
        .collect()
}

#[tokio::test]
async fn responses_reach_every_agent_and_status() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(client) = testbed_client().await else {
        return;
    };
    install_crds(&client).await.expect("CRDs installed");
    let ns = format!("t-resp-{}", suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .expect("namespace");
    let result = scenario(&client, &ns).await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    if let Err(e) = result {
        panic!("responses_apiserver (namespace {ns}): {e}");
    }
}

async fn scenario(client: &Client, ns: &str) -> R {
    let mut agents = vec![
        FakeAgent::start(TOKEN).await?,
        FakeAgent::start(TOKEN).await?,
    ];
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut data = BTreeMap::new();
    data.insert("token".to_owned(), ByteString(TOKEN.as_bytes().to_vec()));
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("agent-token".into()),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..Secret::default()
            },
        )
        .await?;
    let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), ns);
    let fleet = SbcFleet::new(
        "edge",
        SbcFleetSpec {
            selector: None,
            endpoints: Some(endpoints(&agents)),
            backend: SbcBackend::Kamailio,
            agent_port: 9443,
            agent_token_secret: Some(SecretKeyReference {
                name: "agent-token".into(),
                key: "token".into(),
            }),
        },
    );
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
        wait_for("phase Applied", 60, || async {
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
        let patch = json!({"spec": {"endpoints": endpoints(&agents)}});
        fleets
            .patch("edge", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let newest = agents.last().unwrap();
        wait_for("the new target holds the block", 30, || async {
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
        wait_for("released", 30, || async {
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
        wait_for("a ResponseReleased event", 10, || async {
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
