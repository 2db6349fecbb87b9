//! The operator binary exits on SIGTERM even when its API server does not
//! answer: reconciles and watches waiting on it get `--shutdown-grace-secs`,
//! then the process exits (before Kubernetes would have to kill it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A kubeconfig naming `server`.
fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let f = dir.join("kubeconfig");
    std::fs::write(
        &f,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: default\n\
             current-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    f
}

#[test]
fn exits_on_sigterm_when_the_api_server_does_not_answer() {
    // accepts connections (the kernel's backlog) and never answers
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", silent.local_addr().unwrap());
    let dir = std::env::temp_dir().join(format!("tg-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = metrics.local_addr().unwrap().to_string();
    drop(metrics);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-operator"))
        .args([
            "--no-leader-election",
            "--namespace",
            "default",
            "--metrics-addr",
            &addr,
            "--shutdown-grace-secs",
            "2",
            "--log-format",
            "json",
        ])
        .env("KUBECONFIG", kubeconfig(&dir, &server))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tollgate-operator starts");
    // running: its health endpoint answers while its API calls wait
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no /healthz");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > Duration::from_secs(25) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut log = String::new();
    if let Some(mut e) = child.stdout.take() {
        let _ = e.read_to_string(&mut log);
    }
    std::fs::remove_dir_all(&dir).ok();
    let status = status.unwrap_or_else(|| panic!("still running 25 s after SIGTERM:\n{log}"));
    eprintln!("exited {:.1} s after SIGTERM", t0.elapsed().as_secs_f64());
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    // what held it: the controller did not stop by itself
    assert!(
        log.contains("did not stop within the shutdown grace"),
        "{log}"
    );
    drop(silent);
}
