//! The webhook endpoint: `POST /alerts` with `Authorization: Bearer
//! <token>`, served by the plumbing's serve helper (hyper, HTTP/1.1). See
//! docs/alerts.md.
//!
//! Order of checks: the token (anything unauthenticated gets 401 and
//! nothing else), then whether the sink acts now (503 on a replica that is
//! not the leader), then path (404) and method (405), then the body size
//! (413, by `Content-Length` and while reading), then the payload (400).
//! Nothing is logged here, and the serve helper logs connection errors
//! only: neither the token nor payloads.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tollgate_alerts::{AlertSink, Mapped, PayloadError, Seen, SeenKey, map_alert, parse_payload};
use tollgate_plumbing::auth::authorized;
use tollgate_plumbing::serve::Server;

mod metrics;
pub use metrics::ReceiverMetrics;

/// Webhook bodies above this are refused with 413.
pub const MAX_BODY: usize = 1 << 20;
/// A connection whose request head has not arrived by then is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Alerts remembered as handled (oldest forgotten first).
pub const SEEN_CAP: usize = 10_000;
/// How long an alert is remembered as handled.
pub const SEEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &Value) -> Resp {
    let mut text = serde_json::to_vec(body).unwrap_or_default();
    text.push(b'\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error(status: StatusCode, msg: &str) -> Resp {
    reply(status, &json!({ "error": msg }))
}

/// The receiver: token, sink, the set of alerts already acted on, counters.
#[derive(Debug)]
pub struct Receiver<S> {
    sink: S,
    token: Vec<u8>,
    seen: Mutex<Seen>,
    /// Counters (the operator registers them in its registry).
    pub metrics: ReceiverMetrics,
}

impl<S: AlertSink> Receiver<S> {
    /// A receiver that accepts `token` (an empty token accepts nothing).
    pub fn new(sink: S, token: Vec<u8>) -> Receiver<S> {
        Receiver {
            sink,
            token,
            seen: Mutex::new(Seen::new(SEEN_CAP, SEEN_TTL)),
            metrics: ReceiverMetrics::default(),
        }
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// One request.
    pub async fn handle<B>(&self, req: Request<B>) -> Resp
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let m = &self.metrics;
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if !authorized(auth, &self.token) {
            m.unauthorized.inc();
            let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
            r.headers_mut().insert(
                "www-authenticate",
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        if !self.sink.ready() {
            m.not_leader.inc();
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not the leader replica; retry",
            );
        }
        if req.uri().path() != "/alerts" {
            m.not_found.inc();
            return error(StatusCode::NOT_FOUND, "no such endpoint (POST /alerts)");
        }
        if req.method() != Method::POST {
            m.method.inc();
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed (POST)");
            r.headers_mut()
                .insert("allow", hyper::header::HeaderValue::from_static("POST"));
            return r;
        }
        let too_large = || {
            m.too_large.inc();
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over {MAX_BODY} bytes"),
            )
        };
        if let Some(len) = req.headers().get("content-length") {
            match len.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(n) if n > MAX_BODY as u64 => return too_large(),
                Some(_) => {}
                None => {
                    m.bad_request.inc();
                    return error(StatusCode::BAD_REQUEST, "bad Content-Length");
                }
            }
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return too_large();
                }
                m.bad_request.inc();
                return error(StatusCode::BAD_REQUEST, "the body could not be read");
            }
        };
        let payload = match parse_payload(&body) {
            Ok(p) => p,
            Err(e) => {
                match e {
                    PayloadError::Version(_) => m.bad_version.inc(),
                    _ => m.bad_request.inc(),
                };
                // the parser's message names a position and an expectation,
                // not the payload's content
                return error(StatusCode::BAD_REQUEST, &e.to_string());
            }
        };
        let (mut actions, mut duplicates, mut resolved, mut failed) = (0u64, 0u64, 0u64, 0u64);
        let mut ignored = Vec::new();
        for alert in &payload.alerts {
            let action = match map_alert(alert) {
                Mapped::Resolved => {
                    m.resolved.inc();
                    resolved += 1;
                    continue;
                }
                Mapped::Ignored(reason) => {
                    m.firing.inc();
                    m.ignored.inc();
                    ignored.push(json!({
                        "alertname": alert.labels.get("alertname").map(|s| s.chars().take(253).collect::<String>()),
                        "fingerprint": tollgate_alerts::fingerprint_of(alert),
                        "reason": reason,
                    }));
                    continue;
                }
                Mapped::Action(a) => {
                    m.firing.inc();
                    a
                }
            };
            let key: SeenKey = (
                tollgate_alerts::fingerprint_of(alert),
                alert.starts_at.clone(),
                alert.status.clone(),
            );
            if !self.seen.lock().await.claim(key.clone(), Instant::now()) {
                m.duplicates.inc();
                duplicates += 1;
                continue;
            }
            let kind = action.kind();
            match self.sink.act_checked(action).await {
                Ok(Some(reason)) => {
                    // nothing to act on (e.g. an unknown policy): a retry
                    // would not change that
                    m.ignored.inc();
                    ignored.push(json!({
                        "alertname": alert.labels.get("alertname").map(|s| s.chars().take(253).collect::<String>()),
                        "fingerprint": tollgate_alerts::fingerprint_of(alert),
                        "reason": reason,
                    }));
                }
                Ok(None) => {
                    actions += 1;
                    match kind {
                        "rollback" => m.rollback.inc(),
                        _ => m.respond.inc(),
                    };
                }
                Err(_) => {
                    // the sink reports its own error; a retry acts again
                    self.seen.lock().await.release(&key);
                    m.sink_failures.inc();
                    failed += 1;
                }
            }
        }
        let body = json!({
            "received": payload.alerts.len(),
            "actions": actions,
            "duplicates": duplicates,
            "resolved": resolved,
            "ignored": ignored,
            "failed": failed,
        });
        if failed > 0 {
            // Alertmanager retries on 5xx; what succeeded is remembered
            reply(StatusCode::INTERNAL_SERVER_ERROR, &body)
        } else {
            reply(StatusCode::OK, &body)
        }
    }
}

/// Serves `POST /alerts` on `listener` until `shutdown` completes, handing
/// new actions to `sink`.
pub async fn serve<S: AlertSink>(
    listener: tokio::net::TcpListener,
    sink: S,
    token: Vec<u8>,
    shutdown: impl Future<Output = ()>,
) {
    serve_receiver(listener, Arc::new(Receiver::new(sink, token)), shutdown).await;
}

/// [`serve`] with a receiver the caller keeps (for its metrics): the
/// plumbing's serve helper, with [`HEADER_READ_TIMEOUT`].
pub async fn serve_receiver<S: AlertSink>(
    listener: tokio::net::TcpListener,
    receiver: Arc<Receiver<S>>,
    shutdown: impl Future<Output = ()>,
) {
    Server::new("alerts")
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve(
            listener,
            move |req| {
                let rx = Arc::clone(&receiver);
                async move { rx.handle(req).await }
            },
            shutdown,
        )
        .await;
}

#[cfg(test)]
mod tests;
