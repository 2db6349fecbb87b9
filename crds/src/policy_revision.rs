//! `PolicyRevision`: an immutable, rendered revision of a TollPolicy. The
//! operator creates one per distinct policy content; together they are the
//! history rollbacks use.

// `#[kube(printcolumn(...))]` repeats `type_ = ...` by design.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use tollgate_ir::CompiledPolicy;
use tollgate_ir::chunks::PolicyParts;

/// An immutable revision of a TollPolicy's compiled policy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "PolicyRevision",
    plural = "policyrevisions",
    namespaced,
    derive = "PartialEq",
    shortname = "tprev",
    category = "tollgate",
    doc = "An immutable revision of a TollPolicy: the compiled policy as rolled out, with its content hash. The history that rollbacks use.",
    printcolumn(
        name = "Policy",
        type_ = "string",
        json_path = ".spec.policyName",
        description = "TollPolicy it belongs to"
    ),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenant"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".spec.revision"),
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
#[x_kube(validation = Rule::new("self == oldSelf").message("PolicyRevision spec is immutable"))]
#[x_kube(validation = Rule::new("self.tenant == self.policy.tenant").message("spec.tenant must equal spec.policy.tenant").field_path(".tenant"))]
#[serde(rename_all = "camelCase")]
pub struct PolicyRevisionSpec {
    /// Name of the TollPolicy (same namespace) this is a revision of.
    #[schemars(length(min = 1, max = 253))]
    pub policy_name: String,
    /// Tenant of the policy (a DNS label). Must equal `policy.tenant`.
    #[schemars(length(min = 1, max = 63), pattern(crate::DNS_LABEL_PATTERN))]
    pub tenant: String,
    /// Content hash of `policy` in its canonical JSON form: `sha256:` and 64 lowercase hex digits.
    #[schemars(length(max = 71), pattern(r"^sha256:[0-9a-f]{64}$"))]
    pub hash: String,
    /// Revision number, counting up from 1 per TollPolicy.
    #[schemars(range(min = 1))]
    pub revision: i64,
    /// The compiled policy of this revision (its head when `parts` is set).
    pub policy: CompiledPolicy,
    /// The PolicyChunks holding the rest of a policy too big for one object (as in the TollPolicy it was rendered from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<PolicyParts>,
    /// `metadata.generation` of the TollPolicy this revision was rendered from.
    #[schemars(range(min = 1))]
    pub created_from: i64,
}

/// Label on every PolicyRevision: its TollPolicy's name ([`label_value`]).
pub const POLICY_LABEL: &str = "tollgate.dev/policy";

/// The [`POLICY_LABEL`] value for a policy name (names longer than a label
/// value are cut; the label only narrows a list, `spec.policyName` decides).
pub fn label_value(policy_name: &str) -> String {
    const MAX_LABEL_VALUE: usize = 63;
    let mut v: String = policy_name.chars().take(MAX_LABEL_VALUE).collect();
    while v.ends_with(['.', '-', '_']) {
        v.pop();
    }
    v
}
