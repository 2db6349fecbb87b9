//! The agent's settings (`tollgate-agent`'s flags, `main.rs`).

use std::path::PathBuf;

use crate::trial;

/// The agent's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: String,
    pub rpc_url: String,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub token: Vec<u8>,
    pub trial: trial::TrialConfig,
    /// Seconds between checks that Kamailio holds the applied state.
    pub reconcile_secs: u64,
    pub rpc_timeout_secs: u64,
}
