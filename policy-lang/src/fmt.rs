//! `tollgate fmt`: writes a parsed file back in the canonical layout.
//!
//! The layout: the header first; top-level items in the order written, blank
//! lines between simple items kept (collapsed to one); one blank line before and
//! after every section; two-space indentation inside sections (blank lines
//! inside kept, collapsed to one); `, ` between list items and `: ` after
//! colons; whole-line comments above the statement they precede, end-of-line
//! comments after it separated by two spaces. Durations are written largest
//! unit first (`1h30m`), times as `HH:MM`, prefixes with single spaces between
//! digit groups.

use crate::ast::{
    Action, Block, ClockTime, Comment, CryptoKey, CryptoStmt, DestStmt, Duration, File, FileKind,
    Hold, Ident, Item, Level, LimitStmt, LimitValue, Metric, Requirement, ResponseAction,
    ResponseStmt, Scope, Selector, SourceStmt, Stmt, Trigger, WindowMode,
};
use std::fmt::Write;

/// The canonical text of `file`. Idempotent: formatting the parse of the
/// result gives the result again.
pub fn format(file: &File) -> String {
    let mut out = String::new();
    comments(&mut out, "", &file.header.trivia.leading);
    let h = &file.header.node;
    let kind = match h.kind.node {
        FileKind::Tenant => "tenant",
        FileKind::Base => "base",
    };
    line(
        &mut out,
        "",
        &format!("{kind} {}", h.name.node),
        &file.header.trivia.trailing,
    );
    let mut prev_section = false;
    for item in &file.items {
        let section = item.node.is_section();
        if item.trivia.blank_before || section || prev_section {
            out.push('\n');
        }
        prev_section = section;
        comments(&mut out, "", &item.trivia.leading);
        let trailing = &item.trivia.trailing;
        match &item.node {
            Item::Import(p) => line(&mut out, "", &format!("import \"{}\"", p.node), trailing),
            Item::Home(c) => line(&mut out, "", &format!("home {}", c.node), trailing),
            Item::Zone(z) => line(&mut out, "", &format!("zone {}", z.node), trailing),
            Item::Window(w) => {
                let mut s = format!("window {}: ", w.name.node);
                let spans: Vec<String> = w
                    .spans
                    .iter()
                    .map(|t| {
                        let mut d = t.from_day.node.clone();
                        if let Some(to) = &t.to_day {
                            d.push('-');
                            d.push_str(&to.node);
                        }
                        format!("{d} {}-{}", clock(t.start.node), clock(t.end.node))
                    })
                    .collect();
                s.push_str(&spans.join(", "));
                if let Some(z) = &w.zone {
                    s.push(' ');
                    s.push_str(&z.node);
                }
                line(&mut out, "", &s, trailing);
            }
            Item::Destinations(b) => block(&mut out, "destinations", b, trailing, dest),
            Item::Sources(b) => block(&mut out, "sources", b, trailing, source),
            Item::Limits(b) => block(&mut out, "limits", b, trailing, limit),
            Item::Responses(b) => block(&mut out, "responses", b, trailing, response),
            Item::Crypto(b) => block(&mut out, "crypto", b, trailing, crypto),
        }
    }
    if !file.end_comments.is_empty() {
        out.push('\n');
        comments(&mut out, "", &file.end_comments);
    }
    out
}

fn comments(out: &mut String, indent: &str, cs: &[Comment]) {
    for c in cs {
        let _ = writeln!(out, "{indent}#{}", c.text);
    }
}

fn line(out: &mut String, indent: &str, text: &str, trailing: &Option<Comment>) {
    out.push_str(indent);
    out.push_str(text);
    if let Some(c) = trailing {
        let _ = write!(out, "  #{}", c.text);
    }
    out.push('\n');
}

fn block<T>(
    out: &mut String,
    keyword: &str,
    b: &Block<T>,
    trailing: &Option<Comment>,
    stmt: fn(&T) -> String,
) {
    line(out, "", &format!("{keyword} {{"), trailing);
    for (n, s) in b.stmts.iter().enumerate() {
        write_stmt(out, n, s, stmt);
    }
    comments(out, "  ", &b.end_comments);
    out.push_str("}\n");
}

fn write_stmt<T>(out: &mut String, n: usize, s: &Stmt<T>, stmt: fn(&T) -> String) {
    if n > 0 && s.trivia.blank_before {
        out.push('\n');
    }
    comments(out, "  ", &s.trivia.leading);
    line(out, "  ", &stmt(&s.node), &s.trivia.trailing);
}

