//! A stand-alone alert receiver for tests and trials: `webhook::serve` with a
//! sink that prints every new action as one JSON line on stdout
//! (`{"receivedUnixMs": ..., "action": {...}}`) and answers OK.
//!
//! ```console
//! cargo run -p tollgate-operator --example alert-sink -- --listen 127.0.0.1:9190 --token-file FILE
//! ```
//!
//! The operator implements the same trait to apply the actions.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_alerts::{AlertAction, AlertSink};

#[derive(Debug)]
struct Print;

impl AlertSink for Print {
    type Error = std::io::Error;

    async fn act(&self, action: AlertAction) -> Result<(), std::io::Error> {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let line = serde_json::json!({"receivedUnixMs": ms, "action": action});
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()
    }
}

/// A stand-alone alert receiver printing every new action as a JSON line.
#[derive(clap::Parser, Debug)]
struct Args {
    /// Address to listen on (`POST /alerts`).
    #[arg(long, default_value = "127.0.0.1:9190")]
    listen: String,
    /// File holding the bearer token Alertmanager presents.
    #[arg(long)]
    token_file: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let Args { listen, token_file } = <Args as clap::Parser>::parse();
    let token = match tollgate_plumbing::auth::read_token_file(&token_file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: listen {listen}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    eprintln!("alert-sink: listening on {listen} (POST /alerts)");
    tollgate_operator::webhook::serve(listener, Print, token, std::future::pending()).await;
    std::process::ExitCode::SUCCESS
}
