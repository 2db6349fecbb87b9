//! Talking to the SBC agents (`docs/agent.md`): the [`AgentApi`] trait (a
//! fake in unit tests) and its HTTP implementation [`HttpAgents`].
//!
//! The revision label the operator sends is `<number>@sha256:<hex>`
//! ([`revision_label`]); the agent stores it verbatim and reports it back
//! in `GET /v1/state`, which is how the operator learns what a target holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tollgate_agent_api::paths;
use tollgate_agent_api::{
    ApplyAnswer, BatchAnswer, BatchChange, BatchRequest, BlockRequest, CommitRequest, ErrorBody,
    ErrorKind, FleetCounting, Health, RevisionRequest, StageAnswer, StateAnswer,
};
use tollgate_ir::CompiledPolicy;

use tollgate_rollout::{ApplyResult, RevisionRef};

pub mod summaries;
use summaries::{Lookup, Summaries};

/// Longest message kept from an agent's answer.
pub const MAX_MESSAGE: usize = 1024;
/// Largest answer body read from an agent.
const MAX_ANSWER: usize = 16 << 20;

/// Why a call to an agent gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentCallError {
    /// The request could not be built.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No connection or no answer (the error and its sources).
    #[error("{0}")]
    Transport(String),
    /// The answer's body could not be read.
    #[error("reading the answer: {0}")]
    Reading(String),
    /// No answer within the timeout (seconds).
    #[error("no answer within {0} s")]
    Timeout(u64),
    /// An answer with another status than expected.
    #[error("{call} answered {status}: {message}")]
    Status {
        /// Method and path, e.g. `GET /v1/state`.
        call: &'static str,
        /// The HTTP status.
        status: u16,
        /// The agent's error message (or reason).
        message: String,
    },
    /// A 200 whose body is not the expected JSON.
    #[error("{call}: {message}")]
    Unreadable {
        /// Method and path.
        call: &'static str,
        /// The parser's message.
        message: String,
    },
}

/// What a target's agent reports for one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TenantState {
    /// The revision it holds, only when its read-back confirms it
    /// (`consistent` and `readbackHash == renderedHash`).
    pub applied: Option<RevisionRef>,
    /// The agent's `lastError`.
    pub last_error: Option<String>,
    /// The tenant's blocks the agent holds (`blocks` of `GET /v1/state`,
    /// keys `<tenant>` and `<tenant>::<class>`): key → expiry in epoch
    /// seconds, 0 = until lifted. Expired entries may still be listed.
    pub blocks: BTreeMap<String, i64>,
}

/// `true` if `key` is `tenant` or `tenant::<class>`.
pub fn block_key_of(key: &str, tenant: &str) -> bool {
    key == tenant
        || key
            .strip_prefix(tenant)
            .is_some_and(|rest| rest.starts_with("::"))
}

/// An agent to talk to: base URL and bearer token.
#[derive(Clone)]
pub struct AgentTarget {
    /// `http://host:port`.
    pub url: String,
    /// Bearer token (never logged: `Debug` hides it).
    pub token: Option<String>,
}

impl std::fmt::Debug for AgentTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTarget")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The agent operations the reconciler uses.
pub trait AgentApi: Send + Sync + 'static {
    /// `GET /v1/state`, reduced to `tenant`. `Err`: no usable answer.
    fn state<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<TenantState, AgentCallError>>;

    /// What the target holds of `tenant`, as [`AgentApi::state`] says;
    /// `known`: the revisions the caller can name (its desired, current
    /// and last good ones), which lets an implementation answer from a
    /// summary of every tenant it keeps ([`HttpAgents::with_summaries`]).
    fn state_among<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
        known: &'a [RevisionRef],
    ) -> BoxFuture<'a, Result<TenantState, AgentCallError>> {
        let _ = known;
        self.state(target, tenant)
    }

    /// `PUT /v1/tenants/{tenant}` with the revision.
    fn apply<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
        revision: &'a RevisionRef,
        policy: &'a CompiledPolicy,
    ) -> BoxFuture<'a, ApplyResult>;

    /// `POST /v1/tenants/{tenant}/stage` with the revision: the agent checks
    /// it as a PUT does (render, own checks, trial start, probes) without
    /// touching the live SBC, and keeps it for [`AgentApi::commit`].
    fn stage<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
        revision: &'a RevisionRef,
        policy: &'a CompiledPolicy,
    ) -> BoxFuture<'a, StageResult>;

    /// `POST /v1/tenants/{tenant}/commit` `{"revision"}`: the agent applies
    /// the revision it staged (swap, reload, read back, persist).
    fn commit<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
        revision: &'a RevisionRef,
    ) -> BoxFuture<'a, CommitResult>;

    /// `DELETE /v1/tenants/{tenant}` (404, already absent, is success).
    fn remove<'a>(&'a self, target: &'a AgentTarget, tenant: &'a str)
    -> BoxFuture<'a, ApplyResult>;

    /// `POST /v1/batch`: several tenants' changes as one validated batch
    /// (one trial, one write, one reload per touched shard; all or
    /// nothing). At most one item per tenant.
    fn batch<'a>(
        &'a self,
        target: &'a AgentTarget,
        items: &'a [BatchItem],
    ) -> BoxFuture<'a, BatchResult>;

    /// `PUT /v1/blocks` `{"key", "expires"}` (epoch seconds, 0 = until
    /// lifted). `Err`: the agent did not set it (the message).
    fn put_block<'a>(
        &'a self,
        target: &'a AgentTarget,
        key: &'a str,
        expires: i64,
    ) -> BoxFuture<'a, Result<(), AgentCallError>>;

    /// `DELETE /v1/blocks/{key}` (404, already absent, is success).
    fn delete_block<'a>(
        &'a self,
        target: &'a AgentTarget,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), AgentCallError>>;

    /// `GET /healthz` (no token is sent: the endpoint needs none). `Ok`:
    /// 200, with the SBC's fleet-wide counting when it counts over its
    /// fleet; `Err`: why not (no answer, or the status and reason).
    fn health<'a>(
        &'a self,
        target: &'a AgentTarget,
    ) -> BoxFuture<'a, Result<Option<FleetCounting>, AgentCallError>>;
}

