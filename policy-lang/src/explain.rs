//! What a policy decides for one call, in words and as JSON: the verdict,
//! the rule that decided with where it was written, and every rule
//! considered. Shared by `tollgate explain`, `tollgate test` and
//! `kubectl tollgate explain` (which has the compiled policy only, not the
//! source files).

use std::fmt::Write as _;
use tollgate_ir::{CompiledPolicy, RuleSource};

use crate::eval::{Call, Decision, Transport};
use crate::scenario;

/// The explanation as text. `snippet` gives the lines under `rule:`, where
/// the deciding rule was written (the CLI underlines it in the source file).
pub fn text(
    policy: &CompiledPolicy,
    call: &Call,
    d: &Decision<'_>,
    snippet: &dyn Fn(&str) -> Vec<String>,
) -> String {
    let mut s = String::new();
    let country = call.source_country.as_deref().unwrap_or("unknown");
    let _ = writeln!(
        s,
        "call:      {} from {} (country {country}) at {}, {}{}{}",
        call.destination,
        call.source,
        call.time,
        transport_name(call.transport),
        if call.srtp { ", srtp" } else { "" },
        if call.client_certificate {
            ", client certificate"
        } else {
            ""
        },
    );
    let _ = writeln!(
        s,
        "verdict:   {} (decided at the {} stage)",
        d.outcome,
        scenario::stage_name(d.stage)
    );
    let _ = writeln!(s, "rule:      {}", d.rule);
    for l in snippet(&d.rule) {
        let _ = writeln!(s, "  {l}");
    }
    let number = d
        .number
        .as_ref()
        .map_or("unreadable".into(), |n| format!("+{n}"));
    let _ = writeln!(s, "number:    {number}");
    let _ = writeln!(s, "classes:   {}", list(&d.classes));
    let _ = writeln!(s, "responses: {}", list(&d.responses));
    for r in &d.responses {
        if let Some(src) = source(policy, r) {
            let _ = writeln!(s, "  {r}: {}", short_place(src));
        }
    }
    let _ = writeln!(
        s,
        "max duration: {}",
        scenario::duration_text(d.max_duration)
    );
    s.push_str("trace:\n");
    s.push_str(&trace_text(policy, d, "  "));
    s
}

/// The lines [`text`] shows for a rule when the source files are not at
/// hand: where it was written and its statement, or what a built-in rule
/// means.
pub fn place_lines(policy: &CompiledPolicy, rule: &str) -> Vec<String> {
    match source(policy, rule) {
        Some(src) => vec![
            format!("--> {}:{}:{}", src.file, src.line, src.column),
            format!("{} │ {}", src.line, src.text),
        ],
        None => vec![
            scenario::builtin_meaning(rule)
                .unwrap_or_else(|| format!("(`{rule}` is not a rule of this policy)")),
        ],
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

fn list<S: std::borrow::Borrow<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The source map entry of a rule id.
pub fn source<'p>(policy: &'p CompiledPolicy, rule: &str) -> Option<&'p RuleSource> {
    policy.rules.iter().find(|r| r.id == rule)
}

/// `file:line │ statement`.
pub fn short_place(src: &RuleSource) -> String {
    format!("{}:{} │ {}", src.file, src.line, src.text)
}

/// The trace, one step per line with the step's source line under it.
pub fn trace_text(policy: &CompiledPolicy, d: &Decision<'_>, indent: &str) -> String {
    let width = d.trace.iter().map(|s| s.rule.len()).max().unwrap_or(0);
    let mut s = String::new();
    for (i, step) in d.trace.iter().enumerate() {
        let _ = writeln!(
            s,
            "{indent}{:>2}. {:<width$}  {}",
            i + 1,
            step.rule,
            step.note
        );
        let place = match source(policy, &step.rule) {
            Some(src) => short_place(src),
            None => scenario::builtin_meaning(&step.rule).unwrap_or_default(),
        };
        if !place.is_empty() {
            let _ = writeln!(s, "{indent}    {place}");
        }
    }
    s
}

pub fn call_json(call: &Call) -> serde_json::Value {
    serde_json::json!({
        "to": call.destination,
        "from": call.source.to_string(),
        "country": call.source_country,
        "at": call.time.to_string(),
        "transport": call.transport,
        "srtp": call.srtp,
        "clientCertificate": call.client_certificate,
        "concurrent": call.concurrent,
        "rate": call.rate,
        "classConcurrent": call.class_concurrent,
        "classRate": call.class_rate,
        "blockedTenant": call.blocked_tenant,
        "blockedClasses": call.blocked_classes,
    })
}

/// A rule id with its source (or `null` for built-in ids).
pub fn rule_json(policy: &CompiledPolicy, rule: &str) -> serde_json::Value {
    serde_json::json!({
        "id": rule,
        "source": source(policy, rule),
        "builtin": scenario::builtin_meaning(rule),
    })
}

pub fn decision_json(d: &Decision<'_>, policy: &CompiledPolicy) -> serde_json::Value {
    serde_json::json!({
        "outcome": d.outcome,
        "stage": d.stage,
        "rule": rule_json(policy, &d.rule),
        "number": d.number.as_ref().map(|n| format!("+{n}")),
        "classes": d.classes,
        "responses": d.responses.iter().map(|r| rule_json(policy, r)).collect::<Vec<_>>(),
        "maxDurationSeconds": d.max_duration,
        "trace": d.trace.iter().map(|s| serde_json::json!({
            "rule": s.rule,
            "note": s.note,
            "source": source(policy, &s.rule),
        })).collect::<Vec<_>>(),
    })
}
