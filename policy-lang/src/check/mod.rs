//! Semantic checks, import merging and lowering to the compiled IR.
//!
//! A tenant file and the bases it imports are checked file by file (every
//! value is validated where it was written, so each error points at its
//! source), then merged in import order, then checked as a whole
//! (cross-references such as window names), then lowered to
//! [`CompiledPolicy`].
//!
//! ## Override rules
//! Every declaration has a key (its rule id, e.g. `dst:country:FR`,
//! `window:business`, `limit:concurrent`). Files are applied in import order,
//! depth first, each file once at its first import, the importing file last.
//! A later file's declaration replaces an earlier one with the same key; keys
//! that appear twice in one file are an error.

use crate::analysis;
use crate::ast::{self, Action, FileKind, Scope, Stmt};
use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::load::Workspace;
use crate::numbering::{self, Country, NumberClass};
use crate::source::FileId;
use crate::span::{Span, Spanned};
use ipnet::IpNet;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use tollgate_ir as ir;

mod declare;
mod imports;
mod lower;
mod resolve;

/// The destination classes that are not number classes.
pub const SCOPE_CLASSES: [&str; 2] = ["international", "national"];
/// The class that can never be blocked.
pub const EMERGENCY: &str = "emergency";
/// Anomaly kinds a response may name.
pub const ANOMALIES: [&str; 4] = ["any", "new-destination", "traffic", "unusual-hours"];
/// The longest E.164 number.
pub const MAX_E164_DIGITS: usize = 15;

/// The outcome of checking one file.
#[derive(Debug)]
pub struct Compilation {
    /// The file checked.
    pub file: FileId,
    /// Every file the result depends on, in the order applied (imports first, `file` last).
    pub files: Vec<FileId>,
    /// What the file declares itself to be (`None` when its header did not parse).
    pub kind: Option<FileKind>,
    /// The compiled policy of a tenant file without errors.
    pub policy: Option<ir::CompiledPolicy>,
    /// Syntax and semantic problems of the file and the files it imports.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks `path` with its imports and, for a tenant file without errors,
/// compiles it. Fails only when `path` itself cannot be read.
pub fn check(ws: &mut Workspace, path: &Path) -> std::io::Result<Compilation> {
    let root = ws.load(path)?;
    let mut cx = Cx {
        ws,
        diags: Vec::new(),
        displaced: BTreeMap::new(),
        runner_up: BTreeMap::new(),
    };
    let order = cx.import_order(root);
    let kind = cx
        .ws
        .parsed(root)
        .ast
        .as_ref()
        .map(|f| f.header.node.kind.node);

    let mut merged = Merged::default();
    for (precedence, &file) in order.iter().enumerate() {
        for d in &cx.ws.parsed(file).diagnostics {
            cx.diags.push(d.clone());
        }
        let Some(ast) = cx.ws.parsed(file).ast.clone() else {
            continue;
        };
        let decls = cx.declarations(file, precedence, &ast);
        merged.apply(decls);
    }

    for (key, new, old) in &merged.unchanged_overrides {
        if new.file == root {
            let diag = Diagnostic::warning(
                Code::AnalysisOverrideChangesNothing,
                new.file,
                new.span,
                format!("`{key}` declares what the imported policy already declares"),
            )
            .with_label("same as the imported declaration")
            .with_help("this override changes nothing; remove it, or change it if you meant something else");
            let diag = cx.also_at(diag, old, "imported from");
            cx.diags.push(diag);
        }
    }
    let policy = match (kind, cx.ws.parsed(root).ast.clone()) {
        (Some(kind), Some(ast)) => {
            let resolved = cx.cross_check(root, kind, &ast, &merged);
            let errors = cx.diags.iter().any(Diagnostic::is_error);
            match (kind, resolved) {
                (FileKind::Tenant, Some(resolved)) if !errors => {
                    // lowering finds conflicts between expanded rules
                    let policy = cx.lower(&ast, &merged, &resolved);
                    if cx.diags.iter().any(Diagnostic::is_error) {
                        None
                    } else {
                        let declared_at = merged
                            .all_origins()
                            .into_iter()
                            .map(|(id, o)| (id.to_string(), (o.file, o.span)))
                            .collect();
                        let input = analysis::Input {
                            policy: &policy,
                            root,
                            declared_at: &declared_at,
                            displaced: &cx.displaced,
                            files: &order,
                            runner_up: &cx.runner_up,
                            replaced: &merged.replaced_dests,
                        };
                        cx.diags.extend(analysis::analyze(&input));
                        Some(policy)
                    }
                }
                _ => None,
            }
        }
        _ => None,
    };
    let mut diagnostics = cx.diags;
    sort_dedup(&mut diagnostics);
    Ok(Compilation {
        file: root,
        files: order,
        kind,
        policy,
        diagnostics,
    })
}

/// Orders diagnostics by file and position and drops exact repeats (a base
/// imported by several tenants is reported once).
pub fn sort_dedup(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| {
        (a.file, a.label.span.start, a.code.as_str(), &a.message).cmp(&(
            b.file,
            b.label.span.start,
            b.code.as_str(),
            &b.message,
        ))
    });
    diags.dedup();
}

