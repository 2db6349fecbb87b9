//! The apply pipeline (docs/agent.md, "Apply pipeline"): checks (steps
//! 1–3), then swap, reload, read back and persist (steps 4–8), restoring
//! the previous state on any failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tollgate_agent_api::{ApplyAnswer, ApplyTimings};
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::{Bundle, TenantRows, write};

use crate::agent::{Agent, Base, Checked, Inner};
use crate::error::{AgentError, ApplyError};
use crate::labels::MetricLabels;
use crate::prepare::{Prepared, compose, prepare};
use crate::rows::{Expected, view_hash};
use crate::state::TenantState;
use crate::trial;

impl Agent {
    /// Validates and applies a tenant's revision (`Some`) or removes the
    /// tenant (`None`). Serialized; the previous state stays on any error.
    pub async fn apply(
        &self,
        tenant: &str,
        change: Option<(String, CompiledPolicy)>,
    ) -> Result<ApplyAnswer, ApplyError> {
        let mut inner = self.inner.lock().await;
        let t0 = Instant::now();
        let r = self.apply_locked(&mut inner, tenant, change, t0).await;
        self.account(&mut inner, tenant, &r, t0);
        r
    }

    /// Counts and logs an apply's (or commit's) outcome.
    pub(crate) fn account(
        &self,
        inner: &mut Inner,
        tenant: &str,
        r: &Result<ApplyAnswer, ApplyError>,
        t0: Instant,
    ) {
        if !matches!(r, Err(ApplyError::NotFound(_) | ApplyError::Conflict(_))) {
            self.metrics
                .last_apply_seconds
                .set(t0.elapsed().as_secs_f64());
        }
        match r {
            Ok(_) => {
                self.metrics.applied("ok");
                inner.last_error = None;
            }
            Err(ApplyError::Rejected(e)) => {
                self.metrics.applied("rejected");
                tracing::warn!("{tenant}: rejected: {}", e.join("; "));
            }
            Err(ApplyError::Failed(e)) => {
                self.metrics.applied("failed");
                inner.last_error = Some(e.clone());
                tracing::error!("{tenant}: FAILED: {e}");
            }
            Err(ApplyError::NotFound(_) | ApplyError::Conflict(_)) => {}
        }
    }

    pub(crate) async fn apply_locked(
        &self,
        inner: &mut Inner,
        tenant: &str,
        change: Option<(String, CompiledPolicy)>,
        t0: Instant,
    ) -> Result<ApplyAnswer, ApplyError> {
        let checked = self
            .check_locked(inner, tenant, change.as_ref(), t0)
            .await?;
        self.commit_locked(inner, tenant, change, checked, t0).await
    }

    /// Steps 1–3 of docs/agent.md: everything an apply checks before the
    /// live SBC is touched (render, own checks, the trial and its probes).
    pub(crate) async fn check_locked(
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
        .map_err(|e| ApplyError::Rejected(vec![e.to_string()]))?;
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
    pub(crate) async fn commit_locked(
        &self,
        inner: &mut Inner,
        tenant: &str,
        change: Option<(String, CompiledPolicy)>,
        checked: Checked,
        t0: Instant,
    ) -> Result<ApplyAnswer, ApplyError> {
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
            return Err(ApplyError::Failed(e.to_string()));
        }
        match new {
            Some(s) => inner.state.tenants.insert(key, s),
            None => inner.state.tenants.remove(&key),
        };
        inner.rows = cand;
        inner.bundle_hash = bundle.hash.clone();
        inner.labels = Arc::new(MetricLabels::of(&inner.state, &inner.rows));
        let t_total = t0.elapsed();
        let held = inner.state.tenants.get(tenant);
        Ok(ApplyAnswer {
            tenant: tenant.to_string(),
            deleted: deleting,
            revision: held.map(|s| s.revision.clone()),
            rows_hash: held.map(|s| s.rows_hash.clone()),
            readback_hash: readback.get(tenant).cloned(),
            bundle_hash: bundle.hash,
            probes: report.probes,
            timings_ms: ApplyTimings {
                checks: checks_ms,
                trial_start: report.start_ms as u64,
                trial_warm: report.warm,
                trial: trial_ms,
                swap: live.swap_ms,
                reload: live.reload_ms,
                readback: live.readback_ms,
                swap_reload_readback: (t_total - t_live).as_secs_f64() * 1e3,
                total: t_total.as_secs_f64() * 1e3,
            },
            // wall-clock instants (Unix ms): the live SBC is first touched
            // (swap), holds the new policy (last reload answered), and the
            // read-back of what it holds is done
            live_start_unix_ms: live_start,
            enforced_unix_ms: live.enforced_unix_ms,
            live_end_unix_ms: live.end_unix_ms,
            reloaded: live.reloaded,
            staged: None,
            revalidated: None,
        })
    }

    /// Writes the bundle into the live data dir (changed files only, forward
    /// mtimes), reloads the changed tables (all of them with `reload_all`),
    /// reads back; returns the read-back hash per tenant and the timings.
    pub(crate) async fn swap_and_verify(
        &self,
        bundle: &Bundle,
        rows: &BTreeMap<String, TenantRows>,
        expected: &Expected,
        reload_all: bool,
    ) -> Result<(BTreeMap<String, String>, LiveTimings), AgentError> {
        let t0 = Instant::now();
        let written = write::write_bundle(&self.cfg.data_dir, bundle, SystemTime::now()).map_err(
            |source| AgentError::WriteData {
                dir: self.cfg.data_dir.clone(),
                source,
            },
        )?;
        let swap_ms = t0.elapsed().as_secs_f64() * 1e3;
        let tables: Vec<String> = if reload_all {
            bundle.files.keys().cloned().collect()
        } else {
            written
        };
        let reloaded = self
            .rpc
            .reload_tables(&tables, &self.address_slot, Some(&self.metrics))
            .await
            .map_err(AgentError::Rpc)?;
        let enforced_unix_ms = unix_ms();
        let reload_ms = t0.elapsed().as_secs_f64() * 1e3 - swap_ms;
        let t1 = Instant::now();
        let live = self
            .rpc
            .live_view(expected)
            .await
            .map_err(AgentError::Rpc)?;
        trial::compare_views(expected, &live).map_err(AgentError::Readback)?;
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
}

/// Timings of the live part of an apply (swap, reload, read-back).
#[derive(Debug, Default)]
pub(crate) struct LiveTimings {
    pub(crate) swap_ms: f64,
    pub(crate) reload_ms: f64,
    pub(crate) readback_ms: f64,
    /// Unix ms when the last reload was answered (the new policy is enforced).
    pub(crate) enforced_unix_ms: u64,
    pub(crate) end_unix_ms: u64,
    /// The reload RPCs sent (method per changed table).
    pub(crate) reloaded: Vec<String>,
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
