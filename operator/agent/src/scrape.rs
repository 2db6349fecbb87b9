//! `GET /metrics`: a scrape reads the SBC's figures from Kamailio
//! ([`Scrape`]), stores them in the registry's collector and encodes the
//! registry (`registry`).

use std::sync::Arc;

use tollgate_plumbing::metrics;

use crate::agent::Agent;
use crate::labels::MetricLabels;
use crate::metrics::{StatCounters, StatLabels, stat_counters};
use crate::prepare::block_in_force;
use crate::registry::Scrape;

impl Agent {
    /// Reads the SBC's figures from Kamailio: `tg_stat`, the dialog
    /// profiles' sizes, the windows' state now and fleet-wide counting's
    /// (`tg_fleet`); with the levels of the applied limits and the blocks
    /// in force, from the agent's own state. A figure Kamailio does
    /// not answer is left out (and `up` is 0 when `tg_stat` is unreadable).
    pub(crate) async fn scrape(&self) -> Scrape {
        let now_s = jiff::Timestamp::now().as_second();
        let (labels_of, blocks) = {
            let mut inner = self.inner.lock().await;
            if inner.labels_stale {
                inner.labels = Arc::new(MetricLabels::of(&inner.tenant_labels));
                inner.labels_stale = false;
            }
            let blocks: Vec<(String, String)> = inner
                .state
                .blocks
                .iter()
                .filter(|(_, e)| block_in_force(**e, now_s))
                .map(|(k, _)| match k.split_once("::") {
                    Some((t, c)) => (t.to_string(), c.to_string()),
                    None => (k.clone(), String::new()),
                })
                .collect();
            (Arc::clone(&inner.labels), blocks)
        };
        let MetricLabels {
            tenants,
            known_rules,
            class_limits,
            windows,
            seeds,
            revisions,
            class_names,
            limit_levels,
        } = &*labels_of;
        let labels = StatLabels {
            tenants,
            rules: known_rules,
            classes: class_names,
        };
        let (up, stats) = match self.rpc.htable_entries("tg_stat").await {
            Ok(entries) => (true, stat_counters(&entries, seeds, &labels)),
            Err(_) => (false, StatCounters::default()),
        };
        let mut concurrent = Vec::new();
        for t in tenants {
            if let Ok(v) = self.rpc.call("dlg.profile_get_size", &["tg_t", t]).await {
                concurrent.push((t.clone(), v.as_u64().unwrap_or(0)));
            }
        }
        let mut concurrent_by_class = Vec::new();
        for (t, c) in class_limits {
            let key = format!("{t}::{c}");
            if let Ok(v) = self.rpc.call("dlg.profile_get_size", &["tg_c", &key]).await {
                concurrent_by_class.push((t.clone(), c.clone(), v.as_u64().unwrap_or(0)));
            }
        }
        let now = jiff::Timestamp::now();
        let windows = windows
            .iter()
            .filter_map(|(t, w)| {
                let open = tollgate_policy::window::is_open(w, now).ok()?;
                Some((t.clone(), w.name.clone(), open))
            })
            .collect();
        let fleet = if up { self.fleet_figures().await } else { None };
        Scrape {
            up,
            revisions: revisions.clone(),
            stats,
            concurrent,
            concurrent_by_class,
            windows,
            limit_levels: limit_levels.clone(),
            blocks,
            fleet,
        }
    }

    /// `GET /metrics`: scrapes the SBC, then encodes the registry.
    pub async fn metrics_text(&self) -> String {
        let _one = self.registry.scraping.lock().await;
        let s = self.scrape().await;
        self.registry.sbc.store(s);
        metrics::encode(&self.registry.registry)
    }
}
