//! What the agent reports holding: `GET /v1/state` and `/healthz`.

use std::collections::BTreeSet;
use tollgate_agent_api::{KAMAILIO_REACHABLE, StateAnswer, TenantView};

use crate::agent::Agent;
use crate::error::AgentError;
use crate::rows::{Expected, canonical_rows, view_hash};

impl Agent {
    /// The applied state, with what Kamailio holds now; `only`: just that
    /// tenant under `tenants` (the rest of the answer is the same).
    pub async fn state(&self, only: Option<&str>) -> StateAnswer {
        let inner = self.inner.lock().await;
        let expected = match only {
            // one tenant: its data and its shard, whatever the SBC holds
            Some(t) => {
                let mut e = Expected::default();
                if let (Some(r), Some(p)) = (inner.rows.get(t), inner.placed.get(t)) {
                    e.add(r, *p, None);
                }
                e
            }
            None => Expected::full(&inner.rows, &inner.placed),
        };
        let live = self.rpc.live_view(&expected).await.map(|l| l.views);
        let mut tenants = std::collections::BTreeMap::new();
        for (t, s) in &inner.state.tenants {
            if only.is_some_and(|o| o != t) {
                continue;
            }
            let rendered = inner.rows.get(t).map(|r| {
                let mut v = canonical_rows(r, inner.placed.get(t).copied(), expected.depth);
                if !expected.address {
                    v.retain(|e| !e.starts_with("address\t"));
                }
                view_hash(&v)
            });
            let readback = live
                .as_ref()
                .ok()
                .map(|l| view_hash(l.get(t).unwrap_or(&BTreeSet::new())));
            tenants.insert(
                t.clone(),
                TenantView {
                    revision: s.revision.clone(),
                    rows_hash: s.rows_hash.clone(),
                    consistent: rendered.is_some() && rendered == readback,
                    rendered_hash: rendered,
                    readback_hash: readback,
                    applied_at: s.applied_at.clone(),
                    shard: inner.placed.get(t).map(|p| p.shard()),
                },
            );
        }
        let extra: Vec<String> = live
            .as_ref()
            .map(|l| {
                l.keys()
                    .filter(|t| !inner.rows.contains_key(*t))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        StateAnswer {
            tenants,
            bundle_hash: inner.bundle_hash.clone(),
            blocks: inner.state.blocks.clone(),
            kamailio: match &live {
                Ok(_) => KAMAILIO_REACHABLE.to_string(),
                Err(e) => e.to_string(),
            },
            unexpected_tenants: extra,
            last_error: inner.last_error.clone(),
        }
    }

    /// Every tenant's revision, from memory (no Kamailio call), and whether
    /// the last consistency check found the live SBC as applied
    /// (`GET /v1/state/summary`). Stale by at most one background check
    /// (docs/agent.md); a client that needs the live read asks
    /// `GET /v1/state?tenant=`.
    pub async fn summary(&self) -> tollgate_agent_api::StateSummary {
        let inner = self.inner.lock().await;
        // Kamailio answers, and has not restarted since the last check
        // (one RPC; a restart is the background check's to repair)
        let up = self
            .rpc
            .call("core.uptime", &[])
            .await
            .ok()
            .and_then(|v| v.get("uptime").and_then(serde_json::Value::as_i64));
        let alive = match (up, inner.last_uptime) {
            (Some(now), Some(seen)) => now >= seen,
            _ => false,
        };
        tollgate_agent_api::StateSummary {
            blocks: inner.state.blocks.clone(),
            consistent: alive && matches!(inner.consistent, Some(Ok(()))),
            last_error: inner.last_error.clone(),
            tenants: inner
                .state
                .tenants
                .iter()
                .map(|(t, s)| (t.clone(), s.revision.clone()))
                .collect(),
        }
    }

    /// Fleet-wide counting's state (`tg_fleet`); `None` when the SBC does
    /// not count over a fleet or Kamailio did not answer.
    pub async fn fleet_figures(&self) -> Option<crate::fleet::FleetFigures> {
        let entries = self.rpc.htable_entries("tg_fleet").await.ok()?;
        crate::fleet::fleet_figures(&entries)
    }

    /// Kamailio answers, has not restarted since the last consistency
    /// check, and that check found the applied state (the background check
    /// reads the SBC a slice at a time, `recovery::CHECK_SHARDS`; a probe
    /// costs one RPC, whatever the SBC holds).
    pub async fn healthy(&self) -> Result<(), AgentError> {
        let inner = self.inner.lock().await;
        let up = self
            .rpc
            .call("core.uptime", &[])
            .await
            .map_err(AgentError::Rpc)?;
        let uptime = up.get("uptime").and_then(serde_json::Value::as_i64);
        if let (Some(a), Some(b)) = (inner.last_uptime, uptime)
            && b < a
        {
            return Err(AgentError::Inconsistent(
                "Kamailio restarted since the last consistency check".into(),
            ));
        }
        match &inner.consistent {
            Some(Err(e)) => Err(AgentError::Inconsistent(e.clone())),
            _ => Ok(()),
        }
    }
}