/// The answer to a stage (`POST /v1/tenants/{tenant}/stage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageResult {
    /// The agent checked the revision and keeps it: commit it.
    Staged,
    /// 404 or 405: an agent that predates staged applies; send a PUT.
    Unsupported {
        /// The status it answered.
        status: u16,
    },
    /// Refused (422 …) or no usable answer: the target's outcome, mapped as
    /// a PUT's answer would be (never [`ApplyResult::Ok`]).
    Failed(ApplyResult),
}

/// The answer to a commit (`POST /v1/tenants/{tenant}/commit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitResult {
    /// The outcome, mapped as a PUT's answer (a 200 confirms the revision).
    Done(ApplyResult),
    /// A 200 (the outcome, as [`CommitResult::Done`]'s) after the agent
    /// checked the revision again first (`"revalidated": true`: its state
    /// changed since the stage, e.g. another tenant's apply or stage), so
    /// the commit took as long as a PUT.
    Rechecked(ApplyResult),
    /// 409: the revision is not staged there (the agent restarted since the
    /// stage, or its stage was replaced); also 404/405, an agent that no
    /// longer knows commits (replaced by an older one since the stage).
    /// Nothing was applied: send a PUT.
    NotStaged {
        /// The status it answered.
        status: u16,
        /// The agent's `error`.
        message: String,
    },
}

/// One tenant's change in an [`AgentApi::batch`].
#[derive(Clone, Debug)]
pub struct BatchItem {
    /// The tenant.
    pub tenant: String,
    /// The revision to apply and its content; `None`: remove the tenant.
    pub change: Option<(RevisionRef, Arc<CompiledPolicy>)>,
}

/// The answer to a batch (`POST /v1/batch`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchResult {
    /// 200: each item's outcome, in the order of the items (mapped as a
    /// PUT's or DELETE's answer).
    Done(Vec<ApplyResult>),
    /// Nothing was applied, and the items may fare otherwise one by one:
    /// the agent refused a candidate (422; the whole batch with it), the
    /// batch was too large (413), or the agent has no batches (404/405).
    Split {
        /// The status it answered.
        status: u16,
        /// The agent's `error` and `reasons`.
        message: String,
    },
    /// No usable answer, or the apply failed (500: the agent restored its
    /// previous state): every item's outcome.
    Failed(ApplyResult),
}

/// Maps a batch's answer to a [`BatchResult`]. `items`: the ones sent.
pub fn batch_result(status: StatusCode, body: &[u8], items: &[BatchItem]) -> BatchResult {
    match status.as_u16() {
        200 => {
            let a = serde_json::from_slice::<BatchAnswer>(body).unwrap_or_default();
            BatchResult::Done(
                items
                    .iter()
                    .map(|i| {
                        let held = a.tenants.get(&i.tenant);
                        match &i.change {
                            None if held.is_some_and(|t| t.deleted) => ApplyResult::Ok {
                                hash: String::new(),
                            },
                            // as for a PUT: the agent read back what it rendered;
                            // check it reports the revision sent
                            Some((r, _))
                                if held.is_some_and(|t| {
                                    t.revision.as_deref() == Some(revision_label(r).as_str())
                                        && t.readback_hash.is_some()
                                }) =>
                            {
                                ApplyResult::Ok {
                                    hash: r.hash.clone(),
                                }
                            }
                            _ => ApplyResult::Ok {
                                hash: format!(
                                    "unconfirmed: agent reports revision {:?}",
                                    held.and_then(|t| t.revision.as_deref())
                                ),
                            },
                        }
                    })
                    .collect(),
            )
        }
        404 | 405 | 413 | 422 => BatchResult::Split {
            status: status.as_u16(),
            message: error_message(body),
        },
        _ => BatchResult::Failed(apply_result(status, body, None)),
    }
}

