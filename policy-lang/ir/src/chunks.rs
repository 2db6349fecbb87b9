//! Compiled policies too big for one Kubernetes object.
//!
//! etcd refuses objects over about 1.5 MiB, `kubectl apply` (client-side)
//! refuses objects whose copy in the `last-applied-configuration`
//! annotation passes 256 KiB, and the CEL rules of the TollPolicy schema
//! need a bound on every list (10,000 entries). A tenant with a carrier's
//! deny list of 100,000 ranges is far past all three. Such a policy is
//! written as a *head* (the policy with its four large lists emptied:
//! destinations, classes, source networks and the source map) and a list
//! of content-addressed *parts*, each at most [`CHUNK_MAX_BYTES`] of JSON,
//! carried by `PolicyChunk` objects named after their content. The
//! TollPolicy names its chunks in order ([`PolicyParts`]), with the hash of
//! the whole assembled policy; whoever reads it ([`assemble`]) checks every
//! chunk's content against its name's hash and the result against the
//! whole's, and refuses (never guesses) when anything is missing or differs.
//!
//! The split is deterministic: the same policy always gives the same chunks,
//! so a chunk applied twice is the same object, and two revisions that share
//! most of their entries share most of their chunks only where the entries
//! line up (chunks are cut by size, in the lists' sorted order).

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{ClassPrefix, CompiledPolicy, DestinationRule, RuleSource, SourceNetwork};

/// A compiled policy whose JSON is larger than this is split into chunks
/// (`kubectl apply` keeps a copy of the object in an annotation limited to
/// 256 KiB; this leaves room for the rest of the object).
pub const INLINE_MAX_BYTES: usize = 192 * 1024;
/// Most entries of one list of an inline policy (the schema's `maxItems`,
/// which bounds the cost of its CEL rules); more is split into chunks.
pub const INLINE_MAX_ITEMS: usize = 10_000;
/// Most JSON bytes of the entries of one chunk.
pub const CHUNK_MAX_BYTES: usize = 192 * 1024;
/// Most entries of one list in one chunk (the chunk schema's `maxItems`;
/// an entry is at least 20 bytes of JSON, so [`CHUNK_MAX_BYTES`] binds first).
pub const CHUNK_MAX_ITEMS: usize = 10_000;
/// Most chunks of one policy: 4,096 × 192 KiB = 768 MiB of entries, about
/// 5 million destination ranges with their source map.
pub const MAX_CHUNKS: usize = 4096;

/// A slice of the four large lists of a compiled policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPart {
    /// Entries of `destinations`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub destinations: Vec<DestinationRule>,
    /// Entries of `classes`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub classes: Vec<ClassPrefix>,
    /// Entries of `sources.networks`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub networks: Vec<SourceNetwork>,
    /// Entries of `rules` (the source map), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub rules: Vec<RuleSource>,
}

/// Where the large lists of a policy are: its chunks, in order, and the hash
/// of the assembled policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyParts {
    /// Content hash of the assembled policy ([`content_hash`]): what a revision of it is named after.
    #[schemars(length(max = 71), pattern(r"^sha256:[0-9a-f]{64}$"))]
    pub hash: String,
    /// The PolicyChunks (same namespace) whose entries, concatenated in this order, are the policy's destinations, classes, source networks and source map.
    #[schemars(length(min = 1, max = 4096))]
    pub chunks: Vec<ChunkRef>,
}

/// A chunk by name and content hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChunkRef {
    /// Name of the PolicyChunk.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Content hash of its `spec.part` ([`content_hash`]).
    #[schemars(length(max = 71), pattern(r"^sha256:[0-9a-f]{64}$"))]
    pub hash: String,
}

/// One chunk as written or read: what a `PolicyChunk` object carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Object name: `<tenant>-<first 16 hex digits of the hash>`.
    pub name: String,
    /// Tenant of the policy it belongs to.
    pub tenant: String,
    /// Content hash of `part`.
    pub hash: String,
    /// The entries.
    pub part: PolicyPart,
}

