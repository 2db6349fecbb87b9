//! Staged applies (docs/agent.md, "Staged applies"): stage (steps 1–3,
//! the result kept), commit (steps 4–8 with it, or all again when the state
//! moved).

use std::time::Instant;
use tollgate_agent_api::{ApplyAnswer, StageAnswer, StageTimings};
use tollgate_ir::CompiledPolicy;

use crate::agent::{Agent, Base, Staged};
use crate::error::ApplyError;

impl Agent {
    /// The first half of a two-phase apply (docs/agent.md, "Staged
    /// applies"): checks the revision exactly as a PUT does (render, own
    /// checks, trial, probes) without touching the live SBC, and keeps the
    /// result for [`Agent::commit`]. A later stage of the tenant replaces it.
    pub async fn stage(
        &self,
        tenant: &str,
        revision: String,
        policy: CompiledPolicy,
    ) -> Result<StageAnswer, ApplyError> {
        let mut inner = self.inner.lock().await;
        let t0 = Instant::now();
        let changes = std::collections::BTreeMap::from([(
            tenant.to_string(),
            Some((revision.clone(), policy.clone())),
        )]);
        let change = (revision, policy);
        let r = self.check_locked(&mut inner, &changes, t0).await;
        let checked = match r {
            Ok(c) => c,
            Err(e) => {
                if let ApplyError::Rejected(reasons) = &e {
                    self.metrics.applied("rejected");
                    tracing::warn!("{tenant}: stage rejected: {}", reasons.join("; "));
                }
                return Err(e);
            }
        };
        self.metrics.stages.inc();
        let answer = StageAnswer {
            tenant: tenant.to_string(),
            revision: change.0.clone(),
            staged: true,
            // the bundle the trial checked (the candidate and the
            // fleet-wide trees)
            bundle_hash: checked.prepared.trial.hash.clone(),
            probes: checked.report.probes,
            timings_ms: StageTimings {
                checks: checked.checks_ms,
                trial_start: checked.report.start_ms as u64,
                trial_warm: checked.report.warm,
                trial: checked.trial_ms,
                total: t0.elapsed().as_secs_f64() * 1e3,
            },
        };
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
    pub async fn commit(&self, tenant: &str, revision: &str) -> Result<ApplyAnswer, ApplyError> {
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
        let changes = std::collections::BTreeMap::from([(
            tenant.to_string(),
            Some((staged.revision, staged.policy)),
        )]);
        let (r, revalidated) = match staged.checked {
            Some(c) if c.base == current => {
                let c = *c;
                (self.commit_locked(&mut inner, changes, c, t0).await, false)
            }
            _ => (self.apply_locked(&mut inner, changes, t0).await, true),
        };
        let r = r.map(|a| crate::apply::answer_of(&inner, tenant, a));
        self.account(&mut inner, tenant, &r, t0);
        r.map(|answer| ApplyAnswer {
            staged: Some(true),
            revalidated: Some(revalidated),
            ..answer
        })
    }
}
