//! The SBC agent's HTTP contract (docs/agent.md, "API"), defined once for
//! the agent (`tollgate-agent`, the server), the operator's client
//! (`tollgate_operator::controller::agents`) and the test double
//! (`tollgate_testkit::fake_agent`): the paths ([`paths`]), the request
//! bodies ([`RevisionRequest`], [`CommitRequest`], [`BlockRequest`]), the
//! answers ([`ApplyAnswer`], [`StageAnswer`], [`StateAnswer`],
//! [`BlocksAnswer`], [`Health`]) and the errors with their HTTP statuses
//! ([`ApiError`], [`ErrorKind`], [`ErrorBody`]).
//!
//! The JSON is what the agent wrote before these types existed, byte for
//! byte in its pretty form: the fields are declared in the order
//! `serde_json` sorted them then (alphabetical), and the tests pin it. The
//! scripts (`scripts/test-agent.sh`, `test-operator.sh`, …) read it with
//! `jq` and `grep`.
//!
//! Answers are read leniently (`#[serde(default)]`): an agent that leaves a
//! field out (an older agent, the test double) still gives a usable answer.
//! No HTTP library here: statuses are `u16`.

pub mod paths;

mod answers;
mod error;
mod requests;

pub use answers::{
    ApplyAnswer, ApplyTimings, BatchAnswer, BatchTenant, BlocksAnswer, FleetCounting, FleetMode,
    Health, HealthStatus, KAMAILIO_REACHABLE, StageAnswer, StageTimings, StateAnswer, StateSummary,
    TenantView,
};
pub use error::{ApiError, ErrorBody, ErrorKind, REJECTED};
pub use requests::{BatchChange, BatchRequest, BlockRequest, CommitRequest, RevisionRequest};

/// Request bodies above this are refused with 413 ([`ApiError::TooLarge`]).
/// A compiled policy takes about 180 bytes of JSON per destination range
/// with its source map (a tenant of 100,000 ranges: 18 MB), so one request
/// carries about 1.4 million ranges; only an authenticated caller gets this
/// far.
pub const MAX_BODY: usize = 256 << 20;

/// The content type of every answer but `/metrics`'.
pub const JSON: &str = "application/json";

/// The content type of `/metrics` (Prometheus text format).
pub const METRICS_TEXT: &str = "text/plain; version=0.0.4";

/// The bytes the agent sends for a JSON answer: pretty-printed, with a
/// final newline (the scripts `grep` for `"revision": "acme-r1"`).
pub fn to_body<T: serde::Serialize>(answer: &T) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(answer).unwrap_or_default();
    text.push(b'\n');
    text
}

/// A valid tenant path segment (the renderer checks the policy's own name):
/// 1–63 of `a-z`, `0-9`, `-`.
pub fn tenant_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 63
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests;
