//! `analysis::window-never-open`, `analysis::window-always-open` and
//! `analysis::unused-window`: windows that make their rules' conditions
//! constant, or that no rule uses.

use super::context::{Cx, list, window_of};
use super::week::WeekSet;
use crate::diag::{Code, Diagnostic};
use std::collections::BTreeMap;

impl<'a> Cx<'a> {
    pub(super) fn windows(&self, out: &mut Vec<Diagnostic>) {
        // window → the destination rules naming it (displaced ones included)
        let mut users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for id in self.input.declared_at.keys() {
            if id.starts_with("dst:")
                && let Some(w) = window_of(id)
            {
                users.entry(w).or_default().push(id);
            }
        }
        for w in &self.input.policy.windows {
            let set = WeekSet::of_window(w);
            let used_by = users.get(w.name.as_str()).cloned().unwrap_or_default();
            let state = if set.is_empty() {
                Some((
                    Code::AnalysisWindowNeverOpen,
                    "is never open",
                    "`during` rules on it never apply and `outside` rules always do; give it a period that opens, or remove it",
                ))
            } else if set.is_full() && !used_by.is_empty() {
                Some((
                    Code::AnalysisWindowAlwaysOpen,
                    "is open all week",
                    "`outside` rules on it never apply and `during` rules always do; narrow its periods, or drop the window from those rules",
                ))
            } else {
                None
            };
            match (self.in_root(&w.rule), state) {
                (Some(span), Some((code, what, help))) => {
                    let users: Vec<String> = used_by.iter().map(|u| format!("`{u}`")).collect();
                    let message = if users.is_empty() {
                        format!("window `{}` {what}", w.name)
                    } else {
                        format!("window `{}` {what} (used by {})", w.name, list(&users, 3))
                    };
                    out.push(
                        Diagnostic::warning(code, self.input.root, span, message).with_help(help),
                    );
                }
                (None, Some((code, what, help))) => {
                    for u in &used_by {
                        let Some(span) = self.in_root(u) else {
                            continue;
                        };
                        let diag = Diagnostic::warning(
                            code,
                            self.input.root,
                            span,
                            format!("destination rule `{u}` uses window `{}`, which {what}", w.name),
                        )
                        .with_help(help);
                        out.push(self.also_at(diag, &w.rule, "the window"));
                    }
                }
                (Some(span), None) if used_by.is_empty() => out.push(
                    Diagnostic::warning(
                        Code::AnalysisUnusedWindow,
                        self.input.root,
                        span,
                        format!("window `{}` is not used by any rule", w.name),
                    )
                    .with_help(format!(
                        "use it with `during {0}` or `outside {0}` on a destination rule, or remove it",
                        w.name
                    )),
                ),
                _ => {}
            }
        }
    }
}
