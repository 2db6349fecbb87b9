//! Limits: levels and maximum durations added, removed, raised or lowered.

use super::change::{Area, Change};
use std::collections::BTreeMap;
use tollgate_ir::{CompiledPolicy, Limit, LimitMetric};

pub(super) fn metric_word(m: LimitMetric) -> &'static str {
    crate::check::metric_name(m)
}

pub(super) fn duration_text(seconds: u64) -> String {
    crate::fmt::duration(crate::ast::Duration { seconds })
}

fn level_text(m: LimitMetric, v: u64) -> String {
    match m {
        LimitMetric::Concurrent => v.to_string(),
        LimitMetric::Rate => format!("{v}/min"),
        LimitMetric::Duration => duration_text(v),
    }
}

fn limit_name(metric: LimitMetric, class: Option<&String>) -> String {
    match class {
        Some(c) => format!("{} limit for `{c}`", metric_word(metric)),
        None => format!("{} limit", metric_word(metric)),
    }
}

fn limit_levels(l: &Limit) -> String {
    let mut parts = Vec::new();
    if let Some(w) = l.warning {
        parts.push(format!("warning {}", level_text(l.metric, w)));
    }
    if let Some(c) = l.critical {
        parts.push(format!("critical {}", level_text(l.metric, c)));
    }
    parts.join(", ")
}

pub(super) fn limits(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
    let key = |l: &Limit| (l.metric, l.class.clone());
    let ol: BTreeMap<_, &Limit> = old.limits.iter().map(|l| (key(l), l)).collect();
    let nl: BTreeMap<_, &Limit> = new.limits.iter().map(|l| (key(l), l)).collect();
    for (k, n) in &nl {
        let name = limit_name(k.0, k.1.as_ref());
        let Some(o) = ol.get(k) else {
            out.push(
                Change::new(
                    Area::Limits,
                    format!("{name} added: {}", limit_levels(n)),
                    false,
                    true,
                )
                .rules(&[], &[&n.rule]),
            );
            continue;
        };
        let mut parts = Vec::new();
        let (mut loosens, mut tightens) = (false, false);
        for (level, a, b) in [
            ("warning", o.warning, n.warning),
            ("critical", o.critical, n.critical),
        ] {
            let t = |v: Option<u64>| v.map_or("none".to_string(), |v| level_text(k.0, v));
            match (a, b) {
                (Some(a), Some(b)) if a == b => continue,
                (None, None) => continue,
                (Some(a), Some(b)) => {
                    loosens |= b > a;
                    tightens |= b < a;
                }
                (Some(_), None) => loosens = true,
                (None, Some(_)) => tightens = true,
            }
            parts.push(format!("{level} {} → {}", t(a), t(b)));
        }
        if parts.is_empty() {
            if o.rule != n.rule {
                out.push(
                    Change::new(
                        Area::Limits,
                        format!(
                            "{name} unchanged, now declared by {} (was {})",
                            n.rule, o.rule
                        ),
                        false,
                        false,
                    )
                    .rules(&[&o.rule], &[&n.rule]),
                );
            }
            continue;
        }
        let d = if k.0 == LimitMetric::Duration && o.warning.is_none() && n.warning.is_none() {
            format!(
                "{name} {} → {}",
                o.critical.map_or("none".into(), duration_text),
                n.critical.map_or("none".into(), duration_text)
            )
        } else {
            format!("{name}: {}", parts.join(", "))
        };
        out.push(Change::new(Area::Limits, d, loosens, tightens).rules(&[&o.rule], &[&n.rule]));
    }
    for (k, o) in &ol {
        if !nl.contains_key(k) {
            out.push(
                Change::new(
                    Area::Limits,
                    format!(
                        "{} removed (was {})",
                        limit_name(k.0, k.1.as_ref()),
                        limit_levels(o)
                    ),
                    true,
                    false,
                )
                .rules(&[&o.rule], &[]),
            );
        }
    }
}
