//! The parser: policy text → [`ast::File`] plus every syntax error found.
//!
//! The language is line-oriented (one statement per line, sections delimited by
//! `keyword {` and a line holding `}`), so the parser works in two layers:
//!
//! 1. a line layer splits the text into lines, separates each line's content
//!    from its `# comment`, and drives recovery: a bad statement is reported
//!    and skipped, the next line is parsed afresh; a section that is never
//!    closed is reported at its keyword and closed where the next top-level
//!    statement starts; a stray `}` is reported and ignored;
//! 2. a statement layer, written with `nom` over `nom_locate` spans (so every
//!    value keeps its byte offsets), parses the content of one line.
//!
//! The parser never panics and keeps going after errors, so one run reports
//! every syntax error of the file. Values whose validity is semantic (hours,
//! minutes, countries, zones, classes, addresses) are kept as written.
//!
//! Layout normalisation (so that `parse(format(x)) == parse(x)`): the header
//! and the first statement of a section never have `blank_before`; a top-level
//! section, and the item after one, always have it; blank lines between a
//! statement's leading comments and the statement are not recorded; a comment
//! on a section's closing `}` line becomes the last of the section's
//! `end_comments`; a comment on the opening line is the section's `trailing`.
//!
//! # Diagnostic codes
//!
//! | code | meaning |
//! |------|---------|
//! | `syntax::missing-header` | the file does not start with `tenant NAME` / `base NAME` |
//! | `syntax::duplicate-header` | a second `tenant` / `base` line |
//! | `syntax::unknown-statement` | a line starts with a word that starts no statement here |
//! | `syntax::unknown-keyword` | a word in a keyword position is not one of the keywords allowed there |
//! | `syntax::expected` | something required is missing (`:`, `{`, a name, a value, …) |
//! | `syntax::trailing-input` | text after a complete statement |
//! | `syntax::unclosed-block` | a section has no closing `}` |
//! | `syntax::unexpected-close` | a `}` with no open section |
//! | `syntax::bad-name` | a tenant/base/window/trunk name is not `[a-z][a-z0-9-]*` (≤ 63) |
//! | `syntax::bad-prefix` | a prefix that is not `+` followed by digit groups |
//! | `syntax::bad-time` | a time that is not `HH:MM` |
//! | `syntax::bad-day` | a day that is not `mon` … `sun` |
//! | `syntax::bad-duration` | a duration that is not `<n><unit>…` with units `d h m s`, largest first |
//! | `syntax::bad-number` | a count with letters in it (`10x`) |
//! | `syntax::number-overflow` | a count or duration too large for 64 bits |
//! | `syntax::unterminated-string` | a `"` without its closing `"` on the same line |
//! | `syntax::missing-rate-unit` | a `rate` level without `/min` |
//! | `syntax::unexpected-rate-unit` | `/min` on a `concurrent` level |
//! | `syntax::bad-rate-unit` | a rate unit other than `/min` |
//! | `syntax::duplicate-level` | `warning` or `critical` given twice in one limit |

use crate::ast::{
    Action, Block, ClockTime, Comment, CryptoKey, CryptoStmt, DestStmt, Duration, File, FileKind,
    Header, Hold, Ident, Item, Level, LimitStmt, LimitValue, Metric, Prefix, Requirement,
    ResponseAction, ResponseStmt, Scope, Selector, SourceStmt, Stmt, TimeSpan, Trigger, Trivia,
    Window, WindowMode, WindowRef,
};
use crate::diag::{Diagnostic, did_you_mean, suggest};
use crate::source::FileId;
use crate::span::{Span, Spanned};
use nom::bytes::complete::{take_while, take_while1};
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Input, Parser as _};
use nom_locate::LocatedSpan;

type In<'a> = LocatedSpan<&'a str>;

/// Words that start a top-level statement.
const TOP_LEVEL: [&str; 11] = [
    "tenant",
    "base",
    "import",
    "home",
    "zone",
    "window",
    "destinations",
    "sources",
    "limits",
    "responses",
    "crypto",
];

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const NAME_HELP: &str = "a name starts with a lowercase letter and uses only `a-z`, `0-9` and `-`, at most 63 characters";

/// Parses one policy file. Returns the tree whenever the header parsed
/// (statements with errors are left out of it) and every syntax error found.
pub fn parse(text: &str, file: FileId) -> (Option<File>, Vec<Diagnostic>) {
    let lines = split_lines(text);
    let mut p = Parser {
        file,
        diags: Vec::new(),
        pending: Pending::default(),
        text_len: text.len(),
    };
    let result = p.file(&lines);
    (result, p.diags)
}

// ---------------------------------------------------------------- lines

#[derive(Debug)]
struct Line<'a> {
    /// The statement text, without indentation, comment and trailing blanks.
    content: In<'a>,
    comment: Option<Comment>,
}

impl Line<'_> {
    fn is_empty(&self) -> bool {
        self.content.fragment().is_empty()
    }
    fn first_word(&self) -> &str {
        let f = *self.content.fragment();
        let n = f.find(|c: char| !is_word_char(c)).unwrap_or(f.len());
        f.get(..n).unwrap_or("")
    }
    fn starts_with(&self, c: char) -> bool {
        self.content.fragment().starts_with(c)
    }
    fn ends_with(&self, c: char) -> bool {
        self.content.fragment().ends_with(c)
    }
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut rest = In::new(text);
    loop {
        let frag = *rest.fragment();
        let (line, next) = match frag.find('\n') {
            Some(n) => (rest.take(n), Some(rest.take_from(n + 1))),
            None => (rest, None),
        };
        lines.push(split_line(line));
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    lines
}

fn split_line(line: In<'_>) -> Line<'_> {
    let frag = *line.fragment();
    let mut in_string = false;
    let mut hash = None;
    for (i, c) in frag.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => {
                hash = Some(i);
                break;
            }
            _ => {}
        }
    }
    let (content, comment) = match hash {
        Some(h) => {
            let after = line.take_from(h + 1);
            let text = after.fragment().trim_end();
            let start = line.location_offset() + h;
            let comment = Comment {
                text: text.to_string(),
                span: Span::new(start, start + 1 + text.len()),
            };
            (line.take(h), Some(comment))
        }
        None => (line, None),
    };
    let f = *content.fragment();
    let lead = f.len() - f.trim_start().len();
    let content = content.take_from(lead);
    let content = content.take(content.fragment().trim_end().len());
    Line { content, comment }
}

// ---------------------------------------------------------------- line layer

#[derive(Debug, Default)]
struct Pending {
    blank: bool,
    comments: Vec<Comment>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Destinations,
    Sources,
    Limits,
    Responses,
    Crypto,
}

