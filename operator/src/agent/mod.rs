//! The SBC agent (docs/agent.md): beside each Kamailio, it takes tenant
//! policy revisions, validates them (renderer, own checks, a trial Kamailio
//! probed against the evaluator), swaps the data files, reloads the changed
//! tables over JSON-RPC, reads back what Kamailio holds and restores the last
//! good state on any failure. Its state survives restarts (state dir).

pub mod http;
pub mod rows;
pub mod rpc;
pub mod trial;

use crate::backend::kamailio::{self, ActiveBlock, Kamailio};
use crate::backend::{Backend, Bundle, TenantRows, write};
use rows::{Expected, canonical_rows, check_bundle, view_hash};
use rpc::Rpc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};
use tollgate_ir::{CompiledPolicy, LimitMetric};

/// The agent's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: String,
    pub rpc_url: String,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub token: Vec<u8>,
    pub trial: trial::TrialConfig,
    /// Seconds between checks that Kamailio holds the applied state.
    pub reconcile_secs: u64,
    pub rpc_timeout_secs: u64,
}

/// What the agent persists per tenant (after a successful apply only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantState {
    pub revision: String,
    pub policy: CompiledPolicy,
    /// sha256 (hex) of the rows as rendered (`TenantRows::hash`).
    pub rows_hash: String,
    /// The rows themselves (so a restart composes the same bytes).
    pub tables: BTreeMap<String, Vec<String>>,
    pub networks: Vec<String>,
    pub applied_at: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Persisted {
    tenants: BTreeMap<String, TenantState>,
    /// tg_block key → expiry epoch seconds (0 = until lifted).
    blocks: BTreeMap<String, i64>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Persisted,
    rows: BTreeMap<String, TenantRows>,
    bundle_hash: String,
    last_error: Option<String>,
    /// The warm trial instance (`TrialConfig::warm`), holding the last
    /// bundle checked.
    warm: Option<trial::Instance>,
    /// Revisions staged and not yet committed, per tenant.
    staged: BTreeMap<String, Staged>,
    /// `/metrics`' labels of the applied policies.
    labels: Arc<MetricLabels>,
}

/// A staged revision (`Agent::stage`).
#[derive(Debug)]
struct Staged {
    revision: String,
    policy: CompiledPolicy,
    /// The checks' result, kept for the newest stage only (it holds every
    /// tenant's rows); without it a commit checks again.
    checked: Option<Box<Checked>>,
}

/// What the checks before the live SBC is touched produced.
#[derive(Debug)]
struct Checked {
    /// The state they were made against.
    base: Base,
    prepared: Prepared,
    report: trial::TrialReport,
    checks_ms: f64,
    trial_ms: f64,
    /// When the revision was rendered (its windows start there).
    at: jiff::Timestamp,
}

/// What a checked bundle depends on besides the changed tenant: the bundle
/// applied, the blocks and which of them are still in force.
#[derive(Debug, PartialEq, Eq)]
struct Base {
    bundle_hash: String,
    blocks: BTreeMap<String, i64>,
    in_force: BTreeSet<String>,
}

impl Base {
    fn of(inner: &Inner, now: i64) -> Base {
        Base {
            bundle_hash: inner.bundle_hash.clone(),
            blocks: inner.state.blocks.clone(),
            in_force: inner
                .state
                .blocks
                .iter()
                .filter(|(_, e)| block_in_force(**e, now))
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }
}

/// A block with expiry `e` (epoch seconds, 0 = until lifted) at `now`.
fn block_in_force(e: i64, now: i64) -> bool {
    e == 0 || e > now
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub applies_ok: AtomicU64,
    pub applies_rejected: AtomicU64,
    pub applies_failed: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub recoveries: AtomicU64,
    pub last_apply_us: AtomicU64,
    /// Revisions staged (checked, not yet committed).
    pub stages: AtomicU64,
}

/// Why an apply did not happen.
#[derive(Debug)]
pub enum ApplyError {
    /// Refused before the live SBC was touched (422).
    Rejected(Vec<String>),
    /// No such tenant / block (404).
    NotFound(String),
    /// Failed after the swap; the previous state was restored (500).
    Failed(String),
    /// A commit of a revision that is not staged (409).
    Conflict(String),
}

/// The agent.
#[derive(Debug)]
pub struct Agent {
    pub cfg: Config,
    pub rpc: Rpc,
    inner: tokio::sync::Mutex<Inner>,
    pub metrics: Metrics,
    /// The live Kamailio's address reloads.
    address_slot: rpc::AddressSlot,
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn rows_of(tenant: &str, s: &TenantState) -> Result<TenantRows, String> {
    let networks = s
        .networks
        .iter()
        .map(|n| kamailio::parse_cidr(n).ok_or_else(|| format!("bad network {n} in state")))
        .collect::<Result<_, _>>()?;
    Ok(TenantRows {
        tenant: tenant.to_string(),
        revision: s.revision.clone(),
        tables: s.tables.clone(),
        networks,
    })
}

/// Valid tg_block key: `<tenant>` or `<tenant>::<class>`.
fn block_key_ok(key: &str, tenants: &BTreeMap<String, TenantRows>) -> Result<(), String> {
    let (t, class) = match key.split_once("::") {
        Some((t, c)) => (t, Some(c)),
        None => (key, None),
    };
    if !tenants.contains_key(t) {
        return Err(format!("no tenant `{t}` is applied"));
    }
    if let Some(c) = class {
        let ok = c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
        if !ok {
            return Err(format!("class `{c}` is not a valid class name"));
        }
    }
    Ok(())
}

impl Agent {
    /// Loads the persisted state (if any).
    pub fn new(cfg: Config) -> Result<Agent, String> {
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|e| format!("state dir {}: {e}", cfg.state_dir.display()))?;
        std::fs::create_dir_all(&cfg.trial.dir).map_err(|e| format!("trial dir: {e}"))?;
        trial::clean_leftovers(&cfg.trial.dir);
        let rpc = Rpc::from_url(
            &cfg.rpc_url,
            std::time::Duration::from_secs(cfg.rpc_timeout_secs),
        )?;
        let mut inner = Inner::default();
        let sf = state_file(&cfg.state_dir);
        if sf.exists() {
            let text =
                std::fs::read_to_string(&sf).map_err(|e| format!("{}: {e}", sf.display()))?;
            inner.state =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", sf.display()))?;
            for (t, s) in &inner.state.tenants {
                inner.rows.insert(t.clone(), rows_of(t, s)?);
            }
        }
        let bundle = compose(&inner.rows, &inner.state.blocks).map_err(|e| e.join("; "))?;
        inner.bundle_hash = bundle.hash;
        inner.labels = Arc::new(MetricLabels::of(&inner.state, &inner.rows));
        Ok(Agent {
            cfg,
            rpc,
            inner: tokio::sync::Mutex::new(inner),
            metrics: Metrics::default(),
            address_slot: rpc::AddressSlot::default(),
        })
    }

    /// Stops the warm trial instance (before the agent exits).
    pub async fn shutdown(&self) {
        if let Some(w) = self.inner.lock().await.warm.take() {
            w.stop().await;
        }
    }

