//! The controller: reconciles `TollPolicy` resources onto their `SbcFleet`s
//! through the SBC agents, driving the pure rollout state machine
//! ([`tollgate_rollout`]). See `docs/operator.md`.
//!
//! Modules (dependencies point one way: this file wires them; none of them
//! imports this file or a module that imports it back):
//! - [`context`]: [`Config`], [`Context`] (client, agents, Events, metrics,
//!   locks), the anomaly queue; [`error`]: [`Error`].
//! - [`content`]: a policy's compiled content, assembled from its
//!   PolicyChunks when it is too big for one object.
//! - [`revisions`]: PolicyRevision hash, name, number, history (pure parts
//!   unit-tested) and the calls that keep them.
//! - [`fleet`]: fleet → targets (pure); [`targets`]: the same with the API
//!   calls (the fleet's pods, the agents' token).
//! - [`agents`]: the agent HTTP client behind the [`agents::AgentApi`] trait.
//! - [`status`]: the TollPolicy status writers, one field manager per owner
//!   (the rollout's fields, the responses' fields).
//! - [`events`]: publishing Kubernetes Events.
//! - [`reconcile`]: one reconcile of one TollPolicy (finalizer, status,
//!   rollout loop).
//! - [`responses`]: the alert sink (declared responses, rollbacks from
//!   alerts), and keeping `status.activeResponses` on every target (the
//!   rules themselves are pure: [`tollgate_alerts::responses`]).
//! - [`fleet_status`]: the SbcFleet status controller (targets, agents
//!   answering `GET /healthz`, conditions Resolved and Ready).
//! - [`metrics`]: the operator's Prometheus metrics.
//!
//! Entry points: [`Operator::new`] then [`Operator::run`] (or [`run`]);
//! [`Context::report_anomaly`] feeds anomaly alerts to the rollouts.

pub mod agents;
pub mod content;
pub mod context;
pub mod error;
pub mod events;
pub mod fleet;
pub mod fleet_status;
pub mod lanes;
pub mod metrics;
pub mod reconcile;
pub mod responses;
pub mod revisions;
pub mod status;
pub mod targets;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{Action as KubeAction, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;
use tollgate_crds::{PolicyRevision, SbcFleet, TollPolicy};

pub use context::{Anomalies, Config, Context, FINALIZER, MANAGER, MAX_QUEUED_ANOMALIES};
pub use error::Error;

use agents::AgentApi;
use metrics::Metrics;

/// The controller, built but not running yet.
pub struct Operator {
    ctx: Arc<Context>,
    trigger: mpsc::UnboundedReceiver<ObjectRef<TollPolicy>>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// Builds the context.
    pub fn new(
        client: Client,
        config: Config,
        agents: Arc<dyn AgentApi>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (anomalies, trigger) = Anomalies::new();
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: config.instance.clone(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        let ctx = Arc::new(Context::new(
            client, agents, recorder, config, anomalies, metrics,
        ));
        Self { ctx, trigger }
    }

    /// The shared context (for [`Context::report_anomaly`]).
    pub fn context(&self) -> Arc<Context> {
        Arc::clone(&self.ctx)
    }

    /// Runs the controllers (TollPolicy and SbcFleet status) until
    /// `shutdown` completes (then finishes the reconciles in flight and
    /// returns).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
        let shutdown = futures::FutureExt::shared(shutdown);
        let ctx = self.ctx;
        let client = ctx.client.clone();
        let ns = ctx.config.namespace.clone();
        fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
        where
            K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
            K::DynamicType: Default,
        {
            match ns {
                Some(n) => Api::namespaced(client.clone(), n),
                None => Api::all(client.clone()),
            }
        }
        let policies: Api<TollPolicy> = api(&client, &ns);
        let revisions: Api<PolicyRevision> = api(&client, &ns);
        let fleets: Api<SbcFleet> = api(&client, &ns);
        let pods: Api<Pod> = api(&client, &ns);
        let fleet_status = fleet_status_controller(
            fleets.clone(),
            pods.clone(),
            Arc::clone(&ctx),
            shutdown.clone(),
        );

        let (fleet_store, fleet_writer) = reflector::store::<SbcFleet>();
        let fleet_stream =
            reflector::reflector(fleet_writer, watcher(fleets, watcher::Config::default()))
                .default_backoff()
                .touched_objects();

        // The policies as the controller keeps them: without their large
        // lists, managedFields or kubectl's copy of the object (`slim_policy`),
        // so the operator's memory does not grow with the policies' size;
        // a reconcile reads the object itself.
        let (policy_store, policy_writer) = reflector::store::<TollPolicy>();
        // (pages of 50: the first list of real-size policies is held a
        // page at a time before it is slimmed)
        let policy_stream = watcher(policies, watcher::Config::default().page_size(50))
            .default_backoff()
            .modify(slim_policy)
            .reflect(policy_writer)
            .applied_objects();
        let controller = Controller::for_stream(policy_stream, policy_store.clone()).with_config(
            kube::runtime::controller::Config::default()
                .concurrency(ctx.config.reconcile_concurrency),
        );
        let ps1 = policy_store.clone();
        let ps2 = policy_store.clone();
        let fs = fleet_store.clone();
        let trigger = futures::stream::unfold(self.trigger, |mut rx| async move {
            rx.recv().await.map(|o| (o, rx))
        });
        let seen = PodFleets::default();
        // The pods, slimmed, kept for resolving selector fleets
        // (`targets::resolve`) and waking the policies of the fleets a pod
        // is (or was) in.
        let (pod_store, pod_writer) = reflector::store::<Pod>();
        let _ = ctx.pods.set(pod_store);
        let pod_stream = watcher(pods, watcher::Config::default())
            .default_backoff()
            .modify(fleet::slim_pod)
            .reflect(pod_writer)
            .touched_objects();
        let policies = controller
            .owns(revisions, watcher::Config::default())
            .watches_stream(fleet_stream, move |fleet: SbcFleet| {
                policies_of_fleet(&ps1, fleet.namespace(), &fleet.name_any())
            })
            .watches_stream(pod_stream, move |pod: Pod| {
                seen.notify(&pod, selecting(&fs, &pod))
                    .iter()
                    .flat_map(|f| policies_of_fleet(&ps2, pod.namespace(), f))
                    .collect::<Vec<_>>()
            })
            .reconcile_on(trigger)
            .graceful_shutdown_on(shutdown)
            .run(reconcile::reconcile, error_policy, ctx)
            .for_each(|r| async move {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "controller stream");
                }
            });
        futures::join!(policies, fleet_status);
    }
}

