//! The agent's endpoints: the paths a client builds ([`tenant`],
//! [`stage`], [`commit`], [`state_of`], [`block`], the constants) and the
//! [`Route`] a server reads from a request's path.

use crate::{ApiError, tenant_ok};

/// `GET`: Kamailio answers and holds the applied state (no token needed).
pub const HEALTHZ: &str = "/healthz";
/// `GET`: Prometheus text.
pub const METRICS: &str = "/metrics";
/// `GET [?tenant=NAME]`: the applied state ([`crate::StateAnswer`]).
pub const STATE: &str = "/v1/state";
/// `GET`: every tenant's revision in one small answer
/// ([`crate::StateSummary`]), for a client that watches many tenants.
pub const STATE_SUMMARY: &str = "/v1/state/summary";
/// `PUT` a block ([`crate::BlockRequest`]).
pub const BLOCKS: &str = "/v1/blocks";
/// The tenants' prefix: `/v1/tenants/{tenant}`.
pub const TENANTS: &str = "/v1/tenants";

/// `PUT` (apply, [`crate::RevisionRequest`]) or `DELETE` a tenant.
pub fn tenant(tenant: &str) -> String {
    format!("{TENANTS}/{tenant}")
}

/// `POST`: the first half of a staged apply ([`crate::RevisionRequest`]).
pub fn stage(tenant: &str) -> String {
    format!("{TENANTS}/{tenant}/stage")
}

/// `POST`: the second half ([`crate::CommitRequest`]).
pub fn commit(tenant: &str) -> String {
    format!("{TENANTS}/{tenant}/commit")
}

/// `GET`: the state reduced to one tenant.
pub fn state_of(tenant: &str) -> String {
    format!("{STATE}?tenant={tenant}")
}

/// `DELETE`: lifts a block (`<tenant>` or `<tenant>::<class>`).
pub fn block(key: &str) -> String {
    format!("{BLOCKS}/{key}")
}

/// `POST`: several tenants' changes as one validated batch.
pub const BATCH: &str = "/v1/batch";

/// The endpoint a request's path names (the method is the server's to
/// check). Path segments are not validated here ([`crate::tenant_ok`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// [`HEALTHZ`].
    Healthz,
    /// [`METRICS`].
    Metrics,
    /// [`STATE`].
    State,
    /// [`STATE_SUMMARY`].
    StateSummary,
    /// [`tenant`].
    Tenant(&'a str),
    /// [`stage`].
    Stage(&'a str),
    /// [`commit`].
    Commit(&'a str),
    /// [`BATCH`].
    Batch,
    /// [`BLOCKS`].
    Blocks,
    /// [`block`].
    Block(&'a str),
}

impl<'a> Route<'a> {
    /// The route of `path` (no query); `None`: no such endpoint.
    pub fn parse(path: &'a str) -> Option<Route<'a>> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(match segs.as_slice() {
            ["healthz"] => Route::Healthz,
            ["metrics"] => Route::Metrics,
            ["v1", "state"] => Route::State,
            ["v1", "state", "summary"] => Route::StateSummary,
            ["v1", "tenants", t] => Route::Tenant(t),
            ["v1", "tenants", t, "stage"] => Route::Stage(t),
            ["v1", "tenants", t, "commit"] => Route::Commit(t),
            ["v1", "batch"] => Route::Batch,
            ["v1", "blocks"] => Route::Blocks,
            ["v1", "blocks", k] => Route::Block(k),
            _ => return None,
        })
    }

    /// The path of the route (the inverse of [`Route::parse`]).
    pub fn path(&self) -> String {
        match self {
            Route::Healthz => HEALTHZ.to_owned(),
            Route::Metrics => METRICS.to_owned(),
            Route::State => STATE.to_owned(),
            Route::StateSummary => STATE_SUMMARY.to_owned(),
            Route::Tenant(t) => tenant(t),
            Route::Stage(t) => stage(t),
            Route::Commit(t) => commit(t),
            Route::Batch => BATCH.to_owned(),
            Route::Blocks => BLOCKS.to_owned(),
            Route::Block(k) => block(k),
        }
    }
}

/// The `tenant` of `GET /v1/state?tenant=NAME` (`None`: no query, every
/// tenant). Any other query is [`ApiError::BadStateQuery`].
pub fn state_filter(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    match q.split_once('=') {
        Some(("tenant", t)) if tenant_ok(t) => Ok(Some(t.to_owned())),
        _ => Err(ApiError::BadStateQuery),
    }
}