    /// Writes the state file (the tenants as given, the blocks) atomically.
    /// Borrowed: a change is persisted before `Inner::state` takes it,
    /// without copying every tenant's policy and rows.
    fn persist<'a>(
        &self,
        tenants: impl Iterator<Item = (&'a String, &'a TenantState)>,
        blocks: &BTreeMap<String, i64>,
    ) -> Result<(), String> {
        #[derive(Serialize)]
        struct View<'a> {
            tenants: BTreeMap<&'a String, &'a TenantState>,
            blocks: &'a BTreeMap<String, i64>,
        }
        let sf = state_file(&self.cfg.state_dir);
        let tmp = sf.with_extension("json.tmp");
        let view = View {
            tenants: tenants.collect(),
            blocks,
        };
        let text = serde_json::to_vec(&view).map_err(|e| e.to_string())?;
        (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &sf)?;
            std::fs::File::open(&self.cfg.state_dir)?.sync_all()
        })()
        .map_err(|e| format!("persist state: {e}"))
    }

    /// Validates and applies a tenant's revision (`Some`) or removes the
    /// tenant (`None`). Serialized; the previous state stays on any error.
    pub async fn apply(
        &self,
        tenant: &str,
        change: Option<(String, CompiledPolicy)>,
    ) -> Result<Value, ApplyError> {
        let mut inner = self.inner.lock().await;
        let t0 = Instant::now();
        let r = self.apply_locked(&mut inner, tenant, change, t0).await;
        self.account(&mut inner, tenant, &r, t0);
        r
    }

    /// Counts and logs an apply's (or commit's) outcome.
    fn account(&self, inner: &mut Inner, tenant: &str, r: &Result<Value, ApplyError>, t0: Instant) {
        if !matches!(r, Err(ApplyError::NotFound(_) | ApplyError::Conflict(_))) {
            self.metrics
                .last_apply_us
                .store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        match r {
            Ok(_) => {
                self.metrics.applies_ok.fetch_add(1, Ordering::Relaxed);
                inner.last_error = None;
            }
            Err(ApplyError::Rejected(e)) => {
                self.metrics
                    .applies_rejected
                    .fetch_add(1, Ordering::Relaxed);
                eprintln!("agent: {tenant}: rejected: {}", e.join("; "));
            }
            Err(ApplyError::Failed(e)) => {
                self.metrics.applies_failed.fetch_add(1, Ordering::Relaxed);
                inner.last_error = Some(e.clone());
                eprintln!("agent: {tenant}: FAILED: {e}");
            }
            Err(ApplyError::NotFound(_) | ApplyError::Conflict(_)) => {}
        }
    }

    async fn apply_locked(
        &self,
        inner: &mut Inner,
        tenant: &str,
        change: Option<(String, CompiledPolicy)>,
        t0: Instant,
    ) -> Result<Value, ApplyError> {
        let checked = self
            .check_locked(inner, tenant, change.as_ref(), t0)
            .await?;
        self.commit_locked(inner, tenant, change, checked, t0).await
    }

    /// Steps 1–3 of docs/agent.md: everything an apply checks before the
    /// live SBC is touched (render, own checks, the trial and its probes).
    async fn check_locked(
        &self,
        inner: &mut Inner,
        tenant: &str,
        change: Option<&(String, CompiledPolicy)>,
        t0: Instant,
    ) -> Result<Checked, ApplyError> {
        let now = jiff::Timestamp::now();
        let prepared = prepare(&inner.rows, &inner.state.blocks, tenant, change, now)?;
        let checks_ms = t0.elapsed().as_secs_f64() * 1e3;
        let report = trial::run(
            &self.cfg.trial,
            &mut inner.warm,
            &prepared.bundle,
            &prepared.expected,
            &prepared.probes,
        )
        .await
        .map_err(|e| ApplyError::Rejected(vec![e]))?;
        Ok(Checked {
            base: Base::of(inner, now.as_second()),
            prepared,
            report,
            checks_ms,
            trial_ms: t0.elapsed().as_secs_f64() * 1e3 - checks_ms,
            at: now,
        })
    }

    /// Steps 4–8: swap, reload, read back (restoring the previous state on
    /// any failure), then persist. `checked` was derived from the state in
    /// `inner` (the caller makes sure).
    async fn commit_locked(
        &self,
        inner: &mut Inner,
        tenant: &str,
        change: Option<(String, CompiledPolicy)>,
        checked: Checked,
        t0: Instant,
    ) -> Result<Value, ApplyError> {
        // any stage of this tenant is superseded; any other stage's checks
        // were made against the state this commit replaces
        inner.staged.remove(tenant);
        for s in inner.staged.values_mut() {
            s.checked = None;
        }
        let deleting = change.is_none();
        let Checked {
            prepared:
                Prepared {
                    cand,
                    bundle,
                    expected,
                    ..
                },
            report,
            checks_ms,
            trial_ms,
            at,
            ..
        } = checked;
        let t_live = t0.elapsed();
        let live_start = unix_ms();
        let (readback, live) = match self.swap_and_verify(&bundle, &cand, &expected, false).await {
            Ok(rb) => rb,
            Err(e) => {
                // the warm trial holds the candidate now, the live SBC not
                if let Some(w) = inner.warm.take() {
                    w.stop().await;
                }
                let old = compose(&inner.rows, &inner.state.blocks).map_err(|x| {
                    ApplyError::Failed(format!("{e}; and the old bundle: {}", x.join("; ")))
                })?;
                let restored = match self
                    .swap_and_verify(&old, &inner.rows, &Expected::of(&inner.rows), true)
                    .await
                {
                    Ok(_) => "the previous state was restored".to_string(),
                    Err(e2) => format!("RESTORE FAILED too: {e2}"),
                };
                return Err(ApplyError::Failed(format!("{e}; {restored}")));
            }
        };
        // success: persist
        let key = tenant.to_string();
        let new = change.map(|(rev, policy)| {
            let rows = &cand[tenant];
            TenantState {
                revision: rev,
                policy,
                rows_hash: rows.hash(),
                tables: rows.tables.clone(),
                networks: rows.networks.iter().map(ToString::to_string).collect(),
                applied_at: at.to_string(),
            }
        });
        let others = inner.state.tenants.iter().filter(|(t, _)| **t != key);
        if let Err(e) = self.persist(
            others.chain(new.iter().map(|s| (&key, s))),
            &inner.state.blocks,
        ) {
            // Kamailio holds the new state; the next start re-applies the old
            // one from disk, so say so loudly
            return Err(ApplyError::Failed(e));
        }
        match new {
            Some(s) => inner.state.tenants.insert(key, s),
            None => inner.state.tenants.remove(&key),
        };
        inner.rows = cand;
        inner.bundle_hash = bundle.hash.clone();
        inner.labels = Arc::new(MetricLabels::of(&inner.state, &inner.rows));
        let t_total = t0.elapsed();
        Ok(json!({
            "tenant": tenant,
            "deleted": deleting,
            "revision": inner.state.tenants.get(tenant).map(|s| s.revision.clone()),
            "rowsHash": inner.state.tenants.get(tenant).map(|s| s.rows_hash.clone()),
            "readbackHash": readback.get(tenant),
            "bundleHash": bundle.hash,
            "probes": report.probes,
            "timingsMs": {
                "checks": checks_ms,
                "trialStart": report.start_ms,
                "trialWarm": report.warm,
                "trial": trial_ms,
                "swap": live.swap_ms,
                "reload": live.reload_ms,
                "readback": live.readback_ms,
                "swapReloadReadback": (t_total - t_live).as_secs_f64() * 1e3,
                "total": t_total.as_secs_f64() * 1e3,
            },
            // wall-clock instants (Unix ms): the live SBC is first touched
            // (swap), holds the new policy (last reload answered), and the
            // read-back of what it holds is done
            "liveStartUnixMs": live_start,
            "enforcedUnixMs": live.enforced_unix_ms,
            "liveEndUnixMs": live.end_unix_ms,
            "reloaded": live.reloaded,
        }))
    }

    /// The first half of a two-phase apply (docs/agent.md, "Staged
    /// applies"): checks the revision exactly as a PUT does (render, own
    /// checks, trial, probes) without touching the live SBC, and keeps the
    /// result for [`Agent::commit`]. A later stage of the tenant replaces it.
    pub async fn stage(
        &self,
        tenant: &str,
        revision: String,
        policy: CompiledPolicy,
    ) -> Result<Value, ApplyError> {
        let mut inner = self.inner.lock().await;
        let t0 = Instant::now();
        let change = (revision, policy);
        let r = self
            .check_locked(&mut inner, tenant, Some(&change), t0)
            .await;
        let checked = match r {
            Ok(c) => c,
            Err(e) => {
                if let ApplyError::Rejected(reasons) = &e {
                    self.metrics
                        .applies_rejected
                        .fetch_add(1, Ordering::Relaxed);
                    eprintln!("agent: {tenant}: stage rejected: {}", reasons.join("; "));
                }
                return Err(e);
            }
        };
        self.metrics.stages.fetch_add(1, Ordering::Relaxed);
        let answer = json!({
            "tenant": tenant,
            "revision": change.0,
            "staged": true,
            "bundleHash": checked.prepared.bundle.hash,
            "probes": checked.report.probes,
            "timingsMs": {
                "checks": checked.checks_ms,
                "trialStart": checked.report.start_ms,
                "trialWarm": checked.report.warm,
                "trial": checked.trial_ms,
                "total": t0.elapsed().as_secs_f64() * 1e3,
            },
        });
        // one checked bundle is kept (it holds every tenant's rows): the
        // newest stage's
        for s in inner.staged.values_mut() {
            s.checked = None;
        }
        inner.staged.insert(
            tenant.to_string(),
            Staged {
                revision: change.0,
                policy: change.1,
                checked: Some(Box::new(checked)),
            },
        );
        Ok(answer)
    }

    /// The second half: applies the staged `revision` of `tenant` (swap,
    /// reload, read back, persist; as a PUT from there on). When the state
    /// changed since the stage (another apply, a block set, lifted or run
    /// out), or a newer stage took its checked bundle, the revision is
    /// checked again first (`revalidated` in the answer). Nothing staged
    /// under that revision: [`ApplyError::Conflict`].
    pub async fn commit(&self, tenant: &str, revision: &str) -> Result<Value, ApplyError> {
        let mut inner = self.inner.lock().await;
        let t0 = Instant::now();
        let staged = match inner.staged.remove(tenant) {
            Some(s) if s.revision == revision => s,
            Some(s) => {
                let msg = format!(
                    "revision `{revision}` of tenant `{tenant}` is not staged (`{}` is)",
                    s.revision
                );
                inner.staged.insert(tenant.to_string(), s);
                return Err(ApplyError::Conflict(msg));
            }
            None => {
                return Err(ApplyError::Conflict(format!(
                    "nothing is staged for tenant `{tenant}`"
                )));
            }
        };
        let current = Base::of(&inner, jiff::Timestamp::now().as_second());
        let change = Some((staged.revision, staged.policy));
        let (r, revalidated) = match staged.checked {
            Some(c) if c.base == current => {
                let c = *c;
                (
                    self.commit_locked(&mut inner, tenant, change, c, t0).await,
                    false,
                )
            }
            _ => (
                self.apply_locked(&mut inner, tenant, change, t0).await,
                true,
            ),
        };
        self.account(&mut inner, tenant, &r, t0);
        r.map(|mut v| {
            v["staged"] = json!(true);
            v["revalidated"] = json!(revalidated);
            v
        })
    }

    /// Writes the bundle into the live data dir (changed files only, forward
    /// mtimes), reloads the changed tables (all of them with `reload_all`),
    /// reads back; returns the read-back hash per tenant and the timings.
    async fn swap_and_verify(
        &self,
        bundle: &Bundle,
        rows: &BTreeMap<String, TenantRows>,
        expected: &Expected,
        reload_all: bool,
    ) -> Result<(BTreeMap<String, String>, LiveTimings), String> {
        let t0 = Instant::now();
        let written = write::write_bundle(&self.cfg.data_dir, bundle, SystemTime::now())
            .map_err(|e| format!("write {}: {e}", self.cfg.data_dir.display()))?;
        let swap_ms = t0.elapsed().as_secs_f64() * 1e3;
        let tables: Vec<String> = if reload_all {
            bundle.files.keys().cloned().collect()
        } else {
            written
        };
        let reloaded = self
            .rpc
            .reload_tables(&tables, &self.address_slot, Some(&self.metrics))
            .await?;
        let enforced_unix_ms = unix_ms();
        let reload_ms = t0.elapsed().as_secs_f64() * 1e3 - swap_ms;
        let t1 = Instant::now();
        let live = self.rpc.live_view(expected).await?;
        trial::compare_views(expected, &live).map_err(|e| format!("read-back: {e}"))?;
        let hashes = rows
            .keys()
            .map(|t| {
                (
                    t.clone(),
                    view_hash(live.get(t).unwrap_or(&BTreeSet::new())),
                )
            })
            .collect();
        Ok((
            hashes,
            LiveTimings {
                swap_ms,
                reload_ms,
                readback_ms: t1.elapsed().as_secs_f64() * 1e3,
                enforced_unix_ms,
                end_unix_ms: unix_ms(),
                reloaded,
            },
        ))
    }

    /// The applied state, with what Kamailio holds now; `only`: just that
    /// tenant under `tenants` (the rest of the answer is the same).
    pub async fn state(&self, only: Option<&str>) -> Value {
        let inner = self.inner.lock().await;
        let live = self.rpc.live_view(&Expected::of(&inner.rows)).await;
        let mut tenants = serde_json::Map::new();
        for (t, s) in &inner.state.tenants {
            if only.is_some_and(|o| o != t) {
                continue;
            }
            let rendered = inner.rows.get(t).map(|r| view_hash(&canonical_rows(r)));
            let readback = live
                .as_ref()
                .ok()
                .map(|l| view_hash(l.get(t).unwrap_or(&BTreeSet::new())));
            tenants.insert(
                t.clone(),
                json!({
                    "revision": s.revision,
                    "rowsHash": s.rows_hash,
                    "renderedHash": rendered,
                    "readbackHash": readback,
                    "consistent": rendered.is_some() && rendered == readback,
                    "appliedAt": s.applied_at,
                }),
            );
        }
        let extra: Vec<&String> = live
            .as_ref()
            .map(|l| l.keys().filter(|t| !inner.rows.contains_key(*t)).collect())
            .unwrap_or_default();
        json!({
            "tenants": tenants,
            "bundleHash": inner.bundle_hash,
            "blocks": inner.state.blocks,
            "kamailio": match &live { Ok(_) => json!("reachable"), Err(e) => json!(e) },
            "unexpectedTenants": extra,
            "lastError": inner.last_error,
        })
    }

    /// Kamailio answers and holds the applied state.
    pub async fn healthy(&self) -> Result<(), String> {
        let inner = self.inner.lock().await;
        let expected = Expected::of(&inner.rows);
        let live = self.rpc.live_view(&expected).await?;
        trial::compare_views(&expected, &live)
    }

    /// Recovery: if the live files or what Kamailio holds differ from the
    /// applied state, rewrite the files and reload every table. Returns
    /// whether a repair was made.
    pub async fn reconcile(&self) -> Result<bool, String> {
        let mut inner = self.inner.lock().await;
        self.rpc.call("core.uptime", &[]).await?;
        let bundle = compose(&inner.rows, &inner.state.blocks).map_err(|e| e.join("; "))?;
        let files_ok = bundle.files.iter().all(|(n, c)| {
            std::fs::read(self.cfg.data_dir.join(n)).is_ok_and(|b| b == c.as_bytes())
        });
        let expected = Expected::of(&inner.rows);
        let live = self.rpc.live_view(&expected).await?;
        let held_ok = trial::compare_views(&expected, &live);
        if files_ok && held_ok.is_ok() {
            return Ok(false);
        }
        let why = match held_ok {
            Err(e) => e,
            Ok(()) => "the live data files differ from the applied state".into(),
        };
        eprintln!("agent: recovery: {why}; re-applying the last good state");
        let rows = inner.rows.clone();
        match self
            .swap_and_verify(&bundle, &rows, &Expected::of(&rows), true)
            .await
        {
            Ok(_) => {
                self.metrics.recoveries.fetch_add(1, Ordering::Relaxed);
                inner.last_error = None;
                Ok(true)
            }
            Err(e) => {
                inner.last_error = Some(format!("recovery: {e}"));
                Err(e)
            }
        }
    }

    /// Re-renders (same revision and policy, full pipeline) every tenant
    /// applied more than `max_age` ago, so its time windows (rendered for 8
    /// days from the apply) never run out. Returns the tenants refreshed.
    pub async fn refresh_windows(&self, max_age: std::time::Duration) -> Vec<String> {
        let due: Vec<(String, String, CompiledPolicy)> = {
            let inner = self.inner.lock().await;
            let now = jiff::Timestamp::now();
            inner
                .state
                .tenants
                .iter()
                .filter(|(_, s)| {
                    s.applied_at
                        .parse::<jiff::Timestamp>()
                        .map_or(true, |t| now.duration_since(t).unsigned_abs() > max_age)
                })
                .map(|(t, s)| (t.clone(), s.revision.clone(), s.policy.clone()))
                .collect()
        };
        let mut done = Vec::new();
        for (t, rev, policy) in due {
            match self.apply(&t, Some((rev, policy))).await {
                Ok(_) => done.push(t),
                Err(e) => eprintln!("agent: window refresh of {t}: {e:?}"),
            }
        }
        done
    }

    /// Sets (`Some(expiry)`, 0 = until lifted) or lifts (`None`) a block.
    pub async fn block(&self, key: &str, expires: Option<i64>) -> Result<Value, ApplyError> {
        let mut inner = self.inner.lock().await;
        if expires.is_some() {
            block_key_ok(key, &inner.rows).map_err(|e| ApplyError::Rejected(vec![e]))?;
        } else if !inner.state.blocks.contains_key(key) {
            return Err(ApplyError::NotFound(format!("no block `{key}`")));
        }
        let mut blocks = inner.state.blocks.clone();
        match expires {
            Some(e) => {
                if e < 0 {
                    return Err(ApplyError::Rejected(vec!["expires must be >= 0".into()]));
                }
                self.rpc
                    .call("htable.sets", &["tg_block", key, &e.to_string()])
                    .await
                    .map_err(ApplyError::Failed)?;
                blocks.insert(key.to_string(), e);
            }
            None => {
                // absent in memory (e.g. after a restart without the file) is fine
                let _ = self.rpc.call("htable.delete", &["tg_block", key]).await;
                blocks.remove(key);
            }
        }
        let bundle = compose(&inner.rows, &blocks).map_err(ApplyError::Rejected)?;
        write::write_bundle(&self.cfg.data_dir, &bundle, SystemTime::now())
            .map_err(|e| ApplyError::Failed(format!("write tg_block: {e}")))?;
        self.persist(inner.state.tenants.iter(), &blocks)
            .map_err(ApplyError::Failed)?;
        inner.state.blocks = blocks;
        inner.bundle_hash = bundle.hash;
        Ok(json!({"blocks": inner.state.blocks}))
    }

    /// Prometheus text.
    pub async fn metrics_text(&self) -> String {
        let labels_of = Arc::clone(&self.inner.lock().await.labels);
        let MetricLabels {
            tenants,
            known_rules,
            class_limits,
            windows,
            seeds,
            revisions,
            class_names,
        } = &*labels_of;
        let mut out = String::new();
        let labels = StatLabels {
            tenants,
            rules: known_rules,
            classes: class_names,
        };
        let (up, stats) = match self.rpc.htable_entries("tg_stat").await {
            Ok(entries) => (1, stat_counters(&entries, seeds, &labels)),
            Err(_) => (0, StatCounters::default()),
        };
        let StatCounters {
            calls,
            by_country,
            rated,
            by_class,
        } = stats;
        let o = &mut out;
        family(
            o,
            "tollgate_sbc_up",
            "gauge",
            Some("Kamailio answers JSON-RPC."),
        );
        sample(o, "tollgate_sbc_up", &[], up);
        family(
            o,
            "tollgate_tenant_revision_info",
            "gauge",
            Some("The revision each applied tenant holds (1 per tenant)."),
        );
        for (t, r) in revisions {
            sample(
                o,
                "tollgate_tenant_revision_info",
                &[("tenant", t), ("revision", r)],
                1,
            );
        }
        family(
            o,
            "tollgate_calls_total",
            "counter",
            Some("INVITEs evaluated by the SBC since its start (tg_stat)."),
        );
        for ((t, oc, r), n) in &calls {
            sample(
                o,
                "tollgate_calls_total",
                &[("tenant", t), ("outcome", oc), ("rule", r)],
                n,
            );
        }
        family(
            o,
            "tollgate_concurrent_calls",
            "gauge",
            Some("Calls up per tenant (dialog profile tg_t)."),
        );
        for t in tenants {
            if let Ok(v) = self.rpc.call("dlg.profile_get_size", &["tg_t", t]).await {
                sample(
                    o,
                    "tollgate_concurrent_calls",
                    &[("tenant", t)],
                    v.as_u64().unwrap_or(0),
                );
            }
        }
        family(
            o,
            "tollgate_concurrent_calls_by_class",
            "gauge",
            Some("Calls up per tenant and limited class (dialog profile tg_c)."),
        );
        for (t, c) in class_limits {
            let key = format!("{t}::{c}");
            if let Ok(v) = self.rpc.call("dlg.profile_get_size", &["tg_c", &key]).await {
                sample(
                    o,
                    "tollgate_concurrent_calls_by_class",
                    &[("tenant", t), ("class", c)],
                    v.as_u64().unwrap_or(0),
                );
            }
        }
        family(
            o,
            "tollgate_calls_by_country_total",
            "counter",
            Some(
                "Allowed calls (emergency calls excepted) per tenant and destination country, ZZ = no country (tg_stat).",
            ),
        );
        for ((t, c), n) in &by_country {
            sample(
                o,
                "tollgate_calls_by_country_total",
                &[("tenant", t), ("country", c)],
                n,
            );
        }
        family(
            o,
            "tollgate_calls_by_class_total",
            "counter",
            Some(
                "Verdicts reached after the number's classes are known (emergency calls, unknown or denied sources and invalid numbers excepted), per tenant, class of the number (each class once; other = not a class of the tenant's policy) and outcome (tg_stat).",
            ),
        );
        for ((t, c, oc), n) in &by_class {
            sample(
                o,
                "tollgate_calls_by_class_total",
                &[("tenant", t), ("class", c), ("outcome", oc)],
                n,
            );
        }
        family(
            o,
            "tollgate_rate_limit_calls_total",
            "counter",
            Some(
                "Calls counted against a call-rate limit that has a warning level, per tenant and limit rule (tg_stat).",
            ),
        );
        for ((t, r), n) in &rated {
            sample(
                o,
                "tollgate_rate_limit_calls_total",
                &[("tenant", t), ("rule", r)],
                n,
            );
        }
        family(
            o,
            "tollgate_window_open",
            "gauge",
            Some(
                "1 while the tenant's time window is open (the evaluator's semantics, at scrape time).",
            ),
        );
        let now = jiff::Timestamp::now();
        for (t, w) in windows {
            if let Ok(open) = tollgate_policy::window::is_open(w, now) {
                sample(
                    o,
                    "tollgate_window_open",
                    &[("tenant", t), ("window", &w.name)],
                    u8::from(open),
                );
            }
        }
        let m = &self.metrics;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        family(
            o,
            "tollgate_agent_applies_total",
            "counter",
            Some("Applies by result."),
        );
        for (r, a) in [
            ("ok", &m.applies_ok),
            ("rejected", &m.applies_rejected),
            ("failed", &m.applies_failed),
        ] {
            sample(o, "tollgate_agent_applies_total", &[("result", r)], g(a));
        }
        for (name, a) in [
            ("tollgate_agent_reloads_total", &m.reloads),
            ("tollgate_agent_reload_failures_total", &m.reload_failures),
            ("tollgate_agent_recoveries_total", &m.recoveries),
            ("tollgate_agent_stages_total", &m.stages),
        ] {
            family(o, name, "counter", None);
            sample(o, name, &[], g(a));
        }
        family(
            o,
            "tollgate_agent_last_apply_seconds",
            "gauge",
            Some("Duration of the last apply."),
        );
        sample(
            o,
            "tollgate_agent_last_apply_seconds",
            &[],
            g(&m.last_apply_us) as f64 / 1e6,
        );
        out
    }
}

