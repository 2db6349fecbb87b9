//! Test support, a dev-dependency only: the pieces every test and benchmark
//! against the real testbed API server needs, in one place, and the agent's
//! test double ([`fake_agent`]).
//!
//! - [`testbed_client`]: a client for `KUBECONFIG`, refusing any current
//!   context other than `testbed` (so a real cluster is never touched);
//!   [`testbed_or_skip`] is the integration tests' version (prints
//!   `SKIPPED <test>` and gives `None` when `KUBECONFIG` is unset).
//! - [`install_crds`]: server-side apply of every Tollgate CRD, then waits
//!   for each to be `Established`.
//! - [`suffix`], [`create_namespace`], [`delete_namespace`]: a namespace of
//!   one's own; [`in_testbed_namespace`] frames a whole test with them.
//! - [`start_agents`], [`create_token_secret`], [`static_fleet`]: a fleet of
//!   [`FakeAgent`]s behind a static SbcFleet.
//! - [`wait_for`]: polling until a condition holds, with a deadline.
//!
//! Library code: every failure is an `Err` with a message, never a panic.

pub mod fake_agent;

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions::is_crd_established};
use kube::{Client, Config as KubeConfig, ResourceExt};
use tollgate_crds::SbcFleet;
use tollgate_crds::SbcFleetSpec;
use tollgate_crds::sbc_fleet::{SbcBackend, SecretKeyReference, StaticEndpoint};

use crate::fake_agent::FakeAgent;

/// Any error, with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The result of the helpers here (and of the tests using them).
pub type R<T = ()> = Result<T, Error>;

/// The only kubeconfig context these helpers talk to.
pub const TESTBED_CONTEXT: &str = "testbed";
/// The Secret [`create_token_secret`] creates and [`static_fleet`] names.
pub const TOKEN_SECRET: &str = "agent-token";
/// The key of the agent token in [`TOKEN_SECRET`].
pub const TOKEN_KEY: &str = "token";

/// A client of the testbed API server (`KUBECONFIG`, context `testbed`);
/// `Ok(None)` when `KUBECONFIG` is unset, an error when its current context
/// is another one (it may be a real cluster).
pub async fn testbed_client() -> R<Option<Client>> {
    let Some(path) = std::env::var_os("KUBECONFIG") else {
        return Ok(None);
    };
    let kubeconfig = Kubeconfig::read_from(&path)
        .map_err(|e| format!("KUBECONFIG {}: {e}", path.to_string_lossy()))?;
    if kubeconfig.current_context.as_deref() != Some(TESTBED_CONTEXT) {
        return Err(format!(
            "KUBECONFIG's current context is not \"{TESTBED_CONTEXT}\": refusing to run against \
             what may be a real cluster"
        )
        .into());
    }
    let options = KubeConfigOptions {
        context: Some(TESTBED_CONTEXT.into()),
        ..KubeConfigOptions::default()
    };
    let config = KubeConfig::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| format!("testbed kubeconfig: {e}"))?;
    Ok(Some(Client::try_from(config)?))
}

/// [`testbed_client`] for an integration test named `test`: when
/// `KUBECONFIG` is unset, prints `SKIPPED <test>: ...` and gives `Ok(None)`.
pub async fn testbed_or_skip(test: &str) -> R<Option<Client>> {
    let client = testbed_client().await?;
    if client.is_none() {
        eprintln!(
            "SKIPPED {test}: KUBECONFIG is not set. Run `eval \"$(scripts/apiserver.sh start)\"` \
             first (scripts/test.sh does)."
        );
    }
    Ok(client)
}

/// Server-side applies every Tollgate CRD (field manager `manager`, forced)
/// and waits up to 30 s for each to be `Established`.
pub async fn install_crds(client: &Client, manager: &str) -> R {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(manager).force();
    for (_, crd) in tollgate_crds::all_crds() {
        let name = crd.name_any();
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|e| format!("applying CRD {name}: {e}"))?;
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, is_crd_established()),
        )
        .await
        .map_err(|_| format!("CRD {name} not Established"))??;
    }
    Ok(())
}

/// A random 8-hex-digit suffix for names of one's own (namespaces).
pub fn suffix() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:08x}", h.finish() as u32)
}

/// Creates the namespace `name`.
pub async fn create_namespace(client: &Client, name: &str) -> R {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .map_err(|e| format!("creating namespace {name}: {e}"))?;
    Ok(())
}

