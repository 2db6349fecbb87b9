//! The [`Agent`] and its in-memory state ([`Inner`]: the persisted state,
//! the rows as applied, the warm trial instance, the staged revisions).
//! Its operations live in the modules named for them (`apply`, `staging`,
//! `blocks`, `readback`, `recovery`, `scrape`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::TenantRows;
use tollgate_kamailio::kamailio::{FIRST_ID, Placement};

use crate::config::Config;
use crate::error::AgentError;
use crate::labels::MetricLabels;
use crate::metrics::Metrics;
use crate::prepare::{Prepared, block_in_force, compose_all, free_id};
use crate::rpc::{self, Rpc};
use crate::state::{self, Persisted, rows_of};
use crate::trial;

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) state: Persisted,
    pub(crate) rows: BTreeMap<String, TenantRows>,
    /// Each applied tenant's id (shard and key prefix).
    pub(crate) placed: BTreeMap<String, Placement>,
    /// The id the next new tenant gets (or the first free one after it).
    pub(crate) next_id: u64,
    /// sha256 of each live data file as the agent wrote it: the bundle
    /// hash is computed from them, not from every file's bytes.
    pub(crate) file_hashes: BTreeMap<String, [u8; 32]>,
    pub(crate) bundle_hash: String,
    pub(crate) last_error: Option<String>,
    /// The warm trial instance (`TrialConfig::warm`), holding the last
    /// bundle checked.
    pub(crate) warm: Option<trial::Instance>,
    /// Revisions staged and not yet committed, per tenant.
    pub(crate) staged: BTreeMap<String, Staged>,
    /// `/metrics`' labels of the applied policies.
    pub(crate) labels: Arc<MetricLabels>,
    /// The tenants changed since `labels` was derived.
    pub(crate) labels_stale: bool,
    /// Each applied tenant's part of the labels (recomputed for changed
    /// tenants only).
    pub(crate) tenant_labels: BTreeMap<String, Arc<crate::labels::TenantLabels>>,
    /// The background consistency check: the shard it looks at next, and
    /// Kamailio's uptime at the last check (a smaller one is a restart).
    pub(crate) check_next: u32,
    pub(crate) last_uptime: Option<i64>,
    /// The last consistency check found the live SBC as applied.
    pub(crate) consistent: Option<Result<(), String>>,
    /// Bumped by every change the agent makes to the live SBC: a check
    /// that read it without the lock is stale when this moved meanwhile.
    pub(crate) generation: u64,
}

impl Inner {
    /// The SBC as an apply sees it.
    pub(crate) fn current(&self) -> crate::prepare::Current<'_> {
        crate::prepare::Current {
            rows: &self.rows,
            placed: &self.placed,
            blocks: &self.state.blocks,
        }
    }

    /// Records the files written (their new content) and recomputes the
    /// bundle hash from the files' hashes.
    pub(crate) fn note_files<'a>(&mut self, files: impl Iterator<Item = (&'a String, &'a String)>) {
        use sha2::{Digest, Sha256};
        self.generation += 1;
        for (name, content) in files {
            self.file_hashes
                .insert(name.clone(), Sha256::digest(content.as_bytes()).into());
        }
        let mut h = Sha256::new();
        for (name, d) in &self.file_hashes {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(d);
        }
        let d = h.finalize();
        self.bundle_hash = format!(
            "sha256:{}",
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
}

/// A staged revision (`Agent::stage`).
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) revision: String,
    pub(crate) policy: CompiledPolicy,
    /// The checks' result, kept for the newest stage only (it holds every
    /// tenant's rows); without it a commit checks again.
    pub(crate) checked: Option<Box<Checked>>,
}

/// What the checks before the live SBC is touched produced.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The state they were made against.
    pub(crate) base: Base,
    pub(crate) prepared: Prepared,
    pub(crate) report: trial::TrialReport,
    pub(crate) checks_ms: f64,
    pub(crate) trial_ms: f64,
    /// When the revision was rendered (its windows start there).
    pub(crate) at: jiff::Timestamp,
}

/// What a checked bundle depends on besides the changed tenant: the bundle
/// applied, the blocks and which of them are still in force.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Base {
    pub(crate) bundle_hash: String,
    pub(crate) blocks: BTreeMap<String, i64>,
    pub(crate) in_force: BTreeSet<String>,
}

