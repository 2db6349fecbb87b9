//! Static analysis of a compiled tenant policy: warnings about rules that can
//! never decide, redundant rules and other things that are legal but almost
//! certainly not what the author meant. Runs on the IR (exact prefix tries and
//! interval arithmetic, no solver) after a policy compiled without errors.
//!
//! The analysis works in layers: `week` (a window's open minutes), `atoms`
//! (which windows can be open together), `trie` (the destination table and
//! when each prefix allows), `context` (what every check shares), and one
//! module per family of warnings: `destinations` (`never-decides`,
//! `redundant-rule`), `sources` (`source-overlap`), `windows`
//! (`window-never-open`, `window-always-open`, `unused-window`), `limits`
//! (`limit-never-triggers`) and `premium` (`premium-open`).

mod atoms;
mod context;
mod destinations;
mod limits;
mod premium;
mod sources;
mod trie;
mod week;
mod windows;

pub use week::{DAY, WEEK, WeekSet};

use crate::diag::Diagnostic;
use crate::source::FileId;
use crate::span::Span;
use context::Cx;
use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::{CompiledPolicy, DestinationRule, WindowCondition};

/// What the analysis looks at.
#[derive(Debug)]
pub struct Input<'a> {
    /// The compiled policy.
    pub policy: &'a CompiledPolicy,
    /// The file being checked: warnings are reported only for declarations in it
    /// (a base's rules are judged in the base's own context, not each tenant's).
    pub root: FileId,
    /// Where every rule id of the policy was declared (the item's span).
    pub declared_at: &'a BTreeMap<String, (FileId, Span)>,
    /// Destination rules that lost a (prefix, window) entry to another rule at
    /// the same prefix: rule id → the rule ids that won.
    pub displaced: &'a BTreeMap<String, BTreeSet<String>>,
    /// The files in the order they were applied (imports first, `root` last):
    /// a later file's rules come first among the windowed entries of a prefix.
    pub files: &'a [FileId],
    /// For each (prefix, window condition) entry of `policy.destinations` that
    /// had more than one candidate: the candidate that takes the entry when its
    /// winner is removed.
    pub runner_up: &'a BTreeMap<(String, Option<WindowCondition>), DestinationRule>,
    /// Destination rule ids whose declaration replaced an imported one with the
    /// same id: removing it would bring the imported rule back.
    pub replaced: &'a BTreeSet<String>,
}

/// The warnings for one policy, in no particular order.
pub fn analyze(input: &Input<'_>) -> Vec<Diagnostic> {
    let cx = Cx::new(input);
    let mut out = Vec::new();
    cx.destination_rules(&mut out);
    cx.source_overlaps(&mut out);
    cx.windows(&mut out);
    cx.limits(&mut out);
    cx.premium_open(&mut out);
    out
}

#[cfg(test)]
mod tests;
