//! The operator's convergence and memory benchmark (`scripts/bench-operator.sh`).
//!
//! ```console
//! bench-operator --operator PATH/tollgate-operator --work DIR [--sizes 10,100,1000|none] [--reps 5]
//!     [--policies 1000] [--policy-file FILE] [--targets 3] [--fleet static|pods]
//!     [--resync-ttls 0,2000] [--idle-secs 0] [--base-change no|yes]
//! ```
//!
//! Needs `KUBECONFIG` pointing at the testbed API server (current context
//! `testbed`; `scripts/apiserver.sh start`). Runs the REAL operator binary
//! (`--operator`, one process per phase, `--no-leader-election`, restricted
//! to the benchmark's own namespace, logs in `DIR`) against fake agents
//! (`tollgate_testkit::fake_agent`) served over real HTTP in this process.
//!
//! 1. Baseline: the API server alone: median of a merge PATCH of a
//!    TollPolicy's spec, of a server-side-apply patch of its status, and of a
//!    GET.
//! 2. Convergence, per fleet size N: N fake agents on distinct loopback
//!    addresses `127.S.x.y` and one port, N Pod objects whose status says they
//!    run there (Ready), a pod-selector SbcFleet. Per strategy (`bake0`: no
//!    canary, one batch, `bakeSeconds: 0`; `staged`: canary 1 target, bake 2 s,
//!    batches of 25 %), a TollPolicy is rolled out once (not timed), then
//!    `--reps` times its `spec.policy` is changed with a merge PATCH and the
//!    time until the status says `Applied`, `N/N`, the new revision and the
//!    new generation AND every fake agent holds the revision is measured.
//!    For `staged`, "excluding bake" subtracts every gap of more than 0.5 s
//!    between consecutive applies (the bakes; a step itself takes less).
//! 3. Many policies: `--targets` fake agents (a static fleet, or with
//!    `--fleet pods` a pod-selector fleet as in 2.) that accept without
//!    rendering, `--policies` TollPolicies (`sample_policy`, or copies of
//!    `--policy-file`; `bakeSeconds: 0`); once all are Applied, the
//!    operator's VmRSS and VmHWM from `/proc/<pid>/status`, and the time to
//!    list them (API server alone). Then, per `--resync-ttls`, a fresh
//!    operator timed until it has reconciled every policy (its memory then,
//!    and that no agent was sent anything). Then, with a fresh operator:
//!    one policy changed and timed until Applied everywhere; `--idle-secs`
//!    of idle twice (the operator's CPU with agents that answer every
//!    summary in full, then 304 for an unchanged one); with
//!    `--base-change yes`, every policy changed at once, timed, with the
//!    agents' stages, commits and batches counted.
//!
//! Every object lives in namespaces `bench-*` created here; policies are
//! deleted (with the operator running, so finalizers go) at the end.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::process::{Child, Command};
use tollgate_crds::sbc_fleet::{SbcBackend, SecretKeyReference};
use tollgate_crds::toll_policy::{FleetReference, RolloutStrategy, StepSize, TollPolicyPhase};
use tollgate_crds::{SbcFleet, SbcFleetSpec, TollPolicy, TollPolicySpec};
use tollgate_ir::CompiledPolicy;
use tollgate_operator::controller::revisions::policy_hash;
use tollgate_testkit::fake_agent::{FakeAgent, Via, no_bake, sample_policy, toll_policy};

use tollgate_testkit::{self as testkit, R, wait_for};

const TOKEN: &str = "bench-agent-token-0123456789";
const MANAGER: &str = "tollgate-bench";
const AGENT_PORT: u16 = 19_443;

struct Args {
    operator: String,
    work: String,
    sizes: Vec<usize>,
    reps: usize,
    policies: usize,
    /// A compiled TollPolicy (YAML, as `tollgate compile` writes it) whose
    /// copies the memory phase creates instead of `sample_policy`.
    policy_file: Option<String>,
    /// Fake agents of the memory phase's fleet.
    targets: usize,
    /// The memory phase's fleet: `static` endpoints or `pods` (a
    /// pod-selector fleet over Pods made Ready).
    pods: bool,
    /// `--agent-summary-ttl-ms` of each resync, in order (`0`: every
    /// observation asks the agent for the tenant: the baseline).
    resync_ttls: Vec<String>,
    /// After the resyncs, change every policy at once and time it.
    base_change: bool,
    /// Seconds of idle measured after the one change: the operator's CPU
    /// with agents that answer every summary in full, then with agents that
    /// answer an unchanged one 304 (`If-None-Match`).
    idle_secs: u64,
}

