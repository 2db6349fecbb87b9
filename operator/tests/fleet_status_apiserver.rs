//! The SbcFleet status controller against the real testbed API server
//! (`scripts/apiserver.sh start`, then `export KUBECONFIG=...`;
//! `scripts/test.sh` does both) with three fake agents served over real
//! HTTP on loopback ports: a static fleet of three → `targets` 3, `ready`
//! 3, `Ready=True`; one agent made unreachable → `ready` 2, `Ready=False`
//! naming it; back → 3 again.
//!
//! Skipped, saying so, when KUBECONFIG is unset; refuses to run unless its
//! current context is `testbed`. Works in its own namespace, which it
//! deletes at the end.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions::is_crd_established};
use kube::{Client, Config as KubeConfig, ResourceExt};
use tokio::sync::oneshot;

use tollgate_crds::conditions::{find_condition, sbc_fleet as cond};
use tollgate_crds::sbc_fleet::{SbcBackend, StaticEndpoint};
use tollgate_crds::{SbcFleet, SbcFleetSpec};
use tollgate_operator::controller::agents::HttpAgents;
use tollgate_operator::controller::fake_agent::FakeAgent;
use tollgate_operator::controller::metrics::Metrics;
use tollgate_operator::controller::{Config, MANAGER, Operator};

type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const TOKEN: &str = "fake-agent-token-0123456789";

async fn testbed_client() -> Option<Client> {
    let Some(path) = std::env::var_os("KUBECONFIG") else {
        eprintln!(
            "SKIPPED fleet_status_apiserver: KUBECONFIG is not set. Run `eval \"$(scripts/apiserver.sh start)\"` \
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
    let params = PatchParams::apply("tollgate-operator-tests").force();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_status_counts_answering_agents() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(client) = testbed_client().await else {
        return;
    };
    install_crds(&client).await.expect("CRDs installed");
    let ns = format!("t-fst-{}", suffix());
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
        panic!("fleet_status_apiserver (namespace {ns}): {e}");
    }
}

/// (targets, ready, Ready status, Ready message, observedGeneration ==
/// generation) of the fleet on the server.
async fn seen(fleets: &Api<SbcFleet>) -> R<Option<(i32, i32, String, String, bool)>> {
    let f = fleets.get("edge").await?;
    let Some(s) = &f.status else {
        return Ok(None);
    };
    let Some(ready) = find_condition(&s.conditions, cond::READY) else {
        return Ok(None);
    };
    Ok(Some((
        s.targets,
        s.ready,
        ready.status.clone(),
        ready.message.clone(),
        s.observed_generation == f.metadata.generation,
    )))
}

/// Polls until the fleet shows `targets`/`ready`/`status`, for at most 30 s.
async fn wait_status(
    fleets: &Api<SbcFleet>,
    targets: i32,
    ready: i32,
    status: &str,
) -> R<(i32, i32, String, String, bool)> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(30) {
        last = seen(fleets).await?;
        if let Some(s) = &last
            && s.0 == targets
            && s.1 == ready
            && s.2 == status
        {
            return Ok(s.clone());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("fleet status not {targets}/{ready}/{status} within 30 s; last: {last:?}").into())
}

async fn scenario(client: &Client, ns: &str) -> R {
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(FakeAgent::start(TOKEN).await?);
    }
    let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), ns);
    let fleet = SbcFleet::new(
        "edge",
        SbcFleetSpec {
            selector: None,
            endpoints: Some(
                agents
                    .iter()
                    .map(|a| StaticEndpoint {
                        host: "127.0.0.1".into(),
                        port: Some(a.addr().port()),
                    })
                    .collect(),
            ),
            backend: SbcBackend::Kamailio,
            agent_port: 9443,
            agent_token_secret: None,
        },
    );
    fleets.create(&PostParams::default(), &fleet).await?;

    let (tx, rx) = oneshot::channel::<()>();
    let config = Config {
        namespace: Some(ns.to_owned()),
        agent_token: Some(TOKEN.into()),
        instance: Some("fleet-status-test".into()),
        fleet_status_interval: Duration::from_secs(1),
        ..Config::default()
    };
    let op = Operator::new(
        client.clone(),
        config,
        Arc::new(HttpAgents::new(
            Duration::from_secs(2),
            Duration::from_secs(10),
        )),
        Arc::new(Metrics::default()),
    );
    let task = tokio::spawn(op.run(async move {
        let _ = rx.await;
    }));
    let result = async {
        let s = wait_status(&fleets, 3, 3, "True").await?;
        eprintln!("all up: {s:?}");
        if !s.4 {
            return Err("observedGeneration is not metadata.generation".into());
        }
        let f = fleets.get("edge").await?;
        let st = f.status.clone().unwrap_or_default();
        let resolved =
            find_condition(&st.conditions, cond::RESOLVED).ok_or("no Resolved condition")?;
        if resolved.status != "True" || resolved.reason != "TargetsFound" {
            return Err(format!("Resolved: {resolved:?}").into());
        }
        // the status is written by the operator's field manager, with SSA
        let managers: Vec<(String, Option<String>, Option<String>)> = f
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|m| {
                (
                    m.manager.clone().unwrap_or_default(),
                    m.operation.clone(),
                    m.subresource.clone(),
                )
            })
            .collect();
        if !managers.iter().any(|(m, op, sub)| {
            m == MANAGER && op.as_deref() == Some("Apply") && sub.as_deref() == Some("status")
        }) {
            return Err(format!("no status Apply by {MANAGER}: {managers:?}").into());
        }
        if serde_json::to_string(&st)?.contains(TOKEN) {
            return Err("the agent token is in the status".into());
        }

        // one agent down
        let down = &agents[1];
        down.set_unreachable(true);
        let s = wait_status(&fleets, 3, 2, "False").await?;
        eprintln!("one down: {s:?}");
        let id = format!("127.0.0.1:{}", down.addr().port());
        if !s.3.ends_with(&format!("not answering: {id}")) {
            return Err(format!("Ready message does not name {id}: {}", s.3).into());
        }
        let f = fleets.get("edge").await?;
        let r = find_condition(&f.status.as_ref().unwrap().conditions, cond::READY).unwrap();
        if r.reason != "AgentsNotReady" {
            return Err(format!("Ready reason: {}", r.reason).into());
        }

        // and back
        down.set_unreachable(false);
        let s = wait_status(&fleets, 3, 3, "True").await?;
        eprintln!("back: {s:?}");

        // a no-op look writes nothing: resourceVersion stays over several periods
        let rv = fleets.get("edge").await?.resource_version();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rv2 = fleets.get("edge").await?.resource_version();
        if rv != rv2 {
            return Err(format!("status rewritten without a change: {rv:?} → {rv2:?}").into());
        }
        Ok(())
    }
    .await;
    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
    result
}
