//! Tests against a real Kubernetes API server: the testbed API server
//! (`scripts/apiserver.sh start`, then `export KUBECONFIG=...`).
//!
//! They refuse to run (fail, never pass silently) unless `KUBECONFIG` is set
//! and its current context is `testbed`, so they never touch a real cluster.
//! Each test applies the CRDs idempotently (server-side apply), waits for
//! `Established`, and works in its own namespace `t-<name>-<random>`, which
//! it deletes at the end.
//!
//! Run: `scripts/test-crds.sh` (starts the server, runs these with
//! `--nocapture` so the server's messages show).

#![allow(clippy::panic, clippy::unwrap_used)]

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, ObjectMeta};
use kube::runtime::wait::{await_condition, conditions::is_crd_established};
use kube::{Client, Config, Resource, ResourceExt};
use serde_json::{Value, json};

use tollgate_crds::PolicyChunk;
use tollgate_crds::conditions::{self, STATUS_FALSE, STATUS_TRUE, reason, toll_policy as ct};
use tollgate_crds::policy_revision::{PolicyRevision, PolicyRevisionSpec};
use tollgate_crds::sbc_fleet::{
    SbcBackend, SbcFleet, SbcFleetSpec, SecretKeyReference, StaticEndpoint,
};
use tollgate_crds::toll_policy::{
    AcknowledgedAlert, AcknowledgedReason, ActiveResponse, AlertReference, FleetReference,
    RolloutStrategy, StepSize, TargetFailure, TargetPhase, TargetState, TollPolicy,
    TollPolicyPhase, TollPolicySpec, TollPolicyStatus,
};
use tollgate_ir::*;

type R<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}

const MANAGER: &str = "tollgate-crds-tests";

// ---------------------------------------------------------------- harness

/// A client for the testbed API server, or a panic saying why not.
async fn testbed_client() -> Client {
    let Some(path) = std::env::var_os("KUBECONFIG") else {
        panic!(
            "KUBECONFIG is not set. These tests need the testbed API server: run \
             `exports=$(scripts/apiserver.sh start) && eval \"$exports\"` first (or use \
             scripts/test-crds.sh). Refusing to fall back to ~/.kube/config or in-cluster config."
        );
    };
    let path = std::path::PathBuf::from(path);
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read KUBECONFIG {}: {e}", path.display()));
    match kubeconfig.current_context.as_deref() {
        Some("testbed") => {}
        other => panic!(
            "KUBECONFIG {} has current context {other:?}, not \"testbed\": refusing to run \
             against what may be a real cluster",
            path.display()
        ),
    }
    let options = KubeConfigOptions {
        context: Some("testbed".into()),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap_or_else(|e| panic!("bad testbed kubeconfig: {e}"));
    Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a client: {e}"))
}

/// Applies the three CRDs with server-side apply and waits until each is Established.
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
        .map_err(|_| format!("CRD {name} not Established after 30 s"))??;
    }
    Ok(())
}

fn random_suffix() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", h.finish() as u32)
}

