//! Keeping Kamailio on the applied state: the periodic check and repair,
//! and the daily re-render that keeps time windows from running out.

use tollgate_ir::CompiledPolicy;

use crate::agent::Agent;
use crate::error::AgentError;
use crate::prepare::compose;
use crate::rows::Expected;
use crate::trial;

impl Agent {
    /// Recovery: if the live files or what Kamailio holds differ from the
    /// applied state, rewrite the files and reload every table. Returns
    /// whether a repair was made.
    pub async fn reconcile(&self) -> Result<bool, AgentError> {
        let mut inner = self.inner.lock().await;
        self.rpc
            .call("core.uptime", &[])
            .await
            .map_err(AgentError::Rpc)?;
        let bundle = compose(&inner.rows, &inner.state.blocks).map_err(AgentError::Compose)?;
        let files_ok = bundle.files.iter().all(|(n, c)| {
            std::fs::read(self.cfg.data_dir.join(n)).is_ok_and(|b| b == c.as_bytes())
        });
        let expected = Expected::of(&inner.rows);
        let live = self
            .rpc
            .live_view(&expected)
            .await
            .map_err(AgentError::Rpc)?;
        let held_ok = trial::compare_views(&expected, &live);
        if files_ok && held_ok.is_ok() {
            return Ok(false);
        }
        let why = match held_ok {
            Err(e) => e.to_string(),
            Ok(()) => "the live data files differ from the applied state".into(),
        };
        tracing::warn!("recovery: {why}; re-applying the last good state");
        let rows = inner.rows.clone();
        match self
            .swap_and_verify(&bundle, &rows, &Expected::of(&rows), true)
            .await
        {
            Ok(_) => {
                self.metrics.recoveries.inc();
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
                Err(e) => tracing::warn!("window refresh of {t}: {e}"),
            }
        }
        done
    }
}