/// An integration test's frame: logging from `RUST_LOG`, a fresh namespace
/// `<prefix>-<suffix>` on the testbed API server, `scenario` in it, the
/// namespace deleted. `Ok` also when the test is skipped (no `KUBECONFIG`);
/// the scenario's error names the test and the namespace.
pub async fn in_testbed_namespace(
    test: &str,
    prefix: &str,
    manager: &str,
    scenario: impl AsyncFnOnce(&Client, &str) -> R,
) -> Result<(), String> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some((client, ns)) = testbed_namespace(test, prefix, manager)
        .await
        .map_err(|e| format!("{test}: testbed namespace: {e}"))?
    else {
        return Ok(());
    };
    let result = scenario(&client, &ns).await;
    delete_namespace(&client, &ns).await;
    result.map_err(|e| format!("{test} (namespace {ns}): {e}"))
}

/// Deletes the namespace `name` (best effort: cleanup after a result that
/// is reported anyway).
pub async fn delete_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
}

/// Starts `n` fake agents on loopback, each requiring `token`.
pub async fn start_agents(n: usize, token: &str) -> R<Vec<FakeAgent>> {
    let mut agents = Vec::with_capacity(n);
    for _ in 0..n {
        agents.push(
            FakeAgent::start(token)
                .await
                .map_err(|e| format!("starting a fake agent: {e}"))?,
        );
    }
    Ok(agents)
}

/// Creates the Secret [`TOKEN_SECRET`] in `ns` holding `token` under
/// [`TOKEN_KEY`].
pub async fn create_token_secret(client: &Client, ns: &str, token: &str) -> R {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some(TOKEN_SECRET.into()),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(
                    TOKEN_KEY.to_owned(),
                    ByteString(token.as_bytes().to_vec()),
                )])),
                ..Secret::default()
            },
        )
        .await
        .map_err(|e| format!("creating Secret {TOKEN_SECRET} in {ns}: {e}"))?;
    Ok(())
}

/// The usual test fleet in `ns`: the Secret of `token` and the static
/// SbcFleet `edge` of `agents` (agent port 9443) that names it.
pub async fn create_edge_fleet(client: &Client, ns: &str, agents: &[FakeAgent], token: &str) -> R {
    create_token_secret(client, ns, token).await?;
    let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), ns);
    fleets
        .create(
            &PostParams::default(),
            &static_fleet("edge", agents, 9443, true),
        )
        .await
        .map_err(|e| format!("creating SbcFleet edge in {ns}: {e}"))?;
    Ok(())
}

/// Points the fleet `edge` of [`create_edge_fleet`] at `agents`.
pub async fn set_edge_agents(client: &Client, ns: &str, agents: &[FakeAgent]) -> R {
    let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({"spec": {"endpoints": endpoints(agents)}});
    fleets
        .patch("edge", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| format!("patching SbcFleet edge in {ns}: {e}"))?;
    Ok(())
}

/// The static endpoints (`127.0.0.1:<port>`) of `agents`.
pub fn endpoints(agents: &[FakeAgent]) -> Vec<StaticEndpoint> {
    agents
        .iter()
        .map(|a| StaticEndpoint {
            host: "127.0.0.1".into(),
            port: Some(a.addr().port()),
        })
        .collect()
}

/// A static Kamailio SbcFleet `name` of `agents`; with `token_secret`, its
/// agent token is [`TOKEN_SECRET`] (see [`create_token_secret`]).
pub fn static_fleet(
    name: &str,
    agents: &[FakeAgent],
    agent_port: u16,
    token_secret: bool,
) -> SbcFleet {
    SbcFleet::new(
        name,
        SbcFleetSpec {
            selector: None,
            endpoints: Some(endpoints(agents)),
            backend: SbcBackend::Kamailio,
            agent_port,
            agent_token_secret: token_secret.then(|| SecretKeyReference {
                name: TOKEN_SECRET.into(),
                key: TOKEN_KEY.into(),
            }),
        },
    )
}

/// Calls `f` every `every` until it gives `Some`, for at most `secs`
/// seconds; an error from `f` ends the wait with that error.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, every: Duration, mut f: F) -> R<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = R<Option<T>>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {secs} s waiting for {what}").into());
        }
        tokio::time::sleep(every).await;
    }
}

/// An integration test's start against the testbed: [`testbed_or_skip`]
/// (`Ok(None)`: skipped, said so), [`install_crds`] as `manager`, and a
/// fresh namespace `<prefix>-<suffix>` (delete it with
/// [`delete_namespace`]).
pub async fn testbed_namespace(
    test: &str,
    prefix: &str,
    manager: &str,
) -> R<Option<(Client, String)>> {
    let Some(client) = testbed_or_skip(test).await? else {
        return Ok(None);
    };
    install_crds(&client, manager).await?;
    let ns = format!("{prefix}-{}", suffix());
    create_namespace(&client, &ns).await?;
    Ok(Some((client, ns)))
}
