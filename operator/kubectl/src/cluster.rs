//! The API calls: reading a TollPolicy, its PolicyRevisions and their
//! content (PolicyChunks assembled and checked as the operator does), and the
//! two writes a person makes (a merge patch of `spec.rollout`, the release
//! annotation).

use kube::api::{ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tollgate_crds::policy_revision::{POLICY_LABEL, label_value};
use tollgate_crds::{PolicyChunk, PolicyRevision, TollPolicy};
use tollgate_ir::CompiledPolicy;

use crate::Error;

/// The annotation the operator carries out (docs/operator.md, "Acknowledging").
const RELEASE_ANNOTATION: &str = "tollgate.dev/release";

/// A client and the namespace the commands act in.
pub struct Cluster {
    client: Client,
    ns: String,
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

impl Cluster {
    /// The kubeconfig as kubectl reads it (`KUBECONFIG`, `~/.kube/config`),
    /// else the in-cluster service account.
    pub async fn connect(
        context: Option<&str>,
        namespace: Option<&str>,
        timeout: std::time::Duration,
    ) -> Result<Cluster, Error> {
        let opts = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let mut config = match Kubeconfig::read() {
            Ok(kc) => Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| Error::Config(e.to_string()))?,
            Err(read) => Config::incluster()
                .map_err(|e| Error::Config(format!("{read}; not in a cluster either: {e}")))?,
        };
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let ns = namespace.map_or_else(|| config.default_namespace.clone(), str::to_owned);
        let client = Client::try_from(config).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Cluster { client, ns })
    }

    fn policies(&self) -> Api<TollPolicy> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// The TollPolicy `name`.
    pub async fn policy(&self, name: &str) -> Result<TollPolicy, Error> {
        self.policies()
            .get_opt(name)
            .await
            .map_err(api_err(format!("reading TollPolicy {name}")))?
            .ok_or_else(|| Error::NotFound {
                name: name.to_owned(),
                namespace: self.ns.clone(),
            })
    }

    /// Its PolicyRevisions, by revision number.
    pub async fn revisions(&self, name: &str) -> Result<Vec<PolicyRevision>, Error> {
        let api: Api<PolicyRevision> = Api::namespaced(self.client.clone(), &self.ns);
        let lp = ListParams::default().labels(&format!("{POLICY_LABEL}={}", label_value(name)));
        let mut revs: Vec<PolicyRevision> = api
            .list(&lp)
            .await
            .map_err(api_err(format!("listing the PolicyRevisions of {name}")))?
            .items
            .into_iter()
            .filter(|r| r.spec.policy_name == name)
            .collect();
        revs.sort_by_key(|r| r.spec.revision);
        Ok(revs)
    }

    /// The whole compiled policy of revision `n`: its head, with its
    /// PolicyChunks assembled in and checked when it has parts.
    pub async fn content(&self, revs: &[PolicyRevision], n: i64) -> Result<CompiledPolicy, Error> {
        let r = revs.iter().find(|r| r.spec.revision == n).ok_or_else(|| {
            let have: Vec<String> = revs.iter().map(|r| r.spec.revision.to_string()).collect();
            Error::Usage(format!(
                "no revision {n} (the cluster keeps {}; older ones were pruned)",
                if have.is_empty() {
                    "none".to_owned()
                } else {
                    have.join(", ")
                }
            ))
        })?;
        let Some(parts) = &r.spec.parts else {
            return Ok(r.spec.policy.clone());
        };
        let api: Api<PolicyChunk> = Api::namespaced(self.client.clone(), &self.ns);
        let mut found = std::collections::HashMap::new();
        for c in &parts.chunks {
            if let Some(chunk) = api
                .get_opt(&c.name)
                .await
                .map_err(api_err(format!("reading PolicyChunk {}", c.name)))?
            {
                found.insert(c.name.clone(), chunk);
            }
        }
        tollgate_ir::chunks::assemble(&r.spec.policy, parts, |c| {
            found.remove(&c.name).map(PolicyChunk::into_chunk)
        })
        .map_err(|e| Error::Usage(format!("revision {n}'s chunks: {e}")))
    }

    /// A merge patch of `spec.rollout`.
    pub async fn patch_rollout(&self, name: &str, rollout: serde_json::Value) -> Result<(), Error> {
        let body = serde_json::json!({ "spec": { "rollout": rollout } });
        self.policies()
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(api_err(format!("patching TollPolicy {name}")))?;
        Ok(())
    }

    /// Sets the release annotation to `value` (`all` or rules, comma separated).
    pub async fn annotate_release(&self, name: &str, value: &str) -> Result<(), Error> {
        let body =
            serde_json::json!({ "metadata": { "annotations": { RELEASE_ANNOTATION: value } } });
        self.policies()
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(api_err(format!("annotating TollPolicy {name}")))?;
        Ok(())
    }
}
