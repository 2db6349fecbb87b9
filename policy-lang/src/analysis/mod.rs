//! Static analysis of a compiled tenant policy: warnings about rules that can
//! never decide, redundant rules and other things that are legal but almost
//! certainly not what the author meant. Runs on the IR (exact prefix tries and
//! interval arithmetic, no solver) after a policy compiled without errors.
//!
//! ## Time
//! Windows are weekly sets of minutes in local time ([`WeekSet`]). The
//! destination analyses need to know which combinations of window states
//! (open or closed) can occur at the same instant; each such combination is a
//! time *atom*, and a set of instants is a bitset over atoms ([`Times`]).
//! Windows in one zone are combined minute by minute over the local week,
//! which is exact. Windows in several zones are combined per period of fixed
//! UTC offsets between 2024 and 2044 (the zones' daylight-saving transitions
//! from the bundled tz database), which is exact for those years.
//!
//! ## Destinations
//! The prefix table is a trie; every node (a prefix with entries) gets its
//! decision function: the set of atoms in which a number decided at that node
//! is allowed (its entries in evaluation order, falling through to the parent
//! node where none applies). A number whose digits are exactly a node's prefix
//! is decided at that node, so every node's decision is observable.

use crate::diag::Diagnostic;
use crate::numbering;
use crate::source::FileId;
use crate::span::Span;
use ipnet::IpNet;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tollgate_ir::{
    CompiledPolicy, DestinationRule, Limit, LimitMetric, RuleSource, SourceNetwork, TimeWindow,
    Verdict, Weekday, WindowCondition, WindowWhen,
};

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
    /// The files in the order they were applied (imports first, `root` last):
    /// a later file's rules come first among the windowed entries of a prefix.
    pub files: &'a [FileId],
    /// For each (prefix, window condition) entry of `policy.destinations` that
    /// had more than one candidate: the candidate that takes the entry when its
    /// winner is removed.
    pub runner_up: &'a BTreeMap<(String, Option<WindowCondition>), DestinationRule>,
    /// Destination rule ids whose declaration replaced an imported one with the
    /// same id: removing it would bring the imported rule back.
    pub replaced: &'a BTreeSet<String>,
}

/// The warnings for one policy, in no particular order.
pub fn analyze(input: &Input<'_>) -> Vec<Diagnostic> {
    let cx = Cx::new(input);
    let mut out = Vec::new();
    cx.destination_rules(&mut out);
    cx.source_overlaps(&mut out);
    cx.windows(&mut out);
    cx.limits(&mut out);
    cx.premium_open(&mut out);
    out
}

// ---------------------------------------------------------------- week sets

/// Minutes in a day.
pub const DAY: u32 = 1440;
/// Minutes in a week.
pub const WEEK: u32 = 7 * DAY;

/// A set of minutes of the week (Monday 00:00 is 0): sorted, disjoint,
/// non-adjacent half-open intervals within `0..WEEK`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeekSet {
    spans: Vec<(u32, u32)>,
}

impl WeekSet {
    /// The minutes a window is open, in its local time.
    pub fn of_window(w: &TimeWindow) -> Self {
        let mut raw = Vec::new();
        for s in &w.spans {
            let start = u32::from(s.start_minute).min(DAY);
            let end = u32::from(s.end_minute).min(DAY);
            if start == end {
                continue;
            }
            for d in &s.days {
                let base = day_index(*d) * DAY;
                // past midnight when the end is not after the start
                let stop = if start < end {
                    base + end
                } else {
                    base + DAY + end
                };
                raw.push((base + start, stop));
            }
        }
        Self::from_intervals(raw)
    }

    /// Normalizes intervals `start..end` with `start < WEEK` and `end` at most
    /// a day past the week's end (wrapping into Monday).
    pub fn from_intervals(raw: impl IntoIterator<Item = (u32, u32)>) -> Self {
        let mut v: Vec<(u32, u32)> = Vec::new();
        for (s, e) in raw {
            let (s, e) = (s % WEEK, s % WEEK + e.saturating_sub(s).min(WEEK));
            if s >= e {
                continue;
            }
            if e > WEEK {
                v.push((s, WEEK));
                v.push((0, e - WEEK));
            } else {
                v.push((s, e));
            }
        }
        v.sort_unstable();
        let mut spans: Vec<(u32, u32)> = Vec::new();
        for (s, e) in v {
            match spans.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => spans.push((s, e)),
            }
        }
        WeekSet { spans }
    }

    /// How many minutes of the week are in the set.
    pub fn minutes(&self) -> u32 {
        self.spans.iter().map(|(s, e)| e - s).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.minutes() == WEEK
    }

    /// Whether minute `m` (`0..WEEK`) is in the set.
    pub fn contains(&self, m: u32) -> bool {
        let i = self.spans.partition_point(|&(s, _)| s <= m);
        i > 0 && m < self.spans[i - 1].1
    }

    /// Every minute where membership may change.
    fn boundaries(&self) -> impl Iterator<Item = u32> + '_ {
        self.spans.iter().flat_map(|&(s, e)| [s, e % WEEK])
    }
}

