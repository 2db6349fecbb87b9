//! The trial load: a second Kamailio with the same cfg on spare loopback
//! ports, loaded with the candidate bundle, then read back and probed
//! against the evaluator before the live SBC is touched.

use super::rows::Expected;
use super::rpc::{AddressSlot, LiveView, Rpc, RpcError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tollgate_ir::{CompiledPolicy, SourceNetwork, Verdict};
use tollgate_kamailio::kamailio::{COUNTRY_TREE, Placement, country_rows};
use tollgate_kamailio::{Bundle, write};
use tollgate_policy::eval::{Call, Evaluator, Outcome};

/// Why a trial refused a candidate bundle (or could not run): its instance
/// did not start or reload, or its read-back or probes disagree. The
/// messages are the rejection reasons the agent answered and logged before
/// this type.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// No loopback port can be bound.
    #[error("bind {ip}: {source}")]
    Bind {
        /// The trial IP.
        ip: String,
        /// Why.
        source: std::io::Error,
    },
    /// A bound port's address cannot be read.
    #[error("{0}")]
    LocalAddr(#[source] std::io::Error),
    /// No port of 20 tries is free for both TCP and UDP.
    #[error("no free port")]
    NoFreePort,
    /// The trial dir cannot be created.
    #[error("trial dir: {0}")]
    Dir(#[source] std::io::Error),
    /// The bundle cannot be written to the trial's data dir.
    #[error("trial write: {0}")]
    Write(#[source] std::io::Error),
    /// The warm instance's reload of the changed tables failed.
    #[error("trial: {0}")]
    Reload(#[source] RpcError),
    /// `kamailio -c` did not finish within 20 s.
    #[error("trial: kamailio -c took over 20 s")]
    CheckTimeout,
    /// `kamailio -c` cannot be run.
    #[error("trial: kamailio -c: {0}")]
    Check(#[source] std::io::Error),
    /// `kamailio -c` refused the cfg (the tail of its output).
    #[error("trial: kamailio -c refused the configuration: {0}")]
    CheckRefused(String),
    /// The trial's log file cannot be created.
    #[error("{0}")]
    Log(#[source] std::io::Error),
    /// The trial Kamailio cannot be started.
    #[error("trial: start kamailio: {0}")]
    Start(#[source] std::io::Error),
    /// The trial Kamailio exited while starting.
    #[error("trial: kamailio exited during start ({status}): {log}")]
    Exited {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of its log.
        log: String,
    },
    /// The trial Kamailio did not answer RPC within 30 s.
    #[error("trial: kamailio did not answer RPC within 30 s")]
    NoRpc,
    /// The trial's read-back could not be made.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The trial holds something else than the rendered rows.
    #[error("trial read-back: {0}")]
    Readback(#[source] ViewMismatch),
    /// A lookup in a tree that does not exist answered.
    #[error("trial: a lookup in a missing tree did not fail")]
    MissingTreeAnswered,
    /// A probe's lookup failed (`target`: the tenant, or the country tree
    /// and the prefix).
    #[error("probe {target}: {source}")]
    ProbeRpc {
        /// What was probed.
        target: String,
        /// Why.
        source: RpcError,
    },
    /// A probe of a dialling tree found no value.
    #[error("probe {tree} {number}: no value")]
    NoValue {
        /// The tree.
        tree: String,
        /// The number looked up.
        number: String,
    },
    /// A probe of a dialling tree: the trial SBC's verdict or rule is not
    /// the evaluator's.
    #[error(
        "probe {tree} +{number}: the trial SBC decides {} {rule}, the evaluator {outcome} {evaluator_rule}",
        if *.allow { "allow" } else { "deny" }
    )]
    Verdict {
        /// The tree.
        tree: String,
        /// The number looked up (without `+`).
        number: String,
        /// The trial SBC allows.
        allow: bool,
        /// The trial SBC's rule.
        rule: String,
        /// The evaluator's outcome.
        outcome: Outcome,
        /// The evaluator's rule.
        evaluator_rule: String,
    },
    /// A probe of a class tree: the trial SBC's classes are not the
    /// evaluator's.
    #[error(
        "probe {tree} +{number}: the trial SBC has classes `{classes}`, the evaluator `{evaluator_classes}`"
    )]
    Classes {
        /// The tree.
        tree: String,
        /// The number looked up (without `+`).
        number: String,
        /// The trial SBC's classes.
        classes: String,
        /// The evaluator's classes.
        evaluator_classes: String,
    },
    /// A probe of the country tree: the trial SBC's country is not the
    /// numbering table's.
    #[error(
        "probe {} +{prefix}: the trial SBC has `{got}`, the numbering table `{iso}`",
        COUNTRY_TREE
    )]
    Country {
        /// The row's prefix.
        prefix: String,
        /// The trial SBC's country.
        got: String,
        /// The numbering table's country.
        iso: String,
    },
}

/// How what a Kamailio holds differs from the rendered rows
/// ([`compare_views`]).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViewMismatch {
    /// A tenant's entries differ.
    #[error(
        "tenant `{tenant}`: Kamailio holds {held} entries, {rendered} rendered; first missing: {missing:?}; first unexpected: {unexpected:?}"
    )]
    Tenant {
        /// The tenant.
        tenant: String,
        /// Entries held.
        held: usize,
        /// Entries rendered.
        rendered: usize,
        /// The first rendered entry not held.
        missing: Option<String>,
        /// The first held entry not rendered.
        unexpected: Option<String>,
    },
    /// A shard holds another number of rows than its tenants have.
    #[error("{shard} holds {held} rows, its tenants have {rendered}")]
    Shard {
        /// The shard's tree.
        shard: String,
        /// Rows held.
        held: usize,
        /// Rows rendered.
        rendered: usize,
    },
    /// Entries of a tenant without rows are held.
    #[error("Kamailio holds {held} entries of `{tenant}`, which has no rows (e.g. {example:?})")]
    Unexpected {
        /// The tenant.
        tenant: String,
        /// Entries held.
        held: usize,
        /// The first of them.
        example: Option<String>,
    },
}

