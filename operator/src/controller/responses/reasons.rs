//! The reasons of the Events the responses publish.

/// A block was set on targets.
pub const BLOCK_APPLIED: &str = "BlockApplied";
/// A block could not be set on some targets.
pub const BLOCK_FAILED: &str = "BlockFailed";
/// A declared `alert` response.
pub const RESPONSE_ALERT: &str = "ResponseAlert";
/// A response was recorded in status (or made stricter).
pub const RESPONSE_ACTIVE: &str = "ResponseActive";
/// `activeResponses` was full: a response was folded into an entry.
pub const RESPONSE_FOLDED: &str = "ResponseFolded";
/// A person released responses.
pub const RESPONSE_RELEASED: &str = "ResponseReleased";
/// A response's declared hold ended.
pub const RESPONSE_EXPIRED: &str = "ResponseExpired";
