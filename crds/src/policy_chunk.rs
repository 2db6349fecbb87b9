//! `PolicyChunk`: a content-addressed slice of a compiled policy too big
//! for one object (the format and its checks: [`tollgate_ir::chunks`]).
//! `tollgate compile` writes them beside the TollPolicy that names them
//! (`spec.parts`); the operator reads them, checks them and assembles the
//! policy. Nobody edits one: a changed chunk no longer matches its name's
//! hash and the policy is refused.

// `#[kube(printcolumn(...))]` repeats `type_ = ...` by design.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use tollgate_ir::chunks::{Chunk, PolicyPart};

/// Label on every PolicyChunk: the tenant it belongs to.
pub const TENANT_LABEL: &str = "tollgate.dev/tenant";

/// A slice of a compiled policy's destinations, classes, source networks
/// and source map, named after its content.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "PolicyChunk",
    plural = "policychunks",
    namespaced,
    derive = "PartialEq",
    shortname = "tpchunk",
    category = "tollgate",
    doc = "A content-addressed slice of a compiled policy too big for one object, written by `tollgate compile` and named by a TollPolicy's spec.parts. Do not edit: the operator refuses a chunk whose content does not match its hash.",
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenant"),
    printcolumn(
        name = "Hash",
        type_ = "string",
        json_path = ".spec.hash",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PolicyChunkSpec {
    /// Tenant of the policy the chunk belongs to (a DNS label).
    #[schemars(length(min = 1, max = 63), pattern(crate::DNS_LABEL_PATTERN))]
    pub tenant: String,
    /// Content hash of `part`: `sha256:` and 64 lowercase hex digits of its JSON.
    #[schemars(length(max = 71), pattern(r"^sha256:[0-9a-f]{64}$"))]
    pub hash: String,
    /// The entries.
    pub part: PolicyPart,
}

impl PolicyChunk {
    /// The object for a chunk of `tollgate compile`'s split.
    pub fn from_chunk(chunk: Chunk, namespace: &str) -> Self {
        let mut c = Self::new(
            &chunk.name,
            PolicyChunkSpec {
                tenant: chunk.tenant.clone(),
                hash: chunk.hash,
                part: chunk.part,
            },
        );
        c.metadata.namespace = Some(namespace.to_owned());
        c.metadata.labels = Some(
            [
                (TENANT_LABEL.to_owned(), chunk.tenant),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "tollgate".to_owned(),
                ),
            ]
            .into(),
        );
        c
    }

    /// The chunk it carries (for [`tollgate_ir::chunks::assemble`]).
    pub fn into_chunk(self) -> Chunk {
        Chunk {
            name: self.metadata.name.unwrap_or_default(),
            tenant: self.spec.tenant,
            hash: self.spec.hash,
            part: self.spec.part,
        }
    }
}
