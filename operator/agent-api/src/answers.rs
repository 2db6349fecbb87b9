//! The agent's 200 answers (and `/healthz`'s 503). Fields are declared in
//! the order of their JSON names (see the crate's docs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The answer to `PUT` and `DELETE /v1/tenants/{tenant}` and to `POST
/// …/commit`: what the agent applied and how long each step took.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplyAnswer {
    /// sha256 of the composed bundle now live.
    pub bundle_hash: String,
    /// The tenant was removed (`DELETE`).
    pub deleted: bool,
    /// Unix ms when the last reload was answered (the new policy enforced).
    pub enforced_unix_ms: u64,
    /// Unix ms when the read-back was done.
    pub live_end_unix_ms: u64,
    /// Unix ms when the live SBC was first touched (the swap).
    pub live_start_unix_ms: u64,
    /// Trial probes run.
    pub probes: usize,
    /// sha256 of what Kamailio holds for the tenant (`None`: removed).
    pub readback_hash: Option<String>,
    /// The reload RPCs sent (one per changed table).
    pub reloaded: Vec<String>,
    /// Commits only: the checks were run again first (the state changed
    /// since the stage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revalidated: Option<bool>,
    /// The revision the tenant holds (`None`: removed).
    pub revision: Option<String>,
    /// sha256 of the tenant's rows as rendered (`None`: removed).
    pub rows_hash: Option<String>,
    /// Commits only: `true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staged: Option<bool>,
    /// The tenant.
    pub tenant: String,
    /// Milliseconds per step.
    pub timings_ms: ApplyTimings,
}

/// The answer of `POST /v1/batch`: what each tenant of the batch holds
/// now, and the batch's timings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BatchAnswer {
    /// sha256 of the SBC's files now live.
    pub bundle_hash: String,
    /// Unix ms when the last reload was answered (the batch enforced).
    pub enforced_unix_ms: u64,
    /// Unix ms when the read-back was done.
    pub live_end_unix_ms: u64,
    /// Unix ms when the live SBC was first touched.
    pub live_start_unix_ms: u64,
    /// Trial probes run.
    pub probes: usize,
    /// The reloads sent (one per touched table) and the htable entries set.
    pub reloaded: Vec<String>,
    /// Per tenant of the batch.
    pub tenants: BTreeMap<String, BatchTenant>,
    /// Milliseconds per step, for the whole batch.
    pub timings_ms: ApplyTimings,
}

/// One tenant of a [`BatchAnswer`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BatchTenant {
    /// The tenant was removed.
    pub deleted: bool,
    /// sha256 of what Kamailio holds for it (`None`: removed).
    pub readback_hash: Option<String>,
    /// The revision it holds (`None`: removed).
    pub revision: Option<String>,
    /// sha256 of its rows as rendered (`None`: removed).
    pub rows_hash: Option<String>,
    /// The shard its trees are in (`None`: removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
}

/// `timingsMs` of an [`ApplyAnswer`], in ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ApplyTimings {
    /// Render and own checks.
    pub checks: f64,
    /// Read-back of the live Kamailio.
    pub readback: f64,
    /// The live reloads.
    pub reload: f64,
    /// Writing the live data files.
    pub swap: f64,
    /// Swap, reload and read-back.
    pub swap_reload_readback: f64,
    /// The whole apply.
    pub total: f64,
    /// The trial (start or reload, read-back, probes).
    pub trial: f64,
    /// Until the trial instance held the bundle (started, or reloaded when
    /// warm).
    pub trial_start: u64,
    /// The warm trial instance was used.
    pub trial_warm: bool,
}

/// The answer to `POST /v1/tenants/{tenant}/stage`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StageAnswer {
    /// sha256 of the checked bundle.
    pub bundle_hash: String,
    /// Trial probes run.
    pub probes: usize,
    /// The revision staged.
    pub revision: String,
    /// `true`: the agent keeps it for the commit.
    pub staged: bool,
    /// The tenant.
    pub tenant: String,
    /// Milliseconds per step.
    pub timings_ms: StageTimings,
}

/// `timingsMs` of a [`StageAnswer`], in ms (as [`ApplyTimings`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StageTimings {
    /// Render and own checks.
    pub checks: f64,
    /// The whole stage.
    pub total: f64,
    /// The trial.
    pub trial: f64,
    /// Until the trial instance held the bundle.
    pub trial_start: u64,
    /// The warm trial instance was used.
    pub trial_warm: bool,
}

/// `kamailio` of a [`StateAnswer`] when Kamailio answered the read-back
/// (otherwise the error).
pub const KAMAILIO_REACHABLE: &str = "reachable";

/// The answer to `GET /v1/state[?tenant=NAME]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StateAnswer {
    /// Block key (`<tenant>`, `<tenant>::<class>`) → expiry in epoch
    /// seconds, 0 = until lifted. Expired entries may still be listed.
    pub blocks: BTreeMap<String, i64>,
    /// sha256 of the composed bundle applied.
    pub bundle_hash: String,
    /// [`KAMAILIO_REACHABLE`] or why the read-back failed.
    pub kamailio: String,
    /// The last failed apply's or recovery's error, until one succeeds.
    pub last_error: Option<String>,
    /// The applied tenants (only the one asked for with `?tenant=`).
    pub tenants: BTreeMap<String, TenantView>,
    /// Tenants Kamailio holds that are not applied.
    pub unexpected_tenants: Vec<String>,
}

