//! Tenant and home country: a change of either changes which numbers are
//! national.

use super::change::{Area, Change};
use std::collections::BTreeSet;
use tollgate_ir::CompiledPolicy;

pub(super) fn tenant_and_home(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
    if old.tenant != new.tenant {
        out.push(Change::new(
            Area::Tenant,
            format!("tenant `{}` → `{}`", old.tenant, new.tenant),
            false,
            false,
        ));
    }
    if old.home_country != new.home_country {
        out.push(
            Change::new(
                Area::Home,
                format!(
                    "home country {} → {} (what is national, and the emergency numbers, follow it)",
                    old.home_country, new.home_country
                ),
                false,
                false,
            )
            .rules(&["home"], &["home"]),
        );
    }
    if old.numbering_plan != new.numbering_plan {
        out.push(Change::new(
            Area::Home,
            format!(
                "numbering data `{}` → `{}`",
                old.numbering_plan, new.numbering_plan
            ),
            false,
            false,
        ));
    }
    let o: BTreeSet<&str> = old.emergency_numbers.iter().map(String::as_str).collect();
    let n: BTreeSet<&str> = new.emergency_numbers.iter().map(String::as_str).collect();
    let added: Vec<&str> = n.difference(&o).copied().collect();
    let removed: Vec<&str> = o.difference(&n).copied().collect();
    if !added.is_empty() {
        out.push(Change::new(
            Area::Home,
            format!("emergency numbers {} now always allowed", added.join(", ")),
            true,
            false,
        ));
    }
    if !removed.is_empty() {
        out.push(Change::new(
            Area::Home,
            format!(
                "emergency numbers {} no longer always allowed (the policy decides them)",
                removed.join(", ")
            ),
            false,
            true,
        ));
    }
}
