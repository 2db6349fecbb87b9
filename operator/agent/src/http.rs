//! The agent's HTTP API (hyper, HTTP/1.1). See docs/agent.md; the
//! contract (paths, bodies, answers, errors and their statuses) is
//! `tollgate-agent-api`'s.

use super::{Agent, ApplyError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use std::sync::Arc;
use tollgate_agent_api::paths::Route;
use tollgate_agent_api::{
    ApiError, BatchRequest, BlockRequest, CommitRequest, Health, JSON, METRICS_TEXT,
    RevisionRequest, tenant_ok, to_body,
};
use tollgate_plumbing::auth::authorized;

pub use tollgate_agent_api::MAX_BODY;
pub use tollgate_agent_api::paths::state_filter;

type Resp = Response<Full<Bytes>>;

fn reply(status: u16, body: &impl Serialize) -> Resp {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", JSON)
        .body(Full::new(Bytes::from(to_body(body))))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(e: &ApiError) -> Resp {
    reply(e.status(), &e.body())
}

/// The body of a request (at most [`MAX_BODY`] bytes).
async fn body_bytes(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    if let Some(len) = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > MAX_BODY as u64
    {
        return Err(ApiError::TooLarge(MAX_BODY));
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::TooLarge(MAX_BODY))
            } else {
                Err(ApiError::ReadingBody(e.to_string()))
            }
        }
    }
}

/// An answer of the agent: 200 with the body, or the error's.
fn answer<T: Serialize>(r: Result<T, ApplyError>) -> Resp {
    match r {
        Ok(v) => reply(200, &v),
        Err(e) => error(&ApiError::from(e)),
    }
}

/// The revision and policy of a `PUT /v1/tenants/{t}` or `POST
/// …/stage` body.
async fn revision_body(t: &str, req: Request<Incoming>) -> Result<RevisionRequest, ApiError> {
    if !tenant_ok(t) {
        return Err(ApiError::BadTenant);
    }
    RevisionRequest::from_json(&body_bytes(req).await?)
}