fn parse_args() -> R<Args> {
    let mut a = Args {
        operator: String::new(),
        work: String::new(),
        sizes: vec![10, 100, 1000],
        reps: 5,
        policies: 1000,
        policy_file: None,
        targets: 3,
        pods: false,
        resync_ttls: vec!["0".into(), "2000".into()],
        base_change: false,
        idle_secs: 0,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut it = v.iter();
    while let Some(o) = it.next() {
        let val = it.next().ok_or(format!("{o} needs a value"))?;
        match o.as_str() {
            "--operator" => a.operator.clone_from(val),
            "--work" => a.work.clone_from(val),
            "--sizes" if val == "none" => a.sizes.clear(),
            "--sizes" => {
                a.sizes = val
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--sizes: {e}"))?;
            }
            "--reps" => a.reps = val.parse().map_err(|e| format!("--reps: {e}"))?,
            "--policies" => a.policies = val.parse().map_err(|e| format!("--policies: {e}"))?,
            "--policy-file" => a.policy_file = Some(val.clone()),
            "--targets" => a.targets = val.parse().map_err(|e| format!("--targets: {e}"))?,
            "--fleet" => {
                a.pods = match val.as_str() {
                    "pods" => true,
                    "static" => false,
                    _ => return Err("--fleet: static or pods".into()),
                }
            }
            "--resync-ttls" => {
                a.resync_ttls = val.split(',').map(str::to_owned).collect();
                if a.resync_ttls.iter().any(|t| t.parse::<u64>().is_err()) {
                    return Err("--resync-ttls: milliseconds, comma-separated".into());
                }
            }
            "--base-change" => a.base_change = val == "yes",
            "--idle-secs" => a.idle_secs = val.parse().map_err(|e| format!("--idle-secs: {e}"))?,
            _ => return Err(format!("unknown option {o}").into()),
        }
    }
    if a.operator.is_empty() || a.work.is_empty() {
        return Err("usage: bench-operator --operator BIN --work DIR [--sizes 10,100,1000] [--reps N] [--policies N] [--policy-file FILE] [--targets N] [--fleet static|pods] [--resync-ttls 0,2000] [--base-change yes|no] [--idle-secs N]".into());
    }
    if a.sizes.iter().any(|&n| n == 0 || n > 60_000) || a.sizes.len() > 100 {
        return Err("--sizes: 1..60000 each, at most 100 sizes".into());
    }
    if a.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    Ok(a)
}

async fn make_namespace(client: &Client, name: &str) -> R {
    testkit::create_namespace(client, name).await?;
    testkit::create_token_secret(client, name, TOKEN).await
}

/// The real operator binary, restricted to `ns`.
struct OperatorProc {
    child: Child,
    /// Its metrics port.
    port: u16,
}

impl OperatorProc {
    fn start(bin: &str, ns: &str, log: &str) -> R<Self> {
        Self::start_with(bin, ns, log, &[])
    }

    fn start_with(bin: &str, ns: &str, log: &str, extra: &[&str]) -> R<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{log}: {e}"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "--namespace",
                ns,
                "--no-leader-election",
                "--metrics-addr",
                &addr,
                "--identity",
                "bench",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{bin}: {e}"))?;
        Ok(Self { child, port })
    }

    /// `tollgate_operator_reconciles_total{result="ok"}` (0 before it serves).
    async fn reconciles_ok(&self) -> u64 {
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return 0;
        };
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = "GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n";
        if s.write_all(req.as_bytes()).await.is_err() {
            return 0;
        }
        let mut body = String::new();
        if s.read_to_string(&mut body).await.is_err() {
            return 0;
        }
        body.lines()
            .find_map(|l| l.strip_prefix("tollgate_operator_reconciles_total{result=\"ok\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory(&self) -> R<(u64, u64)> {
        let pid = self.child.id().ok_or("the operator has exited")?;
        let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> R<u64> {
            let line = s
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or(format!("{name} not in /proc/{pid}/status"))?;
            Ok(line
                .split_whitespace()
                .nth(1)
                .ok_or("malformed status line")?
                .parse()?)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU seconds the process has used (user + system, `/proc/<pid>/stat`).
    fn cpu_seconds(&self) -> R<f64> {
        let pid = self.child.id().ok_or("the operator has exited")?;
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // fields after the command name (which may hold spaces), in ")"
        let rest = s.rsplit_once(')').map(|(_, r)| r).ok_or("malformed stat")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11).ok_or("no utime")?.parse::<u64>()?
            + f.get(12).ok_or("no stime")?.parse::<u64>()?;
        // USER_HZ is 100 on Linux
        Ok(ticks as f64 / 100.0)
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM: the graceful shutdown path
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        f64::midpoint(s[m - 1], s[m])
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn baseline(client: &Client, ns: &str) -> R {
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    let p = toll_policy(
        "baseline",
        sample_policy("baseline", 0),
        "none",
        RolloutStrategy::default(),
    );
    api.create(&PostParams::default(), &p).await?;
    let (mut patch, mut ssa, mut get) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..20u32 {
        let body = json!({"spec": {"policy": sample_policy("baseline", i + 1)}});
        let t = Instant::now();
        api.patch("baseline", &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        patch.push(ms(t.elapsed()));
        let st = json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "TollPolicy",
            "status": {"phase": "Pending", "applied": format!("{i}/20")}});
        let t = Instant::now();
        api.patch_status(
            "baseline",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&st),
        )
        .await?;
        ssa.push(ms(t.elapsed()));
        let t = Instant::now();
        api.get("baseline").await?;
        get.push(ms(t.elapsed()));
    }
    api.delete("baseline", &DeleteParams::default()).await?;
    println!(
        "baseline (API server alone, 20 each): spec merge PATCH median {:.1} ms max {:.1} ms; \
         status SSA patch median {:.1} ms max {:.1} ms; GET median {:.1} ms max {:.1} ms",
        median(&patch),
        max(&patch),
        median(&ssa),
        max(&ssa),
        median(&get),
        max(&get)
    );
    Ok(())
}

fn agent_addr(size_index: usize, i: usize) -> String {
    // 127.S.x.y: S per fleet size, x.y from i (y in 1..=250)
    format!(
        "127.{}.{}.{}:{AGENT_PORT}",
        100 + size_index,
        i / 250,
        i % 250 + 1
    )
}

fn sbc_pod(name: &str, group: &str) -> R<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-sbc", "group": group}},
        "spec": {"containers": [{"name": "sbc", "image": "example.invalid/sbc:1"}]}
    }))?)
}

