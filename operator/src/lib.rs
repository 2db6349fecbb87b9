//! The Tollgate operator. It will reconcile `TollPolicy` resources onto SBC
//! fleets (see `docs/` and ARCHITECTURE.md); what exists so far is the
//! rendering of compiled policies into the data an SBC enforces
//! ([`backend`], with the Kamailio backend of `docs/sbc.md`). The dependency
//! direction is fixed: operator → crds (and the policy library for the
//! evaluator's window semantics), never the reverse. The rollout of a
//! revision over a fleet is the pure state machine in [`rollout`].

pub mod agent;
pub mod backend;
pub mod controller;
pub mod rollout;
