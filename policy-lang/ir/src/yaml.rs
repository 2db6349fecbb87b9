//! YAML reading and writing: the one place `serde_yaml` is used (it is frozen
//! upstream, so it stays behind this module), and the one reader of policy
//! files that hold `TollPolicy` resources or bare compiled policies (what
//! `tollgate compile` writes; what `tollgate-render`, `tollgate-rules` and
//! `tollgate diff` read).

use std::collections::HashMap;

use serde::Deserialize;

use crate::CompiledPolicy;
use crate::chunks::{Chunk, ChunkError, PolicyPart, PolicyParts, assemble};

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
    #[serde(default)]
    parts: Option<PolicyParts>,
}

fn toll_policy_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    kind_is(d, "TollPolicy")
}

fn policy_chunk_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    kind_is(d, "PolicyChunk")
}

fn kind_is<'de, D: serde::Deserializer<'de>>(d: D, want: &str) -> Result<String, D::Error> {
    let kind = String::deserialize(d)?;
    if kind == want {
        Ok(kind)
    } else {
        Err(serde::de::Error::custom(format!(
            "kind `{kind}` is not {want}"
        )))
    }
}

/// A `PolicyChunk` resource (its type lives in `tollgate-crds`).
#[derive(Deserialize)]
struct PolicyChunkDocument {
    #[serde(deserialize_with = "policy_chunk_kind")]
    #[allow(dead_code)] // checked while deserializing
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: PolicyChunkSpecDocument,
}

#[derive(Deserialize)]
struct PolicyChunkSpecDocument {
    tenant: String,
    hash: String,
    part: PolicyPart,
}

/// One policy read from a YAML stream.
#[derive(Clone, Debug)]
pub struct PolicyDocument {
    /// `metadata.namespace` of a TollPolicy; `None` for a bare compiled policy.
    pub namespace: Option<String>,
    /// `metadata.name` of a TollPolicy; `None` for a bare compiled policy.
    pub name: Option<String>,
    /// The compiled policy (a chunked TollPolicy's assembled from the
    /// stream's PolicyChunks).
    pub policy: CompiledPolicy,
}

/// A document that cannot be read as a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyDocumentError {
    /// Neither a TollPolicy, a PolicyChunk nor a compiled policy.
    #[error(
        "document {document}: neither a TollPolicy ({as_resource}) nor a compiled policy ({as_policy})"
    )]
    NotAPolicy {
        /// 1-based index of the document in the stream (`---` separated).
        document: usize,
        /// Why it is not a TollPolicy.
        as_resource: Error,
        /// Why it is not a compiled policy.
        as_policy: Error,
    },
    /// A chunked TollPolicy whose chunks (in the same stream) do not
    /// assemble into it.
    #[error("document {document}: {source}")]
    Chunks {
        /// 1-based index of the TollPolicy's document.
        document: usize,
        /// What is wrong.
        source: ChunkError,
    },
}

impl PolicyDocumentError {
    /// 1-based index of the document in the stream.
    pub fn document(&self) -> usize {
        match self {
            Self::NotAPolicy { document, .. } | Self::Chunks { document, .. } => *document,
        }
    }
}

/// Reads every policy of a YAML stream (documents separated by `---` lines):
/// TollPolicy resources and bare compiled policies alike. A chunked
/// TollPolicy is assembled from the PolicyChunk documents of the same
/// stream (`tollgate compile` writes them before it), checked as the
/// operator checks it ([`crate::chunks::assemble`]). Documents holding only
/// comments or blank lines are skipped.
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
    let mut chunked = Vec::new();
    let mut chunks: HashMap<String, Chunk> = HashMap::new();
    for (i, doc) in docs.iter().enumerate() {
        if doc
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        match from_yaml::<TollPolicyDocument>(doc) {
            Ok(tp) => {
                let d = PolicyDocument {
                    namespace: tp.metadata.namespace,
                    name: tp.metadata.name,
                    policy: tp.spec.policy,
                };
                if let Some(parts) = tp.spec.parts {
                    chunked.push((out.len(), i + 1, parts));
                }
                out.push(d);
            }
            Err(as_resource) => {
                if let Ok(c) = from_yaml::<PolicyChunkDocument>(doc) {
                    let name = c.metadata.name.unwrap_or_default();
                    chunks.insert(
                        name.clone(),
                        Chunk {
                            name,
                            tenant: c.spec.tenant,
                            hash: c.spec.hash,
                            part: c.spec.part,
                        },
                    );
                    continue;
                }
                match from_yaml::<CompiledPolicy>(doc) {
                    Ok(policy) => out.push(PolicyDocument {
                        namespace: None,
                        name: None,
                        policy,
                    }),
                    Err(as_policy) => {
                        return Err(PolicyDocumentError::NotAPolicy {
                            document: i + 1,
                            as_resource,
                            as_policy,
                        });
                    }
                }
            }
        }
    }
    for (at, document, parts) in chunked {
        if let Some(d) = out.get_mut(at) {
            d.policy = assemble(&d.policy, &parts, |r| chunks.get(&r.name).cloned())
                .map_err(|source| PolicyDocumentError::Chunks { document, source })?;
        }
    }
    Ok(out)
}
