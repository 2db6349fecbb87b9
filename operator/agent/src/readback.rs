//! What the agent reports holding: `GET /v1/state` and `/healthz`.

use std::collections::BTreeSet;
use tollgate_agent_api::{KAMAILIO_REACHABLE, StateAnswer, TenantView};

use crate::agent::Agent;
use crate::error::AgentError;
use crate::rows::{Expected, canonical_rows, view_hash};
use crate::trial;

impl Agent {
    /// The applied state, with what Kamailio holds now; `only`: just that
    /// tenant under `tenants` (the rest of the answer is the same).
    pub async fn state(&self, only: Option<&str>) -> StateAnswer {
        let inner = self.inner.lock().await;
        let live = self.rpc.live_view(&Expected::of(&inner.rows)).await;
        let mut tenants = std::collections::BTreeMap::new();
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
                TenantView {
                    revision: s.revision.clone(),
                    rows_hash: s.rows_hash.clone(),
                    consistent: rendered.is_some() && rendered == readback,
                    rendered_hash: rendered,
                    readback_hash: readback,
                    applied_at: s.applied_at.clone(),
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

    /// Fleet-wide counting's state (`tg_fleet`); `None` when the SBC does
    /// not count over a fleet or Kamailio did not answer.
    pub async fn fleet_figures(&self) -> Option<crate::fleet::FleetFigures> {
        let entries = self.rpc.htable_entries("tg_fleet").await.ok()?;
        crate::fleet::fleet_figures(&entries)
    }

    /// Kamailio answers and holds the applied state.
    pub async fn healthy(&self) -> Result<(), AgentError> {
        let inner = self.inner.lock().await;
        let expected = Expected::of(&inner.rows);
        let live = self
            .rpc
            .live_view(&expected)
            .await
            .map_err(AgentError::Rpc)?;
        trial::compare_views(&expected, &live).map_err(AgentError::NotHeld)
    }
}
