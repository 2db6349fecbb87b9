//! Statements of a `limits` section: `concurrent`, `rate` and `duration`
//! limits with their `warning`/`critical` levels.

use super::tokens::{
    In, PErr, PResult, comma_list, expected, ident, is_word_char, keyword, punct, run_of, skip_ws,
    span_of, word,
};
use super::values::{count, duration};
use crate::ast::{Level, LimitStmt, LimitValue, Metric};
use crate::diag::Code;
use crate::span::Spanned;

pub(super) const LEVELS: [(&str, Level); 2] =
    [("warning", Level::Warning), ("critical", Level::Critical)];

pub(super) fn limit_stmt(i: In<'_>) -> PResult<'_, LimitStmt> {
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
                Code::SyntaxDuplicateLevel,
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
                Code::SyntaxUnexpectedRateUnit,
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
                Code::SyntaxBadRateUnit,
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
            Code::SyntaxMissingRateUnit,
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