/// One request.
pub async fn handle(agent: Arc<Agent>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let route = Route::parse(&path);
    if route == Some(Route::Healthz) && method == Method::GET {
        let h = match agent.healthy().await {
            Ok(()) => Health::ok(),
            Err(e) => Health::unhealthy(e.to_string()),
        };
        let h = h.with_fleet(agent.fleet_figures().await.map(|f| f.counting));
        return reply(h.http_status(), &h);
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if !authorized(auth, &agent.cfg.token) {
        let mut r = error(&ApiError::Unauthorized);
        r.headers_mut().insert(
            "www-authenticate",
            hyper::header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let Some(route) = route else {
        return error(&ApiError::NoSuchEndpoint);
    };
    match (method, route) {
        (Method::GET, Route::Metrics) => Response::builder()
            .header("content-type", METRICS_TEXT)
            .body(Full::new(Bytes::from(agent.metrics_text().await)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        (Method::GET, Route::State) => match state_filter(req.uri().query()) {
            Ok(only) => reply(200, &agent.state(only.as_deref()).await),
            Err(e) => error(&e),
        },
        (Method::GET, Route::StateSummary) => {
            let summary = agent.summary().await;
            let tag = summary.etag();
            let known = req
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok());
            let mut r = if known == Some(tag.as_str()) {
                // unchanged: no body to build, send or parse
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                r
            } else {
                reply(200, &summary)
            };
            if let Ok(v) = hyper::header::HeaderValue::from_str(&tag) {
                r.headers_mut().insert("etag", v);
            }
            r
        }
        (Method::PUT, Route::Tenant(t)) => match revision_body(t, req).await {
            Ok(r) => answer(agent.apply(t, Some((r.revision, r.policy))).await),
            Err(e) => error(&e),
        },
        (Method::POST, Route::Stage(t)) => match revision_body(t, req).await {
            Ok(r) => answer(agent.stage(t, r.revision, r.policy).await),
            Err(e) => error(&e),
        },
        (Method::POST, Route::Commit(t)) => {
            if !tenant_ok(t) {
                return error(&ApiError::BadTenant);
            }
            let body = match body_bytes(req).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            match CommitRequest::from_json(&body) {
                Ok(c) => answer(agent.commit(t, &c.revision).await),
                Err(e) => error(&e),
            }
        }
        (Method::DELETE, Route::Tenant(t)) => answer(agent.apply(t, None).await),
        (Method::PUT, Route::Blocks) => {
            let body = match body_bytes(req).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            match BlockRequest::from_json(&body) {
                Ok(b) => answer(agent.block(&b.key, Some(b.expires)).await),
                Err(e) => error(&e),
            }
        }
        (Method::DELETE, Route::Block(key)) => answer(agent.block(key, None).await),
        (Method::POST, Route::Batch) => {
            let body = match body_bytes(req).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            match BatchRequest::from_json(&body) {
                Ok(b) => {
                    let changes = b
                        .changes
                        .into_iter()
                        .map(|c| {
                            let change = match (c.delete, c.revision, c.policy) {
                                (false, Some(r), Some(p)) => Some((r, p)),
                                _ => None,
                            };
                            (c.tenant, change)
                        })
                        .collect();
                    answer(agent.apply_batch(changes).await)
                }
                Err(e) => error(&e),
            }
        }
        (
            _,
            Route::Batch
            | Route::Tenant(_)
            | Route::Stage(_)
            | Route::Commit(_)
            | Route::Blocks
            | Route::State
            | Route::StateSummary
            | Route::Metrics,
        ) => error(&ApiError::MethodNotAllowed),
        (_, Route::Healthz | Route::Block(_)) => error(&ApiError::NoSuchEndpoint),
    }
}

/// Serves the API until the process ends (the one serve helper of
/// `tollgate-plumbing`: a task per connection, accept errors logged).
pub async fn serve(agent: Arc<Agent>, listener: tokio::net::TcpListener) {
    tollgate_plumbing::serve::Server::new("agent")
        .serve(
            listener,
            move |req| handle(agent.clone(), req),
            std::future::pending(),
        )
        .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tollgate_agent_api::ApplyAnswer;

    async fn text(r: Resp) -> (u16, String, String) {
        let status = r.status().as_u16();
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn apply_errors_answer_with_their_statuses() {
        let (s, ct, body) = text(answer::<ApplyAnswer>(Err(ApplyError::Rejected(vec![
            "a".into(),
        ]))))
        .await;
        assert_eq!((s, ct.as_str()), (422, JSON));
        assert_eq!(
            body,
            "{\n  \"error\": \"rejected; the previous state stays in force\",\n  \"reasons\": [\n    \"a\"\n  ]\n}\n"
        );
        for (e, status) in [
            (ApplyError::NotFound("no tenant `acme`".into()), 404),
            (ApplyError::Failed("boom".into()), 500),
            (ApplyError::Conflict("nothing is staged".into()), 409),
        ] {
            let msg = e.to_string();
            let (s, _, body) = text(answer::<ApplyAnswer>(Err(e))).await;
            assert_eq!(s, status);
            assert_eq!(body, format!("{{\n  \"error\": \"{msg}\"\n}}\n"));
        }
    }

    #[tokio::test]
    async fn answers_are_pretty_json() {
        // scripts/test-agent.sh greps for `"revision": "acme-r1"`
        let a = ApplyAnswer {
            revision: Some("acme-r1".into()),
            ..ApplyAnswer::default()
        };
        let (s, _, body) = text(answer(Ok(a))).await;
        assert_eq!(s, 200);
        assert!(body.contains("\n  \"revision\": \"acme-r1\",\n"), "{body}");
        assert!(body.ends_with("}\n"));
    }
}
