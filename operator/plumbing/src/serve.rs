//! The one HTTP serve helper of Tollgate's servers (the operator's metrics
//! and health endpoints, the Alertmanager webhook, the agent's API, the
//! agent's test double): hyper 1, HTTP/1.1, one task per connection.
//!
//! ```no_run
//! # async fn f(listener: tokio::net::TcpListener) {
//! use hyper::{Request, Response, body::Incoming};
//! async fn handle(_req: Request<Incoming>) -> Response<String> {
//!     Response::new("ok\n".to_string())
//! }
//! tollgate_plumbing::serve::serve(listener, handle, std::future::pending()).await;
//! # }
//! ```
//!
//! A handler answers every request (it has no error path: a failure is an
//! answer with a status). What the helper logs (`tracing`) names the server
//! and the error, never a request's or an answer's content: accept errors
//! as warnings (the loop goes on after a short pause, e.g. when out of file
//! descriptors), connection errors (resets, header timeouts, malformed
//! requests) at debug level.
//!
//! Shutdown: when the `shutdown` future completes the listener closes (new
//! connections are refused), idle connections close, and a request in
//! progress is answered before its connection closes (hyper's graceful
//! shutdown). [`Server::serve`] returns at once; the connections finish in
//! their own tasks.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Pause after a failed `accept` (e.g. `EMFILE`) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `handler` on `listener` until `shutdown` completes, with the
/// defaults of [`Server::new`].
pub async fn serve<H, F, B>(listener: TcpListener, handler: H, shutdown: impl Future<Output = ()>)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Server::new("http").serve(listener, handler, shutdown).await;
}

/// The settings of one server; [`Server::serve`] runs it.
#[derive(Clone, Debug)]
pub struct Server {
    name: &'static str,
    header_read_timeout: Option<Duration>,
    refuse: Option<watch::Receiver<bool>>,
}

impl Server {
    /// A server named `name` in its log lines, without a header read
    /// timeout.
    pub fn new(name: &'static str) -> Server {
        Server {
            name,
            header_read_timeout: None,
            refuse: None,
        }
    }

    /// Closes a connection whose request head has not fully arrived
    /// `timeout` after the server began waiting for it. Hyper starts that
    /// wait as soon as a connection is idle, so this also closes idle
    /// keep-alive connections after `timeout`: clients that pool
    /// connections may then meet a closed one.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Server {
        self.header_read_timeout = Some(timeout);
        self
    }

    /// While `refuse` holds `true`, new connections are closed unanswered
    /// and open ones close at once, even mid-request, as when the process
    /// behind the port is gone (the agent's test double plays an
    /// unreachable agent with this).
    pub fn refuse_while(mut self, refuse: watch::Receiver<bool>) -> Server {
        self.refuse = Some(refuse);
        self
    }

    /// Serves `handler` on `listener` until `shutdown` completes (see the
    /// module docs for what shutdown does).
    pub async fn serve<H, F, B>(
        self,
        listener: TcpListener,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let handler = Arc::new(handler);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                r = listener.accept() => match r {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(server = self.name, error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            if self.refuse.as_ref().is_some_and(|r| *r.borrow()) {
                drop(stream);
                continue;
            }
            let h = Arc::clone(&handler);
            let svc = hyper::service::service_fn(move |req| {
                let fut = h(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            if let Some(t) = self.header_read_timeout {
                builder.timer(TokioTimer::new()).header_read_timeout(t);
            }
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            let mut stop = stop_rx.clone();
            let mut refuse = self.refuse.clone();
            let name = self.name;
            tokio::spawn(async move {
                let mut conn = std::pin::pin!(conn);
                let refused = async {
                    match refuse.as_mut() {
                        Some(r) => {
                            let _ = r.wait_for(|on| *on).await;
                        }
                        None => std::future::pending().await,
                    }
                };
                let stopped = async {
                    // an error: the server's task ended without a shutdown
                    // (aborted); its connections wind down all the same
                    let _ = stop.wait_for(|s| *s).await;
                };
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    () = stopped => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                    () = refused => Ok(()),
                };
                if let Err(e) = result {
                    tracing::debug!(server = name, error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
    }
}

#[cfg(test)]
mod tests;
