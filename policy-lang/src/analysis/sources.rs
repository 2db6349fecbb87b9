//! `analysis::source-overlap`: a source network inside another one with
//! the opposite action (the longest match wins).

use super::context::Cx;
use crate::diag::{Code, Diagnostic};
use ipnet::IpNet;
use tollgate_ir::{SourceNetwork, Verdict};

impl<'a> Cx<'a> {
    pub(super) fn source_overlaps(&self, out: &mut Vec<Diagnostic>) {
        let mut nets: Vec<(IpNet, &SourceNetwork)> = self
            .input
            .policy
            .sources
            .networks
            .iter()
            .filter_map(|n| n.cidr.parse::<IpNet>().ok().map(|net| (net, n)))
            .collect();
        nets.sort_by(|a, b| {
            let fam = |n: &IpNet| matches!(n, IpNet::V6(_));
            (fam(&a.0), a.0.network(), a.0.prefix_len()).cmp(&(
                fam(&b.0),
                b.0.network(),
                b.0.prefix_len(),
            ))
        });
        let mut stack: Vec<usize> = Vec::new();
        for i in 0..nets.len() {
            while let Some(&top) = stack.last() {
                if nets[top].0.contains(&nets[i].0) && nets[top].0 != nets[i].0 {
                    break;
                }
                stack.pop();
            }
            if let Some(&outer) = stack.last()
                && let Some(d) = self.overlap(nets[outer], nets[i])
            {
                out.push(d);
            }
            stack.push(i);
        }
    }

    pub(super) fn overlap(
        &self,
        (outer_net, outer): (IpNet, &SourceNetwork),
        (inner_net, inner): (IpNet, &SourceNetwork),
    ) -> Option<Diagnostic> {
        if outer.action == inner.action {
            return None;
        }
        let in_root = |r: &str| self.in_root(r);
        let same_file = self.input.declared_at.get(&outer.rule).map(|d| d.0)
            == self.input.declared_at.get(&inner.rule).map(|d| d.0);
        // A deny carved out of an allowed network in the same file only
        // tightens what the author sees: a deliberate exclusion.
        if inner.action == Verdict::Deny && same_file {
            return None;
        }
        let (here, other) = match (in_root(&inner.rule), in_root(&outer.rule)) {
            (Some(s), _) => (s, &outer.rule),
            (None, Some(s)) => (s, &inner.rule),
            (None, None) => return None,
        };
        let what = |n: &SourceNetwork| match (&n.trunk, n.action) {
            (Some(t), _) => format!("trunk `{t}`"),
            (None, Verdict::Allow) => "allowed".to_string(),
            (None, Verdict::Deny) => "denied".to_string(),
        };
        let (message, effect) = if inner.action == Verdict::Deny {
            (
                format!(
                    "network `{inner_net}` is denied inside `{outer_net}` ({})",
                    what(outer)
                ),
                format!(
                    "sources in `{inner_net}` are rejected, the rest of `{outer_net}` is accepted"
                ),
            )
        } else {
            (
                format!(
                    "network `{inner_net}` ({}) opens a hole in the denied network `{outer_net}`",
                    what(inner)
                ),
                format!(
                    "sources in `{inner_net}` are accepted, the rest of `{outer_net}` is rejected"
                ),
            )
        };
        let diag = Diagnostic::warning(Code::AnalysisSourceOverlap, self.input.root, here, message)
            .with_label("overlaps a network with the opposite action")
            .with_help(format!(
                "the longest match wins: {effect}; if that is not what you meant, change or remove one of the rules"
            ));
        Some(self.also_at(diag, other, "the other network"))
    }
}