/// `n` fake agents on `127.S.x.y` ([`agent_addr`], `S` from `si`), `n` Pods
/// whose status says they run there (Ready, as a kubelet would report
/// them, labelled `group`), and a pod-selector SbcFleet `fleet` over them.
async fn pod_fleet(
    client: &Client,
    ns: &str,
    si: usize,
    n: usize,
    group: &str,
    fleet: &str,
) -> R<Vec<FakeAgent>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), ns);
    let mut agents = Vec::with_capacity(n);
    for i in 0..n {
        agents.push(FakeAgent::start_on(agent_addr(si, i).parse()?, TOKEN).await?);
    }
    let t = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let name = format!("sbc-{group}-{i}");
                pods.create(&PostParams::default(), &sbc_pod(&name, group)?)
                    .await?;
                let addr = agent_addr(si, i);
                let ip = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or_default();
                let st = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": "True"}]}});
                pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&st))
                    .await?;
                R::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let selector =
        serde_json::from_value(json!({"matchLabels": {"app": "bench-sbc", "group": group}}))?;
    fleets
        .create(
            &PostParams::default(),
            &SbcFleet::new(
                fleet,
                SbcFleetSpec {
                    selector: Some(selector),
                    endpoints: None,
                    backend: SbcBackend::Kamailio,
                    agent_port: AGENT_PORT,
                    agent_token_secret: Some(SecretKeyReference {
                        name: "agent-token".into(),
                        key: "token".into(),
                    }),
                },
            ),
        )
        .await?;
    eprintln!(
        "  {n} pods created and Running in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(agents)
}

#[derive(Clone, Copy)]
enum Strategy {
    Bake0,
    Staged,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Self::Bake0 => "bake0",
            Self::Staged => "staged",
        }
    }
    fn rollout(self) -> RolloutStrategy {
        match self {
            Self::Bake0 => RolloutStrategy {
                bake_seconds: 0,
                ..RolloutStrategy::default()
            },
            Self::Staged => RolloutStrategy {
                canary: Some(StepSize::count(1)),
                bake_seconds: 2,
                batch: Some(StepSize {
                    count: None,
                    percent: Some(25),
                }),
                ..RolloutStrategy::default()
            },
        }
    }
}

struct Rep {
    total: f64,
    agents: f64,
    excl_bake: f64,
}

