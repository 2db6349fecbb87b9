//! Tollgate's custom resources. The compiled policy they carry is the IR
//! crate's ([`tollgate_ir`]).
//!
//! Kinds (group `tollgate.dev`, version `v1alpha1`, all namespaced):
//! [`TollPolicy`], [`SbcFleet`], [`PolicyRevision`] and [`PolicyChunk`]. [`all_crds`] returns
//! their CustomResourceDefinitions; `crdgen` writes them as YAML.

pub mod conditions;
pub mod policy_chunk;
pub mod policy_revision;
pub mod sbc_fleet;
mod schema;
pub mod toll_policy;
pub mod yaml;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use policy_chunk::{PolicyChunk, PolicyChunkSpec};
pub use policy_revision::{PolicyRevision, PolicyRevisionSpec};
pub use sbc_fleet::{SbcFleet, SbcFleetSpec, SbcFleetStatus};
pub use toll_policy::{TollPolicy, TollPolicySpec, TollPolicyStatus};

/// API group of all Tollgate resources.
pub const GROUP: &str = "tollgate.dev";
/// API version of all Tollgate resources.
pub const VERSION: &str = "v1alpha1";

pub use tollgate_ir::DNS_LABEL_PATTERN;

/// The CRDs, with the file name `crdgen` writes each to (relative to the
/// `crds/` directory). Use these rather than `TollPolicy::crd()` & co.: they
/// also get [`normalize_formats`].
pub fn all_crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("tollpolicies.yaml", normalize_formats(TollPolicy::crd())),
        ("sbcfleets.yaml", normalize_formats(SbcFleet::crd())),
        (
            "policyrevisions.yaml",
            normalize_formats(PolicyRevision::crd()),
        ),
        ("policychunks.yaml", normalize_formats(PolicyChunk::crd())),
    ]
}

/// Replaces schemars' unsigned integer formats (`uint16`, `uint32`,
/// `uint64`), which the API server warns about as unrecognized, with the
/// OpenAPI formats it knows (`int32`, `int64`). The `minimum: 0` schemars
/// emits alongside keeps them non-negative.
pub fn normalize_formats(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                let is_schema_format =
                    map.get("format").and_then(|f| f.as_str()).map(|f| match f {
                        "uint8" | "uint16" | "uint32" => Some("int32"),
                        "uint64" | "uint" => Some("int64"),
                        _ => None,
                    });
                if let Some(Some(to)) = is_schema_format {
                    map.insert("format".into(), to.into());
                }
                map.values_mut().for_each(walk);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    walk(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed YAML files are what `crdgen` writes now.
    #[test]
    fn generated_yaml_is_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (file, crd) in all_crds() {
            let want = yaml::crd_to_yaml(&crd).expect("renders");
            let have = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert!(
                have == want,
                "crds/{file} is stale: run `cargo run -p tollgate-crds --bin crdgen`"
            );
        }
    }

    /// `status.activeResponses` holds as many entries as a policy may
    /// declare responses, and the constants say what the schema says.
    #[test]
    fn active_responses_fit_every_declared_response() {
        let crd = serde_json::to_value(TollPolicy::crd()).expect("json");
        let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
        let max = |v: &serde_json::Value| v["maxItems"].as_u64().expect("maxItems");
        let declared = max(&root["spec"]["properties"]["policy"]["properties"]["responses"]);
        let status = &root["status"]["properties"];
        let active = max(&status["activeResponses"]);
        assert_eq!(declared, active);
        assert_eq!(active, toll_policy::MAX_ACTIVE_RESPONSES as u64);
        assert_eq!(
            max(&status["acknowledgedAlerts"]),
            toll_policy::MAX_ACKNOWLEDGED_ALERTS as u64
        );
        let item = &status["activeResponses"]["items"]["properties"];
        assert_eq!(
            max(&item["alerts"]),
            toll_policy::MAX_RESPONSE_ALERTS as u64
        );
        assert_eq!(
            max(&item["foldedRules"]),
            toll_policy::MAX_FOLDED_RULES as u64
        );
        assert_eq!(item["foldedRules"]["items"]["maxLength"], 256);
    }

    #[test]
    fn crds_have_names_and_categories() {
        for (_, crd) in all_crds() {
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(crd.spec.versions[0].name, VERSION);
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&["tollgate".to_string()][..])
            );
            let yaml = yaml::crd_to_yaml(&crd).expect("renders");
            // Only TollPolicy's `status.rollout` (operator bookkeeping) is opaque.
            let opaque = yaml.matches("x-kubernetes-preserve-unknown-fields").count();
            let want = usize::from(crd.spec.names.kind == "TollPolicy");
            assert_eq!(opaque, want, "{}", crd.spec.names.kind);
            assert!(!yaml.contains("format: uint"));
        }
    }
}
