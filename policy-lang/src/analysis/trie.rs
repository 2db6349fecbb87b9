//! The prefix trie of the destination table and when each prefix allows.
//!
//! The prefix table is a trie; every node (a prefix with entries) gets its
//! decision function: the set of atoms in which a number decided at that node
//! is allowed (its entries in evaluation order, falling through to the parent
//! node where none applies). A number whose digits are exactly a node's prefix
//! is decided at that node, so every node's decision is observable.

use super::atoms::{Clock, Times};
use std::collections::{BTreeSet, HashMap};
use tollgate_ir::{DestinationRule, Verdict};

/// One prefix of the destination table with its entries in evaluation order.
pub(super) struct Node<'a> {
    pub(super) prefix: &'a str,
    pub(super) entries: Vec<&'a DestinationRule>,
    /// The nearest shorter prefix with entries.
    pub(super) parent: Option<usize>,
    /// When a number decided here is allowed.
    pub(super) allow: Times,
}

pub(super) struct Table<'a> {
    /// Sorted by prefix: a node's descendants follow it contiguously.
    pub(super) nodes: Vec<Node<'a>>,
    pub(super) by_prefix: HashMap<&'a str, usize>,
    /// `allowing[i]`: how many of `nodes[..i]` allow at some time.
    pub(super) allowing: Vec<usize>,
}

impl<'a> Table<'a> {
    pub(super) fn new(dests: &'a [DestinationRule], clock: &Clock) -> Table<'a> {
        let mut order: Vec<&DestinationRule> = dests.iter().collect();
        order.sort_by(|a, b| a.prefix.cmp(&b.prefix)); // stable: keeps evaluation order
        let mut nodes: Vec<Node<'a>> = Vec::new();
        let mut by_prefix = HashMap::with_capacity(order.len());
        let mut stack: Vec<usize> = Vec::new();
        for e in order {
            if let Some(last) = nodes.last_mut()
                && last.prefix == e.prefix
            {
                last.entries.push(e);
                continue;
            }
            while let Some(&top) = stack.last() {
                if e.prefix.starts_with(nodes[top].prefix) {
                    break;
                }
                stack.pop();
            }
            by_prefix.insert(e.prefix.as_str(), nodes.len());
            stack.push(nodes.len());
            nodes.push(Node {
                prefix: &e.prefix,
                entries: vec![e],
                parent: stack.len().checked_sub(2).map(|i| stack[i]),
                allow: Times::empty(clock.atoms),
            });
        }
        for i in 0..nodes.len() {
            let fallback = match nodes[i].parent {
                Some(p) => nodes[p].allow.clone(),
                None => Times::empty(clock.atoms),
            };
            nodes[i].allow = eval(clock, nodes[i].entries.iter().copied(), &fallback);
        }
        let mut allowing = Vec::with_capacity(nodes.len() + 1);
        allowing.push(0);
        for n in &nodes {
            let last = allowing.last().copied().unwrap_or(0);
            allowing.push(last + usize::from(!n.allow.is_empty()));
        }
        Table {
            nodes,
            by_prefix,
            allowing,
        }
    }

    /// The node deciding a number that starts with `prefix` and with no longer entry.
    pub(super) fn deepest(&self, prefix: &str) -> Option<usize> {
        (0..=prefix.len())
            .rev()
            .find_map(|len| self.by_prefix.get(prefix.get(..len)?).copied())
    }

    /// The nodes at or under `prefix`.
    pub(super) fn under(&self, prefix: &str) -> std::ops::Range<usize> {
        let lo = self.nodes.partition_point(|n| n.prefix < prefix);
        let hi = self
            .nodes
            .partition_point(|n| n.prefix < prefix || n.prefix.starts_with(prefix));
        lo..hi
    }

    pub(super) fn fallback(&self, node: usize, clock: &Clock) -> Times {
        match self.nodes[node].parent {
            Some(p) => self.nodes[p].allow.clone(),
            None => Times::empty(clock.atoms),
        }
    }

    /// Whether some number starting with `prefix` is allowed at some time.
    pub(super) fn ever_allows_under(&self, prefix: &str) -> bool {
        let decided_above = self
            .deepest(prefix)
            .is_some_and(|n| !self.nodes[n].allow.is_empty());
        let r = self.under(prefix);
        decided_above || self.allowing[r.end] > self.allowing[r.start]
    }

    /// The rules deciding `atoms` for a number decided at `node` with
    /// `entries` in place of the node's own (falling through to its parents).
    pub(super) fn deciders(
        &self,
        clock: &Clock,
        node: usize,
        entries: &[&'a DestinationRule],
        mut atoms: Times,
        out: &mut BTreeSet<&'a str>,
    ) {
        for e in entries {
            let hit = clock.when(e.window.as_ref()).and(&atoms);
            if !hit.is_empty() {
                out.insert(&e.rule);
                atoms = atoms.minus(&hit);
            }
        }
        let mut at = self.nodes[node].parent;
        while let Some(p) = at {
            if atoms.is_empty() {
                return;
            }
            for e in &self.nodes[p].entries {
                let hit = clock.when(e.window.as_ref()).and(&atoms);
                if !hit.is_empty() {
                    out.insert(&e.rule);
                    atoms = atoms.minus(&hit);
                }
            }
            at = self.nodes[p].parent;
        }
    }
}

/// The atoms in which a number decided by `entries` (in order, falling back
/// to `fallback`) is allowed.
pub(super) fn eval<'e>(
    clock: &Clock,
    entries: impl IntoIterator<Item = &'e DestinationRule>,
    fallback: &Times,
) -> Times {
    let mut left = clock.all();
    let mut allow = Times::empty(clock.atoms);
    for e in entries {
        let hit = clock.when(e.window.as_ref()).and(&left);
        if e.action == Verdict::Allow {
            allow.union_with(&hit);
        }
        left = left.minus(&hit);
    }
    allow.union_with(&fallback.and(&left));
    allow
}