fn day_index(d: Weekday) -> u32 {
    match d {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

// ---------------------------------------------------------------- time atoms

/// A set of time atoms.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Times(Vec<u64>);

impl Times {
    fn empty(n: usize) -> Self {
        Times(vec![0; n.div_ceil(64).max(1)])
    }

    fn full(n: usize) -> Self {
        let mut t = Times(vec![!0; n.div_ceil(64).max(1)]);
        if !n.is_multiple_of(64)
            && let Some(last) = t.0.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        if n == 0 {
            t.0[0] = 0;
        }
        t
    }

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn and(&self, o: &Times) -> Times {
        Times(self.0.iter().zip(&o.0).map(|(a, b)| a & b).collect())
    }

    fn minus(&self, o: &Times) -> Times {
        Times(self.0.iter().zip(&o.0).map(|(a, b)| a & !b).collect())
    }

    fn union_with(&mut self, o: &Times) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

/// First and last instants considered when windows of several zones are combined.
const FROM_YEAR_START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
const TO_YEAR_START: i64 = 2_335_219_200; // 2044-01-01T00:00:00Z
/// 1970-01-01 was a Thursday: the epoch is 3 days into its week (Monday 00:00 is 0).
const EPOCH_WEEK_MINUTE: i64 = 3 * DAY as i64;

/// The time atoms of a policy: which windows can be open together.
struct Clock {
    atoms: usize,
    /// Window name → the atoms in which it is open.
    open: HashMap<String, Times>,
}

impl Clock {
    /// Atoms over the windows in `used` (the others decide nothing).
    fn new(windows: &[TimeWindow], used: &BTreeSet<&str>) -> Clock {
        let ws: Vec<(&TimeWindow, WeekSet)> = windows
            .iter()
            .filter(|w| used.contains(w.name.as_str()))
            .map(|w| (w, WeekSet::of_window(w)))
            .collect();
        let states = states(&ws);
        let atoms = states.len();
        let mut open: HashMap<String, Times> = ws
            .iter()
            .map(|(w, _)| (w.name.clone(), Times::empty(atoms)))
            .collect();
        for (i, state) in states.iter().enumerate() {
            for ((w, _), is_open) in ws.iter().zip(state) {
                if *is_open && let Some(t) = open.get_mut(&w.name) {
                    t.insert(i);
                }
            }
        }
        Clock { atoms, open }
    }

    fn all(&self) -> Times {
        Times::full(self.atoms)
    }

    /// The atoms in which an entry with this condition applies.
    fn when(&self, c: Option<&WindowCondition>) -> Times {
        let Some(c) = c else {
            return self.all();
        };
        let open = self
            .open
            .get(&c.name)
            .cloned()
            .unwrap_or_else(|| Times::empty(self.atoms));
        match c.when {
            WindowWhen::During => open,
            WindowWhen::Outside => self.all().minus(&open),
        }
    }
}

/// The combinations of window states (in the order of `ws`) that occur.
fn states(ws: &[(&TimeWindow, WeekSet)]) -> BTreeSet<Vec<bool>> {
    let mut out = BTreeSet::new();
    let zones: BTreeSet<&str> = ws.iter().map(|(w, _)| w.zone.as_str()).collect();
    if zones.len() <= 1 {
        // one zone: local minutes of the week line up for every window
        sweep(ws, &vec![0; ws.len()], 0, WEEK, &mut out);
        return out;
    }
    let tz: HashMap<&str, TimeZone> = zones
        .iter()
        .map(|z| (*z, TimeZone::get(z).unwrap_or(TimeZone::UTC)))
        .collect();
    let start = Timestamp::from_second(FROM_YEAR_START).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut cuts: BTreeSet<i64> = BTreeSet::from([FROM_YEAR_START, TO_YEAR_START]);
    for z in tz.values() {
        for t in z.following(start) {
            let s = t.timestamp().as_second();
            if s >= TO_YEAR_START {
                break;
            }
            cuts.insert(s);
        }
    }
    let cuts: Vec<i64> = cuts.into_iter().collect();
    let mut full_weeks: BTreeSet<Vec<i64>> = BTreeSet::new();
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let at = Timestamp::from_second(a).unwrap_or(start);
        let offsets: Vec<i64> = ws
            .iter()
            .map(|(w, _)| {
                tz.get(w.zone.as_str())
                    .map_or(0, |z| i64::from(z.to_offset(at).seconds()).div_euclid(60))
            })
            .collect();
        let minutes = (b - a + 59) / 60;
        if minutes >= i64::from(WEEK) {
            if full_weeks.insert(offsets.clone()) {
                sweep(ws, &offsets, 0, WEEK, &mut out);
            }
        } else {
            let from = (a.div_euclid(60) + EPOCH_WEEK_MINUTE).rem_euclid(i64::from(WEEK));
            sweep(
                ws,
                &offsets,
                u32::try_from(from).unwrap_or(0),
                u32::try_from(minutes).unwrap_or(0),
                &mut out,
            );
        }
    }
    out
}

/// Adds the window states at UTC minutes `from .. from + len` of the week
/// (wrapping), where window `i` reads local time as UTC plus `offsets[i]`
/// minutes.
fn sweep(
    ws: &[(&TimeWindow, WeekSet)],
    offsets: &[i64],
    from: u32,
    len: u32,
    out: &mut BTreeSet<Vec<bool>>,
) {
    let week = i64::from(WEEK);
    let to_u32 = |m: i64| u32::try_from(m.rem_euclid(week)).unwrap_or(0);
    let mut points = vec![from];
    for ((_, set), off) in ws.iter().zip(offsets) {
        for b in set.boundaries() {
            let u = to_u32(i64::from(b) - off);
            if (u + WEEK - from) % WEEK < len {
                points.push(u);
            }
        }
    }
    points.sort_unstable();
    points.dedup();
    for u in points {
        let state = ws
            .iter()
            .zip(offsets)
            .map(|((_, set), off)| set.contains(to_u32(i64::from(u) + off)))
            .collect();
        out.insert(state);
    }
}

// ---------------------------------------------------------------- prefix trie

/// One prefix of the destination table with its entries in evaluation order.
struct Node<'a> {
    prefix: &'a str,
    entries: Vec<&'a DestinationRule>,
    /// The nearest shorter prefix with entries.
    parent: Option<usize>,
    /// When a number decided here is allowed.
    allow: Times,
}

struct Table<'a> {
    /// Sorted by prefix: a node's descendants follow it contiguously.
    nodes: Vec<Node<'a>>,
    by_prefix: HashMap<&'a str, usize>,
    /// `allowing[i]`: how many of `nodes[..i]` allow at some time.
    allowing: Vec<usize>,
}

impl<'a> Table<'a> {
    fn new(dests: &'a [DestinationRule], clock: &Clock) -> Table<'a> {
        let mut order: Vec<&DestinationRule> = dests.iter().collect();
        order.sort_by(|a, b| a.prefix.cmp(&b.prefix)); // stable: keeps evaluation order
        let mut nodes: Vec<Node<'a>> = Vec::new();
        let mut by_prefix = HashMap::new();
        let mut stack: Vec<usize> = Vec::new();
        for e in order {
            if let Some(last) = nodes.last_mut()
                && last.prefix == e.prefix
            {
                last.entries.push(e);
                continue;
            }
            while let Some(&top) = stack.last() {
                if e.prefix.starts_with(nodes[top].prefix) {
                    break;
                }
                stack.pop();
            }
            by_prefix.insert(e.prefix.as_str(), nodes.len());
            stack.push(nodes.len());
            nodes.push(Node {
                prefix: &e.prefix,
                entries: vec![e],
                parent: stack.len().checked_sub(2).map(|i| stack[i]),
                allow: Times::empty(clock.atoms),
            });
        }
        for i in 0..nodes.len() {
            let fallback = match nodes[i].parent {
                Some(p) => nodes[p].allow.clone(),
                None => Times::empty(clock.atoms),
            };
            nodes[i].allow = eval(clock, nodes[i].entries.iter().copied(), &fallback);
        }
        let mut allowing = Vec::with_capacity(nodes.len() + 1);
        allowing.push(0);
        for n in &nodes {
            let last = allowing.last().copied().unwrap_or(0);
            allowing.push(last + usize::from(!n.allow.is_empty()));
        }
        Table {
            nodes,
            by_prefix,
            allowing,
        }
    }

    /// The node deciding a number that starts with `prefix` and with no longer entry.
    fn deepest(&self, prefix: &str) -> Option<usize> {
        (0..=prefix.len())
            .rev()
            .find_map(|len| self.by_prefix.get(prefix.get(..len)?).copied())
    }

    /// The nodes at or under `prefix`.
    fn under(&self, prefix: &str) -> std::ops::Range<usize> {
        let lo = self.nodes.partition_point(|n| n.prefix < prefix);
        let hi = self
            .nodes
            .partition_point(|n| n.prefix < prefix || n.prefix.starts_with(prefix));
        lo..hi
    }

    fn fallback(&self, node: usize, clock: &Clock) -> Times {
        match self.nodes[node].parent {
            Some(p) => self.nodes[p].allow.clone(),
            None => Times::empty(clock.atoms),
        }
    }

    /// Whether some number starting with `prefix` is allowed at some time.
    fn ever_allows_under(&self, prefix: &str) -> bool {
        let decided_above = self
            .deepest(prefix)
            .is_some_and(|n| !self.nodes[n].allow.is_empty());
        let r = self.under(prefix);
        decided_above || self.allowing[r.end] > self.allowing[r.start]
    }

    /// The rules deciding `atoms` for a number decided at `node` with
    /// `entries` in place of the node's own (falling through to its parents).
    fn deciders(
        &self,
        clock: &Clock,
        node: usize,
        entries: &[&'a DestinationRule],
        mut atoms: Times,
        out: &mut BTreeSet<&'a str>,
    ) {
        for e in entries {
            let hit = clock.when(e.window.as_ref()).and(&atoms);
            if !hit.is_empty() {
                out.insert(&e.rule);
                atoms = atoms.minus(&hit);
            }
        }
        let mut at = self.nodes[node].parent;
        while let Some(p) = at {
            if atoms.is_empty() {
                return;
            }
            for e in &self.nodes[p].entries {
                let hit = clock.when(e.window.as_ref()).and(&atoms);
                if !hit.is_empty() {
                    out.insert(&e.rule);
                    atoms = atoms.minus(&hit);
                }
            }
            at = self.nodes[p].parent;
        }
    }
}

/// The atoms in which a number decided by `entries` (in order, falling back
/// to `fallback`) is allowed.
fn eval<'e>(
    clock: &Clock,
    entries: impl IntoIterator<Item = &'e DestinationRule>,
    fallback: &Times,
) -> Times {
    let mut left = clock.all();
    let mut allow = Times::empty(clock.atoms);
    for e in entries {
        let hit = clock.when(e.window.as_ref()).and(&left);
        if e.action == Verdict::Allow {
            allow.union_with(&hit);
        }
        left = left.minus(&hit);
    }
    allow.union_with(&fallback.and(&left));
    allow
}

// ---------------------------------------------------------------- the checks

struct Cx<'a> {
    input: &'a Input<'a>,
    clock: Clock,
    table: Table<'a>,
    sources: HashMap<&'a str, &'a RuleSource>,
}

