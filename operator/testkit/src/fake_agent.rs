//! A test double of the SBC agent's HTTP API (`docs/agent.md`), served over
//! real HTTP on a loopback port: bearer token, `PUT`/`DELETE
//! /v1/tenants/{tenant}`, the staged apply (`POST /v1/tenants/{tenant}/stage`
//! then `…/commit`), `GET /v1/state`, `GET /healthz`. Instead of Kamailio it
//! keeps the tenants in memory; it renders each policy with the real
//! Kamailio backend (a `RenderError` is a 422, as on the agent) and reports
//! the rendered rows' hash as both `renderedHash` and `readbackHash`.
//!
//! Staged applies follow the agent: a stage runs the checks a PUT runs and
//! keeps the revision without changing what the agent holds; a commit of
//! that revision applies it (409 when it is not staged: never staged,
//! already committed, another revision staged); when the agent's state
//! changed since the stage (an apply, a removal, a block) or a later stage
//! replaced its checked result, the commit checks again first
//! (`revalidated`). A batch (`POST /v1/batch`) checks every change, then
//! makes them all, or none when one is refused (422, the reasons naming
//! the tenants). [`FakeAgent::set_legacy`] makes it an agent that predates
//! staged applies and batches (404 `no such endpoint` for all three).
//!
//! Blocks (`PUT /v1/blocks`, `DELETE /v1/blocks/{key}`) follow the agent's
//! rules (422 for a tenant that is not applied or a bad class; 404 for an
//! unknown key) and are listed in `blocks` of the state. It records every
//! apply (PUT, commit, DELETE: [`ApplyRecord::via`]) and every stage with
//! their times, and can be told to reject revisions, answer slowly, forget
//! its stages (as a restart between stage and commit does), or drop
//! connections (unreachable).
//!
//! For the controller's tests and the convergence benchmark.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::net::TcpListener;
use tollgate_agent_api::paths::{self, Route};
use tollgate_agent_api::{
    ApiError, ApplyAnswer, BatchAnswer, BatchRequest, BatchTenant, BlockRequest, BlocksAnswer,
    CommitRequest, Health, KAMAILIO_REACHABLE, MAX_BODY, RevisionRequest, StageAnswer, StateAnswer,
    TenantView,
};
use tollgate_ir::CompiledPolicy;
use tollgate_plumbing::serve::Server;

use tollgate_kamailio::Backend;
use tollgate_kamailio::kamailio::Kamailio;

/// How an apply reached the fake agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `PUT /v1/tenants/{tenant}`.
    Put,
    /// `POST /v1/tenants/{tenant}/commit` of a staged revision.
    Commit,
    /// `DELETE /v1/tenants/{tenant}`.
    Delete,
    /// One change of a `POST /v1/batch` (one record per tenant; the
    /// batch's size in [`FakeAgent::batches`]).
    Batch,
}

/// One `PUT`, commit or `DELETE` the fake agent answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyRecord {
    /// When the request arrived.
    pub received: SystemTime,
    /// When the answer was sent.
    pub at: SystemTime,
    /// Tenant.
    pub tenant: String,
    /// The revision label sent (`None`: a DELETE; a commit without one).
    pub revision: Option<String>,
    /// HTTP status answered.
    pub status: u16,
    /// Which request it was.
    pub via: Via,
    /// A commit that checked the revision again (the state changed since
    /// its stage); `false` otherwise.
    pub revalidated: bool,
}

/// One `POST /v1/tenants/{tenant}/stage` the fake agent answered (a legacy
/// agent's 404s are not recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageRecord {
    /// When the request arrived.
    pub received: SystemTime,
    /// When the answer was sent.
    pub at: SystemTime,
    /// Tenant.
    pub tenant: String,
    /// The revision label sent.
    pub revision: Option<String>,
    /// HTTP status answered.
    pub status: u16,
}

