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

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::oneshot;

use tollgate_crds::SbcFleet;
use tollgate_crds::conditions::{find_condition, sbc_fleet as cond};
use tollgate_operator::controller::agents::HttpAgents;
use tollgate_operator::controller::metrics::Metrics;
use tollgate_operator::controller::{Config, MANAGER, Operator};

use tollgate_testkit::{self as testkit, R};

const TOKEN: &str = "fake-agent-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_status_counts_answering_agents() {
    testkit::in_testbed_namespace(
        "fleet_status_apiserver",
        "t-fst",
        "tollgate-operator-tests",
        async |c, ns| scenario(c, ns).await,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
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
    let agents = testkit::start_agents(3, TOKEN).await?;
    let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), ns);
    let fleet = testkit::static_fleet("edge", &agents, 9443, false);
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
