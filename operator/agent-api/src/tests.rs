//! The wire format, pinned: each type serializes to the bytes the agent's
//! `json!` values gave before (pretty, keys sorted), and reads back.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::paths::{self, Route, state_filter};
use super::*;

/// `typed` gives the exact bytes of `old` (the agent's former `json!`
/// value, pretty-printed as it was sent) and reads back to itself.
fn pinned<T>(typed: &T, old: Value)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut want = serde_json::to_vec_pretty(&old).unwrap();
    want.push(b'\n');
    assert_eq!(
        String::from_utf8(to_body(typed)).unwrap(),
        String::from_utf8(want).unwrap()
    );
    let back: T = serde_json::from_slice(&to_body(typed)).unwrap();
    assert_eq!(&back, typed);
}

fn apply_answer() -> ApplyAnswer {
    ApplyAnswer {
        bundle_hash: "b".into(),
        deleted: false,
        enforced_unix_ms: 1_700_000_000_300,
        live_end_unix_ms: 1_700_000_000_400,
        live_start_unix_ms: 1_700_000_000_100,
        probes: 12,
        readback_hash: Some("rb".into()),
        reloaded: vec!["mtree.reload".into(), "htable.reload tg_tenant".into()],
        revalidated: None,
        revision: Some("acme-r1".into()),
        rows_hash: Some("rows".into()),
        staged: None,
        tenant: "acme".into(),
        timings_ms: ApplyTimings {
            checks: 1.5,
            readback: 2.25,
            reload: 3.0,
            swap: 0.5,
            swap_reload_readback: 5.75,
            total: 20.125,
            trial: 10.0,
            trial_start: 7,
            trial_warm: true,
        },
    }
}

/// The agent's `json!` of a PUT's answer (`commit_locked`), as it was.
fn old_apply_json(a: &ApplyAnswer) -> Value {
    let t = &a.timings_ms;
    json!({
        "tenant": a.tenant,
        "deleted": a.deleted,
        "revision": a.revision,
        "rowsHash": a.rows_hash,
        "readbackHash": a.readback_hash,
        "bundleHash": a.bundle_hash,
        "probes": a.probes,
        "timingsMs": {
            "checks": t.checks,
            "trialStart": t.trial_start as u128,
            "trialWarm": t.trial_warm,
            "trial": t.trial,
            "swap": t.swap,
            "reload": t.reload,
            "readback": t.readback,
            "swapReloadReadback": t.swap_reload_readback,
            "total": t.total,
        },
        "liveStartUnixMs": a.live_start_unix_ms,
        "enforcedUnixMs": a.enforced_unix_ms,
        "liveEndUnixMs": a.live_end_unix_ms,
        "reloaded": a.reloaded,
    })
}

#[test]
fn apply_answer_is_the_old_json() {
    let a = apply_answer();
    pinned(&a, old_apply_json(&a));
    // a removal
    let d = ApplyAnswer {
        deleted: true,
        revision: None,
        rows_hash: None,
        readback_hash: None,
        ..apply_answer()
    };
    let old = old_apply_json(&d);
    assert_eq!(old["revision"], Value::Null);
    pinned(&d, old);
}

#[test]
fn commit_answer_adds_staged_and_revalidated() {
    let c = ApplyAnswer {
        staged: Some(true),
        revalidated: Some(false),
        ..apply_answer()
    };
    let mut old = old_apply_json(&c);
    old["staged"] = json!(true);
    old["revalidated"] = json!(false);
    pinned(&c, old);
}

#[test]
fn stage_answer_is_the_old_json() {
    let s = StageAnswer {
        bundle_hash: "b".into(),
        probes: 3,
        revision: "acme-r2".into(),
        staged: true,
        tenant: "acme".into(),
        timings_ms: StageTimings {
            checks: 1.0,
            total: 9.5,
            trial: 8.0,
            trial_start: 4,
            trial_warm: false,
        },
    };
    let old = json!({
        "tenant": "acme",
        "revision": "acme-r2",
        "staged": true,
        "bundleHash": "b",
        "probes": 3,
        "timingsMs": {
            "checks": 1.0,
            "trialStart": 4u128,
            "trialWarm": false,
            "trial": 8.0,
            "total": 9.5,
        },
    });
    pinned(&s, old);
}

