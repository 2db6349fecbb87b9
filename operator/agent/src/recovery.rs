//! Keeping Kamailio on the applied state: the background consistency
//! check and repair, and the daily re-render that keeps time windows from
//! running out.

use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::kamailio::{SHARDS, shard_table};

use crate::agent::Agent;
use crate::error::AgentError;
use crate::prepare::compose_all;
use crate::rows::Expected;
use crate::trial;

/// Shards the background check reads per tick: a whole pass over an SBC
/// takes `SHARDS / CHECK_SHARDS` ticks (256, about 21 minutes at the
/// default 5 s), each tick costing a live view of each tenant of those
/// shards (1/256 of the SBC's tenants) plus its small tables.
pub const CHECK_SHARDS: u32 = 4;

impl Agent {
    /// Recovery, one tick of the background consistency check: Kamailio
    /// answers; the live files equal the applied state's (the small tables
    /// every tick, the shards [`CHECK_SHARDS`] at a time); Kamailio holds
    /// the applied state of the tenants of those shards, and each shard
    /// its tenants' rows. Kamailio restarted (its uptime went down), or
    /// any difference: every file written again, every table reloaded,
    /// everything read back. Returns whether a repair was made.
    pub async fn reconcile(&self) -> Result<bool, AgentError> {
        let mut inner = self.inner.lock().await;
        let up = self
            .rpc
            .call("core.uptime", &[])
            .await
            .map_err(AgentError::Rpc)?;
        let uptime = up.get("uptime").and_then(serde_json::Value::as_i64);
        let restarted = match (inner.last_uptime, uptime) {
            (Some(a), Some(b)) => b < a,
            _ => false,
        };
        // the first tick (the agent started) and after a restart of
        // Kamailio: everything is checked at once
        let whole = inner.last_uptime.is_none() || restarted;
        inner.last_uptime = uptime;
        if whole {
            drop(inner);
            let why = match self.full_check().await {
                Ok(()) => {
                    self.inner.lock().await.consistent = Some(Ok(()));
                    return Ok(false);
                }
                Err(AgentError::Rpc(e)) => return Err(AgentError::Rpc(e)),
                Err(e) => e.to_string(),
            };
            let mut inner = self.inner.lock().await;
            tracing::warn!("recovery: {why}; re-applying the last good state");
            return self.repair_logged(&mut inner).await;
        }
        let first = inner.check_next;
        let shards: Vec<u32> = (0..CHECK_SHARDS).map(|i| (first + i) % SHARDS).collect();
        inner.check_next = (first + CHECK_SHARDS) % SHARDS;
        // what to check, under the lock; the reads without it (an apply
        // does not wait for a check), judged only if nothing moved meanwhile
        let generation = inner.generation;
        let mut only: std::collections::BTreeSet<String> = [
            "address",
            "tg_tenant",
            "tg_geo",
            "tg_emerg",
            "tg_limit",
            "tg_window",
            "version",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        only.extend(shards.iter().map(|s| shard_table(*s)));
        let all: Vec<(&String, &tollgate_kamailio::TenantRows)> = inner.rows.iter().collect();
        let bundle =
            tollgate_kamailio::kamailio::Kamailio::compose_placed(&all, &inner.placed, Some(&only))
                .map_err(|e| AgentError::Compose(vec![e.to_string()]))?;
        let mut expected = Expected {
            address: true,
            ..Expected::default()
        };
        for (t, p) in inner
            .placed
            .iter()
            .filter(|(_, p)| shards.contains(&p.shard()))
        {
            expected.add(&inner.rows[t], *p, None);
        }
        for s in &shards {
            let n = inner
                .placed
                .iter()
                .filter(|(_, p)| p.shard() == *s)
                .map(|(t, _)| crate::rows::tree_rows(&inner.rows[t]))
                .sum();
            expected.shard_items.insert(*s, n);
        }
        drop(inner);
        let mut why: Option<String> = self
            .differing_file(&bundle)
            .map(|n| format!("the live data file `{n}` differs from the applied state"));
        if why.is_none() {
            let live = self
                .rpc
                .live_view(&expected)
                .await
                .map_err(AgentError::Rpc)?;
            if let Err(e) = trial::compare_views(&expected, &live) {
                why = Some(e.to_string());
            }
        }
        let mut inner = self.inner.lock().await;
        if inner.generation != generation {
            // an apply, a block or a repair changed the SBC meanwhile
            return Ok(false);
        }
        let Some(why) = why else {
            if first + CHECK_SHARDS >= SHARDS {
                inner.consistent = Some(Ok(()));
            }
            return Ok(false);
        };
        tracing::warn!("recovery: {why}; re-applying the last good state");
        self.repair_logged(&mut inner).await
    }

    /// A repair, counted, its outcome recorded.
    async fn repair_logged(&self, inner: &mut crate::agent::Inner) -> Result<bool, AgentError> {
        match self.repair(inner).await {
            Ok(()) => {
                self.metrics.recoveries.inc();
                inner.last_error = None;
                inner.consistent = Some(Ok(()));
                Ok(true)
            }
            Err(e) => {
                inner.last_error = Some(format!("recovery: {e}"));
                inner.consistent = Some(Err(format!("recovery: {e}")));
                Err(e)
            }
        }
    }

    /// A full check: every file and everything Kamailio holds (O(SBC): for
    /// `GET /v1/state` without a tenant, and tests).
    pub async fn full_check(&self) -> Result<(), AgentError> {
        let inner = self.inner.lock().await;
        let bundle = compose_all(&inner.rows, &inner.placed, &inner.state.blocks)
            .map_err(AgentError::Compose)?;
        if let Some(n) = self.differing_file(&bundle) {
            return Err(AgentError::Inconsistent(format!(
                "the live data file `{n}` differs from the applied state"
            )));
        }
        self.read_all(&inner).await?.map_err(AgentError::NotHeld)
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
                Err(e) => tracing::warn!("window refresh of {t}: {e}"),
            }
        }
        done
    }
}
