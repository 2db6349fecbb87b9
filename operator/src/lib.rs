//! The Tollgate operator: wiring only. It reconciles `TollPolicy` resources
//! onto SBC fleets ([`controller`], `docs/operator.md`) through the agents'
//! HTTP API, drives the pure rollout state machine (`tollgate-rollout`), and
//! receives Alertmanager's webhook ([`webhook`]) for the pure alert mapping
//! and response rules (`tollgate-alerts`), and serves its metrics and health
//! endpoints ([`admin`]). The crates it wires are described
//! in `docs/architecture.md`.

pub mod admin;
pub mod controller;
pub mod webhook;
