//! Statement layer basics: the statement parsers' error type and the
//! token-level parsers the statements are built from (words, names, keywords,
//! punctuation, comma lists), over `nom_locate` spans.

use crate::ast::Ident;
use crate::diag::{Code, did_you_mean};
use crate::span::{Span, Spanned};
use nom::bytes::complete::{take_while, take_while1};
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Input, Parser as _};
use nom_locate::LocatedSpan;

pub(super) type In<'a> = LocatedSpan<&'a str>;

pub(super) const NAME_HELP: &str = "a name starts with a lowercase letter and uses only `a-z`, `0-9` and `-`, at most 63 characters";

/// A syntax error found by a statement parser (boxed: results stay small).
#[derive(Debug, Clone)]
pub(super) struct PErr(pub(super) Box<PErrData>);

#[derive(Debug, Clone)]
pub(super) struct PErrData {
    pub(super) code: Code,
    pub(super) message: String,
    pub(super) span: Span,
    pub(super) help: Option<String>,
    pub(super) label: Option<String>,
    pub(super) related: Vec<(Span, String)>,
}

impl PErr {
    pub(super) fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        PErr(Box::new(PErrData {
            code,
            message: message.into(),
            span,
            help: None,
            label: None,
            related: Vec::new(),
        }))
    }
    pub(super) fn help(mut self, h: impl Into<String>) -> Self {
        self.0.help = Some(h.into());
        self
    }
    pub(super) fn label(mut self, l: impl Into<String>) -> Self {
        self.0.label = Some(l.into());
        self
    }
    pub(super) fn related(mut self, span: Span, m: impl Into<String>) -> Self {
        self.0.related.push((span, m.into()));
        self
    }
    pub(super) fn fail<'a, T>(self) -> PResult<'a, T> {
        Err(nom::Err::Failure(self))
    }
}

impl<'a> ParseError<In<'a>> for PErr {
    fn from_error_kind(input: In<'a>, _kind: ErrorKind) -> Self {
        let tok = token_at(input);
        PErr::new(
            Code::SyntaxExpected,
            tok,
            format!("unexpected {}", describe_span(input, tok)),
        )
    }
    fn append(_: In<'a>, _: ErrorKind, other: Self) -> Self {
        other
    }
}

pub(super) type PResult<'a, T> = IResult<In<'a>, T, PErr>;

pub(super) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '+')
}

pub(super) fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

pub(super) fn span_of(i: &In<'_>) -> Span {
    let s = i.location_offset();
    Span::new(s, s + i.fragment().len())
}

pub(super) fn skip_ws(i: In<'_>) -> In<'_> {
    let f = *i.fragment();
    let n = f.len() - f.trim_start_matches(is_blank).len();
    i.take_from(n)
}

pub(super) fn ws(i: In<'_>) -> PResult<'_, In<'_>> {
    take_while(is_blank).parse(i)
}

/// The span of the token at the start of `i` (a word, or one character; empty
/// at the end of the line).
pub(super) fn token_at(i: In<'_>) -> Span {
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
pub(super) fn describe_span(i: In<'_>, tok: Span) -> String {
    let f = *i.fragment();
    let from = tok.start.saturating_sub(i.location_offset());
    match f.get(from..from + tok.len()) {
        Some(t) if !t.is_empty() => format!("`{}`", short(t)),
        _ => "the end of the line".to_string(),
    }
}

/// `t`, cut to 40 characters (with `…`) for quoting in a message.
pub(super) fn short(t: &str) -> std::borrow::Cow<'_, str> {
    match t.char_indices().nth(40) {
        Some((n, _)) => format!("{}…", t.get(..n).unwrap_or("")).into(),
        None => t.into(),
    }
}

pub(super) fn expected<'a, T>(i: In<'a>, what: &str, help: impl Into<String>) -> PResult<'a, T> {
    let tok = token_at(i);
    let found = describe_span(i, tok);
    PErr::new(
        Code::SyntaxExpected,
        tok,
        format!("expected {what}, found {found}"),
    )
    .help(help)
    .fail()
}

pub(super) fn word(i: In<'_>) -> PResult<'_, In<'_>> {
    take_while1(is_word_char).parse(i)
}

pub(super) fn ident(i: In<'_>) -> Ident {
    Spanned::new(i.fragment().to_string(), span_of(&i))
}

/// A word in a value position (country, zone, class, ...).
pub(super) fn value<'a>(i: In<'a>, what: &str, help: &str) -> PResult<'a, Ident> {
    let (i, _) = ws(i)?;
    match word(i) {
        Ok((rest, w)) => Ok((rest, ident(w))),
        Err(_) => expected(i, what, help),
    }
}

/// A name: `[a-z][a-z0-9-]*`, at most 63 characters.
pub(super) fn name<'a>(i: In<'a>, what: &str, help: &str) -> PResult<'a, Ident> {
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
            Code::SyntaxBadName,
            span_of(&w),
            format!("invalid name `{}`", short(t)),
        )
        .help(NAME_HELP)
        .fail();
    }
    Ok((rest, ident(w)))
}

/// One of the keywords of `table`.
pub(super) fn keyword<'a, T: Copy>(
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
                Code::SyntaxUnknownKeyword,
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
pub(super) fn punct<'a>(i: In<'a>, c: char, after: &str, help: &str) -> PResult<'a, Span> {
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
pub(super) fn comma_list<'a, T>(
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
pub(super) fn run_of(i: In<'_>, f: impl Fn(char) -> bool) -> (In<'_>, In<'_>) {
    let frag = *i.fragment();
    let n = frag.find(|c: char| !f(c)).unwrap_or(frag.len());
    (i.take_from(n), i.take(n))
}
