//! The Tollgate operator: reconciles `TollPolicy` resources onto SBC fleets
//! ([`controller`], `docs/operator.md`), rendering compiled policies into
//! the data an SBC enforces ([`backend`], with the Kamailio backend of
//! `docs/sbc.md`) and applying them through the SBC agent ([`agent`]). The dependency
//! direction is fixed: operator → crds (and the policy library for the
//! evaluator's window semantics), never the reverse. The rollout of a
//! revision over a fleet is the pure state machine in [`rollout`].

pub mod agent;
pub mod alerts;
pub mod auth;
pub mod backend;
pub mod controller;
pub mod rollout;
