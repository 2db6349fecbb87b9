//! The reconciler against a mocked API server (`tower_test`) and fake
//! agents ([`AgentApi`]): the exact API calls of a first reconcile, a
//! reconcile with nothing to do, and a deletion.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::BodyExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::client::Body;
use kube::runtime::controller::Action as KubeAction;
use kube::{Client, Resource};
use serde_json::{Value, json};
use tollgate_crds::sbc_fleet::{SbcBackend, StaticEndpoint};
use tollgate_crds::{PolicyRevision, SbcFleet, SbcFleetSpec, TollPolicy};
use tollgate_ir::CompiledPolicy;

use super::agents::{
    AgentApi, AgentCallError, AgentTarget, BatchItem, BatchResult, CommitResult, StageResult,
    TenantState,
};
use super::metrics::Metrics;
use super::revisions::{self, policy_hash, revision_name};
use super::{Config, FINALIZER, Operator, reconcile::reconcile};
use tollgate_rollout::{ApplyResult, RevisionRef};
use tollgate_testkit::fake_agent::{no_bake, sample_policy, toll_policy};

/// One request the mock API server saw.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    query: String,
    body: Value,
}

impl Call {
    fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Agents in memory: url → revision held; every call logged.
#[derive(Default)]
struct FakeAgents {
    held: Mutex<BTreeMap<String, RevisionRef>>,
    /// url → revision staged (not committed)
    staged: Mutex<BTreeMap<String, RevisionRef>>,
    /// every agent predates staged applies (404 for stage and commit)
    legacy: std::sync::atomic::AtomicBool,
    /// every agent forgets its stages (a restart between stage and commit)
    forget_stages: std::sync::atomic::AtomicBool,
    /// urls refusing every stage and PUT (422)
    refuse: Mutex<Vec<String>>,
    /// url → block key → expiry
    blocks: Mutex<BTreeMap<String, BTreeMap<String, i64>>>,
    /// DELETE /v1/blocks fails on every agent while set
    refuse_unblock: std::sync::atomic::AtomicBool,
    log: Mutex<Vec<String>>,
}

impl FakeAgents {
    /// Every agent holds revision 1 of `p` and the block
    /// `acme::premium-rate` (no expiry).
    fn hold_with_block(&self, p: &TollPolicy) {
        let r = RevisionRef {
            number: 1,
            hash: policy_hash(&p.spec.policy),
        };
        for u in URLS {
            self.held.lock().unwrap().insert(u.into(), r.clone());
            self.blocks
                .lock()
                .unwrap()
                .entry(u.into())
                .or_default()
                .insert("acme::premium-rate".into(), 0);
        }
    }
}

impl AgentApi for FakeAgents {
    fn state<'a>(
        &'a self,
        target: &'a AgentTarget,
        _tenant: &'a str,
    ) -> BoxFuture<'a, Result<TenantState, AgentCallError>> {
        Box::pin(async move {
            assert_eq!(target.token.as_deref(), Some("tok-0123456789abcdef"));
            self.log
                .lock()
                .unwrap()
                .push(format!("state {}", target.url));
            Ok(TenantState {
                applied: self.held.lock().unwrap().get(&target.url).cloned(),
                last_error: None,
                blocks: self
                    .blocks
                    .lock()
                    .unwrap()
                    .get(&target.url)
                    .cloned()
                    .unwrap_or_default(),
            })
        })
    }

    fn stage<'a>(
        &'a self,
        target: &'a AgentTarget,
        _tenant: &'a str,
        revision: &'a RevisionRef,
        _policy: &'a CompiledPolicy,
    ) -> BoxFuture<'a, StageResult> {
        Box::pin(async move {
            if self.legacy.load(std::sync::atomic::Ordering::Relaxed) {
                return StageResult::Unsupported { status: 404 };
            }
            self.log
                .lock()
                .unwrap()
                .push(format!("stage {} {}", target.url, revision.number));
            if self.refuse.lock().unwrap().contains(&target.url) {
                return StageResult::Failed(ApplyResult::Rejected {
                    reason: "Rejected".into(),
                    message: "probe failed".into(),
                });
            }
            if !self
                .forget_stages
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                self.staged
                    .lock()
                    .unwrap()
                    .insert(target.url.clone(), revision.clone());
            }
            StageResult::Staged
        })
    }

    fn commit<'a>(
        &'a self,
        target: &'a AgentTarget,
        _tenant: &'a str,
        revision: &'a RevisionRef,
    ) -> BoxFuture<'a, CommitResult> {
        Box::pin(async move {
            if self.legacy.load(std::sync::atomic::Ordering::Relaxed) {
                return CommitResult::NotStaged {
                    status: 404,
                    message: "no such endpoint".into(),
                };
            }
            self.log
                .lock()
                .unwrap()
                .push(format!("commit {} {}", target.url, revision.number));
            let mut staged = self.staged.lock().unwrap();
            if staged.get(&target.url) != Some(revision) {
                return CommitResult::NotStaged {
                    status: 409,
                    message: "nothing is staged".into(),
                };
            }
            staged.remove(&target.url);
            self.held
                .lock()
                .unwrap()
                .insert(target.url.clone(), revision.clone());
            CommitResult::Done(ApplyResult::Ok {
                hash: revision.hash.clone(),
            })
        })
    }

    fn apply<'a>(
        &'a self,
        target: &'a AgentTarget,
        _tenant: &'a str,
        revision: &'a RevisionRef,
        _policy: &'a CompiledPolicy,
    ) -> BoxFuture<'a, ApplyResult> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("apply {} {}", target.url, revision.number));
            if self.refuse.lock().unwrap().contains(&target.url) {
                return ApplyResult::Rejected {
                    reason: "Rejected".into(),
                    message: "probe failed".into(),
                };
            }
            self.held
                .lock()
                .unwrap()
                .insert(target.url.clone(), revision.clone());
            ApplyResult::Ok {
                hash: revision.hash.clone(),
            }
        })
    }

    fn remove<'a>(
        &'a self,
        target: &'a AgentTarget,
        _tenant: &'a str,
    ) -> BoxFuture<'a, ApplyResult> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("remove {}", target.url));
            self.held.lock().unwrap().remove(&target.url);
            ApplyResult::Ok {
                hash: String::new(),
            }
        })
    }

    fn batch<'a>(
        &'a self,
        target: &'a AgentTarget,
        items: &'a [BatchItem],
    ) -> BoxFuture<'a, BatchResult> {
        // one tenant per agent here: an agent without batches
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("batch {} {}", target.url, items.len()));
            BatchResult::Split {
                status: 404,
                message: "no such endpoint".into(),
            }
        })
    }

    fn put_block<'a>(
        &'a self,
        target: &'a AgentTarget,
        key: &'a str,
        expires: i64,
    ) -> BoxFuture<'a, Result<(), AgentCallError>> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("block {} {key} {expires}", target.url));
            self.blocks
                .lock()
                .unwrap()
                .entry(target.url.clone())
                .or_default()
                .insert(key.to_owned(), expires);
            Ok(())
        })
    }

    fn delete_block<'a>(
        &'a self,
        target: &'a AgentTarget,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), AgentCallError>> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("unblock {} {key}", target.url));
            if self
                .refuse_unblock
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                return Err(AgentCallError::Status {
                    call: "DELETE /v1/blocks",
                    status: 500,
                    message: "boom".into(),
                });
            }
            if let Some(m) = self.blocks.lock().unwrap().get_mut(&target.url) {
                m.remove(key);
            }
            Ok(())
        })
    }

    fn health<'a>(
        &'a self,
        target: &'a AgentTarget,
    ) -> BoxFuture<'a, Result<Option<tollgate_agent_api::FleetCounting>, AgentCallError>> {
        Box::pin(async move {
            assert_eq!(target.token, None, "GET /healthz needs no token");
            self.log
                .lock()
                .unwrap()
                .push(format!("health {}", target.url));
            Ok(None)
        })
    }
}