/// How trial instances are started.
#[derive(Clone, Debug)]
pub struct TrialConfig {
    pub kamailio: PathBuf,
    pub cfg: PathBuf,
    /// Loopback address the trial instance listens on.
    pub ip: String,
    pub shm_mb: u32,
    pub pkg_mb: u32,
    pub geoip: Option<PathBuf>,
    /// Work dir (one subfolder per trial).
    pub dir: PathBuf,
    /// Maximum number of destination probes per tenant.
    pub max_probes: usize,
    /// Keep the trial instance running between applies and reload it with
    /// each candidate, instead of starting one per apply.
    pub warm: bool,
}

/// What the trial found.
#[derive(Clone, Debug, Default)]
pub struct TrialReport {
    pub probes: usize,
    /// From the trial's start until the instance held the bundle (started,
    /// or reloaded when warm).
    pub start_ms: u128,
    pub total_ms: u128,
    /// The warm instance was reloaded (no start).
    pub warm: bool,
}

fn free_port(ip: &str) -> Result<u16, TrialError> {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind((ip, 0)).map_err(|source| TrialError::Bind {
            ip: ip.to_string(),
            source,
        })?;
        let port = l.local_addr().map_err(TrialError::LocalAddr)?.port();
        if port < 65535 && std::net::UdpSocket::bind((ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(TrialError::NoFreePort)
}

/// A trial Kamailio kept running between applies (`TrialConfig::warm`). It
/// holds the last bundle checked (what the live SBC holds, or a staged
/// candidate); a candidate's files that differ from its own are written and
/// reloaded, which rehearses the live reload; the agent discards it
/// whenever that may no longer be true (a failed trial or live apply, a
/// changed cfg file, an exited process).
#[derive(Debug)]
pub struct Instance {
    child: tokio::process::Child,
    rpc: Rpc,
    dir: PathBuf,
    data: PathBuf,
    slot: AddressSlot,
    cfg_stamp: Option<(std::time::SystemTime, u64)>,
}

impl Instance {
    /// SIGTERM (then SIGKILL) and remove its dir.
    pub async fn stop(mut self) {
        stop(&mut self.child).await;
        let _ = std::fs::remove_file(self.dir.with_extension("pid"));
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn usable(&mut self, cfg: &TrialConfig) -> bool {
        matches!(self.child.try_wait(), Ok(None)) && self.cfg_stamp == stamp(&cfg.cfg)
    }
}

/// The cfg file's mtime and size (a changed cfg needs a fresh instance).
fn stamp(cfg: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(cfg).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Stops a trial Kamailio a previous agent process left running (its pid
/// file in the trial dir, checked against the process's environment so an
/// unrelated process that reuses the pid is left alone), and removes the
/// old trial dirs.
pub fn clean_leftovers(dir: &Path) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    for e in list.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("trial-") {
            continue;
        }
        if let Some(pid) = path
            .extension()
            .filter(|x| *x == "pid")
            .and_then(|_| std::fs::read_to_string(&path).ok())
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            let data = path.with_extension("").join("data");
            let mark = format!("TG_DB_URL=text://{}", data.display());
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if env.split(|b| *b == 0).any(|v| v == mark.as_bytes()) {
                terminate(pid);
            }
            let _ = std::fs::remove_file(&path);
        } else if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Validates `bundle` in a trial Kamailio: the warm instance in `warm` (if
/// usable) reloads the changed tables, else a fresh one starts with the
/// bundle (cfg checked with `kamailio -c` first); then read-back and
/// probes. With `cfg.warm` the instance stays in `warm` after a success;
/// it is stopped after any failure. A warm instance that fails is retried
/// once with a fresh one, so only a bundle that fails from a clean start
/// is refused.
pub async fn run(
    cfg: &TrialConfig,
    warm: &mut Option<Instance>,
    bundle: &Bundle,
    expect: &Expected,
    probe_policies: &[(CompiledPolicy, Placement)],
) -> Result<TrialReport, TrialError> {
    let t0 = Instant::now();
    if let Some(mut inst) = warm.take() {
        if inst.usable(cfg) {
            let r = async {
                let written = write::write_bundle(&inst.data, bundle, std::time::SystemTime::now())
                    .map_err(TrialError::Write)?;
                inst.rpc
                    .reload_tables(&written, &inst.slot, None)
                    .await
                    .map_err(TrialError::Reload)?;
                verify(cfg, &inst.rpc, expect, probe_policies, t0).await
            }
            .await;
            match r {
                Ok(mut rep) => {
                    rep.warm = true;
                    rep.total_ms = t0.elapsed().as_millis();
                    if cfg.warm {
                        *warm = Some(inst);
                    } else {
                        inst.stop().await;
                    }
                    return Ok(rep);
                }
                Err(e) => {
                    tracing::warn!("the warm trial instance failed ({e}); trying a fresh one");
                    inst.stop().await;
                }
            }
        } else {
            inst.stop().await;
        }
    }
    let inst = start(cfg, bundle).await?;
    let r = verify(cfg, &inst.rpc, expect, probe_policies, t0).await;
    match r {
        Ok(mut rep) if cfg.warm => {
            rep.total_ms = t0.elapsed().as_millis();
            *warm = Some(inst);
            Ok(rep)
        }
        r => {
            inst.stop().await;
            r.map(|mut rep| {
                rep.total_ms = t0.elapsed().as_millis();
                rep
            })
        }
    }
}

/// A fresh trial instance loaded with `bundle`: its own dir, `kamailio -c`,
/// start, wait for RPC.
async fn start(cfg: &TrialConfig, bundle: &Bundle) -> Result<Instance, TrialError> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = cfg.dir.join(format!("trial-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(TrialError::Dir)?;
    write::write_bundle(&data, bundle, std::time::SystemTime::now()).map_err(TrialError::Write)?;
    let cfg_stamp = stamp(&cfg.cfg);
    match spawn(cfg, &dir, &data).await {
        Ok((child, rpc)) => Ok(Instance {
            child,
            rpc,
            dir,
            data,
            slot: AddressSlot::default(),
            cfg_stamp,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(dir.with_extension("pid"));
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

async fn spawn(
    cfg: &TrialConfig,
    dir: &Path,
    data: &Path,
) -> Result<(tokio::process::Child, Rpc), TrialError> {
    let sip = free_port(&cfg.ip)?;
    let rpc_port = free_port(&cfg.ip)?;
    let mut env: Vec<(String, String)> = vec![
        ("TG_IP".into(), cfg.ip.clone()),
        ("TG_PORT".into(), sip.to_string()),
        ("TG_RPC_PORT".into(), rpc_port.to_string()),
        ("TG_DB_URL".into(), format!("text://{}", data.display())),
        // nothing is relayed during a trial
        ("TG_RELAY".into(), format!("{}:9", cfg.ip)),
    ];
    let mut defs: Vec<String> = Vec::new();
    if let Some(g) = &cfg.geoip {
        env.push(("TG_GEOIP_DB".into(), g.display().to_string()));
        defs.extend(["-A".into(), "WITH_GEOIP".into()]);
    }
    let mut check = tokio::process::Command::new(&cfg.kamailio);
    check
        .arg("-c")
        .arg("-f")
        .arg(&cfg.cfg)
        .args(&defs)
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), check.output())
        .await
        .map_err(|_| TrialError::CheckTimeout)?
        .map_err(TrialError::Check)?;
    if !out.status.success() {
        return Err(TrialError::CheckRefused(tail(&String::from_utf8_lossy(
            &out.stderr,
        ))));
    }
    let log = dir.join("log");
    let logf = std::fs::File::create(&log).map_err(TrialError::Log)?;
    let logf2 = logf.try_clone().map_err(TrialError::Log)?;
    let mut child = tokio::process::Command::new(&cfg.kamailio)
        .arg("-f")
        .arg(&cfg.cfg)
        .args(&defs)
        .args(["-DD", "-E", "-x", "tlsf", "-X", "tlsf"])
        .arg("-m")
        .arg(cfg.shm_mb.to_string())
        .arg("-M")
        .arg(cfg.pkg_mb.to_string())
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(logf)
        .stderr(logf2)
        .kill_on_drop(true)
        .spawn()
        .map_err(TrialError::Start)?;
    if let Some(pid) = child.id() {
        // for clean_leftovers, should this agent die without stopping it
        let _ = std::fs::write(dir.with_extension("pid"), pid.to_string());
    }
    let rpc = Rpc {
        authority: format!("{}:{rpc_port}", cfg.ip),
        path: "/RPC".into(),
        timeout: Duration::from_secs(30),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let quick = Rpc {
        timeout: Duration::from_millis(500),
        ..rpc.clone()
    };
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(TrialError::Exited {
                status: st,
                log: tail(&std::fs::read_to_string(&log).unwrap_or_default()),
            });
        }
        if quick.call("core.uptime", &[]).await.is_ok() {
            return Ok((child, rpc));
        }
        if Instant::now() > deadline {
            stop(&mut child).await;
            return Err(TrialError::NoRpc);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Read-back (the instance must hold exactly the rendered rows) and probes
/// (every tenant's trees answer as the evaluator decides; a missing tree is
/// detected).
async fn verify(
    cfg: &TrialConfig,
    rpc: &Rpc,
    expect: &Expected,
    probe_policies: &[(CompiledPolicy, Placement)],
    t0: Instant,
) -> Result<TrialReport, TrialError> {
    let start_ms = t0.elapsed().as_millis();
    let live = rpc.live_view(expect).await?;
    compare_views(expect, &live).map_err(TrialError::Readback)?;
    let mut probes = 0;
    let absent = "tollgate-absent-tree";
    if rpc.call("mtree.match", &[absent, "1", "0"]).await.is_ok() {
        return Err(TrialError::MissingTreeAnswered);
    }
    probes += 1;
    probes += probe_countries(rpc).await?;
    for (p, at) in probe_policies {
        probes += probe_tenant(rpc, p, *at, cfg.max_probes).await?;
    }
    Ok(TrialReport {
        probes,
        start_ms,
        total_ms: 0,
        warm: false,
    })
}

/// SIGTERM to `pid`, by the system call: the SBC image has no `kill`
/// command (nor a shell), so a spawned one would fail and leave the trial
/// Kamailio running.
fn terminate(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// SIGTERM, then SIGKILL after 5 s.
pub async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        terminate(pid);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

/// Every tenant's rendered view equals what Kamailio reports, every shard
/// looked at holds as many rows as its tenants have, and (a full read)
/// Kamailio holds nothing for other tenants.
pub fn compare_views(expect: &Expected, live: &LiveView) -> Result<(), ViewMismatch> {
    let empty = BTreeSet::new();
    for (t, want) in &expect.views {
        let got = live.views.get(t).unwrap_or(&empty);
        if want != got {
            let missing = want.difference(got).next();
            let extra = got.difference(want).next();
            return Err(ViewMismatch::Tenant {
                tenant: t.clone(),
                held: got.len(),
                rendered: want.len(),
                missing: missing.cloned(),
                unexpected: extra.cloned(),
            });
        }
    }
    for (shard, want) in &expect.shard_items {
        let got = live.shard_items.get(shard).copied().unwrap_or(0);
        if got != *want {
            return Err(ViewMismatch::Shard {
                shard: tollgate_kamailio::kamailio::shard_tree(*shard),
                held: got,
                rendered: *want,
            });
        }
    }
    if expect.full {
        for (t, got) in &live.views {
            if !expect.views.contains_key(t) && !got.is_empty() {
                return Err(ViewMismatch::Unexpected {
                    tenant: t.clone(),
                    held: got.len(),
                    example: got.iter().next().cloned(),
                });
            }
        }
    }
    Ok(())
}

/// Numbers to probe for one policy: every destination and class prefix plus
/// a digit, every first digit, the emergency numbers' digits as E.164.
pub fn probe_numbers(p: &CompiledPolicy, max: usize) -> Vec<String> {
    let mut set: BTreeSet<String> = BTreeSet::new();
    for d in 1..=9 {
        set.insert(format!("{d}5550100"));
    }
    let mut prefixes: Vec<&str> = p
        .destinations
        .iter()
        .map(|d| d.prefix.as_str())
        .chain(p.classes.iter().map(|c| c.prefix.as_str()))
        .collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    // spread the sample evenly over big tables
    let step = (prefixes.len() / max.max(1)).max(1);
    for pre in prefixes.iter().step_by(step) {
        if pre.is_empty() {
            continue;
        }
        let n = if pre.len() >= 15 {
            pre.to_string()
        } else {
            format!("{pre}5")
        };
        set.insert(n);
    }
    set.into_iter().collect()
}

/// The policy the probes are decided with: one allow-everything source, no
/// geo, crypto or limits, so the destination stage decides.
fn probe_policy(p: &CompiledPolicy) -> CompiledPolicy {
    let mut q = p.clone();
    q.sources.networks = vec![SourceNetwork {
        cidr: "0.0.0.0/0".into(),
        action: Verdict::Allow,
        trunk: None,
        rule: "probe:source".into(),
    }];
    q.sources.geo = None;
    q.crypto = Default::default();
    q.limits.clear();
    q
}

async fn probe_tenant(
    rpc: &Rpc,
    p: &CompiledPolicy,
    at: Placement,
    max: usize,
) -> Result<usize, TrialError> {
    let t = &p.tenant;
    let q = probe_policy(p);
    let ev = Evaluator::new(&q);
    let dtree = format!("d:{t}");
    let ctree = format!("c:{t}");
    let shard = at.tree();
    let numbers = probe_numbers(p, max);
    // every lookup first (several in flight), then the comparison
    let calls = numbers
        .iter()
        .flat_map(|n| {
            [&dtree, &ctree].map(|tree| {
                (
                    "mtree.match",
                    vec![
                        shard.clone(),
                        at.key(tree, n).unwrap_or_default(),
                        "0".to_string(),
                    ],
                )
            })
        })
        .collect();
    let answers = rpc
        .many(calls)
        .await
        .map_err(|source| TrialError::ProbeRpc {
            target: t.clone(),
            source,
        })?;
    let tvalue =
        |v: &serde_json::Value| v.get("TVALUE").and_then(|v| v.as_str()).map(str::to_string);
    // the windows the chains name: `<t>::<window>` → its open intervals
    let mut keys = BTreeSet::new();
    for chain in answers.iter().step_by(2).filter_map(tvalue) {
        for e in chain.split(';') {
            let f: Vec<&str> = e.split(',').collect();
            if f.len() >= 4 {
                keys.insert(format!("{t}::{}", f[2]));
            }
        }
    }
    let keys: Vec<String> = keys.into_iter().collect();
    let got = rpc
        .many_each(
            keys.iter()
                .map(|k| ("htable.get", vec!["tg_window".to_string(), k.clone()]))
                .collect(),
        )
        .await;
    // a window without an entry (htable.get fails) is closed
    let windows: BTreeMap<&String, Option<String>> = keys
        .iter()
        .zip(got)
        .map(|(k, v)| {
            let w = v.ok().and_then(|v| {
                v.get("item")
                    .and_then(|i| i.get("value"))
                    .and_then(|x| x.as_str().map(str::to_string))
            });
            (k, w)
        })
        .collect();
    let now = jiff::Timestamp::now();
    let mut n = 0;
    for (number, pair) in numbers.iter().zip(answers.chunks(2)) {
        // the tree is probed with E.164 digits (prefixes of the policy's
        // rows, not always whole numbers): decided past the reading, as the
        // SBC looks them up after it
        let mut call = Call::new(
            format!("+{number}"),
            std::net::IpAddr::from([10, 0, 0, 1]),
            now,
        );
        call.e164 = Some(number.clone());
        let d = ev.decide(&call, false);
        let chain = tvalue(&pair[0]).ok_or_else(|| TrialError::NoValue {
            tree: dtree.clone(),
            number: number.clone(),
        })?;
        let mut verdict = None;
        for e in chain.split(';').filter(|e| !e.is_empty()) {
            let f: Vec<&str> = e.split(',').collect();
            let applies = if f.len() >= 4 {
                let key = format!("{t}::{}", f[2]);
                let open = windows
                    .get(&key)
                    .and_then(|w| w.as_deref())
                    .is_some_and(|w| window_open(w, now.as_second()));
                (f[3] == "i") == open
            } else {
                true
            };
            if applies {
                verdict = Some((f[0] == "a", f.get(1).copied().unwrap_or("").to_string()));
                break;
            }
        }
        let (allow, rule) = verdict.unwrap_or((false, "dst:international".into()));
        let want_allow = d.outcome == Outcome::Allow;
        if allow != want_allow || rule != d.rule {
            return Err(TrialError::Verdict {
                tree: dtree,
                number: number.clone(),
                allow,
                rule,
                outcome: d.outcome,
                evaluator_rule: d.rule.to_string(),
            });
        }
        let classes = tvalue(&pair[1]).unwrap_or_default();
        if classes != d.classes.join(",") {
            return Err(TrialError::Classes {
                tree: ctree,
                number: number.clone(),
                classes,
                evaluator_classes: d.classes.join(","),
            });
        }
        n += 2;
    }
    Ok(n)
}

/// The fleet-wide country tree answers: its first, middle and last rows,
/// each looked up by its own prefix, give that row's country.
async fn probe_countries(rpc: &Rpc) -> Result<usize, TrialError> {
    let rows = country_rows();
    let picks = [0, rows.len() / 2, rows.len().saturating_sub(1)];
    let mut n = 0;
    for i in picks {
        let Some((prefix, iso)) = rows.get(i) else {
            continue;
        };
        let m = rpc
            .call("mtree.match", &[COUNTRY_TREE, prefix, "0"])
            .await
            .map_err(|source| TrialError::ProbeRpc {
                target: format!("{COUNTRY_TREE} {prefix}"),
                source,
            })?;
        let got = m.get("TVALUE").and_then(|v| v.as_str()).unwrap_or("");
        if got != *iso {
            return Err(TrialError::Country {
                prefix: prefix.to_string(),
                got: got.to_string(),
                iso: iso.to_string(),
            });
        }
        n += 1;
    }
    Ok(n)
}

/// The script's window test: `t0,t1,t2,t3,...` open in [t0,t1), [t2,t3), ...
pub fn window_open(w: &str, now: i64) -> bool {
    let v: Vec<i64> = w.split(',').filter_map(|x| x.parse().ok()).collect();
    v.chunks(2)
        .any(|c| c.len() == 2 && c[0] <= now && now < c[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert!(window_open("10,20,30,40", 10));
        assert!(!window_open("10,20,30,40", 20));
        assert!(window_open("10,20,30,40", 35));
        assert!(!window_open("10,20,30", 35));
        assert!(!window_open("", 35));
    }
}
