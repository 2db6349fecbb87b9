//! Semantic diff of two compiled policies, in the user's terms.
//!
//! [`diff`] compares two [`CompiledPolicy`] values (never their text) and
//! says what changed for calls: which numbers are now allowed or denied, and
//! when; which sources may call; how windows, limits, responses and crypto
//! requirements moved. Every [`Change`] says whether it **loosens** (lets
//! through a call that was rejected before, or weakens detection or the
//! response to it) and whether it **tightens** (the reverse); a change that
//! does neither is neutral (the same decisions under another rule id, a
//! window nobody uses, ...). A change can do both (calls allowed at other
//! hours than before).
//!
//! Times are compared as minutes of the week in each window's own local time;
//! a chain of rules whose windows are in different zones is compared as if
//! the zones were the same (the zone change itself is reported under
//! windows).

use crate::numbering;
use ipnet::IpNet;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::{
    AlertLevel, CompiledPolicy, DestinationRule, GeoMode, GeoPolicy, Limit, LimitMetric, Response,
    ResponseAction, ResponseTrigger, SourceNetwork, TimeWindow, Verdict, WindowCondition,
    WindowWhen,
};

/// Most prefixes named in one destination change; the rest are counted.
pub const MAX_PREFIXES_SHOWN: usize = 8;
/// Most destination changes listed; the rest are summed up in one last change.
pub const MAX_DESTINATION_CHANGES: usize = 50;

/// What part of the policy a change is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    Tenant,
    Home,
    Destinations,
    Sources,
    Windows,
    Limits,
    Responses,
    Crypto,
    Classes,
}

impl Area {
    pub fn name(self) -> &'static str {
        match self {
            Area::Tenant => "tenant",
            Area::Home => "home",
            Area::Destinations => "destinations",
            Area::Sources => "sources",
            Area::Windows => "windows",
            Area::Limits => "limits",
            Area::Responses => "responses",
            Area::Crypto => "crypto",
            Area::Classes => "classes",
        }
    }
}

/// One change, described for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub area: Area,
    pub description: String,
    /// Lets through a call that was rejected before, or weakens detection or response.
    pub loosens: bool,
    /// Rejects a call that was let through before, or strengthens detection or response.
    pub tightens: bool,
    /// The rule ids involved: (old policy's, new policy's).
    pub rules: (Vec<String>, Vec<String>),
}

impl Change {
    fn new(area: Area, description: String, loosens: bool, tightens: bool) -> Self {
        Change {
            area,
            description,
            loosens,
            tightens,
            rules: (Vec::new(), Vec::new()),
        }
    }

    fn rules(mut self, old: &[&str], new: &[&str]) -> Self {
        let ids = |v: &[&str]| {
            let mut out: Vec<String> = Vec::new();
            for id in v.iter().filter(|s| !s.is_empty()) {
                if !out.iter().any(|o| o == id) {
                    out.push((*id).to_string());
                }
            }
            out
        };
        self.rules = (ids(old), ids(new));
        self
    }

    /// `loosens`, `tightens`, `loosens+tightens` or `neutral`.
    pub fn effect(&self) -> &'static str {
        match (self.loosens, self.tightens) {
            (true, true) => "loosens+tightens",
            (true, false) => "loosens",
            (false, true) => "tightens",
            (false, false) => "neutral",
        }
    }
}

/// The changes from `old` to `new`, ordered by area.
pub fn diff(old: &CompiledPolicy, new: &CompiledPolicy) -> Vec<Change> {
    let mut out = Vec::new();
    tenant_and_home(old, new, &mut out);
    destinations(old, new, &mut out);
    sources(old, new, &mut out);
    windows(old, new, &mut out);
    limits(old, new, &mut out);
    responses(old, new, &mut out);
    crypto(old, new, &mut out);
    classes(old, new, &mut out);
    out.sort_by_key(|c| c.area);
    out
}

/// Whether any change loosens.
pub fn loosens(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.loosens)
}

// ------------------------------------------------------------ tenant, home

