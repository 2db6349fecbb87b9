//! A fleet's targets and the agents' token, read from the API server (the
//! pure mapping is [`super::fleet`]).

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use tollgate_crds::SbcFleet;

use super::context::Context;
use super::error::Error;
use super::fleet::{self, ResolvedTarget};

/// Targets of the fleet: the static endpoints, or the pods of the fleet's
/// namespace its selector matches. The pods come from the controller's pod
/// watch ([`Context::pods`]) once it has listed them all; before that (the
/// operator's first seconds, or a test without the controller) they are
/// listed.
pub async fn resolve(
    ctx: &Context,
    ns: &str,
    fleet: &SbcFleet,
) -> Result<Vec<ResolvedTarget>, Error> {
    if fleet.spec.selector.is_none() {
        return Ok(fleet::static_targets(&fleet.spec));
    }
    if let Some(store) = ctx.pods.get()
        && store
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok())
    {
        let pods = store.state();
        return Ok(fleet::pod_targets(
            &fleet.spec,
            pods.iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
                .map(AsRef::as_ref),
        ));
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let list = pods.list(&ListParams::default()).await?;
    Ok(fleet::pod_targets(&fleet.spec, &list.items))
}

/// The agents' bearer token: the fleet's Secret, else `--agent-token-file`.
pub async fn agent_token(
    ctx: &Context,
    ns: &str,
    fleet: &SbcFleet,
) -> Result<Option<String>, Error> {
    let Some(r) = &fleet.spec.agent_token_secret else {
        return Ok(ctx.config.agent_token.clone());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = secrets.get_opt(&r.name).await?;
    let bytes = secret
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(&r.key))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "SbcFleet {}: Secret {} has no key {}",
                fleet.name_any(),
                r.name,
                r.key
            ))
        })?;
    let token = String::from_utf8(bytes.0)
        .map_err(|_| Error::Invalid(format!("Secret {} key {} is not UTF-8", r.name, r.key)))?;
    Ok(Some(token.trim().to_owned()))
}
