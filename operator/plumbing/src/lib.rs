//! Plumbing shared by Tollgate's servers (the agent and the operator): no
//! Kubernetes, no policy semantics.

pub mod auth;