impl Section {
    fn from_word(w: &str) -> Option<Section> {
        Some(match w {
            "destinations" => Section::Destinations,
            "sources" => Section::Sources,
            "limits" => Section::Limits,
            "responses" => Section::Responses,
            "crypto" => Section::Crypto,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Section::Destinations => "destinations",
            Section::Sources => "sources",
            Section::Limits => "limits",
            Section::Responses => "responses",
            Section::Crypto => "crypto",
        }
    }
    fn starts(self) -> &'static [&'static str] {
        match self {
            Section::Destinations => &["allow", "deny", "international", "national"],
            Section::Sources => &["allow", "deny", "trunk"],
            Section::Limits => &["concurrent", "rate", "duration"],
            Section::Responses => &["on"],
            Section::Crypto => &["tls", "srtp", "client-certificate"],
        }
    }
    fn all() -> [Section; 5] {
        [
            Section::Destinations,
            Section::Sources,
            Section::Limits,
            Section::Responses,
            Section::Crypto,
        ]
    }
}

fn or_list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

struct Parser {
    file: FileId,
    diags: Vec<Diagnostic>,
    pending: Pending,
    text_len: usize,
}

impl Parser {
    fn push(&mut self, e: PErr) {
        let e = *e.0;
        let mut d = Diagnostic::error(e.code, self.file, e.span, e.message);
        if let Some(h) = e.help {
            d = d.with_help(h);
        }
        if let Some(l) = e.label {
            d = d.with_label(l);
        }
        for (span, m) in e.related {
            d = d.with_related(span, m);
        }
        self.diags.push(d);
    }

    fn note_empty(&mut self, line: &Line<'_>) {
        match &line.comment {
            Some(c) => self.pending.comments.push(c.clone()),
            None => {
                if self.pending.comments.is_empty() {
                    self.pending.blank = true;
                }
            }
        }
    }

    fn take_trivia(&mut self, blank_allowed: bool, trailing: Option<Comment>) -> Trivia {
        let p = std::mem::take(&mut self.pending);
        Trivia {
            blank_before: blank_allowed && p.blank,
            leading: p.comments,
            trailing,
        }
    }

    /// Runs a statement parser over one line's content; reports errors and
    /// trailing input.
    fn run<'a, T>(
        &mut self,
        content: In<'a>,
        p: impl FnOnce(In<'a>) -> PResult<'a, T>,
    ) -> Option<T> {
        match p(content) {
            Ok((rest, v)) => {
                let rest = skip_ws(rest);
                if rest.fragment().is_empty() {
                    Some(v)
                } else {
                    let tok = token_at(rest);
                    self.push(
                        PErr::new(
                            "syntax::trailing-input",
                            span_of(&rest),
                            format!(
                                "unexpected {} after the end of the statement",
                                describe_span(rest, tok)
                            ),
                        )
                        .help(
                            "separate list items with `,` and put each statement on its own line",
                        ),
                    );
                    None
                }
            }
            Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => {
                self.push(e);
                None
            }
            Err(nom::Err::Incomplete(_)) => {
                self.push(PErr::new(
                    "syntax::expected",
                    span_of(&content),
                    "incomplete statement",
                ));
                None
            }
        }
    }