/// Waits until the policy `name` reports `Applied`, `n/n`, a revision with
/// `hash` and generation `generation`, and every agent holds that revision.
async fn converge(
    api: &Api<TollPolicy>,
    name: &str,
    tenant: &str,
    hash: &str,
    generation: Option<i64>,
    agents: &[FakeAgent],
    (t0, secs): (Instant, u64),
) -> R<(f64, f64)> {
    let suffix = format!("@{hash}");
    let agents_done = wait_for(
        "every agent holding the revision",
        secs,
        Duration::from_millis(20),
        || async {
            Ok(agents
                .iter()
                .all(|a| {
                    a.tenants()
                        .get(tenant)
                        .is_some_and(|l| l.ends_with(&suffix))
                })
                .then(|| ms(t0.elapsed())))
        },
    )
    .await?;
    let n = agents.len();
    let want = format!("{n}/{n}");
    let r = wait_for(
        "status Applied n/n",
        secs,
        Duration::from_millis(20),
        || async {
            let p = api.get(name).await?;
            let s = p.status.clone().unwrap_or_default();
            let rev_ok = agents
                .first()
                .and_then(|a| a.tenants().get(tenant).cloned())
                .and_then(|l| l.split_once('@').map(|(n, _)| n.to_owned()))
                .and_then(|num| num.parse::<i64>().ok())
                == s.current_revision;
            Ok((s.phase == Some(TollPolicyPhase::Applied)
                && s.applied.as_deref() == Some(want.as_str())
                && s.observed_generation == generation
                && generation.is_some()
                && rev_ok)
                .then(|| ms(t0.elapsed())))
        },
    )
    .await;
    match r {
        Ok(total) => Ok((total, agents_done)),
        Err(e) => {
            if let Ok(p) = api.get(name).await {
                eprintln!(
                    "status at timeout: {}",
                    serde_json::to_string(&p.status).unwrap_or_default()
                );
            }
            Err(e)
        }
    }
}

/// Time of the rollout not spent in bakes: every gap over 0.5 s between
/// consecutive applies of the revision is a bake.
fn bake_gaps(agents: &[FakeAgent], label_suffix: &str) -> f64 {
    let mut times: Vec<SystemTime> = agents
        .iter()
        .flat_map(|a| a.applies())
        .filter(|r| {
            r.status == 200
                && r.revision
                    .as_deref()
                    .is_some_and(|l| l.ends_with(label_suffix))
        })
        .map(|r| r.at)
        .collect();
    times.sort();
    times
        .windows(2)
        .map(|w| {
            w[1].duration_since(w[0])
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        })
        .filter(|&g| g > 0.5)
        .map(|g| g * 1000.0)
        .sum()
}

async fn convergence(client: &Client, args: &Args, run: &str) -> R {
    let ns = format!("bench-conv-{run}");
    make_namespace(client, &ns).await?;
    println!(
        "convergence namespace {ns}; the operator's log: {}/operator-conv.log",
        args.work
    );
    let op = OperatorProc::start(
        &args.operator,
        &ns,
        &format!("{}/operator-conv.log", args.work),
    )?;
    let result = convergence_in(client, args, &ns).await;
    let cleanup = cleanup_policies(client, &ns).await;
    op.stop().await;
    delete_rest(client, &ns).await;
    result.and(cleanup)
}