/// A staged revision.
#[derive(Debug)]
struct Staged {
    revision: String,
    policy: CompiledPolicy,
    /// The rendered rows' hash.
    hash: String,
    /// [`Inner::generation`] when it was checked; `None` once a later stage
    /// took the checked result (the agent keeps the newest one only).
    checked_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    /// tenant → (revision label, rendered hash)
    tenants: BTreeMap<String, (String, String)>,
    log: Vec<ApplyRecord>,
    /// block key → expiry (epoch s, 0 = until lifted)
    blocks: BTreeMap<String, i64>,
    /// block calls answered: (method, key, status)
    block_log: Vec<(String, String, u16)>,
    /// (label prefix, reason): refuse PUTs and stages (and commits that
    /// check again) of revisions whose label starts so.
    reject: Option<(String, String)>,
    delay: Duration,
    commit_delay: Duration,
    /// tenant → revision staged
    staged: BTreeMap<String, Staged>,
    stage_log: Vec<StageRecord>,
    /// Bumped by every change of the tenants or blocks held.
    generation: u64,
    /// 404 for stage and commit, as an agent that predates them.
    legacy: bool,
    /// Answer stages but keep nothing (a restart between stage and commit).
    forget_stages: bool,
    /// `GET /v1/state` and `GET /v1/state/summary` answered.
    state_reads: u64,
    summary_reads: u64,
    /// Summaries answered 304 (the client's `If-None-Match` was current).
    summary_unchanged: u64,
    /// Answer every summary 200, whatever `If-None-Match` says (an agent
    /// that predates entity tags).
    ignore_etag: bool,
    /// `POST /v1/batch` answered: (tenants in it, status).
    batch_log: Vec<(usize, u16)>,
    /// Accept every policy without rendering it (benchmarks of the
    /// operator, where the agents' work is not what is measured).
    no_render: bool,
}

/// A running fake agent; stops when dropped.
#[derive(Debug)]
pub struct FakeAgent {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    /// `true` while unreachable: open connections close, as when the agent
    /// goes down (a pooled keep-alive connection must not keep answering).
    down: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, v: &impl Serialize) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(v).unwrap_or_default(),
    )));
    *r.status_mut() = status;
    r
}

fn error(e: &ApiError) -> Resp {
    reply(status_of::<()>(&Err(e.clone())), &e.body())
}