/// The answer to `GET /v1/state/summary`: what `GET /v1/state` says of
/// every tenant's revision, in one answer that grows by about 100 bytes
/// per tenant, without reading Kamailio (an operator watching thousands of
/// tenants on each SBC asks once per SBC, not once per tenant).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StateSummary {
    /// Block key → expiry, as in [`StateAnswer::blocks`].
    pub blocks: BTreeMap<String, i64>,
    /// The agent's last consistency check found the live SBC as applied
    /// (every tenant, every table). `false` also before the first check:
    /// a client then asks `GET /v1/state?tenant=` for each tenant.
    pub consistent: bool,
    /// As in [`StateAnswer::last_error`].
    pub last_error: Option<String>,
    /// Tenant → the revision label applied.
    pub tenants: BTreeMap<String, String>,
}

impl StateSummary {
    /// The summary's entity tag (`ETag`, a strong validator): the first 32
    /// hex digits of its content hash, quoted. A client that sends it back
    /// in `If-None-Match` is answered 304, without a body, while nothing in
    /// the summary changed.
    pub fn etag(&self) -> String {
        let h = tollgate_ir::chunks::content_hash(self);
        let hex = h.strip_prefix("sha256:").unwrap_or(&h);
        format!("\"{}\"", hex.get(..32).unwrap_or(hex))
    }
}

/// One tenant of a [`StateAnswer`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TenantView {
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// `renderedHash` is known and equals `readbackHash`.
    pub consistent: bool,
    /// sha256 of the canonical view of what Kamailio reports holding for
    /// the tenant (`None`: no read-back).
    pub readback_hash: Option<String>,
    /// sha256 of the canonical view of the rows as rendered.
    pub rendered_hash: Option<String>,
    /// The revision label applied.
    pub revision: String,
    /// sha256 of the rows as rendered.
    pub rows_hash: String,
    /// The shard its trees are in on this SBC (`docs/sbc.md`, "Shards"): a
    /// change to many tenants costs least in batches that each cover whole
    /// shards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
}

impl TenantView {
    /// The read-back confirms the rendered rows: `consistent` and both
    /// hashes present and equal.
    pub fn confirmed(&self) -> bool {
        self.consistent && self.rendered_hash.is_some() && self.rendered_hash == self.readback_hash
    }
}

/// The answer to `PUT /v1/blocks` and `DELETE /v1/blocks/{key}`: every
/// block now held.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlocksAnswer {
    /// Block key → expiry (epoch s, 0 = until lifted).
    pub blocks: BTreeMap<String, i64>,
}

/// `status` of a [`Health`] answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// 200.
    #[default]
    Ok,
    /// 503.
    Unhealthy,
}

/// `mode` of a [`FleetCounting`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FleetMode {
    /// The SBC reaches the fleet's store: its limits count every SBC's calls.
    Fleet,
    /// The SBC cannot reach the store: it decides alone, with its share of
    /// each level (a level divided by `members`, at least 1).
    #[default]
    Degraded,
}

/// How an SBC counts its tenants' limits when it is configured to count
/// them over its fleet (`fleet` of a [`Health`] answer; docs/sbc.md
/// "Fleet-wide limits").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FleetCounting {
    /// Epoch seconds of the last change of `mode`.
    pub changed_unix: i64,
    /// SBCs of the fleet alive at the SBC's last heartbeat (the divisor of
    /// its share while degraded).
    pub members: u32,
    /// Fleet-wide or alone.
    pub mode: FleetMode,
}

/// The answer to `GET /healthz`: 200 `{"status": "ok"}`, or 503
/// `{"reason": "...", "status": "unhealthy"}`; with `fleet` when the SBC
/// counts its limits over its fleet (degraded counting is not unhealthy:
/// the SBC still decides every call).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    /// Fleet-wide counting's state (`None`: the SBC counts alone by
    /// configuration, or Kamailio did not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetCounting>,
    /// Why not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Healthy or not.
    pub status: HealthStatus,
}

impl Health {
    /// Healthy.
    pub fn ok() -> Health {
        Health::default()
    }

    /// Not healthy, and why.
    pub fn unhealthy(reason: impl Into<String>) -> Health {
        Health {
            reason: Some(reason.into()),
            status: HealthStatus::Unhealthy,
            fleet: None,
        }
    }

    /// With fleet-wide counting's state.
    pub fn with_fleet(self, fleet: Option<FleetCounting>) -> Health {
        Health { fleet, ..self }
    }

    /// The HTTP status: 200 or 503.
    pub fn http_status(&self) -> u16 {
        match self.status {
            HealthStatus::Ok => 200,
            HealthStatus::Unhealthy => 503,
        }
    }
}