/// Runs `body` in a fresh namespace `t-<test>-<random>`, deletes the namespace
/// afterwards (also when the body fails), then fails the test if the body did.
async fn in_namespace<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = R>,
{
    let client = testbed_client().await;
    if let Err(e) = install_crds(&client).await {
        panic!("{test}: installing the CRDs failed: {e}");
    }
    let ns = format!("t-{}-{}", test.replace('_', "-"), random_suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    if let Err(e) = namespaces.create(&PostParams::default(), &object).await {
        panic!("{test}: cannot create namespace {ns}: {e}");
    }
    let result = body(client, ns.clone()).await;
    let deleted = namespaces.delete(&ns, &DeleteParams::default()).await;
    if let Err(e) = result {
        panic!("{test} (namespace {ns}): {e}");
    }
    if let Err(e) = deleted {
        panic!("{test}: cannot delete namespace {ns}: {e}");
    }
}

fn time(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

// ---------------------------------------------------------------- samples

fn sample_policy(tenant: &str) -> CompiledPolicy {
    CompiledPolicy {
        tenant: tenant.into(),
        home_country: "FR".into(),
        numbering_plan: "libphonenumber 9.0.33".into(),
        emergency_numbers: vec!["112".into(), "15".into(), "17".into(), "18".into()],
        destinations: vec![
            DestinationRule {
                prefix: "".into(),
                action: Verdict::Deny,
                rule: "dst:default".into(),
                window: None,
            },
            DestinationRule {
                prefix: "33".into(),
                action: Verdict::Allow,
                rule: "dst:country:FR".into(),
                window: None,
            },
            DestinationRule {
                prefix: "44".into(),
                action: Verdict::Allow,
                rule: "dst:country:GB".into(),
                window: Some(WindowCondition {
                    name: "office".into(),
                    when: WindowWhen::During,
                }),
            },
        ],
        classes: vec![ClassPrefix {
            prefix: "3389".into(),
            class: "premium-rate".into(),
        }],
        sources: SourcePolicy {
            networks: vec![SourceNetwork {
                cidr: "198.51.100.0/24".into(),
                action: Verdict::Allow,
                trunk: Some("pstn-1".into()),
                rule: "src:198.51.100.0/24".into(),
            }],
            geo: Some(GeoPolicy {
                mode: GeoMode::AllowOnly,
                countries: vec!["BE".into(), "FR".into()],
                rule: "geo".into(),
            }),
        },
        windows: vec![TimeWindow {
            name: "office".into(),
            zone: "Europe/Paris".into(),
            spans: vec![WeeklySpan {
                days: vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                start_minute: 480,
                end_minute: 1080,
            }],
            rule: "window:office".into(),
        }],
        limits: vec![
            Limit {
                metric: LimitMetric::Concurrent,
                class: None,
                warning: Some(20),
                critical: Some(30),
                rule: "limit:concurrent".into(),
            },
            Limit {
                metric: LimitMetric::Rate,
                class: Some("premium-rate".into()),
                warning: None,
                critical: Some(5),
                rule: "limit:rate:premium-rate".into(),
            },
        ],
        responses: vec![
            Response {
                trigger: ResponseTrigger::Breach {
                    metric: LimitMetric::Rate,
                    class: Some("premium-rate".into()),
                    level: AlertLevel::Critical,
                },
                action: ResponseAction::BlockClasses {
                    classes: vec!["premium-rate".into()],
                },
                hold_seconds: Some(3600),
                until_acknowledged: false,
                rule: "respond:premium".into(),
            },
            Response {
                trigger: ResponseTrigger::Anomaly {
                    anomaly: "traffic".into(),
                },
                action: ResponseAction::BlockTenant,
                hold_seconds: None,
                until_acknowledged: true,
                rule: "respond:traffic".into(),
            },
        ],
        crypto: CryptoPolicy {
            require_tls: true,
            require_srtp: false,
            require_client_certificate: false,
        },
        rules: vec![RuleSource {
            id: "dst:default".into(),
            file: "acme.toll".into(),
            line: 3,
            column: 1,
            text: "deny international".into(),
        }],
    }
}

fn sample_toll_policy(name: &str) -> TollPolicy {
    TollPolicy::new(
        name,
        TollPolicySpec {
            tenant: "acme".into(),
            policy: sample_policy("acme"),
            fleet: FleetReference {
                name: "edge".into(),
            },
            rollout: RolloutStrategy {
                canary: Some(StepSize::count(1)),
                bake_seconds: 600,
                batch: Some(StepSize::percent(25)),
                paused: false,
                promote_revision: None,
                abort_revision: None,
            },
            source_hash: Some(format!("sha256:{}", "ab".repeat(32))),
            parts: None,
        },
    )
}

fn sample_fleet_selector(name: &str) -> SbcFleet {
    SbcFleet::new(
        name,
        SbcFleetSpec {
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), "kamailio".to_string())].into()),
                match_expressions: None,
            }),
            endpoints: None,
            backend: SbcBackend::Kamailio,
            agent_port: 9443,
            agent_token_secret: Some(SecretKeyReference {
                name: "tollgate-agent".into(),
                key: "token".into(),
            }),
        },
    )
}

fn sample_fleet_endpoints(name: &str) -> SbcFleet {
    SbcFleet::new(
        name,
        SbcFleetSpec {
            selector: None,
            endpoints: Some(vec![
                StaticEndpoint {
                    host: "sbc1.example.net".into(),
                    port: None,
                },
                StaticEndpoint {
                    host: "192.0.2.10".into(),
                    port: Some(9444),
                },
            ]),
            backend: SbcBackend::Kamailio,
            agent_port: 9443,
            agent_token_secret: None,
        },
    )
}

