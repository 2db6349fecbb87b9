//! Benchmark of the anomaly loop's fast path: the time from a webhook POST
//! (Alertmanager payload v4, bearer token, the operator's real receiver and
//! sink over HTTP) to the block enforced on every target, confirmed by
//! read-back (`GET /v1/state` of each agent lists the block). Targets are
//! fake agents (`FakeAgent`, real HTTP on loopback); the TollPolicy and
//! SbcFleet live on the real testbed API server (`KUBECONFIG`, context
//! `testbed`); the status write and Events are real API calls.
//!
//! Run by scripts/bench-anomaly.sh (which starts the API server and the
//! CRDs):
//!
//! ```console
//! cargo run --release -p tollgate-operator --example bench-anomaly -- [ALERTS] [TARGETS...]
//! ```
//!
//! "answer" is the webhook's answer (after the status write and Events);
//! read-back polls all agents while the POST is in flight.
//!
//! Defaults: 50 alerts (distinct fingerprints) per fleet size, sizes 1 10
//! 100. Between alerts the blocks and `status.activeResponses` are cleared,
//! so each alert goes the whole way (fast path to every target, status
//! write). Prints p50/p99/max; asserts nothing about time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tollgate_crds::toll_policy::RolloutStrategy;
use tollgate_crds::{SbcFleet, TollPolicy};
use tollgate_ir::{AlertLevel, LimitMetric, Response as Declared, ResponseAction, ResponseTrigger};
use tollgate_operator::controller::agents::{AgentApi, AgentTarget, HttpAgents};
use tollgate_operator::controller::metrics::Metrics;
use tollgate_operator::controller::responses::OperatorSink;
use tollgate_operator::controller::revisions::policy_hash;
use tollgate_operator::controller::{Config, Operator};
use tollgate_operator::webhook::{Receiver, serve_receiver};
use tollgate_rollout::RevisionRef;
use tollgate_testkit::fake_agent::{sample_policy, toll_policy};

use tollgate_testkit::{self as testkit, R};

const AGENT_TOKEN: &str = "bench-agent-token-0123456789";
const HOOK_TOKEN: &str = "bench-webhook-token-0123456789";
const KEY: &str = "acme::premium-rate";

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() as f64)).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn payload(ns: &str, fp: &str) -> Value {
    json!({
        "version": "4", "groupKey": "bench", "truncatedAlerts": 0, "status": "firing",
        "receiver": "tollgate", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://bench",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "TollgateConcurrentCritical", "namespace": ns,
                       "tollgate_policy": "acme", "tollgate_tenant": "acme",
                       "tollgate_limit": "concurrent", "tollgate_class": "premium-rate",
                       "tollgate_level": "critical"},
            "annotations": {"summary": "bench"},
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://bench", "fingerprint": fp
        }]
    })
}

async fn run_size(kube: &Client, n: usize, alerts: usize) -> R<(Vec<f64>, Vec<f64>)> {
    let ns = format!("bench-anomaly-{n}-{}", testkit::suffix());
    testkit::create_namespace(kube, &ns).await?;
    let r = run_in(kube, &ns, n, alerts).await;
    testkit::delete_namespace(kube, &ns).await;
    r
}

