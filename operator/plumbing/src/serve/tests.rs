use super::*;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn hello(req: Request<Incoming>) -> Response<String> {
    if req.uri().path() == "/slow" {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut r = Response::new(format!("hello {}\n", req.uri().path()));
    if req.uri().path() == "/missing" {
        *r.status_mut() = StatusCode::NOT_FOUND;
    }
    r
}

async fn start(server: Server) -> (std::net::SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = watch::channel(false);
    tokio::spawn(server.serve(listener, hello, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    (addr, tx)
}

/// Sends one request on `s` and reads until the connection closes.
async fn request(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

#[tokio::test]
async fn answers_with_the_handlers_status_and_body() {
    let (addr, _stop) = start(Server::new("t")).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let r = request(&mut s, "/missing").await;
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    assert!(r.ends_with("hello /missing\n"), "{r}");
    let r = serve_once(addr, "/").await;
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
}

async fn serve_once(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    request(&mut s, path).await
}

#[tokio::test]
async fn shutdown_refuses_new_connections_and_answers_the_request_in_progress() {
    let (addr, stop) = start(Server::new("t")).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send_replace(true);
    let mut out = String::new();
    // keep-alive was asked for, yet the connection closes after the answer
    let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_string(&mut out)).await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("hello /slow\n"), "{out}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn refuse_while_drops_new_and_open_connections() {
    let (refuse_tx, refuse_rx) = watch::channel(false);
    let (addr, _stop) = start(Server::new("t").refuse_while(refuse_rx)).await;
    let mut open = TcpStream::connect(addr).await.unwrap();
    open.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    refuse_tx.send_replace(true);
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), open.read_to_string(&mut out)).await;
    assert_eq!(out, "", "closed mid-request, unanswered");
    assert_eq!(
        serve_once(addr, "/").await,
        "",
        "accepted, then closed unanswered"
    );
    refuse_tx.send_replace(false);
    assert!(
        serve_once(addr, "/")
            .await
            .starts_with("HTTP/1.1 200 OK\r\n")
    );
}

#[tokio::test]
async fn header_read_timeout_closes_a_silent_connection() {
    let (addr, _stop) =
        start(Server::new("t").header_read_timeout(Duration::from_millis(200))).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(r.is_ok(), "closed by the server");
    // hyper answers 408 or just closes; either way no handler ran
    assert!(!String::from_utf8_lossy(&out).contains("hello"));
}

#[tokio::test]
async fn the_plain_helper_serves() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, hello, std::future::pending()));
    assert!(serve_once(addr, "/").await.ends_with("hello /\n"));
}
