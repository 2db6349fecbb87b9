//! The line layer: the header, top-level statements and sections (`keyword {`
//! ... `}`) built from lines, with trivia attached and recovery at line
//! granularity (a bad statement is reported and skipped, an unclosed section
//! is closed where the next top-level statement starts, a stray `}` is
//! reported and ignored).

use super::crypto::crypto_stmt;
use super::destinations::dest_stmt;
use super::limits::limit_stmt;
use super::lines::Line;
use super::responses::response_stmt;
use super::sources::source_stmt;
use super::tokens::{In, PErr, PResult, describe_span, skip_ws, span_of, token_at};
use super::top_level::{header_stmt, home_stmt, import_stmt, opener, window_stmt, zone_stmt};
use crate::ast::{Block, Comment, File, Header, Item, Stmt, Trivia};
use crate::diag::{Code, Diagnostic, did_you_mean, suggest};
use crate::source::FileId;
use crate::span::Span;
use nom::Input;

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

#[derive(Debug, Default)]
pub(super) struct Pending {
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

pub(super) struct Parser {
    pub(super) file: FileId,
    pub(super) diags: Vec<Diagnostic>,
    pub(super) pending: Pending,
    pub(super) text_len: usize,
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
                            Code::SyntaxTrailingInput,
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
                    Code::SyntaxExpected,
                    span_of(&content),
                    "incomplete statement",
                ));
                None
            }
        }
    }

    pub(super) fn file(&mut self, lines: &[Line<'_>]) -> Option<File> {
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
                        Code::SyntaxMissingHeader,
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
                        Code::SyntaxDuplicateHeader,
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
                                Code::SyntaxUnexpectedClose,
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
                    Code::SyntaxMissingHeader,
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
                Code::SyntaxUnknownStatement,
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
                        Code::SyntaxUnclosedBlock,
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
                            Code::SyntaxTrailingInput,
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
                        Code::SyntaxUnclosedBlock,
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
                        Code::SyntaxUnknownStatement,
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