/// What the labels of the `tg_stat` families may hold.
struct StatLabels<'a> {
    /// The applied tenants.
    tenants: &'a [String],
    /// Every rule id the applied policies (and tollgate.cfg) can name.
    rules: &'a BTreeSet<String>,
    /// Applied tenant → its [`policy_classes`].
    classes: &'a BTreeMap<String, BTreeSet<String>>,
}

/// The `tg_stat` counters, labelled: one map per family.
#[derive(Debug, Default, PartialEq, Eq)]
struct StatCounters {
    /// (tenant, outcome, rule): `tollgate_calls_total`.
    calls: BTreeMap<(String, String, String), u64>,
    /// (tenant, country): `tollgate_calls_by_country_total`.
    by_country: BTreeMap<(String, String), u64>,
    /// (tenant, rule): `tollgate_rate_limit_calls_total`.
    rated: BTreeMap<(String, String), u64>,
    /// (tenant, class, outcome): `tollgate_calls_by_class_total`.
    by_class: BTreeMap<(String, String, String), u64>,
}

/// Folds `tg_stat`'s entries (`<t>::<o>::<r>` → count) into the families,
/// the `seeds` ([`counter_seeds`]) first at 0 so that a series' first call is
/// an increase. Labels are bounded by `labels`: a tenant that is not applied
/// is `other` in `tollgate_calls_total` (`_`, the unknown source, stays) and
/// dropped from the other families; an unknown rule, outcome or class is
/// `other`.
fn stat_counters(
    entries: &[(String, Value)],
    seeds: &[(String, String, String)],
    labels: &StatLabels<'_>,
) -> StatCounters {
    let mut out = StatCounters::default();
    let applied = |t: &str| labels.tenants.iter().any(|x| x == t);
    for (t, o, r) in seeds {
        if o == "country" {
            out.by_country.entry((t.clone(), r.clone())).or_default();
        } else if o == "rated" {
            out.rated.entry((t.clone(), r.clone())).or_default();
        } else if o == "class" {
            if let Some(known) = labels.classes.get(t) {
                let (oc, c) = class_labels(r, known);
                out.by_class
                    .entry((t.clone(), c.to_string(), oc.to_string()))
                    .or_default();
            }
        } else {
            out.calls
                .entry((t.clone(), o.clone(), r.clone()))
                .or_default();
        }
    }
    for (key, value) in entries {
        let n = match value {
            Value::Number(n) => n.as_u64().unwrap_or(0),
            Value::String(s) => s.parse().unwrap_or(0),
            _ => 0,
        };
        let mut it = key.splitn(3, "::");
        let (Some(t), Some(o), Some(r)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        // `<t>::country::<CC>`: allowed calls per destination country
        // (tollgate.cfg), for applied tenants
        if o == "country" {
            if applied(t) {
                *out.by_country
                    .entry((t.to_string(), country_label(r).to_string()))
                    .or_default() += n;
            }
            continue;
        }
        // `<t>::class::<outcome>::<class>`: every verdict after the class
        // lookup, once per class of the number (tollgate.cfg route
        // COUNT_CLASSES), for applied tenants
        if o == "class" {
            if let (true, Some(known)) = (applied(t), labels.classes.get(t)) {
                let (oc, c) = class_labels(r, known);
                *out.by_class
                    .entry((t.to_string(), c.to_string(), oc.to_string()))
                    .or_default() += n;
            }
            continue;
        }
        // `<t>::rated::<rule>`: calls a rate limit with a warning level saw
        // (tollgate.cfg route LIMIT_RATE)
        if o == "rated" {
            if applied(t) && labels.rules.contains(r) {
                *out.rated.entry((t.to_string(), r.to_string())).or_default() += n;
            }
            continue;
        }
        let t = if t == "_" || applied(t) { t } else { "other" };
        let o = if ["allow", "deny", "limit", "error", "warning"].contains(&o) {
            o
        } else {
            "other"
        };
        let r = if labels.rules.contains(r) { r } else { "other" };
        *out.calls
            .entry((t.to_string(), o.to_string(), r.to_string()))
            .or_default() += n;
    }
    out
}

/// What `/metrics` derives from the applied policies: computed when they
/// change (`Agent::new`, every successful apply), not on every scrape.
#[derive(Debug, Default)]
struct MetricLabels {
    tenants: Vec<String>,
    /// Rule ids a `tollgate_calls_total` sample may carry.
    known_rules: BTreeSet<String>,
    /// (tenant, class) with a concurrency limit.
    class_limits: BTreeSet<(String, String)>,
    windows: Vec<(String, tollgate_ir::TimeWindow)>,
    seeds: Vec<(String, String, String)>,
    /// tenant → its revision as a number (`<n>@sha256:…` labels) or the
    /// label itself.
    revisions: Vec<(String, String)>,
    /// tenant → the classes its numbers can have.
    class_names: BTreeMap<String, BTreeSet<String>>,
}

impl MetricLabels {
    fn of(state: &Persisted, rows: &BTreeMap<String, TenantRows>) -> MetricLabels {
        let tenants: Vec<String> = rows.keys().cloned().collect();
        // tenant → its revision as a number (`<n>@sha256:…` labels) or
        // the label itself
        let revisions: Vec<(String, String)> = state
            .tenants
            .iter()
            .map(|(t, s)| {
                let r = s
                    .revision
                    .split_once('@')
                    .map_or(s.revision.as_str(), |(n, _)| n);
                (t.clone(), r.chars().take(128).collect())
            })
            .collect();
        // classes with a concurrency limit, and every window, per tenant
        let mut class_limits: BTreeSet<(String, String)> = BTreeSet::new();
        let mut windows = Vec::new();
        // tenant → the classes its numbers can have (the class label's values)
        let mut class_names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (t, s) in &state.tenants {
            class_names.insert(t.clone(), policy_classes(&s.policy));
            for l in &s.policy.limits {
                if let (LimitMetric::Concurrent, Some(c)) = (l.metric, &l.class) {
                    class_limits.insert((t.clone(), c.clone()));
                }
            }
            windows.extend(s.policy.windows.iter().map(|w| (t.clone(), w.clone())));
        }
        let seeds: Vec<(String, String, String)> = state
            .tenants
            .iter()
            .flat_map(|(t, s)| counter_seeds(t, &s.policy))
            .collect();
        let mut rules: BTreeSet<String> = [
            "src:unknown",
            "dst:invalid",
            "dst:unreadable",
            "dst:international",
            "dst:emergency",
            "sbc:tenant-missing",
            "sbc:class-tree-missing",
            "sbc:tree-missing",
            "sbc:unknown",
            "block:tenant",
            "crypto:tls",
            "crypto:client-certificate",
            "crypto:srtp",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        for s in state.tenants.values() {
            let p = &s.policy;
            rules.extend(p.rules.iter().map(|r| r.id.clone()));
            rules.extend(p.destinations.iter().map(|d| d.rule.clone()));
            rules.extend(p.sources.networks.iter().map(|n| n.rule.clone()));
            rules.extend(p.sources.geo.iter().map(|g| g.rule.clone()));
            rules.extend(p.limits.iter().map(|l| l.rule.clone()));
            rules.extend(p.windows.iter().map(|w| w.rule.clone()));
        }
        rules.extend(
            class_names
                .values()
                .flatten()
                .map(|c| format!("block:class:{c}")),
        );
        MetricLabels {
            tenants,
            known_rules: rules,
            class_limits,
            windows,
            seeds,
            revisions,
            class_names,
        }
    }
}

/// The `# HELP` (if any) and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: Option<&str>) {
    if let Some(h) = help {
        let _ = writeln!(out, "# HELP {name} {h}");
    }
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample, `name{label="value",...} value`, the label values escaped
/// (`\` and `"`).
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    for (i, (k, v)) in labels.iter().enumerate() {
        let v = v.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(out, "{}{k}=\"{v}\"", if i == 0 { '{' } else { ',' });
    }
    if !labels.is_empty() {
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Timings of the live part of an apply (swap, reload, read-back).
#[derive(Debug, Default)]
struct LiveTimings {
    swap_ms: f64,
    reload_ms: f64,
    readback_ms: f64,
    /// Unix ms when the last reload was answered (the new policy is enforced).
    enforced_unix_ms: u64,
    end_unix_ms: u64,
    /// The reload RPCs sent (method per changed table).
    reloaded: Vec<String>,
}

/// The counters a tenant's policy can move, exported as 0 before their
/// first call: Prometheus sees no increase in a series that appears with
/// the value 1. (tenant, outcome, rule) for allowed destination rules
/// (`allow`) and limits (`limit`, `warning` for concurrency warnings and
/// `rated` for rate limits with a warning level),
/// (tenant, "country", XX) for `dst:country:XX` allow rules, and
/// `(tenant, "class", "allow::<class>")` for every class of the policy
/// ([`policy_classes`]): the `tg_stat` keys `<t>::<o>::<r>` they count.
pub fn counter_seeds(tenant: &str, p: &CompiledPolicy) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut add = |o: &str, r: &str| {
        out.insert((tenant.to_string(), o.to_string(), r.to_string()));
    };
    for d in &p.destinations {
        if d.action == tollgate_ir::Verdict::Allow {
            add("allow", &d.rule);
            if let Some(cc) = country_of_rule(&d.rule) {
                add("country", cc);
            }
        }
    }
    for l in &p.limits {
        if l.critical.is_some() && l.metric != LimitMetric::Duration {
            add("limit", &l.rule);
        }
        if l.warning.is_some() && l.metric == LimitMetric::Concurrent {
            add("warning", &l.rule);
        }
        if l.warning.is_some() && l.metric == LimitMetric::Rate {
            add("rated", &l.rule);
        }
    }
    for c in policy_classes(p) {
        add("class", &format!("allow::{c}"));
    }
    out
}

/// The classes a tenant's numbers can have: `national` and `international`
/// (every number is one of them) and each class its policy names.
pub fn policy_classes(p: &CompiledPolicy) -> BTreeSet<String> {
    ["national", "international"]
        .iter()
        .map(ToString::to_string)
        .chain(p.classes.iter().map(|c| c.class.clone()))
        .collect()
}

/// The outcomes of a `<t>::class::<outcome>::<class>` counter: the verdicts
/// counted after the class lookup.
pub const CLASS_OUTCOMES: [&str; 4] = ["allow", "deny", "limit", "error"];

/// The (`outcome`, `class`) labels of a `<t>::class::<outcome>::<class>`
/// counter from its `<outcome>::<class>`: the outcome when it is one of
/// [`CLASS_OUTCOMES`] and the class when it is one of `known` (the tenant's
/// [`policy_classes`]), each else `other`.
pub fn class_labels<'a>(rest: &'a str, known: &BTreeSet<String>) -> (&'a str, &'a str) {
    let (o, c) = rest.split_once("::").unwrap_or((rest, ""));
    (
        if CLASS_OUTCOMES.contains(&o) {
            o
        } else {
            "other"
        },
        if known.contains(c) { c } else { "other" },
    )
}

/// The `country` label of a `<t>::country::<CC>` counter: the code when it
/// is two capital letters (what the country tree holds), else `ZZ`.
pub fn country_label(cc: &str) -> &str {
    if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()) {
        cc
    } else {
        kamailio::NO_COUNTRY
    }
}

