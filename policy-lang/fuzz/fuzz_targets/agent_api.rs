//! The agent's HTTP request: the first line is a path, the rest a body.
//! Arbitrary bytes never panic the router or the request readers; a path the
//! router accepts names the same route when written back (`Route::path`);
//! `tenant_ok` decides every tenant segment without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_agent_api::paths::Route;
use tollgate_agent_api::{BatchRequest, BlockRequest, CommitRequest, RevisionRequest};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (path, body) = data.split_at(split);
    let path = String::from_utf8_lossy(path);
    if let Some(r) = Route::parse(&path) {
        let again = r.path();
        assert_eq!(Route::parse(&again), Some(r), "{path:?} -> {again:?}");
        if let Route::Tenant(t) | Route::Stage(t) | Route::Commit(t) = r {
            let _ = tollgate_agent_api::tenant_ok(t);
        }
    }
    let body = body.get(1..).unwrap_or_default();
    let _ = RevisionRequest::from_json(body);
    let _ = BatchRequest::from_json(body);
    let _ = CommitRequest::from_json(body);
    let _ = BlockRequest::from_json(body);
});
