//! Destinations: which numbers are allowed or denied, and when, compared
//! region by region over the number space (lookup chains of the prefix
//! table), described per prefix with the deciding rules.

use super::MAX_DESTINATION_CHANGES;
use super::MAX_PREFIXES_SHOWN;
use super::change::{Area, Change};
use super::time::{Minutes, WEEK, hours, window_minutes};
use crate::numbering;
use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::{CompiledPolicy, DestinationRule, Verdict, WindowCondition, WindowWhen};

/// One step of a lookup: the entry applies when its condition holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Step {
    pub(super) when: Option<WindowCondition>,
    pub(super) action: Verdict,
    pub(super) rule: String,
}

/// The entries a number is decided by, in lookup order, ending with the first
/// unconditional one.
type Chain = Vec<Step>;

/// The destination table as a map from prefix to its entries in lookup order.
fn table(p: &CompiledPolicy) -> BTreeMap<&str, Vec<&DestinationRule>> {
    let mut t: BTreeMap<&str, Vec<&DestinationRule>> = BTreeMap::new();
    for d in &p.destinations {
        t.entry(d.prefix.as_str()).or_default().push(d);
    }
    for entries in t.values_mut() {
        // windowed first, in the order given; the unconditional entry last
        entries.sort_by_key(|d| d.window.is_none());
    }
    t
}

fn extend_chain(entries: Option<&Vec<&DestinationRule>>, parent: &Chain) -> Chain {
    let Some(entries) = entries else {
        return parent.clone();
    };
    let mut chain = Vec::new();
    for e in entries {
        chain.push(Step {
            when: e.window.clone(),
            action: e.action,
            rule: e.rule.clone(),
        });
        if e.window.is_none() {
            return chain;
        }
    }
    chain.extend(parent.iter().cloned());
    chain
}

/// When a chain allows calls.
pub(super) fn allowed(chain: &Chain, windows: &BTreeMap<&str, Minutes>) -> Minutes {
    let mut out = Minutes::none();
    let never = Minutes::none();
    for t in 0..WEEK {
        let verdict = chain
            .iter()
            .find(|s| match &s.when {
                None => true,
                Some(c) => {
                    let open = windows.get(c.name.as_str()).unwrap_or(&never).get(t);
                    open == (c.when == WindowWhen::During)
                }
            })
            .map_or(Verdict::Deny, |s| s.action);
        if verdict == Verdict::Allow {
            out.set(t);
        }
    }
    out
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allowed",
        Verdict::Deny => "denied",
    }
}

fn when_text(c: &WindowCondition) -> String {
    match c.when {
        WindowWhen::During => format!("during `{}`", c.name),
        WindowWhen::Outside => format!("outside `{}`", c.name),
    }
}

pub(super) fn describe_chain(chain: &Chain, allowed: &Minutes) -> String {
    if allowed.is_empty() {
        return "denied".into();
    }
    if allowed.count() == WEEK {
        return "allowed".into();
    }
    let last = chain.last().map_or(Verdict::Deny, |s| s.action);
    let conds: Vec<&Step> = chain.iter().filter(|s| s.when.is_some()).collect();
    if let [c] = conds.as_slice()
        && let Some(w) = &c.when
        && c.action != last
    {
        return match (c.action, w.when) {
            (Verdict::Allow, _) => format!("allowed only {}", when_text(w)),
            (Verdict::Deny, WindowWhen::During) => {
                format!("allowed only outside `{}`", w.name)
            }
            (Verdict::Deny, WindowWhen::Outside) => {
                format!("allowed only during `{}`", w.name)
            }
        };
    }
    let mut parts: Vec<String> = conds
        .iter()
        .filter_map(|s| {
            s.when
                .as_ref()
                .map(|w| format!("{} {}", verdict_word(s.action), when_text(w)))
        })
        .collect();
    parts.push(format!("otherwise {}", verdict_word(last)));
    parts.join(", then ")
}

/// How the numbers of a region changed: the old and new decision (indexes
/// into [`DestWalk::sems`]) and whether the deciding rules differ.
type Key = (usize, usize, bool);

/// A region's change with the rule ids that decide it, old and new.
#[derive(Clone)]
struct Region {
    key: Key,
    rules: (BTreeSet<String>, BTreeSet<String>),
}

impl Region {
    fn changed(&self) -> bool {
        self.key.0 != self.key.1 || self.key.2
    }
    fn absorb(&mut self, other: &Region) {
        self.rules.0.extend(other.rules.0.iter().cloned());
        self.rules.1.extend(other.rules.1.iter().cloned());
    }
}

/// How a subtree of the number space changed: the same way everywhere, or not
/// (then its changed parts are recorded already).
enum Subtree {
    Uniform(Region),
    Mixed,
}