/// The SbcFleet status controller ([`fleet_status`]): every fleet, again
/// on its own requeue and when a pod it selects changes.
async fn fleet_status_controller(
    fleets: Api<SbcFleet>,
    pods: Api<Pod>,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::new(fleets, watcher::Config::default()).with_config(
        kube::runtime::controller::Config::default().concurrency(ctx.config.reconcile_concurrency),
    );
    let store = controller.store();
    let seen = PodFleets::default();
    controller
        .watches(pods, watcher::Config::default(), move |pod: Pod| {
            seen.notify(&pod, selecting(&store, &pod))
                .into_iter()
                .map(|f| {
                    let r = ObjectRef::new(&f);
                    match pod.namespace() {
                        Some(ns) => r.within(&ns),
                        None => r,
                    }
                })
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(
            fleet_status::reconcile_fleet,
            fleet_status::error_policy,
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "fleet status stream");
            }
        })
        .await;
}

/// [`Operator::new`] then [`Operator::run`].
pub async fn run(
    client: Client,
    config: Config,
    agents: Arc<dyn AgentApi>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    Operator::new(client, config, agents, metrics)
        .run(shutdown)
        .await;
}

/// A TollPolicy as the controller's store keeps it: the policy's large
/// lists (destinations, classes, source networks, source map), its status,
/// its managedFields and the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation (a copy
/// of the whole object) dropped. The store is read for names, fleets,
/// tenants and metadata only; a reconcile reads the object from the API
/// server.
pub fn slim_policy(p: &mut TollPolicy) {
    p.metadata.managed_fields = None;
    p.status = None;
    if let Some(a) = p.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    let policy = &mut p.spec.policy;
    policy.destinations = Vec::new();
    policy.classes = Vec::new();
    policy.sources.networks = Vec::new();
    policy.rules = Vec::new();
}

/// The policies (in the store) that name the fleet `name` of namespace `ns`.
fn policies_of_fleet(
    store: &Store<TollPolicy>,
    ns: Option<String>,
    name: &str,
) -> Vec<ObjectRef<TollPolicy>> {
    store
        .state()
        .iter()
        .filter(|p| p.namespace() == ns && p.spec.fleet.name == name)
        .map(|p| ObjectRef::from(p.as_ref()))
        .collect()
}

/// The names of the fleets (in the store) whose selector matches this pod
/// now.
fn selecting(fleets: &Store<SbcFleet>, pod: &Pod) -> Vec<String> {
    let ns = pod.namespace();
    fleets
        .state()
        .iter()
        .filter(|f| f.namespace() == ns && fleet::selects(&f.spec, pod))
        .map(|f| f.name_any())
        .collect()
}

/// The fleets each pod was last seen in. A pod event concerns the fleets
/// selecting the pod now AND those that selected it before: a pod
/// relabelled out of a fleet's selector must still make that fleet (and
/// its policies) look again, or it would stay a target until the next
/// periodic requeue.
#[derive(Debug, Default)]
struct PodFleets(Mutex<HashMap<PodKey, Vec<String>>>);

/// A pod's namespace and name.
type PodKey = (Option<String>, String);

impl PodFleets {
    /// The fleets (names, in the pod's namespace) to notify of this event,
    /// given the fleets selecting the pod `now`. A pod that is being
    /// deleted or selected by none is forgotten.
    fn notify(&self, pod: &Pod, now: Vec<String>) -> Vec<String> {
        let key = (pod.namespace(), pod.name_any());
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = if pod.metadata.deletion_timestamp.is_some() || now.is_empty() {
            seen.remove(&key)
        } else {
            seen.insert(key, now.clone())
        };
        let mut all = now;
        for f in before.unwrap_or_default() {
            if !all.contains(&f) {
                all.push(f);
            }
        }
        all
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }
}

/// Requeue with exponential backoff (5 s doubling up to 5 min) per policy.
fn error_policy(policy: Arc<TollPolicy>, error: &Error, ctx: Arc<Context>) -> KubeAction {
    let obj = ObjectRef::from(policy.as_ref());
    let n = ctx.note_result(&obj, false);
    let secs = tollgate_rollout::backoff(n).clamp(1, 300);
    tracing::warn!(policy = %obj, error = %error, retry_in_s = secs, "reconcile failed");
    KubeAction::requeue(Duration::from_secs(secs.unsigned_abs()))
}
