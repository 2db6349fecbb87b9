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
use crate::diag::{Diagnostic, did_you_mean};
use crate::load::Workspace;
use crate::numbering::{self, Country, NumberClass};
use crate::source::FileId;
use crate::span::{Span, Spanned};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use tollgate_crds::policy as ir;

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
                "analysis::override-changes-nothing",
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
        (a.file, a.label.span.start, a.code, &a.message).cmp(&(
            b.file,
            b.label.span.start,
            b.code,
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
        ) {
            for decl in decls {
                if let Some(old) = map.get(&decl.key)
                    && old.origin.file != decl.origin.file
                    && old.value.same(&decl.value)
                {
                    same.push((decl.key.clone(), decl.origin.clone(), old.origin.clone()));
                }
                map.insert(decl.key.clone(), decl);
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
        put(&mut self.defaults, d.defaults, same);
        for decl in &d.dests {
            if self.dests.contains_key(&decl.key) {
                self.replaced_dests.insert(decl.key.clone());
            }
        }
        put(&mut self.dests, d.dests, same);
        put(&mut self.windows, d.windows, same);
        put(&mut self.sources, d.sources, same);
        put(&mut self.limits, d.limits, same);
        put(&mut self.responses, d.responses, same);
        put(&mut self.crypto, d.crypto, same);
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

impl Cx<'_> {
    // ------------------------------------------------------------ imports

    /// Files in the order they apply: imports depth first, each once, `root` last.
    fn import_order(&mut self, root: FileId) -> Vec<FileId> {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        let mut stack = Vec::new();
        self.visit(root, &mut stack, &mut done, &mut order);
        order
    }

    fn visit(
        &mut self,
        file: FileId,
        stack: &mut Vec<FileId>,
        done: &mut BTreeSet<FileId>,
        order: &mut Vec<FileId>,
    ) {
        if !done.insert(file) {
            return;
        }
        stack.push(file);
        let imports: Vec<Spanned<String>> = match &self.ws.parsed(file).ast {
            Some(ast) => ast
                .items
                .iter()
                .filter_map(|i| match &i.node {
                    ast::Item::Import(p) => Some(p.clone()),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        for import in imports {
            let path = self.ws.resolve_import(file, &import.node);
            let id = match self.ws.load(&path) {
                Ok(id) => id,
                Err(e) => {
                    self.diags.push(
                        Diagnostic::error(
                            "import::not-found",
                            file,
                            import.span,
                            format!("cannot read imported file `{}`: {}", import.node, io_reason(&e)),
                        )
                        .with_label("imported here")
                        .with_help("import paths are relative to the importing file; check the path and the file's name"),
                    );
                    continue;
                }
            };
            if let Some(pos) = stack.iter().position(|f| *f == id) {
                let mut cycle: Vec<String> = stack[pos..]
                    .iter()
                    .map(|f| format!("`{}`", self.ws.sources.get(*f).name))
                    .collect();
                cycle.push(format!("`{}`", self.ws.sources.get(id).name));
                self.diags.push(
                    Diagnostic::error("import::cycle", file, import.span, format!("import cycle: {}", cycle.join(" → ")))
                        .with_label("this import closes the cycle")
                        .with_help("a base may import other bases, but never one that (indirectly) imports it; move the shared part into a third base"),
                );
                continue;
            }
            if let Some(kind) = self
                .ws
                .parsed(id)
                .ast
                .as_ref()
                .map(|a| a.header.node.kind.node)
                && kind == FileKind::Tenant
            {
                self.diags.push(
                    Diagnostic::error(
                        "import::tenant",
                        file,
                        import.span,
                        format!("`{}` is a tenant policy and cannot be imported", import.node),
                    )
                    .with_label("imported here")
                    .with_help("only files that start with `base NAME` can be imported; move the shared rules into a base"),
                );
                continue;
            }
            self.visit(id, stack, done, order);
        }
        stack.pop();
        order.push(file);
    }

    // ------------------------------------------------------------ per file

    fn declarations(&mut self, file: FileId, precedence: usize, ast: &ast::File) -> Decls {
        let mut d = Decls::default();
        let origin = |span: Span, stmt: Span| Origin {
            file,
            span,
            stmt,
            precedence,
        };
        self.check_name(file, &ast.header.node.name, "policy");
        for item in &ast.items {
            let stmt_span = item.span;
            match &item.node {
                ast::Item::Import(_) => {}
                ast::Item::Home(code) => {
                    d.home_written = true;
                    if let Some(c) = self.country(file, code, "home::unknown-country") {
                        if let Some(prev) = &d.home {
                            self.duplicate(file, code.span, prev.origin.span, "`home`");
                        } else {
                            d.home = Some(Decl {
                                key: "home".into(),
                                value: c,
                                origin: origin(code.span, stmt_span),
                            });
                        }
                    }
                }
                ast::Item::Zone(z) => {
                    if self.zone(file, z) {
                        if let Some(prev) = &d.zone {
                            self.duplicate(file, z.span, prev.origin.span, "`zone`");
                        } else {
                            d.zone = Some(Decl {
                                key: "zone".into(),
                                value: z.node.clone(),
                                origin: origin(z.span, stmt_span),
                            });
                        }
                    }
                }
                ast::Item::Window(w) => {
                    if let Some(value) = self.window(file, w) {
                        d.windows.push(Decl {
                            key: format!("window:{}", w.name.node),
                            value,
                            origin: origin(w.name.span, stmt_span),
                        });
                    }
                }
                ast::Item::Destinations(b) => {
                    for s in &b.stmts {
                        self.dest_stmt(file, s, &mut d, &origin);
                    }
                }
                ast::Item::Sources(b) => {
                    for s in &b.stmts {
                        self.source_stmt(file, s, &mut d, &origin);
                    }
                }
                ast::Item::Limits(b) => {
                    for s in &b.stmts {
                        if let Some((key, value, span)) = self.limit_stmt(file, &s.node) {
                            d.limits.push(Decl {
                                key,
                                value,
                                origin: origin(span, s.span),
                            });
                        }
                    }
                }
                ast::Item::Responses(b) => {
                    for s in &b.stmts {
                        if let Some((key, value)) = self.response_stmt(file, &s.node) {
                            d.responses.push(Decl {
                                key,
                                value,
                                origin: origin(s.span, s.span),
                            });
                        }
                    }
                }
                ast::Item::Crypto(b) => {
                    for s in &b.stmts {
                        let key = match s.node.key.node {
                            ast::CryptoKey::Tls => "crypto:tls",
                            ast::CryptoKey::Srtp => "crypto:srtp",
                            ast::CryptoKey::ClientCertificate => "crypto:client-certificate",
                        };
                        let value = CryptoDecl {
                            required: s.node.value.node == ast::Requirement::Required,
                        };
                        d.crypto.push(Decl {
                            key: key.into(),
                            value,
                            origin: origin(s.node.key.span, s.span),
                        });
                    }
                }
            }
        }
        self.no_duplicates(file, &d.defaults, "destinations::duplicate", "default");
        self.no_duplicates(
            file,
            &d.dests,
            "destinations::duplicate",
            "destination rule",
        );
        self.no_duplicates(file, &d.windows, "window::duplicate", "window");
        self.no_duplicates(file, &d.sources, "sources::duplicate", "source rule");
        self.no_duplicates(file, &d.limits, "limits::duplicate", "limit");
        self.no_duplicates(file, &d.responses, "responses::duplicate", "response");
        self.no_duplicates(file, &d.crypto, "crypto::duplicate", "crypto setting");
        d
    }

    fn no_duplicates<T>(
        &mut self,
        file: FileId,
        decls: &[Decl<T>],
        code: &'static str,
        what: &str,
    ) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for d in decls {
            if let Some(first) = seen.get(d.key.as_str()) {
                self.diags.push(
                    Diagnostic::error(code, file, d.origin.span, format!("{what} `{}` is declared twice", d.key))
                        .with_label("declared again here")
                        .with_related(*first, "first declared here")
                        .with_help("remove one of them; to change an imported value, declare it once in this file"),
                );
            } else {
                seen.insert(&d.key, d.origin.span);
            }
        }
    }

    fn duplicate(&mut self, file: FileId, span: Span, first: Span, what: &str) {
        self.diags.push(
            Diagnostic::error(
                "policy::duplicate",
                file,
                span,
                format!("{what} is declared twice"),
            )
            .with_label("declared again here")
            .with_related(first, "first declared here")
            .with_help("keep one of them"),
        );
    }

    /// Points a diagnostic at a second place: a label when it is in the same
    /// file, otherwise its position in the help (labels cannot cross files).
    fn also_at(&self, diag: Diagnostic, other: &Origin, what: &str) -> Diagnostic {
        if other.file == diag.file {
            return diag.with_related(other.stmt, what);
        }
        let file = self.ws.sources.get(other.file);
        let (line, column) = file.line_col(other.stmt.start);
        let place = format!("{what}: {}:{line}:{column}", file.name);
        let help = match diag.help.clone() {
            Some(h) => format!("{h} ({place})"),
            None => place,
        };
        diag.with_help(help)
    }

    fn check_name(&mut self, file: FileId, name: &ast::Ident, what: &str) {
        if !is_dns_label(&name.node) {
            self.diags.push(
                Diagnostic::error("policy::bad-name", file, name.span, format!("`{}` is not a valid {what} name", name.node))
                    .with_help("names are 1 to 63 characters of lowercase letters, digits and `-`, starting with a letter and not ending with `-` (a Kubernetes DNS label)"),
            );
        }
    }

    fn country(
        &mut self,
        file: FileId,
        code: &ast::Ident,
        diag_code: &'static str,
    ) -> Option<&'static Country> {
        if let Some(c) = numbering::country(&code.node) {
            return Some(c);
        }
        let help = country_help(&code.node);
        self.diags.push(
            Diagnostic::error(
                diag_code,
                file,
                code.span,
                format!("unknown country `{}`", code.node),
            )
            .with_label("not a country code")
            .with_help(help),
        );
        None
    }

    fn zone(&mut self, file: FileId, z: &ast::Ident) -> bool {
        if jiff::tz::db().get(&z.node).is_ok() {
            return true;
        }
        let names: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_string())
            .collect();
        let help = did_you_mean(&z.node, names.iter().map(String::as_str))
            .map(|h| {
                format!("{h} zones are IANA names such as `Europe/London` or `America/New_York`")
            })
            .unwrap_or_else(|| {
                "zones are IANA names such as `Europe/London` or `America/New_York`".into()
            });
        self.diags.push(
            Diagnostic::error(
                "zone::unknown",
                file,
                z.span,
                format!("unknown time zone `{}`", z.node),
            )
            .with_label("not an IANA time zone")
            .with_help(help),
        );
        false
    }

    fn window(&mut self, file: FileId, w: &ast::Window) -> Option<WindowDecl> {
        self.check_name(file, &w.name, "window");
        let mut ok = true;
        if let Some(z) = &w.zone {
            ok &= self.zone(file, z);
        }
        let mut spans = Vec::new();
        for s in &w.spans {
            let from = self.day(file, &s.node.from_day);
            let to = match &s.node.to_day {
                Some(d) => self.day(file, d),
                None => from,
            };
            let start = self.clock(file, &s.node.start, false);
            let end = self.clock(file, &s.node.end, true);
            let (Some(from), Some(to), Some(start), Some(end)) = (from, to, start, end) else {
                ok = false;
                continue;
            };
            if start == end {
                self.diags.push(
                    Diagnostic::error(
                        "window::never-open",
                        file,
                        s.span,
                        format!("this period starts and ends at {}, so it is never open", clock_text(start)),
                    )
                    .with_label("empty period")
                    .with_help("for a whole day write `00:00-24:00`; a period that runs past midnight ends earlier than it starts, e.g. `22:00-06:00`"),
                );
                ok = false;
                continue;
            }
            spans.push(ir::WeeklySpan {
                days: day_range(from, to),
                start_minute: start,
                end_minute: end,
            });
        }
        ok.then(|| WindowDecl {
            name_span: w.name.span,
            spans,
            zone: w.zone.as_ref().map(|z| z.node.clone()),
        })
    }

    fn day(&mut self, file: FileId, d: &ast::Ident) -> Option<ir::Weekday> {
        let day = match d.node.as_str() {
            "mon" => ir::Weekday::Mon,
            "tue" => ir::Weekday::Tue,
            "wed" => ir::Weekday::Wed,
            "thu" => ir::Weekday::Thu,
            "fri" => ir::Weekday::Fri,
            "sat" => ir::Weekday::Sat,
            "sun" => ir::Weekday::Sun,
            other => {
                let help = did_you_mean(other, DAYS)
                    .unwrap_or_else(|| "days are `mon` `tue` `wed` `thu` `fri` `sat` `sun`".into());
                self.diags.push(
                    Diagnostic::error(
                        "window::bad-day",
                        file,
                        d.span,
                        format!("unknown day `{other}`"),
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        Some(day)
    }

    /// Minutes after midnight; `24:00` only as an end.
    fn clock(&mut self, file: FileId, t: &Spanned<ast::ClockTime>, is_end: bool) -> Option<u16> {
        let ast::ClockTime { hour, minute } = t.node;
        let problem = if minute > 59 {
            Some(format!("minute {minute} is out of range"))
        } else if hour > 24 || (hour == 24 && minute > 0) {
            Some(format!("hour {hour} is out of range"))
        } else if hour == 24 && !is_end {
            Some("a period cannot start at 24:00".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            self.diags.push(
                Diagnostic::error(
                    "window::bad-time",
                    file,
                    t.span,
                    format!("invalid time `{hour:02}:{minute:02}`: {p}"),
                )
                .with_help("times are `HH:MM` from `00:00` to `23:59`; `24:00` may end a period"),
            );
            return None;
        }
        u16::try_from(hour * 60 + minute).ok()
    }

    fn dest_stmt(
        &mut self,
        file: FileId,
        s: &Stmt<ast::DestStmt>,
        d: &mut Decls,
        origin: &dyn Fn(Span, Span) -> Origin,
    ) {
        match &s.node {
            ast::DestStmt::Default { scope, action } => {
                let key = match scope.node {
                    Scope::International => "dst:international",
                    Scope::National => "dst:national",
                };
                d.defaults.push(Decl {
                    key: key.into(),
                    value: (scope.node, verdict(action.node)),
                    origin: origin(scope.span, s.span),
                });
            }
            ast::DestStmt::Rule {
                action,
                selector,
                window,
            } => {
                let window = window.as_ref().map(|w| {
                    let when = match w.mode.node {
                        ast::WindowMode::During => ir::WindowWhen::During,
                        ast::WindowMode::Outside => ir::WindowWhen::Outside,
                    };
                    (
                        ir::WindowCondition {
                            name: w.name.node.clone(),
                            when,
                        },
                        w.name.span,
                    )
                });
                let suffix = match &window {
                    Some((c, _)) if c.when == ir::WindowWhen::During => format!("@{}", c.name),
                    Some((c, _)) => format!("@outside:{}", c.name),
                    None => String::new(),
                };
                let mut push = |key: String, target: Target, span: Span| {
                    d.dests.push(Decl {
                        key: format!("{key}{suffix}"),
                        value: DestRule {
                            action: verdict(action.node),
                            target,
                            window: window.clone(),
                        },
                        origin: origin(span, s.span),
                    });
                };
                match selector {
                    ast::Selector::Prefix(ps) => {
                        for p in ps {
                            if let Some(digits) = self.prefix(file, p) {
                                push(
                                    format!("dst:prefix:{digits}"),
                                    Target::Prefix(digits),
                                    p.span,
                                );
                            }
                        }
                    }
                    ast::Selector::Country(cs) => {
                        for c in cs {
                            if let Some(country) =
                                self.country(file, c, "destinations::unknown-country")
                            {
                                push(
                                    format!("dst:country:{}", country.iso),
                                    Target::Country(country),
                                    c.span,
                                );
                            }
                        }
                    }
                    ast::Selector::Class(cs) => {
                        for c in cs {
                            if c.node == EMERGENCY {
                                self.emergency(file, c.span, action.node);
                                continue;
                            }
                            if SCOPE_CLASSES.contains(&c.node.as_str()) {
                                self.diags.push(
                                    Diagnostic::error(
                                        "destinations::scope-as-class",
                                        file,
                                        c.span,
                                        format!(
                                            "`{}` is set by a default, not by a class rule",
                                            c.node
                                        ),
                                    )
                                    .with_help(format!(
                                        "write `{}: {}` on a line of its own",
                                        c.node,
                                        if action.node == Action::Allow {
                                            "allow"
                                        } else {
                                            "deny"
                                        }
                                    )),
                                );
                                continue;
                            }
                            if let Some(class) =
                                self.number_class(file, c, "destinations::unknown-class", false)
                            {
                                push(
                                    format!("dst:class:{}", class.name),
                                    Target::Class(class),
                                    c.span,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn emergency(&mut self, file: FileId, span: Span, action: Action) {
        let (message, help) = match action {
            Action::Deny => (
                "emergency numbers can never be blocked",
                "calls to emergency services (112, 911 and the home country's numbers) must always connect: regulators require it and lives depend on it; Tollgate lets them through before any rule, limit or response. Remove this rule",
            ),
            Action::Allow => (
                "emergency numbers are always allowed; this rule does nothing",
                "calls to emergency services always connect, whatever the policy says; remove this rule",
            ),
        };
        self.diags.push(
            Diagnostic::error("destinations::emergency", file, span, message).with_help(help),
        );
    }

    /// Checks an E.164 prefix; returns its digits.
    fn prefix(&mut self, file: FileId, p: &Spanned<ast::Prefix>) -> Option<String> {
        let digits = p.node.digits();
        let problem = if digits.is_empty() {
            Some((
                "a prefix needs at least one digit".to_string(),
                "write the country calling code first, e.g. `+44`".to_string(),
            ))
        } else if digits.starts_with('0') {
            Some((
                format!("`{}` is not an E.164 prefix: no country calling code starts with 0", p.node.text),
                "write the number in international form: `+` then the country calling code, e.g. `+44 20` rather than `+020`".to_string(),
            ))
        } else if digits.len() > MAX_E164_DIGITS {
            Some((
                format!(
                    "prefix `{}` has {} digits, more than the {MAX_E164_DIGITS} an E.164 number can have",
                    p.node.text,
                    digits.len()
                ),
                "shorten the prefix; a full number is at most 15 digits after the `+`".to_string(),
            ))
        } else {
            None
        };
        match problem {
            Some((message, help)) => {
                self.diags.push(
                    Diagnostic::error("destinations::bad-prefix", file, p.span, message)
                        .with_help(help),
                );
                None
            }
            None => Some(digits),
        }
    }

    /// A number class by name (`scopes` also accepts `international`/`national`).
    fn number_class(
        &mut self,
        file: FileId,
        c: &ast::Ident,
        code: &'static str,
        scopes: bool,
    ) -> Option<&'static NumberClass> {
        if let Some(class) = numbering::class(&c.node) {
            return Some(class);
        }
        let mut names: Vec<&str> = numbering::classes().iter().map(|c| c.name).collect();
        if scopes {
            names.extend(SCOPE_CLASSES);
        }
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let help = match did_you_mean(&c.node, names.iter().copied()) {
            Some(h) => format!("{h} known classes: {list}"),
            None => format!("known classes: {list}"),
        };
        self.diags.push(
            Diagnostic::error(
                code,
                file,
                c.span,
                format!("unknown destination class `{}`", c.node),
            )
            .with_label("not a class")
            .with_help(help),
        );
        None
    }

    /// A class named by a limit or a response: a number class or a scope.
    fn any_class(&mut self, file: FileId, c: &ast::Ident, code: &'static str) -> Option<String> {
        if c.node == EMERGENCY {
            self.diags.push(
                Diagnostic::error(
                    code,
                    file,
                    c.span,
                    "emergency calls cannot be limited or blocked",
                )
                .with_help("calls to emergency services always connect; name another class"),
            );
            return None;
        }
        if SCOPE_CLASSES.contains(&c.node.as_str()) {
            return Some(c.node.clone());
        }
        self.number_class(file, c, code, true)
            .map(|k| k.name.to_string())
    }

    fn source_stmt(
        &mut self,
        file: FileId,
        s: &Stmt<ast::SourceStmt>,
        d: &mut Decls,
        origin: &dyn Fn(Span, Span) -> Origin,
    ) {
        match &s.node {
            ast::SourceStmt::Networks { action, networks } => {
                for n in networks {
                    if let Some(net) = self.network(file, n) {
                        d.sources.push(Decl {
                            key: format!("src:net:{net}"),
                            value: SourceRule::Network {
                                net,
                                action: verdict(action.node),
                            },
                            origin: origin(n.span, s.span),
                        });
                    }
                }
            }
            ast::SourceStmt::Countries { action, countries } => {
                let mode = match action.node {
                    Action::Allow => ir::GeoMode::AllowOnly,
                    Action::Deny => ir::GeoMode::Deny,
                };
                for c in countries {
                    if let Some(country) = self.country(file, c, "sources::unknown-country") {
                        d.sources.push(Decl {
                            key: format!("src:geo:{}", country.iso),
                            value: SourceRule::Geo {
                                country: country.iso,
                                mode,
                            },
                            origin: origin(c.span, s.span),
                        });
                    }
                }
            }
            ast::SourceStmt::Trunk { name, networks } => {
                self.check_name(file, name, "trunk");
                let nets: Vec<IpNet> = networks
                    .iter()
                    .filter_map(|n| self.network(file, n))
                    .collect();
                if nets.len() == networks.len() {
                    d.sources.push(Decl {
                        key: format!("src:trunk:{}", name.node),
                        value: SourceRule::Trunk {
                            name: name.node.clone(),
                            nets,
                        },
                        origin: origin(name.span, s.span),
                    });
                }
            }
        }
    }

    /// Parses and checks an address or CIDR as written.
    fn network(&mut self, file: FileId, n: &ast::Ident) -> Option<IpNet> {
        let text = n.node.as_str();
        let parsed: Option<IpNet> = match text.split_once('/') {
            Some(_) => text.parse::<IpNet>().ok(),
            None => text.parse::<IpAddr>().ok().map(IpNet::from),
        };
        let Some(net) = parsed else {
            let help = address_help(text);
            self.diags.push(
                Diagnostic::error(
                    "sources::bad-address",
                    file,
                    n.span,
                    format!("`{text}` is not a valid IP address or network"),
                )
                .with_label("invalid address")
                .with_help(help),
            );
            return None;
        };
        if net.trunc() != net {
            self.diags.push(
                Diagnostic::error(
                    "sources::host-bits",
                    file,
                    n.span,
                    format!(
                        "`{text}` has host bits set beyond its /{} prefix",
                        net.prefix_len()
                    ),
                )
                .with_label("not a network address")
                .with_help(format!(
                    "did you mean `{}`? for the single host write `{}`",
                    net.trunc(),
                    net.addr()
                )),
            );
            return None;
        }
        Some(net)
    }

    fn limit_stmt(
        &mut self,
        file: FileId,
        s: &ast::LimitStmt,
    ) -> Option<(String, LimitDecl, Span)> {
        let metric = metric(s.metric.node);
        let class = match &s.class {
            Some(c) => Some((self.any_class(file, c, "limits::unknown-class")?, c.span)),
            None => None,
        };
        let key = match &class {
            Some((c, _)) => format!("limit:{}:{c}", metric_name(metric)),
            None => format!("limit:{}", metric_name(metric)),
        };
        let value = match (&s.value, metric) {
            (ast::LimitValue::Max(dur), ir::LimitMetric::Duration) => {
                if dur.node.seconds == 0 {
                    self.diags.push(
                        Diagnostic::error("limits::zero", file, dur.span, "a maximum call duration of zero would end every call")
                            .with_help("give a positive duration such as `2h`; to stop calls to a class, deny it in `destinations`"),
                    );
                    return None;
                }
                LimitDecl {
                    metric,
                    class,
                    warning: None,
                    critical: Some(dur.node.seconds),
                }
            }
            (
                ast::LimitValue::Levels { warning, critical },
                ir::LimitMetric::Concurrent | ir::LimitMetric::Rate,
            ) => {
                for level in [warning, critical].into_iter().flatten() {
                    if level.node == 0 {
                        self.diags.push(
                            Diagnostic::error("limits::zero", file, level.span, "a limit of zero would block every call it counts")
                                .with_help("give a positive level; to stop calls to a class, deny it in `destinations`"),
                        );
                        return None;
                    }
                }
                if let (Some(w), Some(c)) = (warning, critical)
                    && w.node >= c.node
                {
                    self.diags.push(
                        Diagnostic::error(
                            "limits::warning-not-below-critical",
                            file,
                            w.span,
                            format!("warning level {} is not below critical level {}", w.node, c.node),
                        )
                        .with_label("warning")
                        .with_related(c.span, "critical")
                        .with_help("the warning level alerts before calls are rejected at the critical level, so it must be lower"),
                    );
                    return None;
                }
                LimitDecl {
                    metric,
                    class,
                    warning: warning.map(|w| w.node),
                    critical: critical.map(|c| c.node),
                }
            }
            _ => {
                let help = if metric == ir::LimitMetric::Duration {
                    "write a duration, e.g. `duration: 2h`"
                } else {
                    "write levels, e.g. `concurrent: warning 10, critical 20`"
                };
                self.diags.push(
                    Diagnostic::error(
                        "limits::bad-value",
                        file,
                        s.metric.span,
                        format!("wrong kind of value for `{}`", metric_name(metric)),
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        Some((key, value, s.metric.span))
    }

    fn response_stmt(
        &mut self,
        file: FileId,
        s: &ast::ResponseStmt,
    ) -> Option<(String, ResponseDecl)> {
        let (trigger, trigger_span, key) = match &s.trigger {
            ast::Trigger::Breach {
                metric: m,
                class,
                level,
            } => {
                let metric = metric(m.node);
                if metric == ir::LimitMetric::Duration {
                    self.diags.push(
                        Diagnostic::error("responses::bad-trigger", file, m.span, "`duration` has no warning or critical level to trigger on")
                            .with_help("responses trigger on `concurrent` or `rate` levels, or on an `anomaly`"),
                    );
                    return None;
                }
                let class = match class {
                    Some(c) => Some(self.any_class(file, c, "responses::unknown-class")?),
                    None => None,
                };
                let level_name = match level.node {
                    ast::Level::Warning => "warning",
                    ast::Level::Critical => "critical",
                };
                let key = match &class {
                    Some(c) => format!("on:{}:{c}:{level_name}", metric_name(metric)),
                    None => format!("on:{}:{level_name}", metric_name(metric)),
                };
                let span = m.span.join(level.span);
                let level = match level.node {
                    ast::Level::Warning => ir::AlertLevel::Warning,
                    ast::Level::Critical => ir::AlertLevel::Critical,
                };
                (
                    ir::ResponseTrigger::Breach {
                        metric,
                        class,
                        level,
                    },
                    span,
                    key,
                )
            }
            ast::Trigger::Anomaly { kind } => {
                if !ANOMALIES.contains(&kind.node.as_str()) {
                    let list = ANOMALIES.map(|a| format!("`{a}`")).join(", ");
                    let help = match did_you_mean(&kind.node, ANOMALIES) {
                        Some(h) => format!("{h} anomaly kinds: {list}"),
                        None => format!("anomaly kinds: {list}"),
                    };
                    self.diags.push(
                        Diagnostic::error(
                            "responses::unknown-anomaly",
                            file,
                            kind.span,
                            format!("unknown anomaly `{}`", kind.node),
                        )
                        .with_help(help),
                    );
                    return None;
                }
                (
                    ir::ResponseTrigger::Anomaly {
                        anomaly: kind.node.clone(),
                    },
                    kind.span,
                    format!("on:anomaly:{}", kind.node),
                )
            }
        };
        let (action, action_span, blocks) = match &s.action {
            ast::ResponseAction::Alert(span) => (ir::ResponseAction::Alert, *span, false),
            ast::ResponseAction::BlockTenant(span) => {
                (ir::ResponseAction::BlockTenant, *span, true)
            }
            ast::ResponseAction::BlockClasses(span, classes) => {
                let mut names = Vec::new();
                for c in classes {
                    names.push(self.any_class(file, c, "responses::unknown-class")?);
                }
                names.sort();
                names.dedup();
                (
                    ir::ResponseAction::BlockClasses { classes: names },
                    *span,
                    true,
                )
            }
        };
        let (hold_seconds, until_acknowledged) = match (&s.hold, blocks) {
            (None, true) => {
                self.diags.push(
                    Diagnostic::error(
                        "responses::missing-hold",
                        file,
                        action_span,
                        "a block must say how long it holds",
                    )
                    .with_help("add `for DURATION` (e.g. `for 1h`) or `until acknowledged`"),
                );
                return None;
            }
            (Some(h), false) => {
                self.diags.push(
                    Diagnostic::error(
                        "responses::hold-on-alert",
                        file,
                        h.span,
                        "an alert blocks nothing, so it cannot hold",
                    )
                    .with_help("remove the hold, or block a class or the tenant"),
                );
                return None;
            }
            (None, false) => (None, false),
            (Some(h), true) => {
                match h.node {
                    ast::Hold::For(d) if d.seconds == 0 => {
                        self.diags.push(
                        Diagnostic::error("responses::zero-hold", file, h.span, "a block held for zero time does nothing")
                            .with_help("give a positive duration such as `for 30m`, or `until acknowledged`"),
                    );
                        return None;
                    }
                    ast::Hold::For(d) => (Some(d.seconds), false),
                    ast::Hold::UntilAcknowledged => (None, true),
                }
            }
        };
        Some((
            key,
            ResponseDecl {
                trigger,
                trigger_span,
                action,
                hold_seconds,
                until_acknowledged,
            },
        ))
    }

    // ------------------------------------------------------------ whole policy

    fn cross_check(
        &mut self,
        root: FileId,
        kind: FileKind,
        ast: &ast::File,
        m: &Merged,
    ) -> Option<Resolved> {
        // Window references resolve against the merged windows.
        for d in m.dests.values() {
            if let Some((cond, span)) = &d.value.window
                && !m.windows.contains_key(&format!("window:{}", cond.name))
            {
                let names: Vec<&str> = m
                    .windows
                    .keys()
                    .filter_map(|k| k.strip_prefix("window:"))
                    .collect();
                let help = match did_you_mean(&cond.name, names.iter().copied()) {
                    Some(h) => h,
                    None if names.is_empty() => {
                        "declare it with `window NAME: mon-fri 08:00-18:00`".into()
                    }
                    None => format!(
                        "declared windows: {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.diags.push(
                    Diagnostic::error(
                        "destinations::unknown-window",
                        d.origin.file,
                        *span,
                        format!("unknown window `{}`", cond.name),
                    )
                    .with_help(help),
                );
            }
        }
        // Windows need a zone: their own, or the policy's.
        let mut windows = Vec::new();
        for (key, w) in &m.windows {
            let name = key.trim_start_matches("window:").to_string();
            let zone = w
                .value
                .zone
                .clone()
                .or_else(|| m.zone.as_ref().map(|z| z.value.clone()));
            match zone {
                Some(zone) => windows.push(ir::TimeWindow { name, zone, spans: w.value.spans.clone(), rule: key.clone() }),
                None if kind == FileKind::Tenant => self.diags.push(
                    Diagnostic::error("window::no-zone", w.origin.file, w.value.name_span, format!("window `{name}` has no time zone"))
                        .with_help("end the window with a zone (`... America/New_York`) or declare the policy's zone with `zone America/New_York`"),
                ),
                None => {}
            }
        }
        // Geo-blocking is either a deny list or an allow-only list.
        let mut geo_modes = m.sources.values().filter_map(|d| match d.value {
            SourceRule::Geo { mode, .. } => Some((mode, d)),
            _ => None,
        });
        if let Some((first_mode, first)) = geo_modes.next() {
            for (mode, d) in geo_modes {
                if mode != first_mode {
                    // report at the file applied last, pointing at the other kind
                    let (here, other) = if d.origin.precedence >= first.origin.precedence {
                        (d, first)
                    } else {
                        (first, d)
                    };
                    let diag = Diagnostic::error(
                        "sources::mixed-geo",
                        here.origin.file,
                        here.origin.stmt,
                        "`allow country` and `deny country` cannot be combined",
                    )
                    .with_help("use `deny country ...` to block some countries, or `allow country ...` to accept only the listed ones");
                    let diag = self.also_at(diag, &other.origin, "the other kind");
                    self.diags.push(diag);
                    break;
                }
            }
        }
        // A network is in one rule only.
        let mut nets: HashMap<IpNet, &Decl<SourceRule>> = HashMap::new();
        for d in m.sources.values() {
            let list = match &d.value {
                SourceRule::Network { net, .. } => vec![*net],
                SourceRule::Trunk { nets, .. } => nets.clone(),
                SourceRule::Geo { .. } => continue,
            };
            for net in list {
                if let Some(prev) = nets.insert(net, d) {
                    let (a, b) = if prev.origin.precedence <= d.origin.precedence {
                        (prev, d)
                    } else {
                        (d, prev)
                    };
                    let mut diag = Diagnostic::error(
                        "sources::conflict",
                        b.origin.file,
                        b.origin.span,
                        format!("network `{net}` is named by two source rules"),
                    )
                    .with_help(
                        "a network may appear in one rule only: an allow, a deny, or one trunk",
                    );
                    if a.origin.file == b.origin.file {
                        diag = diag.with_related(a.origin.span, "also named here");
                    }
                    self.diags.push(diag);
                }
            }
        }
        // Responses that trigger on a limit level need that level declared.
        for d in m.responses.values() {
            if let ir::ResponseTrigger::Breach {
                metric,
                class,
                level,
            } = &d.value.trigger
            {
                let key = match class {
                    Some(c) => format!("limit:{}:{c}", metric_name(*metric)),
                    None => format!("limit:{}", metric_name(*metric)),
                };
                let declared = m.limits.get(&key).is_some_and(|l| match level {
                    ir::AlertLevel::Warning => l.value.warning.is_some(),
                    ir::AlertLevel::Critical => l.value.critical.is_some(),
                });
                if !declared {
                    let lvl = if *level == ir::AlertLevel::Warning {
                        "warning"
                    } else {
                        "critical"
                    };
                    let what = key.trim_start_matches("limit:").replace(':', " ");
                    self.diags.push(
                        Diagnostic::error(
                            "responses::no-such-limit",
                            d.origin.file,
                            d.value.trigger_span,
                            format!("no {lvl} level is declared for `{what}`, so this response can never trigger"),
                        )
                        .with_help(format!("declare it in `limits`, e.g. `{what}: {lvl} 10`")),
                    );
                }
            }
        }
        // Client certificates are a TLS feature.
        let required = |k: &str| m.crypto.get(k).is_some_and(|d| d.value.required);
        if required("crypto:client-certificate")
            && !required("crypto:tls")
            && let Some(d) = m.crypto.get("crypto:client-certificate")
        {
            self.diags.push(
                Diagnostic::error(
                    "crypto::client-certificate-without-tls",
                    d.origin.file,
                    d.origin.span,
                    "client certificates require TLS signalling",
                )
                .with_help("add `tls: required` to the `crypto` section"),
            );
        }
        if kind == FileKind::Base {
            return None;
        }
        let Some(home) = &m.home else {
            if m.home_written {
                return None; // the invalid `home` is already reported
            }
            self.diags.push(
                Diagnostic::error("home::missing", root, ast.header.node.name.span, format!("tenant `{}` has no home country", ast.header.node.name.node))
                    .with_help("declare it with `home GB` (ISO 3166-1 alpha-2): it decides which calls are national and which emergency numbers always pass"),
            );
            return None;
        };
        Some(Resolved {
            home: home.value,
            windows,
        })
    }

    // ------------------------------------------------------------ lowering

    fn lower(&mut self, ast: &ast::File, m: &Merged, r: &Resolved) -> ir::CompiledPolicy {
        let tenant = ast.header.node.name.node.clone();
        let default = |scope: &str, fallback: ir::Verdict| {
            m.defaults.get(scope).map_or(fallback, |d| d.value.1)
        };
        // Entries before conflict resolution: (prefix, window) → candidates.
        #[derive(Clone)]
        struct Cand {
            action: ir::Verdict,
            rule: String,
            window: Option<ir::WindowCondition>,
            precedence: usize,
            specificity: u8,
            file: FileId,
            span: Span,
        }
        let mut cands: BTreeMap<(String, Option<ir::WindowCondition>), Vec<Cand>> = BTreeMap::new();
        let mut add =
            |prefix: String, c: Cand| cands.entry((prefix, c.window.clone())).or_default().push(c);
        let intl = default("dst:international", ir::Verdict::Deny);
        let national = default("dst:national", ir::Verdict::Allow);
        let none = Span::default();
        let root_file = FileId::default();
        add(
            String::new(),
            Cand {
                action: intl,
                rule: "dst:international".into(),
                window: None,
                precedence: 0,
                specificity: 0,
                file: root_file,
                span: none,
            },
        );
        // Carve-outs: prefixes under a rule's prefixes that belong to another
        // country (e.g. Guernsey's +44 1481 under GB's +44); the rule must not
        // decide there. Resolved below, once the whole table is known.
        let mut carve_outs: Vec<(String, String)> = r
            .home
            .carve_outs
            .iter()
            .map(|c| (c.clone(), "dst:national".to_string()))
            .collect();
        for p in &r.home.prefixes {
            let p = p.clone();
            add(
                p,
                Cand {
                    action: national,
                    rule: "dst:national".into(),
                    window: None,
                    precedence: 0,
                    specificity: 0,
                    file: root_file,
                    span: none,
                },
            );
        }
        for (key, d) in &m.dests {
            let prefixes = match &d.value.target {
                Target::Prefix(p) => vec![p.clone()],
                Target::Country(c) => {
                    carve_outs.extend(c.carve_outs.iter().map(|co| (co.clone(), key.clone())));
                    c.prefixes.clone()
                }
                Target::Class(c) => c.prefixes.clone(),
            };
            for p in prefixes {
                add(
                    p,
                    Cand {
                        action: d.value.action,
                        rule: key.clone(),
                        window: d.value.window.as_ref().map(|w| w.0.clone()),
                        precedence: d.origin.precedence + 1,
                        specificity: d.value.target.specificity(),
                        file: d.origin.file,
                        span: d.origin.span,
                    },
                );
            }
        }
        // One entry per (prefix, window): the latest file wins; within a file a
        // differing action is a conflict, an equal one goes to the more specific rule.
        let mut entries: Vec<(String, Cand)> = Vec::new();
        let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
        for ((prefix, _), mut list) in cands {
            list.sort_by(|a, b| {
                (b.precedence, b.specificity)
                    .cmp(&(a.precedence, a.specificity))
                    .then(a.span.start.cmp(&b.span.start))
            });
            let Some(best) = list.first().cloned() else {
                continue;
            };
            if let Some(next) = list.get(1) {
                self.runner_up.insert(
                    (prefix.clone(), next.window.clone()),
                    ir::DestinationRule {
                        prefix: prefix.clone(),
                        action: next.action,
                        rule: next.rule.clone(),
                        window: next.window.clone(),
                    },
                );
            }
            for other in list.iter().skip(1).filter(|o| o.specificity > 0) {
                self.displaced
                    .entry(other.rule.clone())
                    .or_default()
                    .insert(best.rule.clone());
            }
            for other in list
                .iter()
                .skip(1)
                .filter(|o| o.precedence == best.precedence && o.specificity > 0)
            {
                if other.action != best.action
                    && reported.insert((best.rule.clone(), other.rule.clone()))
                {
                    let (first, second) = if best.span.start <= other.span.start {
                        (&best, other)
                    } else {
                        (other, &best)
                    };
                    self.diags.push(
                        Diagnostic::error(
                            "destinations::conflict",
                            second.file,
                            second.span,
                            format!(
                                "`{}` and `{}` give opposite actions for calls to +{prefix}",
                                first.rule, second.rule
                            ),
                        )
                        .with_label("conflicts with the earlier rule")
                        .with_related(first.span, "the earlier rule")
                        .with_help("make one rule more specific (a longer prefix wins), or remove one of them"),
                    );
                }
            }
            entries.push((prefix, best));
        }
        // Evaluation order within a prefix: rules with a window first (latest
        // file first, then as written), the unconditional entry last.
        entries.sort_by(|(pa, a), (pb, b)| {
            pa.cmp(pb)
                .then(a.window.is_none().cmp(&b.window.is_none()))
                .then(b.precedence.cmp(&a.precedence))
                .then(a.file.cmp(&b.file))
                .then(a.span.start.cmp(&b.span.start))
        });
        let mut table: BTreeMap<String, Vec<ir::DestinationRule>> = BTreeMap::new();
        for (prefix, c) in entries {
            table
                .entry(prefix.clone())
                .or_default()
                .push(ir::DestinationRule {
                    prefix,
                    action: c.action,
                    rule: c.rule,
                    window: c.window,
                });
        }
        // A carve-out of rule R at prefix P decides as if R did not cover P:
        // P gets copies of the entries of the enclosing prefixes (longest
        // first, leaving out R's own) down to the first unconditional one,
        // after any entry other rules put at P themselves.
        carve_outs.sort();
        carve_outs.dedup();
        for (prefix, owner) in carve_outs {
            if table
                .get(&prefix)
                .is_some_and(|es| es.iter().any(|e| e.window.is_none()))
            {
                continue;
            }
            let mut copies = Vec::new();
            'up: for len in (0..prefix.len()).rev() {
                for e in table.get(&prefix[..len]).into_iter().flatten() {
                    if e.rule == owner {
                        continue;
                    }
                    copies.push(ir::DestinationRule {
                        prefix: prefix.clone(),
                        ..e.clone()
                    });
                    if e.window.is_none() {
                        break 'up;
                    }
                }
            }
            table.entry(prefix).or_default().extend(copies);
        }
        let destinations: Vec<ir::DestinationRule> = table.into_values().flatten().collect();

        // Classes: national prefixes and the number classes limits and responses name.
        let mut named: BTreeSet<String> = BTreeSet::new();
        for l in m.limits.values() {
            if let Some((c, _)) = &l.value.class {
                named.insert(c.clone());
            }
        }
        for rs in m.responses.values() {
            if let ir::ResponseTrigger::Breach { class: Some(c), .. } = &rs.value.trigger {
                named.insert(c.clone());
            }
            if let ir::ResponseAction::BlockClasses { classes } = &rs.value.action {
                named.extend(classes.iter().cloned());
            }
        }
        let mut classes: Vec<ir::ClassPrefix> = disjoint(&r.home.prefixes, &r.home.carve_outs)
            .into_iter()
            .map(|prefix| ir::ClassPrefix {
                prefix,
                class: "national".into(),
            })
            .collect();
        for name in &named {
            if let Some(c) = numbering::class(name) {
                classes.extend(c.prefixes.iter().map(|p| ir::ClassPrefix {
                    prefix: p.clone(),
                    class: c.name.into(),
                }));
            }
        }
        classes.sort();
        classes.dedup();

        // Sources.
        let mut networks: Vec<(IpNet, ir::SourceNetwork)> = Vec::new();
        let mut geo: Option<ir::GeoPolicy> = None;
        for (key, d) in &m.sources {
            match &d.value {
                SourceRule::Network { net, action } => networks.push((
                    *net,
                    ir::SourceNetwork {
                        cidr: net.to_string(),
                        action: *action,
                        trunk: None,
                        rule: key.clone(),
                    },
                )),
                SourceRule::Trunk { name, nets } => networks.extend(nets.iter().map(|net| {
                    (
                        *net,
                        ir::SourceNetwork {
                            cidr: net.to_string(),
                            action: ir::Verdict::Allow,
                            trunk: Some(name.clone()),
                            rule: key.clone(),
                        },
                    )
                })),
                SourceRule::Geo { country, mode } => {
                    let g = geo.get_or_insert_with(|| ir::GeoPolicy {
                        mode: *mode,
                        countries: Vec::new(),
                        rule: "src:geo".into(),
                    });
                    g.countries.push((*country).to_string());
                }
            }
        }
        networks.sort_by(|a, b| net_order(&a.0, &b.0));
        if let Some(g) = &mut geo {
            g.countries.sort();
        }

        let mut limits: Vec<ir::Limit> = m
            .limits
            .iter()
            .map(|(key, d)| ir::Limit {
                metric: d.value.metric,
                class: d.value.class.as_ref().map(|c| c.0.clone()),
                warning: d.value.warning,
                critical: d.value.critical,
                rule: key.clone(),
            })
            .collect();
        limits.sort_by(|a, b| (a.metric, &a.class).cmp(&(b.metric, &b.class)));
        let responses = m
            .responses
            .iter()
            .map(|(key, d)| ir::Response {
                trigger: d.value.trigger.clone(),
                action: d.value.action.clone(),
                hold_seconds: d.value.hold_seconds,
                until_acknowledged: d.value.until_acknowledged,
                rule: key.clone(),
            })
            .collect();
        let req = |k: &str| m.crypto.get(k).is_some_and(|d| d.value.required);
        let crypto = ir::CryptoPolicy {
            require_tls: req("crypto:tls"),
            require_srtp: req("crypto:srtp"),
            require_client_certificate: req("crypto:client-certificate"),
        };

        // Source map: every declaration, plus the geo policy's first statement.
        let mut rules: Vec<ir::RuleSource> = m
            .all_origins()
            .into_iter()
            .map(|(id, o)| self.rule_source(id, o))
            .collect();
        if let Some(first_geo) = m
            .sources
            .values()
            .filter(|d| matches!(d.value, SourceRule::Geo { .. }))
            .max_by_key(|d| d.origin.precedence)
        {
            // the geo policy as a whole: point at its statement, not one country
            let whole = Origin {
                span: first_geo.origin.stmt,
                ..first_geo.origin.clone()
            };
            rules.push(self.rule_source("src:geo", &whole));
        }
        rules.sort_by(|a, b| a.id.cmp(&b.id));

        let mut emergency: Vec<String> = numbering::emergency_numbers(r.home.iso)
            .into_iter()
            .map(String::from)
            .collect();
        emergency.sort();
        emergency.dedup();

        ir::CompiledPolicy {
            tenant,
            home_country: r.home.iso.to_string(),
            numbering_plan: numbering::data_source().to_string(),
            emergency_numbers: emergency,
            destinations,
            classes,
            sources: ir::SourcePolicy {
                networks: networks.into_iter().map(|(_, n)| n).collect(),
                geo,
            },
            windows: r.windows.clone(),
            limits,
            responses,
            crypto,
            rules,
        }
    }

    fn rule_source(&self, id: &str, o: &Origin) -> ir::RuleSource {
        let file = self.ws.sources.get(o.file);
        let (line, column) = file.line_col(o.span.start);
        let text = file.text.get(o.stmt.start..o.stmt.end).unwrap_or_default();
        ir::RuleSource {
            id: id.to_string(),
            file: file.name.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }
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