/// `<number>@<hash>`, what the agent stores as the tenant's revision.
pub fn revision_label(r: &RevisionRef) -> String {
    format!("{}@{}", r.number, r.hash)
}

/// The inverse of [`revision_label`]; `None` for anything else (e.g. a
/// revision applied by hand).
pub fn parse_revision_label(s: &str) -> Option<RevisionRef> {
    let (n, hash) = s.split_once('@')?;
    let number: i64 = n.parse().ok()?;
    let hex = hash.strip_prefix("sha256:")?;
    if number < 1
        || hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    Some(RevisionRef {
        number,
        hash: hash.to_owned(),
    })
}

/// Reduces a `GET /v1/state` answer to one tenant.
pub fn tenant_state(body: &StateAnswer, tenant: &str) -> TenantState {
    let last_error = body.last_error.as_deref().map(|s| truncate(s, MAX_MESSAGE));
    let applied = body
        .tenants
        .get(tenant)
        .filter(|t| t.confirmed())
        .and_then(|t| parse_revision_label(&t.revision));
    let blocks = body
        .blocks
        .iter()
        .filter(|(k, _)| block_key_of(k, tenant))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    TenantState {
        applied,
        last_error,
        blocks,
    }
}

/// At most `max` characters.
pub fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The message of an error answer: `error` and `reasons`.
fn error_message(body: &[u8]) -> String {
    truncate(&ErrorBody::message_of(body), MAX_MESSAGE)
}

/// Maps an apply/remove answer to an [`ApplyResult`]. `expect`: the
/// revision sent (`None`: a removal).
pub fn apply_result(status: StatusCode, body: &[u8], expect: Option<&RevisionRef>) -> ApplyResult {
    match status.as_u16() {
        200 => match expect {
            None => ApplyResult::Ok {
                hash: String::new(),
            },
            Some(r) => {
                // A 200 means the agent read back what it rendered (docs/agent.md,
                // pipeline step 6); check it reports the revision we sent.
                let a = serde_json::from_slice::<ApplyAnswer>(body).unwrap_or_default();
                let got = a.revision.as_deref();
                if got == Some(revision_label(r).as_str()) && a.readback_hash.is_some() {
                    ApplyResult::Ok {
                        hash: r.hash.clone(),
                    }
                } else {
                    ApplyResult::Ok {
                        hash: format!("unconfirmed: agent reports revision {got:?}"),
                    }
                }
            }
        },
        404 if expect.is_none() => ApplyResult::Ok {
            hash: String::new(),
        },
        // Not evidence against the revision: the operator could not talk to
        // the agent (wrong token, not an agent, agent overloaded).
        401 | 403 | 404 | 408 | 429 | 502..=504 => ApplyResult::Unreachable {
            message: format!(
                "agent answered {status}: {}",
                truncate(&error_message(body), 900)
            ),
        },
        code => ApplyResult::Rejected {
            reason: match ErrorKind::from_status(code) {
                Some(ErrorKind::Rejected) => "Rejected",
                Some(ErrorKind::Failed) => "ReloadFailed",
                Some(ErrorKind::TooLarge) => "TooLarge",
                _ => "AgentError",
            }
            .to_owned(),
            message: error_message(body),
        },
    }
}

/// Maps a stage answer to a [`StageResult`]. `revision`: the one sent.
pub fn stage_result(status: StatusCode, body: &[u8], revision: &RevisionRef) -> StageResult {
    match status.as_u16() {
        200 => {
            let a = serde_json::from_slice::<StageAnswer>(body).ok();
            let staged = a.as_ref().is_some_and(|a| a.staged);
            let got = a.as_ref().map(|a| a.revision.as_str());
            if staged && got == Some(revision_label(revision).as_str()) {
                StageResult::Staged
            } else {
                // not what a stage answers: no evidence against the revision
                StageResult::Failed(ApplyResult::Unreachable {
                    message: format!(
                        "agent answered the stage 200 without staging it (staged {staged}, revision {got:?})"
                    ),
                })
            }
        }
        404 | 405 => StageResult::Unsupported {
            status: status.as_u16(),
        },
        _ => StageResult::Failed(apply_result(status, body, Some(revision))),
    }
}

/// Maps a commit answer to a [`CommitResult`]. `revision`: the one sent.
pub fn commit_result(status: StatusCode, body: &[u8], revision: &RevisionRef) -> CommitResult {
    match status.as_u16() {
        404 | 405 | 409 => CommitResult::NotStaged {
            status: status.as_u16(),
            message: error_message(body),
        },
        200 => {
            let result = apply_result(status, body, Some(revision));
            let a = serde_json::from_slice::<ApplyAnswer>(body).unwrap_or_default();
            if a.revalidated == Some(true) {
                CommitResult::Rechecked(result)
            } else {
                CommitResult::Done(result)
            }
        }
        _ => CommitResult::Done(apply_result(status, body, Some(revision))),
    }
}