    fn file(&mut self, lines: &[Line<'_>]) -> Option<File> {
        let mut header: Option<Stmt<Header>> = None;
        let mut header_seen = false;
        let mut items: Vec<Stmt<Item>> = Vec::new();
        let mut idx = 0;
        while let Some(line) = lines.get(idx) {
            if line.is_empty() {
                self.note_empty(line);
                idx += 1;
                continue;
            }
            let first = line.first_word();
            if !header_seen {
                header_seen = true;
                if first == "tenant" || first == "base" {
                    if let Some(h) = self.run(line.content, header_stmt) {
                        let trivia = self.take_trivia(false, line.comment.clone());
                        header = Some(Stmt {
                            trivia,
                            node: h,
                            span: span_of(&line.content),
                        });
                    }
                    idx += 1;
                    continue;
                }
                let tok = token_at(line.content);
                let help = did_you_mean(first, ["tenant", "base"]).unwrap_or_else(|| {
                    "start the file with `tenant NAME` or `base NAME`".to_string()
                });
                self.push(
                    PErr::new(
                        "syntax::missing-header",
                        tok,
                        format!(
                            "expected `tenant` or `base` header, found {}",
                            describe_span(line.content, tok)
                        ),
                    )
                    .help(help),
                );
                if suggest(first, ["tenant", "base"]).is_some() {
                    idx += 1;
                    continue;
                }
            }
            match first {
                "tenant" | "base" => {
                    let tok = token_at(line.content);
                    let mut e = PErr::new(
                        "syntax::duplicate-header",
                        tok,
                        format!("a second `{first}` header"),
                    )
                    .help("a file has exactly one `tenant` or `base` line, at the top; remove this one");
                    if let Some(h) = &header {
                        e = e.related(h.span, "the header is here");
                    }
                    self.push(e);
                    self.pending = Pending::default();
                    idx += 1;
                }
                "import" | "home" | "zone" | "window" => {
                    let node = match first {
                        "import" => self.run(line.content, import_stmt),
                        "home" => self.run(line.content, home_stmt),
                        "zone" => self.run(line.content, zone_stmt),
                        _ => self.run(line.content, window_stmt),
                    };
                    if let Some(node) = node {
                        let after_section = items.last().is_some_and(|s| s.node.is_section());
                        let mut trivia = self.take_trivia(true, line.comment.clone());
                        trivia.blank_before |= after_section;
                        items.push(Stmt {
                            trivia,
                            node,
                            span: span_of(&line.content),
                        });
                    }
                    idx += 1;
                }
                _ => {
                    if let Some(sec) = Section::from_word(first) {
                        let mut trivia = self.take_trivia(true, line.comment.clone());
                        trivia.blank_before = !items.is_empty();
                        let (item, span) = self.section(lines, &mut idx, sec);
                        if let Some(node) = item {
                            items.push(Stmt { trivia, node, span });
                        }
                    } else if line.starts_with('}') {
                        let tok = token_at(line.content);
                        self.push(
                            PErr::new(
                                "syntax::unexpected-close",
                                tok,
                                "unexpected `}` with no open section",
                            )
                            .help("remove this `}`; sections are opened with `destinations {`, `sources {`, `limits {`, `responses {` or `crypto {`"),
                        );
                        idx += 1;
                    } else {
                        self.unknown_top(line, first);
                        idx += 1;
                        if line.ends_with('{') {
                            // Skip the body of an unknown section.
                            while let Some(l) = lines.get(idx) {
                                if l.starts_with('}') {
                                    idx += 1;
                                    break;
                                }
                                if !l.is_empty() && TOP_LEVEL.contains(&l.first_word()) {
                                    break;
                                }
                                idx += 1;
                            }
                        }
                    }
                }
            }
        }
        if !header_seen {
            self.push(
                PErr::new(
                    "syntax::missing-header",
                    Span::new(0, 0),
                    "the file is empty: expected a `tenant` or `base` header",
                )
                .help("start the file with `tenant NAME` or `base NAME`"),
            );
        }
        let end_comments = std::mem::take(&mut self.pending.comments);
        header.map(|header| File {
            header,
            items,
            end_comments,
        })
    }

    fn unknown_top(&mut self, line: &Line<'_>, first: &str) {
        let tok = token_at(line.content);
        let help = did_you_mean(first, TOP_LEVEL).unwrap_or_else(|| {
            match Section::all()
                .into_iter()
                .find(|s| s.starts().contains(&first))
            {
                Some(s) => format!("`{first}` statements go inside a `{} {{ ... }}` section", s.name()),
                None => "a top-level statement starts with `import`, `home`, `zone`, `window`, `destinations`, `sources`, `limits`, `responses` or `crypto`".to_string(),
            }
        });
        self.push(
            PErr::new(
                "syntax::unknown-statement",
                tok,
                format!("unknown statement {}", describe_span(line.content, tok)),
            )
            .help(help),
        );
    }

    /// Parses a section from its opening line (at `*idx`) to its closing `}`
    /// (or the point where it is found unclosed). Returns the item, unless
    /// the opening line was wrong, and its span.
    fn section(
        &mut self,
        lines: &[Line<'_>],
        idx: &mut usize,
        sec: Section,
    ) -> (Option<Item>, Span) {
        let Some(open) = lines.get(*idx) else {
            return (None, Span::default());
        };
        *idx += 1;
        let kw_span = token_at(open.content);
        let open_ok = self.run(open.content, opener).is_some();
        let mut end = span_of(&open.content).end;
        let closed_inline = open.ends_with('}');
        let block = match sec {
            Section::Destinations => self
                .block(lines, idx, sec, kw_span, closed_inline, &mut end, dest_stmt)
                .map(Item::Destinations),
            Section::Sources => self
                .block(
                    lines,
                    idx,
                    sec,
                    kw_span,
                    closed_inline,
                    &mut end,
                    source_stmt,
                )
                .map(Item::Sources),
            Section::Limits => self
                .block(
                    lines,
                    idx,
                    sec,
                    kw_span,
                    closed_inline,
                    &mut end,
                    limit_stmt,
                )
                .map(Item::Limits),
            Section::Responses => self
                .block(
                    lines,
                    idx,
                    sec,
                    kw_span,
                    closed_inline,
                    &mut end,
                    response_stmt,
                )
                .map(Item::Responses),
            Section::Crypto => self
                .block(
                    lines,
                    idx,
                    sec,
                    kw_span,
                    closed_inline,
                    &mut end,
                    crypto_stmt,
                )
                .map(Item::Crypto),
        };
        let item = if open_ok { block } else { None };
        (item, Span::new(kw_span.start, end))
    }

    #[allow(clippy::too_many_arguments)]
    fn block<'a, T>(
        &mut self,
        lines: &[Line<'a>],
        idx: &mut usize,
        sec: Section,
        kw_span: Span,
        closed_inline: bool,
        end: &mut usize,
        p: fn(In<'a>) -> PResult<'a, T>,
    ) -> Option<Block<T>> {
        let mut block = Block {
            keyword: kw_span,
            stmts: Vec::new(),
            end_comments: Vec::new(),
        };
        if closed_inline {
            return Some(block);
        }
        // A `{` alone on the next line (after a reported missing `{`).
        if let Some(l) = lines.get(*idx)
            && *l.content.fragment() == "{"
        {
            *idx += 1;
        }
        loop {
            let Some(line) = lines.get(*idx) else {
                self.push(
                    PErr::new(
                        "syntax::unclosed-block",
                        kw_span,
                        format!("unclosed `{}` section", sec.name()),
                    )
                    .label("this section is never closed")
                    .help("add a line with `}` after the last statement of the section"),
                );
                block.end_comments = std::mem::take(&mut self.pending.comments);
                *end = self.text_len;
                return Some(block);
            };
            if line.is_empty() {
                self.note_empty(line);
                *idx += 1;
                continue;
            }
            let first = line.first_word();
            if line.starts_with('}') {
                let rest = skip_ws(line.content.take_from(1));
                if !rest.fragment().is_empty() {
                    let tok = token_at(rest);
                    self.push(
                        PErr::new(
                            "syntax::trailing-input",
                            span_of(&rest),
                            format!("unexpected {} after `}}`", describe_span(rest, tok)),
                        )
                        .help("put `}` on a line of its own"),
                    );
                }
                let mut comments = std::mem::take(&mut self.pending.comments);
                comments.extend(line.comment.clone());
                self.pending = Pending::default();
                block.end_comments = comments;
                *end = line.content.location_offset() + 1;
                *idx += 1;
                return Some(block);
            }
            if TOP_LEVEL.contains(&first) || line.ends_with('{') {
                let tok = token_at(line.content);
                self.push(
                    PErr::new(
                        "syntax::unclosed-block",
                        kw_span,
                        format!("unclosed `{}` section", sec.name()),
                    )
                    .label("this section is never closed")
                    .related(tok, "the section must be closed before this line")
                    .help("add a line with `}` after the last statement of the section"),
                );
                return Some(block);
            }
            *idx += 1;
            if sec.starts().contains(&first) {
                if let Some(node) = self.run(line.content, p) {
                    let blank_ok = !block.stmts.is_empty();
                    let trivia = self.take_trivia(blank_ok, line.comment.clone());
                    block.stmts.push(Stmt {
                        trivia,
                        node,
                        span: span_of(&line.content),
                    });
                }
            } else {
                let tok = token_at(line.content);
                let help = did_you_mean(first, sec.starts().iter().copied())
                    .or_else(|| {
                        Section::all()
                            .into_iter()
                            .find(|s| s.starts().contains(&first))
                            .map(|s| format!("`{first}` statements belong in the `{}` section", s.name()))
                    })
                    .or_else(|| {
                        suggest(first, TOP_LEVEL).map(|s| {
                            format!("did you mean `{s}`? it must come after the `}}` that closes this section")
                        })
                    })
                    .unwrap_or_else(|| {
                        format!(
                            "a `{}` statement starts with {}",
                            sec.name(),
                            or_list(sec.starts())
                        )
                    });
                self.push(
                    PErr::new(
                        "syntax::unknown-statement",
                        tok,
                        format!(
                            "unknown statement {} in `{}`",
                            describe_span(line.content, tok),
                            sec.name()
                        ),
                    )
                    .help(help),
                );
            }
        }
    }
}

// ---------------------------------------------------------------- statement layer: basics

/// A syntax error found by a statement parser (boxed: results stay small).
#[derive(Debug, Clone)]
struct PErr(Box<PErrData>);

#[derive(Debug, Clone)]
struct PErrData {
    code: &'static str,
    message: String,
    span: Span,
    help: Option<String>,
    label: Option<String>,
    related: Vec<(Span, String)>,
}

impl PErr {
    fn new(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        PErr(Box::new(PErrData {
            code,
            message: message.into(),
            span,
            help: None,
            label: None,
            related: Vec::new(),
        }))
    }
    fn help(mut self, h: impl Into<String>) -> Self {
        self.0.help = Some(h.into());
        self
    }
    fn label(mut self, l: impl Into<String>) -> Self {
        self.0.label = Some(l.into());
        self
    }
    fn related(mut self, span: Span, m: impl Into<String>) -> Self {
        self.0.related.push((span, m.into()));
        self
    }
    fn fail<'a, T>(self) -> PResult<'a, T> {
        Err(nom::Err::Failure(self))
    }
}

impl<'a> ParseError<In<'a>> for PErr {
    fn from_error_kind(input: In<'a>, _kind: ErrorKind) -> Self {
        let tok = token_at(input);
        PErr::new(
            "syntax::expected",
            tok,
            format!("unexpected {}", describe_span(input, tok)),
        )
    }
    fn append(_: In<'a>, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, T> = IResult<In<'a>, T, PErr>;

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '+')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn span_of(i: &In<'_>) -> Span {
    let s = i.location_offset();
    Span::new(s, s + i.fragment().len())
}

fn skip_ws(i: In<'_>) -> In<'_> {
    let f = *i.fragment();
    let n = f.len() - f.trim_start_matches(is_blank).len();
    i.take_from(n)
}

fn ws(i: In<'_>) -> PResult<'_, In<'_>> {
    take_while(is_blank).parse(i)
}

/// The span of the token at the start of `i` (a word, or one character; empty
/// at the end of the line).
fn token_at(i: In<'_>) -> Span {
    let f = *i.fragment();
    let start = i.location_offset();
    let len = match f.chars().next() {
        None => 0,
        Some(c) if is_word_char(c) => f.find(|c: char| !is_word_char(c)).unwrap_or(f.len()),
        Some(c) => c.len_utf8(),
    };
    Span::new(start, start + len)
}

/// "`tok`" or "the end of the line", for the token `tok` inside `i`.
fn describe_span(i: In<'_>, tok: Span) -> String {
    let f = *i.fragment();
    let from = tok.start.saturating_sub(i.location_offset());
    match f.get(from..from + tok.len()) {
        Some(t) if !t.is_empty() => format!("`{}`", short(t)),
        _ => "the end of the line".to_string(),
    }
}

/// `t`, cut to 40 characters (with `…`) for quoting in a message.
fn short(t: &str) -> std::borrow::Cow<'_, str> {
    match t.char_indices().nth(40) {
        Some((n, _)) => format!("{}…", t.get(..n).unwrap_or("")).into(),
        None => t.into(),
    }
}

fn expected<'a, T>(i: In<'a>, what: &str, help: impl Into<String>) -> PResult<'a, T> {
    let tok = token_at(i);
    let found = describe_span(i, tok);
    PErr::new(
        "syntax::expected",
        tok,
        format!("expected {what}, found {found}"),
    )
    .help(help)
    .fail()
}

fn word(i: In<'_>) -> PResult<'_, In<'_>> {
    take_while1(is_word_char).parse(i)
}

fn ident(i: In<'_>) -> Ident {
    Spanned::new(i.fragment().to_string(), span_of(&i))
}

/// A word in a value position (country, zone, class, ...).
fn value<'a>(i: In<'a>, what: &str, help: &str) -> PResult<'a, Ident> {
    let (i, _) = ws(i)?;
    match word(i) {
        Ok((rest, w)) => Ok((rest, ident(w))),
        Err(_) => expected(i, what, help),
    }
}

