//! The syntax tree of one policy file, exactly as written (before imports are
//! resolved and before any semantic check). Values that need checking
//! (countries, zones, addresses, class names) are kept as the text written, with
//! their spans, so that semantic errors found later still point at the source.
//!
//! Comments and blank lines are kept as [`Trivia`] so that `tollgate fmt` can
//! write them back.

use crate::span::{Span, Spanned};

/// A word as written: a name, a country code, a zone, a keyword argument.
pub type Ident = Spanned<String>;

/// One `# ...` comment; `text` is what follows the `#`, without the trailing
/// newline or trailing white space. Equality ignores the span.
#[derive(Clone, Debug)]
pub struct Comment {
    pub text: String,
    pub span: Span,
}

impl PartialEq for Comment {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Comment {}

/// Comments and layout around a statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trivia {
    /// At least one blank line separated this statement from the previous one.
    pub blank_before: bool,
    /// Whole-line comments directly above the statement.
    pub leading: Vec<Comment>,
    /// A comment at the end of the statement's (last) line.
    pub trailing: Option<Comment>,
}

/// A parsed file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub header: Stmt<Header>,
    pub items: Vec<Stmt<Item>>,
    /// Comments after the last item.
    pub end_comments: Vec<Comment>,
}

/// A statement with its layout and span (the span covers the statement, not
/// its comments). Equality ignores the span.
#[derive(Clone, Debug)]
pub struct Stmt<T> {
    pub trivia: Trivia,
    pub node: T,
    pub span: Span,
}

impl<T: PartialEq> PartialEq for Stmt<T> {
    fn eq(&self, other: &Self) -> bool {
        self.trivia == other.trivia && self.node == other.node
    }
}
impl<T: Eq> Eq for Stmt<T> {}

/// `tenant NAME` or `base NAME`: the first statement of every file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Spanned<FileKind>,
    pub name: Ident,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A tenant policy: compiles to one TollPolicy.
    Tenant,
    /// A shared base: only imported, never compiled on its own.
    Base,
}

/// A top-level statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `import "path"`: path relative to the importing file.
    Import(Spanned<String>),
    /// `home GB`: the tenant's home country (ISO 3166-1 alpha-2).
    Home(Ident),
    /// `zone Europe/London`: the zone of windows that name none.
    Zone(Ident),
    /// `window NAME: SPAN, SPAN [ZONE]`
    Window(Window),
    Destinations(Block<DestStmt>),
    Sources(Block<SourceStmt>),
    Limits(Block<LimitStmt>),
    Responses(Block<ResponseStmt>),
    Crypto(Block<CryptoStmt>),
}

impl Item {
    /// A `keyword { ... }` section (as opposed to a one-line item).
    pub fn is_section(&self) -> bool {
        matches!(
            self,
            Item::Destinations(_)
                | Item::Sources(_)
                | Item::Limits(_)
                | Item::Responses(_)
                | Item::Crypto(_)
        )
    }
}

/// `NAME { stmts }`. `keyword` is the span of the section keyword. Equality
/// ignores the span.
#[derive(Clone, Debug)]
pub struct Block<T> {
    pub keyword: Span,
    pub stmts: Vec<Stmt<T>>,
    /// Comments after the last statement, before the closing brace (a comment
    /// on the line of the closing brace comes last).
    pub end_comments: Vec<Comment>,
}

impl<T: PartialEq> PartialEq for Block<T> {
    fn eq(&self, other: &Self) -> bool {
        self.stmts == other.stmts && self.end_comments == other.end_comments
    }
}
impl<T: Eq> Eq for Block<T> {}

// ---------------------------------------------------------------- windows

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub name: Ident,
    pub spans: Vec<Spanned<TimeSpan>>,
    pub zone: Option<Ident>,
}

/// `mon-fri 08:00-18:00`, `sat 09:00-13:00`, `mon-sun 22:00-06:00`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeSpan {
    /// First day, as written (checked later).
    pub from_day: Ident,
    /// Last day of a range (`mon-fri`); `None` for a single day.
    pub to_day: Option<Ident>,
    pub start: Spanned<ClockTime>,
    pub end: Spanned<ClockTime>,
}

/// `HH:MM` as written; range checks happen later (so `25:00` is a semantic
/// error with a span, not a parse error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClockTime {
    pub hour: u32,
    pub minute: u32,
}

