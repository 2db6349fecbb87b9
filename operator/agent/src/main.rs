//! `tollgate-agent`: the SBC agent beside one Kamailio (docs/agent.md).
//!
//! ```console
//! tollgate-agent --token-file FILE --data-dir DIR --state-dir DIR
//!     [--listen 127.0.0.1:9180] [--rpc-url http://127.0.0.1:5061/RPC]
//!     [--kamailio /usr/sbin/kamailio] [--cfg sbc/kamailio/tollgate.cfg]
//!     [--trial-ip 127.0.0.1] [--trial-shm-mb 256] [--trial-pkg-mb 16]
//!     [--trial-mode warm]
//!     [--geoip-db FILE] [--max-probes 200] [--reconcile-secs 5]
//!     [--rpc-timeout-secs 30]
//! ```
//! Every flag can also be given as an environment variable: `TG_AGENT_` and
//! the flag in upper case with `_` (e.g. `TG_AGENT_TOKEN_FILE`). Exit codes:
//! 2 for bad flags (or an unreadable token file), 1 when the agent cannot
//! start, 0 on SIGTERM or SIGINT. Logs go to stderr through `tracing`
//! (`RUST_LOG`, default `info`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tollgate_agent::{Agent, Config, http, trial::TrialConfig};

/// Tollgate's SBC agent: validates, applies, reads back and reports tenant
/// policies on one Kamailio.
#[derive(Debug, Parser)]
#[command(name = "tollgate-agent", version)]
struct Args {
    /// The bearer token's file (one token, at least 16 characters).
    #[arg(long, env = "TG_AGENT_TOKEN_FILE", value_name = "FILE")]
    token_file: String,
    /// The live Kamailio's data dir (its `TG_DB_URL`).
    #[arg(long, env = "TG_AGENT_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
    /// Where `state.json` and the trial instances' dirs live.
    #[arg(long, env = "TG_AGENT_STATE_DIR", value_name = "DIR")]
    state_dir: PathBuf,
    /// The API's address.
    #[arg(
        long,
        env = "TG_AGENT_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:9180"
    )]
    listen: String,
    /// Kamailio's JSON-RPC URL.
    #[arg(
        long,
        env = "TG_AGENT_RPC_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:5061/RPC"
    )]
    rpc_url: String,
    /// The Kamailio binary the trial runs.
    #[arg(
        long,
        env = "TG_AGENT_KAMAILIO",
        value_name = "BIN",
        default_value = "/usr/sbin/kamailio"
    )]
    kamailio: PathBuf,
    /// The cfg the trial runs (the live one's) [default:
    /// ./sbc/kamailio/tollgate.cfg].
    #[arg(long, env = "TG_AGENT_CFG", value_name = "FILE")]
    cfg: Option<PathBuf>,
    /// The trial instance's address.
    #[arg(
        long,
        env = "TG_AGENT_TRIAL_IP",
        value_name = "IP",
        default_value = "127.0.0.1"
    )]
    trial_ip: String,
    /// The trial instance's shared memory (MB).
    #[arg(
        long,
        env = "TG_AGENT_TRIAL_SHM_MB",
        value_name = "N",
        default_value_t = 256
    )]
    trial_shm_mb: u32,
    /// The trial instance's private memory per process (MB).
    #[arg(
        long,
        env = "TG_AGENT_TRIAL_PKG_MB",
        value_name = "N",
        default_value_t = 16
    )]
    trial_pkg_mb: u32,
    /// Keep one trial Kamailio between applies (warm) or start one per
    /// apply (cold).
    #[arg(long, env = "TG_AGENT_TRIAL_MODE", value_enum, default_value_t = TrialMode::Warm)]
    trial_mode: TrialMode,
    /// The GeoIP database the live Kamailio uses.
    #[arg(long, env = "TG_AGENT_GEOIP_DB", value_name = "FILE")]
    geoip_db: Option<PathBuf>,
    /// Most destination probes per apply.
    #[arg(
        long,
        env = "TG_AGENT_MAX_PROBES",
        value_name = "N",
        default_value_t = 200
    )]
    max_probes: usize,
    /// Seconds between checks that Kamailio holds the applied state.
    #[arg(
        long,
        env = "TG_AGENT_RECONCILE_SECS",
        value_name = "N",
        default_value_t = 5
    )]
    reconcile_secs: u64,
    /// Seconds a JSON-RPC call may take.
    #[arg(
        long,
        env = "TG_AGENT_RPC_TIMEOUT_SECS",
        value_name = "N",
        default_value_t = 30
    )]
    rpc_timeout_secs: u64,
}

/// `--trial-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TrialMode {
    Warm,
    Cold,
}

impl Args {
    /// The agent's settings (reads the token file).
    fn config(self) -> Result<Config, tollgate_plumbing::auth::TokenFileError> {
        let token = tollgate_plumbing::auth::read_token_file(&self.token_file)?;
        let cfg = self.cfg.unwrap_or_else(|| {
            std::env::current_dir()
                .map(|d| d.join("sbc/kamailio/tollgate.cfg"))
                .unwrap_or_default()
        });
        Ok(Config {
            listen: self.listen,
            rpc_url: self.rpc_url,
            data_dir: self.data_dir,
            token,
            trial: TrialConfig {
                kamailio: self.kamailio,
                cfg,
                ip: self.trial_ip,
                shm_mb: self.trial_shm_mb,
                pkg_mb: self.trial_pkg_mb,
                geoip: self.geoip_db,
                dir: self.state_dir.join("trial"),
                max_probes: self.max_probes,
                warm: self.trial_mode == TrialMode::Warm,
            },
            state_dir: self.state_dir,
            reconcile_secs: self.reconcile_secs,
            rpc_timeout_secs: self.rpc_timeout_secs,
        })
    }
}

fn main() -> ExitCode {
    // `tollgate-agent --init-data DIR`: the empty policy set into DIR (files
    // that exist are left alone), for an SBC's first start
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--init-data") {
        let Some(dir) = argv.get(2).filter(|_| argv.len() == 3) else {
            eprintln!("usage: tollgate-agent --init-data DIR");
            return ExitCode::from(2);
        };
        return match tollgate_agent::init_data_dir(std::path::Path::new(dir)) {
            Ok(w) => {
                eprintln!("{dir}: {} tables written", w.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{dir}: {e}");
                ExitCode::from(1)
            }
        };
    }
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(cfg))
}

async fn run(cfg: Config) -> ExitCode {
    let listen = cfg.listen.clone();
    let every = Duration::from_secs(cfg.reconcile_secs.max(1));
    let agent = match Agent::new(cfg) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("listen {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        "listening on http://{listen}, kamailio rpc {}",
        agent.cfg.rpc_url
    );
    // recovery at start, then a periodic check that Kamailio holds the state
    let a = agent.clone();
    tokio::spawn(async move {
        loop {
            match a.reconcile().await {
                Ok(true) => tracing::info!("recovery: the last good state is applied again"),
                Ok(false) => {}
                Err(e) => tracing::warn!("reconcile: {e}"),
            }
            // windows are rendered for 8 days: refresh daily
            for t in a.refresh_windows(Duration::from_secs(86_400)).await {
                tracing::info!("time windows of {t} refreshed");
            }
            tokio::time::sleep(every).await;
        }
    });
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("SIGTERM handler: {e}");
            return ExitCode::from(1);
        }
    };
    let code = tokio::select! {
        _ = http::serve(agent.clone(), listener) => ExitCode::SUCCESS,
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        _ = term.recv() => ExitCode::SUCCESS,
    };
    // the warm trial Kamailio must not outlive the agent
    agent.shutdown().await;
    code
}
