//! `tollgate-operator`: reconciles TollPolicies onto SBC fleets
//! (`docs/operator.md`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tollgate_operator::admin;
use tollgate_operator::controller::agents::HttpAgents;
use tollgate_operator::controller::metrics::Metrics;
use tollgate_operator::controller::responses::OperatorSink;
use tollgate_operator::controller::{Config, Operator};
use tollgate_operator::webhook::{Receiver, serve_receiver};
use tollgate_plumbing::metrics::Registry;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Reconciles TollPolicies onto SBC fleets through their Tollgate agents.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Namespace to watch (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Address of the metrics and health endpoints (/metrics, /healthz, /readyz).
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// File holding the agents' bearer token, for fleets without `agentTokenSecret`.
    #[arg(long)]
    agent_token_file: Option<std::path::PathBuf>,
    /// Connect timeout and timeout of `GET /v1/state`, seconds.
    #[arg(long, default_value_t = 10)]
    agent_timeout_secs: u64,
    /// Timeout of an apply or removal (the agent trial-starts Kamailio), seconds.
    #[arg(long, default_value_t = 120)]
    agent_apply_timeout_secs: u64,
    /// How long an agent's summary of every tenant (`GET /v1/state/summary`)
    /// answers observations, milliseconds; 0: every observation asks the
    /// agent for its tenant.
    #[arg(long, default_value_t = 2000)]
    agent_summary_ttl_ms: u64,
    /// Run the controller only while holding the Lease (default on).
    #[arg(long, default_value_t = true, overrides_with = "no_leader_election")]
    leader_election: bool,
    /// Run the controller without a Lease (a single replica).
    #[arg(long, overrides_with = "leader_election")]
    no_leader_election: bool,
    /// Name of the coordination.k8s.io/v1 Lease.
    #[arg(long, default_value = "tollgate-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Identity in the Lease and in Events (default: random).
    #[arg(long, env = "HOSTNAME")]
    identity: Option<String>,
    /// TollPolicies reconciled at once (0: unbounded). Also bounds how many
    /// policies' changes can meet in one agent batch.
    #[arg(long, default_value_t = 16)]
    reconcile_concurrency: u16,
    /// Most policies whose changes go to an agent in one `POST /v1/batch`
    /// when several wait for the same agents.
    #[arg(long, default_value_t = 100)]
    agent_batch_max: usize,
    /// Address of the Alertmanager webhook (`POST /alerts`).
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,
    /// File holding the bearer token Alertmanager presents. The webhook runs
    /// only when this is given.
    #[arg(long)]
    webhook_token_file: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Seconds that reconciles in progress get to finish after SIGTERM, and
    /// releasing the Lease after them; then the process exits anyway (keep
    /// it below the pod's terminationGracePeriodSeconds).
    #[arg(long, default_value_t = 20)]
    shutdown_grace_secs: u64,
    /// Seconds between two looks at each SbcFleet's agents (`GET /healthz`:
    /// `ready`, `degraded` and the conditions of its status); a fleet or
    /// pod change is looked at at once.
    #[arg(long, default_value_t = 10)]
    fleet_status_secs: u64,
}

fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("tollgate-operator-{:016x}", h.finish())
}