/// The destination country of a `dst:country:XX` rule id (optionally
/// `@window`): the ISO code when it is two capital letters.
pub fn country_of_rule(rule: &str) -> Option<&str> {
    let cc = rule.strip_prefix("dst:country:")?;
    let cc = cc.split_once('@').map_or(cc, |(c, _)| c);
    (cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase())).then_some(cc)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What an apply checked before any Kamailio is touched.
#[derive(Debug)]
pub struct Prepared {
    /// Every tenant's rows after the change.
    pub cand: BTreeMap<String, TenantRows>,
    /// The composed files.
    pub bundle: Bundle,
    /// What Kamailio must hold afterwards.
    pub expected: Expected,
    /// The policies the trial probes (the changed tenant's).
    pub probes: Vec<CompiledPolicy>,
}

/// The pure part of an apply (steps 1–2 of docs/agent.md): render the
/// tenant's revision (`Some`) or drop the tenant (`None`), compose the
/// fleet's bundle with the blocks in force, run the own checks, and derive
/// the expected read-back. No I/O.
pub fn prepare(
    rows: &BTreeMap<String, TenantRows>,
    blocks: &BTreeMap<String, i64>,
    tenant: &str,
    change: Option<&(String, CompiledPolicy)>,
    now: jiff::Timestamp,
) -> Result<Prepared, ApplyError> {
    let mut cand = rows.clone();
    let mut probes = Vec::new();
    match change {
        Some((rev, policy)) => {
            if policy.tenant != tenant {
                return Err(ApplyError::Rejected(vec![format!(
                    "the policy is for tenant `{}`, not `{tenant}`",
                    policy.tenant
                )]));
            }
            let rows = Kamailio
                .render_tenant(policy, rev, now)
                .map_err(|e| ApplyError::Rejected(vec![e.to_string()]))?;
            cand.insert(tenant.to_string(), rows);
            probes.push(policy.clone());
        }
        None => {
            if cand.remove(tenant).is_none() {
                return Err(ApplyError::NotFound(format!("no tenant `{tenant}`")));
            }
        }
    }
    let bundle = compose(&cand, blocks).map_err(ApplyError::Rejected)?;
    let names: BTreeSet<String> = cand.keys().cloned().collect();
    let errs = check_bundle(&bundle, &names);
    if !errs.is_empty() {
        return Err(ApplyError::Rejected(errs));
    }
    let expected = Expected::of(&cand);
    Ok(Prepared {
        cand,
        bundle,
        expected,
        probes,
    })
}

