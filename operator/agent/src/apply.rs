//! The apply pipeline (docs/agent.md, "Apply pipeline"): checks (steps
//! 1–3), then swap, reload, read back and persist (steps 4–8), restoring
//! the previous state on any failure. One tenant's apply and a batch of
//! tenants' changes run the same pipeline; its cost follows the changed
//! tenants and their shards, not the SBC's size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tollgate_agent_api::{ApplyAnswer, ApplyTimings, BatchAnswer, BatchTenant};
use tollgate_kamailio::kamailio::{COUNTRY_TABLE, DIAL_TABLE, shard_of_table};
use tollgate_kamailio::{Bundle, write};

use crate::agent::{Agent, Base, Checked, Inner};
use crate::error::{AgentError, ApplyError};
use crate::labels::TenantLabels;
use crate::prepare::{Change, Prepared, compose_all, prepare};
use crate::rows::{Expected, view_hash};
use crate::rpc::LiveView;
use crate::state::TenantState;
use crate::trial;

/// What a successful apply did (one tenant or a batch).
#[derive(Debug)]
pub(crate) struct Applied {
    /// tenant → sha256 of what Kamailio holds for it after the apply.
    pub(crate) readback: BTreeMap<String, String>,
    pub(crate) bundle_hash: String,
    pub(crate) probes: usize,
    pub(crate) timings: ApplyTimings,
    pub(crate) live_start_unix_ms: u64,
    pub(crate) enforced_unix_ms: u64,
    pub(crate) live_end_unix_ms: u64,
    pub(crate) reloaded: Vec<String>,
}

impl Agent {
    /// Validates and applies a tenant's revision (`Some`) or removes the
    /// tenant (`None`). Serialized; the previous state stays on any error.
    pub async fn apply(&self, tenant: &str, change: Change) -> Result<ApplyAnswer, ApplyError> {
        let mut inner = self.inner.lock().await;
        let t0 = Instant::now();
        let changes = BTreeMap::from([(tenant.to_string(), change)]);
        let r = self
            .apply_locked(&mut inner, changes, t0)
            .await
            .map(|a| answer_of(&inner, tenant, a));
        self.account(&mut inner, tenant, &r, t0);
        r
    }

    /// Validates and applies several tenants' changes as one batch: one
    /// trial holding every candidate, one write of the files they touch,
    /// one reload per touched shard, one read-back. All or nothing: any
    /// refused candidate refuses the batch (the reasons name the tenants),
    /// and the previous state stays.
    pub async fn apply_batch(
        &self,
        changes: BTreeMap<String, Change>,
    ) -> Result<BatchAnswer, ApplyError> {
        let mut inner = self.inner.lock().await;
        let t0 = Instant::now();
        let names: Vec<String> = changes.keys().cloned().collect();
        let r = self.apply_locked(&mut inner, changes, t0).await;
        let r = r.map(|a| BatchAnswer {
            tenants: names
                .iter()
                .map(|t| {
                    let held = inner.state.tenants.get(t);
                    (
                        t.clone(),
                        BatchTenant {
                            deleted: held.is_none(),
                            revision: held.map(|s| s.revision.clone()),
                            rows_hash: held.map(|s| s.rows_hash.clone()),
                            readback_hash: held.and(a.readback.get(t).cloned()),
                            shard: held.and(inner.placed.get(t)).map(|p| p.shard()),
                        },
                    )
                })
                .collect(),
            bundle_hash: a.bundle_hash,
            probes: a.probes,
            timings_ms: a.timings,
            live_start_unix_ms: a.live_start_unix_ms,
            enforced_unix_ms: a.enforced_unix_ms,
            live_end_unix_ms: a.live_end_unix_ms,
            reloaded: a.reloaded,
        });
        let label = format!("batch of {}", names.len());
        let counted = r.as_ref().map(|_| ()).map_err(Clone::clone);
        self.account_result(&mut inner, &label, &counted, t0);
        r
    }

    /// Counts and logs an apply's (or commit's) outcome.
    pub(crate) fn account<T>(
        &self,
        inner: &mut Inner,
        tenant: &str,
        r: &Result<T, ApplyError>,
        t0: Instant,
    ) {
        let r = r.as_ref().map(|_| ()).map_err(Clone::clone);
        self.account_result(inner, tenant, &r, t0);
    }

