//! The controller: reconciles `TollPolicy` resources onto their `SbcFleet`s
//! through the SBC agents, driving the pure rollout state machine
//! ([`tollgate_rollout`]). See `docs/operator.md`.
//!
//! - [`revisions`]: PolicyRevision hash, name, number, history (pure parts
//!   unit-tested) and the calls that keep them.
//! - [`fleet`]: fleet → targets (pure).
//! - [`agents`]: the agent HTTP client behind the [`agents::AgentApi`] trait.
//! - [`reconcile`]: one reconcile of one TollPolicy (finalizer, status,
//!   rollout loop).
//! - [`responses`]: the alert sink (declared responses, rollbacks from
//!   alerts), and keeping `status.activeResponses` on every target.
//! - [`fleet_status`]: the SbcFleet status controller (targets, agents
//!   answering `GET /healthz`, conditions Resolved and Ready).
//! - [`metrics`]: the operator's Prometheus metrics.
//!
//! Entry points: [`Operator::new`] then [`Operator::run`] (or [`run`]);
//! [`Context::report_anomaly`] feeds anomaly alerts to the rollouts.

pub mod agents;
pub mod fleet;
pub mod fleet_status;
pub mod metrics;
pub mod reconcile;
pub mod responses;
pub mod revisions;
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

use agents::AgentApi;
use metrics::Metrics;
use tollgate_rollout::Event;

/// Field manager of every write, and the Events' reporting controller.
pub const MANAGER: &str = "tollgate-operator";
/// The finalizer on every TollPolicy the operator acted on.
pub const FINALIZER: &str = "tollgate.dev/cleanup";
/// Most anomaly events queued per policy (older ones are dropped).
pub const MAX_QUEUED_ANOMALIES: usize = 64;

/// Settings of the controller.
#[derive(Clone)]
pub struct Config {
    /// Namespace to watch; `None`: all namespaces.
    pub namespace: Option<String>,
    /// Token for fleets without `agentTokenSecret` (`--agent-token-file`).
    pub agent_token: Option<String>,
    /// Reporting instance of the Events (the operator's identity).
    pub instance: Option<String>,
    /// Requeue when nothing is pending (notices restarted static targets).
    pub idle_requeue: Duration,
    /// Most `plan` calls per reconcile.
    pub max_iterations: usize,
    /// Agent calls in flight per reconcile.
    pub agent_concurrency: usize,
    /// TollPolicies reconciled at once (0: unbounded). Bounds the API
    /// connections and memory when many policies change together.
    pub reconcile_concurrency: u16,
    /// How long an agent that does not answer may block a TollPolicy's
    /// deletion (after that the finalizer goes with a Warning event).
    pub cleanup_grace: Duration,
    /// How often each SbcFleet's status is refreshed (besides on fleet and
    /// pod changes).
    pub fleet_status_interval: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("namespace", &self.namespace)
            .field(
                "agent_token",
                &self.agent_token.as_ref().map(|_| "<redacted>"),
            )
            .field("instance", &self.instance)
            .field("idle_requeue", &self.idle_requeue)
            .field("max_iterations", &self.max_iterations)
            .field("agent_concurrency", &self.agent_concurrency)
            .field("reconcile_concurrency", &self.reconcile_concurrency)
            .field("cleanup_grace", &self.cleanup_grace)
            .field("fleet_status_interval", &self.fleet_status_interval)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            namespace: None,
            agent_token: None,
            instance: None,
            idle_requeue: Duration::from_secs(60),
            max_iterations: 16,
            agent_concurrency: 64,
            reconcile_concurrency: 16,
            cleanup_grace: Duration::from_secs(600),
            fleet_status_interval: Duration::from_secs(30),
        }
    }
}

/// Anomaly events waiting for their policy's next reconcile.
#[derive(Debug)]
pub struct Anomalies {
    queue: Mutex<HashMap<ObjectRef<TollPolicy>, Vec<Event>>>,
    trigger: mpsc::UnboundedSender<ObjectRef<TollPolicy>>,
}

impl Anomalies {
    fn new() -> (Self, mpsc::UnboundedReceiver<ObjectRef<TollPolicy>>) {
        let (trigger, rx) = mpsc::unbounded_channel();
        (
            Self {
                queue: Mutex::new(HashMap::new()),
                trigger,
            },
            rx,
        )
    }

    /// Takes the events queued for `obj`.
    pub fn take(&self, obj: &ObjectRef<TollPolicy>) -> Vec<Event> {
        self.queue
            .lock()
            .map(|mut q| q.remove(obj).unwrap_or_default())
            .unwrap_or_default()
    }

