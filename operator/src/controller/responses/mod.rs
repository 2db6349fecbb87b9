//! Declared responses to fraud alerts, and rollbacks from alerts, carried
//! out against the API server and the agents (docs/alerts.md,
//! docs/operator.md "Anomaly alerts"). The rules themselves (matching,
//! never loosening, folding, acknowledgements, expiry) are pure:
//! [`rules`] (`tollgate_alerts::responses`).
//!
//! - [`sink`]: the operator's [`tollgate_alerts::AlertSink`]
//!   ([`OperatorSink`]). A `Respond` action applies the policy's declared
//!   responses for the alert's trigger: `alert` is an Event only; a block
//!   is first pushed to every target of the fleet in parallel
//!   (`PUT /v1/blocks`, the fast path), then recorded in
//!   `status.activeResponses` (durable), with an Event per step. A
//!   `Rollback` is handed to the rollout.
//! - [`upkeep`]: the reconciler's part before the rollout: entries whose
//!   hold ended go, a person's release ([`RELEASE_ANNOTATION`]) lifts
//!   blocks; both acknowledge the alert instances
//!   (`status.acknowledgedAlerts`), so a re-sent instance is ignored also
//!   after a restart or a failover.
//! - [`blocks`]: the agents' side: pushing and lifting blocks, and keeping
//!   the blocks in force on every eligible target.
//! - [`reasons`]: the Events' reasons.
//!
//! The responses own `activeResponses` and `acknowledgedAlerts` (field
//! manager [`crate::controller::status::RESPONSES_MANAGER`]); the
//! reconciler's rollout status never writes them. Their writers (the sink,
//! the upkeep) read-modify-write under the policy's
//! [`Context::status_lock`](crate::controller::context::Context::status_lock).
//! The sink holds the lock from its read of the policy through the fast
//! path to its status write, so a release and a response of the same
//! policy never interleave (a release cannot miss a block pushed
//! meanwhile, and a re-sent instance cannot slip past its
//! acknowledgement).

pub mod blocks;
pub mod reasons;
pub mod sink;
pub mod upkeep;

pub use reasons::*;
pub use sink::{OperatorSink, Responded, respond};
pub use tollgate_alerts::responses as rules;
pub use tollgate_alerts::responses::RELEASE_ANNOTATION;
pub use upkeep::upkeep;