/// [`AgentApi`] over HTTP/1 (hyper-util's pooled client, plain http).
#[derive(Clone, Debug)]
pub struct HttpAgents {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    apply_timeout: Duration,
    /// The agents' summaries, kept for [`AgentApi::state_among`]; `None`:
    /// every observation asks the agent for the tenant.
    summaries: Option<Arc<Summaries>>,
}

impl HttpAgents {
    /// `timeout`: connect and `GET /v1/state`; `apply_timeout`: PUT,
    /// DELETE, stage and commit (the agent trial-starts Kamailio: seconds).
    pub fn new(timeout: Duration, apply_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            timeout,
            apply_timeout,
            summaries: None,
        }
    }

    /// Observations answered from each agent's summary
    /// (`GET /v1/state/summary`), fetched at most once per `ttl` per agent
    /// and shared by every reconcile (`summaries`); a zero `ttl`: none.
    #[must_use]
    pub fn with_summaries(mut self, ttl: Duration) -> Self {
        self.summaries = (!ttl.is_zero()).then(|| Arc::new(Summaries::new(ttl)));
        self
    }

    /// `GET /v1/state/summary`, with `If-None-Match: etag` when a copy is
    /// kept ([`summaries::Fetched`]).
    async fn fetch_summary(
        &self,
        target: &AgentTarget,
        etag: Option<String>,
    ) -> Result<summaries::Fetched, AgentCallError> {
        let (status, tag, body) = self
            .request(
                target,
                Method::GET,
                paths::STATE_SUMMARY,
                None,
                self.timeout,
                etag.as_deref(),
            )
            .await?;
        match status {
            StatusCode::OK => serde_json::from_slice(&body)
                .map(|s| summaries::Fetched::Summary(s, tag))
                .map_err(|e| AgentCallError::Unreadable {
                    call: "GET /v1/state/summary",
                    message: e.to_string(),
                }),
            StatusCode::NOT_MODIFIED if etag.is_some() => Ok(summaries::Fetched::Unchanged),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Ok(summaries::Fetched::None),
            s => Err(AgentCallError::Status {
                call: "GET /v1/state/summary",
                status: s.as_u16(),
                message: error_message(&body),
            }),
        }
    }

    /// Writes an outcome on `tenant` into the kept summary of the agent.
    async fn note(
        &self,
        target: &AgentTarget,
        tenant: &str,
        result: &ApplyResult,
        to: Option<&RevisionRef>,
    ) {
        let Some(s) = &self.summaries else { return };
        match (result, to) {
            (ApplyResult::Ok { hash }, Some(r)) if *hash == r.hash => {
                s.applied(&target.url, tenant, Some(r)).await;
            }
            (ApplyResult::Ok { .. }, None) => s.applied(&target.url, tenant, None).await,
            _ => s.forget(&target.url).await,
        }
    }

    async fn call(
        &self,
        target: &AgentTarget,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), AgentCallError> {
        self.request(target, method, path, body, timeout, None)
            .await
            .map(|(status, _, body)| (status, body))
    }

    /// A request; the answer's status, `ETag` and body. `if_none_match`:
    /// the entity tag of the copy the caller keeps.
    async fn request(
        &self,
        target: &AgentTarget,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
        if_none_match: Option<&str>,
    ) -> Result<(StatusCode, Option<String>, Bytes), AgentCallError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", target.url))
            .header("accept", "application/json");
        if let Some(t) = &target.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(tag) = if_none_match {
            req = req.header("if-none-match", tag);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| AgentCallError::BadRequest(e.to_string()))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| AgentCallError::Transport(format!("{e}: {}", source_chain(&e))))?;
            let status = resp.status();
            let tag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| AgentCallError::Reading(e.to_string()))?
                .to_bytes();
            Ok((status, tag, bytes))
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(AgentCallError::Timeout(timeout.as_secs())),
        }
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

