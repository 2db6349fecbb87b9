//! The SBC agent (docs/agent.md): beside each Kamailio, it takes tenant
//! policy revisions, validates them (renderer, own checks, a trial Kamailio
//! probed against the evaluator), swaps the data files, reloads the changed
//! tables over JSON-RPC, reads back what Kamailio holds and restores the last
//! good state on any failure. Its state survives restarts (state dir).
//!
//! Modules, lower ones first (each uses only those above it):
//! - [`config`]: the settings; [`error`]: the errors; [`rows`]: pure
//!   helpers and the own checks; [`rpc`]: Kamailio's JSON-RPC and read-back;
//!   [`fleet`]: fleet-wide counting's state read from Kamailio;
//!   [`trial`]: the trial instance and its probes;
//! - [`state`]: what is persisted (`state.json`); [`prepare`]: the pure
//!   part of an apply (render, compose, checks); [`metrics`]: counters and
//!   labels of `/metrics`; [`registry`]: the one metrics registry;
//! - [`agent`]: the [`Agent`] and its in-memory state;
//! - its operations: [`apply`] (the pipeline), [`staging`] (stage and
//!   commit), [`blocks`], [`readback`] (`/v1/state`, `/healthz`),
//!   [`recovery`] (reconcile, window refresh), [`scrape`] (`/metrics`);
//! - [`http`]: the API (types in `tollgate-agent-api`).

pub mod agent;
pub mod apply;
pub mod blocks;
pub mod config;
pub mod error;
pub mod fleet;
pub mod http;
pub mod labels;
pub mod metrics;
pub mod prepare;
pub mod readback;
pub mod recovery;
pub mod registry;
pub mod rows;
pub mod rpc;
pub mod scrape;
pub mod staging;
pub mod state;
pub mod trial;

pub use agent::{Agent, init_data_dir};
pub use config::Config;
pub use error::{AgentError, ApplyError, BlockKeyError};
pub use metrics::{
    CLASS_OUTCOMES, Metrics, class_labels, counter_seeds, country_label, country_of_rule,
    policy_classes,
};
pub use prepare::{Change, Current, Prepared, prepare};
pub use state::TenantState;
