//! Statements of a `destinations` section: the `international`/`national`
//! defaults and `allow`/`deny` rules by prefix, country or class, with an
//! optional window.

use super::tokens::{
    In, PErr, PResult, comma_list, keyword, name, punct, skip_ws, span_of, value, word,
};
use super::values::{ACTIONS, first_action, prefix};
use crate::ast::{DestStmt, Scope, Selector, WindowMode, WindowRef};
use crate::diag::{Code, did_you_mean};
use crate::span::Spanned;

#[derive(Clone, Copy)]
enum SelKind {
    Prefix,
    Country,
    Class,
}

pub(super) fn dest_stmt(i: In<'_>) -> PResult<'_, DestStmt> {
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
                    Code::SyntaxUnknownKeyword,
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