// ---------------------------------------------------------------- declarations

/// Where a declaration was written, and how strongly it binds.
#[derive(Clone, Debug)]
struct Origin {
    file: FileId,
    /// The item (a country in a list, a network) the rule id points at.
    span: Span,
    /// The whole statement.
    stmt: Span,
    /// Import order: later files override earlier ones.
    precedence: usize,
}

#[derive(Clone, Debug)]
struct Decl<T> {
    key: String,
    value: T,
    origin: Origin,
}

#[derive(Clone, Debug)]
enum Target {
    Prefix(String),
    Country(&'static Country),
    Class(&'static NumberClass),
}

impl Target {
    /// Higher wins when two rules of one file land on the same prefix with the same action.
    fn specificity(&self) -> u8 {
        match self {
            Target::Prefix(_) => 3,
            Target::Class(_) => 2,
            Target::Country(_) => 1,
        }
    }
}

#[derive(Clone, Debug)]
struct DestRule {
    action: ir::Verdict,
    target: Target,
    window: Option<(ir::WindowCondition, Span)>,
}

#[derive(Clone, Debug)]
struct WindowDecl {
    name_span: Span,
    spans: Vec<ir::WeeklySpan>,
    zone: Option<String>,
}

#[derive(Clone, Debug)]
enum SourceRule {
    Network {
        net: IpNet,
        action: ir::Verdict,
    },
    Trunk {
        name: String,
        nets: Vec<IpNet>,
    },
    Geo {
        country: &'static str,
        mode: ir::GeoMode,
    },
}

#[derive(Clone, Debug)]
struct LimitDecl {
    metric: ir::LimitMetric,
    class: Option<(String, Span)>,
    warning: Option<u64>,
    critical: Option<u64>,
}

#[derive(Clone, Debug)]
struct ResponseDecl {
    trigger: ir::ResponseTrigger,
    /// For a breach: the span of the trigger, to report a missing limit.
    trigger_span: Span,
    action: ir::ResponseAction,
    hold_seconds: Option<u64>,
    until_acknowledged: bool,
}

#[derive(Clone, Copy, Debug)]
struct CryptoDecl {
    required: bool,
}

/// Equal in meaning (spans aside): an override that is `same` as what it
/// replaces changes nothing.
trait Same {
    fn same(&self, other: &Self) -> bool;
}

impl Same for (Scope, ir::Verdict) {
    fn same(&self, other: &Self) -> bool {
        self == other
    }
}

impl Same for DestRule {
    fn same(&self, other: &Self) -> bool {
        let target = match (&self.target, &other.target) {
            (Target::Prefix(a), Target::Prefix(b)) => a == b,
            (Target::Country(a), Target::Country(b)) => a.iso == b.iso,
            (Target::Class(a), Target::Class(b)) => a.name == b.name,
            _ => false,
        };
        let window = self.window.as_ref().map(|w| &w.0) == other.window.as_ref().map(|w| &w.0);
        self.action == other.action && target && window
    }
}

impl Same for WindowDecl {
    fn same(&self, other: &Self) -> bool {
        self.spans == other.spans && self.zone == other.zone
    }
}

impl Same for SourceRule {
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (
                SourceRule::Network { net: a, action: x },
                SourceRule::Network { net: b, action: y },
            ) => a == b && x == y,
            (SourceRule::Trunk { name: a, nets: x }, SourceRule::Trunk { name: b, nets: y }) => {
                a == b && x == y
            }
            (
                SourceRule::Geo {
                    country: a,
                    mode: x,
                },
                SourceRule::Geo {
                    country: b,
                    mode: y,
                },
            ) => a == b && x == y,
            _ => false,
        }
    }
}