fn sample_revision(name: &str) -> PolicyRevision {
    PolicyRevision::new(
        name,
        PolicyRevisionSpec {
            policy_name: "acme".into(),
            tenant: "acme".into(),
            hash: format!("sha256:{}", "0f".repeat(32)),
            revision: 1,
            policy: sample_policy("acme"),
            parts: None,
            created_from: 1,
        },
    )
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn valid_objects_are_accepted_and_read_back_equal() {
    in_namespace("valid", |client, ns| async move {
        let pp = PostParams::default();

        let policies: Api<TollPolicy> = Api::namespaced(client.clone(), &ns);
        let tp = sample_toll_policy("acme");
        policies.create(&pp, &tp).await?;
        let back = policies.get("acme").await?;
        ensure!(
            back.spec == tp.spec,
            "TollPolicy spec differs:\n{:?}\n{:?}",
            back.spec,
            tp.spec
        );

        // A policy past the inline limits: its head and chunks, read back
        // and assembled into the same policy.
        let mut big = sample_policy("acme");
        big.destinations = (0..12_000)
            .map(|i| DestinationRule {
                prefix: format!("1212{}", 200_000 + i),
                action: Verdict::Deny,
                rule: "dst:big".into(),
                window: None,
            })
            .collect();
        let (head, parts, pieces) = chunks::split(big.clone());
        let chunk_api: Api<PolicyChunk> = Api::namespaced(client.clone(), &ns);
        for c in &pieces {
            chunk_api
                .create(&pp, &PolicyChunk::from_chunk(c.clone(), &ns))
                .await?;
        }
        let mut chunked = sample_toll_policy("big");
        chunked.spec.policy = head;
        chunked.spec.parts = Some(parts.clone());
        policies.create(&pp, &chunked).await?;
        let back = policies.get("big").await?;
        let mut read = Vec::new();
        for r in &parts.chunks {
            read.push(chunk_api.get(&r.name).await?.into_chunk());
        }
        let whole = chunks::assemble(&back.spec.policy, &parts, |r| {
            read.iter().find(|c| c.name == r.name).cloned()
        })?;
        ensure!(
            whole == big,
            "the chunked policy read back assembles into itself"
        );

        let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), &ns);
        for fleet in [sample_fleet_selector("edge"), sample_fleet_endpoints("vms")] {
            let name = fleet.name_any();
            fleets.create(&pp, &fleet).await?;
            let back = fleets.get(&name).await?;
            ensure!(back.spec == fleet.spec, "SbcFleet {name} spec differs");
        }

        // Defaults: rollout, backend and agentPort may be left out.
        let minimal = json!({
            "apiVersion": "tollgate.dev/v1alpha1", "kind": "SbcFleet",
            "metadata": {"name": "minimal"},
            "spec": {"endpoints": [{"host": "sbc9.example.net"}]}
        });
        let fleets_dyn = dynamic_api(&client, &ns, &ApiResource::erase::<SbcFleet>(&()));
        fleets_dyn
            .create(&pp, &serde_json::from_value(minimal)?)
            .await?;
        let back = fleets.get("minimal").await?;
        ensure!(back.spec.backend == SbcBackend::Kamailio, "backend default");
        ensure!(
            back.spec.agent_port == 9443,
            "agentPort default: {}",
            back.spec.agent_port
        );

        let revisions: Api<PolicyRevision> = Api::namespaced(client.clone(), &ns);
        let rev = sample_revision("acme-1");
        revisions.create(&pp, &rev).await?;
        let back = revisions.get("acme-1").await?;
        ensure!(back.spec == rev.spec, "PolicyRevision spec differs");
        Ok(())
    })
    .await;
}

fn dynamic_api(client: &Client, ns: &str, ar: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, ar)
}

