//! The Tollgate operator: wiring only. It reconciles `TollPolicy` resources
//! onto SBC fleets ([`controller`], `docs/operator.md`) through the agents'
//! HTTP API, drives the pure rollout state machine (`tollgate-rollout`), and
//! receives Alertmanager's webhook ([`webhook`]) for the pure alert mapping
//! and response rules (`tollgate-alerts`). The crates it wires are described
//! in `docs/architecture.md`.

pub mod controller;
pub mod webhook;