impl AgentApi for HttpAgents {
    fn state<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
    ) -> BoxFuture<'a, Result<TenantState, AgentCallError>> {
        Box::pin(async move {
            let (status, body) = self
                .call(
                    target,
                    Method::GET,
                    // only this tenant: the answer stays small however many
                    // tenants the SBC holds (an agent ignoring the query
                    // answers all, which `tenant_state` reduces)
                    &paths::state_of(tenant),
                    None,
                    self.timeout,
                )
                .await?;
            if status != StatusCode::OK {
                return Err(AgentCallError::Status {
                    call: "GET /v1/state",
                    status: status.as_u16(),
                    message: error_message(&body),
                });
            }
            let v: StateAnswer =
                serde_json::from_slice(&body).map_err(|e| AgentCallError::Unreadable {
                    call: "GET /v1/state",
                    message: e.to_string(),
                })?;
            Ok(tenant_state(&v, tenant))
        })
    }

    fn state_among<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
        known: &'a [RevisionRef],
    ) -> BoxFuture<'a, Result<TenantState, AgentCallError>> {
        Box::pin(async move {
            let Some(s) = &self.summaries else {
                return self.state(target, tenant).await;
            };
            match s
                .lookup(
                    &target.url,
                    |tag| self.fetch_summary(target, tag),
                    tenant,
                    known,
                )
                .await?
            {
                Lookup::State(st) => Ok(st),
                Lookup::Ask => self.state(target, tenant).await,
            }
        })
    }

    fn apply<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
        revision: &'a RevisionRef,
        policy: &'a CompiledPolicy,
    ) -> BoxFuture<'a, ApplyResult> {
        Box::pin(async move {
            let body = RevisionRequest {
                policy,
                revision: revision_label(revision),
            };
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let result = match self
                .call(
                    target,
                    Method::PUT,
                    &paths::tenant(tenant),
                    Some(body),
                    self.apply_timeout,
                )
                .await
            {
                Ok((status, body)) => apply_result(status, &body, Some(revision)),
                Err(e) => ApplyResult::Unreachable {
                    message: e.to_string(),
                },
            };
            self.note(target, tenant, &result, Some(revision)).await;
            result
        })
    }

    fn stage<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
        revision: &'a RevisionRef,
        policy: &'a CompiledPolicy,
    ) -> BoxFuture<'a, StageResult> {
        Box::pin(async move {
            let body = RevisionRequest {
                policy,
                revision: revision_label(revision),
            };
            let body = serde_json::to_vec(&body).unwrap_or_default();
            match self
                .call(
                    target,
                    Method::POST,
                    &paths::stage(tenant),
                    Some(body),
                    self.apply_timeout,
                )
                .await
            {
                Ok((status, body)) => stage_result(status, &body, revision),
                Err(e) => StageResult::Failed(ApplyResult::Unreachable {
                    message: e.to_string(),
                }),
            }
        })
    }

    fn commit<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
        revision: &'a RevisionRef,
    ) -> BoxFuture<'a, CommitResult> {
        Box::pin(async move {
            let body = serde_json::to_vec(&CommitRequest {
                revision: revision_label(revision),
            })
            .unwrap_or_default();
            let result = match self
                .call(
                    target,
                    Method::POST,
                    &paths::commit(tenant),
                    Some(body),
                    self.apply_timeout,
                )
                .await
            {
                Ok((status, body)) => commit_result(status, &body, revision),
                Err(e) => CommitResult::Done(ApplyResult::Unreachable {
                    message: e.to_string(),
                }),
            };
            match &result {
                CommitResult::Done(r) | CommitResult::Rechecked(r) => {
                    self.note(target, tenant, r, Some(revision)).await;
                }
                // nothing changed on the agent
                CommitResult::NotStaged { .. } => {}
            }
            result
        })
    }

    fn remove<'a>(
        &'a self,
        target: &'a AgentTarget,
        tenant: &'a str,
    ) -> BoxFuture<'a, ApplyResult> {
        Box::pin(async move {
            let result = match self
                .call(
                    target,
                    Method::DELETE,
                    &paths::tenant(tenant),
                    None,
                    self.apply_timeout,
                )
                .await
            {
                Ok((status, body)) => apply_result(status, &body, None),
                Err(e) => ApplyResult::Unreachable {
                    message: e.to_string(),
                },
            };
            self.note(target, tenant, &result, None).await;
            result
        })
    }

    fn batch<'a>(
        &'a self,
        target: &'a AgentTarget,
        items: &'a [BatchItem],
    ) -> BoxFuture<'a, BatchResult> {
        Box::pin(async move {
            let body = BatchRequest {
                changes: items
                    .iter()
                    .map(|i| BatchChange {
                        delete: i.change.is_none(),
                        policy: i.change.as_ref().map(|(_, p)| p.as_ref()),
                        revision: i.change.as_ref().map(|(r, _)| revision_label(r)),
                        tenant: i.tenant.clone(),
                    })
                    .collect(),
            };
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let result = match self
                .call(
                    target,
                    Method::POST,
                    paths::BATCH,
                    Some(body),
                    self.apply_timeout,
                )
                .await
            {
                Ok((status, body)) => batch_result(status, &body, items),
                Err(e) => BatchResult::Failed(ApplyResult::Unreachable {
                    message: e.to_string(),
                }),
            };
            match &result {
                BatchResult::Done(results) => {
                    for (i, r) in items.iter().zip(results) {
                        let to = i.change.as_ref().map(|(r, _)| r);
                        self.note(target, &i.tenant, r, to).await;
                    }
                }
                BatchResult::Failed(r) => self.note(target, "", r, None).await,
                // nothing changed on the agent
                BatchResult::Split { .. } => {}
            }
            result
        })
    }

    fn put_block<'a>(
        &'a self,
        target: &'a AgentTarget,
        key: &'a str,
        expires: i64,
    ) -> BoxFuture<'a, Result<(), AgentCallError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&BlockRequest {
                expires,
                key: key.to_owned(),
            })
            .unwrap_or_default();
            let answer = self
                .call(target, Method::PUT, paths::BLOCKS, Some(body), self.timeout)
                .await;
            if let Some(s) = &self.summaries {
                match &answer {
                    Ok((StatusCode::OK, _)) => s.blocked(&target.url, key, Some(expires)).await,
                    _ => s.forget(&target.url).await,
                }
            }
            let (status, body) = answer?;
            if status == StatusCode::OK {
                Ok(())
            } else {
                Err(AgentCallError::Status {
                    call: "PUT /v1/blocks",
                    status: status.as_u16(),
                    message: error_message(&body),
                })
            }
        })
    }

    fn delete_block<'a>(
        &'a self,
        target: &'a AgentTarget,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), AgentCallError>> {
        Box::pin(async move {
            let answer = self
                .call(
                    target,
                    Method::DELETE,
                    &paths::block(key),
                    None,
                    self.timeout,
                )
                .await;
            if let Some(s) = &self.summaries {
                match &answer {
                    Ok((StatusCode::OK | StatusCode::NOT_FOUND, _)) => {
                        s.blocked(&target.url, key, None).await;
                    }
                    _ => s.forget(&target.url).await,
                }
            }
            let (status, body) = answer?;
            if status == StatusCode::OK || status == StatusCode::NOT_FOUND {
                Ok(())
            } else {
                Err(AgentCallError::Status {
                    call: "DELETE /v1/blocks",
                    status: status.as_u16(),
                    message: error_message(&body),
                })
            }
        })
    }

    fn health<'a>(
        &'a self,
        target: &'a AgentTarget,
    ) -> BoxFuture<'a, Result<Option<FleetCounting>, AgentCallError>> {
        Box::pin(async move {
            let anonymous = AgentTarget {
                url: target.url.clone(),
                token: None,
            };
            let (status, body) = self
                .call(&anonymous, Method::GET, paths::HEALTHZ, None, self.timeout)
                .await?;
            if status == StatusCode::OK {
                // an answer without `fleet` (or unreadable) counts alone
                return Ok(serde_json::from_slice::<Health>(&body)
                    .ok()
                    .and_then(|h| h.fleet));
            }
            let reason = serde_json::from_slice::<Health>(&body)
                .ok()
                .and_then(|h| h.reason)
                .unwrap_or_else(|| error_message(&body));
            Err(AgentCallError::Status {
                call: "GET /healthz",
                status: status.as_u16(),
                message: truncate(&reason, 256),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rev(n: i64) -> RevisionRef {
        RevisionRef {
            number: n,
            hash: format!("sha256:{}", "0a".repeat(32)),
        }
    }

    #[test]
    fn labels_round_trip() {
        let r = rev(7);
        let l = revision_label(&r);
        assert_eq!(l, format!("7@sha256:{}", "0a".repeat(32)));
        assert_eq!(parse_revision_label(&l), Some(r));
        for bad in [
            "acme-r1",
            "0@sha256:00",
            "x@sha256:aa",
            &format!("1@sha256:{}", "A".repeat(64)),
            &format!("1@md5:{}", "a".repeat(64)),
            &format!("-1@sha256:{}", "a".repeat(64)),
        ] {
            assert_eq!(parse_revision_label(bad), None, "{bad}");
        }
    }

    #[test]
    fn state_needs_read_back_confirmation() {
        let l = revision_label(&rev(3));
        let body: StateAnswer = serde_json::from_value(json!({"tenants": {
            "ok": {"revision": l, "renderedHash": "h", "readbackHash": "h", "consistent": true},
            "drift": {"revision": l, "renderedHash": "h", "readbackHash": "x", "consistent": false},
            "liar": {"revision": l, "renderedHash": "h", "readbackHash": "x", "consistent": true},
            "nokam": {"revision": l, "renderedHash": "h", "readbackHash": null, "consistent": false},
            "hand": {"revision": "acme-r1", "renderedHash": "h", "readbackHash": "h", "consistent": true}
        }, "lastError": "boom"}))
        .unwrap();
        assert_eq!(tenant_state(&body, "ok").applied, Some(rev(3)));
        for t in ["drift", "liar", "nokam", "hand", "absent"] {
            assert_eq!(tenant_state(&body, t).applied, None, "{t}");
        }
        assert_eq!(
            tenant_state(&body, "ok").last_error.as_deref(),
            Some("boom")
        );
    }

    #[test]
    fn answers_map_to_results() {
        let r = rev(2);
        let ok = json!({"revision": revision_label(&r), "readbackHash": "h"}).to_string();
        assert_eq!(
            apply_result(StatusCode::OK, ok.as_bytes(), Some(&r)),
            ApplyResult::Ok {
                hash: r.hash.clone()
            }
        );
        let other = json!({"revision": "1@x", "readbackHash": "h"}).to_string();
        assert!(matches!(
            apply_result(StatusCode::OK, other.as_bytes(), Some(&r)),
            ApplyResult::Ok { hash } if hash != r.hash
        ));
        let rej = json!({"error": "rejected", "reasons": ["a", "b"]}).to_string();
        assert_eq!(
            apply_result(StatusCode::UNPROCESSABLE_ENTITY, rej.as_bytes(), Some(&r)),
            ApplyResult::Rejected {
                reason: "Rejected".into(),
                message: "rejected; a; b".into()
            }
        );
        let long = json!({"error": "x".repeat(5000)}).to_string();
        match apply_result(StatusCode::INTERNAL_SERVER_ERROR, long.as_bytes(), Some(&r)) {
            ApplyResult::Rejected { reason, message } => {
                assert_eq!(reason, "ReloadFailed");
                assert_eq!(message.chars().count(), MAX_MESSAGE);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            apply_result(StatusCode::UNAUTHORIZED, b"{}", Some(&r)),
            ApplyResult::Unreachable { .. }
        ));
        assert_eq!(
            apply_result(StatusCode::NOT_FOUND, b"{}", None),
            ApplyResult::Ok {
                hash: String::new()
            }
        );
        assert!(matches!(
            apply_result(StatusCode::BAD_REQUEST, b"not json", Some(&r)),
            ApplyResult::Rejected { reason, message } if reason == "AgentError" && message == "not json"
        ));
    }

    #[test]
    fn batch_answers_map_to_each_items_result() {
        let policy = Arc::new(tollgate_testkit::fake_agent::sample_policy("a", 0));
        let item = |tenant: &str, r: Option<RevisionRef>| BatchItem {
            tenant: tenant.into(),
            change: r.map(|r| (r, Arc::clone(&policy))),
        };
        let items = [
            item("a", Some(rev(2))),
            item("b", Some(rev(3))),
            item("c", None),
            item("d", Some(rev(4))),
        ];
        let body = json!({"tenants": {
            "a": {"revision": revision_label(&rev(2)), "readbackHash": "h", "rowsHash": "h"},
            // holds another revision than the one sent
            "b": {"revision": revision_label(&rev(1)), "readbackHash": "h"},
            "c": {"deleted": true},
            // "d" missing from the answer
        }})
        .to_string();
        let BatchResult::Done(rs) = batch_result(StatusCode::OK, body.as_bytes(), &items) else {
            panic!("not done");
        };
        assert_eq!(rs.len(), 4);
        assert_eq!(
            rs[0],
            ApplyResult::Ok {
                hash: rev(2).hash.clone()
            }
        );
        for unconfirmed in [&rs[1], &rs[3]] {
            assert!(
                matches!(unconfirmed, ApplyResult::Ok { hash } if hash.starts_with("unconfirmed")),
                "{unconfirmed:?}"
            );
        }
        assert_eq!(
            rs[2],
            ApplyResult::Ok {
                hash: String::new()
            }
        );
        // refused, too large or unknown: nothing applied, one by one next
        let rej = json!({"error": "rejected", "reasons": ["tenant `b`: probe failed"]}).to_string();
        for code in [422, 413, 404, 405] {
            let status = StatusCode::from_u16(code).unwrap();
            match batch_result(status, rej.as_bytes(), &items) {
                BatchResult::Split { status, message } => {
                    assert_eq!(status, code);
                    assert_eq!(message, "rejected; tenant `b`: probe failed");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        assert!(matches!(
            batch_result(StatusCode::INTERNAL_SERVER_ERROR, b"{\"error\": \"x\"}", &items),
            BatchResult::Failed(ApplyResult::Rejected { reason, .. }) if reason == "ReloadFailed"
        ));
        assert!(matches!(
            batch_result(StatusCode::UNAUTHORIZED, b"{}", &items),
            BatchResult::Failed(ApplyResult::Unreachable { .. })
        ));
        // a 200 that is not a batch's answer confirms nothing
        let BatchResult::Done(rs) = batch_result(StatusCode::OK, b"nonsense", &items) else {
            panic!("not done");
        };
        assert!(
            rs.iter()
                .all(|r| matches!(r, ApplyResult::Ok { hash } if hash.starts_with("unconfirmed")))
        );
    }

    #[test]
    fn stage_answers_map_to_results() {
        let r = rev(4);
        let staged = json!({"tenant": "acme", "revision": revision_label(&r), "staged": true,
                            "bundleHash": "b", "probes": 0, "timingsMs": {}})
        .to_string();
        assert_eq!(
            stage_result(StatusCode::OK, staged.as_bytes(), &r),
            StageResult::Staged
        );
        // a 200 that does not say it staged our revision is no evidence
        // against the revision, and not a confirmation either
        for odd in [
            json!({"revision": revision_label(&r)}).to_string(),
            json!({"revision": revision_label(&rev(3)), "staged": true}).to_string(),
            "not json".to_owned(),
        ] {
            assert!(
                matches!(
                    stage_result(StatusCode::OK, odd.as_bytes(), &r),
                    StageResult::Failed(ApplyResult::Unreachable { .. })
                ),
                "{odd}"
            );
        }
        // an old agent: 404 for an unknown path, 405 for a known one
        let old = json!({"error": "no such endpoint"}).to_string();
        assert_eq!(
            stage_result(StatusCode::NOT_FOUND, old.as_bytes(), &r),
            StageResult::Unsupported { status: 404 }
        );
        assert_eq!(
            stage_result(StatusCode::METHOD_NOT_ALLOWED, b"{}", &r),
            StageResult::Unsupported { status: 405 }
        );
        // refusals map as a PUT's
        let rej = json!({"error": "rejected; the previous state stays in force",
                         "reasons": ["probe failed"]})
        .to_string();
        assert_eq!(
            stage_result(StatusCode::UNPROCESSABLE_ENTITY, rej.as_bytes(), &r),
            StageResult::Failed(ApplyResult::Rejected {
                reason: "Rejected".into(),
                message: "rejected; the previous state stays in force; probe failed".into()
            })
        );
        assert!(matches!(
            stage_result(StatusCode::BAD_REQUEST, b"{}", &r),
            StageResult::Failed(ApplyResult::Rejected { reason, .. }) if reason == "AgentError"
        ));
        for s in [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE] {
            assert!(matches!(
                stage_result(s, b"{}", &r),
                StageResult::Failed(ApplyResult::Unreachable { .. })
            ));
        }
    }

    #[test]
    fn commit_answers_map_to_results() {
        let r = rev(4);
        let ok = json!({"tenant": "acme", "revision": revision_label(&r), "readbackHash": "h",
                        "staged": true, "revalidated": false})
        .to_string();
        assert_eq!(
            commit_result(StatusCode::OK, ok.as_bytes(), &r),
            CommitResult::Done(ApplyResult::Ok {
                hash: r.hash.clone()
            })
        );
        let rechecked = json!({"tenant": "acme", "revision": revision_label(&r),
                               "readbackHash": "h", "staged": true, "revalidated": true})
        .to_string();
        assert_eq!(
            commit_result(StatusCode::OK, rechecked.as_bytes(), &r),
            CommitResult::Rechecked(ApplyResult::Ok {
                hash: r.hash.clone()
            })
        );
        let conflict = json!({"error": "nothing is staged for tenant `acme`"}).to_string();
        assert_eq!(
            commit_result(StatusCode::CONFLICT, conflict.as_bytes(), &r),
            CommitResult::NotStaged {
                status: 409,
                message: "nothing is staged for tenant `acme`".into()
            }
        );
        assert!(matches!(
            commit_result(StatusCode::NOT_FOUND, b"{}", &r),
            CommitResult::NotStaged { status: 404, .. }
        ));
        assert!(matches!(
            commit_result(StatusCode::INTERNAL_SERVER_ERROR, b"{\"error\": \"reload failed\"}", &r),
            CommitResult::Done(ApplyResult::Rejected { reason, message })
                if reason == "ReloadFailed" && message == "reload failed"
        ));
        assert!(matches!(
            commit_result(StatusCode::UNPROCESSABLE_ENTITY, b"{}", &r),
            CommitResult::Done(ApplyResult::Rejected { reason, .. }) if reason == "Rejected"
        ));
    }

    #[test]
    fn call_errors_keep_their_messages() {
        let e = AgentCallError::Status {
            call: "GET /v1/state",
            status: 401,
            message: "unauthorized".into(),
        };
        assert_eq!(e.to_string(), "GET /v1/state answered 401: unauthorized");
        assert_eq!(
            AgentCallError::Timeout(5).to_string(),
            "no answer within 5 s"
        );
        assert_eq!(
            AgentCallError::Reading("eof".into()).to_string(),
            "reading the answer: eof"
        );
    }

    #[tokio::test]
    async fn unreachable_agent() {
        // a port nothing listens on
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let a = HttpAgents::new(Duration::from_secs(2), Duration::from_secs(2));
        let t = AgentTarget {
            url: format!("http://{addr}"),
            token: Some("secret-token".into()),
        };
        assert!(a.state(&t, "acme").await.is_err());
        assert!(matches!(
            a.remove(&t, "acme").await,
            ApplyResult::Unreachable { .. }
        ));
        let p = tollgate_testkit::fake_agent::sample_policy("acme", 0);
        assert!(matches!(
            a.stage(&t, "acme", &rev(1), &p).await,
            StageResult::Failed(ApplyResult::Unreachable { .. })
        ));
        assert!(matches!(
            a.commit(&t, "acme", &rev(1)).await,
            CommitResult::Done(ApplyResult::Unreachable { .. })
        ));
        assert!(!format!("{t:?}").contains("secret-token"));
    }
}
