//! A compiled policy as the API holds it: inline in a TollPolicy or
//! PolicyRevision, or a head plus PolicyChunks (`spec.parts`) read here and
//! assembled and checked by [`tollgate_ir::chunks::assemble`].

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use kube::{Api, Client};
use tollgate_crds::PolicyChunk;
use tollgate_ir::CompiledPolicy;
use tollgate_ir::chunks::{ChunkError, PolicyParts, assemble};

/// Chunks read at once.
const READS_IN_FLIGHT: usize = 8;

/// Why a policy's content is not at hand.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// Its chunks are missing or wrong: the policy is refused until they
    /// are right.
    #[error(transparent)]
    Chunks(#[from] ChunkError),
    /// Reading a chunk failed (retried).
    #[error("reading PolicyChunk {name}: {source}")]
    Read {
        /// The chunk.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// The whole compiled policy: `head` itself when `parts` is `None`, else
/// `head` with the chunks named in `parts` (namespace `ns`) assembled in.
pub async fn assembled(
    client: &Client,
    ns: &str,
    head: &CompiledPolicy,
    parts: Option<&PolicyParts>,
) -> Result<CompiledPolicy, ContentError> {
    let Some(parts) = parts else {
        return Ok(head.clone());
    };
    let api: Api<PolicyChunk> = Api::namespaced(client.clone(), ns);
    let names: Vec<String> = parts.chunks.iter().map(|r| r.name.clone()).collect();
    let mut found: HashMap<String, PolicyChunk> = futures::stream::iter(names)
        .map(|name: String| {
            let api = api.clone();
            async move {
                match api.get_opt(&name).await {
                    Ok(c) => Ok(c.map(|c| (name, c))),
                    Err(source) => Err(ContentError::Read { name, source }),
                }
            }
        })
        .buffered(READS_IN_FLIGHT)
        .try_filter_map(|c| async move { Ok(c) })
        .try_collect()
        .await?;
    Ok(assemble(head, parts, |r| {
        found.remove(&r.name).map(PolicyChunk::into_chunk)
    })?)
}
