//! `tollgate explain`: what a policy decides for one call, the rule that
//! decided (with its source line) and every rule considered. Also the rule
//! rendering that `tollgate test` uses for failures.

use crate::Format;
use crate::commands::{Result, err, out, render};
use jiff::Timestamp;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tollgate_ir::{CompiledPolicy, RuleSource};
use tollgate_policy::check;
use tollgate_policy::eval::{Call, Decision, Evaluator, Transport};
use tollgate_policy::explain::{self, call_json, decision_json, source};
use tollgate_policy::load::Workspace;
use tollgate_policy::scenario;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The tenant policy file (`*.tgp`); its imports are read too.
    pub policy: PathBuf,
    /// Destination as dialed: `+442071234567`, `011 44 20 7123 4567`, `2125550100`, `911`.
    #[arg(long, allow_hyphen_values = true)]
    pub to: String,
    /// Source IP address of the call.
    #[arg(long)]
    pub from: IpAddr,
    /// Source country by GeoIP (ISO 3166-1 alpha-2); default: unknown.
    #[arg(long)]
    pub country: Option<String>,
    /// When the call is placed, RFC 3339 with a UTC offset (`2026-03-09T08:30:00-04:00`); default: now.
    #[arg(long, value_parser = scenario::parse_time)]
    pub at: Option<Timestamp>,
    /// Signalling transport.
    #[arg(long, default_value = "udp", value_parser = ["udp", "tcp", "tls"])]
    pub transport: String,
    /// The offer uses SRTP.
    #[arg(long)]
    pub srtp: bool,
    /// The TLS client presented a verified certificate.
    #[arg(long)]
    pub client_cert: bool,
    /// The tenant's calls up before this one.
    #[arg(long, default_value_t = 0)]
    pub concurrent: u64,
    /// The tenant's new calls in the minute before this one.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Calls of a class up before this one, as CLASS=N (repeatable).
    #[arg(long, value_name = "CLASS=N", value_parser = class_count)]
    pub class_concurrent: Vec<(String, u64)>,
    /// New calls of a class in the last minute, as CLASS=N (repeatable).
    #[arg(long, value_name = "CLASS=N", value_parser = class_count)]
    pub class_rate: Vec<(String, u64)>,
    /// A response in force blocks this class (repeatable).
    #[arg(long, value_name = "CLASS")]
    pub blocked_class: Vec<String>,
    /// A response in force blocks the whole tenant.
    #[arg(long)]
    pub blocked_tenant: bool,
    /// Output: `human` or `json` (one object).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

fn class_count(s: &str) -> std::result::Result<(String, u64), String> {
    let (class, n) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not CLASS=N, e.g. international=4"))?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a count in `{s}`"))?;
    Ok((class.trim().to_string(), n))
}

pub fn run(args: &ExplainArgs, color: bool) -> Result<ExitCode> {
    let mut ws = Workspace::on_disk(std::env::current_dir().map_err(|e| e.to_string())?);
    let c = check::check(&mut ws, &args.policy)
        .map_err(|e| format!("cannot read `{}`: {e}", args.policy.display()))?;
    if c.has_errors() {
        let errors: Vec<_> = c.diagnostics.into_iter().filter(|d| d.is_error()).collect();
        err(&render(&errors, &ws, color));
        err(&format!(
            "{}: the policy has errors; fix them to explain a call\n",
            args.policy.display()
        ));
        return Ok(ExitCode::from(1));
    }
    let Some(policy) = c.policy else {
        return Err(format!(
            "`{}` is not a tenant policy (a base is only ever imported): explain a tenant file that imports it",
            args.policy.display()
        ));
    };
    let mut call = Call::new(
        args.to.clone(),
        args.from,
        args.at.unwrap_or_else(Timestamp::now),
    );
    call.source_country = args.country.clone();
    call.transport = match args.transport.as_str() {
        "tls" => Transport::Tls,
        "tcp" => Transport::Tcp,
        _ => Transport::Udp,
    };
    call.srtp = args.srtp;
    call.client_certificate = args.client_cert;
    call.concurrent = args.concurrent;
    call.rate = args.rate;
    call.class_concurrent = args.class_concurrent.iter().cloned().collect();
    call.class_rate = args.class_rate.iter().cloned().collect();
    call.blocked_classes = args.blocked_class.iter().cloned().collect();
    call.blocked_tenant = args.blocked_tenant;

    let decision = Evaluator::new(&policy).decide(&call, true);
    if args.format == Format::Json {
        let report = serde_json::json!({
            "policy": args.policy.display().to_string(),
            "tenant": policy.tenant,
            "call": call_json(&call),
            "decision": decision_json(&decision, &policy),
        });
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ))?;
    } else {
        out(&explain_text(&ws, &policy, &call, &decision))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn explain_text(ws: &Workspace, policy: &CompiledPolicy, call: &Call, d: &Decision<'_>) -> String {
    explain::text(policy, call, d, &|rule| rule_snippet(ws, policy, rule))
}

/// Where a rule was written, as lines: `file:line:column` and the source
/// line with the rule's part underlined; or what a built-in rule means.
pub fn rule_snippet(ws: &Workspace, policy: &CompiledPolicy, rule: &str) -> Vec<String> {
    let Some(src) = source(policy, rule) else {
        return vec![match scenario::builtin_meaning(rule) {
            Some(m) => m,
            None => format!("(`{rule}` is not a rule of this policy)"),
        }];
    };
    let line_text = ws
        .sources
        .find(&src.file)
        .and_then(|id| {
            ws.sources
                .get(id)
                .text
                .lines()
                .nth(src.line.saturating_sub(1) as usize)
                .map(str::to_string)
        })
        .unwrap_or_else(|| src.text.clone());
    let number = src.line.to_string();
    let pad = " ".repeat(number.len());
    let (start, len) = underline(&line_text, src);
    vec![
        format!("--> {}:{}:{}", src.file, src.line, src.column),
        format!("{number} │ {line_text}"),
        format!("{pad} │ {}{}", " ".repeat(start), "^".repeat(len.max(1))),
    ]
}

/// Which characters of the line to underline: the whole statement when the
/// rule starts it, else the rule's item (up to `,`, `:` or a window keyword).
fn underline(line: &str, src: &RuleSource) -> (usize, usize) {
    let chars: Vec<char> = line.chars().collect();
    let start = (src.column.max(1) as usize - 1).min(chars.len());
    let indent = chars.iter().take_while(|c| c.is_whitespace()).count();
    if start <= indent {
        return (indent, src.text.chars().count());
    }
    let rest: String = chars[start..].iter().collect();
    let rest = rest.split(" #").next().unwrap_or(&rest);
    let mut end = rest.len();
    for stop in [",", ":", " during ", " outside "] {
        if let Some(i) = rest.find(stop) {
            end = end.min(i);
        }
    }
    (start, rest[..end].trim_end().chars().count())
}