#[test]
fn state_answer_is_the_old_json() {
    let mut tenants = BTreeMap::new();
    tenants.insert(
        "acme".to_string(),
        TenantView {
            applied_at: "2026-11-25T05:45:00Z".into(),
            consistent: true,
            readback_hash: Some("h".into()),
            rendered_hash: Some("h".into()),
            revision: "acme-r1".into(),
            rows_hash: "r".into(),
            shard: None,
        },
    );
    tenants.insert(
        "globex".to_string(),
        TenantView {
            applied_at: "2026-11-25T05:46:00Z".into(),
            consistent: false,
            readback_hash: None,
            rendered_hash: Some("g".into()),
            revision: "globex-r1".into(),
            rows_hash: "s".into(),
            shard: None,
        },
    );
    let s = StateAnswer {
        blocks: [
            ("acme::premium-rate".to_string(), 0),
            ("globex".into(), 1_800_000_000),
        ]
        .into_iter()
        .collect(),
        bundle_hash: "bh".into(),
        kamailio: KAMAILIO_REACHABLE.into(),
        last_error: None,
        tenants,
        unexpected_tenants: vec!["initech".into()],
    };
    let mut old_tenants = serde_json::Map::new();
    for (t, v) in &s.tenants {
        old_tenants.insert(
            t.clone(),
            json!({
                "revision": v.revision,
                "rowsHash": v.rows_hash,
                "renderedHash": v.rendered_hash,
                "readbackHash": v.readback_hash,
                "consistent": v.consistent,
                "appliedAt": v.applied_at,
            }),
        );
    }
    let old = json!({
        "tenants": old_tenants,
        "bundleHash": "bh",
        "blocks": s.blocks,
        "kamailio": json!("reachable"),
        "unexpectedTenants": ["initech"],
        "lastError": null,
    });
    pinned(&s, old);
    assert!(s.tenants["acme"].confirmed());
    assert!(!s.tenants["globex"].confirmed());
    // Kamailio down, an error recorded
    let down = StateAnswer {
        kamailio: "connection refused".into(),
        last_error: Some("reload failed".into()),
        ..StateAnswer::default()
    };
    let old = json!({
        "tenants": {}, "bundleHash": "", "blocks": {}, "kamailio": "connection refused",
        "unexpectedTenants": [], "lastError": "reload failed",
    });
    pinned(&down, old);
}

