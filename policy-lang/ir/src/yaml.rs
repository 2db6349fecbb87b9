//! YAML reading and writing: the one place `serde_yaml` is used (it is frozen
//! upstream, so it stays behind this module), and the one reader of policy
//! files that hold `TollPolicy` resources or bare compiled policies (what
//! `tollgate compile` writes; what `tollgate-render`, `tollgate-rules` and
//! `tollgate diff` read).

use serde::Deserialize;

use crate::CompiledPolicy;

pub use serde_yaml::Error;

/// Renders a value (a compiled policy, a resource) as one YAML document,
/// without a leading `---`. Deterministic for the same value.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_yaml::to_string(value)
}

/// Reads a YAML document.
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_yaml::from_str(text)
}

/// The parts of a `TollPolicy` resource a policy reader needs. The resource's
/// own type lives in `tollgate-crds` (with Kubernetes); this envelope lets the
/// language, the renderer and the agent read it without that dependency.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TollPolicyDocument {
    #[serde(deserialize_with = "toll_policy_kind")]
    #[allow(dead_code)] // checked while deserializing
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: TollPolicySpecDocument,
}

#[derive(Default, Deserialize)]
struct Metadata {
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct TollPolicySpecDocument {
    policy: CompiledPolicy,
}

fn toll_policy_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let kind = String::deserialize(d)?;
    if kind == "TollPolicy" {
        Ok(kind)
    } else {
        Err(serde::de::Error::custom(format!(
            "kind `{kind}` is not TollPolicy"
        )))
    }
}

/// One policy read from a YAML stream.
#[derive(Clone, Debug)]
pub struct PolicyDocument {
    /// `metadata.namespace` of a TollPolicy; `None` for a bare compiled policy.
    pub namespace: Option<String>,
    /// `metadata.name` of a TollPolicy; `None` for a bare compiled policy.
    pub name: Option<String>,
    /// The compiled policy.
    pub policy: CompiledPolicy,
}

/// A document that is neither a TollPolicy nor a compiled policy.
#[derive(Debug, thiserror::Error)]
#[error(
    "document {document}: neither a TollPolicy ({as_resource}) nor a compiled policy ({as_policy})"
)]
pub struct PolicyDocumentError {
    /// 1-based index of the document in the stream (`---` separated).
    pub document: usize,
    /// Why it is not a TollPolicy.
    pub as_resource: Error,
    /// Why it is not a compiled policy.
    pub as_policy: Error,
}

/// Reads every policy of a YAML stream (documents separated by `---` lines):
/// TollPolicy resources and bare compiled policies alike. Documents holding
/// only comments or blank lines are skipped.
pub fn read_policies(text: &str) -> Result<Vec<PolicyDocument>, PolicyDocumentError> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if doc
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        match from_yaml::<TollPolicyDocument>(doc) {
            Ok(tp) => out.push(PolicyDocument {
                namespace: tp.metadata.namespace,
                name: tp.metadata.name,
                policy: tp.spec.policy,
            }),
            Err(as_resource) => match from_yaml::<CompiledPolicy>(doc) {
                Ok(policy) => out.push(PolicyDocument {
                    namespace: None,
                    name: None,
                    policy,
                }),
                Err(as_policy) => {
                    return Err(PolicyDocumentError {
                        document: i + 1,
                        as_resource,
                        as_policy,
                    });
                }
            },
        }
    }
    Ok(out)
}
