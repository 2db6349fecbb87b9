//! Statements of a `responses` section: `on TRIGGER: REACTION` with the
//! block's hold.

use super::limits::LEVELS;
use super::tokens::{In, PResult, comma_list, ident, keyword, punct, skip_ws, value, word};
use super::values::duration;
use crate::ast::{Hold, Metric, ResponseAction, ResponseStmt, Trigger};
use crate::diag::suggest;
use crate::span::Spanned;

pub(super) fn response_stmt(i: In<'_>) -> PResult<'_, ResponseStmt> {
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