impl Base {
    pub(crate) fn of(inner: &Inner, now: i64) -> Base {
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

/// Writes the empty policy set into `dir` (every table as its header line,
/// `version`), leaving every file that exists alone: what an SBC's data
/// dir needs before Kamailio's first start (`tollgate-agent --init-data
/// DIR`, the SBC pod's init container). Returns the files written.
pub fn init_data_dir(dir: &std::path::Path) -> Result<Vec<String>, AgentError> {
    let bundle = compose_all(&BTreeMap::new(), &BTreeMap::new(), &BTreeMap::new())
        .map_err(AgentError::Compose)?;
    std::fs::create_dir_all(dir).map_err(|source| AgentError::WriteData {
        dir: dir.to_path_buf(),
        source,
    })?;
    let missing: BTreeMap<String, String> = bundle
        .files
        .into_iter()
        .filter(|(n, _)| !dir.join(n).exists())
        .collect();
    let b = tollgate_kamailio::Bundle::new(missing);
    tollgate_kamailio::write::write_bundle(dir, &b, std::time::SystemTime::now()).map_err(
        |source| AgentError::WriteData {
            dir: dir.to_path_buf(),
            source,
        },
    )
}

/// The agent.
#[derive(Debug)]
pub struct Agent {
    pub cfg: Config,
    pub rpc: Rpc,
    pub(crate) inner: tokio::sync::Mutex<Inner>,
    pub metrics: Metrics,
    /// `/metrics`' registry: [`Agent::metrics`] and the SBC's figures.
    pub(crate) registry: crate::registry::AgentRegistry,
    /// The live Kamailio's address reloads.
    pub(crate) address_slot: rpc::AddressSlot,
}

impl Agent {
    /// Loads the persisted state (if any).
    pub fn new(cfg: Config) -> Result<Agent, AgentError> {
        std::fs::create_dir_all(&cfg.state_dir).map_err(|source| AgentError::StateDir {
            dir: cfg.state_dir.clone(),
            source,
        })?;
        std::fs::create_dir_all(&cfg.trial.dir).map_err(AgentError::TrialDir)?;
        trial::clean_leftovers(&cfg.trial.dir);
        let rpc = Rpc::from_url(
            &cfg.rpc_url,
            std::time::Duration::from_secs(cfg.rpc_timeout_secs),
        )
        .map_err(AgentError::Rpc)?;
        let mut inner = Inner {
            state: state::load(&cfg.state_dir)?,
            next_id: FIRST_ID,
            ..Inner::default()
        };
        // a state from before shards: every tenant gets an id, and its own
        // file
        let mut used: BTreeSet<u64> = inner
            .state
            .tenants
            .values()
            .map(|s| s.id)
            .filter(|i| *i != 0)
            .collect();
        let mut migrated = Vec::new();
        for (t, s) in inner.state.tenants.iter_mut() {
            if s.id == 0 {
                s.id = free_id(&used, FIRST_ID).ok_or(AgentError::NoFreeId)?;
                used.insert(s.id);
                migrated.push(t.clone());
            }
        }
        if !migrated.is_empty() {
            state::save_tenants(
                &cfg.state_dir,
                migrated.iter().map(|t| (t, inner.state.tenants.get(t))),
            )?;
            state::save_blocks(&cfg.state_dir, &inner.state.blocks)?;
        }
        for (t, s) in &inner.state.tenants {
            inner.rows.insert(t.clone(), rows_of(t, s)?);
            inner.placed.insert(t.clone(), Placement(s.id));
            inner.next_id = inner.next_id.max(s.id + 1);
            inner
                .tenant_labels
                .insert(t.clone(), Arc::new(crate::labels::TenantLabels::of(t, s)));
        }
        let bundle = compose_all(&inner.rows, &inner.placed, &inner.state.blocks)
            .map_err(AgentError::Compose)?;
        inner.note_files(bundle.files.iter());
        inner.labels = Arc::new(MetricLabels::of(&inner.tenant_labels));
        let metrics = Metrics::default();
        Ok(Agent {
            cfg,
            rpc,
            inner: tokio::sync::Mutex::new(inner),
            registry: crate::registry::AgentRegistry::new(&metrics),
            metrics,
            address_slot: rpc::AddressSlot::default(),
        })
    }

    /// Stops the warm trial instance (before the agent exits).
    pub async fn shutdown(&self) {
        if let Some(w) = self.inner.lock().await.warm.take() {
            w.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