/// Every tenant's rows with its blocks in force, composed.
fn compose(
    rows: &BTreeMap<String, TenantRows>,
    blocks: &BTreeMap<String, i64>,
) -> Result<Bundle, Vec<String>> {
    let now = jiff::Timestamp::now().as_second();
    let mut with = rows.clone();
    for (t, r) in with.iter_mut() {
        let mine: Vec<ActiveBlock> = blocks
            .iter()
            .filter(|(_, e)| block_in_force(**e, now))
            .filter_map(|(k, e)| {
                let class = if k == t {
                    None
                } else {
                    Some(k.strip_prefix(&format!("{t}::"))?.to_string())
                };
                Some(ActiveBlock {
                    class,
                    expires: if *e == 0 {
                        None
                    } else {
                        jiff::Timestamp::from_second(*e).ok()
                    },
                })
            })
            .collect();
        Kamailio::set_blocks(r, &mine).map_err(|e| vec![e.to_string()])?;
    }
    Kamailio.compose(&with).map_err(|e| vec![e.to_string()])
}

#[cfg(test)]
mod tests {
    use super::{Base, Inner, country_label, country_of_rule};
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn a_stage_goes_stale_with_the_blocks_in_force() {
        let mut inner = Inner {
            bundle_hash: "h1".into(),
            ..Inner::default()
        };
        inner.state.blocks.insert("acme".into(), 0);
        inner.state.blocks.insert("globex".into(), 1_000);
        let at_stage = Base::of(&inner, 900);
        assert_eq!(at_stage, Base::of(&inner, 999), "nothing changed");
        assert_ne!(at_stage, Base::of(&inner, 1_000), "globex's block ran out");
        assert!(at_stage.in_force.contains("acme") && at_stage.in_force.contains("globex"));
        let mut other = Inner {
            bundle_hash: "h2".into(),
            ..Inner::default()
        };
        other.state.blocks = inner.state.blocks.clone();
        assert_ne!(at_stage, Base::of(&other, 900), "another bundle applied");
        other.bundle_hash = "h1".into();
        other.state.blocks.insert("initech".into(), 0);
        assert_ne!(at_stage, Base::of(&other, 900), "a block set");
        other.state.blocks.remove("initech");
        other.state.blocks.insert("globex".into(), 2_000);
        assert_ne!(at_stage, Base::of(&other, 900), "a block's expiry moved");
    }

