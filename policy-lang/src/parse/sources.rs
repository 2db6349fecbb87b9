//! Statements of a `sources` section: allowed and denied networks,
//! countries and trunks.

use super::tokens::{In, PErr, PResult, comma_list, name, punct, skip_ws, span_of, value, word};
use super::values::{address, first_action};
use crate::ast::SourceStmt;
use crate::diag::{Code, did_you_mean};

pub(super) fn source_stmt(i: In<'_>) -> PResult<'_, SourceStmt> {
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
                Code::SyntaxUnknownKeyword,
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
