//! `tollgate replay`: what a policy would have decided for a call log.

use crate::commands::{Result, err, out, render};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tollgate_ir::CompiledPolicy;
use tollgate_policy::ast::FileKind;
use tollgate_policy::check;
use tollgate_policy::eval::Outcome;
use tollgate_policy::load::Workspace;
use tollgate_policy::replay::{Config, PolicyReport, Replay, Report, TopDestination};

/// Replay a call log (CSV) through a tenant policy and report what it would decide.
///
/// Every call of the policy's tenant is decided as the SBC would: counts per
/// outcome and per deciding rule (with its file and line), the destinations
/// most often blocked, and with `--against` the calls whose outcome changes
/// from the old policy. Concurrent and per-minute limits are applied with the
/// load computed from the log (start time and duration; the log must be in
/// start-time order). The CSV format is described in docs/replay.md.
///
/// The replay is informational: it exits 0 whatever the policy decides, and 2
/// when it cannot run (policy with errors, unreadable log, too many malformed rows).
///
/// Example: tollgate replay tenants/acme.tgp --cdr calls.csv --against old/acme.tgp
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tenant policy file (`*.tgp`) to replay.
    policy: PathBuf,
    /// The call log: CSV with a header row (`-` for standard input).
    #[arg(long)]
    cdr: PathBuf,
    /// The policy in force so far: report the calls whose outcome changes.
    #[arg(long, value_name = "OLD_POLICY")]
    against: Option<PathBuf>,
    /// Output: `human` (tables) or `json` (one object).
    #[arg(long, value_enum, default_value_t = crate::Format::Human)]
    format: crate::Format,
    /// Stop (exit 2) after more than this many malformed rows.
    #[arg(long, default_value_t = 100)]
    max_bad_rows: u64,
    /// Entries in the top-destination lists.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// Checks and compiles one tenant file; problems make the replay impossible.
fn compile(path: &Path, color: bool) -> Result<CompiledPolicy> {
    let mut ws = Workspace::on_disk(std::env::current_dir().map_err(|e| e.to_string())?);
    let c = check::check(&mut ws, path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if c.has_errors() {
        err(&render(&c.diagnostics, &ws, color));
        return Err(format!(
            "`{}` has errors (see above): nothing replayed",
            path.display()
        ));
    }
    if c.kind != Some(FileKind::Tenant) {
        return Err(format!(
            "`{}` is not a tenant policy (`tenant NAME`): only tenant policies can be replayed",
            path.display()
        ));
    }
    c.policy
        .ok_or_else(|| format!("`{}` did not compile", path.display()))
}

pub fn run(args: &Args, color: bool) -> Result<ExitCode> {
    let policy = compile(&args.policy, color)?;
    let old = args
        .against
        .as_deref()
        .map(|p| compile(p, color))
        .transpose()?;
    if let Some(o) = &old
        && o.tenant != policy.tenant
    {
        return Err(format!(
            "`--against` is a policy of tenant `{}`, not `{}`",
            o.tenant, policy.tenant
        ));
    }
    let config = Config {
        max_bad_rows: args.max_bad_rows,
        top: args.top,
        ..Config::default()
    };
    let input: Box<dyn std::io::BufRead> = if args.cdr.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&args.cdr)
            .map_err(|e| format!("cannot read `{}`: {e}", args.cdr.display()))?;
        Box::new(std::io::BufReader::with_capacity(1 << 16, f))
    };
    let tty = std::io::stderr().is_terminal();
    let mut last = std::time::Instant::now();
    let mut progress = |lines: u64| {
        if tty && last.elapsed().as_millis() >= 100 {
            last = std::time::Instant::now();
            err(&format!("\rreplaying: {lines} lines"));
        }
    };
    let result = Replay::new(&policy, old.as_ref(), config).run(input, &mut progress);
    if tty {
        err("\r\x1b[K");
    }
    let report = result.map_err(|e| e.to_string())?;
    for b in &report.bad_rows {
        err(&format!(
            "warning: {}:{}: skipped: {}\n",
            args.cdr.display(),
            b.line,
            b.error
        ));
    }
    if report.out_of_order > 0 {
        err(&format!(
            "warning: {} row(s) start earlier than a row before them (lines {}{}): the CDR must be sorted by start time; their load (concurrent calls, rate) was counted as at the latest start before them\n",
            report.out_of_order,
            report
                .out_of_order_lines
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if report.out_of_order > report.out_of_order_lines.len() as u64 {
                ", ..."
            } else {
                ""
            }
        ));
    }
    if args.format == crate::Format::Json {
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ))?;
    } else {
        out(&human(&report, args))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn percent(n: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / total as f64)
    }
}