/// A name: `[a-z][a-z0-9-]*`, at most 63 characters.
fn name<'a>(i: In<'a>, what: &str, help: &str) -> PResult<'a, Ident> {
    let (i, _) = ws(i)?;
    let Ok((rest, w)) = word(i) else {
        return expected(i, what, help);
    };
    let t = *w.fragment();
    let valid = t.len() <= 63
        && t.starts_with(|c: char| c.is_ascii_lowercase())
        && t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return PErr::new(
            "syntax::bad-name",
            span_of(&w),
            format!("invalid name `{}`", short(t)),
        )
        .help(NAME_HELP)
        .fail();
    }
    Ok((rest, ident(w)))
}

/// One of the keywords of `table`.
fn keyword<'a, T: Copy>(
    i: In<'a>,
    table: &[(&'static str, T)],
    what: &str,
    help: &str,
) -> PResult<'a, Spanned<T>> {
    let (i, _) = ws(i)?;
    match word(i) {
        Ok((rest, w)) => {
            let t = *w.fragment();
            if let Some((_, v)) = table.iter().find(|(k, _)| *k == t) {
                return Ok((rest, Spanned::new(*v, span_of(&w))));
            }
            let help =
                did_you_mean(t, table.iter().map(|(k, _)| *k)).unwrap_or_else(|| help.to_string());
            PErr::new(
                "syntax::unknown-keyword",
                span_of(&w),
                format!("expected {what}, found `{}`", short(t)),
            )
            .help(help)
            .fail()
        }
        Err(_) => expected(i, what, help),
    }
}

/// The punctuation character `c` (after optional blanks).
fn punct<'a>(i: In<'a>, c: char, after: &str, help: &str) -> PResult<'a, Span> {
    let (i, _) = ws(i)?;
    if i.fragment().starts_with(c) {
        let start = i.location_offset();
        Ok((
            i.take_from(c.len_utf8()),
            Span::new(start, start + c.len_utf8()),
        ))
    } else {
        expected(i, &format!("`{c}` after {after}"), help)
    }
}

/// `item { "," item }`.
fn comma_list<'a, T>(
    i: In<'a>,
    mut item: impl FnMut(In<'a>) -> PResult<'a, T>,
) -> PResult<'a, Vec<T>> {
    let (mut i, first) = item(i)?;
    let mut items = vec![first];
    loop {
        let r = skip_ws(i);
        if r.fragment().starts_with(',') {
            let (r, x) = item(r.take_from(1))?;
            items.push(x);
            i = r;
        } else {
            return Ok((i, items));
        }
    }
}

