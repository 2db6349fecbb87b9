//! Top-level statements: the `tenant`/`base` header, section openers,
//! `import`, `home`, `zone` and `window` (with its days and times).

use super::tokens::{
    In, NAME_HELP, PErr, PResult, comma_list, describe_span, expected, ident, keyword, name, punct,
    run_of, skip_ws, span_of, token_at, value, word, ws,
};
use crate::ast::{ClockTime, FileKind, Header, Ident, Item, TimeSpan, Window};
use crate::diag::{Code, did_you_mean};
use crate::span::{Span, Spanned};
use nom::Input;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub(super) fn header_stmt(i: In<'_>) -> PResult<'_, Header> {
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

pub(super) fn opener(i: In<'_>) -> PResult<'_, ()> {
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
            Code::SyntaxTrailingInput,
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
            Code::SyntaxUnterminatedString,
            span_of(&i),
            "unterminated string",
        )
        .label("this string has no closing `\"`")
        .help("close the string with `\"` on the same line")
        .fail(),
    }
}

pub(super) fn import_stmt(i: In<'_>) -> PResult<'_, Item> {
    let (i, _) = word(i)?;
    let (i, s) = string_lit(i)?;
    Ok((i, Item::Import(s)))
}

pub(super) fn home_stmt(i: In<'_>) -> PResult<'_, Item> {
    let (i, _) = word(i)?;
    let (i, c) = value(i, "a country code after `home`", "write e.g. `home GB`")?;
    Ok((i, Item::Home(c)))
}

pub(super) fn zone_stmt(i: In<'_>) -> PResult<'_, Item> {
    let (i, _) = word(i)?;
    let (i, z) = value(
        i,
        "a time zone after `zone`",
        "write e.g. `zone Europe/London`",
    )?;
    Ok((i, Item::Zone(z)))
}

pub(super) fn window_stmt(i: In<'_>) -> PResult<'_, Item> {
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
            Code::SyntaxBadDay,
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
            Code::SyntaxBadTime,
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