fn outcomes_text(o: &tollgate_policy::replay::Outcomes) -> String {
    let parts: Vec<String> = [
        (Outcome::Allow, o.allow),
        (Outcome::Deny, o.deny),
        (Outcome::Limit, o.limit),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| {
        if *n == o.total() {
            k.to_string()
        } else {
            format!("{k} {n}")
        }
    })
    .collect();
    parts.join(", ")
}

fn tops(title: &str, list: &[TopDestination], s: &mut String) {
    use std::fmt::Write;
    if list.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n{title}");
    for t in list {
        if t.error > 0 {
            let _ = writeln!(
                s,
                "  {:<10} {:>10}  (may be {} too high)",
                t.prefix, t.calls, t.error
            );
        } else {
            let _ = writeln!(s, "  {:<10} {:>10}", t.prefix, t.calls);
        }
    }
}

/// Rules listed in the human output, most calls first.
const RULES_SHOWN: usize = 50;

fn policy_section(p: &PolicyReport, s: &mut String) {
    use std::fmt::Write;
    let total = p.outcomes.total();
    let _ = writeln!(s, "\n  outcome       calls   share");
    for (name, n) in [
        ("allow", p.outcomes.allow),
        ("deny", p.outcomes.deny),
        ("limit", p.outcomes.limit),
    ] {
        let _ = writeln!(s, "  {name:<8} {n:>10}  {:>6}", percent(n, total));
    }
    let width = p
        .rules
        .iter()
        .map(|r| r.rule.len())
        .max()
        .unwrap_or(0)
        .max(13);
    let _ = writeln!(
        s,
        "\n  {:<width$}      calls  outcome   written at",
        "deciding rule"
    );
    for r in p.rules.iter().take(RULES_SHOWN) {
        let at = match (&r.file, r.line) {
            (Some(f), Some(l)) => format!("{f}:{l}"),
            _ => "(no source line)".into(),
        };
        let _ = writeln!(
            s,
            "  {:<width$} {:>10}  {:<9} {at}",
            r.rule,
            r.calls,
            outcomes_text(&r.outcomes)
        );
    }
    if p.rules.len() > RULES_SHOWN {
        let rest = &p.rules[RULES_SHOWN..];
        let _ = writeln!(
            s,
            "  … {} more rules decided {} calls (all of them with --format json)",
            rest.len(),
            rest.iter().map(|r| r.calls).sum::<u64>()
        );
    }
    tops(
        "top blocked destinations (first 6 digits)        calls",
        &p.top_blocked,
        s,
    );
    let _ = writeln!(
        s,
        "\npeak load allowed: {} calls up at once, {} calls started in a minute",
        p.peak_concurrent, p.peak_rate
    );
}

fn human(r: &Report, args: &Args) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "replay of tenant {} ({}) on {}",
        r.policy.tenant,
        args.policy.display(),
        args.cdr.display()
    );
    let _ = writeln!(
        s,
        "rows: {} read, {} decided, {} of other tenants skipped, {} malformed skipped, {} out of order",
        r.rows, r.decided, r.skipped_other_tenant, r.bad, r.out_of_order
    );
    if let (Some(a), Some(b)) = (&r.first_call, &r.last_call) {
        let _ = writeln!(s, "calls from {a} to {b}");
    }
    policy_section(&r.policy, &mut s);
    if let (Some(c), Some(against)) = (&r.changes, &args.against) {
        let _ = writeln!(
            s,
            "\nagainst {}: {} calls change outcome ({}); {} more keep it under another rule",
            against.display(),
            c.changed,
            percent(c.changed, r.decided),
            c.rule_changed
        );
        let _ = writeln!(s, "  old → new          calls");
        for t in &c.transitions {
            let mark = if t.from == t.to { " " } else { "*" };
            let _ = writeln!(
                s,
                "{mark} {:<16} {:>10}",
                format!("{} → {}", t.from, t.to),
                t.calls
            );
        }
        if !c.samples.is_empty() {
            let _ = writeln!(s, "\nchanged calls (the first {}):", c.samples.len());
            for x in &c.samples {
                let _ = writeln!(
                    s,
                    "  line {:<6} {}  {:<16} {} ({}) → {} ({})",
                    x.line, x.time, x.destination, x.from, x.from_rule, x.to, x.to_rule
                );
            }
        }
        tops(
            "newly blocked destinations (first 6 digits)      calls",
            &c.newly_blocked,
            &mut s,
        );
        tops(
            "newly allowed destinations (first 6 digits)      calls",
            &c.newly_allowed,
            &mut s,
        );
    }
    s
}
