//! Request bodies. A client serializes them; a server reads them with
//! `from_json`, which gives each missing or malformed part its own
//! [`ApiError`] (the messages clients and scripts see), rather than serde's.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_ir::CompiledPolicy;

use crate::ApiError;

/// The body of `PUT /v1/tenants/{tenant}` and `POST …/stage`:
/// `{"policy": {...}, "revision": "..."}`. `P`: the policy, owned when read,
/// borrowed (`&CompiledPolicy`) when sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRequest<P = CompiledPolicy> {
    /// The compiled policy (its `tenant` must be the path's).
    pub policy: P,
    /// The revision label, stored verbatim (the operator sends
    /// `<number>@sha256:<hex>`).
    pub revision: String,
}

/// Parses a body's JSON (the message of a malformed one says why).
fn json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// A string `revision` of a body.
fn revision(v: &Value) -> Result<String, ApiError> {
    v.get("revision")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(ApiError::MissingRevision)
}

impl RevisionRequest {
    /// Reads a body: 400 for one that is not JSON or lacks `revision` (a
    /// string) or `policy`; 422 for a policy that does not parse.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let mut v = json(body)?;
        let revision = revision(&v)?;
        let policy = v
            .get_mut("policy")
            .map(Value::take)
            .ok_or(ApiError::MissingPolicy)?;
        let policy = serde_json::from_value(policy)
            .map_err(|e| ApiError::rejected(format!("malformed policy: {e}")))?;
        Ok(RevisionRequest { policy, revision })
    }
}

/// One change of a [`BatchRequest`]: a tenant's revision, or its removal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchChange<P = CompiledPolicy> {
    /// Remove the tenant (then no `revision` or `policy`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
    /// The compiled policy (its `tenant` must be `tenant`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<P>,
    /// The revision label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The tenant.
    pub tenant: String,
}

/// The body of `POST /v1/batch`: several tenants' changes applied as one
/// validated batch (`{"changes": [{"tenant", "revision", "policy"} |
/// {"tenant", "delete": true}, ...]}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest<P = CompiledPolicy> {
    /// The changes, at most one per tenant.
    pub changes: Vec<BatchChange<P>>,
}

impl BatchRequest {
    /// Reads a body: 400 for one that is not JSON, has no `changes` list,
    /// a change without a valid `tenant`, a tenant twice, or a change that
    /// neither deletes nor has `revision` and `policy`; 422 for a policy
    /// that does not parse.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let mut v = json(body)?;
        let list = match v.get_mut("changes").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => return Err(ApiError::MissingChanges),
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut changes = Vec::with_capacity(list.len());
        for mut c in list {
            let tenant = c
                .get("tenant")
                .and_then(Value::as_str)
                .filter(|t| crate::tenant_ok(t))
                .map(str::to_owned)
                .ok_or(ApiError::BadTenant)?;
            if !seen.insert(tenant.clone()) {
                return Err(ApiError::DuplicateTenant(tenant));
            }
            if c.get("delete").and_then(Value::as_bool) == Some(true) {
                changes.push(BatchChange {
                    delete: true,
                    policy: None,
                    revision: None,
                    tenant,
                });
                continue;
            }
            let revision = revision(&c)?;
            let policy = c
                .get_mut("policy")
                .map(Value::take)
                .ok_or(ApiError::MissingPolicy)?;
            let policy = serde_json::from_value(policy).map_err(|e| {
                ApiError::rejected(format!("tenant `{tenant}`: malformed policy: {e}"))
            })?;
            changes.push(BatchChange {
                delete: false,
                policy: Some(policy),
                revision: Some(revision),
                tenant,
            });
        }
        Ok(BatchRequest { changes })
    }
}

/// The body of `POST /v1/tenants/{tenant}/commit`: `{"revision": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRequest {
    /// The staged revision's label.
    pub revision: String,
}

impl CommitRequest {
    /// Reads a body: 400 for one that is not JSON or lacks `revision`.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        Ok(CommitRequest {
            revision: revision(&json(body)?)?,
        })
    }
}

/// The body of `PUT /v1/blocks`: `{"expires": <epoch s>, "key": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRequest {
    /// Expiry in epoch seconds, 0 = until lifted (absent or `null` when
    /// read: 0).
    #[serde(default)]
    pub expires: i64,
    /// `<tenant>` or `<tenant>::<class>`.
    pub key: String,
}

impl BlockRequest {
    /// Reads a body: 400 for one that is not JSON, lacks `key` (a string),
    /// or whose `expires` is not an integer.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let v = json(body)?;
        let key = v
            .get("key")
            .and_then(Value::as_str)
            .ok_or(ApiError::MissingBlockKey)?
            .to_owned();
        let expires = match v.get("expires") {
            None | Some(Value::Null) => 0,
            Some(e) => e.as_i64().ok_or(ApiError::BadExpires)?,
        };
        Ok(BlockRequest { expires, key })
    }
}