const NS: &str = "ns";
const URLS: [&str; 2] = ["http://10.0.0.1:9443", "http://10.0.0.2:9443"];

fn policy() -> TollPolicy {
    let mut p = toll_policy("acme", sample_policy("acme", 0), "edge", no_bake());
    p.metadata.namespace = Some(NS.into());
    p.metadata.uid = Some("uid-acme".into());
    p.metadata.generation = Some(1);
    p.metadata.resource_version = Some("10".into());
    p
}

/// [`policy`] with the operator's finalizer already added.
fn finalized_policy() -> TollPolicy {
    let mut p = policy();
    p.metadata.finalizers = Some(vec![FINALIZER.into()]);
    p
}

fn fleet() -> SbcFleet {
    let mut f = SbcFleet::new(
        "edge",
        SbcFleetSpec {
            selector: None,
            endpoints: Some(vec![
                StaticEndpoint {
                    host: "10.0.0.1".into(),
                    port: None,
                },
                StaticEndpoint {
                    host: "10.0.0.2".into(),
                    port: None,
                },
            ]),
            backend: SbcBackend::Kamailio,
            agent_port: 9443,
            agent_token_secret: None,
        },
    );
    f.metadata.namespace = Some(NS.into());
    f
}

fn revision_of(p: &TollPolicy) -> PolicyRevision {
    let hash = policy_hash(&p.spec.policy);
    let mut r = revisions::build(p, &hash, 1);
    r.metadata.resource_version = Some("5".into());
    r
}

type Answer = Box<dyn Fn(&Call) -> (u16, Value) + Send + Sync>;

/// A client whose API server answers with `answer` and records every call.
fn mock(answer: Answer) -> (Client, Arc<Mutex<Vec<Call>>>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rec = Arc::clone(&calls);
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or_default().to_owned();
            let bytes = req.into_body().collect().await.unwrap().to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let call = Call {
                method,
                path,
                query,
                body,
            };
            let (status, v) = answer(&call);
            rec.lock().unwrap().push(call);
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&v).unwrap()))
                    .unwrap(),
            );
        }
    });
    (Client::new(svc, "default"), calls)
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// The API server's answers for a namespace holding `policy`, the fleet and
/// `revisions`.
fn server(policy: TollPolicy, revisions: Vec<PolicyRevision>) -> Answer {
    let policy = Mutex::new(policy);
    Box::new(move |c: &Call| {
        let base = format!("/apis/tollgate.dev/v1alpha1/namespaces/{NS}");
        let p = c.path.as_str();
        match c.method.as_str() {
            "GET" if p == format!("{base}/tollpolicies/acme") => {
                (200, serde_json::to_value(&*policy.lock().unwrap()).unwrap())
            }
            "GET" if p == format!("{base}/sbcfleets/edge") => {
                (200, serde_json::to_value(fleet()).unwrap())
            }
            "GET" if p == format!("{base}/policyrevisions") => (
                200,
                json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "PolicyRevisionList",
                       "metadata": {"resourceVersion": "7"}, "items": revisions}),
            ),
            "POST" => (201, c.body.clone()),
            "DELETE" => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ),
            "PATCH" if p.ends_with("/status") => {
                // server-side apply, one owner per field: a manager's apply
                // sets (or removes) its own fields and keeps the other's
                let mut pol = policy.lock().unwrap();
                let new: tollgate_crds::TollPolicyStatus =
                    serde_json::from_value(c.body["status"].clone()).unwrap_or_default();
                let old = pol.status.take().unwrap_or_default();
                pol.status = Some(if c.query.contains(RESPONSES_QUERY) {
                    tollgate_crds::TollPolicyStatus {
                        active_responses: new.active_responses,
                        acknowledged_alerts: new.acknowledged_alerts,
                        ..old
                    }
                } else {
                    tollgate_crds::TollPolicyStatus {
                        active_responses: old.active_responses,
                        acknowledged_alerts: old.acknowledged_alerts,
                        ..new
                    }
                });
                (200, serde_json::to_value(&*pol).unwrap())
            }
            "PATCH" if p == format!("{base}/tollpolicies/acme") && c.body.is_object() => {
                // a merge patch of annotations (the release annotation's removal)
                let mut pol = policy.lock().unwrap();
                let ann = pol.metadata.annotations.get_or_insert_with(BTreeMap::new);
                if let Some(m) = c.body["metadata"]["annotations"].as_object() {
                    for (k, v) in m {
                        match v.as_str() {
                            Some(v) => ann.insert(k.clone(), v.to_owned()),
                            None => ann.remove(k),
                        };
                    }
                }
                (200, serde_json::to_value(&*pol).unwrap())
            }
            "PATCH" if p == format!("{base}/tollpolicies/acme") => {
                // the finalizer helper's JSON patch
                let mut pol = policy.lock().unwrap();
                let mut v = serde_json::to_value(&*pol).unwrap();
                let ops: json_patch_lite::Ops = serde_json::from_value(c.body.clone()).unwrap();
                json_patch_lite::apply(&mut v, &ops);
                *pol = serde_json::from_value(v).unwrap();
                (200, serde_json::to_value(&*pol).unwrap())
            }
            "PATCH" => (200, c.body.clone()),
            _ => not_found(),
        }
    })
}