/// 200, or the error's status.
fn status_of<T>(r: &Result<T, ApiError>) -> StatusCode {
    match r {
        Ok(_) => StatusCode::OK,
        Err(e) => StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// An answer: 200 with the body, or the error's.
fn respond<T: Serialize>(r: &Result<T, ApiError>) -> Resp {
    match r {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => error(e),
    }
}

impl FakeAgent {
    /// Starts one on `127.0.0.1`, a free port, requiring `token`.
    pub async fn start(token: &str) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().map_err(std::io::Error::other)?, token).await
    }

    /// Starts one on `addr` (e.g. `127.0.0.2:9443`: all of 127/8 is on
    /// the loopback interface, so several can share a port, as pods do).
    pub async fn start_on(addr: SocketAddr, token: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = Arc::clone(&inner);
        let token = Arc::new(token.to_owned());
        let (down, down_rx) = tokio::sync::watch::channel(false);
        // unreachable: new connections are dropped unanswered and open ones
        // close (a pooled keep-alive connection must not keep answering)
        let server = Server::new("fake-agent").refuse_while(down_rx);
        let task = tokio::spawn(server.serve(
            listener,
            move |req| {
                let st = Arc::clone(&state);
                let tok = Arc::clone(&token);
                async move { handle(&st, &tok, req).await }
            },
            std::future::pending(),
        ));
        Ok(Self {
            addr,
            inner,
            down,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every apply (PUT or commit) and removal answered so far, in order.
    pub fn applies(&self) -> Vec<ApplyRecord> {
        lock(&self.inner).log.clone()
    }

    /// Every stage answered so far, in order.
    pub fn stages(&self) -> Vec<StageRecord> {
        lock(&self.inner).stage_log.clone()
    }

    /// tenant → revision label staged and not committed.
    pub fn staged(&self) -> BTreeMap<String, String> {
        lock(&self.inner)
            .staged
            .iter()
            .map(|(t, s)| (t.clone(), s.revision.clone()))
            .collect()
    }

    /// `true`: behave as an agent that predates staged applies (stage and
    /// commit answer 404 `{"error": "no such endpoint"}`).
    pub fn set_legacy(&self, on: bool) {
        lock(&self.inner).legacy = on;
    }

    /// `true`: answer stages (after the checks) but keep nothing, as an
    /// agent restarted between a stage and its commit; the commit then
    /// answers 409.
    pub fn set_forget_stages(&self, on: bool) {
        lock(&self.inner).forget_stages = on;
    }

    /// Answer commits only after this long (the real agent's swap, reload
    /// and read-back); none by default.
    pub fn set_commit_delay(&self, d: Duration) {
        lock(&self.inner).commit_delay = d;
    }

    /// Answer every summary in full, ignoring `If-None-Match` (as an agent
    /// that predates entity tags): the baseline of the operator's idle
    /// cost in `bench-operator`.
    pub fn set_ignore_etag(&self, on: bool) {
        lock(&self.inner).ignore_etag = on;
    }

    /// Summaries answered 304, unchanged since the client's copy.
    pub fn summaries_unchanged(&self) -> u64 {
        lock(&self.inner).summary_unchanged
    }

    /// Every `POST /v1/batch` answered: (tenants in it, status).
    pub fn batches(&self) -> Vec<(usize, u16)> {
        lock(&self.inner).batch_log.clone()
    }

    /// tenant → revision label held.
    pub fn tenants(&self) -> BTreeMap<String, String> {
        lock(&self.inner)
            .tenants
            .iter()
            .map(|(t, (r, _))| (t.clone(), r.clone()))
            .collect()
    }

    /// (`GET /v1/state`, `GET /v1/state/summary`) answered so far.
    pub fn state_reads(&self) -> (u64, u64) {
        let g = lock(&self.inner);
        (g.state_reads, g.summary_reads)
    }

    /// tenant → hash of the rows it rendered from the policy it holds.
    pub fn rendered(&self) -> BTreeMap<String, String> {
        lock(&self.inner)
            .tenants
            .iter()
            .map(|(t, (_, h))| (t.clone(), h.clone()))
            .collect()
    }

    /// block key → expiry (epoch s, 0 = until lifted) held.
    pub fn blocks(&self) -> BTreeMap<String, i64> {
        lock(&self.inner).blocks.clone()
    }

    /// Forgets every block (as if lifted), for benchmarks.
    pub fn clear_blocks(&self) {
        lock(&self.inner).blocks.clear();
    }

    /// Every block call answered: (`PUT`/`DELETE`, key, status).
    pub fn block_calls(&self) -> Vec<(String, String, u16)> {
        lock(&self.inner).block_log.clone()
    }

    /// `Some(reason)`: refuse every PUT and stage with 422 and this reason.
    pub fn set_reject(&self, reason: Option<&str>) {
        lock(&self.inner).reject = reason.map(|r| (String::new(), r.to_owned()));
    }

    /// Refuse (422, `reason`) the PUTs and stages whose revision label starts
    /// with `prefix` (e.g. `"4@"`: revision 4 only); others go through.
    pub fn set_reject_matching(&self, prefix: &str, reason: &str) {
        lock(&self.inner).reject = Some((prefix.to_owned(), reason.to_owned()));
    }

    /// Answer PUT, DELETE and stage only after this long (the real agent's
    /// trial start).
    pub fn set_delay(&self, d: Duration) {
        lock(&self.inner).delay = d;
    }

    /// Accept every policy without rendering it (its "rendered" hash is
    /// then made from the revision label): for benchmarks of the operator
    /// with many fake agents on few cores, where the agents' rendering is
    /// not what is measured.
    pub fn set_no_render(&self, on: bool) {
        lock(&self.inner).no_render = on;
    }

    /// Close new connections without answering, and the open ones too.
    pub fn set_unreachable(&self, on: bool) {
        self.down.send_replace(on);
    }
}

async fn handle(st: &Mutex<Inner>, token: &str, req: Request<Incoming>) -> Resp {
    let received = SystemTime::now();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let method = req.method().clone();
    let route = Route::parse(&path);
    if method == Method::GET && route == Some(Route::Healthz) {
        return reply(StatusCode::OK, &Health::ok());
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {token}")) {
        return error(&ApiError::Unauthorized);
    }
    let Some(route) = route else {
        return error(&ApiError::NoSuchEndpoint);
    };
    match (method, route) {
        (Method::GET, Route::StateSummary) if !lock(st).legacy => {
            let known = req
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut g = lock(st);
            g.summary_reads += 1;
            let summary = tollgate_agent_api::StateSummary {
                blocks: g.blocks.clone(),
                consistent: true,
                last_error: None,
                tenants: g
                    .tenants
                    .iter()
                    .map(|(t, (rev, _))| (t.clone(), rev.clone()))
                    .collect(),
            };
            let tag = summary.etag();
            let mut r = if known.as_deref() == Some(tag.as_str()) && !g.ignore_etag {
                g.summary_unchanged += 1;
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r
            } else {
                reply(StatusCode::OK, &summary)
            };
            drop(g);
            if let Ok(v) = hyper::header::HeaderValue::from_str(&tag) {
                r.headers_mut().insert("etag", v);
            }
            r
        }
        (Method::GET, Route::State) => {
            lock(st).state_reads += 1;
            let only = match paths::state_filter(query.as_deref()) {
                Ok(o) => o,
                Err(e) => return error(&e),
            };
            let g = lock(st);
            let tenants = g
                .tenants
                .iter()
                .filter(|(t, _)| only.as_ref().is_none_or(|o| o == *t))
                .map(|(t, (rev, h))| {
                    (
                        t.clone(),
                        TenantView {
                            revision: rev.clone(),
                            rows_hash: h.clone(),
                            rendered_hash: Some(h.clone()),
                            readback_hash: Some(h.clone()),
                            consistent: true,
                            applied_at: String::new(),
                            shard: None,
                        },
                    )
                })
                .collect();
            reply(
                StatusCode::OK,
                &StateAnswer {
                    tenants,
                    kamailio: KAMAILIO_REACHABLE.into(),
                    blocks: g.blocks.clone(),
                    ..StateAnswer::default()
                },
            )
        }
        (Method::PUT, Route::Tenant(t)) => {
            let t = t.to_owned();
            let delay = lock(st).delay;
            let body = match read_then_wait(req, MAX_BODY, delay).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let (answer, label) = put(st, &t, &body);
            let mut g = lock(st);
            g.log.push(ApplyRecord {
                received,
                at: SystemTime::now(),
                tenant: t,
                revision: label,
                status: status_of(&answer).as_u16(),
                via: Via::Put,
                revalidated: false,
            });
            respond(&answer)
        }
        (Method::POST, Route::Stage(_) | Route::Commit(_)) if lock(st).legacy => {
            error(&ApiError::NoSuchEndpoint)
        }
        (Method::POST, Route::Stage(t)) => {
            let t = t.to_owned();
            let delay = lock(st).delay;
            let body = match read_then_wait(req, MAX_BODY, delay).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let (answer, label) = stage(st, &t, &body);
            let mut g = lock(st);
            g.stage_log.push(StageRecord {
                received,
                at: SystemTime::now(),
                tenant: t,
                revision: label,
                status: status_of(&answer).as_u16(),
            });
            respond(&answer)
        }
        (Method::POST, Route::Commit(t)) => {
            let t = t.to_owned();
            let delay = lock(st).commit_delay;
            let body = match read_then_wait(req, 1 << 20, delay).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let (answer, label, revalidated) = commit(st, &t, &body);
            let mut g = lock(st);
            g.log.push(ApplyRecord {
                received,
                at: SystemTime::now(),
                tenant: t,
                revision: label,
                status: status_of(&answer).as_u16(),
                via: Via::Commit,
                revalidated,
            });
            respond(&answer)
        }
        (_, Route::Stage(_) | Route::Commit(_)) if !lock(st).legacy => {
            error(&ApiError::MethodNotAllowed)
        }
        (Method::DELETE, Route::Tenant(t)) => {
            let delay = lock(st).delay;
            tokio::time::sleep(delay).await;
            let mut g = lock(st);
            let answer = if g.tenants.remove(t).is_some() {
                g.generation += 1;
                Ok(ApplyAnswer {
                    tenant: t.to_owned(),
                    deleted: true,
                    ..ApplyAnswer::default()
                })
            } else {
                Err(ApiError::NotFound(format!("tenant {t} is not applied")))
            };
            g.log.push(ApplyRecord {
                received,
                at: SystemTime::now(),
                tenant: t.to_owned(),
                revision: None,
                status: status_of(&answer).as_u16(),
                via: Via::Delete,
                revalidated: false,
            });
            respond(&answer)
        }
        (Method::POST, Route::Batch) if !lock(st).legacy => {
            let delay = lock(st).delay;
            let body = match read_then_wait(req, MAX_BODY, delay).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let (answer, labels) = batch(st, &body);
            let mut g = lock(st);
            let status = status_of(&answer).as_u16();
            g.batch_log.push((labels.len(), status));
            for (tenant, revision) in labels {
                g.log.push(ApplyRecord {
                    received,
                    at: SystemTime::now(),
                    tenant,
                    revision,
                    status,
                    via: Via::Batch,
                    revalidated: false,
                });
            }
            respond(&answer)
        }
        (Method::PUT, Route::Blocks) => {
            let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(&ApiError::ReadingBody(e.to_string())),
            };
            let (answer, key) = put_block(st, &body);
            let mut g = lock(st);
            g.block_log
                .push(("PUT".into(), key, status_of(&answer).as_u16()));
            respond(&answer)
        }
        (Method::DELETE, Route::Block(key)) => {
            let mut g = lock(st);
            let answer = if g.blocks.remove(key).is_some() {
                g.generation += 1;
                Ok(BlocksAnswer {
                    blocks: g.blocks.clone(),
                })
            } else {
                Err(ApiError::NotFound(format!("no block `{key}`")))
            };
            g.block_log
                .push(("DELETE".into(), key.to_owned(), status_of(&answer).as_u16()));
            respond(&answer)
        }
        _ => error(&ApiError::NoSuchEndpoint),
    }
}

/// The request's body (at most `max` bytes), then `delay` (the agent's
/// answer time the test asked for); `Err`: the 400 to send.
async fn read_then_wait(
    req: Request<Incoming>,
    max: usize,
    delay: Duration,
) -> Result<Bytes, ApiError> {
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(ApiError::ReadingBody(e.to_string())),
    };
    tokio::time::sleep(delay).await;
    Ok(body)
}

/// `PUT /v1/blocks` as the agent does it: the key's tenant must be applied
/// and its class a valid name (422 otherwise); `expires` absent or null is
/// 0 (until lifted), negative is refused. The answer and the key.
fn put_block(st: &Mutex<Inner>, body: &[u8]) -> (Result<BlocksAnswer, ApiError>, String) {
    let BlockRequest { expires, key } = match BlockRequest::from_json(body) {
        Ok(b) => b,
        Err(e) => return (Err(e), String::new()),
    };
    let refuse = |m: String| (Err(ApiError::rejected(m)), key.clone());
    if expires < 0 {
        return refuse("expires must be >= 0".into());
    }
    let (tenant, class) = match key.split_once("::") {
        Some((t, c)) => (t, Some(c)),
        None => (key.as_str(), None),
    };
    let mut g = lock(st);
    if !g.tenants.contains_key(tenant) {
        return refuse(format!("no tenant `{tenant}` is applied"));
    }
    if let Some(c) = class {
        let ok = c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
        if !ok {
            return refuse(format!("class `{c}` is not a valid class name"));
        }
    }
    g.blocks.insert(key.clone(), expires);
    g.generation += 1;
    (
        Ok(BlocksAnswer {
            blocks: g.blocks.clone(),
        }),
        key,
    )
}

/// An answer and the revision label sent (`None` when the body had none).
type Answer<T> = (Result<T, ApiError>, Option<String>);

/// The revision and policy of a PUT or stage body; `Err`: the answer.
fn revision_body<T>(tenant: &str, body: &[u8]) -> Result<(String, CompiledPolicy), Answer<T>> {
    let RevisionRequest { policy, revision } = match RevisionRequest::from_json(body) {
        Ok(r) => r,
        Err(e) => return Err((Err(e), None)),
    };
    if policy.tenant != tenant {
        let why = format!("policy tenant {} is not the path's {tenant}", policy.tenant);
        return Err((Err(ApiError::rejected(why)), Some(revision)));
    }
    Ok((revision, policy))
}

/// What the agent checks before the live SBC is touched: the refusal set
/// by the test, then the render. `Ok`: the rendered rows' hash.
fn check(st: &Mutex<Inner>, rev: &str, policy: &CompiledPolicy) -> Result<String, ApiError> {
    if let Some((prefix, reason)) = lock(st).reject.clone()
        && rev.starts_with(&prefix)
    {
        return Err(ApiError::rejected(reason));
    }
    if lock(st).no_render {
        return Ok(format!("unrendered {rev}"));
    }
    match Kamailio.render_tenant(policy, rev, jiff::Timestamp::now()) {
        Ok(rows) => Ok(rows.hash()),
        Err(e) => Err(ApiError::rejected(e.to_string())),
    }
}

/// Holds `rev` for `tenant` (what a PUT or commit does once checked), and
/// the answer's body.
fn hold(st: &Mutex<Inner>, tenant: &str, rev: &str, hash: &str) -> ApplyAnswer {
    let mut g = lock(st);
    g.tenants
        .insert(tenant.to_owned(), (rev.to_owned(), hash.to_owned()));
    g.generation += 1;
    // a stage of this tenant is superseded; other stages' checks were made
    // against the state this replaces
    g.staged.remove(tenant);
    for s in g.staged.values_mut() {
        s.checked_at = None;
    }
    ApplyAnswer {
        tenant: tenant.to_owned(),
        deleted: false,
        revision: Some(rev.to_owned()),
        rows_hash: Some(hash.to_owned()),
        readback_hash: Some(hash.to_owned()),
        ..ApplyAnswer::default()
    }
}

fn put(st: &Mutex<Inner>, tenant: &str, body: &[u8]) -> Answer<ApplyAnswer> {
    let (rev, policy) = match revision_body(tenant, body) {
        Ok(x) => x,
        Err(a) => return a,
    };
    match check(st, &rev, &policy) {
        Ok(hash) => (Ok(hold(st, tenant, &rev, &hash)), Some(rev)),
        Err(e) => (Err(e), Some(rev)),
    }
}

fn stage(st: &Mutex<Inner>, tenant: &str, body: &[u8]) -> Answer<StageAnswer> {
    let (rev, policy) = match revision_body(tenant, body) {
        Ok(x) => x,
        Err(a) => return a,
    };
    let hash = match check(st, &rev, &policy) {
        Ok(h) => h,
        Err(e) => return (Err(e), Some(rev)),
    };
    let mut g = lock(st);
    if !g.forget_stages {
        // one checked result is kept: the newest stage's
        for s in g.staged.values_mut() {
            s.checked_at = None;
        }
        let checked_at = Some(g.generation);
        g.staged.insert(
            tenant.to_owned(),
            Staged {
                revision: rev.clone(),
                policy,
                hash: hash.clone(),
                checked_at,
            },
        );
    }
    (
        Ok(StageAnswer {
            tenant: tenant.to_owned(),
            revision: rev.clone(),
            staged: true,
            bundle_hash: hash,
            ..StageAnswer::default()
        }),
        Some(rev),
    )
}

/// A batch change's tenant and revision label.
type Labelled = (String, Option<String>);

/// A batch, all or nothing as on the agent: every candidate checked
/// (refusals name their tenants), then every change made. The answer and
/// each change's (tenant, revision label).
fn batch(st: &Mutex<Inner>, body: &[u8]) -> (Result<BatchAnswer, ApiError>, Vec<Labelled>) {
    let req = match BatchRequest::from_json(body) {
        Ok(r) => r,
        Err(e) => return (Err(e), Vec::new()),
    };
    let labels = req
        .changes
        .iter()
        .map(|c| (c.tenant.clone(), c.revision.clone()))
        .collect();
    let mut checked = Vec::new();
    let mut refused = Vec::new();
    for c in &req.changes {
        match (&c.revision, &c.policy) {
            (Some(_), Some(policy)) if policy.tenant != c.tenant => refused.push(format!(
                "tenant `{}`: policy tenant {} is not the change's",
                c.tenant, policy.tenant
            )),
            (Some(rev), Some(policy)) => match check(st, rev, policy) {
                Ok(hash) => checked.push((c.tenant.clone(), Some((rev.clone(), hash)))),
                Err(e) => refused.push(format!("tenant `{}`: {}", c.tenant, e.body().message())),
            },
            _ => checked.push((c.tenant.clone(), None)),
        }
    }
    if !refused.is_empty() {
        return (Err(ApiError::Rejected(refused)), labels);
    }
    let mut answer = BatchAnswer::default();
    for (tenant, change) in checked {
        let held = match change {
            Some((rev, hash)) => {
                let a = hold(st, &tenant, &rev, &hash);
                BatchTenant {
                    deleted: false,
                    readback_hash: a.readback_hash,
                    revision: a.revision,
                    rows_hash: a.rows_hash,
                    shard: None,
                }
            }
            None => {
                let mut g = lock(st);
                if g.tenants.remove(&tenant).is_some() {
                    g.generation += 1;
                }
                BatchTenant {
                    deleted: true,
                    ..BatchTenant::default()
                }
            }
        };
        answer.tenants.insert(tenant, held);
    }
    (Ok(answer), labels)
}

/// A commit: (answer, revision label, revalidated).
fn commit(
    st: &Mutex<Inner>,
    tenant: &str,
    body: &[u8],
) -> (Result<ApplyAnswer, ApiError>, Option<String>, bool) {
    let rev = match CommitRequest::from_json(body) {
        Ok(c) => c.revision,
        Err(e) => return (Err(e), None, false),
    };
    let staged = {
        let mut g = lock(st);
        match g.staged.remove(tenant) {
            Some(s) if s.revision == rev => {
                let fresh = s.checked_at == Some(g.generation);
                (s, fresh)
            }
            Some(s) => {
                let msg = format!(
                    "revision `{rev}` of tenant `{tenant}` is not staged (`{}` is)",
                    s.revision
                );
                g.staged.insert(tenant.to_owned(), s);
                return (Err(ApiError::Conflict(msg)), Some(rev), false);
            }
            None => {
                let msg = format!("nothing is staged for tenant `{tenant}`");
                return (Err(ApiError::Conflict(msg)), Some(rev), false);
            }
        }
    };
    let (s, fresh) = staged;
    let hash = if fresh {
        s.hash
    } else {
        // the state changed since the stage: check again, as the agent does
        match check(st, &rev, &s.policy) {
            Ok(h) => h,
            Err(e) => return (Err(e), Some(rev), true),
        }
    };
    let answer = ApplyAnswer {
        staged: Some(true),
        revalidated: Some(!fresh),
        ..hold(st, tenant, &rev, &hash)
    };
    (Ok(answer), Some(rev), !fresh)
}

/// A TollPolicy named after its `tenant`, rolling `policy` out over the
/// SbcFleet `fleet` with `rollout`.
pub fn toll_policy(
    tenant: &str,
    policy: CompiledPolicy,
    fleet: &str,
    rollout: tollgate_crds::toll_policy::RolloutStrategy,
) -> tollgate_crds::TollPolicy {
    tollgate_crds::TollPolicy::new(
        tenant,
        tollgate_crds::TollPolicySpec {
            tenant: tenant.into(),
            policy,
            fleet: tollgate_crds::toll_policy::FleetReference { name: fleet.into() },
            rollout,
            source_hash: None,
            parts: None,
        },
    )
}

/// One batch of every target, no bake (`bakeSeconds: 0`).
pub fn no_bake() -> tollgate_crds::toll_policy::RolloutStrategy {
    tollgate_crds::toll_policy::RolloutStrategy {
        bake_seconds: 0,
        ..Default::default()
    }
}

/// A small valid compiled policy for `tenant` (US home country; national
/// calls allowed, international denied; one source network), for tests and
/// benchmarks. `variant` changes a prefix so two variants hash differently.
pub fn sample_policy(tenant: &str, variant: u32) -> CompiledPolicy {
    use tollgate_ir::{
        ClassPrefix, CryptoPolicy, DestinationRule, SourceNetwork, SourcePolicy, Verdict,
    };
    let dest = |prefix: &str, action, rule: &str| DestinationRule {
        prefix: prefix.into(),
        action,
        rule: rule.into(),
        window: None,
    };
    CompiledPolicy {
        tenant: tenant.into(),
        home_country: "US".into(),
        numbering_plan: "test".into(),
        emergency_numbers: vec!["911".into()],
        destinations: vec![
            dest("", Verdict::Deny, "dst:international"),
            dest("1", Verdict::Allow, "dst:national"),
            dest(&format!("1900{variant}"), Verdict::Deny, "dst:premium"),
        ],
        classes: vec![ClassPrefix {
            prefix: "1900".into(),
            class: "premium-rate".into(),
        }],
        sources: SourcePolicy {
            networks: vec![SourceNetwork {
                cidr: "127.10.0.0/16".into(),
                action: Verdict::Allow,
                trunk: None,
                rule: "src:lab".into(),
            }],
            geo: None,
        },
        windows: vec![],
        limits: vec![],
        responses: vec![],
        crypto: CryptoPolicy {
            require_tls: false,
            require_srtp: false,
            require_client_certificate: false,
        },
        rules: vec![],
    }
}