/// Destination rules written with a selector (not the two defaults).
fn is_selector_rule(id: &str) -> bool {
    ["dst:prefix:", "dst:country:", "dst:class:"]
        .iter()
        .any(|p| id.starts_with(p))
}

/// The window a rule id names (`dst:...@office`, `dst:...@outside:office`).
fn window_of(id: &str) -> Option<&str> {
    let (_, w) = id.split_once('@')?;
    Some(w.strip_prefix("outside:").unwrap_or(w))
}

/// `a`, `a` and `b`, `a`, `b` and `c`, `a`, `b`, `c` and 2 more.
fn list(items: &[String], max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(String::as_str).collect();
    let rest = items.len().saturating_sub(max);
    match (shown.as_slice(), rest) {
        ([], _) => String::new(),
        ([one], 0) => (*one).to_string(),
        (many, 0) => format!(
            "{} and {}",
            many[..many.len() - 1].join(", "),
            many[many.len() - 1]
        ),
        (many, rest) => format!("{} and {rest} more", many.join(", ")),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn duration_text(seconds: u64) -> String {
    let mut s = seconds;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

impl<'a> Cx<'a> {
    fn new(input: &'a Input<'a>) -> Cx<'a> {
        let p = input.policy;
        let used: BTreeSet<&str> = p
            .destinations
            .iter()
            .filter_map(|d| d.window.as_ref().map(|w| w.name.as_str()))
            .collect();
        let clock = Clock::new(&p.windows, &used);
        let table = Table::new(&p.destinations, &clock);
        let sources = p.rules.iter().map(|r| (r.id.as_str(), r)).collect();
        Cx {
            input,
            clock,
            table,
            sources,
        }
    }

    fn in_root(&self, id: &str) -> Option<Span> {
        match self.input.declared_at.get(id) {
            Some((f, span)) if *f == self.input.root => Some(*span),
            _ => None,
        }
    }

    /// Order of windowed entries within a prefix: later file first, then as written.
    fn order_key(&self, e: &DestinationRule) -> (bool, std::cmp::Reverse<usize>, usize) {
        let (precedence, start) = match self.input.declared_at.get(&e.rule) {
            Some((f, span)) if is_selector_rule(&e.rule) => (
                self.input
                    .files
                    .iter()
                    .position(|x| x == f)
                    .map_or(0, |i| i + 1),
                span.start,
            ),
            _ => (0, 0),
        };
        (e.window.is_none(), std::cmp::Reverse(precedence), start)
    }

    /// Labels the places of other rules declared in the root file (labels
    /// cannot cross files: [`Cx::named`] gives the others' positions).
    fn point_at<'r>(
        &self,
        mut diag: Diagnostic,
        rules: impl IntoIterator<Item = &'r str>,
        what: &str,
    ) -> Diagnostic {
        for id in rules {
            if let Some(span) = self.in_root(id)
                && span != diag.label.span
            {
                diag = diag.with_related(span, what);
            }
        }
        diag
    }

    /// Points at one other rule: a label in the root file, otherwise its
    /// `file:line:col` at the end of the help.
    fn also_at(&self, diag: Diagnostic, id: &str, what: &str) -> Diagnostic {
        if self.in_root(id).is_some() {
            return self.point_at(diag, [id], what);
        }
        let Some(src) = self.sources.get(id) else {
            return diag;
        };
        let place = format!("{what}: {}:{}:{}", src.file, src.line, src.column);
        let help = match diag.help.clone() {
            Some(h) => format!("{h} ({place})"),
            None => place,
        };
        diag.with_help(help)
    }

    /// Rule ids for a message: a rule of another file with its `file:line:col`.
    fn named(&self, ids: &BTreeSet<&str>) -> String {
        let names: Vec<String> = ids.iter().map(|id| self.describe(id)).collect();
        list(&names, 3)
    }

    fn describe(&self, id: &str) -> String {
        match id {
            "dst:international" if !self.input.declared_at.contains_key(id) => {
                "the `international` default (deny)".into()
            }
            "dst:national" if !self.input.declared_at.contains_key(id) => {
                "the `national` default (allow)".into()
            }
            _ => match self.sources.get(id) {
                Some(src) if self.in_root(id).is_none() => {
                    format!("`{id}` ({}:{}:{})", src.file, src.line, src.column)
                }
                _ => format!("`{id}`"),
            },
        }
    }

    // ------------------------------------------------------------ destinations

    /// `never-decides` and `redundant-rule`.
    fn destination_rules(&self, out: &mut Vec<Diagnostic>) {
        let mut nodes_of: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in self.table.nodes.iter().enumerate() {
            for e in &n.entries {
                nodes_of.entry(e.rule.as_str()).or_default().push(i);
            }
        }
        for (id, (file, span)) in self.input.declared_at {
            if *file != self.input.root || !is_selector_rule(id) {
                continue;
            }
            match nodes_of.get(id.as_str()) {
                None => out.push(self.never_decides(id, *span)),
                Some(nodes) => {
                    if let Some(instead) = self.redundant(id, nodes) {
                        let help = if instead.is_empty() {
                            "remove it: its window condition never holds, so it never decides a call".to_string()
                        } else {
                            format!(
                                "remove it; without it {} decide{} the same at all times",
                                self.named(&instead),
                                if instead.len() == 1 { "s" } else { "" }
                            )
                        };
                        let diag = Diagnostic::warning(
                            "analysis::redundant-rule",
                            self.input.root,
                            *span,
                            format!("destination rule `{id}` is redundant: every call it matches gets the same decision without it"),
                        )
                        .with_label("changes no decision")
                        .with_help(help);
                        out.push(self.point_at(
                            diag,
                            instead.iter().copied(),
                            "decides without it",
                        ));
                    }
                }
            }
        }
    }

    fn never_decides(&self, id: &str, span: Span) -> Diagnostic {
        let winners: BTreeSet<&str> = self
            .input
            .displaced
            .get(id)
            .map(|w| w.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let help = if winners.is_empty() {
            "remove this rule".to_string()
        } else {
            format!(
                "{} take{} every entry it would make (at the same prefix and window, the later file's rule or the more specific selector wins); remove this rule or change the other",
                self.named(&winners),
                if winners.len() == 1 { "s" } else { "" }
            )
        };
        let diag = Diagnostic::warning(
            "analysis::never-decides",
            self.input.root,
            span,
            format!("destination rule `{id}` never decides a call"),
        )
        .with_label("every prefix of this rule is taken by another rule")
        .with_help(help);
        self.point_at(diag, winners.iter().copied(), "decides instead")
    }

    /// When removing the rule (its entries at `nodes`) changes no decision at
    /// any time: the rules that then decide.
    fn redundant(&self, id: &str, nodes: &[usize]) -> Option<BTreeSet<&'a str>> {
        if self.input.replaced.contains(id) {
            // removing it brings back the imported rule of the same id, which
            // the IR no longer holds (`override-changes-nothing` is the check for it)
            return None;
        }
        let mut instead = BTreeSet::new();
        for &i in nodes {
            let node = &self.table.nodes[i];
            let mine = node.entries.iter().find(|e| e.rule == id)?;
            let mut entries: Vec<&'a DestinationRule> = node
                .entries
                .iter()
                .copied()
                .filter(|e| e.rule != id)
                .collect();
            if let Some(r) = self
                .input
                .runner_up
                .get(&(node.prefix.to_string(), mine.window.clone()))
            {
                if self.in_root(&r.rule).is_some() {
                    // two rules of this file at one entry: `never-decides`
                    // speaks of the one that lost; removing both would change
                    // decisions, so do not call the winner redundant too
                    return None;
                }
                let key = self.order_key(r);
                let at = entries
                    .iter()
                    .position(|e| self.order_key(e) > key)
                    .unwrap_or(entries.len());
                entries.insert(at, r);
            }
            let fallback = self.table.fallback(i, &self.clock);
            let without = eval(&self.clock, entries.iter().copied(), &fallback);
            if without != node.allow {
                return None;
            }
            // the rule decided where its condition held and nothing earlier applied
            let mut before = self.clock.all();
            for e in &node.entries {
                if e.rule == id {
                    break;
                }
                before = before.minus(&self.clock.when(e.window.as_ref()));
            }
            let atoms = self.clock.when(mine.window.as_ref()).and(&before);
            self.table
                .deciders(&self.clock, i, &entries, atoms, &mut instead);
        }
        Some(instead)
    }

    // ------------------------------------------------------------ sources

    fn source_overlaps(&self, out: &mut Vec<Diagnostic>) {
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

    fn overlap(
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
        let diag = Diagnostic::warning("analysis::source-overlap", self.input.root, here, message)
            .with_label("overlaps a network with the opposite action")
            .with_help(format!(
                "the longest match wins: {effect}; if that is not what you meant, change or remove one of the rules"
            ));
        Some(self.also_at(diag, other, "the other network"))
    }

    // ------------------------------------------------------------ windows

    fn windows(&self, out: &mut Vec<Diagnostic>) {
        // window → the destination rules naming it (displaced ones included)
        let mut users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for id in self.input.declared_at.keys() {
            if id.starts_with("dst:")
                && let Some(w) = window_of(id)
            {
                users.entry(w).or_default().push(id);
            }
        }
        for w in &self.input.policy.windows {
            let set = WeekSet::of_window(w);
            let used_by = users.get(w.name.as_str()).cloned().unwrap_or_default();
            let state = if set.is_empty() {
                Some((
                    "analysis::window-never-open",
                    "is never open",
                    "`during` rules on it never apply and `outside` rules always do; give it a period that opens, or remove it",
                ))
            } else if set.is_full() && !used_by.is_empty() {
                Some((
                    "analysis::window-always-open",
                    "is open all week",
                    "`outside` rules on it never apply and `during` rules always do; narrow its periods, or drop the window from those rules",
                ))
            } else {
                None
            };
            match (self.in_root(&w.rule), state) {
                (Some(span), Some((code, what, help))) => {
                    let users: Vec<String> = used_by.iter().map(|u| format!("`{u}`")).collect();
                    let message = if users.is_empty() {
                        format!("window `{}` {what}", w.name)
                    } else {
                        format!("window `{}` {what} (used by {})", w.name, list(&users, 3))
                    };
                    out.push(
                        Diagnostic::warning(code, self.input.root, span, message).with_help(help),
                    );
                }
                (None, Some((code, what, help))) => {
                    for u in &used_by {
                        let Some(span) = self.in_root(u) else {
                            continue;
                        };
                        let diag = Diagnostic::warning(
                            code,
                            self.input.root,
                            span,
                            format!("destination rule `{u}` uses window `{}`, which {what}", w.name),
                        )
                        .with_help(help);
                        out.push(self.also_at(diag, &w.rule, "the window"));
                    }
                }
                (Some(span), None) if used_by.is_empty() => out.push(
                    Diagnostic::warning(
                        "analysis::unused-window",
                        self.input.root,
                        span,
                        format!("window `{}` is not used by any rule", w.name),
                    )
                    .with_help(format!(
                        "use it with `during {0}` or `outside {0}` on a destination rule, or remove it",
                        w.name
                    )),
                ),
                _ => {}
            }
        }
    }

    // ------------------------------------------------------------ limits

    /// Whether every call to `class` is denied at all times.
    fn class_always_denied(&self, class: &str) -> bool {
        let policy = self.input.policy;
        let national: Vec<&str> = policy
            .classes
            .iter()
            .filter(|c| c.class == "national")
            .map(|c| c.prefix.as_str())
            .collect();
        match class {
            "national" => !national.iter().any(|p| self.table.ever_allows_under(p)),
            "international" => {
                let national: HashSet<&str> = national.into_iter().collect();
                let inside_national = |p: &str| (1..=p.len()).any(|l| national.contains(&p[..l]));
                !self
                    .table
                    .nodes
                    .iter()
                    .any(|n| !n.allow.is_empty() && !inside_national(n.prefix))
            }
            _ => match numbering::class(class) {
                Some(c) => !c.prefixes.iter().any(|p| self.table.ever_allows_under(p)),
                None => false,
            },
        }
    }

    fn limits(&self, out: &mut Vec<Diagnostic>) {
        let limits = &self.input.policy.limits;
        for l in limits.iter().filter(|l| l.class.is_some()) {
            let class = l.class.as_deref().unwrap_or_default();
            let tenant = limits
                .iter()
                .find(|t| t.metric == l.metric && t.class.is_none());
            if let Some(span) = self.in_root(&l.rule)
                && class != "national"
                && class != "international"
                && self.class_always_denied(class)
            {
                out.push(
                    Diagnostic::warning(
                        "analysis::limit-never-triggers",
                        self.input.root,
                        span,
                        format!("limit `{}` can never trigger: every call to `{class}` is denied", l.rule),
                    )
                    .with_help("denied calls are never counted; remove the limit, or allow the class in `destinations` if these calls should be possible"),
                );
                continue;
            }
            if matches!(class, "national" | "international")
                && let Some(span) = self.in_root(&l.rule)
                && self.class_always_denied(class)
            {
                out.push(
                    Diagnostic::warning(
                        "analysis::limit-never-triggers",
                        self.input.root,
                        span,
                        format!("limit `{}` can never trigger: every {class} call is denied", l.rule),
                    )
                    .with_help("denied calls are never counted; remove the limit, or allow some of these calls in `destinations`"),
                );
                continue;
            }
            if let Some(t) = tenant
                && let Some(d) = self.shadowed_by_tenant(l, t)
            {
                out.push(d);
            }
        }
    }

    /// A class limit that the tenant-wide limit of the same metric always reaches first.
    fn shadowed_by_tenant(&self, l: &Limit, t: &Limit) -> Option<Diagnostic> {
        let unit = if l.metric == LimitMetric::Rate {
            "/min"
        } else {
            ""
        };
        let (here, other) = match (self.in_root(&l.rule), self.in_root(&t.rule)) {
            (Some(s), _) => (s, &t.rule),
            (None, Some(s)) => (s, &l.rule),
            (None, None) => return None,
        };
        let (message, help) = if l.metric == LimitMetric::Duration {
            let (c, m) = (l.critical?, t.critical?);
            if c < m {
                return None;
            }
            (
                format!(
                    "limit `{}` can never trigger: its maximum {} is not below the tenant-wide maximum {}",
                    l.rule,
                    duration_text(c),
                    duration_text(m)
                ),
                format!(
                    "every call is ended at the tenant-wide maximum first; shorten it below {} or remove it",
                    duration_text(m)
                ),
            )
        } else if let (Some(m), Some((level, n))) = (
            t.critical,
            [("warning", l.warning), ("critical", l.critical)]
                .into_iter()
                .filter_map(|(lv, n)| Some((lv, n?)))
                .find(|(_, n)| Some(*n) > t.critical),
        ) {
            (
                format!(
                    "limit `{}` can never trigger: its {level} level {n}{unit} is above the tenant-wide critical level {m}{unit}",
                    l.rule
                ),
                format!(
                    "calls beyond the tenant-wide critical level are rejected, so this class never gets to {n}{unit}; lower it below {m}{unit} or remove it"
                ),
            )
        } else if let Some((level, n, m)) = [
            ("warning", l.warning, t.warning),
            ("critical", l.critical, t.critical),
        ]
        .into_iter()
        .find_map(|(lv, n, m)| match (n, m) {
            (Some(n), Some(m)) if n >= m => Some((lv, n, m)),
            _ => None,
        }) {
            (
                format!(
                    "limit `{}` never triggers before the tenant-wide limit: its {level} level {n}{unit} is not below the tenant-wide {level} level {m}{unit}",
                    l.rule
                ),
                format!(
                    "the tenant-wide limit counts these calls too and reaches {m}{unit} first; lower this level below {m}{unit} or remove it"
                ),
            )
        } else {
            return None;
        };
        let diag = Diagnostic::warning(
            "analysis::limit-never-triggers",
            self.input.root,
            here,
            message,
        )
        .with_help(help);
        let what = if other == &t.rule {
            "the tenant-wide limit"
        } else {
            "the class limit"
        };
        Some(self.also_at(diag, other, what))
    }

    // ------------------------------------------------------------ premium

    fn premium_open(&self, out: &mut Vec<Diagnostic>) {
        let mut expensive: Vec<&str> = ["premium-rate", "shared-cost"]
            .iter()
            .filter_map(|c| numbering::class(c))
            .flat_map(|c| c.prefixes.iter().map(String::as_str))
            .collect();
        expensive.sort_unstable();
        expensive.dedup();
        // keep the shortest of nested prefixes
        let mut minimal: Vec<&str> = Vec::new();
        for p in expensive {
            if !minimal.last().is_some_and(|m| p.starts_with(m)) {
                minimal.push(p);
            }
        }
        // The national default decides the home country's prefixes, wherever
        // it was written (or left implicit): the tenant's `home` picks them.
        let home_in_root = self.in_root("home").is_some();
        let owner = |r: &'a str| -> Option<&'a str> {
            if self.in_root(r).is_some() {
                Some(r)
            } else if r == "dst:national" && home_in_root {
                Some("home")
            } else {
                None
            }
        };
        // root rule (or `home`) → the allowed expensive prefixes, and whether
        // a longer prefix than the class's decides
        let mut by_rule: BTreeMap<&str, Vec<(&str, bool)>> = BTreeMap::new();
        for p in minimal {
            if !self.table.ever_allows_under(p) {
                continue;
            }
            let mut found: Vec<(&str, bool, BTreeSet<&str>)> = Vec::new();
            if let Some(n) = self.table.deepest(p) {
                let node = &self.table.nodes[n];
                if !node.allow.is_empty() {
                    let mut rules = BTreeSet::new();
                    self.table.deciders(
                        &self.clock,
                        n,
                        &node.entries,
                        node.allow.clone(),
                        &mut rules,
                    );
                    found.push((p, false, rules));
                }
            }
            for i in self.table.under(p) {
                let node = &self.table.nodes[i];
                if node.prefix != p && !node.allow.is_empty() {
                    let mut rules = BTreeSet::new();
                    self.table.deciders(
                        &self.clock,
                        i,
                        &node.entries,
                        node.allow.clone(),
                        &mut rules,
                    );
                    found.push((node.prefix, true, rules));
                }
            }
            for (prefix, longer, rules) in found {
                for o in rules.into_iter().filter_map(owner).collect::<BTreeSet<_>>() {
                    by_rule.entry(o).or_default().push((prefix, longer));
                }
            }
        }
        for (rule, prefixes) in by_rule {
            let Some(span) = self.in_root(rule) else {
                continue;
            };
            let countries: BTreeSet<&str> = prefixes
                .iter()
                .map(|(p, _)| numbering::country_of(p).map_or("non-geographic", |c| c.iso))
                .collect();
            let countries: Vec<String> = countries.iter().map(|c| c.to_string()).collect();
            let shown: Vec<String> = prefixes.iter().map(|(p, _)| format!("`+{p}`")).collect();
            let who = if rule == "home" {
                match self.sources.get("dst:national") {
                    Some(src) if self.input.declared_at.contains_key("dst:national") => format!(
                        "the `national: allow` default ({}:{}:{})",
                        src.file, src.line, src.column
                    ),
                    _ => "the `national` default (allow)".to_string(),
                }
            } else {
                format!("`{rule}`")
            };
            let help = if prefixes.iter().any(|(_, longer)| *longer) {
                format!(
                    "{} decide allow: they lie inside premium-rate or shared-cost prefixes but are longer, so they win over `deny class`; deny them with `deny prefix` unless they must be reachable",
                    list(&shown, 5)
                )
            } else {
                format!(
                    "{} decide allow; unless these numbers must be reachable, add `deny class premium-rate, shared-cost` (class prefixes are longer than a country's, so they win)",
                    list(&shown, 5)
                )
            };
            out.push(
                Diagnostic::warning(
                    "analysis::premium-open",
                    self.input.root,
                    span,
                    format!(
                        "{who} allows calls to {} in {}",
                        plural(
                            prefixes.len(),
                            "premium-rate or shared-cost prefix",
                            "premium-rate or shared-cost prefixes"
                        ),
                        list(&countries, 5)
                    ),
                )
                .with_label("lets expensive numbers through")
                .with_help(help),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_ir::WeeklySpan;

    const WEEKDAYS: [Weekday; 5] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ];
    const ALL_DAYS: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    fn window(name: &str, zone: &str, spans: &[(&[Weekday], u16, u16)]) -> TimeWindow {
        TimeWindow {
            name: name.into(),
            zone: zone.into(),
            spans: spans
                .iter()
                .map(|(days, start, end)| WeeklySpan {
                    days: days.to_vec(),
                    start_minute: *start,
                    end_minute: *end,
                })
                .collect(),
            rule: format!("window:{name}"),
        }
    }

    #[test]
    fn week_sets_cover_days_and_nights() {
        let office = window("o", "UTC", &[(&WEEKDAYS, 480, 1080)]);
        assert_eq!(WeekSet::of_window(&office).minutes(), 5 * 600);
        // Sunday night wraps into Monday morning
        let night = window("n", "UTC", &[(&[Weekday::Sun], 1320, 360)]);
        let set = WeekSet::of_window(&night);
        assert_eq!(set.minutes(), 480);
        assert!(set.contains(0) && set.contains(359) && !set.contains(360));
        assert!(set.contains(WEEK - 1) && !set.contains(6 * DAY + 1319));
        // every day, all day, written two ways
        let all = window("a", "UTC", &[(&ALL_DAYS, 0, 1440)]);
        assert!(WeekSet::of_window(&all).is_full());
        let nights_and_days = window(
            "b",
            "UTC",
            &[(&ALL_DAYS, 1200, 480), (&ALL_DAYS, 480, 1200)],
        );
        assert!(WeekSet::of_window(&nights_and_days).is_full());
        // overlapping spans count once
        let twice = window(
            "t",
            "UTC",
            &[(&WEEKDAYS, 480, 1080), (&WEEKDAYS, 600, 1200)],
        );
        assert_eq!(WeekSet::of_window(&twice).minutes(), 5 * 720);
        // an empty period covers nothing
        let empty = window("e", "UTC", &[(&WEEKDAYS, 600, 600)]);
        assert!(WeekSet::of_window(&empty).is_empty());
    }

    #[test]
    fn atoms_of_one_zone_are_the_combinations_that_occur() {
        let office = window("office", "Europe/London", &[(&WEEKDAYS, 480, 1080)]);
        let lunch = window("lunch", "Europe/London", &[(&WEEKDAYS, 720, 780)]);
        let used = BTreeSet::from(["office", "lunch"]);
        let clock = Clock::new(&[office, lunch], &used);
        // closed/closed, open/closed, open/open; never lunch outside the office
        assert_eq!(clock.atoms, 3);
        let office = clock.when(Some(&WindowCondition {
            name: "office".into(),
            when: WindowWhen::During,
        }));
        let lunch = clock.when(Some(&WindowCondition {
            name: "lunch".into(),
            when: WindowWhen::During,
        }));
        assert!(lunch.minus(&office).is_empty());
        assert!(!office.minus(&lunch).is_empty());
    }

    #[test]
    fn atoms_across_zones_follow_the_offsets() {
        // 09:00-10:00 in London and 04:00-05:00 in New York are the same hour
        // except in the weeks where only one of them has changed to summer time.
        let london = window("london", "Europe/London", &[(&ALL_DAYS, 540, 600)]);
        let ny = window("ny", "America/New_York", &[(&ALL_DAYS, 240, 300)]);
        let used = BTreeSet::from(["london", "ny"]);
        let combos = states(&[
            (&london, WeekSet::of_window(&london)),
            (&ny, WeekSet::of_window(&ny)),
        ]);
        assert!(combos.contains(&vec![true, true]));
        assert!(combos.contains(&vec![false, false]));
        // the US changes a few weeks before Europe: one open without the other
        assert!(combos.contains(&vec![true, false]) || combos.contains(&vec![false, true]));
        let clock = Clock::new(&[london, ny], &used);
        assert!(clock.atoms >= 3);
        // zones 12 hours apart with no DST never overlap these hours
        let tokyo = window("tokyo", "Asia/Tokyo", &[(&ALL_DAYS, 540, 600)]);
        let utc = window("utc", "UTC", &[(&ALL_DAYS, 540, 600)]);
        let combos = states(&[
            (&tokyo, WeekSet::of_window(&tokyo)),
            (&utc, WeekSet::of_window(&utc)),
        ]);
        assert!(!combos.contains(&vec![true, true]));
    }

    fn rule(
        prefix: &str,
        action: Verdict,
        id: &str,
        w: Option<(&str, WindowWhen)>,
    ) -> DestinationRule {
        DestinationRule {
            prefix: prefix.into(),
            action,
            rule: id.into(),
            window: w.map(|(name, when)| WindowCondition {
                name: name.into(),
                when,
            }),
        }
    }

    #[test]
    fn the_trie_falls_through_windows_to_shorter_prefixes() {
        let office = window("office", "UTC", &[(&WEEKDAYS, 480, 1080)]);
        let used = BTreeSet::from(["office"]);
        let clock = Clock::new(std::slice::from_ref(&office), &used);
        assert_eq!(clock.atoms, 2);
        let dests = vec![
            rule("", Verdict::Deny, "dst:international", None),
            rule(
                "33",
                Verdict::Allow,
                "dst:country:FR@office",
                Some(("office", WindowWhen::During)),
            ),
            rule("3389", Verdict::Deny, "dst:class:premium-rate", None),
        ];
        let table = Table::new(&dests, &clock);
        assert_eq!(table.nodes.len(), 3);
        assert_eq!(table.nodes[2].parent, Some(1));
        let open = clock.when(dests[1].window.as_ref());
        assert_eq!(table.nodes[1].allow, open);
        assert!(table.nodes[2].allow.is_empty());
        assert!(table.ever_allows_under("33"));
        assert!(table.ever_allows_under("331"));
        assert!(!table.ever_allows_under("3389"));
        assert!(!table.ever_allows_under("44"));
        assert_eq!(table.under("33"), 1..3);
        assert_eq!(table.deepest("33891"), Some(2));
        assert_eq!(table.deepest("4420"), Some(0));
    }

    #[test]
    fn network_containment_is_found_by_the_nearest_enclosing_network() {
        let a: IpNet = "10.0.0.0/8".parse().unwrap();
        let b: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(a.contains(&b) && !b.contains(&a));
    }

    // ------------------------------------------------ whole analyses on hand-built IR

    fn policy(dests: Vec<DestinationRule>, windows: Vec<TimeWindow>) -> CompiledPolicy {
        CompiledPolicy {
            tenant: "t".into(),
            home_country: "DE".into(),
            numbering_plan: String::new(),
            emergency_numbers: vec!["112".into()],
            destinations: dests,
            classes: Vec::new(),
            sources: Default::default(),
            windows,
            limits: Vec::new(),
            responses: Vec::new(),
            crypto: Default::default(),
            rules: Vec::new(),
        }
    }

    const ROOT: FileId = FileId(1);
    const BASE: FileId = FileId(0);

    /// Runs the analysis with `root` rules declared in the root file and
    /// `base` rules in an imported one; returns (code, rule id at the label).
    fn run(
        p: &CompiledPolicy,
        root: &[&str],
        base: &[&str],
        runner_up: &[DestinationRule],
    ) -> Vec<(&'static str, String)> {
        let mut declared_at = BTreeMap::new();
        let mut names = BTreeMap::new();
        for (i, id) in root.iter().chain(base).enumerate() {
            let file = if i < root.len() { ROOT } else { BASE };
            let span = Span::new(i * 10, i * 10 + 5);
            declared_at.insert(id.to_string(), (file, span));
            names.insert((file, span), id.to_string());
        }
        let runner_up = runner_up
            .iter()
            .map(|r| ((r.prefix.clone(), r.window.clone()), r.clone()))
            .collect();
        let input = Input {
            policy: p,
            root: ROOT,
            declared_at: &declared_at,
            displaced: &BTreeMap::new(),
            files: &[BASE, ROOT],
            runner_up: &runner_up,
            replaced: &BTreeSet::new(),
        };
        let mut out: Vec<(&'static str, String)> = analyze(&input)
            .into_iter()
            .map(|d| (d.code, names[&(d.file, d.label.span)].clone()))
            .collect();
        out.sort();
        out
    }

    fn during(w: &str) -> Option<(&str, WindowWhen)> {
        Some((w, WindowWhen::During))
    }

    fn outside(w: &str) -> Option<(&str, WindowWhen)> {
        Some((w, WindowWhen::Outside))
    }

    fn redundant(found: &[(&'static str, String)]) -> Vec<String> {
        found
            .iter()
            .filter(|(c, _)| *c == "analysis::redundant-rule")
            .map(|(_, r)| r.clone())
            .collect()
    }

    const BERLIN: &str = "Europe/Berlin";

    #[test]
    fn a_rule_inside_a_wider_window_of_the_same_action_is_redundant() {
        let windows = vec![
            window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)]),
            window("lunch", BERLIN, &[(&WEEKDAYS, 720, 780)]),
            window("late", BERLIN, &[(&WEEKDAYS, 720, 1140)]),
        ];
        let intl = rule("", Verdict::Deny, "dst:international", None);
        let at = rule(
            "43",
            Verdict::Allow,
            "dst:country:AT@office",
            during("office"),
        );
        // lunch ⊂ office: redundant
        let p = policy(
            vec![
                intl.clone(),
                at.clone(),
                rule(
                    "431",
                    Verdict::Allow,
                    "dst:prefix:431@lunch",
                    during("lunch"),
                ),
            ],
            windows.clone(),
        );
        let found = run(
            &p,
            &["dst:country:AT@office", "dst:prefix:431@lunch"],
            &[],
            &[],
        );
        assert_eq!(redundant(&found), ["dst:prefix:431@lunch"]);
        // 12:00-19:00 reaches past the office: it decides 18:00-19:00
        let p = policy(
            vec![
                intl.clone(),
                at.clone(),
                rule("431", Verdict::Allow, "dst:prefix:431@late", during("late")),
            ],
            windows.clone(),
        );
        let found = run(
            &p,
            &["dst:country:AT@office", "dst:prefix:431@late"],
            &[],
            &[],
        );
        assert!(redundant(&found).is_empty(), "{found:?}");
        // outside the office the country rule does not apply: the default denies anyway
        let p = policy(
            vec![
                intl.clone(),
                at.clone(),
                rule(
                    "431",
                    Verdict::Deny,
                    "dst:prefix:431@outside:office",
                    outside("office"),
                ),
            ],
            windows.clone(),
        );
        let found = run(
            &p,
            &["dst:country:AT@office", "dst:prefix:431@outside:office"],
            &[],
            &[],
        );
        assert_eq!(redundant(&found), ["dst:prefix:431@outside:office"]);
        // ... but not when the parent allows at all times
        let p = policy(
            vec![
                intl,
                rule("43", Verdict::Allow, "dst:country:AT", None),
                rule(
                    "431",
                    Verdict::Deny,
                    "dst:prefix:431@outside:office",
                    outside("office"),
                ),
            ],
            windows,
        );
        let found = run(
            &p,
            &["dst:country:AT", "dst:prefix:431@outside:office"],
            &[],
            &[],
        );
        assert!(redundant(&found).is_empty(), "{found:?}");
    }

    #[test]
    fn the_order_of_windowed_entries_at_one_prefix_counts() {
        let windows = vec![
            window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)]),
            window("lunch", BERLIN, &[(&WEEKDAYS, 720, 780)]),
        ];
        // at +43: deny during lunch is consulted before allow during office
        let p = policy(
            vec![
                rule("", Verdict::Deny, "dst:international", None),
                rule("43", Verdict::Deny, "dst:prefix:43@lunch", during("lunch")),
                rule(
                    "43",
                    Verdict::Allow,
                    "dst:prefix:43@office",
                    during("office"),
                ),
            ],
            windows,
        );
        let found = run(
            &p,
            &["dst:prefix:43@lunch", "dst:prefix:43@office"],
            &[],
            &[],
        );
        assert!(redundant(&found).is_empty(), "{found:?}");
    }

    #[test]
    fn removing_a_rule_brings_back_the_entry_it_displaced() {
        let windows = vec![window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)])];
        let mine = rule("4990", Verdict::Deny, "dst:prefix:4990", None);
        let dests = vec![rule("", Verdict::Allow, "dst:international", None), mine];
        let p = policy(dests, windows);
        // the base's class rule would deny too: redundant, named with its place
        let base_deny = rule("4990", Verdict::Deny, "dst:class:premium-rate", None);
        let found = run(
            &p,
            &["dst:prefix:4990"],
            &["dst:class:premium-rate"],
            &[base_deny],
        );
        assert_eq!(redundant(&found), ["dst:prefix:4990"]);
        // the base's rule allowed: not redundant
        let base_allow = rule("4990", Verdict::Allow, "dst:class:premium-rate", None);
        let found = run(
            &p,
            &["dst:prefix:4990"],
            &["dst:class:premium-rate"],
            &[base_allow],
        );
        assert!(redundant(&found).is_empty(), "{found:?}");
        // without a runner-up the default (allow) takes over: not redundant
        let found = run(&p, &["dst:prefix:4990"], &[], &[]);
        assert!(redundant(&found).is_empty(), "{found:?}");
    }

    #[test]
    fn a_windowed_runner_up_goes_back_to_its_place_in_the_order() {
        let windows = vec![
            window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)]),
            window("lunch", BERLIN, &[(&WEEKDAYS, 720, 780)]),
        ];
        // root: deny +43 during office (written first), allow +43 during lunch
        // (consulted after it, so it never decides). The base's deny during
        // office is the runner-up of the root's: without the root's rule it
        // comes after the root's lunch entry, so lunch becomes allowed.
        let p = policy(
            vec![
                rule("", Verdict::Deny, "dst:international", None),
                rule(
                    "43",
                    Verdict::Deny,
                    "dst:prefix:43@office",
                    during("office"),
                ),
                rule("43", Verdict::Allow, "dst:prefix:43@lunch", during("lunch")),
            ],
            windows,
        );
        let base = rule(
            "43",
            Verdict::Deny,
            "dst:country:AT@office",
            during("office"),
        );
        let found = run(
            &p,
            &["dst:prefix:43@office", "dst:prefix:43@lunch"],
            &["dst:country:AT@office"],
            &[base],
        );
        // had the runner-up taken the removed entry's place, the office rule
        // would look redundant too
        assert_eq!(redundant(&found), ["dst:prefix:43@lunch"]);
    }

    #[test]
    fn rules_without_entries_never_decide() {
        let p = policy(
            vec![rule("", Verdict::Deny, "dst:international", None)],
            vec![],
        );
        let found = run(&p, &["dst:country:FR"], &[], &[]);
        assert_eq!(
            found,
            [("analysis::never-decides", "dst:country:FR".to_string())]
        );
    }

    #[test]
    fn window_coverage_warnings() {
        let windows = vec![
            window("never", BERLIN, &[(&WEEKDAYS, 600, 600)]),
            window("always", BERLIN, &[(&ALL_DAYS, 0, 1440)]),
            window("idle", BERLIN, &[(&WEEKDAYS, 480, 1080)]),
        ];
        let p = policy(
            vec![
                rule("", Verdict::Deny, "dst:international", None),
                rule(
                    "43",
                    Verdict::Allow,
                    "dst:country:AT@always",
                    during("always"),
                ),
            ],
            windows,
        );
        let found = run(
            &p,
            &[
                "window:never",
                "window:always",
                "window:idle",
                "dst:country:AT@always",
            ],
            &[],
            &[],
        );
        let codes: Vec<(&str, &str)> = found.iter().map(|(c, r)| (*c, r.as_str())).collect();
        assert!(
            codes.contains(&("analysis::window-never-open", "window:never")),
            "{codes:?}"
        );
        assert!(
            codes.contains(&("analysis::window-always-open", "window:always")),
            "{codes:?}"
        );
        assert!(
            codes.contains(&("analysis::unused-window", "window:idle")),
            "{codes:?}"
        );
        // a base's always-open window is reported at the root rule that uses it
        let found = run(&p, &["dst:country:AT@always"], &["window:always"], &[]);
        assert!(found.contains(&(
            "analysis::window-always-open",
            "dst:country:AT@always".into()
        )));
    }

    fn net(cidr: &str, action: Verdict, trunk: Option<&str>, rule: &str) -> SourceNetwork {
        SourceNetwork {
            cidr: cidr.into(),
            action,
            trunk: trunk.map(String::from),
            rule: rule.into(),
        }
    }

    #[test]
    fn source_overlaps_compare_with_the_nearest_enclosing_network() {
        let mut p = policy(
            vec![rule("", Verdict::Deny, "dst:international", None)],
            vec![],
        );
        p.sources.networks = vec![
            net("10.0.0.0/8", Verdict::Deny, None, "a"),
            net("10.1.0.0/16", Verdict::Allow, None, "b"),
            net("10.1.2.0/24", Verdict::Deny, None, "c"),
            net("10.1.2.3/32", Verdict::Allow, None, "d"),
            net("10.2.0.0/16", Verdict::Deny, None, "e"),
            net("2001:db8::/32", Verdict::Deny, None, "f"),
            net("2001:db8:1::/48", Verdict::Allow, Some("carrier"), "g"),
            net("192.0.2.0/24", Verdict::Allow, None, "h"),
            net("192.0.2.0/25", Verdict::Allow, None, "i"),
            net("198.51.100.0/24", Verdict::Allow, None, "j"),
            net("198.51.100.7/32", Verdict::Deny, None, "k"),
        ];
        let root = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "k"];
        let found = run(&p, &root, &["j"], &[]);
        let at: Vec<&str> = found
            .iter()
            .filter(|(c, _)| *c == "analysis::source-overlap")
            .map(|(_, r)| r.as_str())
            .collect();
        // b opens /8, d opens c, g (a trunk) opens f, k cuts into the base's j;
        // c inside b is an exclusion in one file, e and i agree with their parents
        assert_eq!(at, ["b", "d", "g", "k"]);
    }

    #[test]
    fn class_limits_that_cannot_trigger() {
        let p = policy(
            vec![
                rule("", Verdict::Deny, "dst:international", None),
                rule("49", Verdict::Allow, "dst:national", None),
            ],
            vec![],
        );
        let mut p = p;
        p.classes = vec![tollgate_ir::ClassPrefix {
            prefix: "49".into(),
            class: "national".into(),
        }];
        let limit = |class: Option<&str>, w: Option<u64>, c: Option<u64>, id: &str| Limit {
            metric: LimitMetric::Concurrent,
            class: class.map(String::from),
            warning: w,
            critical: c,
            rule: id.into(),
        };
        p.limits = vec![
            limit(None, Some(10), Some(20), "limit:concurrent"),
            limit(
                Some("international"),
                None,
                Some(2),
                "limit:concurrent:international",
            ),
            limit(
                Some("national"),
                Some(5),
                Some(19),
                "limit:concurrent:national",
            ),
        ];
        let found = run(
            &p,
            &[
                "limit:concurrent",
                "limit:concurrent:international",
                "limit:concurrent:national",
            ],
            &[],
            &[],
        );
        // international calls are all denied; national 19 < 20 and 5 < 10 are fine
        assert_eq!(
            found,
            [(
                "analysis::limit-never-triggers",
                "limit:concurrent:international".to_string()
            )]
        );
    }

    #[test]
    fn a_hundred_thousand_prefix_rules() {
        let windows = vec![window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)])];
        let mut dests = vec![rule("", Verdict::Deny, "dst:international", None)];
        let mut ids = Vec::new();
        for i in 0..100_000u32 {
            let prefix = format!("4{i:06}");
            let (action, w) = if i % 3 == 0 {
                (Verdict::Allow, during("office"))
            } else {
                (Verdict::Deny, None)
            };
            let id = format!("dst:prefix:{prefix}");
            dests.push(rule(&prefix, action, &id, w));
            ids.push(id);
        }
        let p = policy(dests, windows);
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let started = std::time::Instant::now();
        let found = run(&p, &ids, &[], &[]);
        eprintln!(
            "analysis of 100000 prefix rules: {:?}, {} warnings",
            started.elapsed(),
            found.len()
        );
        // every deny under the international deny changes nothing
        assert_eq!(redundant(&found).len(), 66_666);
    }

    #[test]
    fn lists_and_durations_read_well() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(list(&s(&["a"]), 3), "a");
        assert_eq!(list(&s(&["a", "b"]), 3), "a and b");
        assert_eq!(
            list(&s(&["a", "b", "c", "d", "e"]), 3),
            "a, b, c and 2 more"
        );
        assert_eq!(duration_text(5400), "1h30m");
        assert_eq!(duration_text(0), "0s");
    }
}