/// A decision over the week: its description and when it allows.
#[derive(PartialEq, Eq)]
struct Sem {
    text: String,
    allowed: Minutes,
}

/// How some regions changed (decisions, old rule ids, new rule ids) and the
/// regions as (prefix to sort by, text shown).
type Found = (Key, Vec<String>, Vec<String>, Vec<(String, String)>);

struct DestWalk<'a> {
    old: BTreeMap<&'a str, Vec<&'a DestinationRule>>,
    new: BTreeMap<&'a str, Vec<&'a DestinationRule>>,
    old_windows: BTreeMap<&'a str, Minutes>,
    new_windows: BTreeMap<&'a str, Minutes>,
    all: BTreeSet<&'a str>,
    /// Distinct decisions; a chain's is looked up through the caches.
    sems: Vec<Sem>,
    old_cache: BTreeMap<Chain, usize>,
    new_cache: BTreeMap<Chain, usize>,
    /// Changed regions, grouped by how they changed and by which rules.
    found: Vec<Found>,
}

impl DestWalk<'_> {
    fn has_below(&self, p: &str) -> bool {
        self.all
            .range::<str, _>((std::ops::Bound::Excluded(p), std::ops::Bound::Unbounded))
            .next()
            .is_some_and(|q| q.starts_with(p))
    }

    fn sem(&mut self, chain: &Chain, new: bool) -> usize {
        let cache = if new {
            &self.new_cache
        } else {
            &self.old_cache
        };
        if let Some(i) = cache.get(chain) {
            return *i;
        }
        let windows = if new {
            &self.new_windows
        } else {
            &self.old_windows
        };
        let allowed = allowed(chain, windows);
        let sem = Sem {
            text: describe_chain(chain, &allowed),
            allowed,
        };
        let i = match self.sems.iter().position(|s| *s == sem) {
            Some(i) => i,
            None => {
                self.sems.push(sem);
                self.sems.len() - 1
            }
        };
        let cache = if new {
            &mut self.new_cache
        } else {
            &mut self.old_cache
        };
        cache.insert(chain.clone(), i);
        i
    }

    fn region(&mut self, old: &Chain, new: &Chain) -> Region {
        let ids = |c: &Chain| -> Vec<String> {
            c.iter()
                .map(|s| s.rule.clone())
                .filter(|r| !r.is_empty())
                .collect()
        };
        let (o, n) = (ids(old), ids(new));
        let key = (self.sem(old, false), self.sem(new, true), o != n);
        Region {
            key,
            rules: (o.into_iter().collect(), n.into_iter().collect()),
        }
    }

    fn walk(&mut self, p: &str, old_parent: &Chain, new_parent: &Chain) -> Subtree {
        let chains = (
            extend_chain(self.old.get(p), old_parent),
            extend_chain(self.new.get(p), new_parent),
        );
        let own = self.region(&chains.0, &chains.1);
        if p.len() >= crate::check::MAX_E164_DIGITS || !self.has_below(p) {
            return Subtree::Uniform(own);
        }
        let mut kids: Vec<(String, Subtree)> = Vec::new();
        for d in 0..10 {
            let child = format!("{p}{d}");
            let sub = if self.all.contains(child.as_str()) || self.has_below(&child) {
                self.walk(&child, &chains.0, &chains.1)
            } else {
                Subtree::Uniform(own.clone())
            };
            kids.push((child, sub));
        }
        // Ten children changed the same way: the parent stands for them.
        if let Subtree::Uniform(first) = &kids[0].1
            && kids
                .iter()
                .all(|(_, s)| matches!(s, Subtree::Uniform(r) if r.key == first.key))
        {
            let mut merged = first.clone();
            for (_, s) in &kids {
                if let Subtree::Uniform(r) = s {
                    merged.absorb(r);
                }
            }
            return Subtree::Uniform(merged);
        }
        // Group the uniformly changed children of this node by how they changed.
        let mut groups: Vec<(Region, Vec<&str>)> = Vec::new();
        for (child, s) in &kids {
            if let Subtree::Uniform(r) = s
                && r.changed()
            {
                match groups.iter_mut().find(|(g, _)| g.key == r.key) {
                    Some((g, list)) => {
                        g.absorb(r);
                        list.push(child);
                    }
                    None => groups.push((r.clone(), vec![child])),
                }
            }
        }
        let mut regions: Vec<(Region, (String, String))> = Vec::new();
        for (r, list) in groups {
            if list.len() >= 6 {
                let except: Vec<String> = kids
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .filter(|c| !list.contains(c))
                    .map(show_prefix)
                    .collect();
                let shown = format!("{} (except {})", show_prefix(p), except.join(", "));
                regions.push((r, (p.to_string(), shown)));
            } else {
                for c in list {
                    regions.push((r.clone(), (c.to_string(), show_prefix(c))));
                }
            }
        }
        for (r, shown) in regions {
            self.record(r, shown);
        }
        Subtree::Mixed
    }

    fn record(&mut self, r: Region, shown: (String, String)) {
        let old: Vec<String> = r.rules.0.into_iter().collect();
        let new: Vec<String> = r.rules.1.into_iter().collect();
        match self
            .found
            .iter_mut()
            .find(|(k, o, n, _)| *k == r.key && *o == old && *n == new)
        {
            Some((_, _, _, list)) => list.push(shown),
            None => self.found.push((r.key, old, new, vec![shown])),
        }
    }
}