fn tenant_and_home(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
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

// ------------------------------------------------------------ time

const WEEK: usize = 7 * 1440;
const WORDS: usize = WEEK.div_ceil(64);

/// A set of minutes of the week (Monday 00:00 is minute 0).
#[derive(Clone, PartialEq, Eq)]
struct Minutes([u64; WORDS]);

impl Minutes {
    fn none() -> Self {
        Minutes([0; WORDS])
    }
    fn set(&mut self, t: usize) {
        let t = t % WEEK;
        self.0[t / 64] |= 1 << (t % 64);
    }
    fn get(&self, t: usize) -> bool {
        self.0[t / 64] & (1 << (t % 64)) != 0
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    fn minus(&self, other: &Minutes) -> Minutes {
        let mut out = self.clone();
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a &= !b;
        }
        out
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

fn open_minutes(w: &TimeWindow) -> Minutes {
    let mut m = Minutes::none();
    for s in &w.spans {
        for d in &s.days {
            let day = *d as usize * 1440;
            let start = day + usize::from(s.start_minute);
            let end = if s.end_minute > s.start_minute {
                day + usize::from(s.end_minute)
            } else {
                day + 1440 + usize::from(s.end_minute)
            };
            for t in start..end {
                m.set(t);
            }
        }
    }
    m
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn clock(m: usize) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// `2 h`, `1 h 30 min`, `45 min`.
fn hours(minutes: usize) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// `mon-fri 18:00-20:00, sat 10:00-12:00`.
fn describe_minutes(m: &Minutes) -> String {
    // (start, end) within a day → days
    let mut by_time: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for day in 0..7 {
        let mut t = 0;
        while t < 1440 {
            if m.get(day * 1440 + t) {
                let start = t;
                while t < 1440 && m.get(day * 1440 + t) {
                    t += 1;
                }
                by_time.entry((start, t)).or_default().push(day);
            } else {
                t += 1;
            }
        }
    }
    let mut parts: Vec<(usize, String)> = by_time
        .into_iter()
        .map(|((s, e), days)| {
            (
                days[0],
                format!("{} {}-{}", days_text(&days), clock(s), clock(e)),
            )
        })
        .collect();
    parts.sort();
    parts
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(", ")
}

fn days_text(days: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &d in days {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == d => *end = d,
            _ => runs.push((d, d)),
        }
    }
    // sun and mon are neighbours: `sat-mon`, not `mon,sat,sun`
    if runs.len() > 1
        && runs.first().is_some_and(|r| r.0 == 0)
        && runs.last().is_some_and(|r| r.1 == 6)
        && let Some((a, _)) = runs.pop()
    {
        runs[0].0 = a;
    }
    runs.iter()
        .map(|&(a, b)| match (b + 7 - a) % 7 {
            0 => DAY_NAMES[a].to_string(),
            1 => format!("{},{}", DAY_NAMES[a], DAY_NAMES[b]),
            _ => format!("{}-{}", DAY_NAMES[a], DAY_NAMES[b]),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Open minutes of every window of a policy, by name.
fn window_minutes(p: &CompiledPolicy) -> BTreeMap<&str, Minutes> {
    p.windows
        .iter()
        .map(|w| (w.name.as_str(), open_minutes(w)))
        .collect()
}

// ------------------------------------------------------------ destinations

/// One step of a lookup: the entry applies when its condition holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Step {
    when: Option<WindowCondition>,
    action: Verdict,
    rule: String,
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
fn allowed(chain: &Chain, windows: &BTreeMap<&str, Minutes>) -> Minutes {
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

fn describe_chain(chain: &Chain, allowed: &Minutes) -> String {
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
fn show_prefix(p: &str) -> String {
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

fn destinations(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
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

// ------------------------------------------------------------ sources

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

fn sources(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
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

fn geo(old: Option<&GeoPolicy>, new: Option<&GeoPolicy>, out: &mut Vec<Change>) {
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

// ------------------------------------------------------------ windows

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

fn windows(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
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

// ------------------------------------------------------------ limits

fn metric_word(m: LimitMetric) -> &'static str {
    crate::check::metric_name(m)
}

fn duration_text(seconds: u64) -> String {
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

fn limits(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
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

// ------------------------------------------------------------ responses

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
fn action_strength(a: &ResponseAction, b: &ResponseAction) -> Option<Ordering> {
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

fn responses(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
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

// ------------------------------------------------------------ crypto

fn crypto(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
    for (what, rule, a, b) in [
        (
            "TLS",
            "crypto:tls",
            old.crypto.require_tls,
            new.crypto.require_tls,
        ),
        (
            "SRTP",
            "crypto:srtp",
            old.crypto.require_srtp,
            new.crypto.require_srtp,
        ),
        (
            "a TLS client certificate",
            "crypto:client-certificate",
            old.crypto.require_client_certificate,
            new.crypto.require_client_certificate,
        ),
    ] {
        match (a, b) {
            (true, false) => out.push(
                Change::new(
                    Area::Crypto,
                    format!("{what} no longer required"),
                    true,
                    false,
                )
                .rules(&[rule], &[rule]),
            ),
            (false, true) => out.push(
                Change::new(Area::Crypto, format!("{what} now required"), false, true)
                    .rules(&[rule], &[rule]),
            ),
            _ => {}
        }
    }
}

// ------------------------------------------------------------ classes

fn classes(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_ir::{Weekday, WeeklySpan};

    fn window(days: &[Weekday], start: u16, end: u16) -> TimeWindow {
        TimeWindow {
            name: "w".into(),
            zone: "Europe/Paris".into(),
            spans: vec![WeeklySpan {
                days: days.to_vec(),
                start_minute: start,
                end_minute: end,
            }],
            rule: "window:w".into(),
        }
    }

    fn empty() -> CompiledPolicy {
        CompiledPolicy {
            tenant: "t".into(),
            home_country: "GB".into(),
            numbering_plan: "test".into(),
            emergency_numbers: vec!["112".into(), "999".into()],
            destinations: vec![DestinationRule {
                prefix: String::new(),
                action: Verdict::Deny,
                rule: "dst:international".into(),
                window: None,
            }],
            classes: Vec::new(),
            sources: Default::default(),
            windows: Vec::new(),
            limits: Vec::new(),
            responses: Vec::new(),
            crypto: Default::default(),
            rules: Vec::new(),
        }
    }

    #[test]
    fn open_minutes_run_past_midnight_and_wrap_the_week() {
        let w = window(&[Weekday::Sun], 22 * 60, 6 * 60);
        let m = open_minutes(&w);
        assert_eq!(m.count(), 8 * 60);
        assert!(m.get(6 * 1440 + 23 * 60)); // sunday 23:00
        assert!(m.get(5 * 60)); // monday 05:00
        assert!(!m.get(6 * 60));
        assert_eq!(describe_minutes(&m), "mon 00:00-06:00, sun 22:00-24:00");
        let whole = open_minutes(&window(&[Weekday::Mon], 0, 1440));
        assert_eq!(whole.count(), 1440);
    }

    #[test]
    fn days_and_hours_read_naturally() {
        assert_eq!(days_text(&[0, 1, 2, 3, 4]), "mon-fri");
        assert_eq!(days_text(&[0, 5, 6]), "sat-mon");
        assert_eq!(days_text(&[0, 2]), "mon,wed");
        assert_eq!(hours(120), "2 h");
        assert_eq!(hours(90), "1 h 30 min");
        assert_eq!(hours(45), "45 min");
    }

    #[test]
    fn prefixes_show_their_calling_code() {
        assert_eq!(show_prefix("447"), "+44 7");
        assert_eq!(show_prefix("1900"), "+1 900");
        assert_eq!(show_prefix("44"), "+44");
        assert_eq!(show_prefix(""), "every number");
    }

    #[test]
    fn chains_are_described_by_when_they_allow() {
        let mut p = empty();
        p.windows.push(window(&[Weekday::Mon], 480, 1080));
        let w = window_minutes(&p);
        let during = Step {
            when: Some(WindowCondition {
                name: "w".into(),
                when: WindowWhen::During,
            }),
            action: Verdict::Allow,
            rule: "a".into(),
        };
        let deny = Step {
            when: None,
            action: Verdict::Deny,
            rule: "d".into(),
        };
        let chain = vec![during.clone(), deny.clone()];
        assert_eq!(
            describe_chain(&chain, &allowed(&chain, &w)),
            "allowed only during `w`"
        );
        let outside_deny = Step {
            when: Some(WindowCondition {
                name: "w".into(),
                when: WindowWhen::Outside,
            }),
            action: Verdict::Deny,
            rule: "o".into(),
        };
        let allow = Step {
            action: Verdict::Allow,
            ..deny.clone()
        };
        let chain = vec![outside_deny, allow];
        assert_eq!(
            describe_chain(&chain, &allowed(&chain, &w)),
            "allowed only during `w`"
        );
        // a window that never opens changes nothing
        let chain = vec![
            Step {
                when: Some(WindowCondition {
                    name: "missing".into(),
                    when: WindowWhen::During,
                }),
                ..during
            },
            deny,
        ];
        assert_eq!(describe_chain(&chain, &allowed(&chain, &w)), "denied");
    }

    #[test]
    fn reactions_are_ordered_by_what_they_block() {
        let classes = |c: &[&str]| ResponseAction::BlockClasses {
            classes: c.iter().map(|s| s.to_string()).collect(),
        };
        use ResponseAction::{Alert, BlockTenant};
        assert_eq!(action_strength(&Alert, &BlockTenant), Some(Ordering::Less));
        assert_eq!(
            action_strength(&classes(&["a", "b"]), &classes(&["a"])),
            Some(Ordering::Greater)
        );
        assert_eq!(action_strength(&classes(&["a"]), &classes(&["b"])), None);
        assert_eq!(
            action_strength(&BlockTenant, &classes(&["a"])),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn geo_mode_switches_loosen_and_tighten() {
        let g = |mode, c: &[&str]| GeoPolicy {
            mode,
            countries: c.iter().map(|s| s.to_string()).collect(),
            rule: "src:geo".into(),
        };
        let mut out = Vec::new();
        // allow only GB → deny CN: everything but GB and CN is newly accepted
        geo(
            Some(&g(GeoMode::AllowOnly, &["GB"])),
            Some(&g(GeoMode::Deny, &["CN"])),
            &mut out,
        );
        assert!(out[0].loosens && !out[0].tightens);
        out.clear();
        // deny CN → allow only GB: only tightens
        geo(
            Some(&g(GeoMode::Deny, &["CN"])),
            Some(&g(GeoMode::AllowOnly, &["GB"])),
            &mut out,
        );
        assert!(!out[0].loosens && out[0].tightens);
        out.clear();
        // deny CN → allow only CN, GB: CN newly accepted
        geo(
            Some(&g(GeoMode::Deny, &["CN"])),
            Some(&g(GeoMode::AllowOnly, &["CN", "GB"])),
            &mut out,
        );
        assert!(out[0].loosens && out[0].tightens);
    }

    #[test]
    fn limit_levels_removed_loosen() {
        let mut old = empty();
        old.limits.push(Limit {
            metric: LimitMetric::Rate,
            class: None,
            warning: Some(5),
            critical: Some(10),
            rule: "limit:rate".into(),
        });
        let mut new = old.clone();
        new.limits[0].critical = None;
        let cs = diff(&old, &new);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].description, "rate limit: critical 10/min → none");
        assert!(cs[0].loosens && !cs[0].tightens);
        let cs = diff(&new, &old);
        assert!(cs[0].tightens && !cs[0].loosens);
    }

    #[test]
    fn emergency_numbers_added_loosen() {
        let old = empty();
        let mut new = old.clone();
        new.emergency_numbers.push("110".into());
        let cs = diff(&old, &new);
        assert_eq!(cs.len(), 1);
        assert!(cs[0].loosens, "{cs:?}");
        assert!(diff(&new, &old)[0].tightens);
    }

    #[test]
    fn a_source_moving_into_a_trunk_escapes_geo_blocking() {
        let mut old = empty();
        old.sources.networks.push(SourceNetwork {
            cidr: "198.51.100.0/24".into(),
            action: Verdict::Allow,
            trunk: None,
            rule: "src:net:198.51.100.0/24".into(),
        });
        old.sources.geo = Some(GeoPolicy {
            mode: GeoMode::Deny,
            countries: vec!["CN".into()],
            rule: "src:geo".into(),
        });
        let mut new = old.clone();
        new.sources.networks[0].trunk = Some("carrier".into());
        new.sources.networks[0].rule = "src:trunk:carrier".into();
        let cs = diff(&old, &new);
        assert!(
            cs.iter().any(|c| c.loosens
                && c.description
                    == "source 198.51.100.0/24 now allowed as trunk `carrier` (was allowed)"),
            "{cs:?}"
        );
        assert!(!loosens(&diff(&new, &old)));
    }
}