async fn run_in(kube: &Client, ns: &str, n: usize, alerts: usize) -> R<(Vec<f64>, Vec<f64>)> {
    let agents = testkit::start_agents(n, AGENT_TOKEN).await?;
    let http = Arc::new(HttpAgents::new(
        Duration::from_secs(5),
        Duration::from_secs(30),
    ));
    // the tenant on every agent (a block needs its tenant applied)
    let mut policy = sample_policy("acme", 0);
    let trigger = ResponseTrigger::Breach {
        metric: LimitMetric::Concurrent,
        class: Some("premium-rate".into()),
        level: AlertLevel::Critical,
    };
    policy.responses = vec![Declared {
        trigger,
        action: ResponseAction::BlockClasses {
            classes: vec!["premium-rate".into()],
        },
        hold_seconds: None,
        until_acknowledged: true,
        rule: "respond:premium".into(),
    }];
    let rev = RevisionRef {
        number: 1,
        hash: policy_hash(&policy),
    };
    let targets: Vec<AgentTarget> = agents
        .iter()
        .map(|a| AgentTarget {
            url: a.url(),
            token: Some(AGENT_TOKEN.into()),
        })
        .collect();
    for t in &targets {
        let r = http.apply(t, "acme", &rev, &policy).await;
        if !matches!(r, tollgate_rollout::ApplyResult::Ok { .. }) {
            return Err(format!("applying acme to {}: {r:?}", t.url).into());
        }
    }
    testkit::create_token_secret(kube, ns, AGENT_TOKEN).await?;
    let fleets: Api<SbcFleet> = Api::namespaced(kube.clone(), ns);
    fleets
        .create(
            &PostParams::default(),
            &testkit::static_fleet("edge", &agents, 9443, true),
        )
        .await?;
    let policies: Api<TollPolicy> = Api::namespaced(kube.clone(), ns);
    policies
        .create(
            &PostParams::default(),
            &toll_policy("acme", policy, "edge", RolloutStrategy::default()),
        )
        .await?;

    // The operator's sink and receiver, without the reconcile loop (it
    // would re-push blocks while they are cleared between alerts).
    let config = Config {
        namespace: Some(ns.to_owned()),
        instance: Some("bench-anomaly".into()),
        ..Config::default()
    };
    let op = Operator::new(
        kube.clone(),
        config,
        http.clone(),
        Arc::new(Metrics::default()),
    );
    let sink = OperatorSink::new(op.context());
    let receiver = Arc::new(Receiver::new(sink, HOOK_TOKEN.as_bytes().to_vec()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/alerts", listener.local_addr()?);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve_receiver(
        listener,
        Arc::clone(&receiver),
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    let web: HttpClient<HttpConnector, Full<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new());

    let (mut to_enforced, mut to_answer) = (Vec::new(), Vec::new());
    for i in 0..alerts {
        // clear: blocks on the agents, activeResponses in status
        for a in &agents {
            a.clear_blocks();
        }
        let clear = json!({"status": {"activeResponses": null}});
        policies
            .patch_status("acme", &PatchParams::default(), &Patch::Merge(&clear))
            .await?;
        let body = serde_json::to_vec(&payload(ns, &format!("{n:04x}{i:012x}")))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(&hook)
            .header("authorization", format!("Bearer {HOOK_TOKEN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let t0 = Instant::now();
        // the POST in its own task; read-back polls meanwhile (the block is
        // pushed before the sink writes status and the webhook answers)
        let w = web.clone();
        let post = tokio::spawn(async move {
            let resp = w.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let text = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let answered = t0.elapsed();
            if status.is_success() {
                Ok(answered)
            } else {
                Err(format!(
                    "webhook answered {status}: {}",
                    String::from_utf8_lossy(&text)
                ))
            }
        });
        // read-back: every agent's GET /v1/state lists the block
        loop {
            let states =
                futures::future::join_all(targets.iter().map(|t| http.state(t, "acme"))).await;
            if states
                .iter()
                .all(|s| s.as_ref().is_ok_and(|s| s.blocks.contains_key(KEY)))
            {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err("the block did not reach every agent within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        to_enforced.push(t0.elapsed().as_secs_f64() * 1000.0);
        let answered = post.await??;
        to_answer.push(answered.as_secs_f64() * 1000.0);
    }
    stop.send_replace(true);
    server.await?;
    Ok((to_enforced, to_answer))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let alerts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let mut sizes: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![1, 10, 100];
    }
    let kube = match testkit::testbed_client().await {
        Ok(Some(c)) => c,
        Ok(None) => {
            eprintln!("bench-anomaly: KUBECONFIG is not set");
            return std::process::ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("bench-anomaly: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "webhook POST -> block on every target (read-back), {alerts} alerts per size (distinct fingerprints)"
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10}   {:>16} {:>16}",
        "targets", "p50 ms", "p99 ms", "max ms", "answer p50 ms", "answer p99 ms"
    );
    for n in sizes {
        match run_size(&kube, n, alerts).await {
            Ok((mut e, mut a)) => {
                e.sort_by(f64::total_cmp);
                a.sort_by(f64::total_cmp);
                println!(
                    "{n:>8} {:>10.1} {:>10.1} {:>10.1}   {:>16.1} {:>16.1}",
                    pct(&e, 50.0),
                    pct(&e, 99.0),
                    e.last().copied().unwrap_or(f64::NAN),
                    pct(&a, 50.0),
                    pct(&a, 99.0)
                );
            }
            Err(e) => {
                eprintln!("bench-anomaly: {n} targets: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
