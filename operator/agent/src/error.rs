//! The agent's errors: why an apply did not happen ([`ApplyError`], the
//! HTTP answer through [`tollgate_agent_api::ApiError`]) and what failed in
//! its own work ([`AgentError`]: start, state file, live SBC).

use std::path::PathBuf;

use tollgate_agent_api::ApiError;

use crate::rpc::RpcError;
use crate::trial::ViewMismatch;

/// Why an apply (a PUT, DELETE, stage, commit or block change) did not
/// happen.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApplyError {
    /// Refused before the live SBC was touched (422); the reasons.
    #[error("rejected: {}", .0.join("; "))]
    Rejected(Vec<String>),
    /// No such tenant / block (404).
    #[error("{0}")]
    NotFound(String),
    /// Failed after the swap; the previous state was restored (500).
    #[error("{0}")]
    Failed(String),
    /// A commit of a revision that is not staged (409).
    #[error("{0}")]
    Conflict(String),
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> ApiError {
        match e {
            ApplyError::Rejected(reasons) => ApiError::Rejected(reasons),
            ApplyError::NotFound(m) => ApiError::NotFound(m),
            ApplyError::Failed(m) => ApiError::Failed(m),
            ApplyError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

/// What failed in the agent's own work. The messages are the ones the agent
/// logged and answered before this type (`lastError`, `/healthz`'s reason).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The state dir cannot be created.
    #[error("state dir {}: {source}", .dir.display())]
    StateDir {
        /// The dir.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The trial dir cannot be created.
    #[error("trial dir: {0}")]
    TrialDir(std::io::Error),
    /// `state.json` cannot be read or parsed.
    #[error("{}: {message}", .path.display())]
    StateFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A network of the state that does not parse.
    #[error("bad network {0} in state")]
    BadNetwork(String),
    /// The applied rows do not compose (the reasons).
    #[error("{}", .0.join("; "))]
    Compose(Vec<String>),
    /// The state cannot be serialized.
    #[error("{0}")]
    Serialize(#[from] serde_json::Error),
    /// The state file cannot be written.
    #[error("persist state: {0}")]
    Persist(std::io::Error),
    /// The live data files cannot be written.
    #[error("write {}: {source}", .dir.display())]
    WriteData {
        /// The live data dir.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Kamailio's JSON-RPC failed (or its URL is not usable).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// What Kamailio holds is not the applied state (during an apply).
    #[error("read-back: {0}")]
    Readback(#[source] ViewMismatch),
    /// What Kamailio holds is not the applied state (health, recovery).
    #[error(transparent)]
    NotHeld(ViewMismatch),
    /// Every tenant id is taken (the state holds ~90 million tenants).
    #[error("no tenant id is free")]
    NoFreeId,
    /// The last background consistency check found a difference.
    #[error("{0}")]
    Inconsistent(String),
}

/// A `tg_block` key that cannot be set.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockKeyError {
    /// Its tenant is not applied.
    #[error("no tenant `{0}` is applied")]
    NoTenant(String),
    /// Its class is not a class name.
    #[error("class `{0}` is not a valid class name")]
    BadClass(String),
}
