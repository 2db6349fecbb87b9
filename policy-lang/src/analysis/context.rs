//! What every check shares: the policy's time atoms and prefix trie, where
//! each rule was declared, and how a warning points at other rules (a label
//! in the root file, `file:line:col` otherwise); wording helpers.

use super::Input;
use super::atoms::Clock;
use super::trie::Table;
use crate::diag::Diagnostic;
use crate::span::Span;
use std::collections::{BTreeSet, HashMap};
use tollgate_ir::{DestinationRule, RuleSource};

pub(super) struct Cx<'a> {
    pub(super) input: &'a Input<'a>,
    pub(super) clock: Clock,
    pub(super) table: Table<'a>,
    pub(super) sources: HashMap<&'a str, &'a RuleSource>,
}

/// Destination rules written with a selector (not the two defaults).
pub(super) fn is_selector_rule(id: &str) -> bool {
    ["dst:prefix:", "dst:country:", "dst:class:"]
        .iter()
        .any(|p| id.starts_with(p))
}

/// The window a rule id names (`dst:...@office`, `dst:...@outside:office`).
pub(super) fn window_of(id: &str) -> Option<&str> {
    let (_, w) = id.split_once('@')?;
    Some(w.strip_prefix("outside:").unwrap_or(w))
}

/// `a`, `a` and `b`, `a`, `b` and `c`, `a`, `b`, `c` and 2 more.
pub(super) fn list(items: &[String], max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(String::as_str).collect();
    let rest = items.len().saturating_sub(max);
    match (shown.as_slice(), rest) {
        ([], _) => String::new(),
        ([one], 0) => (*one).to_string(),
        (many, 0) => format!(
            "{} and {}",
            many[..many.len() - 1].join(", "),
            many[many.len() - 1]
        ),
        (many, rest) => format!("{} and {rest} more", many.join(", ")),
    }
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

pub(super) fn duration_text(seconds: u64) -> String {
    let mut s = seconds;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

impl<'a> Cx<'a> {
    pub(super) fn new(input: &'a Input<'a>) -> Cx<'a> {
        let p = input.policy;
        let used: BTreeSet<&str> = p
            .destinations
            .iter()
            .filter_map(|d| d.window.as_ref().map(|w| w.name.as_str()))
            .collect();
        let clock = Clock::new(&p.windows, &used);
        let table = Table::new(&p.destinations, &clock);
        let mut sources = HashMap::with_capacity(p.rules.len());
        sources.extend(p.rules.iter().map(|r| (r.id.as_str(), r)));
        Cx {
            input,
            clock,
            table,
            sources,
        }
    }

    pub(super) fn in_root(&self, id: &str) -> Option<Span> {
        match self.input.declared_at.get(id) {
            Some((f, span)) if *f == self.input.root => Some(*span),
            _ => None,
        }
    }

    /// Order of windowed entries within a prefix: later file first, then as written.
    pub(super) fn order_key(&self, e: &DestinationRule) -> (bool, std::cmp::Reverse<usize>, usize) {
        let (precedence, start) = match self.input.declared_at.get(&e.rule) {
            Some((f, span)) if is_selector_rule(&e.rule) => (
                self.input
                    .files
                    .iter()
                    .position(|x| x == f)
                    .map_or(0, |i| i + 1),
                span.start,
            ),
            _ => (0, 0),
        };
        (e.window.is_none(), std::cmp::Reverse(precedence), start)
    }

    /// Labels the places of other rules declared in the root file (labels
    /// cannot cross files: [`Cx::named`] gives the others' positions).
    pub(super) fn point_at<'r>(
        &self,
        mut diag: Diagnostic,
        rules: impl IntoIterator<Item = &'r str>,
        what: &str,
    ) -> Diagnostic {
        for id in rules {
            if let Some(span) = self.in_root(id)
                && span != diag.label.span
            {
                diag = diag.with_related(span, what);
            }
        }
        diag
    }

    /// Points at one other rule: a label in the root file, otherwise its
    /// `file:line:col` at the end of the help.
    pub(super) fn also_at(&self, diag: Diagnostic, id: &str, what: &str) -> Diagnostic {
        if self.in_root(id).is_some() {
            return self.point_at(diag, [id], what);
        }
        let Some(src) = self.sources.get(id) else {
            return diag;
        };
        let place = format!("{what}: {}:{}:{}", src.file, src.line, src.column);
        let help = match diag.help.clone() {
            Some(h) => format!("{h} ({place})"),
            None => place,
        };
        diag.with_help(help)
    }

    /// Rule ids for a message: a rule of another file with its `file:line:col`.
    pub(super) fn named(&self, ids: &BTreeSet<&str>) -> String {
        let names: Vec<String> = ids.iter().map(|id| self.describe(id)).collect();
        list(&names, 3)
    }

    pub(super) fn describe(&self, id: &str) -> String {
        match id {
            "dst:international" if !self.input.declared_at.contains_key(id) => {
                "the `international` default (deny)".into()
            }
            "dst:national" if !self.input.declared_at.contains_key(id) => {
                "the `national` default (allow)".into()
            }
            _ => match self.sources.get(id) {
                Some(src) if self.in_root(id).is_none() => {
                    format!("`{id}` ({}:{}:{})", src.file, src.line, src.column)
                }
                _ => format!("`{id}`"),
            },
        }
    }
}