impl Same for LimitDecl {
    fn same(&self, other: &Self) -> bool {
        self.metric == other.metric
            && self.class.as_ref().map(|c| &c.0) == other.class.as_ref().map(|c| &c.0)
            && self.warning == other.warning
            && self.critical == other.critical
    }
}

impl Same for ResponseDecl {
    fn same(&self, other: &Self) -> bool {
        self.trigger == other.trigger
            && self.action == other.action
            && self.hold_seconds == other.hold_seconds
            && self.until_acknowledged == other.until_acknowledged
    }
}

impl Same for CryptoDecl {
    fn same(&self, other: &Self) -> bool {
        self.required == other.required
    }
}

/// What one file declares, validated.
#[derive(Default, Debug)]
struct Decls {
    /// A `home` statement was written, valid or not.
    home_written: bool,
    home: Option<Decl<&'static Country>>,
    zone: Option<Decl<String>>,
    defaults: Vec<Decl<(Scope, ir::Verdict)>>,
    dests: Vec<Decl<DestRule>>,
    windows: Vec<Decl<WindowDecl>>,
    sources: Vec<Decl<SourceRule>>,
    limits: Vec<Decl<LimitDecl>>,
    responses: Vec<Decl<ResponseDecl>>,
    crypto: Vec<Decl<CryptoDecl>>,
}

/// All files applied in order: key → the winning declaration.
#[derive(Default, Debug)]
struct Merged {
    /// Declarations that replaced an imported one with the same meaning: (key, new, old).
    unchanged_overrides: Vec<(String, Origin, Origin)>,
    /// Destination rule ids a later file declared again, replacing an earlier file's rule.
    replaced_dests: BTreeSet<String>,
    home_written: bool,
    home: Option<Decl<&'static Country>>,
    zone: Option<Decl<String>>,
    defaults: BTreeMap<String, Decl<(Scope, ir::Verdict)>>,
    dests: BTreeMap<String, Decl<DestRule>>,
    windows: BTreeMap<String, Decl<WindowDecl>>,
    sources: BTreeMap<String, Decl<SourceRule>>,
    limits: BTreeMap<String, Decl<LimitDecl>>,
    responses: BTreeMap<String, Decl<ResponseDecl>>,
    crypto: BTreeMap<String, Decl<CryptoDecl>>,
}

impl Merged {
    fn apply(&mut self, d: Decls) {
        fn put<T: Same>(
            map: &mut BTreeMap<String, Decl<T>>,
            decls: Vec<Decl<T>>,
            same: &mut Vec<(String, Origin, Origin)>,
            replaced: &mut BTreeSet<String>,
        ) {
            // one walk down the map per declaration: at a million rules,
            // each walk is a string of cache misses
            for decl in decls {
                match map.entry(decl.key.clone()) {
                    Entry::Occupied(mut e) => {
                        let old = e.get();
                        if old.origin.file != decl.origin.file {
                            // declared by an earlier file (a key twice in one
                            // file is `no_duplicates`' error, not a replacement)
                            if old.value.same(&decl.value) {
                                same.push((
                                    decl.key.clone(),
                                    decl.origin.clone(),
                                    old.origin.clone(),
                                ));
                            }
                            replaced.insert(decl.key.clone());
                        }
                        e.insert(decl);
                    }
                    Entry::Vacant(e) => {
                        e.insert(decl);
                    }
                }
            }
        }
        let same = &mut self.unchanged_overrides;
        self.home_written |= d.home_written;
        if let (Some(new), Some(old)) = (&d.home, &self.home)
            && new.value.iso == old.value.iso
        {
            same.push((new.key.clone(), new.origin.clone(), old.origin.clone()));
        }
        if let (Some(new), Some(old)) = (&d.zone, &self.zone)
            && new.value == old.value
        {
            same.push((new.key.clone(), new.origin.clone(), old.origin.clone()));
        }
        if d.home.is_some() {
            self.home = d.home;
        }
        if d.zone.is_some() {
            self.zone = d.zone;
        }
        // only destination rules are asked whether they replaced another
        let ignored = &mut BTreeSet::new();
        put(&mut self.defaults, d.defaults, same, ignored);
        put(&mut self.dests, d.dests, same, &mut self.replaced_dests);
        put(&mut self.windows, d.windows, same, ignored);
        put(&mut self.sources, d.sources, same, ignored);
        put(&mut self.limits, d.limits, same, ignored);
        put(&mut self.responses, d.responses, same, ignored);
        put(&mut self.crypto, d.crypto, same, ignored);
    }