async fn convergence_in(client: &Client, args: &Args, ns: &str) -> R {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    println!(
        "{:>6} {:>8} {:>5} {:>12} {:>10} {:>16} {:>12} {:>10}",
        "targets",
        "strategy",
        "reps",
        "median_ms",
        "max_ms",
        "agents_median_ms",
        "excl_bake_ms",
        "excl_max"
    );
    for (si, &n) in args.sizes.iter().enumerate() {
        let group = format!("n{n}-{si}");
        let fleet_name = format!("fleet-{group}");
        let agents = pod_fleet(client, ns, si, n, &group, &fleet_name).await?;
        let secs = 120 + (n as u64) / 5;
        for strategy in [Strategy::Bake0, Strategy::Staged] {
            let tenant = format!("t{n}{}", strategy.name());
            let name = format!("p-{group}-{}", strategy.name());
            let p = TollPolicy::new(
                &name,
                TollPolicySpec {
                    tenant: tenant.clone(),
                    policy: sample_policy(&tenant, 0),
                    fleet: FleetReference {
                        name: fleet_name.clone(),
                    },
                    rollout: strategy.rollout(),
                    source_hash: None,
                    parts: None,
                },
            );
            let t0 = Instant::now();
            let created = api.create(&PostParams::default(), &p).await?;
            let hash = policy_hash(&sample_policy(&tenant, 0));
            let (first, _) = converge(
                &api,
                &name,
                &tenant,
                &hash,
                created.metadata.generation,
                &agents,
                (t0, secs),
            )
            .await?;
            eprintln!("  {name}: first rollout {first:.0} ms (not counted)");
            let mut reps = Vec::new();
            for r in 1..=args.reps {
                let v = u32::try_from(r)?;
                let body = json!({"spec": {"policy": sample_policy(&tenant, v)}});
                let hash = policy_hash(&sample_policy(&tenant, v));
                let t0 = Instant::now();
                let patched = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                    .await?;
                let (total, agents_ms) = converge(
                    &api,
                    &name,
                    &tenant,
                    &hash,
                    patched.metadata.generation,
                    &agents,
                    (t0, secs),
                )
                .await?;
                let gaps = match strategy {
                    Strategy::Bake0 => 0.0,
                    Strategy::Staged => bake_gaps(&agents, &format!("@{hash}")),
                };
                reps.push(Rep {
                    total,
                    agents: agents_ms,
                    excl_bake: total - gaps,
                });
                eprintln!(
                    "    rep {r}: {total:.0} ms (agents {agents_ms:.0} ms, bakes {gaps:.0} ms)"
                );
            }
            let tot: Vec<f64> = reps.iter().map(|r| r.total).collect();
            let ag: Vec<f64> = reps.iter().map(|r| r.agents).collect();
            let ex: Vec<f64> = reps.iter().map(|r| r.excl_bake).collect();
            println!(
                "{:>6} {:>8} {:>5} {:>12.0} {:>10.0} {:>16.0} {:>12.0} {:>10.0}",
                n,
                strategy.name(),
                reps.len(),
                median(&tot),
                max(&tot),
                median(&ag),
                median(&ex),
                max(&ex)
            );
        }
        // this size's policies go (the agents answer the removals), then its pods
        for strategy in [Strategy::Bake0, Strategy::Staged] {
            let name = format!("p-{group}-{}", strategy.name());
            api.delete(&name, &DeleteParams::default()).await?;
        }
        wait_for(
            "the policies gone",
            120,
            Duration::from_millis(100),
            || async {
                Ok(api
                    .list(&ListParams::default())
                    .await?
                    .items
                    .is_empty()
                    .then_some(()))
            },
        )
        .await?;
        pods.delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default().labels(&format!("group={group}")),
        )
        .await?;
        drop(agents);
    }
    Ok(())
}

async fn cleanup_policies(client: &Client, ns: &str) -> R {
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    // one by one, by the names a metadata list gives: a DELETE or LIST of
    // the whole collection of real-size policies can outlast the API
    // server's request timeout
    let names: Vec<String> = api
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .collect();
    stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) | Err(kube::Error::Api(_)) => R::Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    wait_for(
        "every TollPolicy deleted (finalizers)",
        600,
        Duration::from_millis(500),
        || async {
            Ok(api
                .list_metadata(&ListParams::default().limit(1))
                .await?
                .items
                .is_empty()
                .then_some(()))
        },
    )
    .await
}

async fn delete_rest(client: &Client, ns: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let _ = pods
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default(),
        )
        .await;
    let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), ns);
    let _ = fleets
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    testkit::delete_namespace(client, ns).await;
}

async fn memory(client: &Client, args: &Args, run: &str) -> R {
    let ns = format!("bench-mem-{run}");
    make_namespace(client, &ns).await?;
    let log = format!("{}/operator-mem.log", args.work);
    let agents = if args.pods {
        // S = 200: apart from the convergence phase's fleets
        pod_fleet(client, &ns, 100, args.targets, "mem", "edge").await?
    } else {
        let agents = testkit::start_agents(args.targets, TOKEN).await?;
        let fleets: Api<SbcFleet> = Api::namespaced(client.clone(), &ns);
        fleets
            .create(
                &PostParams::default(),
                &testkit::static_fleet("edge", &agents, AGENT_PORT, true),
            )
            .await?;
        agents
    };
    // what is measured is the operator: the agents accept without
    // rendering (on 2 cores, 100 agents rendering every policy would take
    // most of the CPU)
    for a in &agents {
        a.set_no_render(true);
    }
    let op = OperatorProc::start(&args.operator, &ns, &log)?;
    let mut result = memory_in(client, args, &ns, &op, &agents).await;
    op.stop().await;
    for ttl in &args.resync_ttls {
        if result.is_ok() {
            result = resync(args, &ns, &agents, ttl).await;
        }
    }
    let op = OperatorProc::start(&args.operator, &ns, &log)?;
    if result.is_ok() {
        result = changes(client, args, &ns, &op, &agents).await;
    }
    let cleanup = cleanup_policies(client, &ns).await;
    op.stop().await;
    delete_rest(client, &ns).await;
    result.and(cleanup)
}

