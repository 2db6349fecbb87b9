//! Windows: periods and zones of windows, judged by how the destinations
//! use them (opening a `during` window longer loosens, an `outside` one
//! tightens).

use super::change::{Area, Change};
use super::time::{describe_minutes, hours, open_minutes};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use tollgate_ir::{CompiledPolicy, TimeWindow, Verdict, WindowWhen};

/// How a window is used by a policy's destinations: (opening it longer
/// loosens, opening it longer tightens).
fn window_uses(p: &CompiledPolicy, name: &str) -> (bool, bool) {
    let mut more_open_loosens = false;
    let mut more_open_tightens = false;
    for d in &p.destinations {
        if let Some(c) = &d.window
            && c.name == name
        {
            match (c.when, d.action) {
                (WindowWhen::During, Verdict::Allow) | (WindowWhen::Outside, Verdict::Deny) => {
                    more_open_loosens = true;
                }
                _ => more_open_tightens = true,
            }
        }
    }
    (more_open_loosens, more_open_tightens)
}

pub(super) fn windows(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
    let by_name = |p: &CompiledPolicy| -> BTreeMap<String, TimeWindow> {
        p.windows
            .iter()
            .map(|w| (w.name.clone(), w.clone()))
            .collect()
    };
    let (ow, nw) = (by_name(old), by_name(new));
    for (name, n) in &nw {
        let Some(o) = ow.get(name) else {
            out.push(
                Change::new(
                    Area::Windows,
                    format!(
                        "window `{name}` added: {} ({})",
                        describe_minutes(&open_minutes(n)),
                        n.zone
                    ),
                    false,
                    false,
                )
                .rules(&[], &[&n.rule]),
            );
            continue;
        };
        let (uo, un) = (window_uses(old, name), window_uses(new, name));
        let more_open_loosens = uo.0 || un.0;
        let more_open_tightens = uo.1 || un.1;
        let (om, nm) = (open_minutes(o), open_minutes(n));
        if om != nm {
            let added = nm.minus(&om);
            let removed = om.minus(&nm);
            let (oc, nc) = (om.count(), nm.count());
            let mut d = match nc.cmp(&oc) {
                Ordering::Greater => format!("window `{name}` extended by {}", hours(nc - oc)),
                Ordering::Less => format!("window `{name}` shortened by {}", hours(oc - nc)),
                Ordering::Equal => format!("window `{name}` moved"),
            };
            d.push_str(&format!(" ({} → {} open per week)", hours(oc), hours(nc)));
            if !added.is_empty() {
                d.push_str(&format!("; now also open {}", describe_minutes(&added)));
            }
            if !removed.is_empty() {
                d.push_str(&format!("; no longer open {}", describe_minutes(&removed)));
            }
            let loosens = (!added.is_empty() && more_open_loosens)
                || (!removed.is_empty() && more_open_tightens);
            let tightens = (!added.is_empty() && more_open_tightens)
                || (!removed.is_empty() && more_open_loosens);
            out.push(
                Change::new(Area::Windows, d, loosens, tightens).rules(&[&o.rule], &[&n.rule]),
            );
        }
        if o.zone != n.zone {
            let used = more_open_loosens || more_open_tightens;
            out.push(
                Change::new(
                    Area::Windows,
                    format!(
                        "window `{name}` zone {} → {}: it opens at other hours",
                        o.zone, n.zone
                    ),
                    used,
                    used,
                )
                .rules(&[&o.rule], &[&n.rule]),
            );
        }
    }
    for (name, o) in &ow {
        if !nw.contains_key(name) {
            out.push(
                Change::new(
                    Area::Windows,
                    format!("window `{name}` removed"),
                    false,
                    false,
                )
                .rules(&[&o.rule], &[]),
            );
        }
    }
}
