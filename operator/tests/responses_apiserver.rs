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

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tollgate_alerts::{AlertAction, AlertRef, AlertSink};
use tollgate_crds::TollPolicy;
use tollgate_crds::toll_policy::{AcknowledgedReason, TollPolicyPhase};
use tollgate_ir::{AlertLevel, LimitMetric, Response as Declared, ResponseAction, ResponseTrigger};
use tollgate_operator::controller::agents::HttpAgents;
use tollgate_operator::controller::metrics::Metrics;
use tollgate_operator::controller::responses::{OperatorSink, RELEASE_ANNOTATION};
use tollgate_operator::controller::status::{
    RESPONSE_FIELDS, RESPONSES_MANAGER, ROLLOUT_MANAGER, status_fields,
};
use tollgate_operator::controller::{Config, Operator};
use tollgate_operator::webhook::Receiver;
use tollgate_testkit::fake_agent::{FakeAgent, no_bake, sample_policy, toll_policy};

use tollgate_testkit::{self as testkit, R, wait_for};

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
            starts_at: "2026-11-25T10:00:00.123Z".into(),
            summary: Some("premium-rate calls above the limit".into()),
        },
    }
}

#[tokio::test]
async fn responses_reach_every_agent_and_status() {
    testkit::in_testbed_namespace("responses_apiserver", "t-resp", MANAGER, async |c, ns| {
        scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn scenario(client: &Client, ns: &str) -> R {
    let mut agents = testkit::start_agents(2, TOKEN).await?;
    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;

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

    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    create_policy(
        &api,
        vec![
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
        ],
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
            ar[0].alert.starts_at.as_deref() == Some("2026-11-25T10:00:00.123Z"),
            format!("startsAt: {:?}", ar[0].alert.starts_at),
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
        testkit::set_edge_agents(client, ns, &agents).await?;
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

/// A running operator (controller and alert sink) of its own, as one
/// process or replica would be.
struct Running {
    receiver: Receiver<OperatorSink>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(client: &Client, ns: &str, instance: &str) -> Running {
        let config = Config {
            namespace: Some(ns.to_owned()),
            instance: Some(instance.into()),
            ..Config::default()
        };
        let http = Arc::new(HttpAgents::new(
            Duration::from_secs(3),
            Duration::from_secs(30),
        ));
        let op = Operator::new(client.clone(), config, http, Arc::new(Metrics::default()));
        let sink = OperatorSink::new(op.context());
        // a fresh receiver: its in-memory set of handled alerts is empty,
        // as after a restart or on the other replica
        let receiver = Receiver::new(sink, HOOK_TOKEN.as_bytes().to_vec());
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(op.run(async move {
            let _ = stop_rx.await;
        }));
        Running {
            receiver,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }

    /// POSTs an Alertmanager v4 payload of `alerts` to the webhook
    /// receiver; its JSON answer.
    async fn post(&self, alerts: &[serde_json::Value]) -> R<serde_json::Value> {
        let body = json!({"version": "4", "status": "firing", "receiver": "tollgate",
                          "groupKey": "{}:{}", "alerts": alerts});
        let req = http::Request::builder()
            .method("POST")
            .uri("/alerts")
            .header("authorization", format!("Bearer {HOOK_TOKEN}"))
            .body(Full::new(Bytes::from(body.to_string())))?;
        let resp = self.receiver.handle(req).await;
        let status = resp.status();
        let b = resp.into_body().collect().await?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&b)?;
        ensure(status == 200, format!("webhook answered {status}: {v}"))?;
        Ok(v)
    }
}

const HOOK_TOKEN: &str = "hook-token-0123456789";

/// A firing alert of acme's premium-rate concurrency at `level`, as
/// Alertmanager sends it.
fn firing(ns: &str, fp: &str, starts_at: &str, level: &str) -> serde_json::Value {
    json!({
        "status": "firing", "fingerprint": fp, "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "labels": {"alertname": "TollgateConcurrentCritical", "namespace": ns,
                   "tollgate_policy": "acme", "tollgate_tenant": "acme",
                   "tollgate_limit": "concurrent", "tollgate_class": "premium-rate",
                   "tollgate_level": level, "instance": fp},
        "annotations": {"summary": "premium-rate calls above the limit"}})
}

/// TollPolicy acme on fleet edge with `responses` declared.
async fn create_policy(api: &Api<TollPolicy>, responses: Vec<Declared>) -> R {
    let mut policy = sample_policy("acme", 0);
    policy.responses = responses;
    api.create(
        &PostParams::default(),
        &toll_policy("acme", policy, "edge", no_bake()),
    )
    .await?;
    Ok(())
}

async fn wait_applied(api: &Api<TollPolicy>) -> R {
    wait_for("phase Applied", 60, POLL, || async {
        let p = api.get("acme").await?;
        Ok((p.status.and_then(|s| s.phase) == Some(TollPolicyPhase::Applied)).then_some(()))
    })
    .await
}

async fn release_and_wait(api: &Api<TollPolicy>, value: &str) -> R {
    let patch = json!({"metadata": {"annotations": {RELEASE_ANNOTATION: value}}});
    api.patch("acme", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait_for("the release carried out", 30, POLL, || async {
        let p = api.get("acme").await?;
        Ok((!p.annotations().contains_key(RELEASE_ANNOTATION)).then_some(()))
    })
    .await
}

/// Every agent holds the block `KEY` until lifted; `what` says which.
fn every_agent_blocks(agents: &[FakeAgent], what: &str) -> R {
    for a in agents {
        ensure(
            a.blocks().get(KEY) == Some(&0),
            format!("{} {what}: {:?}", a.url(), a.blocks()),
        )?;
    }
    Ok(())
}

/// (field manager, status field) of every status field in
/// `metadata.managedFields`.
fn status_owners(p: &TollPolicy) -> Vec<(String, String)> {
    p.managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .flat_map(|m| {
            let manager = m.manager.clone().unwrap_or_default();
            status_fields(m)
                .into_iter()
                .map(move |f| (manager.clone(), f))
        })
        .collect()
}

/// Each status field in `metadata.managedFields` has exactly one manager:
/// the responses' fields [`RESPONSES_MANAGER`], every other one
/// [`ROLLOUT_MANAGER`]; `want` are fields that must be there.
fn one_owner_each(p: &TollPolicy, want: &[&str]) -> R {
    let owners = status_owners(p);
    for (i, (m, f)) in owners.iter().enumerate() {
        let expected = if RESPONSE_FIELDS.contains(&f.as_str()) {
            RESPONSES_MANAGER
        } else {
            ROLLOUT_MANAGER
        };
        ensure(
            m == expected,
            format!("{f} written by {m}, not {expected}: {owners:?}"),
        )?;
        ensure(
            !owners[..i].iter().any(|(_, g)| g == f),
            format!("{f} has two managers: {owners:?}"),
        )?;
        ensure(
            p.managed_fields().iter().any(|e| {
                e.manager.as_deref() == Some(m.as_str())
                    && e.operation.as_deref() == Some("Apply")
                    && e.subresource.as_deref() == Some("status")
            }),
            format!("{m} does not write with server-side apply"),
        )?;
    }
    for w in want {
        ensure(
            owners.iter().any(|(_, f)| f == w),
            format!("{w} not in managedFields: {owners:?}"),
        )?;
    }
    Ok(())
}

/// Issue 12: one owner per status field. After a rollout, a response and
/// a release, `metadata.managedFields` names exactly one field manager for
/// each status field: the reconciler's ([`ROLLOUT_MANAGER`]) for the
/// rollout's fields, the responses' ([`RESPONSES_MANAGER`]) for
/// `activeResponses` and `acknowledgedAlerts`; and a reconcile after the
/// response keeps it (its apply does not carry it).
#[tokio::test]
async fn each_status_field_has_one_field_manager() {
    testkit::in_testbed_namespace("responses_apiserver", "t-owner", MANAGER, async |c, ns| {
        owner_scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn owner_scenario(client: &Client, ns: &str) -> R {
    let agents = testkit::start_agents(2, TOKEN).await?;
    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    create_policy(
        &api,
        vec![until_acknowledged("respond:critical", AlertLevel::Critical)],
    )
    .await?;
    let op = Running::start(client, ns, "owner-test");
    let r = async {
        wait_applied(&api).await?;
        one_owner_each(
            &api.get("acme").await?,
            &["f:phase", "f:rollout", "f:conditions", "f:currentRevision"],
        )?;
        let v = op
            .post(&[firing(ns, "fp-owner", "2026-11-25T10:00:00Z", "critical")])
            .await?;
        ensure(v["actions"] == 1, format!("acted: {v}"))?;
        every_agent_blocks(&agents, "holds the block")?;
        // a reconcile after the response (a spec change) writes the
        // rollout's fields and leaves the response in place
        let patch = json!({"spec": {"rollout": {"paused": true}}});
        api.patch("acme", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        wait_for("the reconcile of generation 2", 30, POLL, || async {
            let p = api.get("acme").await?;
            Ok((status_of(&p).observed_generation == Some(2)).then_some(()))
        })
        .await?;
        let p = api.get("acme").await?;
        ensure(
            status_of(&p).active_responses.len() == 1,
            format!("the response kept: {:?}", status_of(&p).active_responses),
        )?;
        one_owner_each(
            &p,
            &["f:phase", "f:observedGeneration", "f:activeResponses"],
        )?;
        release_and_wait(&api, "all").await?;
        let p = api.get("acme").await?;
        ensure(
            status_of(&p).active_responses.is_empty()
                && status_of(&p).acknowledged_alerts.len() == 1,
            format!("released and acknowledged: {:?}", status_of(&p)),
        )?;
        one_owner_each(&p, &["f:phase", "f:acknowledgedAlerts"])?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;
    op.stop().await;
    r
}

fn status_of(p: &TollPolicy) -> tollgate_crds::TollPolicyStatus {
    p.status.clone().unwrap_or_default()
}

fn until_acknowledged(rule: &str, level: AlertLevel) -> Declared {
    Declared {
        trigger: trigger(level),
        action: ResponseAction::BlockClasses {
            classes: vec!["premium-rate".into()],
        },
        hold_seconds: None,
        until_acknowledged: true,
        rule: rule.into(),
    }
}

/// Issue 6's gap 1: a person releases a block while its alert keeps
/// firing; Alertmanager re-sends the alert; the operator restarted (or
/// another replica took over) in between, so its in-memory set of handled
/// alerts is empty. The released block must not come back; a new instance
/// of the alert (fired anew) must still act.
#[tokio::test]
async fn a_released_alert_stays_released_across_a_restart() {
    testkit::in_testbed_namespace("responses_apiserver", "t-ack", MANAGER, async |c, ns| {
        restart_scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn restart_scenario(client: &Client, ns: &str) -> R {
    let agents = testkit::start_agents(2, TOKEN).await?;
    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    create_policy(
        &api,
        vec![until_acknowledged("respond:critical", AlertLevel::Critical)],
    )
    .await?;
    let first = Running::start(client, ns, "ack-test-1");
    let r1 = async {
        wait_applied(&api).await?;
        // two SBCs' alerts (two fingerprints) set the response off
        let s1 = "2026-11-25T10:00:00.123Z";
        let v = first
            .post(&[
                firing(ns, "fp-sbc1", s1, "critical"),
                firing(ns, "fp-sbc2", "2026-11-25T10:00:01.5Z", "critical"),
            ])
            .await?;
        ensure(v["actions"] == 2, format!("two actions: {v}"))?;
        every_agent_blocks(&agents, "holds the block")?;
        let ar = status_of(&api.get("acme").await?).active_responses;
        ensure(ar.len() == 1, format!("one entry: {ar:?}"))?;
        let fps: Vec<_> = ar[0]
            .alerts
            .iter()
            .filter_map(|a| a.fingerprint.as_deref())
            .collect();
        ensure(
            fps == ["fp-sbc2", "fp-sbc1"],
            format!("both alert instances recorded: {fps:?}"),
        )?;
        // a person releases it while both alerts keep firing
        release_and_wait(&api, "all").await?;
        let st = status_of(&api.get("acme").await?);
        ensure(st.active_responses.is_empty(), "released")?;
        let acked: Vec<_> = st
            .acknowledged_alerts
            .iter()
            .map(|a| {
                (
                    a.alert.fingerprint.clone().unwrap_or_default(),
                    a.alert.starts_at.clone().unwrap_or_default(),
                    a.reason,
                )
            })
            .collect();
        ensure(
            acked.len() == 2
                && acked
                    .iter()
                    .all(|(_, _, r)| *r == AcknowledgedReason::Released)
                && acked.contains(&("fp-sbc1".into(), s1.into(), AcknowledgedReason::Released)),
            format!("both instances acknowledged: {acked:?}"),
        )?;
        wait_for("the block lifted on every agent", 10, POLL, || async {
            Ok(agents
                .iter()
                .all(|a| !a.blocks().contains_key(KEY))
                .then_some(()))
        })
        .await?;
        // Alertmanager re-sends: this process remembers them
        let v = first.post(&[firing(ns, "fp-sbc1", s1, "critical")]).await?;
        ensure(v["duplicates"] == 1, format!("a duplicate: {v}"))?;
        Ok::<(), testkit::Error>(())
    }
    .await;
    // the operator stops; a new process (or the other replica) takes over
    first.stop().await;
    r1?;
    let second = Running::start(client, ns, "ack-test-2");
    let r2 = async {
        let s1 = "2026-11-25T10:00:00.123Z";
        let v = second
            .post(&[
                firing(ns, "fp-sbc1", s1, "critical"),
                firing(ns, "fp-sbc2", "2026-11-25T10:00:01.5Z", "critical"),
            ])
            .await?;
        ensure(
            v["actions"] == 0 && v["duplicates"] == 0,
            format!("the re-sent instances act no more: {v}"),
        )?;
        let ignored = v["ignored"].as_array().cloned().unwrap_or_default();
        ensure(
            ignored.len() == 2
                && ignored.iter().all(|i| {
                    i["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("a person released its response"))
                }),
            format!("both listed as ignored with the reason: {v}"),
        )?;
        // the reconciler of the new process does not bring it back either
        tokio::time::sleep(Duration::from_secs(2)).await;
        ensure(
            agents.iter().all(|a| !a.blocks().contains_key(KEY)),
            "the released block came back after the restart",
        )?;
        ensure(
            status_of(&api.get("acme").await?)
                .active_responses
                .is_empty(),
            "the released response is back in status",
        )?;
        // the alert resolved and fired again: a new instance acts
        let v = second
            .post(&[firing(ns, "fp-sbc1", "2026-11-25T10:30:00Z", "critical")])
            .await?;
        ensure(v["actions"] == 1, format!("a new instance acts: {v}"))?;
        every_agent_blocks(&agents, "holds the block again")?;
        let st = status_of(&api.get("acme").await?);
        ensure(
            st.active_responses.len() == 1
                && st.active_responses[0].alert.starts_at.as_deref()
                    == Some("2026-11-25T10:30:00Z"),
            format!("the new instance recorded: {:?}", st.active_responses),
        )?;
        ensure(
            st.acknowledged_alerts.len() == 2,
            "the acknowledgements stay",
        )?;
        Ok::<(), testkit::Error>(())
    }
    .await;
    second.stop().await;
    r2
}

/// Issue 6's gap 2: `status.activeResponses` is full (64 entries of rules
/// from older revisions); a new response is not lost: it is pushed to the
/// agents, folded into an entry (recorded), kept by the reconciler (a new
/// agent gets it), and ends only when a person releases every rule of the
/// entry.
#[tokio::test]
async fn a_full_status_folds_and_keeps_every_response() {
    testkit::in_testbed_namespace("responses_apiserver", "t-fold", MANAGER, async |c, ns| {
        fold_scenario(c, ns).await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn fold_scenario(client: &Client, ns: &str) -> R {
    let mut agents = testkit::start_agents(2, TOKEN).await?;
    testkit::create_edge_fleet(client, ns, &agents, TOKEN).await?;
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    create_policy(
        &api,
        vec![until_acknowledged("respond:critical", AlertLevel::Critical)],
    )
    .await?;
    // 64 responses of an older revision's rules in force, as the operator
    // writes status (server-side apply, its field manager)
    let hour = now() + 3600;
    let old: Vec<serde_json::Value> = (0..64)
        .map(|i| {
            json!({"rule": format!("respond:old-{i}"),
                   "action": {"kind": "blockClasses", "classes": ["international"]},
                   "since": Timestamp::now().to_string(),
                   "expires": Timestamp::from_second(hour).map(|t| t.to_string()).unwrap_or_default(),
                   "alert": {"name": "TollgateOld", "fingerprint": format!("old-{i}"),
                             "startsAt": "2026-11-25T09:00:00Z"}})
        })
        .collect();
    api.patch_status(
        "acme",
        &PatchParams::apply("tollgate-operator").force(),
        &Patch::Apply(
            json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "TollPolicy",
                             "status": {"activeResponses": old}}),
        ),
    )
    .await?;
    let op = Running::start(client, ns, "fold-test");
    let r = async {
        wait_applied(&api).await?;
        // written as an operator before the split did (one manager for the
        // whole status): handed over to the responses' manager, kept
        let owners = status_owners(&api.get("acme").await?);
        ensure(
            owners
                .iter()
                .all(|(m, f)| f != "f:activeResponses" || m == RESPONSES_MANAGER)
                && owners.contains(&(RESPONSES_MANAGER.into(), "f:activeResponses".into())),
            format!("activeResponses handed over to {RESPONSES_MANAGER}: {owners:?}"),
        )?;
        ensure(
            status_of(&api.get("acme").await?).active_responses.len() == 64,
            "64 entries kept by the reconciler",
        )?;
        let v = op
            .post(&[firing(ns, "fp-new", "2026-11-25T10:00:00Z", "critical")])
            .await?;
        ensure(v["actions"] == 1, format!("acted: {v}"))?;
        every_agent_blocks(&agents, "holds the new block")?;
        let st = status_of(&api.get("acme").await?);
        ensure(st.active_responses.len() == 64, "still 64 entries")?;
        let host = st
            .active_responses
            .iter()
            .find(|r| r.folded_rules.contains(&"respond:critical".to_string()))
            .ok_or_else(|| format!("respond:critical folded nowhere: {:?}", st.active_responses))?;
        ensure(
            host.rule == "respond:old-0"
                && host.until_acknowledged
                && host.action
                    == ResponseAction::BlockClasses {
                        classes: vec!["international".into(), "premium-rate".into()],
                    },
            format!("folded into respond:old-0, made stricter: {host:?}"),
        )?;
        let events: Api<CoreEvent> = Api::namespaced(client.clone(), ns);
        wait_for("a ResponseFolded event", 10, POLL, || async {
            let l = events.list(&ListParams::default()).await?;
            Ok(l.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("ResponseFolded"))
                .then_some(()))
        })
        .await?;
        // the reconciler renders the blocks from status: a new agent gets
        // the folded response's block too
        agents.push(FakeAgent::start(TOKEN).await?);
        testkit::set_edge_agents(client, ns, &agents).await?;
        let newest = agents.last().ok_or("no agent")?;
        wait_for("the new agent holds the folded block", 30, POLL, || async {
            let b = newest.blocks();
            Ok((b.get(KEY) == Some(&0) && b.get("acme::international") == Some(&0)).then_some(()))
        })
        .await?;
        // releasing the folded rule alone keeps the blocks (respond:old-0
        // still holds them): only the name goes
        release_and_wait(&api, "respond:critical").await?;
        let st = status_of(&api.get("acme").await?);
        ensure(
            st.active_responses.len() == 64 && st.active_responses[0].folded_rules.is_empty(),
            format!(
                "the name went, the entry stays: {:?}",
                st.active_responses[0]
            ),
        )?;
        ensure(
            agents.iter().all(|a| a.blocks().get(KEY) == Some(&0)),
            "releasing one rule of a folded entry lifted its blocks",
        )?;
        // the entry's last rule: its premium-rate block is lifted; the
        // other old entries still block international (re-set to their hold)
        release_and_wait(&api, "respond:old-0").await?;
        wait_for(
            "premium-rate lifted, international kept",
            10,
            POLL,
            || async {
                Ok(agents
                    .iter()
                    .all(|a| {
                        let b = a.blocks();
                        !b.contains_key(KEY) && b.get("acme::international") == Some(&hour)
                    })
                    .then_some(()))
            },
        )
        .await?;
        ensure(
            status_of(&api.get("acme").await?).active_responses.len() == 63,
            "63 entries left",
        )?;
        Ok::<(), testkit::Error>(())
    }
    .await;
    op.stop().await;
    r
}
