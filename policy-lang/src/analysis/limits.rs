//! `analysis::limit-never-triggers`: class limits on calls that are always
//! denied, or that the tenant-wide limit of the same metric always reaches
//! first.

use super::context::{Cx, duration_text};
use crate::diag::{Code, Diagnostic};
use crate::numbering;
use std::collections::HashSet;
use tollgate_ir::{Limit, LimitMetric};

impl<'a> Cx<'a> {
    /// Whether every call to `class` is denied at all times.
    pub(super) fn class_always_denied(&self, class: &str) -> bool {
        let policy = self.input.policy;
        let national: Vec<&str> = policy
            .classes
            .iter()
            .filter(|c| c.class == "national")
            .map(|c| c.prefix.as_str())
            .collect();
        match class {
            "national" => !national.iter().any(|p| self.table.ever_allows_under(p)),
            "international" => {
                let national: HashSet<&str> = national.into_iter().collect();
                let inside_national = |p: &str| (1..=p.len()).any(|l| national.contains(&p[..l]));
                !self
                    .table
                    .nodes
                    .iter()
                    .any(|n| !n.allow.is_empty() && !inside_national(n.prefix))
            }
            _ => match numbering::class(class) {
                Some(c) => !c.prefixes.iter().any(|p| self.table.ever_allows_under(p)),
                None => false,
            },
        }
    }

    pub(super) fn limits(&self, out: &mut Vec<Diagnostic>) {
        let limits = &self.input.policy.limits;
        for l in limits.iter().filter(|l| l.class.is_some()) {
            let class = l.class.as_deref().unwrap_or_default();
            let tenant = limits
                .iter()
                .find(|t| t.metric == l.metric && t.class.is_none());
            if let Some(span) = self.in_root(&l.rule)
                && class != "national"
                && class != "international"
                && self.class_always_denied(class)
            {
                out.push(
                    Diagnostic::warning(
                        Code::AnalysisLimitNeverTriggers,
                        self.input.root,
                        span,
                        format!("limit `{}` can never trigger: every call to `{class}` is denied", l.rule),
                    )
                    .with_help("denied calls are never counted; remove the limit, or allow the class in `destinations` if these calls should be possible"),
                );
                continue;
            }
            if matches!(class, "national" | "international")
                && let Some(span) = self.in_root(&l.rule)
                && self.class_always_denied(class)
            {
                out.push(
                    Diagnostic::warning(
                        Code::AnalysisLimitNeverTriggers,
                        self.input.root,
                        span,
                        format!("limit `{}` can never trigger: every {class} call is denied", l.rule),
                    )
                    .with_help("denied calls are never counted; remove the limit, or allow some of these calls in `destinations`"),
                );
                continue;
            }
            if let Some(t) = tenant
                && let Some(d) = self.shadowed_by_tenant(l, t)
            {
                out.push(d);
            }
        }
    }

    /// A class limit that the tenant-wide limit of the same metric always reaches first.
    pub(super) fn shadowed_by_tenant(&self, l: &Limit, t: &Limit) -> Option<Diagnostic> {
        let unit = if l.metric == LimitMetric::Rate {
            "/min"
        } else {
            ""
        };
        let (here, other) = match (self.in_root(&l.rule), self.in_root(&t.rule)) {
            (Some(s), _) => (s, &t.rule),
            (None, Some(s)) => (s, &l.rule),
            (None, None) => return None,
        };
        let (message, help) = if l.metric == LimitMetric::Duration {
            let (c, m) = (l.critical?, t.critical?);
            if c < m {
                return None;
            }
            (
                format!(
                    "limit `{}` can never trigger: its maximum {} is not below the tenant-wide maximum {}",
                    l.rule,
                    duration_text(c),
                    duration_text(m)
                ),
                format!(
                    "every call is ended at the tenant-wide maximum first; shorten it below {} or remove it",
                    duration_text(m)
                ),
            )
        } else if let (Some(m), Some((level, n))) = (
            t.critical,
            [("warning", l.warning), ("critical", l.critical)]
                .into_iter()
                .filter_map(|(lv, n)| Some((lv, n?)))
                .find(|(_, n)| Some(*n) > t.critical),
        ) {
            (
                format!(
                    "limit `{}` can never trigger: its {level} level {n}{unit} is above the tenant-wide critical level {m}{unit}",
                    l.rule
                ),
                format!(
                    "calls beyond the tenant-wide critical level are rejected, so this class never gets to {n}{unit}; lower it below {m}{unit} or remove it"
                ),
            )
        } else if let Some((level, n, m)) = [
            ("warning", l.warning, t.warning),
            ("critical", l.critical, t.critical),
        ]
        .into_iter()
        .find_map(|(lv, n, m)| match (n, m) {
            (Some(n), Some(m)) if n >= m => Some((lv, n, m)),
            _ => None,
        }) {
            (
                format!(
                    "limit `{}` never triggers before the tenant-wide limit: its {level} level {n}{unit} is not below the tenant-wide {level} level {m}{unit}",
                    l.rule
                ),
                format!(
                    "the tenant-wide limit counts these calls too and reaches {m}{unit} first; lower this level below {m}{unit} or remove it"
                ),
            )
        } else {
            return None;
        };
        let diag = Diagnostic::warning(
            Code::AnalysisLimitNeverTriggers,
            self.input.root,
            here,
            message,
        )
        .with_help(help);
        let what = if other == &t.rule {
            "the tenant-wide limit"
        } else {
            "the class limit"
        };
        Some(self.also_at(diag, other, what))
    }
}