#[test]
fn a_partial_state_reads_with_defaults() {
    // the test double's (and an older agent's) answer lacks some fields
    let s: StateAnswer = serde_json::from_value(json!({
        "tenants": {"acme": {"revision": "1@x", "renderedHash": "h", "readbackHash": "h",
                             "consistent": true}},
        "lastError": "boom"}))
    .unwrap();
    assert!(s.tenants["acme"].confirmed());
    assert_eq!(s.last_error.as_deref(), Some("boom"));
    assert!(s.blocks.is_empty());
    let a: ApplyAnswer = serde_json::from_str(r#"{"revision": "r", "readbackHash": "h"}"#).unwrap();
    assert_eq!(a.revision.as_deref(), Some("r"));
    assert_eq!(a.revalidated, None);
}

#[test]
fn blocks_and_health_are_the_old_json() {
    let b = BlocksAnswer {
        blocks: [("acme".to_string(), 0)].into_iter().collect(),
    };
    pinned(&b, json!({"blocks": {"acme": 0}}));
    pinned(&Health::ok(), json!({"status": "ok"}));
    let h = Health::unhealthy("kamailio: connection refused");
    pinned(
        &h,
        json!({"status": "unhealthy", "reason": "kamailio: connection refused"}),
    );
    assert_eq!((Health::ok().http_status(), h.http_status()), (200, 503));
}

#[test]
fn health_with_fleet_counting() {
    let h = Health::ok().with_fleet(Some(FleetCounting {
        changed_unix: 1_796_600_000,
        members: 3,
        mode: FleetMode::Degraded,
    }));
    pinned(
        &h,
        json!({"status": "ok", "fleet": {"changedUnix": 1_796_600_000, "members": 3, "mode": "degraded"}}),
    );
    // degraded counting is not unhealthy
    assert_eq!(h.http_status(), 200);
    // an older agent's answer (no `fleet`) reads as none
    let old: Health = serde_json::from_value(json!({"status": "ok"})).unwrap();
    assert_eq!(old.fleet, None);
    let m: FleetMode = serde_json::from_value(json!("fleet")).unwrap();
    assert_eq!(m, FleetMode::Fleet);
}

#[test]
fn errors_are_the_old_json_with_their_statuses() {
    let cases: Vec<(ApiError, u16, Value)> = vec![
        (
            ApiError::Rejected(vec!["a".into(), "b".into()]),
            422,
            json!({"error": "rejected; the previous state stays in force", "reasons": ["a", "b"]}),
        ),
        (
            ApiError::NotFound("no tenant `acme`".into()),
            404,
            json!({"error": "no tenant `acme`"}),
        ),
        (
            ApiError::NoSuchEndpoint,
            404,
            json!({"error": "no such endpoint"}),
        ),
        (
            ApiError::Failed("boom".into()),
            500,
            json!({"error": "boom"}),
        ),
        (
            ApiError::Conflict("nothing is staged for tenant `acme`".into()),
            409,
            json!({"error": "nothing is staged for tenant `acme`"}),
        ),
        (
            ApiError::TooLarge(MAX_BODY),
            413,
            json!({"error": "request body over 268435456 bytes"}),
        ),
        (
            ApiError::Unauthorized,
            401,
            json!({"error": "unauthorized"}),
        ),
        (
            ApiError::MethodNotAllowed,
            405,
            json!({"error": "method not allowed"}),
        ),
        (
            ApiError::MissingRevision,
            400,
            json!({"error": "`revision` (a string) is required"}),
        ),
        (
            ApiError::MissingPolicy,
            400,
            json!({"error": "`policy` is required"}),
        ),
        (
            ApiError::MissingBlockKey,
            400,
            json!({"error": "`key` (tenant or tenant::class) is required"}),
        ),
        (
            ApiError::BadExpires,
            400,
            json!({"error": "`expires` must be epoch seconds (0 = until lifted)"}),
        ),
        (
            ApiError::BadTenant,
            400,
            json!({"error": "bad tenant name in the path"}),
        ),
        (
            ApiError::BadStateQuery,
            400,
            json!({"error": "the only query of /v1/state is tenant=<tenant name>"}),
        ),
    ];
    for (e, status, old) in cases {
        assert_eq!(e.status(), status, "{e:?}");
        assert_eq!(ErrorKind::from_status(status), Some(e.kind()));
        pinned(&e.body(), old);
    }
    for k in ErrorKind::ALL {
        assert_eq!(ErrorKind::from_status(k.status()), Some(k));
    }
    assert_eq!(ErrorKind::from_status(502), None);
    assert_eq!(ErrorKind::from_status(200), None);
}

#[test]
fn error_messages_for_clients() {
    let rej = json!({"error": "rejected", "reasons": ["a", "b"]}).to_string();
    assert_eq!(ErrorBody::message_of(rej.as_bytes()), "rejected; a; b");
    assert_eq!(ErrorBody::message_of(b"{\"error\": \"x\"}"), "x");
    assert_eq!(ErrorBody::message_of(b"not json"), "not json");
    assert_eq!(ErrorBody::message_of(b"{}"), "");
}

#[test]
fn requests_are_the_old_json() {
    let r = RevisionRequest {
        policy: json!({"tenant": "acme"}),
        revision: "1@sha256:00".into(),
    };
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        json!({"revision": "1@sha256:00", "policy": {"tenant": "acme"}}).to_string()
    );
    let c = CommitRequest {
        revision: "1@x".into(),
    };
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        json!({"revision": "1@x"}).to_string()
    );
    let b = BlockRequest {
        expires: 5,
        key: "acme::premium-rate".into(),
    };
    assert_eq!(
        serde_json::to_string(&b).unwrap(),
        json!({"key": "acme::premium-rate", "expires": 5}).to_string()
    );
    assert_eq!(
        BlockRequest::from_json(&serde_json::to_vec(&b).unwrap()),
        Ok(b)
    );
    assert_eq!(
        CommitRequest::from_json(&serde_json::to_vec(&c).unwrap()),
        Ok(c)
    );
}