/// Why a chunked policy cannot be assembled. Every case refuses the policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The head still holds entries of a list the chunks carry.
    #[error(
        "spec.policy.{list} has entries while spec.parts names chunks: a chunked policy keeps its {list} in its chunks only"
    )]
    HeadNotEmpty {
        /// The list (`destinations`, `classes`, `sources.networks`, `rules`).
        list: &'static str,
    },
    /// A chunk is not there (not applied yet, or deleted).
    #[error("PolicyChunk {name} is missing: apply it (it is in the output of `tollgate compile`)")]
    Missing {
        /// Its name.
        name: String,
    },
    /// A chunk belongs to another tenant.
    #[error("PolicyChunk {name} belongs to tenant `{tenant}`, not `{expected}`")]
    Tenant {
        /// Its name.
        name: String,
        /// The tenant it names.
        tenant: String,
        /// The policy's tenant.
        expected: String,
    },
    /// A chunk's content is not what the policy names.
    #[error(
        "PolicyChunk {name}: its content hashes to {actual}, the policy names {expected}; re-apply the output of `tollgate compile`"
    )]
    Content {
        /// Its name.
        name: String,
        /// The hash the policy names.
        expected: String,
        /// The hash of the content found.
        actual: String,
    },
    /// The assembled policy is not the one the policy names.
    #[error(
        "the assembled policy hashes to {actual}, spec.parts.hash is {expected}; re-apply the output of `tollgate compile`"
    )]
    Whole {
        /// `parts.hash`.
        expected: String,
        /// The hash of the assembly.
        actual: String,
    },
}

/// `sha256:` and the lowercase hex SHA-256 of the value's JSON (serde_json:
/// struct fields in declaration order, no maps in the IR, so deterministic).
/// A compiled policy's content hash names its PolicyRevisions.
pub fn content_hash<T: Serialize + ?Sized>(value: &T) -> String {
    let mut h = Sha256::new();
    // serde_json writes into the hasher without building the whole text
    if serde_json::to_writer(HashWriter(&mut h), value).is_err() {
        h.update(b"unserializable");
    }
    hex_hash(h)
}

fn hex_hash(h: Sha256) -> String {
    let digest = h.finalize();
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The name of a chunk: `<tenant>-<first 16 hex digits of its hash>`.
pub fn chunk_name(tenant: &str, hash: &str) -> String {
    let hex: String = hash
        .strip_prefix("sha256:")
        .unwrap_or(hash)
        .chars()
        .take(16)
        .collect();
    format!("{tenant}-{hex}")
}

/// JSON size of a value (0 when it cannot be serialized).
fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, value) {
        Ok(()) => c.0,
        Err(_) => 0,
    }
}

/// Whether the policy is too big to travel inline (see the module's text).
pub fn needs_chunks(policy: &CompiledPolicy) -> bool {
    let lists = [
        policy.destinations.len(),
        policy.classes.len(),
        policy.sources.networks.len(),
        policy.rules.len(),
    ];
    lists.iter().any(|n| *n > INLINE_MAX_ITEMS) || json_len(policy) > INLINE_MAX_BYTES
}

/// Splits a policy into its head and chunks (in order), and the
/// [`PolicyParts`] that name them. Every chunk holds at most
/// [`CHUNK_MAX_BYTES`] of entries and [`CHUNK_MAX_ITEMS`] per list (an
/// entry larger than the byte budget, which the schema's string limits make
/// impossible, gets a chunk of its own). Deterministic.
pub fn split(mut policy: CompiledPolicy) -> (CompiledPolicy, PolicyParts, Vec<Chunk>) {
    let hash = content_hash(&policy);
    let tenant = policy.tenant.clone();
    let mut parts: Vec<PolicyPart> = vec![PolicyPart::default()];
    let mut bytes = 0usize;
    // Starts a new part when `len` more bytes or one more entry of the list
    // would not fit in the current one.
    fn room(parts: &mut Vec<PolicyPart>, bytes: &mut usize, len: usize, count: usize) {
        let full = *bytes > 0 && *bytes + len > CHUNK_MAX_BYTES;
        if full || count >= CHUNK_MAX_ITEMS {
            parts.push(PolicyPart::default());
            *bytes = 0;
        }
        *bytes += len;
    }
    macro_rules! spread {
        ($list:expr, $field:ident) => {
            for e in std::mem::take(&mut $list) {
                let len = json_len(&e) + 1;
                let count = parts.last().map_or(0, |p| p.$field.len());
                room(&mut parts, &mut bytes, len, count);
                if let Some(p) = parts.last_mut() {
                    p.$field.push(e);
                }
            }
        };
    }
    spread!(policy.destinations, destinations);
    spread!(policy.classes, classes);
    spread!(policy.sources.networks, networks);
    spread!(policy.rules, rules);
    let chunks: Vec<Chunk> = parts
        .into_iter()
        .map(|part| {
            let hash = content_hash(&part);
            Chunk {
                name: chunk_name(&tenant, &hash),
                tenant: tenant.clone(),
                hash,
                part,
            }
        })
        .collect();
    let refs = PolicyParts {
        hash,
        chunks: chunks
            .iter()
            .map(|c| ChunkRef {
                name: c.name.clone(),
                hash: c.hash.clone(),
            })
            .collect(),
    };
    (policy, refs, chunks)
}

