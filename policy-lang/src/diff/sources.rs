//! Sources: which networks may call (longest match, trunks) and the
//! geo policy on source addresses.

use super::change::{Area, Change};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::{CompiledPolicy, GeoMode, GeoPolicy, SourceNetwork, Verdict};

/// How freely a network may call: 0 rejected, 1 allowed but geo-filtered,
/// 2 allowed without geo-filtering (a trunk, or no geo policy).
fn source_level(p: &CompiledPolicy, n: Option<&SourceNetwork>) -> u8 {
    match n {
        None => 0,
        Some(n) if n.action == Verdict::Deny => 0,
        Some(n) if n.trunk.is_some() || p.sources.geo.is_none() => 2,
        Some(_) => 1,
    }
}

fn source_text(n: Option<&SourceNetwork>) -> String {
    match n {
        None => "rejected (no network matched)".into(),
        Some(n) => match (n.action, &n.trunk) {
            (Verdict::Deny, _) => "denied".into(),
            (Verdict::Allow, Some(t)) => format!("allowed as trunk `{t}`"),
            (Verdict::Allow, None) => "allowed".into(),
        },
    }
}

fn longest_match<'a>(
    nets: &[(IpNet, &'a SourceNetwork)],
    net: &IpNet,
) -> Option<&'a SourceNetwork> {
    nets.iter()
        .filter(|(n, _)| n.contains(net))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(_, s)| *s)
}

fn parsed_nets(p: &CompiledPolicy) -> Vec<(IpNet, &SourceNetwork)> {
    p.sources
        .networks
        .iter()
        .filter_map(|n| n.cidr.parse::<IpNet>().ok().map(|net| (net, n)))
        .collect()
}

pub(super) fn sources(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
    let (on, nn) = (parsed_nets(old), parsed_nets(new));
    let mut all: Vec<IpNet> = on.iter().chain(nn.iter()).map(|(n, _)| *n).collect();
    all.sort_by(|a, b| {
        (matches!(a, IpNet::V6(_)), a.network(), a.prefix_len()).cmp(&(
            matches!(b, IpNet::V6(_)),
            b.network(),
            b.prefix_len(),
        ))
    });
    all.dedup();
    for net in &all {
        let (o, n) = (longest_match(&on, net), longest_match(&nn, net));
        let (ol, nl) = (source_level(old, o), source_level(new, n));
        let (ot, nt) = (source_text(o), source_text(n));
        let same_rule = o.map(|s| &s.rule) == n.map(|s| &s.rule);
        if ot == nt && same_rule {
            continue;
        }
        let description = if ot == nt {
            format!(
                "source {net} still {nt}, now by {} (was {})",
                n.map_or("no rule", |s| s.rule.as_str()),
                o.map_or("no rule", |s| s.rule.as_str())
            )
        } else if nl == 0 && o.is_some_and(|s| s.action == Verdict::Allow) {
            format!("source {net} no longer allowed: now {nt} (was {ot})")
        } else {
            format!("source {net} now {nt} (was {ot})")
        };
        out.push(
            Change::new(Area::Sources, description, nl > ol, nl < ol).rules(
                &[o.map_or("", |s| s.rule.as_str())],
                &[n.map_or("", |s| s.rule.as_str())],
            ),
        );
    }
    // trunks
    let trunks = |p: &CompiledPolicy| {
        let mut t: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
        for n in &p.sources.networks {
            if let Some(name) = &n.trunk {
                let e = t.entry(name.clone()).or_default();
                e.0.push(n.cidr.clone());
                e.1 = n.rule.clone();
            }
        }
        t
    };
    let (ot, nt) = (trunks(old), trunks(new));
    // A trunk only loosens where one of its networks could not call freely before.
    let freer = |from: &CompiledPolicy, fnets: &[(IpNet, &SourceNetwork)], nets: &[String]| {
        nets.iter().any(|c| {
            c.parse::<IpNet>()
                .is_ok_and(|net| source_level(from, longest_match(fnets, &net)) < 2)
        })
    };
    for (name, (nets, rule)) in &nt {
        if !ot.contains_key(name) {
            out.push(
                Change::new(
                    Area::Sources,
                    format!(
                        "trunk `{name}` added ({}): its networks skip geo-blocking",
                        nets.join(", ")
                    ),
                    freer(old, &on, nets),
                    false,
                )
                .rules(&[], &[rule]),
            );
        }
    }
    for (name, (nets, rule)) in &ot {
        if !nt.contains_key(name) {
            out.push(
                Change::new(
                    Area::Sources,
                    format!("trunk `{name}` removed ({})", nets.join(", ")),
                    false,
                    freer(new, &nn, nets),
                )
                .rules(&[rule], &[]),
            );
        }
    }
    geo(old.sources.geo.as_ref(), new.sources.geo.as_ref(), out);
}

fn geo_text(g: &GeoPolicy) -> String {
    match g.mode {
        GeoMode::Deny => format!("deny sources in {}", g.countries.join(", ")),
        GeoMode::AllowOnly => format!("allow only sources in {}", g.countries.join(", ")),
    }
}

pub(super) fn geo(old: Option<&GeoPolicy>, new: Option<&GeoPolicy>, out: &mut Vec<Change>) {
    let set = |g: &GeoPolicy| -> BTreeSet<String> { g.countries.iter().cloned().collect() };
    let rule = |g: Option<&GeoPolicy>| g.map_or(String::new(), |g| g.rule.clone());
    let (orule, nrule) = (rule(old), rule(new));
    let mut push = |d: String, l: bool, t: bool| {
        out.push(Change::new(Area::Sources, d, l, t).rules(&[&orule], &[&nrule]));
    };
    match (old, new) {
        (None, None) => {}
        (None, Some(n)) => push(format!("geo-blocking added: {}", geo_text(n)), false, true),
        (Some(o), None) => push(
            format!("geo-blocking removed (was: {})", geo_text(o)),
            true,
            false,
        ),
        (Some(o), Some(n)) if o.mode == n.mode => {
            let (os, ns) = (set(o), set(n));
            let added: Vec<String> = ns.difference(&os).cloned().collect();
            let removed: Vec<String> = os.difference(&ns).cloned().collect();
            let (more_blocked, less_blocked) = match o.mode {
                GeoMode::Deny => (added, removed),
                GeoMode::AllowOnly => (removed, added),
            };
            if !less_blocked.is_empty() {
                push(
                    format!(
                        "sources in {} no longer geo-blocked",
                        less_blocked.join(", ")
                    ),
                    true,
                    false,
                );
            }
            if !more_blocked.is_empty() {
                push(
                    format!("sources in {} now geo-blocked", more_blocked.join(", ")),
                    false,
                    true,
                );
            }
        }
        (Some(o), Some(n)) => {
            let (os, ns) = (set(o), set(n));
            let both = os.intersection(&ns).count() > 0;
            // deny A → allow only B: A∩B newly accepted, everything outside A∪B newly blocked;
            // allow only A → deny B: everything outside A∪B newly accepted, A∩B newly blocked.
            let (l, t) = match n.mode {
                GeoMode::AllowOnly => (both, true),
                GeoMode::Deny => (true, both),
            };
            push(
                format!("geo-blocking `{}` → `{}`", geo_text(o), geo_text(n)),
                l,
                t,
            );
        }
    }
}