    fn push(&self, obj: ObjectRef<TollPolicy>, ev: Event) {
        if let Ok(mut q) = self.queue.lock() {
            let v = q.entry(obj.clone()).or_default();
            v.push(ev);
            if v.len() > MAX_QUEUED_ANOMALIES {
                let extra = v.len() - MAX_QUEUED_ANOMALIES;
                v.drain(..extra);
            }
        }
        // The receiver lives as long as the controller; when it is gone
        // there is nobody to reconcile, and the queue keeps the event.
        let _ = self.trigger.send(obj);
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The agents.
    pub agents: Arc<dyn AgentApi>,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Settings.
    pub config: Config,
    /// Anomaly alerts waiting for a reconcile.
    pub anomalies: Anomalies,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Consecutive reconcile errors per policy (for the error backoff).
    errors: Mutex<HashMap<ObjectRef<TollPolicy>, u32>>,
    /// Per policy: serializes status writes (reconciler and alert sink).
    status_locks: Mutex<HashMap<ObjectRef<TollPolicy>, Arc<tokio::sync::Mutex<()>>>>,
    /// Per agent URL: one policy's batch at a time (stage, then commit).
    agent_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// An anomaly alert names `revision` of TollPolicy `namespace/policy`:
    /// queues [`Event::Anomaly`] for it and triggers its reconcile, where
    /// the rollout machine rolls the revision back if it is the current one
    /// and within its anomaly window (alerts for other revisions are
    /// ignored there). Non-blocking; safe to call from any task (e.g. an
    /// Alertmanager webhook handler).
    pub fn report_anomaly(&self, namespace: &str, policy: &str, revision: i64, alert: &str) {
        let obj = ObjectRef::<TollPolicy>::new(policy).within(namespace);
        self.anomalies.push(
            obj,
            Event::Anomaly {
                revision,
                alert: alert.chars().take(256).collect(),
            },
        );
    }

    /// The lock every status write of `obj` holds (the reconciler's and the
    /// alert sink's), so `activeResponses` read under it stay current.
    pub fn status_lock(&self, obj: &ObjectRef<TollPolicy>) -> Arc<tokio::sync::Mutex<()>> {
        match self.status_locks.lock() {
            Ok(mut m) => Arc::clone(m.entry(obj.clone()).or_default()),
            // a poisoned map: a fresh lock still serializes nothing worse
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Holds the agents at `urls` for one batch of one policy: the stages
    /// and commits of two policies on one agent do not interleave, so each
    /// commit finds its stage's checks still valid (an agent keeps the
    /// checks of its newest stage only and checks again at commit when its
    /// state changed since: docs/agent.md, "Staged applies"). Taken in
    /// sorted order, so two batches over the same agents cannot deadlock.
    pub async fn lock_agents(
        &self,
        mut urls: Vec<String>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        urls.sort();
        urls.dedup();
        let locks: Vec<_> = match self.agent_locks.lock() {
            Ok(mut m) => urls
                .into_iter()
                .map(|u| Arc::clone(m.entry(u).or_default()))
                .collect(),
            // a poisoned map: no holding (stages may then be checked again)
            Err(_) => Vec::new(),
        };
        let mut guards = Vec::with_capacity(locks.len());
        for l in locks {
            guards.push(l.lock_owned().await);
        }
        guards
    }

    fn note_result(&self, obj: &ObjectRef<TollPolicy>, ok: bool) -> u32 {
        let Ok(mut e) = self.errors.lock() else {
            return 1;
        };
        if ok {
            e.remove(obj);
            0
        } else {
            let n = e.entry(obj.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
    }
}

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
        let ctx = Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            agents,
            config,
            anomalies,
            metrics,
            errors: Mutex::new(HashMap::new()),
            status_locks: Mutex::new(HashMap::new()),
            agent_locks: Mutex::new(HashMap::new()),
        });
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

        let controller = Controller::new(policies, watcher::Config::default()).with_config(
            kube::runtime::controller::Config::default()
                .concurrency(ctx.config.reconcile_concurrency),
        );
        let policy_store = controller.store();
        let ps1 = policy_store.clone();
        let ps2 = policy_store.clone();
        let fs = fleet_store.clone();
        let trigger = futures::stream::unfold(self.trigger, |mut rx| async move {
            rx.recv().await.map(|o| (o, rx))
        });
        let seen = PodFleets::default();
        let policies = controller
            .owns(revisions, watcher::Config::default())
            .watches_stream(fleet_stream, move |fleet: SbcFleet| {
                policies_of_fleet(&ps1, fleet.namespace(), &fleet.name_any())
            })
            .watches(pods, watcher::Config::default(), move |pod: Pod| {
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

/// Reconcile errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Cleanup could not remove the tenant from some agents yet.
    #[error("cleanup: {0}")]
    Cleanup(String),
    /// The object lacks a namespace or name.
    #[error("invalid object: {0}")]
    Invalid(String),
}

/// Requeue with exponential backoff (5 s doubling up to 5 min) per policy.
fn error_policy(policy: Arc<TollPolicy>, error: &Error, ctx: Arc<Context>) -> KubeAction {
    let obj = ObjectRef::from(policy.as_ref());
    let n = ctx.note_result(&obj, false);
    let secs = tollgate_rollout::backoff(n).clamp(1, 300);
    tracing::warn!(policy = %obj, error = %error, retry_in_s = secs, "reconcile failed");
    KubeAction::requeue(Duration::from_secs(secs.unsigned_abs()))
}
