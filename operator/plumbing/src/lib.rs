//! Plumbing shared by Tollgate's servers (the agent and the operator): no
//! Kubernetes, no policy semantics.
//!
//! - [`auth`]: bearer-token checks and token files.
//! - [`serve`]: the one HTTP serve helper (hyper 1, HTTP/1.1).
//! - [`metrics`]: the one metrics registry (`prometheus-client`) and its
//!   text exposition.

pub mod auth;
pub mod metrics;
pub mod serve;