// ---------------------------------------------------------------- destinations

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    International,
    National,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestStmt {
    /// `international: deny`, `national: allow`
    Default {
        scope: Spanned<Scope>,
        action: Spanned<Action>,
    },
    /// `allow country FR, DE during business`
    Rule {
        action: Spanned<Action>,
        selector: Selector,
        window: Option<WindowRef>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `prefix +44 70, +33 6`
    Prefix(Vec<Spanned<Prefix>>),
    /// `country FR, DE`
    Country(Vec<Ident>),
    /// `class premium-rate, satellite`
    Class(Vec<Ident>),
}

/// An E.164 prefix as written: `+` then digits, optionally in groups separated
/// by single spaces (`+1 212 555`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The text with groups joined by single spaces, e.g. `+1 212 555`.
    pub text: String,
}

impl Prefix {
    /// The digits alone, e.g. `1212555`.
    pub fn digits(&self) -> String {
        self.text.chars().filter(char::is_ascii_digit).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowMode {
    /// the rule applies only while the window is open
    During,
    /// the rule applies only while the window is closed
    Outside,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowRef {
    pub mode: Spanned<WindowMode>,
    pub name: Ident,
}

// ---------------------------------------------------------------- sources

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceStmt {
    /// `allow 198.51.100.0/24, 2001:db8::/32` (addresses as written; checked later)
    Networks {
        action: Spanned<Action>,
        networks: Vec<Ident>,
    },
    /// `deny country CN, RU` (geo-block) or `allow country GB` (geo-allow only these)
    Countries {
        action: Spanned<Action>,
        countries: Vec<Ident>,
    },
    /// `trunk carrier-a: 203.0.113.10/32, 203.0.113.11`
    Trunk { name: Ident, networks: Vec<Ident> },
}

// ---------------------------------------------------------------- limits

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// concurrent calls
    Concurrent,
    /// calls per minute
    Rate,
    /// maximum call duration
    Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitStmt {
    pub metric: Spanned<Metric>,
    /// A destination class (`concurrent international: ...`); `None` for the whole tenant.
    pub class: Option<Ident>,
    pub value: LimitValue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitValue {
    /// `warning 10, critical 20` (rates written `30/min`). At least one is present.
    Levels {
        warning: Option<Spanned<u64>>,
        critical: Option<Spanned<u64>>,
    },
    /// `duration: 2h`
    Max(Spanned<Duration>),
}

/// A duration as written (`90s`, `15m`, `2h`, `1d`, `1h30m`), in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    pub seconds: u64,
}

// ---------------------------------------------------------------- responses

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Warning,
    Critical,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseStmt {
    pub trigger: Trigger,
    pub action: ResponseAction,
    pub hold: Option<Spanned<Hold>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `on concurrent critical`, `on rate international warning`
    Breach {
        metric: Spanned<Metric>,
        class: Option<Ident>,
        level: Spanned<Level>,
    },
    /// `on anomaly new-destination` (kind checked later)
    Anomaly { kind: Ident },
}

/// The spans are those of the keywords (`alert`, `block class`, `block tenant`).
/// Equality ignores them.
#[derive(Clone, Debug)]
pub enum ResponseAction {
    /// `alert`
    Alert(Span),
    /// `block class international, premium-rate`
    BlockClasses(Span, Vec<Ident>),
    /// `block tenant`
    BlockTenant(Span),
}

impl PartialEq for ResponseAction {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ResponseAction::Alert(_), ResponseAction::Alert(_)) => true,
            (ResponseAction::BlockClasses(_, a), ResponseAction::BlockClasses(_, b)) => a == b,
            (ResponseAction::BlockTenant(_), ResponseAction::BlockTenant(_)) => true,
            _ => false,
        }
    }
}
impl Eq for ResponseAction {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hold {
    /// `for 1h`
    For(Duration),
    /// `until acknowledged`
    UntilAcknowledged,
}

// ---------------------------------------------------------------- crypto

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CryptoKey {
    Tls,
    Srtp,
    ClientCertificate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requirement {
    Required,
    Optional,
}

/// `tls: required`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoStmt {
    pub key: Spanned<CryptoKey>,
    pub value: Spanned<Requirement>,
}