/// Completes on SIGTERM or SIGINT.
async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logs(args.log_format);
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tollgate-operator failed");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let agent_token = match &args.agent_token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("reading --agent-token-file {}: {e}", p.display()))?;
            let t = t.trim().to_owned();
            if t.is_empty() {
                return Err(format!("--agent-token-file {} is empty", p.display()).into());
            }
            Some(t)
        }
        None => None,
    };
    let webhook_token = match &args.webhook_token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("reading --webhook-token-file {}: {e}", p.display()))?;
            let t = t.trim().to_owned();
            if t.is_empty() {
                return Err(format!("--webhook-token-file {} is empty", p.display()).into());
            }
            Some(t)
        }
        None => None,
    };
    let identity = args
        .identity
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(random_id);
    let client = Client::try_default().await?;
    // The process's one metrics registry: the controller's metrics and,
    // with the webhook, the receiver's.
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::default());
    metrics.register(&mut registry);
    // The servers (metrics, webhook) stop when this flips.
    let (servers_stop, servers_rx) = watch::channel(false);
    let servers_stopped = move || {
        let mut rx = servers_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // The webhook: only with a token. Every replica serves it; only the
    // leader's sink holds a controller context and acts, the others answer
    // 503 and Alertmanager retries (through the Service, to the leader).
    let sink = OperatorSink::default();
    let mut webhook_task = None;
    if let Some(t) = webhook_token {
        let receiver = Arc::new(Receiver::new(sink.clone(), t.into_bytes()));
        let listener = TcpListener::bind(args.webhook_addr)
            .await
            .map_err(|e| format!("binding --webhook-addr {}: {e}", args.webhook_addr))?;
        tracing::info!(addr = %args.webhook_addr, "alert webhook listening (POST /alerts, bearer token)");
        receiver.metrics.register(&mut registry);
        webhook_task = Some(tokio::spawn(serve_receiver(
            listener,
            receiver,
            servers_stopped(),
        )));
    } else {
        tracing::info!("alert webhook off: no --webhook-token-file");
    }
    let (ready_tx, ready_rx) = watch::channel(false);
    let addr = args.metrics_addr;
    let registry = Arc::new(registry);
    let metrics_task = match TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(%addr, "metrics listening");
            Some(tokio::spawn(admin::serve(
                listener,
                registry,
                ready_rx,
                servers_stopped(),
            )))
        }
        Err(e) => {
            // as before: the operator runs on without its metrics endpoint
            tracing::error!(error = %e, %addr, "metrics endpoint failed");
            None
        }
    };
    let agents = Arc::new(
        HttpAgents::new(
            Duration::from_secs(args.agent_timeout_secs.max(1)),
            Duration::from_secs(args.agent_apply_timeout_secs.max(1)),
        )
        .with_summaries(Duration::from_millis(args.agent_summary_ttl_ms)),
    );
    let config = Config {
        namespace: args.namespace.clone(),
        agent_token,
        instance: Some(identity.clone()),
        reconcile_concurrency: args.reconcile_concurrency,
        batch_tenants: args.agent_batch_max.max(1),
        fleet_status_interval: Duration::from_secs(args.fleet_status_secs.max(1)),
        ..Config::default()
    };
    tracing::info!(namespace = ?args.namespace, %identity, leader_election = !args.no_leader_election, "starting");

    // SIGTERM/SIGINT, as a channel many tasks can wait on.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let grace = Duration::from_secs(args.shutdown_grace_secs);

    if args.no_leader_election || !args.leader_election {
        let _ = ready_tx.send(true);
        metrics.set_leader(true);
        let op = Operator::new(client, config, agents, Arc::clone(&metrics));
        sink.set(Some(op.context()));
        run_bounded(op, stopped(stop_rx.clone()), stop_rx.clone(), grace).await;
        sink.set(None);
        stop_servers(servers_stop, metrics_task, webhook_task).await;
        return Ok(());
    }

    let lease_ns = args
        .lease_namespace
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&lease_ns)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(10)
        .with_field_manager(format!("tollgate-operator-{identity}"))
        .build()
        .await?;
    let (mut leader, lease_task) = manager.watch().await;
    let _ = ready_tx.send(true);
    let mut stop = stop_rx.clone();
    loop {
        // Wait to become the leader (or to stop).
        tokio::select! {
            r = leader.wait_for(|l| *l) => { if r.is_err() { break; } }
            _ = stop.wait_for(|s| *s) => break,
        }
        tracing::info!(lease = %args.lease_name, "became the leader; starting the controller");
        metrics.set_leader(true);
        let mut lost = leader.clone();
        let stop2 = stop_rx.clone();
        let shutdown = async move {
            tokio::select! {
                _ = lost.wait_for(|l| !*l) => {
                    tracing::warn!("lost the lease; stopping the controller");
                }
                _ = stopped(stop2) => {}
            }
        };
        let op = Operator::new(
            client.clone(),
            config.clone(),
            agents.clone(),
            Arc::clone(&metrics),
        );
        sink.set(Some(op.context()));
        run_bounded(op, shutdown, stop_rx.clone(), grace).await;
        sink.set(None);
        metrics.set_leader(false);
        if *stop.borrow() {
            break;
        }
    }
    // Closing the channel makes the lease task release the lease.
    drop(leader);
    match tokio::time::timeout(grace, lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("lease released"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "releasing the lease"),
        Ok(Err(e)) => tracing::warn!(error = %e, "lease task"),
        Err(_) => tracing::warn!(
            grace_secs = grace.as_secs(),
            "the lease was not released within the shutdown grace; it expires on its own"
        ),
    }
    stop_servers(servers_stop, metrics_task, webhook_task).await;
    Ok(())
}

/// Runs the controller until `shutdown`. Once `stop` says the process
/// stops, reconciles in progress get `grace` to finish: a call to an API
/// server that does not answer would otherwise hold the process for the
/// client's read timeout.
async fn run_bounded(
    op: Operator,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let deadline = async move {
        let _ = stop.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = op.run(shutdown) => {}
        () = deadline => tracing::warn!(
            grace_secs = grace.as_secs(),
            "the controller did not stop within the shutdown grace (a call to the API server is still waiting); exiting"
        ),
    }
}

/// Closes the servers' listeners; requests in progress finish in their own
/// tasks.
async fn stop_servers(
    stop: watch::Sender<bool>,
    metrics: Option<tokio::task::JoinHandle<()>>,
    webhook: Option<tokio::task::JoinHandle<()>>,
) {
    stop.send_replace(true);
    for t in [metrics, webhook].into_iter().flatten() {
        let _ = t.await;
    }
}
