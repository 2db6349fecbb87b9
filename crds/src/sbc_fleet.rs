//! `SbcFleet`: the SBCs a policy lands on, found by a pod label selector or
//! listed as static endpoints (SBCs outside the cluster), and how to reach
//! their Tollgate agents.

// `#[kube(printcolumn(...))]` repeats `type_ = ...` by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most static endpoints in one fleet.
pub const MAX_ENDPOINTS: usize = 256;
/// Default agent port.
pub const DEFAULT_AGENT_PORT: u16 = 9443;

/// Desired state of a fleet of SBCs.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "SbcFleet",
    plural = "sbcfleets",
    namespaced,
    status = "SbcFleetStatus",
    derive = "PartialEq",
    shortname = "sbcf",
    category = "tollgate",
    doc = "A fleet of SBCs that Tollgate policies are rolled out to: pods selected by label, or static endpoints outside the cluster.",
    printcolumn(
        name = "Backend",
        type_ = "string",
        json_path = ".spec.backend",
        description = "SBC software"
    ),
    printcolumn(
        name = "Targets",
        type_ = "integer",
        json_path = ".status.targets",
        description = "Targets the fleet resolved to"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.ready",
        description = "Targets whose agent answers"
    ),
    printcolumn(
        name = "Degraded",
        type_ = "integer",
        json_path = ".status.degraded",
        description = "SBCs deciding their tenants' limits alone (fleet-wide counting degraded)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.selector) != has(self.endpoints)").message("exactly one of selector or endpoints must be set"))]
#[serde(rename_all = "camelCase")]
pub struct SbcFleetSpec {
    /// Selects the SBC pods in this namespace by label. Set either this or `endpoints`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// SBCs outside the cluster (VMs, bare metal), by address. Set either this or `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub endpoints: Option<Vec<StaticEndpoint>>,
    /// SBC software the fleet runs; decides how a policy is rendered. Only `kamailio` for now.
    #[serde(default)]
    pub backend: SbcBackend,
    /// TCP port of the Tollgate agent on each target (1–65535); an endpoint's own `port` overrides it.
    #[serde(default = "default_agent_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub agent_port: u16,
    /// Secret (in this namespace) holding the bearer token the operator presents to the agents. The token itself never appears in the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_token_secret: Option<SecretKeyReference>,
}

fn default_agent_port() -> u16 {
    DEFAULT_AGENT_PORT
}

/// An SBC outside the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StaticEndpoint {
    /// DNS name or IP address of the SBC's agent.
    #[schemars(length(min = 1, max = 253), pattern(r"^[A-Za-z0-9.:\-\[\]]+$"))]
    pub host: String,
    /// Agent port on this host; absent: `spec.agentPort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

/// SBC software.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum SbcBackend {
    /// Kamailio (mtree, permissions, htable, dialog, pipelimit; reloaded over JSON-RPC).
    #[default]
    Kamailio,
}

/// A key in a Secret of the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Observed state of an SbcFleet, written by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SbcFleetStatus {
    /// `metadata.generation` the status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current state per aspect: Resolved, Ready. One entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Targets the selector or endpoints resolved to.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub targets: i32,
    /// Targets whose agent answers.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub ready: i32,
    /// Answering targets that decide their tenants' limits alone although their fleet counts over the fleet's store (cut off from it, or not configured for it); see the `FleetCounting` condition.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub degraded: i32,
}