fn policy_json() -> Value {
    json!({
        "tenant": "acme", "homeCountry": "US", "numberingPlan": "", "emergencyNumbers": ["911"],
        "destinations": [], "classes": [], "sources": {"networks": []}, "windows": [],
        "limits": [], "responses": [], "crypto": {"requireTls": false, "requireSrtp": false,
        "requireClientCertificate": false}, "rules": []
    })
}

#[test]
fn revision_bodies_are_read_with_the_agents_errors() {
    let ok = json!({"revision": "acme-r1", "policy": policy_json()}).to_string();
    let r = RevisionRequest::from_json(ok.as_bytes()).unwrap();
    assert_eq!(
        (r.revision.as_str(), r.policy.tenant.as_str()),
        ("acme-r1", "acme")
    );
    // a borrowed policy serializes as the owned one and reads back
    let sent = serde_json::to_vec(&RevisionRequest {
        policy: &r.policy,
        revision: r.revision.clone(),
    })
    .unwrap();
    assert_eq!(RevisionRequest::from_json(&sent), Ok(r));
    let err = |body: &str| RevisionRequest::from_json(body.as_bytes()).unwrap_err();
    assert!(matches!(err("{"), ApiError::MalformedJson(m) if m.contains("EOF")));
    assert_eq!(err("{}"), ApiError::MissingRevision);
    assert_eq!(err("[]"), ApiError::MissingRevision);
    assert_eq!(
        err(r#"{"revision": 1, "policy": {}}"#),
        ApiError::MissingRevision
    );
    assert_eq!(err(r#"{"revision": "r"}"#), ApiError::MissingPolicy);
    match err(r#"{"revision": "r", "policy": {"tenant": 1}}"#) {
        e @ ApiError::Rejected(_) => {
            assert_eq!(e.status(), 422);
            let reasons = e.body().reasons.unwrap();
            assert!(reasons[0].starts_with("malformed policy: "), "{reasons:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn block_and_commit_bodies_are_read_with_the_agents_errors() {
    let b = |s: &str| BlockRequest::from_json(s.as_bytes());
    assert_eq!(
        b(r#"{"key": "acme"}"#),
        Ok(BlockRequest {
            expires: 0,
            key: "acme".into()
        })
    );
    assert_eq!(b(r#"{"key": "acme", "expires": null}"#).unwrap().expires, 0);
    assert_eq!(b(r#"{"key": "acme", "expires": -1}"#).unwrap().expires, -1);
    assert_eq!(b(r#"{"expires": 0}"#), Err(ApiError::MissingBlockKey));
    assert_eq!(
        b(r#"{"key": "acme", "expires": "soon"}"#),
        Err(ApiError::BadExpires)
    );
    assert_eq!(
        b(r#"{"key": "acme", "expires": 1.5}"#),
        Err(ApiError::BadExpires)
    );
    assert!(matches!(b("x"), Err(ApiError::MalformedJson(_))));
    assert_eq!(
        CommitRequest::from_json(b"{}"),
        Err(ApiError::MissingRevision)
    );
}

#[test]
fn routes_and_paths() {
    for (path, route) in [
        ("/healthz", Route::Healthz),
        ("/metrics", Route::Metrics),
        ("/v1/state", Route::State),
        ("/v1/state/summary", Route::StateSummary),
        ("/v1/tenants/acme", Route::Tenant("acme")),
        ("/v1/tenants/acme/stage", Route::Stage("acme")),
        ("/v1/tenants/acme/commit", Route::Commit("acme")),
        ("/v1/blocks", Route::Blocks),
        (
            "/v1/blocks/acme::premium-rate",
            Route::Block("acme::premium-rate"),
        ),
    ] {
        assert_eq!(Route::parse(path), Some(route), "{path}");
        assert_eq!(route.path(), path);
    }
    assert_eq!(paths::tenant("acme"), "/v1/tenants/acme");
    assert_eq!(paths::state_of("acme"), "/v1/state?tenant=acme");
    for unknown in [
        "/",
        "/v1",
        "/v1/tenants",
        "/v1/tenants/a/b",
        "/v2/state",
        "/healthz/x",
    ] {
        assert_eq!(Route::parse(unknown), None, "{unknown}");
    }
}

#[test]
fn tenant_names() {
    assert!(tenant_ok("acme"));
    assert!(tenant_ok("acme-open"));
    assert!(!tenant_ok("../x"));
    assert!(!tenant_ok(""));
    assert!(!tenant_ok("a:b"));
    assert!(!tenant_ok(&"a".repeat(64)));
}

#[test]
fn state_query() {
    assert_eq!(state_filter(None), Ok(None));
    assert_eq!(state_filter(Some("")), Ok(None));
    assert_eq!(state_filter(Some("tenant=acme")), Ok(Some("acme".into())));
    for bad in ["tenant=../x", "tenant=", "other=1", "tenant=a&tenant=b"] {
        assert_eq!(
            state_filter(Some(bad)),
            Err(ApiError::BadStateQuery),
            "{bad}"
        );
    }
}

#[test]
fn batch_bodies_are_read_with_their_own_errors() {
    let b = BatchRequest::from_json(br#"{"changes": [{"tenant": "acme", "delete": true}]}"#)
        .expect("a delete");
    assert_eq!(b.changes.len(), 1);
    assert!(b.changes[0].delete && b.changes[0].policy.is_none());
    for (body, kind) in [
        (&b"{}"[..], ErrorKind::BadRequest),
        (br#"{"changes": {}}"#, ErrorKind::BadRequest),
        (br#"{"changes": [{"delete": true}]}"#, ErrorKind::BadRequest),
        (
            br#"{"changes": [{"tenant": "Bad Name", "delete": true}]}"#,
            ErrorKind::BadRequest,
        ),
        (
            br#"{"changes": [{"tenant": "a", "delete": true}, {"tenant": "a", "delete": true}]}"#,
            ErrorKind::BadRequest,
        ),
        (
            br#"{"changes": [{"tenant": "a", "revision": "r"}]}"#,
            ErrorKind::BadRequest,
        ),
        (
            br#"{"changes": [{"tenant": "a", "policy": {}}]}"#,
            ErrorKind::BadRequest,
        ),
        (
            br#"{"changes": [{"tenant": "a", "revision": "r", "policy": {"x": 1}}]}"#,
            ErrorKind::Rejected,
        ),
    ] {
        let e = BatchRequest::from_json(body).expect_err("refused");
        assert_eq!(e.kind(), kind, "{}: {e}", String::from_utf8_lossy(body));
    }
    assert_eq!(Route::parse("/v1/batch"), Some(Route::Batch));
    assert_eq!(Route::Batch.path(), paths::BATCH);
}
