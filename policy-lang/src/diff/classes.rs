//! Classes: prefixes added to or removed from a number class.

use super::MAX_PREFIXES_SHOWN;
use super::change::{Area, Change};
use super::destinations::show_prefix;
use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::CompiledPolicy;

pub(super) fn classes(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
    fn by_class(p: &CompiledPolicy) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut m: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for c in &p.classes {
            m.entry(c.class.as_str())
                .or_default()
                .insert(c.prefix.as_str());
        }
        m
    }
    let (oc, nc) = (by_class(old), by_class(new));
    for (class, n) in &nc {
        let Some(o) = oc.get(class) else { continue };
        let list = |v: Vec<&&str>| {
            let shown: Vec<String> = v
                .iter()
                .take(MAX_PREFIXES_SHOWN)
                .map(|p| show_prefix(p))
                .collect();
            if v.len() > MAX_PREFIXES_SHOWN {
                format!(
                    "{} and {} more",
                    shown.join(", "),
                    v.len() - MAX_PREFIXES_SHOWN
                )
            } else {
                shown.join(", ")
            }
        };
        let added: Vec<&&str> = n.difference(o).collect();
        let removed: Vec<&&str> = o.difference(n).collect();
        if !removed.is_empty() {
            out.push(Change::new(
                Area::Classes,
                format!(
                    "class `{class}` no longer covers {} (its limits and responses count fewer calls)",
                    list(removed)
                ),
                true,
                false,
            ));
        }
        if !added.is_empty() {
            out.push(Change::new(
                Area::Classes,
                format!("class `{class}` now also covers {}", list(added)),
                false,
                true,
            ));
        }
    }
}