/// One invalid object and the message the server must answer with.
struct Case {
    what: &'static str,
    kind: &'static str,
    mutate: fn(&mut Value),
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        // TollPolicy: CEL rules
        Case {
            what: "tenant differs from policy.tenant",
            kind: "TollPolicy",
            mutate: |v| v["spec"]["tenant"] = json!("other"),
            expect: &["spec.tenant must equal spec.policy.tenant"],
        },
        Case {
            what: "canary with count and percent",
            kind: "TollPolicy",
            mutate: |v| v["spec"]["rollout"]["canary"] = json!({"count": 1, "percent": 10}),
            expect: &["exactly one of count or percent must be set"],
        },
        Case {
            what: "batch with neither count nor percent",
            kind: "TollPolicy",
            mutate: |v| v["spec"]["rollout"]["batch"] = json!({}),
            expect: &["exactly one of count or percent must be set"],
        },
        Case {
            what: "limit warning >= critical",
            kind: "TollPolicy",
            mutate: |v| {
                v["spec"]["policy"]["limits"][0]["warning"] = json!(30);
                v["spec"]["policy"]["limits"][0]["critical"] = json!(30);
            },
            expect: &["limit warning must be lower than critical"],
        },
        Case {
            what: "limit with neither warning nor critical",
            kind: "TollPolicy",
            mutate: |v| {
                v["spec"]["policy"]["limits"][1] = json!({"metric": "rate", "rule": "limit:x"})
            },
            expect: &["a limit needs warning or critical"],
        },
        Case {
            what: "destination window names no window",
            kind: "TollPolicy",
            mutate: |v| v["spec"]["policy"]["destinations"][2]["window"]["name"] = json!("night"),
            expect: &["every destinations[].window.name must name a window in windows"],
        },
        Case {
            what: "response with holdSeconds and untilAcknowledged",
            kind: "TollPolicy",
            mutate: |v| v["spec"]["policy"]["responses"][1]["holdSeconds"] = json!(60),
            expect: &["holdSeconds and untilAcknowledged are mutually exclusive"],
        },
        Case {
            what: "blockTenant action with classes",
            kind: "TollPolicy",
            mutate: |v| {
                v["spec"]["policy"]["responses"][1]["action"] =
                    json!({"kind": "blockTenant", "classes": ["x"]})
            },
            expect: &[
                "classes is required with kind blockClasses and not allowed with other kinds",
            ],
        },
        Case {
            what: "blockClasses action without classes",
            kind: "TollPolicy",
            mutate: |v| {
                v["spec"]["policy"]["responses"][0]["action"] = json!({"kind": "blockClasses"})
            },
            expect: &[
                "classes is required with kind blockClasses and not allowed with other kinds",
            ],
        },
        Case {
            what: "anomaly trigger with breach fields",
            kind: "TollPolicy",
            mutate: |v| {
                v["spec"]["policy"]["responses"][1]["trigger"] =
                    json!({"kind": "anomaly", "metric": "rate", "level": "warning"})
            },
            expect: &[
                "a breach trigger takes metric, level and optional class; an anomaly trigger takes only anomaly",
            ],
        },
        // TollPolicy: schema (no CEL needed)
        Case {
            what: "canary percent 0",
            kind: "TollPolicy",
            mutate: |v| v["spec"]["rollout"]["canary"] = json!({"percent": 0}),
            expect: &[
                "spec.rollout.canary.percent",
                "should be greater than or equal to 1",
            ],
        },
        Case {
            what: "batch percent 101",
            kind: "TollPolicy",
            mutate: |v| v["spec"]["rollout"]["batch"] = json!({"percent": 101}),
            expect: &[
                "spec.rollout.batch.percent",
                "should be less than or equal to 100",
            ],
        },
        Case {
            what: "prefix with a non-digit",
            kind: "TollPolicy",
            mutate: |v| v["spec"]["policy"]["destinations"][1]["prefix"] = json!("33a"),
            expect: &[
                "spec.policy.destinations[1].prefix",
                "should match '^[0-9]*$'",
            ],
        },
        Case {
            what: "prefix of 16 digits",
            kind: "TollPolicy",
            mutate: |v| {
                v["spec"]["policy"]["destinations"][1]["prefix"] = json!("3312345678901234")
            },
            expect: &[
                "spec.policy.destinations[1].prefix",
                "may not be more than 15",
            ],
        },
        Case {
            what: "no emergency numbers",
            kind: "TollPolicy",
            mutate: |v| v["spec"]["policy"]["emergencyNumbers"] = json!([]),
            expect: &[
                "spec.policy.emergencyNumbers",
                "should have at least 1 items",
            ],
        },
        Case {
            what: "tenant not a DNS label",
            kind: "TollPolicy",
            mutate: |v| {
                v["spec"]["tenant"] = json!("Acme_1");
                v["spec"]["policy"]["tenant"] = json!("Acme_1");
            },
            expect: &["spec.tenant", "should match"],
        },
        Case {
            what: "duplicate window names",
            kind: "TollPolicy",
            mutate: |v| {
                let w = v["spec"]["policy"]["windows"][0].clone();
                v["spec"]["policy"]["windows"]
                    .as_array_mut()
                    .unwrap()
                    .push(w);
            },
            expect: &["spec.policy.windows[1]", "Duplicate value"],
        },
        // SbcFleet
        Case {
            what: "fleet with selector and endpoints",
            kind: "SbcFleet",
            mutate: |v| v["spec"]["endpoints"] = json!([{"host": "sbc1.example.net"}]),
            expect: &["exactly one of selector or endpoints must be set"],
        },
        Case {
            what: "fleet with neither selector nor endpoints",
            kind: "SbcFleet",
            mutate: |v| {
                v["spec"].as_object_mut().unwrap().remove("selector");
            },
            expect: &["exactly one of selector or endpoints must be set"],
        },
        Case {
            what: "unknown backend",
            kind: "SbcFleet",
            mutate: |v| v["spec"]["backend"] = json!("asterisk"),
            expect: &["spec.backend", "Unsupported value: \"asterisk\""],
        },
        Case {
            what: "agentPort 0",
            kind: "SbcFleet",
            mutate: |v| v["spec"]["agentPort"] = json!(0),
            expect: &["spec.agentPort", "should be greater than or equal to 1"],
        },
        // PolicyRevision
        Case {
            what: "revision tenant differs",
            kind: "PolicyRevision",
            mutate: |v| v["spec"]["tenant"] = json!("other"),
            expect: &["spec.tenant must equal spec.policy.tenant"],
        },
        Case {
            what: "parts with entries left in the head",
            kind: "TollPolicy",
            mutate: |v| {
                v["spec"]["parts"] = json!({"hash": format!("sha256:{}", "ab".repeat(32)),
                    "chunks": [{"name": "acme-abababababababab", "hash": format!("sha256:{}", "ab".repeat(32))}]});
            },
            expect: &[
                "spec.parts",
                "keeps its destinations, classes, source networks and rules in its chunks only",
            ],
        },
        Case {
            what: "hash not sha256",
            kind: "PolicyRevision",
            mutate: |v| v["spec"]["hash"] = json!("md5:0123"),
            expect: &["spec.hash", "should match '^sha256:[0-9a-f]{64}$'"],
        },
    ]
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_the_rule_message() {
    in_namespace("invalid", |client, ns| async move {
        let mut problems = Vec::new();
        for (i, case) in cases().iter().enumerate() {
            let (ar, mut value) = match case.kind {
                "TollPolicy" => (
                    ApiResource::erase::<TollPolicy>(&()),
                    serde_json::to_value(sample_toll_policy("x"))?,
                ),
                "SbcFleet" => (
                    ApiResource::erase::<SbcFleet>(&()),
                    serde_json::to_value(sample_fleet_selector("x"))?,
                ),
                _ => (
                    ApiResource::erase::<PolicyRevision>(&()),
                    serde_json::to_value(sample_revision("x"))?,
                ),
            };
            value["metadata"]["name"] = json!(format!("bad-{i}"));
            (case.mutate)(&mut value);
            let object: DynamicObject = serde_json::from_value(value)?;
            match dynamic_api(&client, &ns, &ar)
                .create(&PostParams::default(), &object)
                .await
            {
                Ok(_) => problems.push(format!("{}: accepted", case.what)),
                Err(kube::Error::Api(status)) => {
                    eprintln!(
                        "[{}] {} -> {} {}: {}",
                        case.kind, case.what, status.code, status.reason, status.message
                    );
                    if status.code != 422 {
                        problems.push(format!(
                            "{}: HTTP {} (want 422): {}",
                            case.what, status.code, status.message
                        ));
                    }
                    for want in case.expect {
                        if !status.message.contains(want) {
                            problems.push(format!(
                                "{}: message lacks {want:?}: {}",
                                case.what, status.message
                            ));
                        }
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", case.what)),
            }
        }
        ensure!(
            problems.is_empty(),
            "{} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn policy_revision_spec_is_immutable() {
    in_namespace("immutable", |client, ns| async move {
        let revisions: Api<PolicyRevision> = Api::namespaced(client.clone(), &ns);
        let rev = sample_revision("acme-1");
        revisions.create(&PostParams::default(), &rev).await?;

        // A merge patch of one spec field.
        let patch = json!({"spec": {"revision": 2}});
        match revisions
            .patch("acme-1", &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Err("merge patch of spec.revision accepted".into()),
            Err(kube::Error::Api(s)) => {
                eprintln!("merge patch -> {} {}: {}", s.code, s.reason, s.message);
                ensure!(
                    s.message.contains("PolicyRevision spec is immutable"),
                    "unexpected: {}",
                    s.message
                );
            }
            Err(e) => return Err(e.into()),
        }

        // A server-side apply that changes the policy deep inside.
        let mut changed = rev.clone();
        changed.spec.policy.destinations[1].action = Verdict::Deny;
        changed.metadata = ObjectMeta {
            name: Some("acme-1".into()),
            ..ObjectMeta::default()
        };
        match revisions
            .patch(
                "acme-1",
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&changed),
            )
            .await
        {
            Ok(_) => return Err("apply changing spec.policy accepted".into()),
            Err(kube::Error::Api(s)) => {
                eprintln!("apply -> {} {}: {}", s.code, s.reason, s.message);
                ensure!(
                    s.message.contains("PolicyRevision spec is immutable"),
                    "unexpected: {}",
                    s.message
                );
            }
            Err(e) => return Err(e.into()),
        }

        // Metadata stays mutable (labels for GC/ownership, for instance).
        let labels = json!({"metadata": {"labels": {"tollgate.dev/policy": "acme"}}});
        revisions
            .patch("acme-1", &PatchParams::default(), &Patch::Merge(&labels))
            .await?;
        let back = revisions.get("acme-1").await?;
        ensure!(back.spec == rev.spec, "spec changed");
        ensure!(
            back.labels().get("tollgate.dev/policy").map(String::as_str) == Some("acme"),
            "label not set"
        );
        Ok(())
    })
    .await;
}

fn sample_status(generation: i64) -> TollPolicyStatus {
    let mut conds = Vec::new();
    conditions::set_condition(
        &mut conds,
        conditions::new_condition(
            ct::COMPILED,
            STATUS_TRUE,
            reason::COMPILE_SUCCEEDED,
            "compiled",
            Some(generation),
            time(1_700_000_000),
        ),
    );
    conditions::set_condition(
        &mut conds,
        conditions::new_condition(
            ct::PROGRESSING,
            STATUS_TRUE,
            reason::CANARY,
            "rolling out revision 3 to 1 canary target",
            Some(generation),
            time(1_700_000_100),
        ),
    );
    conditions::set_condition(
        &mut conds,
        conditions::new_condition(
            ct::APPLIED,
            STATUS_FALSE,
            reason::ROLLING_OUT,
            "1/4 targets applied revision 3",
            Some(generation),
            time(1_700_000_100),
        ),
    );
    TollPolicyStatus {
        observed_generation: Some(generation),
        conditions: conds,
        phase: Some(TollPolicyPhase::Canary),
        current_revision: Some(3),
        last_good_revision: Some(2),
        applied: Some("1/4".into()),
        applied_targets: Some(1),
        total_targets: Some(4),
        failures: vec![TargetFailure {
            target: "kamailio-2".into(),
            revision: 3,
            reason: "ReloadFailed".into(),
            message: "mtree.reload dst: bad prefix".into(),
            time: time(1_700_000_200),
        }],
        active_responses: vec![ActiveResponse {
            rule: "respond:premium".into(),
            action: ResponseAction::BlockClasses {
                classes: vec!["premium-rate".into()],
            },
            since: time(1_700_000_300),
            expires: Some(time(1_700_003_900)),
            until_acknowledged: false,
            alert: AlertReference {
                name: "TollgateLimitCritical".into(),
                fingerprint: Some("3f2a9c".into()),
                starts_at: Some("2023-11-14T22:13:19.123Z".into()),
            },
            alerts: vec![
                AlertReference {
                    name: "TollgateLimitCritical".into(),
                    fingerprint: Some("3f2a9c".into()),
                    starts_at: Some("2023-11-14T22:13:19.123Z".into()),
                },
                AlertReference {
                    name: "TollgateNewDestination".into(),
                    fingerprint: Some("77ab01".into()),
                    starts_at: Some("2023-11-14T22:14:00Z".into()),
                },
            ],
            folded_rules: vec!["respond:old-revision".into()],
        }],
        acknowledged_alerts: vec![AcknowledgedAlert {
            rule: "respond:international".into(),
            alert: AlertReference {
                name: "TollgateConcurrentCritical".into(),
                fingerprint: Some("c0ffee".into()),
                starts_at: Some("2023-11-14T20:00:00.5Z".into()),
            },
            reason: AcknowledgedReason::Released,
            time: time(1_700_000_250),
        }],
        last_rollback_reason: None,
        rollout: serde_json::from_value(json!({"mode": "RollingOut", "step": 0})).ok(),
        targets: vec![
            TargetState {
                target: "kamailio-0".into(),
                revision: Some(3),
                state: TargetPhase::Current,
            },
            TargetState {
                target: "kamailio-1".into(),
                revision: Some(2),
                state: TargetPhase::Waiting,
            },
            TargetState {
                target: "kamailio-2".into(),
                revision: Some(2),
                state: TargetPhase::Failing,
            },
            TargetState {
                target: "kamailio-3".into(),
                revision: None,
                state: TargetPhase::NotReady,
            },
        ],
        targets_not_listed: Some(12),
    }
}

fn status_patch(status: &TollPolicyStatus) -> Value {
    json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "TollPolicy", "status": status})
}

#[tokio::test]
async fn status_is_written_through_the_status_subresource_with_ssa() {
    in_namespace("status", |client, ns| async move {
        let policies: Api<TollPolicy> = Api::namespaced(client.clone(), &ns);
        let created = policies.create(&PostParams::default(), &sample_toll_policy("acme")).await?;
        let generation = created.meta().generation.unwrap_or(1);
        let operator = PatchParams::apply("tollgate-operator").force();

        let status = sample_status(generation);
        policies.patch_status("acme", &operator, &Patch::Apply(status_patch(&status))).await?;
        let back = policies.get_status("acme").await?;
        ensure!(back.status.as_ref() == Some(&status), "status differs:\n{:?}\n{:?}", back.status, status);

        // A second apply: Applied flips to True (transition time moves),
        // Compiled keeps its status (transition time kept by set_condition).
        let mut next = status.clone();
        conditions::set_condition(&mut next.conditions, conditions::new_condition(ct::APPLIED, STATUS_TRUE, reason::ROLLOUT_COMPLETE, "4/4", Some(generation), time(1_700_001_000)));
        conditions::set_condition(&mut next.conditions, conditions::new_condition(ct::COMPILED, STATUS_TRUE, reason::COMPILE_SUCCEEDED, "compiled again", Some(generation), time(1_700_001_000)));
        next.phase = Some(TollPolicyPhase::Applied);
        next.applied = Some("4/4".into());
        next.applied_targets = Some(4);
        policies.patch_status("acme", &operator, &Patch::Apply(status_patch(&next))).await?;
        let back = policies.get_status("acme").await?;
        let got = back.status.ok_or("no status")?;
        ensure!(got == next, "status differs after second apply");
        let compiled = conditions::find_condition(&got.conditions, ct::COMPILED).ok_or("no Compiled")?;
        ensure!(compiled.last_transition_time == time(1_700_000_000), "Compiled transition time moved");
        ensure!(conditions::is_true(&got.conditions, ct::APPLIED), "Applied not True");

        // The main resource ignores status (status subresource is enabled)...
        let mut other = sample_status(generation);
        other.phase = Some(TollPolicyPhase::Failed);
        let main_patch = json!({"status": other});
        policies.patch("acme", &PatchParams::default(), &Patch::Merge(&main_patch)).await?;
        let back = policies.get("acme").await?;
        ensure!(back.status.as_ref().and_then(|s| s.phase) == Some(TollPolicyPhase::Applied), "status changed through the main resource");
        // ...and spec changes through /status are ignored.
        let spec_via_status = json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "TollPolicy", "spec": {"rollout": {"paused": true}}, "status": next});
        policies.patch_status("acme", &PatchParams::apply("tollgate-operator-2").force(), &Patch::Apply(spec_via_status)).await.ok();
        ensure!(!policies.get("acme").await?.spec.rollout.paused, "spec changed through /status");

        // Bounds and status CEL rules hold for status writes too.
        let mut too_many = next.clone();
        too_many.failures = (0..11).map(|i| TargetFailure { target: format!("kamailio-{i}"), ..next.failures.first().cloned().unwrap_or_else(|| sample_status(1).failures[0].clone()) }).collect();
        match policies.patch_status("acme", &operator, &Patch::Apply(status_patch(&too_many))).await {
            Ok(_) => return Err("11 failures accepted".into()),
            Err(kube::Error::Api(s)) => {
                eprintln!("11 failures -> {} {}: {}", s.code, s.reason, s.message);
                ensure!(s.message.contains("status.failures") && s.message.contains("must have at most 10 items"), "unexpected: {}", s.message);
            }
            Err(e) => return Err(e.into()),
        }
        // activeResponses: as many as a policy declares responses (64), not one more;
        // acknowledgedAlerts at most 128.
        let mut full = next.clone();
        full.active_responses = (0..64).map(|i| ActiveResponse { rule: format!("respond:{i}"), ..next.active_responses[0].clone() }).collect();
        full.acknowledged_alerts = (0..128).map(|i| AcknowledgedAlert { rule: format!("respond:{i}"), ..next.acknowledged_alerts[0].clone() }).collect();
        policies.patch_status("acme", &operator, &Patch::Apply(status_patch(&full))).await?;
        let back = policies.get_status("acme").await?.status.ok_or("no status")?;
        ensure!(back.active_responses.len() == 64 && back.acknowledged_alerts.len() == 128, "a full status did not read back");
        for (field, over) in [("activeResponses", 65usize), ("acknowledgedAlerts", 129)] {
            let mut too_many = full.clone();
            if field == "activeResponses" {
                too_many.active_responses.push(too_many.active_responses[0].clone());
            } else {
                too_many.acknowledged_alerts.push(too_many.acknowledged_alerts[0].clone());
            }
            match policies.patch_status("acme", &operator, &Patch::Apply(status_patch(&too_many))).await {
                Ok(_) => return Err(format!("{over} {field} accepted").into()),
                Err(kube::Error::Api(s)) => {
                    eprintln!("{over} {field} -> {} {}: {}", s.code, s.reason, s.message);
                    ensure!(s.message.contains(&format!("status.{field}")) && s.message.contains(&format!("must have at most {} items", over - 1)), "unexpected: {}", s.message);
                }
                Err(e) => return Err(e.into()),
            }
        }
        policies.patch_status("acme", &operator, &Patch::Apply(status_patch(&next))).await?;

        let mut both = next.clone();
        both.active_responses[0].until_acknowledged = true;
        match policies.patch_status("acme", &operator, &Patch::Apply(status_patch(&both))).await {
            Ok(_) => return Err("active response with expires and untilAcknowledged accepted".into()),
            Err(kube::Error::Api(s)) => {
                eprintln!("expires+untilAcknowledged -> {} {}: {}", s.code, s.reason, s.message);
                ensure!(s.message.contains("an active response has either expires or untilAcknowledged"), "unexpected: {}", s.message);
            }
            Err(e) => return Err(e.into()),
        }

        // SbcFleet status too.
        let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), &ns);
        fleets.create(&PostParams::default(), &sample_fleet_selector("edge")).await?;
        let fleet_status = json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "SbcFleet", "status": {"observedGeneration": 1, "targets": 4, "ready": 3}});
        fleets.patch_status("edge", &operator, &Patch::Apply(fleet_status)).await?;
        let back = fleets.get_status("edge").await?.status.ok_or("no fleet status")?;
        ensure!(back.targets == 4 && back.ready == 3, "fleet status: {back:?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn kubectl_explain_shows_descriptions() {
    in_namespace("explain", |_client, _ns| async move {
        // kubectl goes through discovery and OpenAPI, which may lag the CRD a moment.
        let mut last = String::new();
        for _ in 0..20 {
            let out = std::process::Command::new("kubectl")
                .args(["explain", "tollpolicy.spec.policy"])
                .output()
                .map_err(|e| format!("cannot run kubectl: {e}"))?;
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success()
                && last.contains("The compiled policy")
                && last.contains("emergencyNumbers")
                && last.contains("Emergency numbers of the home country")
            {
                return Ok(());
            }
            last.push_str(&String::from_utf8_lossy(&out.stderr));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(format!("kubectl explain tollpolicy.spec.policy lacks descriptions:\n{last}").into())
    })
    .await;
}