    fn account_result(
        &self,
        inner: &mut Inner,
        tenant: &str,
        r: &Result<(), ApplyError>,
        t0: Instant,
    ) {
        if !matches!(r, Err(ApplyError::NotFound(_) | ApplyError::Conflict(_))) {
            self.metrics
                .last_apply_seconds
                .set(t0.elapsed().as_secs_f64());
        }
        match r {
            Ok(()) => {
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
        changes: BTreeMap<String, Change>,
        t0: Instant,
    ) -> Result<Applied, ApplyError> {
        let checked = self.check_locked(inner, &changes, t0).await?;
        self.commit_locked(inner, changes, checked, t0).await
    }

    /// Steps 1–3 of docs/agent.md: everything an apply checks before the
    /// live SBC is touched (render, own checks, the trial and its probes).
    pub(crate) async fn check_locked(
        &self,
        inner: &mut Inner,
        changes: &BTreeMap<String, Change>,
        t0: Instant,
    ) -> Result<Checked, ApplyError> {
        let now = jiff::Timestamp::now();
        let prepared = prepare(inner.current(), changes, inner.next_id, now)?;
        let checks_ms = t0.elapsed().as_secs_f64() * 1e3;
        let report = trial::run(
            &self.cfg.trial,
            &mut inner.warm,
            &prepared.trial,
            &prepared.trial_expected,
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
        changes: BTreeMap<String, Change>,
        checked: Checked,
        t0: Instant,
    ) -> Result<Applied, ApplyError> {
        // any stage of these tenants is superseded; any other stage's
        // checks were made against the state this commit replaces
        for t in changes.keys() {
            inner.staged.remove(t);
        }
        for s in inner.staged.values_mut() {
            s.checked = None;
        }
        let Checked {
            prepared,
            report,
            checks_ms,
            trial_ms,
            at,
            ..
        } = checked;
        let t_live = t0.elapsed();
        let live_start = unix_ms();
        let (readback, live) = match self.swap_live(&prepared).await {
            Ok(rb) => rb,
            Err(e) => {
                // the warm trial holds the candidate now, the live SBC not
                if let Some(w) = inner.warm.take() {
                    w.stop().await;
                }
                let restored = match self.repair(inner).await {
                    Ok(()) => "the previous state was restored".to_string(),
                    Err(e2) => format!("RESTORE FAILED too: {e2}"),
                };
                return Err(ApplyError::Failed(format!("{e}; {restored}")));
            }
        };
        // success: persist the changed tenants
        let mut new_states: BTreeMap<String, Option<TenantState>> = BTreeMap::new();
        for (t, change) in changes {
            let s = change.map(|(rev, policy)| {
                let rows = prepared.cand[&t].as_ref();
                TenantState {
                    revision: rev,
                    policy,
                    rows_hash: rows.map(|r| r.hash()).unwrap_or_default(),
                    tables: rows.map(|r| r.tables.clone()).unwrap_or_default(),
                    networks: rows
                        .map(|r| r.networks.iter().map(ToString::to_string).collect())
                        .unwrap_or_default(),
                    applied_at: at.to_string(),
                    id: prepared.placed[&t].0,
                }
            });
            new_states.insert(t, s);
        }
        if let Err(e) = crate::state::save_tenants(
            &self.cfg.state_dir,
            new_states.iter().map(|(t, s)| (t, s.as_ref())),
        ) {
            // Kamailio holds the new state; the next start re-applies the old
            // one from disk, so say so loudly
            return Err(ApplyError::Failed(e.to_string()));
        }
        let Prepared {
            cand,
            placed,
            live: bundle,
            ..
        } = prepared;
        for (t, s) in new_states {
            match s {
                Some(s) => {
                    inner
                        .tenant_labels
                        .insert(t.clone(), Arc::new(TenantLabels::of(&t, &s)));
                    inner.next_id = inner.next_id.max(s.id + 1);
                    inner.placed.insert(t.clone(), placed[&t]);
                    inner.state.tenants.insert(t, s);
                }
                None => {
                    inner.tenant_labels.remove(&t);
                    inner.placed.remove(&t);
                    inner.state.tenants.remove(&t);
                }
            }
        }
        for (t, r) in cand {
            match r {
                Some(r) => inner.rows.insert(t, r),
                None => inner.rows.remove(&t),
            };
        }
        inner.note_files(bundle.files.iter());
        // `/metrics` derives its labels from the tenants' parts at its next
        // scrape (a pass over every tenant: not on an apply's path)
        inner.labels_stale = true;
        let t_total = t0.elapsed();
        Ok(Applied {
            readback: readback
                .views
                .iter()
                .map(|(t, v)| (t.clone(), view_hash(v)))
                .collect(),
            bundle_hash: inner.bundle_hash.clone(),
            probes: report.probes,
            timings: ApplyTimings {
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
            live_start_unix_ms: live_start,
            enforced_unix_ms: live.enforced_unix_ms,
            live_end_unix_ms: live.end_unix_ms,
            reloaded: live.reloaded,
        })
    }

    /// The live half of an apply: writes the files the change touches
    /// (changed ones only, forward mtimes), reloads the touched shards (and
    /// the fleet-wide trees or `tg_block` if their files changed), sets and
    /// deletes the changed tenants' htable entries, reloads the address
    /// table if it changed (last: a new tenant's sources map to it once its
    /// data is in place; a removed tenant's calls fail closed meanwhile),
    /// then reads the changed tenants back.
    async fn swap_live(&self, p: &Prepared) -> Result<(LiveView, LiveTimings), AgentError> {
        let t0 = Instant::now();
        let written = self.write_files(&p.live)?;
        let swap_ms = t0.elapsed().as_secs_f64() * 1e3;
        let trees: Vec<String> = written
            .iter()
            .filter(|t| {
                shard_of_table(t).is_some()
                    || [COUNTRY_TABLE, DIAL_TABLE, "tg_block"].contains(&t.as_str())
            })
            .cloned()
            .collect();
        let mut reloaded = self
            .rpc
            .reload_tables(&trees, &self.address_slot, Some(&self.metrics))
            .await
            .map_err(AgentError::Rpc)?;
        if !p.htable_ops.is_empty() {
            let n = self
                .rpc
                .htable_ops(&p.htable_ops)
                .await
                .map_err(AgentError::Rpc)?;
            reloaded.push(format!("htable entries ({n})"));
        }
        if written.iter().any(|t| t == "address") {
            reloaded.extend(
                self.rpc
                    .reload_tables(&["address".into()], &self.address_slot, Some(&self.metrics))
                    .await
                    .map_err(AgentError::Rpc)?,
            );
        }
        let enforced_unix_ms = unix_ms();
        let reload_ms = t0.elapsed().as_secs_f64() * 1e3 - swap_ms;
        let t1 = Instant::now();
        let live = self
            .rpc
            .live_view(&p.expected)
            .await
            .map_err(AgentError::Rpc)?;
        trial::compare_views(&p.expected, &live).map_err(AgentError::Readback)?;
        Ok((
            live,
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

    /// Writes `bundle`'s files that differ into the live data dir.
    pub(crate) fn write_files(&self, bundle: &Bundle) -> Result<Vec<String>, AgentError> {
        write::write_bundle(&self.cfg.data_dir, bundle, SystemTime::now()).map_err(|source| {
            AgentError::WriteData {
                dir: self.cfg.data_dir.clone(),
                source,
            }
        })
    }

    /// Puts the live SBC back on the applied state: every file written
    /// again as composed from it, every table reloaded, everything read
    /// back (a full read). The slow path (failed applies, recovery).
    pub(crate) async fn repair(&self, inner: &mut Inner) -> Result<(), AgentError> {
        let bundle = compose_all(&inner.rows, &inner.placed, &inner.state.blocks)
            .map_err(AgentError::Compose)?;
        self.write_files(&bundle)?;
        let tables: Vec<String> = bundle.files.keys().cloned().collect();
        self.rpc
            .reload_tables(&tables, &self.address_slot, Some(&self.metrics))
            .await
            .map_err(AgentError::Rpc)?;
        inner.note_files(bundle.files.iter());
        self.read_all(inner).await?.map_err(AgentError::Readback)
    }

    /// Everything Kamailio holds, read back and compared with the applied
    /// state (a full read: every tenant, every shard's size).
    pub(crate) async fn read_all(
        &self,
        inner: &Inner,
    ) -> Result<Result<(), trial::ViewMismatch>, AgentError> {
        let expected = Expected::full(&inner.rows, &inner.placed);
        let live = self
            .rpc
            .live_view(&expected)
            .await
            .map_err(AgentError::Rpc)?;
        Ok(trial::compare_views(&expected, &live))
    }

    /// The first of `bundle`'s files whose live copy differs (or is
    /// missing).
    pub(crate) fn differing_file<'b>(&self, bundle: &'b Bundle) -> Option<&'b String> {
        bundle.files.iter().find_map(|(n, c)| {
            (!std::fs::read(self.cfg.data_dir.join(n)).is_ok_and(|b| b == c.as_bytes()))
                .then_some(n)
        })
    }
}

/// The answer of a one-tenant apply.
pub(crate) fn answer_of(inner: &Inner, tenant: &str, a: Applied) -> ApplyAnswer {
    let held = inner.state.tenants.get(tenant);
    ApplyAnswer {
        tenant: tenant.to_string(),
        deleted: held.is_none(),
        revision: held.map(|s| s.revision.clone()),
        rows_hash: held.map(|s| s.rows_hash.clone()),
        readback_hash: held.and(a.readback.get(tenant).cloned()),
        bundle_hash: a.bundle_hash,
        probes: a.probes,
        timings_ms: a.timings,
        // wall-clock instants (Unix ms): the live SBC is first touched
        // (swap), holds the new policy (last reload answered), and the
        // read-back of what it holds is done
        live_start_unix_ms: a.live_start_unix_ms,
        enforced_unix_ms: a.enforced_unix_ms,
        live_end_unix_ms: a.live_end_unix_ms,
        reloaded: a.reloaded,
        staged: None,
        revalidated: None,
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
    /// The reloads sent (method per changed table) and the htable entries set.
    pub(crate) reloaded: Vec<String>,
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