fn clock(t: ClockTime) -> String {
    format!("{:02}:{:02}", t.hour, t.minute)
}

/// `1h30m`, `90s` → `1m30s`, `0s`.
pub fn duration(d: Duration) -> String {
    let mut s = d.seconds;
    let mut out = String::new();
    for (unit, size) in [('d', 86_400u64), ('h', 3_600), ('m', 60), ('s', 1)] {
        let n = s / size;
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
            s %= size;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

fn list(v: &[Ident]) -> String {
    v.iter()
        .map(|i| i.node.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Allow => "allow",
        Action::Deny => "deny",
    }
}

fn dest(s: &DestStmt) -> String {
    match s {
        DestStmt::Default { scope, action: a } => {
            let sc = match scope.node {
                Scope::International => "international",
                Scope::National => "national",
            };
            format!("{sc}: {}", action(a.node))
        }
        DestStmt::Rule {
            action: a,
            selector,
            window,
        } => {
            let sel = match selector {
                Selector::Prefix(p) => format!(
                    "prefix {}",
                    p.iter()
                        .map(|p| p.text.split_whitespace().collect::<Vec<_>>().join(" "))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Selector::Country(c) => format!("country {}", list(c)),
                Selector::Class(c) => format!("class {}", list(c)),
            };
            let mut out = format!("{} {sel}", action(a.node));
            if let Some(w) = window {
                let m = match w.mode.node {
                    WindowMode::During => "during",
                    WindowMode::Outside => "outside",
                };
                let _ = write!(out, " {m} {}", w.name.node);
            }
            out
        }
    }
}

fn source(s: &SourceStmt) -> String {
    match s {
        SourceStmt::Networks {
            action: a,
            networks,
        } => format!("{} {}", action(a.node), list(networks)),
        SourceStmt::Countries {
            action: a,
            countries,
        } => format!("{} country {}", action(a.node), list(countries)),
        SourceStmt::Trunk { name, networks } => {
            format!("trunk {}: {}", name.node, list(networks))
        }
    }
}

fn metric(m: Metric) -> &'static str {
    match m {
        Metric::Concurrent => "concurrent",
        Metric::Rate => "rate",
        Metric::Duration => "duration",
    }
}

fn limit(s: &LimitStmt) -> String {
    let mut out = metric(s.metric.node).to_string();
    if let Some(c) = &s.class {
        out.push(' ');
        out.push_str(&c.node);
    }
    out.push_str(": ");
    match &s.value {
        LimitValue::Max(d) => out.push_str(&duration(d.node)),
        LimitValue::Levels { warning, critical } => {
            let unit = if s.metric.node == Metric::Rate {
                "/min"
            } else {
                ""
            };
            let mut parts = Vec::new();
            if let Some(w) = warning {
                parts.push(format!("warning {}{unit}", w.node));
            }
            if let Some(c) = critical {
                parts.push(format!("critical {}{unit}", c.node));
            }
            out.push_str(&parts.join(", "));
        }
    }
    out
}

fn response(s: &ResponseStmt) -> String {
    let trigger = match &s.trigger {
        Trigger::Breach {
            metric: m,
            class,
            level,
        } => {
            let lv = match level.node {
                Level::Warning => "warning",
                Level::Critical => "critical",
            };
            match class {
                Some(c) => format!("{} {} {lv}", metric(m.node), c.node),
                None => format!("{} {lv}", metric(m.node)),
            }
        }
        Trigger::Anomaly { kind } => format!("anomaly {}", kind.node),
    };
    let reaction = match &s.action {
        ResponseAction::Alert(_) => "alert".to_string(),
        ResponseAction::BlockClasses(_, c) => format!("block class {}", list(c)),
        ResponseAction::BlockTenant(_) => "block tenant".to_string(),
    };
    let mut out = format!("on {trigger}: {reaction}");
    match s.hold.as_ref().map(|h| h.node) {
        Some(Hold::For(d)) => {
            let _ = write!(out, " for {}", duration(d));
        }
        Some(Hold::UntilAcknowledged) => out.push_str(" until acknowledged"),
        None => {}
    }
    out
}

fn crypto(s: &CryptoStmt) -> String {
    let k = match s.key.node {
        CryptoKey::Tls => "tls",
        CryptoKey::Srtp => "srtp",
        CryptoKey::ClientCertificate => "client-certificate",
    };
    let v = match s.value.node {
        Requirement::Required => "required",
        Requirement::Optional => "optional",
    };
    format!("{k}: {v}")
}
