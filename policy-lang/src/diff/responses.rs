//! Responses: triggers and reactions added, removed, weakened or
//! strengthened (what a block covers, how long it holds).

use super::change::{Area, Change};
use super::limits::{duration_text, metric_word};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::{AlertLevel, CompiledPolicy, Response, ResponseAction, ResponseTrigger};

fn trigger_text(t: &ResponseTrigger) -> String {
    match t {
        ResponseTrigger::Breach {
            metric,
            class,
            level,
        } => {
            let level = match level {
                AlertLevel::Warning => "warning",
                AlertLevel::Critical => "critical",
            };
            match class {
                Some(c) => format!("{} {c} {level}", metric_word(*metric)),
                None => format!("{} {level}", metric_word(*metric)),
            }
        }
        ResponseTrigger::Anomaly { anomaly } => format!("anomaly {anomaly}"),
    }
}

fn reaction_text(r: &Response) -> String {
    let hold = if r.until_acknowledged {
        " until acknowledged".to_string()
    } else {
        r.hold_seconds
            .map_or(String::new(), |s| format!(" for {}", duration_text(s)))
    };
    match &r.action {
        ResponseAction::Alert => "alert".into(),
        ResponseAction::BlockClasses { classes } => {
            format!("block class {}{hold}", classes.join(", "))
        }
        ResponseAction::BlockTenant => format!("block tenant{hold}"),
    }
}

/// Compares what two reactions block: `None` when neither covers the other.
pub(super) fn action_strength(a: &ResponseAction, b: &ResponseAction) -> Option<Ordering> {
    use ResponseAction::*;
    let rank = |x: &ResponseAction| match x {
        Alert => 0,
        BlockClasses { .. } => 1,
        BlockTenant => 2,
    };
    match (a, b) {
        (BlockClasses { classes: x }, BlockClasses { classes: y }) => {
            let x: BTreeSet<&String> = x.iter().collect();
            let y: BTreeSet<&String> = y.iter().collect();
            match (x.is_subset(&y), y.is_subset(&x)) {
                (true, true) => Some(Ordering::Equal),
                (true, false) => Some(Ordering::Less),
                (false, true) => Some(Ordering::Greater),
                (false, false) => None,
            }
        }
        _ => Some(rank(a).cmp(&rank(b))),
    }
}

/// How long a block holds: until acknowledged beats any duration.
fn hold_strength(r: &Response) -> (bool, u64) {
    (r.until_acknowledged, r.hold_seconds.unwrap_or(0))
}

pub(super) fn responses(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
    let or: BTreeMap<String, &Response> = old
        .responses
        .iter()
        .map(|r| (trigger_text(&r.trigger), r))
        .collect();
    let nr: BTreeMap<String, &Response> = new
        .responses
        .iter()
        .map(|r| (trigger_text(&r.trigger), r))
        .collect();
    for (t, n) in &nr {
        let Some(o) = or.get(t) else {
            out.push(
                Change::new(
                    Area::Responses,
                    format!("on {t}: {} added", reaction_text(n)),
                    false,
                    true,
                )
                .rules(&[], &[&n.rule]),
            );
            continue;
        };
        let (ot, nt) = (reaction_text(o), reaction_text(n));
        if ot == nt {
            continue;
        }
        let blocks = |r: &Response| !matches!(r.action, ResponseAction::Alert);
        let action = action_strength(&o.action, &n.action);
        let hold = if blocks(o) && blocks(n) {
            hold_strength(o).cmp(&hold_strength(n))
        } else {
            Ordering::Equal
        };
        // Greater: the old one was stronger.
        let loosens = matches!(action, None | Some(Ordering::Greater)) || hold == Ordering::Greater;
        let tightens = matches!(action, None | Some(Ordering::Less)) || hold == Ordering::Less;
        let word = match (loosens, tightens) {
            (true, false) => " (weaker)",
            (false, true) => " (stronger)",
            _ => "",
        };
        out.push(
            Change::new(
                Area::Responses,
                format!("on {t}: {ot} → {nt}{word}"),
                loosens,
                tightens,
            )
            .rules(&[&o.rule], &[&n.rule]),
        );
    }
    for (t, o) in &or {
        if !nr.contains_key(t) {
            out.push(
                Change::new(
                    Area::Responses,
                    format!("on {t}: {} removed", reaction_text(o)),
                    true,
                    false,
                )
                .rules(&[&o.rule], &[]),
            );
        }
    }
}
