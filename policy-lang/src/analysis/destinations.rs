//! `analysis::never-decides` and `analysis::redundant-rule`: destination
//! rules of the root file that decide no call, or whose removal changes no
//! decision at any time.

use super::context::{Cx, is_selector_rule};
use super::trie::eval;
use crate::diag::{Code, Diagnostic};
use crate::span::Span;
use std::collections::BTreeSet;
use tollgate_ir::DestinationRule;

impl<'a> Cx<'a> {
    /// `never-decides` and `redundant-rule`.
    pub(super) fn destination_rules(&self, out: &mut Vec<Diagnostic>) {
        // (rule, node) for every entry, sorted: each rule's nodes are found by
        // walking it alongside `declared_at`, which is sorted by rule too (a
        // map of a million rules to their nodes cost more than the analysis)
        let mut nodes_of: Vec<(&str, usize)> =
            Vec::with_capacity(self.input.policy.destinations.len());
        for (i, n) in self.table.nodes.iter().enumerate() {
            nodes_of.extend(n.entries.iter().map(|e| (e.rule.as_str(), i)));
        }
        nodes_of.sort_unstable();
        let mut at = 0;
        for (id, (file, span)) in self.input.declared_at {
            while nodes_of
                .get(at)
                .is_some_and(|(rule, _)| *rule < id.as_str())
            {
                at += 1;
            }
            let first = at;
            while nodes_of
                .get(at)
                .is_some_and(|(rule, _)| *rule == id.as_str())
            {
                at += 1;
            }
            if *file != self.input.root || !is_selector_rule(id) {
                continue;
            }
            let nodes: Vec<usize> = nodes_of[first..at].iter().map(|(_, i)| *i).collect();
            match nodes.as_slice() {
                [] => out.push(self.never_decides(id, *span)),
                nodes => {
                    if let Some(instead) = self.redundant(id, nodes) {
                        let help = if instead.is_empty() {
                            "remove it: its window condition never holds, so it never decides a call".to_string()
                        } else {
                            format!(
                                "remove it; without it {} decide{} the same at all times",
                                self.named(&instead),
                                if instead.len() == 1 { "s" } else { "" }
                            )
                        };
                        let diag = Diagnostic::warning(
                            Code::AnalysisRedundantRule,
                            self.input.root,
                            *span,
                            format!("destination rule `{id}` is redundant: every call it matches gets the same decision without it"),
                        )
                        .with_label("changes no decision")
                        .with_help(help);
                        out.push(self.point_at(
                            diag,
                            instead.iter().copied(),
                            "decides without it",
                        ));
                    }
                }
            }
        }
    }

    pub(super) fn never_decides(&self, id: &str, span: Span) -> Diagnostic {
        let winners: BTreeSet<&str> = self
            .input
            .displaced
            .get(id)
            .map(|w| w.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let help = if winners.is_empty() {
            "remove this rule".to_string()
        } else {
            format!(
                "{} take{} every entry it would make (at the same prefix and window, the later file's rule or the more specific selector wins); remove this rule or change the other",
                self.named(&winners),
                if winners.len() == 1 { "s" } else { "" }
            )
        };
        let diag = Diagnostic::warning(
            Code::AnalysisNeverDecides,
            self.input.root,
            span,
            format!("destination rule `{id}` never decides a call"),
        )
        .with_label("every prefix of this rule is taken by another rule")
        .with_help(help);
        self.point_at(diag, winners.iter().copied(), "decides instead")
    }

    /// When removing the rule (its entries at `nodes`) changes no decision at
    /// any time: the rules that then decide.
    pub(super) fn redundant(&self, id: &str, nodes: &[usize]) -> Option<BTreeSet<&'a str>> {
        if self.input.replaced.contains(id) {
            // removing it brings back the imported rule of the same id, which
            // the IR no longer holds (`override-changes-nothing` is the check for it)
            return None;
        }
        let mut instead = BTreeSet::new();
        for &i in nodes {
            let node = &self.table.nodes[i];
            let mine = node.entries.iter().find(|e| e.rule == id)?;
            let mut entries: Vec<&'a DestinationRule> = node
                .entries
                .iter()
                .copied()
                .filter(|e| e.rule != id)
                .collect();
            if let Some(r) = self
                .input
                .runner_up
                .get(&(node.prefix.to_string(), mine.window.clone()))
            {
                if self.in_root(&r.rule).is_some() {
                    // two rules of this file at one entry: `never-decides`
                    // speaks of the one that lost; removing both would change
                    // decisions, so do not call the winner redundant too
                    return None;
                }
                let key = self.order_key(r);
                let at = entries
                    .iter()
                    .position(|e| self.order_key(e) > key)
                    .unwrap_or(entries.len());
                entries.insert(at, r);
            }
            let fallback = self.table.fallback(i, &self.clock);
            let without = eval(&self.clock, entries.iter().copied(), &fallback);
            if without != node.allow {
                return None;
            }
            // the rule decided where its condition held and nothing earlier applied
            let mut before = self.clock.all();
            for e in &node.entries {
                if e.rule == id {
                    break;
                }
                before = before.minus(&self.clock.when(e.window.as_ref()));
            }
            let atoms = self.clock.when(mine.window.as_ref()).and(&before);
            self.table
                .deciders(&self.clock, i, &entries, atoms, &mut instead);
        }
        Some(instead)
    }
}