/// Assembles a chunked policy from its head and its chunks (`chunk` gives
/// the chunk of that name, or `None` when there is none), checking every
/// chunk's tenant and content and the whole's hash. Fails closed.
pub fn assemble(
    head: &CompiledPolicy,
    parts: &PolicyParts,
    mut chunk: impl FnMut(&ChunkRef) -> Option<Chunk>,
) -> Result<CompiledPolicy, ChunkError> {
    for (list, n) in [
        ("destinations", head.destinations.len()),
        ("classes", head.classes.len()),
        ("sources.networks", head.sources.networks.len()),
        ("rules", head.rules.len()),
    ] {
        if n > 0 {
            return Err(ChunkError::HeadNotEmpty { list });
        }
    }
    let mut policy = head.clone();
    for r in &parts.chunks {
        let c = chunk(r).ok_or_else(|| ChunkError::Missing {
            name: r.name.clone(),
        })?;
        if c.tenant != head.tenant {
            return Err(ChunkError::Tenant {
                name: r.name.clone(),
                tenant: c.tenant,
                expected: head.tenant.clone(),
            });
        }
        let actual = content_hash(&c.part);
        if actual != r.hash || c.hash != r.hash {
            return Err(ChunkError::Content {
                name: r.name.clone(),
                expected: r.hash.clone(),
                actual,
            });
        }
        let PolicyPart {
            destinations,
            classes,
            networks,
            rules,
        } = c.part;
        policy.destinations.extend(destinations);
        policy.classes.extend(classes);
        policy.sources.networks.extend(networks);
        policy.rules.extend(rules);
    }
    let actual = content_hash(&policy);
    if actual != parts.hash {
        return Err(ChunkError::Whole {
            expected: parts.hash.clone(),
            actual,
        });
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;

    fn policy(destinations: usize, networks: usize) -> CompiledPolicy {
        let bare = "tenant: big\nhomeCountry: US\nnumberingPlan: x\nemergencyNumbers: ['911']\n\
            destinations: []\nclasses: [{prefix: '1900', class: premium-rate}]\nsources: {networks: []}\n\
            windows: []\nlimits: []\nresponses: []\n\
            crypto: {requireTls: false, requireSrtp: false, requireClientCertificate: false}\nrules: []\n";
        let mut p: CompiledPolicy = crate::yaml::from_yaml(bare).expect("fixture");
        for i in 0..destinations {
            let rule = format!("dst:prefix:{}", 1_212_000_000 + i);
            p.destinations.push(DestinationRule {
                prefix: format!("{}", 1_212_000_000 + i),
                action: Verdict::Deny,
                rule: rule.clone(),
                window: None,
            });
            p.rules.push(RuleSource {
                id: rule,
                file: "big.tgp".into(),
                line: u32::try_from(i + 3).unwrap_or(u32::MAX),
                column: 3,
                text: format!("deny prefix +{}", 1_212_000_000 + i),
            });
        }
        for i in 0..networks {
            p.sources.networks.push(SourceNetwork {
                cidr: format!("10.{}.{}.0/24", i / 256, i % 256),
                action: Verdict::Allow,
                trunk: None,
                rule: "src:x".into(),
            });
        }
        p
    }

    fn lookup(chunks: &[Chunk]) -> impl FnMut(&ChunkRef) -> Option<Chunk> + '_ {
        |r| chunks.iter().find(|c| c.name == r.name).cloned()
    }

    #[test]
    fn small_policies_stay_inline_and_large_ones_split() {
        assert!(!needs_chunks(&policy(100, 10)));
        assert!(needs_chunks(&policy(INLINE_MAX_ITEMS / 2 + 1, 0)), "bytes");
        let mut p = policy(0, 0);
        p.classes = (0..=INLINE_MAX_ITEMS)
            .map(|i| ClassPrefix {
                prefix: format!("{i}"),
                class: "c".into(),
            })
            .collect();
        assert!(needs_chunks(&p), "more entries than the schema's maxItems");
    }

    #[test]
    fn split_then_assemble_is_the_identity_for_every_shape() {
        for (d, n) in [
            (0, 0),
            (1, 0),
            (0, 1),
            (3, 2),
            (5_000, 300),
            (25_000, 70_000),
        ] {
            let p = policy(d, n);
            let (head, parts, chunks) = split(p.clone());
            assert!(head.destinations.is_empty() && head.rules.is_empty());
            assert!(head.sources.networks.is_empty() && head.classes.is_empty());
            assert_eq!(parts.hash, content_hash(&p));
            assert_eq!(parts.chunks.len(), chunks.len());
            assert!(!chunks.is_empty() && chunks.len() <= MAX_CHUNKS);
            for c in &chunks {
                assert!(
                    json_len(&c.part) <= CHUNK_MAX_BYTES + 64,
                    "{} bytes",
                    json_len(&c.part)
                );
                for n in [
                    c.part.destinations.len(),
                    c.part.classes.len(),
                    c.part.networks.len(),
                    c.part.rules.len(),
                ] {
                    assert!(n <= CHUNK_MAX_ITEMS);
                }
                assert_eq!(c.hash, content_hash(&c.part));
                assert_eq!(c.name, chunk_name("big", &c.hash));
                assert_eq!(c.tenant, "big");
            }
            let back = assemble(&head, &parts, lookup(&chunks)).expect("assembles");
            assert_eq!(back, p, "{d} destinations, {n} networks");
            // deterministic
            assert_eq!(split(p).2, chunks);
        }
    }

    #[test]
    fn every_defect_is_refused() {
        let p = policy(20_000, 0);
        let (head, parts, chunks) = split(p);
        assert!(chunks.len() >= 3);
        // a chunk missing
        let err = assemble(&head, &parts, |r| {
            (r.name != chunks[1].name)
                .then(|| lookup(&chunks)(r))
                .flatten()
        })
        .expect_err("missing");
        assert_eq!(
            err,
            ChunkError::Missing {
                name: chunks[1].name.clone()
            }
        );
        // a chunk edited in place (same name, other content)
        let mut edited = chunks.clone();
        edited[2].part.destinations[0].action = Verdict::Allow;
        let err = assemble(&head, &parts, lookup(&edited)).expect_err("edited");
        assert!(matches!(err, ChunkError::Content { ref name, .. } if *name == chunks[2].name));
        // ... with its hash field edited to match
        edited[2].hash = content_hash(&edited[2].part);
        assert!(matches!(
            assemble(&head, &parts, lookup(&edited)),
            Err(ChunkError::Content { .. })
        ));
        // another tenant's chunk under the right name
        let mut other = chunks.clone();
        other[0].tenant = "evil".into();
        assert!(matches!(
            assemble(&head, &parts, lookup(&other)),
            Err(ChunkError::Tenant { .. })
        ));
        // chunks in another order: every chunk is right, the whole is not
        let mut swapped = parts.clone();
        swapped.chunks.swap(0, 1);
        assert!(matches!(
            assemble(&head, &swapped, lookup(&chunks)),
            Err(ChunkError::Whole { .. })
        ));
        // a head still holding entries
        let mut full = head.clone();
        full.destinations.push(p_entry());
        assert_eq!(
            assemble(&full, &parts, lookup(&chunks)),
            Err(ChunkError::HeadNotEmpty {
                list: "destinations"
            })
        );
        // the head edited (the whole's hash covers it)
        let mut h2 = head.clone();
        h2.home_country = "GB".into();
        assert!(matches!(
            assemble(&h2, &parts, lookup(&chunks)),
            Err(ChunkError::Whole { .. })
        ));
    }

    fn p_entry() -> DestinationRule {
        DestinationRule {
            prefix: "1".into(),
            action: Verdict::Allow,
            rule: "r".into(),
            window: None,
        }
    }

    #[test]
    fn content_hash_is_sha256_of_the_json() {
        let p = policy(3, 1);
        let want = Sha256::digest(serde_json::to_vec(&p).expect("json"));
        let hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(content_hash(&p), format!("sha256:{hex}"));
        assert_eq!(
            chunk_name("t", &content_hash(&p)),
            format!("t-{}", &hex[..16])
        );
    }

    #[test]
    fn the_reader_assembles_a_chunked_stream_and_refuses_a_short_one() {
        let p = policy(12_000, 0);
        let (head, parts, chunks) = split(p.clone());
        let doc = |c: &Chunk| {
            format!(
                "apiVersion: tollgate.dev/v1alpha1\nkind: PolicyChunk\nmetadata:\n  name: {}\nspec:\n  tenant: {}\n  hash: {}\n  part: {}\n",
                c.name,
                c.tenant,
                c.hash,
                serde_json::to_string(&c.part).expect("json")
            )
        };
        let tp = format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollPolicy\nmetadata:\n  name: big\nspec:\n  tenant: big\n  policy: {}\n  parts: {}\n",
            serde_json::to_string(&head).expect("json"),
            serde_json::to_string(&parts).expect("json")
        );
        let all: Vec<String> = chunks.iter().map(doc).chain([tp.clone()]).collect();
        let read = crate::yaml::read_policies(&all.join("---\n")).expect("reads");
        assert_eq!(read.len(), 1, "chunks are not policies");
        assert_eq!(read[0].policy, p);
        let short: Vec<String> = chunks.iter().skip(1).map(doc).chain([tp]).collect();
        let err = crate::yaml::read_policies(&short.join("---\n")).expect_err("short");
        assert_eq!(err.document(), chunks.len());
        assert!(err.to_string().contains("is missing"), "{err}");
    }
}