/// The policy of tenant `r{i}` at `version` (0: as created): a copy of
/// the template (`--policy-file`) or `sample_policy`; later versions deny
/// one more prefix (a template) or are `sample_policy`'s variant.
fn tenant_policy(template: Option<&CompiledPolicy>, i: usize, version: u32) -> CompiledPolicy {
    let tenant = format!("r{i:05}");
    match template {
        Some(t) => {
            let mut p = t.clone();
            p.tenant.clone_from(&tenant);
            if version > 0 {
                let prefix = format!("1213{version}");
                p.destinations.push(tollgate_ir::DestinationRule {
                    rule: format!("dst:prefix:{prefix}"),
                    prefix,
                    action: tollgate_ir::Verdict::Deny,
                    window: None,
                });
                p.destinations.sort_by(|a, b| a.prefix.cmp(&b.prefix));
            }
            p
        }
        None => sample_policy(&tenant, version),
    }
}

/// `--policy-file`'s policy, if given.
fn template(args: &Args) -> R<Option<CompiledPolicy>> {
    let Some(f) = &args.policy_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?;
    let docs = tollgate_ir::yaml::read_policies(&text)?;
    Ok(Some(
        docs.into_iter()
            .next()
            .ok_or(format!("{f}: no policy"))?
            .policy,
    ))
}

/// How many of `api`'s policies are Applied on `want` (`x/y`) targets, at
/// `generation` when given (listed in pages of 100: a LIST of every
/// real-size policy at once can outlast the API server's request timeout).
async fn count_at(api: &Api<TollPolicy>, want: &str, generation: Option<i64>) -> R<usize> {
    let mut n = 0;
    let mut lp = ListParams::default().limit(100);
    loop {
        let l = api.list(&lp).await?;
        n += l
            .items
            .iter()
            .filter(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.phase == Some(TollPolicyPhase::Applied)
                        && s.applied.as_deref() == Some(want)
                        && generation.is_none_or(|g| s.observed_generation == Some(g))
                })
            })
            .count();
        match l.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(n),
        }
    }
}

/// Calls the agents answered so far: (stages, commits and PUTs, batches,
/// tenants in the batches).
fn agent_calls(agents: &[FakeAgent]) -> (usize, usize, usize, usize) {
    let mut c = (0, 0, 0, 0);
    for a in agents {
        c.0 += a.stages().len();
        c.1 += a
            .applies()
            .iter()
            .filter(|r| matches!(r.via, Via::Commit | Via::Put))
            .count();
        let b = a.batches();
        c.2 += b.len();
        c.3 += b.iter().map(|(n, _)| n).sum::<usize>();
    }
    c
}

/// The operator idle over Applied policies (each reconciled again every
/// `--idle-requeue`, 60 s, observing every agent through its summary), for
/// `--idle-secs`: its CPU per second and the summaries answered, first with
/// agents that answer every summary in full (as agents without entity tags
/// do: the baseline), then with agents that answer an unchanged one 304.
async fn idle(args: &Args, op: &OperatorProc, agents: &[FakeAgent]) -> R {
    let mut figures = Vec::new();
    for ignore in [true, false] {
        for a in agents {
            a.set_ignore_etag(ignore);
        }
        let reads = |a: &FakeAgent| a.state_reads().1;
        let r0: u64 = agents.iter().map(reads).sum();
        let u0: u64 = agents.iter().map(FakeAgent::summaries_unchanged).sum();
        let c0 = op.cpu_seconds()?;
        tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
        let cpu = (op.cpu_seconds()? - c0) / args.idle_secs as f64;
        let r: u64 = agents.iter().map(reads).sum::<u64>() - r0;
        let u: u64 = agents
            .iter()
            .map(FakeAgent::summaries_unchanged)
            .sum::<u64>()
            - u0;
        let (rss, _) = op.memory()?;
        println!(
            "idle ({} s, {}): operator CPU {:.3} s/s, {} summaries answered ({} of them 304), {:.1} per second; VmRSS {:.1} MiB",
            args.idle_secs,
            if ignore {
                "agents answer every summary in full (baseline)"
            } else {
                "agents answer an unchanged summary 304"
            },
            cpu,
            r,
            u,
            r as f64 / args.idle_secs as f64,
            rss as f64 / 1024.0
        );
        figures.push(cpu);
    }
    if let [full, tagged] = figures[..] {
        println!(
            "idle: operator CPU with entity tags / without: {:.2}",
            tagged / full.max(1e-9)
        );
    }
    for a in agents {
        a.set_ignore_etag(false);
    }
    Ok(())
}

