//! A compiled policy as a `TollPolicy` custom resource.

use sha2::{Digest, Sha256};
use tollgate_crds::toll_policy::{FleetReference, RolloutStrategy};
use tollgate_crds::{PolicyChunk, TollPolicy, TollPolicySpec};
use tollgate_ir::CompiledPolicy;
use tollgate_ir::chunks;
use tollgate_policy::load::Workspace;
use tollgate_policy::source::FileId;

/// `sha256:<hex>` over the names and texts of the files a policy was compiled
/// from, so a resource can be traced to the exact sources in Git.
pub fn source_hash(ws: &Workspace, files: &[FileId]) -> String {
    let mut named: Vec<_> = files.iter().map(|f| ws.sources.get(*f)).collect();
    named.sort_by(|a, b| a.name.cmp(&b.name));
    let mut h = Sha256::new();
    for f in named {
        for part in [f.name.as_bytes(), &[0], f.text.as_bytes(), &[0]] {
            h.update(part);
        }
    }
    format!("sha256:{:x}", h.finalize())
}

/// The YAML documents for one tenant (separated by `---` lines): its
/// TollPolicy, preceded by its PolicyChunks when the policy is too big for
/// one object ([`tollgate_ir::chunks`]), so that `kubectl apply -f` creates
/// the chunks before the policy that names them.
pub fn toll_policy_yaml(
    policy: CompiledPolicy,
    namespace: &str,
    fleet: &str,
    source_hash: String,
) -> Result<String, String> {
    let tenant = policy.tenant.clone();
    let mut docs = Vec::new();
    let (policy, parts) = if chunks::needs_chunks(&policy) {
        let (head, parts, chunks) = chunks::split(policy);
        if chunks.len() > chunks::MAX_CHUNKS {
            return Err(format!(
                "the policy of `{tenant}` needs {} chunks, more than the {} one policy may have",
                chunks.len(),
                chunks::MAX_CHUNKS
            ));
        }
        for c in chunks {
            let chunk = PolicyChunk::from_chunk(c, namespace);
            docs.push(
                tollgate_crds::yaml::to_yaml(&chunk)
                    .map_err(|e| format!("cannot render a PolicyChunk of `{tenant}`: {e}"))?,
            );
        }
        (head, Some(parts))
    } else {
        (policy, None)
    };
    let mut resource = TollPolicy::new(
        &tenant,
        TollPolicySpec {
            tenant: tenant.clone(),
            policy,
            fleet: FleetReference {
                name: fleet.to_string(),
            },
            rollout: RolloutStrategy::default(),
            source_hash: Some(source_hash),
            parts,
        },
    );
    resource.metadata.namespace = Some(namespace.to_string());
    resource.metadata.labels = Some(
        [(
            "app.kubernetes.io/managed-by".to_string(),
            "tollgate".to_string(),
        )]
        .into(),
    );
    docs.push(
        tollgate_crds::yaml::to_yaml(&resource)
            .map_err(|e| format!("cannot render the TollPolicy of `{tenant}`: {e}"))?,
    );
    Ok(docs.join("---\n"))
}
