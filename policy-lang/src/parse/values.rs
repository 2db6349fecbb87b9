//! Values shared by several statements: durations, counts, prefixes,
//! addresses and the `allow`/`deny` action.

use super::tokens::{In, PErr, PResult, expected, ident, keyword, run_of, span_of, word, ws};
use crate::ast::{Action, Duration, Ident, Prefix};
use crate::diag::Code;
use crate::span::{Span, Spanned};

pub(super) fn duration(i: In<'_>) -> PResult<'_, Spanned<Duration>> {
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
            Code::SyntaxNumberOverflow,
            span_of(&tok),
            format!("duration `{t}` is too large"),
        )
        .help("use a smaller duration")
        .fail(),
        Err(DurErr::Bad) => PErr::new(
            Code::SyntaxBadDuration,
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
pub(super) fn count<'a>(i: In<'a>, after: &str, help: &str) -> PResult<'a, Spanned<u64>> {
    let (i, _) = ws(i)?;
    let (rest, digits) = run_of(i, |c| c.is_ascii_digit());
    if digits.fragment().is_empty() {
        return expected(i, &format!("a number after {after}"), help);
    }
    let (_, tail) = run_of(rest, |c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !tail.fragment().is_empty() {
        let (_, whole) = run_of(i, |c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        return PErr::new(
            Code::SyntaxBadNumber,
            span_of(&whole),
            format!("invalid number `{}`", whole.fragment()),
        )
        .help("write a whole number, e.g. `10`")
        .fail();
    }
    match digits.fragment().parse::<u64>() {
        Ok(n) => Ok((rest, Spanned::new(n, span_of(&digits)))),
        Err(_) => PErr::new(
            Code::SyntaxNumberOverflow,
            span_of(&digits),
            format!("number `{}` is too large", digits.fragment()),
        )
        .help("use a number below 18446744073709551616")
        .fail(),
    }
}

const PREFIX_HELP: &str =
    "a prefix is `+` followed by digits, optionally in groups separated by spaces, e.g. `+44 20 7`";

pub(super) fn prefix(i: In<'_>) -> PResult<'_, Spanned<Prefix>> {
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
            Code::SyntaxBadPrefix,
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
                Code::SyntaxBadPrefix,
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

pub(super) fn address(i: In<'_>) -> PResult<'_, Ident> {
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

pub(super) const ACTIONS: [(&str, Action); 2] = [("allow", Action::Allow), ("deny", Action::Deny)];

pub(super) fn first_action(i: In<'_>) -> PResult<'_, Spanned<Action>> {
    keyword(i, &ACTIONS, "`allow` or `deny`", "write `allow` or `deny`")
}