/// Splits off the run of characters of `i` matching `f` (possibly empty).
fn run_of(i: In<'_>, f: impl Fn(char) -> bool) -> (In<'_>, In<'_>) {
    let frag = *i.fragment();
    let n = frag.find(|c: char| !f(c)).unwrap_or(frag.len());
    (i.take_from(n), i.take(n))
}

// ---------------------------------------------------------------- top-level statements

fn header_stmt(i: In<'_>) -> PResult<'_, Header> {
    let (i, kind) = keyword(
        i,
        &[("tenant", FileKind::Tenant), ("base", FileKind::Base)],
        "`tenant` or `base`",
        "start the file with `tenant NAME` or `base NAME`",
    )?;
    let (i, name) = name(
        i,
        "a name",
        &format!(
            "write `{} NAME`; {NAME_HELP}",
            if kind.node == FileKind::Tenant {
                "tenant"
            } else {
                "base"
            }
        ),
    )?;
    Ok((i, Header { kind, name }))
}

fn opener(i: In<'_>) -> PResult<'_, ()> {
    let (i, w) = word(i)?;
    let kw = *w.fragment();
    let (i, _) = punct(
        i,
        '{',
        &format!("`{kw}`"),
        &format!("write `{kw} {{` and the section's statements on the following lines"),
    )?;
    let r = skip_ws(i);
    if r.fragment().starts_with('}') {
        return Ok((r.take_from(1), ()));
    }
    if !r.fragment().is_empty() {
        let tok = token_at(r);
        return PErr::new(
            "syntax::trailing-input",
            span_of(&r),
            format!("unexpected {} after `{{`", describe_span(r, tok)),
        )
        .help("put each statement of the section on its own line after `{`")
        .fail();
    }
    Ok((r, ()))
}

fn string_lit(i: In<'_>) -> PResult<'_, Spanned<String>> {
    let (i, _) = ws(i)?;
    let f = *i.fragment();
    if !f.starts_with('"') {
        return expected(
            i,
            "a quoted path",
            "write e.g. `import \"../base/standard.tgp\"`",
        );
    }
    let body = i.take_from(1);
    match body.fragment().find('"') {
        Some(n) => {
            let text = body.take(n).fragment().to_string();
            let start = i.location_offset();
            Ok((
                body.take_from(n + 1),
                Spanned::new(text, Span::new(start, start + n + 2)),
            ))
        }
        None => PErr::new(
            "syntax::unterminated-string",
            span_of(&i),
            "unterminated string",
        )
        .label("this string has no closing `\"`")
        .help("close the string with `\"` on the same line")
        .fail(),
    }
}

fn import_stmt(i: In<'_>) -> PResult<'_, Item> {
    let (i, _) = word(i)?;
    let (i, s) = string_lit(i)?;
    Ok((i, Item::Import(s)))
}

fn home_stmt(i: In<'_>) -> PResult<'_, Item> {
    let (i, _) = word(i)?;
    let (i, c) = value(i, "a country code after `home`", "write e.g. `home GB`")?;
    Ok((i, Item::Home(c)))
}

fn zone_stmt(i: In<'_>) -> PResult<'_, Item> {
    let (i, _) = word(i)?;
    let (i, z) = value(
        i,
        "a time zone after `zone`",
        "write e.g. `zone Europe/London`",
    )?;
    Ok((i, Item::Zone(z)))
}

fn window_stmt(i: In<'_>) -> PResult<'_, Item> {
    let (i, _) = word(i)?;
    let (i, name) = name(
        i,
        "a window name",
        "write e.g. `window business: mon-fri 08:00-18:00`",
    )?;
    let (i, _) = punct(
        i,
        ':',
        "the window name",
        "write e.g. `window business: mon-fri 08:00-18:00`",
    )?;
    let (i, spans) = comma_list(i, timespan)?;
    let r = skip_ws(i);
    let (i, zone) = match word(r) {
        Ok((rest, z)) => (rest, Some(ident(z))),
        Err(_) => (i, None),
    };
    Ok((i, Item::Window(Window { name, spans, zone })))
}

fn day(i: In<'_>) -> PResult<'_, Ident> {
    let (i, _) = ws(i)?;
    let (rest, tok) = run_of(i, |c| c.is_ascii_alphanumeric() || c == '_');
    let t = *tok.fragment();
    if t.is_empty() {
        return expected(
            i,
            "a day (`mon` to `sun`)",
            "write e.g. `mon-fri 08:00-18:00`",
        );
    }
    if !DAYS.contains(&t) {
        let help = did_you_mean(t, DAYS).unwrap_or_else(|| {
            "days are `mon`, `tue`, `wed`, `thu`, `fri`, `sat` and `sun`".to_string()
        });
        return PErr::new(
            "syntax::bad-day",
            span_of(&tok),
            format!("unknown day `{t}`"),
        )
        .help(help)
        .fail();
    }
    Ok((rest, ident(tok)))
}

fn clock(i: In<'_>) -> PResult<'_, Spanned<ClockTime>> {
    let (i, _) = ws(i)?;
    let (rest, tok) = run_of(i, |c| c.is_ascii_alphanumeric() || c == ':' || c == '.');
    let t = *tok.fragment();
    if t.is_empty() {
        return expected(
            i,
            "a time such as `08:00`",
            "write times as `HH:MM`, e.g. `mon-fri 08:00-18:00`",
        );
    }
    let b = t.as_bytes();
    let parsed = match b {
        [h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) => {
            Some(ClockTime {
                hour: u32::from(h1 - b'0') * 10 + u32::from(h2 - b'0'),
                minute: u32::from(m1 - b'0') * 10 + u32::from(m2 - b'0'),
            })
        }
        _ => None,
    };
    match parsed {
        Some(ct) => Ok((rest, Spanned::new(ct, span_of(&tok)))),
        None => PErr::new(
            "syntax::bad-time",
            span_of(&tok),
            format!("invalid time `{t}`"),
        )
        .help("write times as `HH:MM` (24-hour, two digits each), e.g. `08:00`")
        .fail(),
    }
}

fn timespan(i: In<'_>) -> PResult<'_, Spanned<TimeSpan>> {
    let i = skip_ws(i);
    let start = i.location_offset();
    let (i, from_day) = day(i)?;
    let (i, to_day) = if i.fragment().starts_with('-') {
        let (i, d) = day(i.take_from(1))?;
        (i, Some(d))
    } else {
        (i, None)
    };
    let (i, start_t) = clock(i)?;
    let (i, _) = punct(
        i,
        '-',
        "the start time",
        "write a time range as `HH:MM-HH:MM`, e.g. `08:00-18:00`",
    )?;
    let (i, end_t) = clock(i)?;
    let end = end_t.span.end;
    Ok((
        i,
        Spanned::new(
            TimeSpan {
                from_day,
                to_day,
                start: start_t,
                end: end_t,
            },
            Span::new(start, end),
        ),
    ))
}

// ---------------------------------------------------------------- values

fn duration(i: In<'_>) -> PResult<'_, Spanned<Duration>> {
    let (i, _) = ws(i)?;
    let (rest, tok) = run_of(i, |c| c.is_ascii_alphanumeric());
    let t = *tok.fragment();
    if t.is_empty() {
        return expected(
            i,
            "a duration such as `1h` or `30m`",
            "write a number followed by `s`, `m`, `h` or `d`, e.g. `1h30m`",
        );
    }
    match parse_duration(t) {
        Ok(seconds) => Ok((rest, Spanned::new(Duration { seconds }, span_of(&tok)))),
        Err(DurErr::Overflow) => PErr::new(
            "syntax::number-overflow",
            span_of(&tok),
            format!("duration `{t}` is too large"),
        )
        .help("use a smaller duration")
        .fail(),
        Err(DurErr::Bad) => PErr::new(
            "syntax::bad-duration",
            span_of(&tok),
            format!("invalid duration `{t}`"),
        )
        .help("write a number followed by `s`, `m`, `h` or `d`, largest unit first, e.g. `90s`, `2h` or `1h30m`")
        .fail(),
    }
}

enum DurErr {
    Bad,
    Overflow,
}

fn parse_duration(s: &str) -> Result<u64, DurErr> {
    let mut total: u64 = 0;
    let mut last_rank = u8::MAX;
    let mut rest = s;
    if s.is_empty() {
        return Err(DurErr::Bad);
    }
    while !rest.is_empty() {
        let nd = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if nd == 0 {
            return Err(DurErr::Bad);
        }
        let digits = rest.get(..nd).ok_or(DurErr::Bad)?;
        let unit = rest
            .get(nd..)
            .and_then(|u| u.chars().next())
            .ok_or(DurErr::Bad)?;
        let (rank, mult): (u8, u64) = match unit {
            'd' => (4, 86_400),
            'h' => (3, 3_600),
            'm' => (2, 60),
            's' => (1, 1),
            _ => return Err(DurErr::Bad),
        };
        if rank >= last_rank {
            return Err(DurErr::Bad);
        }
        last_rank = rank;
        let n: u64 = digits.parse().map_err(|_| DurErr::Overflow)?;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or(DurErr::Overflow)?;
        rest = rest.get(nd + unit.len_utf8()..).unwrap_or("");
    }
    Ok(total)
}

/// A count: digits, not followed by letters.
fn count<'a>(i: In<'a>, after: &str, help: &str) -> PResult<'a, Spanned<u64>> {
    let (i, _) = ws(i)?;
    let (rest, digits) = run_of(i, |c| c.is_ascii_digit());
    if digits.fragment().is_empty() {
        return expected(i, &format!("a number after {after}"), help);
    }
    let (_, tail) = run_of(rest, |c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !tail.fragment().is_empty() {
        let (_, whole) = run_of(i, |c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        return PErr::new(
            "syntax::bad-number",
            span_of(&whole),
            format!("invalid number `{}`", whole.fragment()),
        )
        .help("write a whole number, e.g. `10`")
        .fail();
    }
    match digits.fragment().parse::<u64>() {
        Ok(n) => Ok((rest, Spanned::new(n, span_of(&digits)))),
        Err(_) => PErr::new(
            "syntax::number-overflow",
            span_of(&digits),
            format!("number `{}` is too large", digits.fragment()),
        )
        .help("use a number below 18446744073709551616")
        .fail(),
    }
}

const PREFIX_HELP: &str =
    "a prefix is `+` followed by digits, optionally in groups separated by spaces, e.g. `+44 20 7`";

fn prefix(i: In<'_>) -> PResult<'_, Spanned<Prefix>> {
    let (i, _) = ws(i)?;
    let Ok((mut i, tok)) = word(i) else {
        return expected(i, "a prefix such as `+44 20`", PREFIX_HELP);
    };
    let t = *tok.fragment();
    let good = t
        .strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    if !good {
        let help = if t.bytes().all(|b| b.is_ascii_digit()) {
            format!("prefixes start with `+`: write `+{t}`")
        } else {
            PREFIX_HELP.to_string()
        };
        return PErr::new(
            "syntax::bad-prefix",
            span_of(&tok),
            format!("invalid prefix `{t}`"),
        )
        .help(help)
        .fail();
    }
    let mut text = t.to_string();
    let start = tok.location_offset();
    let mut end = span_of(&tok).end;
    loop {
        let (r, sp) = ws(i)?;
        if sp.fragment().is_empty() || !r.fragment().starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
        let (r2, g) = word(r)?;
        let gt = *g.fragment();
        if !gt.bytes().all(|b| b.is_ascii_digit()) {
            return PErr::new(
                "syntax::bad-prefix",
                span_of(&g),
                format!("invalid prefix digits `{gt}`"),
            )
            .help(PREFIX_HELP)
            .fail();
        }
        text.push(' ');
        text.push_str(gt);
        end = span_of(&g).end;
        i = r2;
    }
    Ok((i, Spanned::new(Prefix { text }, Span::new(start, end))))
}

fn address(i: In<'_>) -> PResult<'_, Ident> {
    let (i, _) = ws(i)?;
    let (rest, tok) = run_of(i, |c| !c.is_whitespace() && c != ',');
    if tok.fragment().is_empty() {
        return expected(
            i,
            "an address such as `203.0.113.10` or `198.51.100.0/24`",
            "write an IPv4 or IPv6 address or CIDR",
        );
    }
    Ok((rest, ident(tok)))
}

const ACTIONS: [(&str, Action); 2] = [("allow", Action::Allow), ("deny", Action::Deny)];

fn first_action(i: In<'_>) -> PResult<'_, Spanned<Action>> {
    keyword(i, &ACTIONS, "`allow` or `deny`", "write `allow` or `deny`")
}

// ---------------------------------------------------------------- destinations

#[derive(Clone, Copy)]
enum SelKind {
    Prefix,
    Country,
    Class,
}

fn dest_stmt(i: In<'_>) -> PResult<'_, DestStmt> {
    let (r, w) = word(i)?;
    let kw = *w.fragment();
    match kw {
        "international" | "national" => {
            let scope = Spanned::new(
                if kw == "international" {
                    Scope::International
                } else {
                    Scope::National
                },
                span_of(&w),
            );
            let help = format!("write `{kw}: allow` or `{kw}: deny`");
            let (r, _) = punct(r, ':', &format!("`{kw}`"), &help)?;
            let (r, action) = keyword(r, &ACTIONS, "`allow` or `deny`", &help)?;
            Ok((r, DestStmt::Default { scope, action }))
        }
        _ => {
            let (r, action) = first_action(i)?;
            let (r, sel) = keyword(
                r,
                &[
                    ("prefix", SelKind::Prefix),
                    ("country", SelKind::Country),
                    ("class", SelKind::Class),
                ],
                "`prefix`, `country` or `class`",
                "write e.g. `allow country GB`, `deny prefix +44 70` or `deny class premium-rate`",
            )?;
            let (r, selector) = match sel.node {
                SelKind::Prefix => {
                    let (r, v) = comma_list(r, prefix)?;
                    (r, Selector::Prefix(v))
                }
                SelKind::Country => {
                    let (r, v) = comma_list(r, |i| {
                        value(i, "a country code", "write e.g. `allow country GB, FR`")
                    })?;
                    (r, Selector::Country(v))
                }
                SelKind::Class => {
                    let (r, v) = comma_list(r, |i| {
                        value(
                            i,
                            "a class name",
                            "write e.g. `deny class premium-rate, satellite`",
                        )
                    })?;
                    (r, Selector::Class(v))
                }
            };
            let (r, window) = window_ref(r)?;
            Ok((
                r,
                DestStmt::Rule {
                    action,
                    selector,
                    window,
                },
            ))
        }
    }
}

fn window_ref(i: In<'_>) -> PResult<'_, Option<WindowRef>> {
    let r = skip_ws(i);
    let Ok((r2, w)) = word(r) else {
        return Ok((i, None));
    };
    let t = *w.fragment();
    let mode = match t {
        "during" => WindowMode::During,
        "outside" => WindowMode::Outside,
        _ => {
            if let Some(help) = did_you_mean(t, ["during", "outside"]) {
                return PErr::new(
                    "syntax::unknown-keyword",
                    span_of(&w),
                    format!("expected `during` or `outside`, found `{t}`"),
                )
                .help(help)
                .fail();
            }
            return Ok((i, None));
        }
    };
    let (r3, name) = name(
        r2,
        &format!("a window name after `{t}`"),
        &format!("write e.g. `{t} business`"),
    )?;
    Ok((
        r3,
        Some(WindowRef {
            mode: Spanned::new(mode, span_of(&w)),
            name,
        }),
    ))
}

// ---------------------------------------------------------------- sources

fn source_stmt(i: In<'_>) -> PResult<'_, SourceStmt> {
    let (r, w) = word(i)?;
    if *w.fragment() == "trunk" {
        let (r, name) = name(
            r,
            "a trunk name",
            "write e.g. `trunk carrier-a: 203.0.113.10/32`",
        )?;
        let (r, _) = punct(
            r,
            ':',
            "the trunk name",
            "write e.g. `trunk carrier-a: 203.0.113.10/32`",
        )?;
        let (r, networks) = comma_list(r, address)?;
        return Ok((r, SourceStmt::Trunk { name, networks }));
    }
    let (r, action) = first_action(i)?;
    let s = skip_ws(r);
    if let Ok((after, w)) = word(s) {
        let t = *w.fragment();
        if t == "country" {
            let (r, countries) = comma_list(after, |i| {
                value(i, "a country code", "write e.g. `deny country CN, RU`")
            })?;
            return Ok((r, SourceStmt::Countries { action, countries }));
        }
        if t.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
            let help = did_you_mean(t, ["country"]).unwrap_or_else(|| {
                "write addresses like `198.51.100.0/24` or `2001:db8::/32`, or `country CC`"
                    .to_string()
            });
            return PErr::new(
                "syntax::unknown-keyword",
                span_of(&w),
                format!("expected an address or `country`, found `{t}`"),
            )
            .help(help)
            .fail();
        }
    }
    let (r, networks) = comma_list(r, address)?;
    Ok((r, SourceStmt::Networks { action, networks }))
}

// ---------------------------------------------------------------- limits

const LEVELS: [(&str, Level); 2] = [("warning", Level::Warning), ("critical", Level::Critical)];

fn limit_stmt(i: In<'_>) -> PResult<'_, LimitStmt> {
    let (r, metric) = keyword(
        i,
        &[
            ("concurrent", Metric::Concurrent),
            ("rate", Metric::Rate),
            ("duration", Metric::Duration),
        ],
        "`concurrent`, `rate` or `duration`",
        "write e.g. `concurrent: warning 10, critical 20`",
    )?;
    let mname = match metric.node {
        Metric::Concurrent => "concurrent",
        Metric::Rate => "rate",
        Metric::Duration => "duration",
    };
    let example = match metric.node {
        Metric::Concurrent => "`concurrent: warning 10, critical 20`",
        Metric::Rate => "`rate: warning 5/min, critical 10/min`",
        Metric::Duration => "`duration: 2h`",
    };
    let s = skip_ws(r);
    let (r, class) = match word(s) {
        Ok((after, w)) => {
            if LEVELS.iter().any(|(k, _)| k == w.fragment()) {
                return expected(
                    s,
                    &format!("`:` after `{mname}`"),
                    format!("write e.g. {example}"),
                );
            }
            (after, Some(ident(w)))
        }
        Err(_) => (r, None),
    };
    let (r, _) = punct(
        r,
        ':',
        &format!("`{mname}`"),
        &format!("write e.g. {example}"),
    )?;
    if metric.node == Metric::Duration {
        let (r, d) = duration(r)?;
        return Ok((
            r,
            LimitStmt {
                metric,
                class,
                value: LimitValue::Max(d),
            },
        ));
    }
    let mut warning: Option<Spanned<u64>> = None;
    let mut critical: Option<Spanned<u64>> = None;
    let (r, levels) = comma_list(r, |i| level(i, metric.node, example))?;
    for (lvl, n) in levels {
        let slot = match lvl.node {
            Level::Warning => &mut warning,
            Level::Critical => &mut critical,
        };
        if let Some(prev) = slot {
            let lname = if lvl.node == Level::Warning {
                "warning"
            } else {
                "critical"
            };
            return PErr::new(
                "syntax::duplicate-level",
                lvl.span,
                format!("`{lname}` is given twice"),
            )
            .related(prev.span, "first given here")
            .help("give each of `warning` and `critical` at most once")
            .fail();
        }
        *slot = Some(n);
    }
    Ok((
        r,
        LimitStmt {
            metric,
            class,
            value: LimitValue::Levels { warning, critical },
        },
    ))
}

fn level<'a>(
    i: In<'a>,
    metric: Metric,
    example: &str,
) -> PResult<'a, (Spanned<Level>, Spanned<u64>)> {
    let help = format!("write e.g. {example}");
    let (r, lvl) = keyword(i, &LEVELS, "`warning` or `critical`", &help)?;
    let lname = if lvl.node == Level::Warning {
        "`warning`"
    } else {
        "`critical`"
    };
    let (r, n) = count(r, lname, &help)?;
    if r.fragment().starts_with('/') {
        let (r2, unit) = run_of(r, is_word_char);
        let ut = *unit.fragment();
        if metric != Metric::Rate {
            return PErr::new(
                "syntax::unexpected-rate-unit",
                span_of(&unit),
                format!("unexpected `{ut}` on a `concurrent` limit"),
            )
            .help(format!(
                "concurrent calls are a plain count: write `{}`",
                n.node
            ))
            .fail();
        }
        if ut != "/min" {
            return PErr::new(
                "syntax::bad-rate-unit",
                span_of(&unit),
                format!("unknown rate unit `{ut}`"),
            )
            .help(format!(
                "rates are counted per minute: write `{}/min`",
                n.node
            ))
            .fail();
        }
        return Ok((r2, (lvl, n)));
    }
    if metric == Metric::Rate {
        return PErr::new(
            "syntax::missing-rate-unit",
            n.span,
            format!("rate level `{}` has no unit", n.node),
        )
        .help(format!(
            "rates are counted per minute: write `{}/min`",
            n.node
        ))
        .fail();
    }
    Ok((r, (lvl, n)))
}

// ---------------------------------------------------------------- responses

fn response_stmt(i: In<'_>) -> PResult<'_, ResponseStmt> {
    let (r, _) = word(i)?; // `on`
    #[derive(Clone, Copy)]
    enum T {
        Concurrent,
        Rate,
        Anomaly,
    }
    let trig_help = "write e.g. `on concurrent critical: block tenant for 1h` or `on anomaly new-destination: alert`";
    let (r, t) = keyword(
        r,
        &[
            ("concurrent", T::Concurrent),
            ("rate", T::Rate),
            ("anomaly", T::Anomaly),
        ],
        "`concurrent`, `rate` or `anomaly`",
        trig_help,
    )?;
    let (r, trigger) = match t.node {
        T::Anomaly => {
            let (r, kind) = value(
                r,
                "an anomaly kind after `anomaly`",
                "write e.g. `on anomaly new-destination: alert`",
            )?;
            (r, Trigger::Anomaly { kind })
        }
        T::Concurrent | T::Rate => {
            let metric = Spanned::new(
                if matches!(t.node, T::Rate) {
                    Metric::Rate
                } else {
                    Metric::Concurrent
                },
                t.span,
            );
            let s = skip_ws(r);
            let (r, class) = match word(s) {
                Ok((after, w))
                    if !LEVELS.iter().any(|(k, _)| k == w.fragment()) && !is_level_typo(&w) =>
                {
                    (after, Some(ident(w)))
                }
                _ => (r, None),
            };
            let (r, level) = keyword(r, &LEVELS, "`warning` or `critical`", trig_help)?;
            (
                r,
                Trigger::Breach {
                    metric,
                    class,
                    level,
                },
            )
        }
    };
    let (r, _) = punct(
        r,
        ':',
        "the trigger",
        "write the reaction after `:`, e.g. `: alert`",
    )?;
    #[derive(Clone, Copy)]
    enum A {
        Alert,
        Block,
    }
    let react_help =
        "write `alert`, `block class CLASS for 1h` or `block tenant until acknowledged`";
    let (r, a) = keyword(
        r,
        &[("alert", A::Alert), ("block", A::Block)],
        "`alert` or `block`",
        react_help,
    )?;
    let (r, action) = match a.node {
        A::Alert => (r, ResponseAction::Alert(a.span)),
        A::Block => {
            #[derive(Clone, Copy)]
            enum B {
                Class,
                Tenant,
            }
            let (r, b) = keyword(
                r,
                &[("class", B::Class), ("tenant", B::Tenant)],
                "`class` or `tenant` after `block`",
                react_help,
            )?;
            let sp = a.span.join(b.span);
            match b.node {
                B::Tenant => (r, ResponseAction::BlockTenant(sp)),
                B::Class => {
                    let (r, classes) = comma_list(r, |i| {
                        value(
                            i,
                            "a class name",
                            "write e.g. `block class international for 1h`",
                        )
                    })?;
                    (r, ResponseAction::BlockClasses(sp, classes))
                }
            }
        }
    };
    let hold_help = "write `for DURATION` (e.g. `for 1h`) or `until acknowledged`";
    let (r, hold) = match a.node {
        A::Alert => (r, None),
        A::Block => {
            #[derive(Clone, Copy)]
            enum H {
                For,
                Until,
            }
            let (r, h) = keyword(
                r,
                &[("for", H::For), ("until", H::Until)],
                "`for` or `until` after the block",
                hold_help,
            )?;
            match h.node {
                H::For => {
                    let (r, d) = duration(r)?;
                    (
                        r,
                        Some(Spanned::new(Hold::For(d.node), h.span.join(d.span))),
                    )
                }
                H::Until => {
                    let (r, ack) = keyword(
                        r,
                        &[("acknowledged", ())],
                        "`acknowledged` after `until`",
                        hold_help,
                    )?;
                    (
                        r,
                        Some(Spanned::new(Hold::UntilAcknowledged, h.span.join(ack.span))),
                    )
                }
            }
        }
    };
    Ok((
        r,
        ResponseStmt {
            trigger,
            action,
            hold,
        },
    ))
}

/// A word that is a misspelling of `warning`/`critical` rather than a class.
fn is_level_typo(w: &In<'_>) -> bool {
    suggest(w.fragment(), ["warning", "critical"]).is_some()
}

// ---------------------------------------------------------------- crypto

fn crypto_stmt(i: In<'_>) -> PResult<'_, CryptoStmt> {
    let (r, key) = keyword(
        i,
        &[
            ("tls", CryptoKey::Tls),
            ("srtp", CryptoKey::Srtp),
            ("client-certificate", CryptoKey::ClientCertificate),
        ],
        "`tls`, `srtp` or `client-certificate`",
        "write e.g. `tls: required`",
    )?;
    let (r, _) = punct(r, ':', "the crypto setting", "write e.g. `tls: required`")?;
    let (r, value) = keyword(
        r,
        &[
            ("required", Requirement::Required),
            ("optional", Requirement::Optional),
        ],
        "`required` or `optional`",
        "write e.g. `tls: required`",
    )?;
    Ok((r, CryptoStmt { key, value }))
}

#[cfg(test)]
mod tests;
