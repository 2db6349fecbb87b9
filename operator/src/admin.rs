//! The operator's metrics and health endpoints (`--metrics-addr`):
//! `GET /metrics` (the process's one registry, Prometheus text 0.0.4),
//! `GET /healthz` (the process runs), `GET /readyz` (503 until the
//! operator has started: the lease manager is up, or no leader election).
//! Served by the plumbing's serve helper; no authentication (a cluster
//! network endpoint, as is usual for /metrics).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tollgate_plumbing::metrics::{self, Registry};
use tollgate_plumbing::serve::Server;

/// One request.
pub fn handle<B>(req: &Request<B>, registry: &Registry, ready: bool) -> Response<Full<Bytes>> {
    let (code, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::encode(registry),
        ),
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") if ready => (StatusCode::OK, "text/plain", "ready\n".into()),
        (&Method::GET, "/readyz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "starting\n".into(),
        ),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    r
}

/// Serves the endpoints on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    ready: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) {
    Server::new("metrics")
        .serve(
            listener,
            move |req| {
                let r = handle(&req, &registry, *ready.borrow());
                async move { r }
            },
            shutdown,
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::metrics::Metrics;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    #[test]
    fn endpoints() {
        let mut registry = Registry::default();
        let m = Metrics::default();
        m.register(&mut registry);
        m.set_leader(true);
        let r = handle(&get("/metrics"), &registry, false);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            handle(&get("/healthz"), &registry, false).status(),
            StatusCode::OK
        );
        assert_eq!(
            handle(&get("/readyz"), &registry, false).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            handle(&get("/readyz"), &registry, true).status(),
            StatusCode::OK
        );
        assert_eq!(
            handle(&get("/nope"), &registry, true).status(),
            StatusCode::NOT_FOUND
        );
        let post = Request::post("/metrics").body(()).unwrap();
        assert_eq!(
            handle(&post, &registry, true).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn metrics_over_http_has_the_registry() {
        use http_body_util::BodyExt;
        let mut registry = Registry::default();
        let m = Metrics::default();
        m.register(&mut registry);
        m.set_leader(true);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_ready_tx, ready) = watch::channel(true);
        let (stop_tx, mut stop) = watch::channel(false);
        let server = tokio::spawn(serve(listener, Arc::new(registry), ready, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<Bytes>>();
        let resp = client
            .get(format!("http://{addr}/metrics").parse().unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("\ntollgate_operator_leader 1\n"), "{text}");
        stop_tx.send_replace(true);
        server.await.unwrap();
    }
}