/// With a fresh operator over the Applied policies (`op`, once it has
/// reconciled them all): one policy changed, timed until it is Applied
/// on every target at its new generation and every agent holds the new
/// revision; then, with `--base-change yes`, every policy changed at once
/// (a base edited for every tenant), timed until all are Applied at their
/// new generation, with the agents' calls counted.
async fn changes(
    client: &Client,
    args: &Args,
    ns: &str,
    op: &OperatorProc,
    agents: &[FakeAgent],
) -> R {
    let n = args.policies;
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    wait_for(
        "every policy reconciled by the fresh operator",
        900,
        Duration::from_millis(200),
        || async { Ok((op.reconciles_ok().await >= n as u64).then_some(())) },
    )
    .await?;
    let template = template(args)?;
    let template = template.as_ref();
    let want = format!("{0}/{0}", agents.len());
    let patch_to = |i: usize, version: u32| {
        let api = api.clone();
        async move {
            let body = json!({"spec": {"policy": tenant_policy(template, i, version)}});
            let p = api
                .patch(
                    &format!("r{i:05}"),
                    &PatchParams::default(),
                    &Patch::Merge(&body),
                )
                .await?;
            R::Ok(p.metadata.generation.unwrap_or(0))
        }
    };
    // one policy
    let label = format!("@{}", policy_hash(&tenant_policy(template, 0, 1)));
    let t0 = Instant::now();
    let generation = patch_to(0, 1).await?;
    let took = wait_for(
        "the changed policy Applied everywhere",
        300,
        Duration::from_millis(50),
        || async {
            let held = agents.iter().all(|a| {
                a.tenants()
                    .get("r00000")
                    .is_some_and(|l| l.ends_with(&label))
            });
            if !held {
                return Ok(None);
            }
            let s = api.get_status("r00000").await?.status.unwrap_or_default();
            Ok((s.phase == Some(TollPolicyPhase::Applied)
                && s.applied.as_deref() == Some(want.as_str())
                && s.observed_generation == Some(generation))
            .then(|| t0.elapsed()))
        },
    )
    .await?;
    println!(
        "one change: policy r00000 of {n} changed, Applied on all {} targets {:.2} s after the PATCH",
        agents.len(),
        took.as_secs_f64()
    );
    if args.idle_secs > 0 {
        idle(args, op, agents).await?;
    }
    if !args.base_change {
        return Ok(());
    }
    // every policy (r00000 a second time)
    let before = agent_calls(agents);
    let t0 = Instant::now();
    let gens: Vec<i64> = stream::iter(0..n)
        .map(|i| patch_to(i, if i == 0 { 2 } else { 1 }))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let patched = t0.elapsed();
    if gens.iter().any(|g| *g != 2 && *g != 3) {
        return Err(format!(
            "unexpected generations after the base change: {:?}",
            &gens[..gens.len().min(5)]
        )
        .into());
    }
    let took = wait_for(
        "every policy Applied after the base change",
        3600,
        Duration::from_secs(1),
        || async {
            op.memory()?;
            let a = count_at(&api, &want, Some(2)).await? + count_at(&api, &want, Some(3)).await?;
            Ok((a == n).then(|| t0.elapsed()))
        },
    )
    .await?;
    let after = agent_calls(agents);
    let (rss, hwm) = op.memory()?;
    println!(
        "base change: all {n} policies changed (PATCHes {:.1} s), all Applied on {} targets {:.1} s after the first PATCH; the agents answered {} stages, {} commits or PUTs and {} batches of {:.1} tenants on average; VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        patched.as_secs_f64(),
        agents.len(),
        took.as_secs_f64(),
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2,
        (after.3 - before.3) as f64 / ((after.2 - before.2).max(1)) as f64,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}

async fn memory_in(
    client: &Client,
    args: &Args,
    ns: &str,
    op: &OperatorProc,
    agents: &[FakeAgent],
) -> R {
    let api: Api<TollPolicy> = Api::namespaced(client.clone(), ns);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle, _) = op.memory()?;
    let n = args.policies;
    // the policy each tenant gets a copy of
    let template = template(args)?;
    let template = template.as_ref();
    let size = template
        .as_ref()
        .map_or(0, |t| serde_json::to_vec(t).map_or(0, |v| v.len()));
    let t0 = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let tenant = format!("r{i:05}");
                let policy = tenant_policy(template, i, 0);
                let p = toll_policy(&tenant, policy, "edge", no_bake());
                api.create(&PostParams::default(), &p).await?;
                R::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let created = t0.elapsed();
    let total = agents.len();
    let want = format!("{total}/{total}");
    // about 15 policies a second with 100 targets on 2 cores
    let limit = 900.max(u64::try_from(n).unwrap_or(u64::MAX) / 5);
    let report = std::cell::Cell::new(Instant::now());
    let all_applied = wait_for(
        "every policy Applied",
        limit,
        Duration::from_secs(1),
        || async {
            op.memory()?; // still running
            // the agents first (in this process); then the statuses, a
            // page at a time (a LIST of every real-size policy at once can
            // outlast the API server's request timeout)
            let held = agents.iter().map(|a| a.tenants().len()).min().unwrap_or(0);
            if report.get().elapsed() > Duration::from_secs(60) {
                eprintln!(
                    "  {:.0} s: every agent holds at least {held} of {n} tenants",
                    t0.elapsed().as_secs_f64()
                );
                report.set(Instant::now());
            }
            if held < n {
                return Ok(None);
            }
            let applied = count_at(&api, &want, None).await?;
            Ok((applied == n).then(|| t0.elapsed()))
        },
    )
    .await?;
    let held = agents.iter().map(|a| a.tenants().len()).min().unwrap_or(0);
    if held < n {
        return Err(format!("an agent holds only {held} of {n} tenants").into());
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss, hwm) = op.memory()?;
    let mut lists = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let listed = count_at(&api, &want, None).await?;
        lists.push(ms(t.elapsed()));
        if listed != n {
            return Err(format!("listed {listed} Applied policies, expected {n}").into());
        }
    }
    println!(
        "memory: {n} TollPolicies ({}) created in {:.1} s, all Applied ({total}/{total}) {:.1} s after the first create",
        if size > 0 {
            format!(
                "copies of {}, {} KB of JSON each",
                args.policy_file.as_deref().unwrap_or(""),
                size / 1000
            )
        } else {
            "sample_policy".to_owned()
        },
        created.as_secs_f64(),
        all_applied.as_secs_f64()
    );
    println!(
        "memory: operator VmRSS idle {:.1} MiB; with {n} Applied policies {:.1} MiB (5 s after); peak VmHWM {:.1} MiB",
        idle as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "baseline: LIST of the {n} TollPolicies in pages of 100 (API server alone, 5 times): median {:.0} ms, max {:.0} ms",
        median(&lists),
        max(&lists)
    );
    Ok(())
}

