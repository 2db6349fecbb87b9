//! What every reconcile shares: the settings ([`Config`]), the anomaly
//! queue ([`Anomalies`]) and the [`Context`] (API client, agents, Events,
//! metrics, per-policy and per-agent locks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;
use tollgate_crds::TollPolicy;
use tollgate_rollout::Event;

use super::agents::AgentApi;
use super::lanes::{Lanes, Limits, MAX_BATCH_ENTRIES};
use super::metrics::Metrics;

/// The Events' reporting controller, the field manager of the rollout's
/// TollPolicy status fields and of the SbcFleet status ([`super::status`]).
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
    /// Most policies whose changes go to an agent in one batch, when
    /// several wait for the same agents ([`super::lanes`]).
    pub batch_tenants: usize,
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
            .field("batch_tenants", &self.batch_tenants)
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
            fleet_status_interval: Duration::from_secs(10),
            batch_tenants: 100,
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
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<ObjectRef<TollPolicy>>) {
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
    /// Per policy: serializes the writes of its responses (sink, upkeep).
    status_locks: Mutex<HashMap<ObjectRef<TollPolicy>, Arc<tokio::sync::Mutex<()>>>>,
    /// Per agent URL: one batch at a time (stage, then commit; or one
    /// combined batch).
    agent_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Work waiting for its agents, per set of agents.
    pub(crate) lanes: Lanes,
    /// The pods of the watched namespace(s), kept by the controller's pod
    /// watch (slimmed: what a fleet's selector and readiness read); set
    /// once the controller runs. Selector fleets are resolved from it, not
    /// listed per reconcile.
    pub(crate) pods:
        std::sync::OnceLock<kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Pod>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context with no errors counted and no lock taken.
    pub(crate) fn new(
        client: Client,
        agents: Arc<dyn AgentApi>,
        recorder: Recorder,
        config: Config,
        anomalies: Anomalies,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            agents,
            recorder,
            config,
            anomalies,
            metrics,
            errors: Mutex::new(HashMap::new()),
            status_locks: Mutex::new(HashMap::new()),
            agent_locks: Mutex::new(HashMap::new()),
            lanes: Lanes::default(),
            pods: std::sync::OnceLock::new(),
        }
    }

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

    /// The lock the writers of `obj`'s responses hold (the alert sink and
    /// the reconciler's upkeep of responses) from their read of
    /// `activeResponses`/`acknowledgedAlerts` through their write, so
    /// neither drops what the other recorded.
    pub fn status_lock(&self, obj: &ObjectRef<TollPolicy>) -> Arc<tokio::sync::Mutex<()>> {
        match self.status_locks.lock() {
            Ok(mut m) => Arc::clone(m.entry(obj.clone()).or_default()),
            // a poisoned map: a fresh lock still serializes nothing worse
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// How much one round of a lane carries ([`Config::batch_tenants`]).
    pub(crate) fn batch_limits(&self) -> Limits {
        Limits {
            tenants: self.config.batch_tenants.max(1),
            entries: MAX_BATCH_ENTRIES,
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

    /// Counts a reconcile's result; returns the consecutive errors.
    pub(crate) fn note_result(&self, obj: &ObjectRef<TollPolicy>, ok: bool) -> u32 {
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