/// Just enough of RFC 6902 for the finalizer helper's patches (`test`,
/// `add`, `remove` on `/metadata/finalizers`).
mod json_patch_lite {
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Deserialize, Debug)]
    pub struct Op {
        pub op: String,
        pub path: String,
        #[serde(default)]
        pub value: Value,
    }
    pub type Ops = Vec<Op>;

    pub fn apply(doc: &mut Value, ops: &Ops) {
        for o in ops {
            let parts: Vec<&str> = o.path.trim_start_matches('/').split('/').collect();
            match (o.op.as_str(), parts.as_slice()) {
                ("test", _) => {}
                ("add", ["metadata", "finalizers"]) => {
                    doc["metadata"]["finalizers"] = o.value.clone()
                }
                ("add", ["metadata", "finalizers", "-"]) => {
                    let f = &mut doc["metadata"]["finalizers"];
                    if !f.is_array() {
                        *f = Value::Array(vec![]);
                    }
                    f.as_array_mut().unwrap().push(o.value.clone());
                }
                ("remove", ["metadata", "finalizers", i]) => {
                    let i: usize = i.parse().unwrap();
                    doc["metadata"]["finalizers"]
                        .as_array_mut()
                        .unwrap()
                        .remove(i);
                }
                other => panic!("unexpected patch op {other:?}"),
            }
        }
    }
}

fn operator(client: Client, agents: Arc<FakeAgents>) -> Arc<super::Context> {
    let config = Config {
        namespace: Some(NS.into()),
        agent_token: Some("tok-0123456789abcdef".into()),
        ..Config::default()
    };
    Operator::new(client, config, agents, Arc::new(Metrics::default())).context()
}

fn lines(calls: &Arc<Mutex<Vec<Call>>>) -> Vec<String> {
    calls.lock().unwrap().iter().map(Call::line).collect()
}

const P: &str = "/apis/tollgate.dev/v1alpha1/namespaces/ns";
/// The query of a status apply by the rollout's field manager.
const ROLLOUT_QUERY: &str = "&force=true&fieldManager=tollgate-operator";
/// The query of a status apply by the responses' field manager.
const RESPONSES_QUERY: &str = "&force=true&fieldManager=tollgate-operator-responses";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

