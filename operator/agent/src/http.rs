//! The agent's HTTP API (hyper, HTTP/1.1). See docs/agent.md.

use super::{Agent, ApplyError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::sync::Arc;
use tollgate_ir::CompiledPolicy;

/// Request bodies above this are refused with 413.
pub const MAX_BODY: usize = 32 << 20;

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Value) -> Resp {
    let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
    text.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(status: StatusCode, msg: impl Into<String>) -> Resp {
    reply(status, json!({"error": msg.into()}))
}

use tollgate_plumbing::auth::authorized;

/// A valid tenant path segment (the renderer checks the policy's own name).
fn tenant_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 63
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

async fn body_json(req: Request<Incoming>) -> Result<Value, Resp> {
    if let Some(len) = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > MAX_BODY as u64
    {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes"),
        ));
    }
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over {MAX_BODY} bytes"),
                ));
            }
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("reading the body: {e}"),
            ));
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))
}

fn apply_result(r: Result<Value, ApplyError>) -> Resp {
    match r {
        Ok(v) => reply(StatusCode::OK, v),
        Err(ApplyError::Rejected(reasons)) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "rejected; the previous state stays in force", "reasons": reasons}),
        ),
        Err(ApplyError::NotFound(m)) => error(StatusCode::NOT_FOUND, m),
        Err(ApplyError::Failed(m)) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
        Err(ApplyError::Conflict(m)) => error(StatusCode::CONFLICT, m),
    }
}

/// The `tenant` of `GET /v1/state?tenant=NAME` (`None`: no query, every
/// tenant). Any other query is an error.
pub fn state_filter(query: Option<&str>) -> Result<Option<String>, &'static str> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    match q.split_once('=') {
        Some(("tenant", t)) if tenant_ok(t) => Ok(Some(t.to_owned())),
        _ => Err("the only query of /v1/state is tenant=<tenant name>"),
    }
}

/// The revision and policy of a `PUT /v1/tenants/{t}` or `POST
/// …/stage` body; `Err`: the answer to send.
async fn revision_body(t: &str, req: Request<Incoming>) -> Result<(String, CompiledPolicy), Resp> {
    if !tenant_ok(t) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad tenant name in the path",
        ));
    }
    let mut body = body_json(req).await?;
    let Some(rev) = body
        .get("revision")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "`revision` (a string) is required",
        ));
    };
    let Some(policy) = body.get_mut("policy").map(Value::take) else {
        return Err(error(StatusCode::BAD_REQUEST, "`policy` is required"));
    };
    match serde_json::from_value(policy) {
        Ok(p) => Ok((rev, p)),
        Err(e) => Err(reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "rejected; the previous state stays in force",
                   "reasons": [format!("malformed policy: {e}")]}),
        )),
    }
}

/// One request.
pub async fn handle(agent: Arc<Agent>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/healthz" && method == Method::GET {
        return match agent.healthy().await {
            Ok(()) => reply(StatusCode::OK, json!({"status": "ok"})),
            Err(e) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unhealthy", "reason": e}),
            ),
        };
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if !authorized(auth, &agent.cfg.token) {
        let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
        r.headers_mut().insert(
            "www-authenticate",
            hyper::header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["metrics"]) => Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(agent.metrics_text().await)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
        (Method::GET, ["v1", "state"]) => match state_filter(req.uri().query()) {
            Ok(only) => reply(StatusCode::OK, agent.state(only.as_deref()).await),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        (Method::PUT, ["v1", "tenants", t]) => {
            let t = t.to_string();
            match revision_body(&t, req).await {
                Ok((rev, policy)) => apply_result(agent.apply(&t, Some((rev, policy))).await),
                Err(r) => r,
            }
        }
        (Method::POST, ["v1", "tenants", t, "stage"]) => {
            let t = t.to_string();
            match revision_body(&t, req).await {
                Ok((rev, policy)) => apply_result(agent.stage(&t, rev, policy).await),
                Err(r) => r,
            }
        }
        (Method::POST, ["v1", "tenants", t, "commit"]) => {
            let t = t.to_string();
            if !tenant_ok(&t) {
                return error(StatusCode::BAD_REQUEST, "bad tenant name in the path");
            }
            let body = match body_json(req).await {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(rev) = body.get("revision").and_then(Value::as_str) else {
                return error(StatusCode::BAD_REQUEST, "`revision` (a string) is required");
            };
            apply_result(agent.commit(&t, rev).await)
        }
        (Method::DELETE, ["v1", "tenants", t]) => {
            let t = t.to_string();
            apply_result(agent.apply(&t, None).await)
        }
        (Method::PUT, ["v1", "blocks"]) => {
            let body = match body_json(req).await {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(key) = body.get("key").and_then(Value::as_str) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "`key` (tenant or tenant::class) is required",
                );
            };
            let exp = match body.get("expires") {
                None | Some(Value::Null) => 0,
                Some(v) => match v.as_i64() {
                    Some(e) => e,
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "`expires` must be epoch seconds (0 = until lifted)",
                        );
                    }
                },
            };
            apply_result(agent.block(key, Some(exp)).await)
        }
        (Method::DELETE, ["v1", "blocks", key]) => {
            let key = key.to_string();
            apply_result(agent.block(&key, None).await)
        }
        (_, ["v1", "tenants", _])
        | (_, ["v1", "tenants", _, "stage" | "commit"])
        | (_, ["v1", "blocks"])
        | (_, ["v1", "state"])
        | (_, ["metrics"]) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// Serves the API until the process ends.
pub async fn serve(agent: Arc<Agent>, listener: tokio::net::TcpListener) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("agent: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let agent = agent.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let agent = agent.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(agent, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        assert!(tenant_ok("acme"));
        assert!(tenant_ok("acme-open"));
        assert!(!tenant_ok("../x"));
        assert!(!tenant_ok(""));
        assert!(!tenant_ok("a:b"));
    }

    #[test]
    fn state_query() {
        assert_eq!(state_filter(None), Ok(None));
        assert_eq!(state_filter(Some("")), Ok(None));
        assert_eq!(state_filter(Some("tenant=acme")), Ok(Some("acme".into())));
        assert!(state_filter(Some("tenant=../x")).is_err());
        assert!(state_filter(Some("tenant=")).is_err());
        assert!(state_filter(Some("other=1")).is_err());
        assert!(state_filter(Some("tenant=a&tenant=b")).is_err());
    }
}