    fn all_origins(&self) -> Vec<(&str, &Origin)> {
        fn of<T>(m: &BTreeMap<String, Decl<T>>) -> impl Iterator<Item = (&str, &Origin)> {
            m.iter().map(|(k, d)| (k.as_str(), &d.origin))
        }
        let mut v: Vec<(&str, &Origin)> = Vec::new();
        v.extend(self.home.iter().map(|d| (d.key.as_str(), &d.origin)));
        v.extend(self.zone.iter().map(|d| (d.key.as_str(), &d.origin)));
        v.extend(of(&self.defaults));
        v.extend(of(&self.dests));
        v.extend(of(&self.windows));
        v.extend(of(&self.sources));
        v.extend(of(&self.limits));
        v.extend(of(&self.responses));
        v.extend(of(&self.crypto));
        v
    }
}

/// What the whole-policy checks resolved, for lowering.
#[derive(Debug)]
struct Resolved {
    home: &'static Country,
    windows: Vec<ir::TimeWindow>,
}

struct Cx<'w> {
    ws: &'w mut Workspace,
    diags: Vec<Diagnostic>,
    /// Destination rules that lost a (prefix, window) entry to another rule: rule → winners.
    displaced: BTreeMap<String, BTreeSet<String>>,
    /// Per (prefix, window) entry: the candidate that would take it without its winner.
    runner_up: BTreeMap<(String, Option<ir::WindowCondition>), ir::DestinationRule>,
}

// ---------------------------------------------------------------- helpers

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn verdict(a: Action) -> ir::Verdict {
    match a {
        Action::Allow => ir::Verdict::Allow,
        Action::Deny => ir::Verdict::Deny,
    }
}

fn metric(m: ast::Metric) -> ir::LimitMetric {
    match m {
        ast::Metric::Concurrent => ir::LimitMetric::Concurrent,
        ast::Metric::Rate => ir::LimitMetric::Rate,
        ast::Metric::Duration => ir::LimitMetric::Duration,
    }
}

pub(crate) fn metric_name(m: ir::LimitMetric) -> &'static str {
    match m {
        ir::LimitMetric::Concurrent => "concurrent",
        ir::LimitMetric::Rate => "rate",
        ir::LimitMetric::Duration => "duration",
    }
}