/// `+44 7`: the calling code, a space, the rest.
pub(super) fn show_prefix(p: &str) -> String {
    if p.is_empty() {
        return "every number".into();
    }
    let cc = numbering::countries()
        .iter()
        .map(|c| c.calling_code.as_str())
        .filter(|cc| p.starts_with(cc) && p.len() > cc.len())
        .max_by_key(|cc| cc.len());
    match cc {
        Some(cc) => format!("+{cc} {}", &p[cc.len()..]),
        None => format!("+{p}"),
    }
}

pub(super) fn destinations(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
    let (old_table, new_table) = (table(old), table(new));
    let all = old_table.keys().chain(new_table.keys()).copied().collect();
    let mut w = DestWalk {
        old: old_table,
        new: new_table,
        old_windows: window_minutes(old),
        new_windows: window_minutes(new),
        all,
        sems: Vec::new(),
        old_cache: BTreeMap::new(),
        new_cache: BTreeMap::new(),
        found: Vec::new(),
    };
    let fallback = vec![Step {
        when: None,
        action: Verdict::Deny,
        rule: String::new(),
    }];
    if let Subtree::Uniform(r) = w.walk("", &fallback, &fallback)
        && r.changed()
    {
        w.record(r, (String::new(), show_prefix("")));
    }
    let mut changes = Vec::new();
    for ((o, n, _), or, nr, mut regions) in std::mem::take(&mut w.found) {
        regions.sort();
        let regions: Vec<String> = regions.into_iter().map(|(_, shown)| shown).collect();
        let (os, ns) = (&w.sems[o], &w.sems[n]);
        let loosens = !ns.allowed.minus(&os.allowed).is_empty();
        let tightens = !os.allowed.minus(&ns.allowed).is_empty();
        let shown = if regions.len() > MAX_PREFIXES_SHOWN {
            format!(
                "{} and {} more",
                regions[..MAX_PREFIXES_SHOWN].join(", "),
                regions.len() - MAX_PREFIXES_SHOWN
            )
        } else {
            regions.join(", ")
        };
        let description = if o == n {
            format!(
                "calls to {shown} still {}, now decided by {} (was {})",
                ns.text,
                id_list(&nr),
                id_list(&or)
            )
        } else if os.text == ns.text {
            // same rules, other hours: a window they use changed
            let more = ns.allowed.minus(&os.allowed).count();
            let less = os.allowed.minus(&ns.allowed).count();
            let delta = match (more, less) {
                (m, 0) => format!("{} more", hours(m)),
                (0, l) => format!("{} less", hours(l)),
                (m, l) => format!("at other hours (+{}, -{})", hours(m), hours(l)),
            };
            format!(
                "calls to {shown} now allowed {delta} per week (still {}: its window changed) [{} → {}]",
                ns.text,
                id_list(&or),
                id_list(&nr)
            )
        } else {
            format!(
                "calls to {shown} now {} (were {}) [{} → {}]",
                ns.text,
                os.text,
                id_list(&or),
                id_list(&nr)
            )
        };
        let or: Vec<&str> = or.iter().map(String::as_str).collect();
        let nr: Vec<&str> = nr.iter().map(String::as_str).collect();
        changes
            .push(Change::new(Area::Destinations, description, loosens, tightens).rules(&or, &nr));
    }
    // Loosening first, so the cap never hides one.
    changes.sort_by_key(|c| !c.loosens);
    if changes.len() > MAX_DESTINATION_CHANGES {
        let rest = changes.split_off(MAX_DESTINATION_CHANGES);
        out.extend(changes);
        out.push(Change::new(
            Area::Destinations,
            format!("… and {} more destination changes", rest.len()),
            rest.iter().any(|c| c.loosens),
            rest.iter().any(|c| c.tightens),
        ));
    } else {
        out.extend(changes);
    }
}

fn id_list(ids: &[String]) -> String {
    let ids: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        "no rule".into()
    } else {
        ids.join(" + ")
    }
}