#[tokio::test]
async fn first_reconcile_of_a_new_policy() {
    let agents = Arc::new(FakeAgents::default());
    let (client, calls) = mock(server(policy(), vec![]));
    let ctx = operator(client, Arc::clone(&agents));

    // 1. the finalizer goes on first, and nothing else happens
    let a = reconcile(Arc::new(policy()), Arc::clone(&ctx))
        .await
        .unwrap();
    assert_eq!(a, KubeAction::await_change());
    let c = calls.lock().unwrap().clone();
    assert_eq!(lines(&calls), vec![format!("PATCH {P}/tollpolicies/acme")]);
    assert_eq!(c[0].body[0]["op"], "test");
    assert!(c[0].body.to_string().contains(FINALIZER), "{}", c[0].body);
    assert!(agents.log.lock().unwrap().is_empty());
    calls.lock().unwrap().clear();

    // 2. then the rollout: with bakeSeconds 0 and no canary it converges in one reconcile
    let p = finalized_policy();
    let a = reconcile(Arc::new(p), Arc::clone(&ctx)).await.unwrap();
    assert_eq!(a, KubeAction::requeue(std::time::Duration::from_secs(60)));
    let got = lines(&calls);
    assert_eq!(
        got,
        vec![
            format!("GET {P}/tollpolicies/acme"),
            format!("GET {P}/sbcfleets/edge"),
            format!("GET {P}/policyrevisions"),
            format!("POST {P}/policyrevisions"),
            // the rollout's fields only: no read of the responses first
            format!("PATCH {P}/tollpolicies/acme/status"),
            format!("POST {EVENTS}"),
            format!("POST {EVENTS}"),
            format!("PATCH {P}/tollpolicies/acme/status"),
            format!("POST {EVENTS}"),
        ],
        "{got:#?}"
    );
    let c = calls.lock().unwrap().clone();
    assert_eq!(c[2].query, "&labelSelector=tollgate.dev%2Fpolicy%3Dacme");
    // the PolicyRevision
    let rev = &c[3].body;
    let hash = policy_hash(&sample_policy("acme", 0));
    assert_eq!(rev["metadata"]["name"], revision_name("acme", &hash));
    assert_eq!(rev["spec"]["revision"], 1);
    assert_eq!(rev["spec"]["hash"], hash);
    assert_eq!(rev["metadata"]["labels"]["tollgate.dev/policy"], "acme");
    assert_eq!(rev["metadata"]["ownerReferences"][0]["uid"], "uid-acme");
    assert_eq!(rev["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        rev["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
        true
    );
    // write-ahead: the state is persisted before the applies go out
    for i in [4, 7] {
        assert_eq!(c[i].query, ROLLOUT_QUERY, "server-side apply");
        assert_eq!(c[i].body["kind"], "TollPolicy");
        assert_eq!(c[i].body["status"]["observedGeneration"], 1);
    }
    let s1 = &c[4].body["status"];
    assert_eq!(s1["rollout"]["mode"], "RollingOut");
    assert_eq!(s1["rollout"]["current"]["number"], 1);
    assert_eq!(s1["phase"], "Progressing");
    assert_eq!(s1["applied"], "0/2");
    let s2 = &c[7].body["status"];
    assert_eq!(s2["rollout"]["mode"], "Complete");
    assert_eq!(s2["phase"], "Applied");
    assert_eq!(s2["applied"], "2/2");
    assert_eq!(s2["currentRevision"], 1);
    assert_eq!(s2["lastGoodRevision"], 1);
    let conds: BTreeMap<String, (String, String)> = s2["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_owned(),
                (
                    c["status"].as_str().unwrap().to_owned(),
                    c["reason"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    assert_eq!(
        conds["Compiled"],
        ("True".into(), "CompileSucceeded".into())
    );
    assert_eq!(
        conds["Validated"],
        ("True".into(), "ValidationSucceeded".into())
    );
    assert_eq!(conds["Applied"], ("True".into(), "RolloutComplete".into()));
    // the events
    assert_eq!(c[5].body["reason"], "RollingOut");
    assert_eq!(c[5].body["regarding"]["name"], "acme");
    assert_eq!(c[5].body["reportingController"], "tollgate-operator");
    assert_eq!(c[6].body["reason"], "RollingOut");
    assert_ne!(c[5].body["note"], c[6].body["note"]);
    assert_eq!(c[8].body["reason"], "RolloutComplete");
    // the agents: state read on both, then both staged, then both
    // committed (each phase concurrently)
    let mut log = agents.log.lock().unwrap().clone();
    log[2..4].sort();
    log[4..].sort();
    assert_eq!(
        log,
        vec![
            format!("state {}", URLS[0]),
            format!("state {}", URLS[1]),
            format!("stage {} 1", URLS[0]),
            format!("stage {} 1", URLS[1]),
            format!("commit {} 1", URLS[0]),
            format!("commit {} 1", URLS[1]),
        ]
    );
    assert!(agents.staged.lock().unwrap().is_empty());
    let m = ctx.metrics.render();
    for want in [
        r#"tollgate_operator_agent_calls_total{call="stage",result="ok"} 2"#,
        r#"tollgate_operator_agent_calls_total{call="commit",result="ok"} 2"#,
    ] {
        assert!(m.contains(want), "{want} in\n{m}");
    }
    assert!(!m.contains(r#"call="apply""#), "{m}");
}

/// The rollout of revision 1 of [`policy`] (no finalizer to add) over
/// `agents`; the agents' calls after their state reads, and the metrics.
async fn first_rollout(agents: &Arc<FakeAgents>) -> (Vec<String>, String) {
    let p = finalized_policy();
    let (client, _calls) = mock(server(p.clone(), vec![]));
    let ctx = operator(client, Arc::clone(agents));
    reconcile(Arc::new(p), Arc::clone(&ctx)).await.unwrap();
    let log = agents.log.lock().unwrap().clone();
    let calls = log
        .into_iter()
        .filter(|l| !l.starts_with("state "))
        .collect();
    (calls, ctx.metrics.render())
}

#[tokio::test]
async fn agents_that_do_not_stage_get_a_put() {
    let agents = Arc::new(FakeAgents::default());
    agents
        .legacy
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut log, m) = first_rollout(&agents).await;
    log.sort();
    assert_eq!(
        log,
        vec![
            format!("apply {} 1", URLS[0]),
            format!("apply {} 1", URLS[1]),
        ]
    );
    assert_eq!(agents.held.lock().unwrap().len(), 2);
    assert!(
        m.contains(r#"tollgate_operator_agent_calls_total{call="stage",result="unsupported"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"tollgate_operator_agent_calls_total{call="apply",result="ok"} 2"#),
        "{m}"
    );
    assert!(!m.contains(r#"call="commit""#), "{m}");
}

#[tokio::test]
async fn a_commit_of_a_lost_stage_falls_back_to_a_put() {
    let agents = Arc::new(FakeAgents::default());
    agents
        .forget_stages
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (log, m) = first_rollout(&agents).await;
    let mut staged: Vec<&String> = log[..2].iter().collect();
    staged.sort();
    assert_eq!(
        staged,
        vec![
            &format!("stage {} 1", URLS[0]),
            &format!("stage {} 1", URLS[1])
        ]
    );
    // each target: its commit (409), then its PUT
    for u in URLS {
        let mine: Vec<&String> = log[2..].iter().filter(|l| l.contains(u)).collect();
        assert_eq!(
            mine,
            vec![&format!("commit {u} 1"), &format!("apply {u} 1")]
        );
    }
    assert_eq!(log.len(), 6, "{log:?}");
    assert_eq!(agents.held.lock().unwrap().len(), 2);
    for want in [
        r#"tollgate_operator_agent_calls_total{call="commit",result="not_staged"} 2"#,
        r#"tollgate_operator_agent_calls_total{call="apply",result="ok"} 2"#,
    ] {
        assert!(m.contains(want), "{want} in\n{m}");
    }
}

#[tokio::test]
async fn a_target_refusing_at_stage_keeps_its_revision_and_the_batch_commits() {
    let agents = Arc::new(FakeAgents::default());
    agents.refuse.lock().unwrap().push(URLS[1].into());
    let (log, m) = first_rollout(&agents).await;
    // every stage answered before the first commit; the refusing target
    // gets no commit (and no PUT)
    let first_commit = log.iter().position(|l| l.starts_with("commit")).unwrap();
    assert!(
        log[..first_commit]
            .iter()
            .filter(|l| l.starts_with("stage"))
            .count()
            == 2,
        "{log:?}"
    );
    assert!(
        log.iter()
            .filter(|l| l.contains(URLS[1]))
            .all(|l| l.starts_with("stage")),
        "{log:?}"
    );
    assert!(log.contains(&format!("commit {} 1", URLS[0])), "{log:?}");
    let held = agents.held.lock().unwrap().clone();
    assert_eq!(held.len(), 1);
    assert!(held.contains_key(URLS[0]) && !held.contains_key(URLS[1]));
    assert!(
        m.contains(r#"tollgate_operator_agent_calls_total{call="stage",result="rejected"}"#),
        "{m}"
    );
}

/// The converged object: finalizer, status as the first reconcile left it.
async fn converged() -> (TollPolicy, Arc<FakeAgents>) {
    let agents = Arc::new(FakeAgents::default());
    let mut p = finalized_policy();
    let (client, calls) = mock(server(p.clone(), vec![]));
    let ctx = operator(client, Arc::clone(&agents));
    reconcile(Arc::new(p.clone()), ctx).await.unwrap();
    let last = calls
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|c| c.path.ends_with("/status"))
        .unwrap()
        .body["status"]
        .clone();
    p.status = Some(serde_json::from_value(last).unwrap());
    agents.log.lock().unwrap().clear();
    (p, agents)
}

#[tokio::test]
async fn reconcile_with_nothing_to_do_writes_nothing() {
    let (p, agents) = converged().await;
    let (client, calls) = mock(server(p.clone(), vec![revision_of(&p)]));
    let ctx = operator(client, Arc::clone(&agents));
    let a = reconcile(Arc::new(p), ctx).await.unwrap();
    assert_eq!(a, KubeAction::requeue(std::time::Duration::from_secs(60)));
    assert_eq!(
        lines(&calls),
        vec![
            format!("GET {P}/tollpolicies/acme"),
            format!("GET {P}/sbcfleets/edge"),
        ],
        "only reads: the content is the current revision's, so it is neither \
         rendered nor are the PolicyRevisions listed again"
    );
    assert_eq!(
        agents.log.lock().unwrap().clone(),
        vec![format!("state {}", URLS[0]), format!("state {}", URLS[1])]
    );
}

#[tokio::test]
async fn deletion_removes_the_tenant_the_revisions_and_the_finalizer() {
    let (mut p, agents) = converged().await;
    p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let rev = revision_of(&p);
    let rev_name = rev.metadata.name.clone().unwrap();
    let (client, calls) = mock(server(p.clone(), vec![rev]));
    let ctx = operator(client, Arc::clone(&agents));
    let a = reconcile(Arc::new(p), ctx).await.unwrap();
    assert_eq!(a, KubeAction::await_change());
    assert_eq!(
        lines(&calls),
        vec![
            format!("GET {P}/sbcfleets/edge"),
            format!("GET {P}/policyrevisions"),
            format!("DELETE {P}/policyrevisions/{rev_name}"),
            format!("PATCH {P}/tollpolicies/acme"),
        ]
    );
    let c = calls.lock().unwrap().clone();
    let ops = c[3].body.as_array().unwrap();
    assert!(ops.iter().any(|o| o["op"] == "remove"), "{ops:?}");
    let mut log = agents.log.lock().unwrap().clone();
    log.sort();
    assert_eq!(
        log,
        vec![format!("remove {}", URLS[0]), format!("remove {}", URLS[1])]
    );
    assert!(agents.held.lock().unwrap().is_empty());
}

#[tokio::test]
async fn deletion_with_the_fleet_gone_does_not_block() {
    let (mut p, agents) = converged().await;
    p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let inner = server(p.clone(), vec![]);
    let answer: Answer = Box::new(move |c: &Call| {
        if c.path.ends_with("/sbcfleets/edge") {
            not_found()
        } else {
            inner(c)
        }
    });
    let (client, calls) = mock(answer);
    let ctx = operator(client, Arc::clone(&agents));
    reconcile(Arc::new(p), ctx).await.unwrap();
    assert_eq!(
        lines(&calls),
        vec![
            format!("GET {P}/sbcfleets/edge"),
            format!("POST {EVENTS}"),
            format!("GET {P}/policyrevisions"),
            format!("PATCH {P}/tollpolicies/acme"),
        ]
    );
    assert!(agents.log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_policy_that_does_not_render_fails_validation_and_rolls_nothing_out() {
    let agents = Arc::new(FakeAgents::default());
    let mut p = finalized_policy();
    p.spec.policy.sources.networks[0].cidr = "127.10.0.300/16".into();
    let (client, calls) = mock(server(p.clone(), vec![]));
    let ctx = operator(client, Arc::clone(&agents));
    let a = reconcile(Arc::new(p), ctx).await.unwrap();
    assert_eq!(a, KubeAction::await_change());
    assert_eq!(
        lines(&calls),
        vec![
            format!("GET {P}/tollpolicies/acme"),
            format!("PATCH {P}/tollpolicies/acme/status"),
            format!("POST {EVENTS}"),
        ]
    );
    let c = calls.lock().unwrap().clone();
    let s = &c[1].body["status"];
    assert_eq!(s["phase"], "Failed");
    let v = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Validated")
        .unwrap();
    assert_eq!(v["status"], "False");
    assert_eq!(v["reason"], "ValidationFailed");
    assert!(
        v["message"].as_str().unwrap().contains("127.10.0.300"),
        "{v}"
    );
    assert!(agents.log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn anomaly_reports_reach_the_queue() {
    let (client, _calls) = mock(server(policy(), vec![]));
    let ctx = operator(client, Arc::new(FakeAgents::default()));
    ctx.report_anomaly(NS, "acme", 3, "TollgateCallRateAnomaly");
    let obj = kube::runtime::reflector::ObjectRef::<TollPolicy>::new("acme").within(NS);
    assert_eq!(
        ctx.anomalies.take(&obj),
        vec![tollgate_rollout::Event::Anomaly {
            revision: 3,
            alert: "TollgateCallRateAnomaly".into()
        }]
    );
    assert!(ctx.anomalies.take(&obj).is_empty());
    let _ = ObjectMeta::default();
    let _ = TollPolicy::kind(&());
}

fn active(
    rule: &str,
    expires_in: Option<i64>,
    fp: &str,
) -> tollgate_crds::toll_policy::ActiveResponse {
    use tollgate_crds::toll_policy::{ActiveResponse, AlertReference};
    let now = Timestamp::now().as_second();
    ActiveResponse {
        rule: rule.into(),
        action: tollgate_ir::ResponseAction::BlockClasses {
            classes: vec!["premium-rate".into()],
        },
        since: Time(Timestamp::now()),
        expires: expires_in.map(|s| Time(Timestamp::from_second(now + s).unwrap())),
        until_acknowledged: expires_in.is_none(),
        alerts: Vec::new(),
        alert: AlertReference {
            name: "TollgateLimit".into(),
            fingerprint: Some(fp.into()),
            starts_at: Some("2026-01-01T00:00:00Z".into()),
        },
        folded_rules: Vec::new(),
    }
}

fn acked(fp: &str, starts_at: &str) -> tollgate_crds::toll_policy::AcknowledgedAlert {
    use tollgate_crds::toll_policy::{AcknowledgedAlert, AcknowledgedReason, AlertReference};
    AcknowledgedAlert {
        rule: "respond:1".into(),
        alert: AlertReference {
            name: "TollgateLimit".into(),
            fingerprint: Some(fp.into()),
            starts_at: Some(starts_at.into()),
        },
        reason: AcknowledgedReason::Released,
        time: Time(Timestamp::now()),
    }
}

/// The reconciler writes the rollout's status fields only (its own field
/// manager): its applies carry no `activeResponses`/`acknowledgedAlerts`,
/// so they can neither drop a response the sink records meanwhile nor
/// bring back a released one, and need no fresh read of them. The blocks
/// in force go to every target that lacks them.
#[tokio::test]
async fn the_rollout_status_leaves_the_responses_alone_and_targets_get_the_blocks() {
    let agents = Arc::new(FakeAgents::default());
    let p = finalized_policy();
    let mut on_server = p.clone();
    on_server.status = Some(tollgate_crds::TollPolicyStatus {
        active_responses: vec![active("respond:1", None, "fp1")],
        acknowledged_alerts: vec![acked("fp0", "2026-01-01T00:00:00Z")],
        ..Default::default()
    });
    let (client, calls) = mock(server(on_server, vec![]));
    let ctx = operator(client, Arc::clone(&agents));
    reconcile(Arc::new(p), ctx).await.unwrap();
    let c = calls.lock().unwrap().clone();
    let patches: Vec<&Call> = c.iter().filter(|c| c.path.ends_with("/status")).collect();
    assert_eq!(patches.len(), 2);
    for pc in patches {
        assert_eq!(pc.query, ROLLOUT_QUERY);
        let st = pc.body["status"].as_object().unwrap();
        assert!(st.contains_key("phase"), "{}", pc.body);
        assert!(!st.contains_key("activeResponses"), "{}", pc.body);
        assert!(!st.contains_key("acknowledgedAlerts"), "{}", pc.body);
    }
    // one read of the policy, at the start
    assert_eq!(
        c.iter()
            .filter(|x| x.line() == format!("GET {P}/tollpolicies/acme"))
            .count(),
        1
    );
    let b = agents.blocks.lock().unwrap().clone();
    for u in URLS {
        assert_eq!(b[u].get("acme::premium-rate"), Some(&0), "{b:?}");
    }
}

/// A status an operator before the split wrote (one manager for every
/// field): the responses' fields are handed over to their manager first,
/// then the rollout's manager applies its own without them; nothing is
/// lost.
#[tokio::test]
async fn responses_written_by_the_rollout_manager_are_handed_over() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    let agents = Arc::new(FakeAgents::default());
    let mut p = finalized_policy();
    p.status = Some(tollgate_crds::TollPolicyStatus {
        active_responses: vec![active("respond:1", None, "fp1")],
        acknowledged_alerts: vec![acked("fp0", "2026-01-01T00:00:00Z")],
        ..Default::default()
    });
    p.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some("tollgate-operator".into()),
        operation: Some("Apply".into()),
        subresource: Some("status".into()),
        fields_type: Some("FieldsV1".into()),
        fields_v1: Some(FieldsV1(json!({"f:status": {
            "f:activeResponses": {}, "f:acknowledgedAlerts": {}, "f:phase": {}}}))),
        ..ManagedFieldsEntry::default()
    }]);
    let (client, calls) = mock(server(p.clone(), vec![]));
    let ctx = operator(client, Arc::clone(&agents));
    reconcile(Arc::new(p), ctx).await.unwrap();
    let c = calls.lock().unwrap().clone();
    let got = lines(&calls);
    assert_eq!(got[0], format!("GET {P}/tollpolicies/acme"));
    // under the status lock: read again, then the two applies
    assert_eq!(got[1], format!("GET {P}/tollpolicies/acme"), "{got:#?}");
    assert_eq!(c[2].query, RESPONSES_QUERY);
    let st = c[2].body["status"].as_object().unwrap();
    assert_eq!(st["activeResponses"][0]["rule"], "respond:1");
    assert_eq!(st["acknowledgedAlerts"][0]["alert"]["fingerprint"], "fp0");
    assert_eq!(st.len(), 2, "{}", c[2].body);
    assert_eq!(c[3].query, ROLLOUT_QUERY);
    assert!(
        !c[3].body["status"]
            .as_object()
            .unwrap()
            .contains_key("activeResponses")
    );
    let b = agents.blocks.lock().unwrap().clone();
    for u in URLS {
        assert_eq!(b[u].get("acme::premium-rate"), Some(&0), "{b:?}");
    }
}

/// The release annotation: blocks lifted on every target, the entry gone
/// from status, a ResponseReleased event, the annotation removed.
#[tokio::test]
async fn release_annotation_lifts_the_blocks() {
    let agents = Arc::new(FakeAgents::default());
    let (mut p, agents0) = converged().await;
    drop(agents0);
    agents.hold_with_block(&p);
    if let Some(s) = p.status.as_mut() {
        s.active_responses = vec![
            active("respond:1", None, "fp1"),
            active("respond:2", Some(3600), "fp2"),
        ];
    }
    p.metadata.annotations = Some(BTreeMap::from([(
        super::responses::RELEASE_ANNOTATION.to_owned(),
        "respond:1".to_owned(),
    )]));
    let (client, calls) = mock(server(p.clone(), vec![revision_of(&p)]));
    let ctx = operator(client, Arc::clone(&agents));
    reconcile(Arc::new(p), ctx).await.unwrap();
    let c = calls.lock().unwrap().clone();
    let got: Vec<String> = c.iter().map(Call::line).collect();
    // respond:2 still blocks the same class: the key is re-set with its
    // hold (a person loosened it), not lifted
    let st = c.iter().find(|c| c.path.ends_with("/status")).unwrap();
    let ar = st.body["status"]["activeResponses"].as_array().unwrap();
    assert_eq!(ar.len(), 1);
    assert_eq!(ar[0]["rule"], "respond:2");
    // the released alert instance is acknowledged, durably
    let ack = st.body["status"]["acknowledgedAlerts"].as_array().unwrap();
    assert_eq!(ack.len(), 1, "{}", st.body);
    assert_eq!(ack[0]["rule"], "respond:1");
    assert_eq!(ack[0]["reason"], "Released");
    assert_eq!(ack[0]["alert"]["fingerprint"], "fp1");
    assert_eq!(ack[0]["alert"]["startsAt"], "2026-01-01T00:00:00Z");
    let ev = c
        .iter()
        .find(|c| c.body["reason"] == "ResponseReleased")
        .unwrap_or_else(|| panic!("{got:#?}"));
    assert!(ev.body["note"].as_str().unwrap().contains("respond:1"));
    let meta = c
        .iter()
        .find(|c| c.method == "PATCH" && c.path == format!("{P}/tollpolicies/acme"))
        .unwrap();
    assert!(meta.body["metadata"]["annotations"]["tollgate.dev/release"].is_null());
    let b = agents.blocks.lock().unwrap().clone();
    for u in URLS {
        let e = b[u]["acme::premium-rate"];
        assert!(
            e > Timestamp::now().as_second(),
            "re-set with respond:2's hold: {b:?}"
        );
    }
}

/// The sink's Respond: blocks on every target first, then one status write
/// (after a fresh read) carrying the new entry; the same alert again
/// changes nothing.
#[tokio::test]
async fn respond_pushes_blocks_then_records_the_response() {
    use tollgate_alerts::{AlertAction, AlertRef, AlertSink};
    use tollgate_ir::{AlertLevel, LimitMetric, Response as Decl, ResponseAction, ResponseTrigger};
    let agents = Arc::new(FakeAgents::default());
    let mut p = finalized_policy();
    let trigger = ResponseTrigger::Breach {
        metric: LimitMetric::Concurrent,
        class: Some("premium-rate".into()),
        level: AlertLevel::Critical,
    };
    p.spec.policy.responses = vec![
        Decl {
            trigger: trigger.clone(),
            action: ResponseAction::Alert,
            hold_seconds: None,
            until_acknowledged: false,
            rule: "respond:0".into(),
        },
        Decl {
            trigger: trigger.clone(),
            action: ResponseAction::BlockClasses {
                classes: vec!["premium-rate".into()],
            },
            hold_seconds: Some(600),
            until_acknowledged: false,
            rule: "respond:1".into(),
        },
    ];
    let (client, calls) = mock(server(p.clone(), vec![]));
    let ctx = operator(client, Arc::clone(&agents));
    let sink = super::responses::OperatorSink::new(Arc::clone(&ctx));
    let action = AlertAction::Respond {
        namespace: NS.into(),
        policy: "acme".into(),
        tenant: "acme".into(),
        trigger,
        alert: AlertRef {
            name: "TollgateConcurrentCritical".into(),
            fingerprint: "f00d".into(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            summary: None,
        },
    };
    sink.act(action.clone()).await.unwrap();
    // one read under the status lock, the blocks, one write, then Events
    assert_eq!(
        lines(&calls),
        vec![
            format!("GET {P}/tollpolicies/acme"),
            format!("GET {P}/sbcfleets/edge"),
            format!("PATCH {P}/tollpolicies/acme/status"),
            format!("POST {EVENTS}"), // ResponseAlert
            format!("POST {EVENTS}"), // BlockApplied
            format!("POST {EVENTS}"), // ResponseActive
        ]
    );
    let c = calls.lock().unwrap().clone();
    assert_eq!(c[3].body["reason"], "ResponseAlert");
    assert_eq!(c[4].body["reason"], "BlockApplied");
    assert!(c[4].body["note"].as_str().unwrap().contains("2/2 targets"));
    assert_eq!(c[5].body["reason"], "ResponseActive");
    // the responses' fields only, under their own field manager
    assert_eq!(c[2].query, RESPONSES_QUERY);
    let keys: Vec<&String> = c[2].body["status"].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["activeResponses"], "{}", c[2].body);
    let ar = &c[2].body["status"]["activeResponses"][0];
    assert_eq!(ar["rule"], "respond:1");
    assert_eq!(ar["alert"]["fingerprint"], "f00d");
    assert_eq!(ar["alert"]["startsAt"], "2026-01-01T00:00:00Z");
    assert_eq!(ar["alerts"][0]["fingerprint"], "f00d");
    assert!(ar["expires"].is_string());
    let b = agents.blocks.lock().unwrap().clone();
    let e0 = b[URLS[0]]["acme::premium-rate"];
    assert!(e0 > Timestamp::now().as_second() + 500);
    assert_eq!(b[URLS[1]]["acme::premium-rate"], e0);
    // the same alert again: blocks re-sent with the same expiry, no write
    calls.lock().unwrap().clear();
    sink.act(action).await.unwrap();
    assert!(
        !lines(&calls).iter().any(|l| l.ends_with("/status")),
        "{:?}",
        lines(&calls)
    );
    assert_eq!(
        agents.blocks.lock().unwrap()[URLS[0]]["acme::premium-rate"],
        e0
    );
    // not the leader: not ready, and acting is refused
    sink.set(None);
    assert!(!sink.ready());
}

/// A release whose DELETE fails on a target keeps the entry in status and
/// the annotation (the reconcile fails and is retried); once the agents
/// answer, the release goes through.
#[tokio::test]
async fn a_failed_lift_keeps_the_response_and_the_annotation() {
    use std::sync::atomic::Ordering;
    let agents = Arc::new(FakeAgents::default());
    let (mut p, _a) = converged().await;
    agents.hold_with_block(&p);
    if let Some(s) = p.status.as_mut() {
        s.active_responses = vec![active("respond:1", None, "fp1")];
    }
    p.metadata.annotations = Some(BTreeMap::from([(
        super::responses::RELEASE_ANNOTATION.to_owned(),
        "all".to_owned(),
    )]));
    agents.refuse_unblock.store(true, Ordering::Relaxed);
    let (client, calls) = mock(server(p.clone(), vec![revision_of(&p)]));
    let ctx = operator(client, Arc::clone(&agents));
    assert!(
        reconcile(Arc::new(p.clone()), Arc::clone(&ctx))
            .await
            .is_err()
    );
    let c = calls.lock().unwrap().clone();
    assert!(
        !c.iter().any(|c| c.path.ends_with("/status")),
        "no status write: {:?}",
        lines(&calls)
    );
    assert!(
        !c.iter()
            .any(|c| c.method == "PATCH" && c.path == format!("{P}/tollpolicies/acme")),
        "the annotation stays"
    );
    assert!(c.iter().any(|c| c.body["reason"] == "BlockFailed"));
    // the agents answer again: released
    agents.refuse_unblock.store(false, Ordering::Relaxed);
    calls.lock().unwrap().clear();
    reconcile(Arc::new(p), ctx).await.unwrap();
    let c = calls.lock().unwrap().clone();
    let st = c.iter().find(|c| c.path.ends_with("/status")).unwrap();
    assert!(
        st.body["status"]["activeResponses"].is_null()
            || st.body["status"]["activeResponses"] == json!([]),
        "{}",
        st.body
    );
    let b = agents.blocks.lock().unwrap().clone();
    for u in URLS {
        assert!(!b[u].contains_key("acme::premium-rate"), "{b:?}");
    }
}

/// Through the real receiver: an alert for a TollPolicy that does not exist
/// is answered 200 and listed under `ignored` (not retried, nothing done);
/// a standby (no context) answers 503.
#[tokio::test]
async fn unknown_policy_is_ignored_and_a_standby_answers_503() {
    use crate::webhook::Receiver;
    use bytes::Bytes;
    use http_body_util::Full;
    let agents = Arc::new(FakeAgents::default());
    let (client, calls) = mock(server(policy(), vec![]));
    let ctx = operator(client, Arc::clone(&agents));
    let sink = super::responses::OperatorSink::new(ctx);
    let rx = Receiver::new(sink.clone(), b"hook-token".to_vec());
    let body = json!({
        "version": "4", "status": "firing", "alerts": [{
            "status": "firing", "fingerprint": "abcd", "startsAt": "2026-01-01T00:00:00Z",
            "labels": {"alertname": "X", "namespace": NS, "tollgate_policy": "nope",
                       "tollgate_tenant": "acme", "tollgate_limit": "concurrent",
                       "tollgate_level": "critical"}}]});
    let req = || {
        Request::builder()
            .method("POST")
            .uri("/alerts")
            .header("authorization", "Bearer hook-token")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    let resp = rx.handle(req()).await;
    assert_eq!(resp.status(), 200);
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["actions"], 0, "{v}");
    assert_eq!(
        v["ignored"][0]["reason"],
        format!("no TollPolicy {NS}/nope")
    );
    assert_eq!(lines(&calls), vec![format!("GET {P}/tollpolicies/nope")]);
    assert!(agents.log.lock().unwrap().is_empty());
    sink.set(None);
    assert_eq!(rx.handle(req()).await.status(), 503);
}

/// A hold that ended: the entry leaves the status and its alert instance is
/// acknowledged (`HoldEnded`), so a re-send does not set it off again.
#[tokio::test]
async fn an_ended_hold_acknowledges_its_alert() {
    let (mut p, agents) = converged().await;
    if let Some(s) = p.status.as_mut() {
        let mut e = active("respond:1", Some(3600), "fp1");
        e.expires = Some(Time(
            Timestamp::from_second(Timestamp::now().as_second() - 5).unwrap(),
        ));
        s.active_responses = vec![e, active("respond:2", None, "fp2")];
    }
    let (client, calls) = mock(server(p.clone(), vec![revision_of(&p)]));
    let ctx = operator(client, Arc::clone(&agents));
    reconcile(Arc::new(p), ctx).await.unwrap();
    let c = calls.lock().unwrap().clone();
    let st = c.iter().find(|c| c.path.ends_with("/status")).unwrap();
    let ar = st.body["status"]["activeResponses"].as_array().unwrap();
    assert_eq!(ar.len(), 1);
    assert_eq!(ar[0]["rule"], "respond:2");
    let ack = st.body["status"]["acknowledgedAlerts"].as_array().unwrap();
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0]["reason"], "HoldEnded");
    assert_eq!(ack[0]["alert"]["fingerprint"], "fp1");
    assert!(c.iter().any(|c| c.body["reason"] == "ResponseExpired"));
}

/// Through the real receiver, as after a restart (its set of handled
/// alerts empty): an alert instance the status acknowledges is answered
/// 200 and listed under `ignored` with the reason, and nothing reaches the
/// agents; the same alert fired anew (a new startsAt) acts.
#[tokio::test]
async fn an_acknowledged_instance_is_ignored_and_a_new_one_acts() {
    use crate::webhook::Receiver;
    use bytes::Bytes;
    use http_body_util::Full;
    use tollgate_ir::{AlertLevel, LimitMetric, Response as Decl, ResponseAction, ResponseTrigger};
    let agents = Arc::new(FakeAgents::default());
    let mut p = finalized_policy();
    p.spec.policy.responses = vec![Decl {
        trigger: ResponseTrigger::Breach {
            metric: LimitMetric::Concurrent,
            class: Some("premium-rate".into()),
            level: AlertLevel::Critical,
        },
        action: ResponseAction::BlockClasses {
            classes: vec!["premium-rate".into()],
        },
        hold_seconds: None,
        until_acknowledged: true,
        rule: "respond:1".into(),
    }];
    // released before the restart: Alertmanager sent it with a +01:00
    // offset and milliseconds; the status holds it normalized
    p.status = Some(tollgate_crds::TollPolicyStatus {
        acknowledged_alerts: vec![acked("beef", "2026-01-01T00:00:00.25Z")],
        ..Default::default()
    });
    let (client, calls) = mock(server(p, vec![]));
    let ctx = operator(client, Arc::clone(&agents));
    let rx = Receiver::new(
        super::responses::OperatorSink::new(ctx),
        b"hook-token".to_vec(),
    );
    let post = |starts: &str| {
        let body = json!({
            "version": "4", "status": "firing", "alerts": [{
                "status": "firing", "fingerprint": "beef", "startsAt": starts,
                "labels": {"alertname": "TollgateConcurrentCritical", "namespace": NS,
                           "tollgate_policy": "acme", "tollgate_tenant": "acme",
                           "tollgate_limit": "concurrent", "tollgate_class": "premium-rate",
                           "tollgate_level": "critical"}}]});
        Request::builder()
            .method("POST")
            .uri("/alerts")
            .header("authorization", "Bearer hook-token")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    let answer = |r: Response<Full<Bytes>>| async move {
        assert_eq!(r.status(), 200);
        let b = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<Value>(&b).unwrap()
    };
    let v = answer(rx.handle(post("2026-01-01T01:00:00.250+01:00")).await).await;
    assert_eq!(v["actions"], 0, "{v}");
    let reason = v["ignored"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("acknowledged") && reason.contains("a person released"),
        "{reason}"
    );
    assert_eq!(lines(&calls), vec![format!("GET {P}/tollpolicies/acme")]);
    assert!(
        agents.log.lock().unwrap().is_empty(),
        "nothing reached the agents"
    );
    assert!(agents.blocks.lock().unwrap().is_empty());
    // re-sent again: a duplicate now (the receiver's own set)
    let v = answer(rx.handle(post("2026-01-01T01:00:00.250+01:00")).await).await;
    assert_eq!(v["duplicates"], 1, "{v}");
    // the same instant written another way: still the acknowledged instance
    let v = answer(rx.handle(post("2026-01-01T00:00:00.25Z")).await).await;
    assert_eq!(v["ignored"].as_array().map(Vec::len), Some(1), "{v}");
    // fired anew: a new instance acts
    let v = answer(rx.handle(post("2026-01-01T00:10:00Z")).await).await;
    assert_eq!(v["actions"], 1, "{v}");
    let b = agents.blocks.lock().unwrap().clone();
    for u in URLS {
        assert_eq!(b[u].get("acme::premium-rate"), Some(&0), "{b:?}");
    }
    let c = calls.lock().unwrap().clone();
    let st = c.iter().find(|c| c.path.ends_with("/status")).unwrap();
    let ar = &st.body["status"]["activeResponses"][0];
    assert_eq!(ar["alert"]["startsAt"], "2026-01-01T00:10:00Z");
    // the acknowledgement of the old instance stays
    assert_eq!(
        st.body["status"]["acknowledgedAlerts"][0]["alert"]["fingerprint"],
        "beef"
    );
}

#[test]
fn a_pod_relabelled_out_of_a_fleet_still_notifies_it() {
    use k8s_openapi::api::core::v1::Pod;
    let pod = |name: &str, deleting: bool| -> Pod {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "voice"}
        }))
        .expect("pod");
        if deleting {
            p.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        }
        p
    };
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let seen = super::PodFleets::default();
    // selected by edge: edge
    assert_eq!(
        seen.notify(&pod("a", false), names(&["edge"])),
        names(&["edge"])
    );
    // now selected by core only (relabelled): core, and edge which lost it
    assert_eq!(
        seen.notify(&pod("a", false), names(&["core"])),
        names(&["core", "edge"])
    );
    // selected by none: core once more, then nothing is remembered
    assert_eq!(seen.notify(&pod("a", false), vec![]), names(&["core"]));
    assert_eq!(seen.len(), 0);
    assert_eq!(seen.notify(&pod("a", false), vec![]), Vec::<String>::new());
    // another pod is its own entry; a deleted pod is forgotten
    assert_eq!(
        seen.notify(&pod("b", false), names(&["edge"])),
        names(&["edge"])
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen.notify(&pod("b", true), names(&["edge"])),
        names(&["edge"])
    );
    assert_eq!(seen.len(), 0);
}

/// The store keeps what is read from it (names, fleet, tenant, responses,
/// rollout, finalizers) and drops the lists and the status a reconcile
/// reads from the object itself, managedFields and kubectl's copy of the
/// object.
#[test]
fn the_store_keeps_a_slim_policy() {
    let mut p = toll_policy("acme", sample_policy("acme", 0), "edge", no_bake());
    p.metadata.namespace = Some("ns".into());
    p.metadata.finalizers = Some(vec![FINALIZER.into()]);
    p.metadata.annotations = Some(BTreeMap::from([
        (
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            serde_json::to_string(&p).unwrap(),
        ),
        ("team".to_owned(), "voice".to_owned()),
    ]));
    p.metadata.managed_fields = Some(vec![Default::default()]);
    p.status = Some(Default::default());
    let mut slim = p.clone();
    super::slim_policy(&mut slim);
    assert!(slim.spec.policy.destinations.is_empty() && slim.spec.policy.rules.is_empty());
    assert!(slim.spec.policy.classes.is_empty() && slim.spec.policy.sources.networks.is_empty());
    assert_eq!(slim.metadata.managed_fields, None);
    assert_eq!(
        slim.metadata.annotations,
        Some(BTreeMap::from([("team".to_owned(), "voice".to_owned())]))
    );
    assert_eq!(slim.metadata.finalizers, p.metadata.finalizers);
    assert_eq!(slim.spec.fleet, p.spec.fleet);
    assert_eq!(slim.spec.tenant, p.spec.tenant);
    assert_eq!(slim.spec.rollout, p.spec.rollout);
    assert_eq!(slim.spec.policy.responses, p.spec.policy.responses);
    assert_eq!(slim.status, None);
    assert!(serde_json::to_vec(&slim).unwrap().len() < serde_json::to_vec(&p).unwrap().len() / 2);
}
