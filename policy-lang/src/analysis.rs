//! Static analysis of a compiled tenant policy: warnings about rules that can
//! never decide, redundant rules and other things that are legal but almost
//! certainly not what the author meant. Runs on the IR (exact prefix tries and
//! interval arithmetic, no solver) after a policy compiled without errors.

use crate::diag::Diagnostic;
use crate::source::FileId;
use crate::span::Span;
use std::collections::{BTreeMap, BTreeSet};
use tollgate_crds::policy::CompiledPolicy;

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
}

/// The warnings for one policy, in no particular order.
pub fn analyze(_input: &Input<'_>) -> Vec<Diagnostic> {
    Vec::new()
}
