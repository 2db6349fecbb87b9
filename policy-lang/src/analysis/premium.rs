//! `analysis::premium-open`: premium-rate and shared-cost prefixes that a
//! rule of the root file (or its `home`) lets calls through to.

use super::context::{Cx, list, plural};
use crate::diag::{Code, Diagnostic};
use crate::numbering;
use std::collections::{BTreeMap, BTreeSet};

impl<'a> Cx<'a> {
    pub(super) fn premium_open(&self, out: &mut Vec<Diagnostic>) {
        let mut expensive: Vec<&str> = ["premium-rate", "shared-cost"]
            .iter()
            .filter_map(|c| numbering::class(c))
            .flat_map(|c| c.prefixes.iter().map(String::as_str))
            .collect();
        expensive.sort_unstable();
        expensive.dedup();
        // keep the shortest of nested prefixes
        let mut minimal: Vec<&str> = Vec::new();
        for p in expensive {
            if !minimal.last().is_some_and(|m| p.starts_with(m)) {
                minimal.push(p);
            }
        }
        // The national default decides the home country's prefixes, wherever
        // it was written (or left implicit): the tenant's `home` picks them.
        let home_in_root = self.in_root("home").is_some();
        let owner = |r: &'a str| -> Option<&'a str> {
            if self.in_root(r).is_some() {
                Some(r)
            } else if r == "dst:national" && home_in_root {
                Some("home")
            } else {
                None
            }
        };
        // root rule (or `home`) → the allowed expensive prefixes, and whether
        // a longer prefix than the class's decides
        let mut by_rule: BTreeMap<&str, Vec<(&str, bool)>> = BTreeMap::new();
        for p in minimal {
            if !self.table.ever_allows_under(p) {
                continue;
            }
            let mut found: Vec<(&str, bool, BTreeSet<&str>)> = Vec::new();
            if let Some(n) = self.table.deepest(p) {
                let node = &self.table.nodes[n];
                if !node.allow.is_empty() {
                    let mut rules = BTreeSet::new();
                    self.table.deciders(
                        &self.clock,
                        n,
                        &node.entries,
                        node.allow.clone(),
                        &mut rules,
                    );
                    found.push((p, false, rules));
                }
            }
            for i in self.table.under(p) {
                let node = &self.table.nodes[i];
                if node.prefix != p && !node.allow.is_empty() {
                    let mut rules = BTreeSet::new();
                    self.table.deciders(
                        &self.clock,
                        i,
                        &node.entries,
                        node.allow.clone(),
                        &mut rules,
                    );
                    found.push((node.prefix, true, rules));
                }
            }
            for (prefix, longer, rules) in found {
                for o in rules.into_iter().filter_map(owner).collect::<BTreeSet<_>>() {
                    by_rule.entry(o).or_default().push((prefix, longer));
                }
            }
        }
        for (rule, prefixes) in by_rule {
            let Some(span) = self.in_root(rule) else {
                continue;
            };
            let countries: BTreeSet<&str> = prefixes
                .iter()
                .map(|(p, _)| numbering::country_of(p).map_or("non-geographic", |c| c.iso))
                .collect();
            let countries: Vec<String> = countries.iter().map(|c| c.to_string()).collect();
            let shown: Vec<String> = prefixes.iter().map(|(p, _)| format!("`+{p}`")).collect();
            let who = if rule == "home" {
                match self.sources.get("dst:national") {
                    Some(src) if self.input.declared_at.contains_key("dst:national") => format!(
                        "the `national: allow` default ({}:{}:{})",
                        src.file, src.line, src.column
                    ),
                    _ => "the `national` default (allow)".to_string(),
                }
            } else {
                format!("`{rule}`")
            };
            let help = if prefixes.iter().any(|(_, longer)| *longer) {
                format!(
                    "{} decide allow: they lie inside premium-rate or shared-cost prefixes but are longer, so they win over `deny class`; deny them with `deny prefix` unless they must be reachable",
                    list(&shown, 5)
                )
            } else {
                format!(
                    "{} decide allow; unless these numbers must be reachable, add `deny class premium-rate, shared-cost` (class prefixes are longer than a country's, so they win)",
                    list(&shown, 5)
                )
            };
            out.push(
                Diagnostic::warning(
                    Code::AnalysisPremiumOpen,
                    self.input.root,
                    span,
                    format!(
                        "{who} allows calls to {} in {}",
                        plural(
                            prefixes.len(),
                            "premium-rate or shared-cost prefix",
                            "premium-rate or shared-cost prefixes"
                        ),
                        list(&countries, 5)
                    ),
                )
                .with_label("lets expensive numbers through")
                .with_help(help),
            );
        }
    }
}
