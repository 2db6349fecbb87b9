//! The [`Agent`] and its in-memory state ([`Inner`]: the persisted state,
//! the rows as applied, the warm trial instance, the staged revisions).
//! Its operations live in the modules named for them (`apply`, `staging`,
//! `blocks`, `readback`, `recovery`, `scrape`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::TenantRows;

use crate::config::Config;
use crate::error::AgentError;
use crate::labels::MetricLabels;
use crate::metrics::Metrics;
use crate::prepare::{Prepared, block_in_force, compose};
use crate::rpc::{self, Rpc};
use crate::state::{self, Persisted, TenantState, rows_of};
use crate::trial;

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) state: Persisted,
    pub(crate) rows: BTreeMap<String, TenantRows>,
    pub(crate) bundle_hash: String,
    pub(crate) last_error: Option<String>,
    /// The warm trial instance (`TrialConfig::warm`), holding the last
    /// bundle checked.
    pub(crate) warm: Option<trial::Instance>,
    /// Revisions staged and not yet committed, per tenant.
    pub(crate) staged: BTreeMap<String, Staged>,
    /// `/metrics`' labels of the applied policies.
    pub(crate) labels: Arc<MetricLabels>,
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
            ..Inner::default()
        };
        for (t, s) in &inner.state.tenants {
            inner.rows.insert(t.clone(), rows_of(t, s)?);
        }
        let bundle = compose(&inner.rows, &inner.state.blocks).map_err(AgentError::Compose)?;
        inner.bundle_hash = bundle.hash;
        inner.labels = Arc::new(MetricLabels::of(&inner.state, &inner.rows));
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

    /// Writes the state file (the tenants as given, the blocks) atomically.
    /// Borrowed: a change is persisted before `Inner::state` takes it,
    /// without copying every tenant's policy and rows.
    pub(crate) fn persist<'a>(
        &self,
        tenants: impl Iterator<Item = (&'a String, &'a TenantState)>,
        blocks: &BTreeMap<String, i64>,
    ) -> Result<(), AgentError> {
        state::save(&self.cfg.state_dir, tenants, blocks)
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