    #[test]
    fn country_labels() {
        assert_eq!(country_label("FR"), "FR");
        assert_eq!(country_label("ZZ"), "ZZ");
        for bad in ["", "fr", "FRA", "F", "F1", "\"\"", "É"] {
            assert_eq!(country_label(bad), "ZZ", "{bad}");
        }
    }

    #[test]
    fn class_counter_labels() {
        let known: BTreeSet<String> = ["national", "international", "premium-rate"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let l = |r| super::class_labels(r, &known);
        assert_eq!(l("allow::national"), ("allow", "national"));
        assert_eq!(l("deny::premium-rate"), ("deny", "premium-rate"));
        assert_eq!(l("limit::international"), ("limit", "international"));
        assert_eq!(l("error::national"), ("error", "national"));
        // not a verdict counted per class, or no outcome at all
        assert_eq!(l("warning::national"), ("other", "national"));
        assert_eq!(l("national"), ("other", "other"));
        assert_eq!(l(""), ("other", "other"));
        // a class the policy does not name (e.g. dropped by a new revision)
        assert_eq!(l("allow::shared-cost"), ("allow", "other"));
        assert_eq!(l("allow::"), ("allow", "other"));
        assert_eq!(l("allow::national::x"), ("allow", "other"));
        assert_eq!(l("ALLOW::National"), ("other", "other"));
    }

    #[test]
    fn stat_entries_by_family() {
        use serde_json::json;
        let tenants = vec!["acme".to_string(), "globex".to_string()];
        let rules: BTreeSet<String> = ["dst:national", "src:unknown", "limit:rate"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let set = |v: &[&str]| v.iter().map(ToString::to_string).collect::<BTreeSet<_>>();
        let classes: BTreeMap<String, BTreeSet<String>> = [
            (
                "acme".to_string(),
                set(&["national", "international", "premium-rate"]),
            ),
            ("globex".to_string(), set(&["national", "international"])),
        ]
        .into_iter()
        .collect();
        let labels = super::StatLabels {
            tenants: &tenants,
            rules: &rules,
            classes: &classes,
        };
        let entries: Vec<(String, serde_json::Value)> = [
            ("acme::allow::dst:national", json!(5)),
            ("_::deny::src:unknown", json!(2)),
            ("acme::country::US", json!(4)),
            ("acme::rated::limit:rate", json!(3)),
            ("acme::class::allow::national", json!(5)),
            ("acme::class::deny::national", json!(1)),
            ("acme::class::deny::premium-rate", json!("1")),
            // not a class of acme's policy / not an outcome counted per
            // class: labelled other, never a calls_total row
            ("acme::class::deny::shared-cost", json!(6)),
            ("acme::class::deny::old-class", json!(1)),
            ("acme::class::bogus::national", json!(7)),
            // premium-rate is not a class of globex's policy
            ("globex::class::limit::premium-rate", json!(2)),
            // a tenant that is not applied (any more): dropped
            ("initech::class::allow::national", json!(9)),
            ("initech::allow::dst:national", json!(1)),
            ("acme::class", json!(1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let seeds: Vec<(String, String, String)> = [
            ("acme", "allow", "dst:national"),
            ("acme", "class", "allow::national"),
            ("acme", "class", "allow::international"),
            ("globex", "class", "allow::national"),
            ("initech", "class", "allow::national"),
        ]
        .iter()
        .map(|(t, o, r)| (t.to_string(), o.to_string(), r.to_string()))
        .collect();
        let got = super::stat_counters(&entries, &seeds, &labels);
        let tri = |m: &BTreeMap<(String, String, String), u64>| {
            m.iter()
                .map(|((a, b, c), n)| format!("{a} {b} {c} {n}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            tri(&got.by_class),
            [
                "acme international allow 0",
                "acme national allow 5",
                "acme national deny 1",
                "acme national other 7",
                "acme other deny 7",
                "acme premium-rate deny 1",
                "globex national allow 0",
                "globex other limit 2",
            ]
        );
        assert_eq!(
            tri(&got.calls),
            [
                "_ deny src:unknown 2",
                "acme allow dst:national 5",
                "other allow dst:national 1",
            ],
            "no class entry is a call of an outcome `class` or `other`"
        );
        let pair = |m: &BTreeMap<(String, String), u64>| {
            m.iter()
                .map(|((a, b), n)| format!("{a} {b} {n}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(pair(&got.by_country), ["acme US 4"]);
        assert_eq!(pair(&got.rated), ["acme limit:rate 3"]);
    }

    /// acme (US) with nothing in it.
    fn empty_policy() -> tollgate_ir::CompiledPolicy {
        serde_json::from_value(serde_json::json!({
            "tenant": "acme", "homeCountry": "US", "numberingPlan": "", "emergencyNumbers": ["911"],
            "destinations": [], "classes": [], "sources": {"networks": []}, "windows": [],
            "limits": [], "responses": [], "crypto": {"requireTls": false, "requireSrtp": false,
            "requireClientCertificate": false}, "rules": []
        }))
        .unwrap()
    }

    #[test]
    fn classes_of_a_policy() {
        let mut p = empty_policy();
        fn names(p: &tollgate_ir::CompiledPolicy) -> Vec<String> {
            crate::agent::policy_classes(p).into_iter().collect()
        }
        assert_eq!(names(&p), ["international", "national"]);
        for (prefix, class) in [
            ("1900", "premium-rate"),
            ("1976", "premium-rate"),
            ("44", "national"),
        ] {
            p.classes.push(tollgate_ir::ClassPrefix {
                prefix: prefix.into(),
                class: class.into(),
            });
        }
        assert_eq!(names(&p), ["international", "national", "premium-rate"]);
    }

    #[test]
    fn metric_text_lines() {
        let mut out = String::new();
        super::family(&mut out, "m_total", "counter", Some("Calls."));
        super::sample(
            &mut out,
            "m_total",
            &[("tenant", "a\"b\\c"), ("rule", "r")],
            3,
        );
        super::family(&mut out, "u", "gauge", None);
        super::sample(&mut out, "u", &[], 0.5);
        assert_eq!(
            out,
            "# HELP m_total Calls.\n# TYPE m_total counter\nm_total{tenant=\"a\\\"b\\\\c\",rule=\"r\"} 3\n# TYPE u gauge\nu 0.5\n"
        );
    }

    #[test]
    fn countries_of_rules() {
        assert_eq!(country_of_rule("dst:country:FR"), Some("FR"));
        assert_eq!(country_of_rule("dst:country:US@trading"), Some("US"));
        assert_eq!(country_of_rule("dst:country:fr"), None);
        assert_eq!(country_of_rule("dst:country:FRA"), None);
        assert_eq!(country_of_rule("dst:prefix:33"), None);
        assert_eq!(country_of_rule("dst:country:"), None);
    }

    #[test]
    fn seeds() {
        use tollgate_ir::{DestinationRule, Limit, LimitMetric, Verdict};
        let mut p = empty_policy();
        for (prefix, action, rule) in [
            ("1", Verdict::Allow, "dst:national"),
            ("1416", Verdict::Allow, "dst:country:CA"),
            ("1212976", Verdict::Deny, "dst:prefix:1212976"),
        ] {
            p.destinations.push(DestinationRule {
                prefix: prefix.into(),
                action,
                rule: rule.into(),
                window: None,
            });
        }
        for (metric, warning, critical, rule) in [
            (
                LimitMetric::Concurrent,
                Some(2),
                Some(3),
                "limit:concurrent",
            ),
            (LimitMetric::Rate, Some(4), None, "limit:rate"),
            (LimitMetric::Duration, None, Some(60), "limit:duration"),
        ] {
            p.limits.push(Limit {
                metric,
                class: None,
                warning,
                critical,
                rule: rule.into(),
            });
        }
        p.classes.push(tollgate_ir::ClassPrefix {
            prefix: "1900".into(),
            class: "premium-rate".into(),
        });
        let got: Vec<String> = super::counter_seeds("acme", &p)
            .into_iter()
            .map(|(_, o, r)| format!("{o} {r}"))
            .collect();
        assert_eq!(
            got,
            [
                "allow dst:country:CA",
                "allow dst:national",
                "class allow::international",
                "class allow::national",
                "class allow::premium-rate",
                "country CA",
                "limit limit:concurrent",
                "rated limit:rate",
                "warning limit:concurrent"
            ]
        );
    }
}