/// The operator restarted over `n` Applied policies: the time until it has
/// reconciled each once (its `reconciles_total{result="ok"}` reaches `n`),
/// its memory then, and that no agent was sent anything again.
async fn resync(args: &Args, ns: &str, agents: &[FakeAgent], ttl_ms: &str) -> R {
    let n = args.policies as u64;
    let applies: Vec<usize> = agents.iter().map(|a| a.applies().len()).collect();
    let reads: (u64, u64) = agents
        .iter()
        .map(FakeAgent::state_reads)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let log = format!("{}/operator-mem.log", args.work);
    let t0 = Instant::now();
    let op = OperatorProc::start_with(
        &args.operator,
        ns,
        &log,
        &["--agent-summary-ttl-ms", ttl_ms],
    )?;
    let r = wait_for(
        "every policy reconciled after the restart",
        900,
        Duration::from_millis(200),
        || async {
            op.memory()?;
            Ok((op.reconciles_ok().await >= n).then(|| t0.elapsed()))
        },
    )
    .await;
    let mem = op.memory();
    op.stop().await;
    let took = r?;
    let (rss, hwm) = mem?;
    let again: Vec<usize> = agents.iter().map(|a| a.applies().len()).collect();
    let reads2: (u64, u64) = agents
        .iter()
        .map(FakeAgent::state_reads)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    println!(
        "resync ({} targets, --agent-summary-ttl-ms {ttl_ms}): a fresh operator reconciled all {n} policies {:.1} s after it started, asking the agents {} tenant states and {} summaries; VmRSS then {:.1} MiB, peak VmHWM {:.1} MiB; agents sent anything again: {}",
        agents.len(),
        took.as_secs_f64(),
        reads2.0 - reads.0,
        reads2.1 - reads.1,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        if again == applies { "no" } else { "YES" }
    );
    if again != applies {
        return Err(format!("the restart re-applied: {applies:?} -> {again:?}").into());
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::process::ExitCode {
    match real_main().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-operator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main() -> R {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.work)?;
    let client = testkit::testbed_client()
        .await?
        .ok_or("KUBECONFIG is not set: eval \"$(scripts/apiserver.sh start)\" first")?;
    testkit::install_crds(&client, MANAGER).await?;
    let run = testkit::suffix();
    let base_ns = format!("bench-base-{run}");
    make_namespace(&client, &base_ns).await?;
    let b = baseline(&client, &base_ns).await;
    delete_rest(&client, &base_ns).await;
    b?;
    if !args.sizes.is_empty() {
        convergence(&client, &args, &run).await?;
    }
    if args.policies > 0 {
        memory(&client, &args, &run).await?;
    }
    Ok(())
}