fn clock_text(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The days from `from` to `to`, wrapping past Sunday (`fri-mon`).
fn day_range(from: ir::Weekday, to: ir::Weekday) -> Vec<ir::Weekday> {
    use ir::Weekday::*;
    let all = [Mon, Tue, Wed, Thu, Fri, Sat, Sun];
    let i = all.iter().position(|d| *d == from).unwrap_or(0);
    let j = all.iter().position(|d| *d == to).unwrap_or(0);
    let n = (j + 7 - i) % 7 + 1;
    let mut days: Vec<_> = (0..n).map(|k| all[(i + k) % 7]).collect();
    days.sort();
    days
}

/// Networks ordered IPv4 before IPv6, then by address and prefix length.
fn net_order(a: &IpNet, b: &IpNet) -> std::cmp::Ordering {
    let fam = |n: &IpNet| matches!(n, IpNet::V6(_));
    (fam(a), a.network(), a.prefix_len()).cmp(&(fam(b), b.network(), b.prefix_len()))
}

/// `prefixes` with every carve-out removed: a prefix containing a carve-out is
/// replaced by its sub-prefixes that avoid it, so the result is disjoint from
/// the carve-outs and covers exactly the rest.
pub fn disjoint(prefixes: &[String], carve_outs: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut work: Vec<String> = prefixes.to_vec();
    while let Some(p) = work.pop() {
        let inside: Vec<&String> = carve_outs
            .iter()
            .filter(|c| c.starts_with(p.as_str()))
            .collect();
        if inside.is_empty() {
            out.push(p);
        } else if inside.iter().any(|c| c.len() == p.len()) {
            // p is itself carved out
        } else {
            for digit in '0'..='9' {
                let mut child = p.clone();
                child.push(digit);
                work.push(child);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Help for a country code that is not one: capitals, well-known non-ISO
/// codes, country names; a guess by spelling only for longer words (two-letter
/// codes are all one letter apart).
fn country_help(written: &str) -> String {
    const FORM: &str = "countries are ISO 3166-1 alpha-2 codes such as `GB`, `US`, `DE`";
    let upper = written.to_ascii_uppercase();
    let alias = match upper.as_str() {
        "UK" => Some("GB"),
        "EL" => Some("GR"),
        _ => None,
    };
    if let Some(iso) = alias {
        return format!("did you mean `{iso}`? {FORM}");
    }
    if let Some(c) = numbering::country(&upper) {
        return format!("country codes are written in capitals: `{}`", c.iso);
    }
    let by_name = numbering::countries()
        .iter()
        .find(|c| !c.name.is_empty() && c.name.eq_ignore_ascii_case(written));
    if let Some(c) = by_name {
        return format!("did you mean `{}` ({})? {FORM}", c.iso, c.name);
    }
    if written.chars().count() > 3 {
        let names = numbering::countries()
            .iter()
            .filter(|c| !c.name.is_empty())
            .map(|c| c.name.as_str());
        if let Some(name) = crate::diag::suggest(written, names)
            && let Some(c) = numbering::countries().iter().find(|c| c.name == name)
        {
            return format!("did you mean `{}` ({})? {FORM}", c.iso, c.name);
        }
    }
    FORM.to_string()
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::InvalidData => "not UTF-8 text".into(),
        _ => e.to_string(),
    }
}

/// Help for an address that did not parse.
fn address_help(text: &str) -> String {
    let v4_parts: Vec<&str> = text.split('/').next().unwrap_or("").split('.').collect();
    if v4_parts.len() == 4
        && v4_parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        if let Some(bad) = v4_parts
            .iter()
            .find(|p| p.parse::<u32>().map_or(true, |n| n > 255))
        {
            return format!("each part of an IPv4 address is 0 to 255; `{bad}` is out of range");
        }
        if let Some((_, len)) = text.split_once('/') {
            return format!("an IPv4 prefix length is 0 to 32, not `{len}`");
        }
    }
    "write an IPv4 or IPv6 address (`203.0.113.10`, `2001:db8::1`) or network (`198.51.100.0/24`, `2001:db8::/32`)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn disjoint_splits_around_carve_outs() {
        let out = disjoint(&s(&["44"]), &s(&["4414"]));
        assert!(
            !out.iter()
                .any(|p| "4414".starts_with(p.as_str()) || p.starts_with("4414"))
        );
        assert_eq!(out.len(), 9 + 9);
        assert!(
            out.contains(&"440".to_string())
                && out.contains(&"4415".to_string())
                && out.contains(&"4410".to_string())
        );
        assert_eq!(disjoint(&s(&["33"]), &[]), s(&["33"]));
        assert!(disjoint(&s(&["441481"]), &s(&["441481"])).is_empty());
    }

    #[test]
    fn day_ranges_wrap() {
        use ir::Weekday::*;
        assert_eq!(day_range(Mon, Fri), vec![Mon, Tue, Wed, Thu, Fri]);
        assert_eq!(day_range(Fri, Mon), vec![Mon, Fri, Sat, Sun]);
        assert_eq!(day_range(Sat, Sat), vec![Sat]);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("acme-2"));
        assert!(!is_dns_label("Acme"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a-"));
        assert!(!is_dns_label(""));
    }

    #[test]
    fn address_help_names_the_bad_octet() {
        assert!(address_help("127.0.0.300").contains("`300`"));
        assert!(address_help("10.0.0.0/33").contains("`33`"));
    }
}
