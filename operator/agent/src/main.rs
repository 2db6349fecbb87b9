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
//! the flag in upper case with `_` (e.g. `TG_AGENT_TOKEN_FILE`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tollgate_agent::{Agent, Config, http, trial::TrialConfig};

const FLAGS: &[&str] = &[
    "listen",
    "rpc-url",
    "data-dir",
    "state-dir",
    "token-file",
    "kamailio",
    "cfg",
    "trial-ip",
    "trial-shm-mb",
    "trial-pkg-mb",
    "trial-mode",
    "geoip-db",
    "max-probes",
    "reconcile-secs",
    "rpc-timeout-secs",
];

fn args() -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut m = std::collections::BTreeMap::new();
    for f in FLAGS {
        let env = format!("TG_AGENT_{}", f.to_uppercase().replace('-', "_"));
        if let Ok(v) = std::env::var(env) {
            m.insert(f.to_string(), v);
        }
    }
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            return Err(String::new());
        }
        let Some(name) = a.strip_prefix("--") else {
            return Err(format!("unexpected argument {a}"));
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (
                name.to_string(),
                it.next().ok_or_else(|| format!("--{name} needs a value"))?,
            ),
        };
        if !FLAGS.contains(&name.as_str()) {
            return Err(format!("unknown flag --{name}"));
        }
        m.insert(name, value);
    }
    Ok(m)
}

fn config() -> Result<Config, String> {
    let m = args()?;
    let get = |k: &str, d: &str| m.get(k).cloned().unwrap_or_else(|| d.to_string());
    let need = |k: &str| {
        m.get(k)
            .cloned()
            .ok_or_else(|| format!("--{k} is required"))
    };
    let num = |k: &str, d: u64| -> Result<u64, String> {
        get(k, &d.to_string())
            .parse()
            .map_err(|_| format!("--{k} must be a number"))
    };
    let token_file = need("token-file")?;
    let token = tollgate_plumbing::auth::read_token_file(&token_file)?;
    let state_dir = PathBuf::from(need("state-dir")?);
    let cfg_default = std::env::current_dir()
        .map(|d| d.join("sbc/kamailio/tollgate.cfg").display().to_string())
        .unwrap_or_default();
    Ok(Config {
        listen: get("listen", "127.0.0.1:9180"),
        rpc_url: get("rpc-url", "http://127.0.0.1:5061/RPC"),
        data_dir: PathBuf::from(need("data-dir")?),
        token,
        trial: TrialConfig {
            kamailio: PathBuf::from(get("kamailio", "/usr/sbin/kamailio")),
            cfg: PathBuf::from(get("cfg", &cfg_default)),
            ip: get("trial-ip", "127.0.0.1"),
            shm_mb: num("trial-shm-mb", 256)? as u32,
            pkg_mb: num("trial-pkg-mb", 16)? as u32,
            geoip: m.get("geoip-db").map(PathBuf::from),
            dir: state_dir.join("trial"),
            max_probes: num("max-probes", 200)? as usize,
            warm: match get("trial-mode", "warm").as_str() {
                "warm" => true,
                "cold" => false,
                o => return Err(format!("--trial-mode is warm or cold, not `{o}`")),
            },
        },
        state_dir,
        reconcile_secs: num("reconcile-secs", 5)?,
        rpc_timeout_secs: num("rpc-timeout-secs", 30)?,
    })
}

fn main() -> ExitCode {
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!(
                "usage: tollgate-agent --token-file FILE --data-dir DIR --state-dir DIR [--listen ADDR] [--rpc-url URL] [--kamailio BIN] [--cfg FILE] [--trial-ip IP] [--trial-shm-mb N] [--trial-pkg-mb N] [--trial-mode warm|cold] [--geoip-db FILE] [--max-probes N] [--reconcile-secs N] [--rpc-timeout-secs N]"
            );
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
            eprintln!("error: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let listen = cfg.listen.clone();
        let every = Duration::from_secs(cfg.reconcile_secs.max(1));
        let agent = match Agent::new(cfg) {
            Ok(a) => Arc::new(a),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        let listener = match tokio::net::TcpListener::bind(&listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: listen {listen}: {e}");
                return ExitCode::from(1);
            }
        };
        eprintln!(
            "agent: listening on http://{listen}, kamailio rpc {}",
            agent.cfg.rpc_url
        );
        // recovery at start, then a periodic check that Kamailio holds the state
        let a = agent.clone();
        tokio::spawn(async move {
            loop {
                match a.reconcile().await {
                    Ok(true) => eprintln!("agent: recovery: the last good state is applied again"),
                    Ok(false) => {}
                    Err(e) => eprintln!("agent: reconcile: {e}"),
                }
                // windows are rendered for 8 days: refresh daily
                for t in a.refresh_windows(Duration::from_secs(86_400)).await {
                    eprintln!("agent: time windows of {t} refreshed");
                }
                tokio::time::sleep(every).await;
            }
        });
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: SIGTERM handler: {e}");
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
    })
}
