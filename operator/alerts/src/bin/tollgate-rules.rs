//! `tollgate-rules`: compiled policies → Prometheus alerting rules.
//!
//! ```console
//! tollgate-rules POLICY.yaml... [--format rules|prometheusrule] [--namespace NS]
//!     [--history 30d] [--fresh 10m] [--learning 1d] [--rate-window 1m]
//! ```
//!
//! Reads compiled `TollPolicy` resources (as `tollgate compile` writes them;
//! one or several YAML documents per file; the namespace and name come from
//! their metadata) or bare compiled policies (namespace `--namespace`,
//! default `default`; name = tenant), and prints on stdout either one plain
//! Prometheus rules file (`--format rules`, the default: one group per
//! policy) or one `PrometheusRule` per policy (`--format prometheusrule`,
//! YAML documents separated by `---`). Thresholds that get no rule are
//! listed on stderr (`note: ...`). The rules and their limits: docs/alerts.md.
//! Exit status: 0 printed, 2 usage or input error.

use std::process::ExitCode;

use tollgate_alerts::rules::{RuleFile, RuleOptions, prometheus_rule, rules_for_with};
use tollgate_ir::CompiledPolicy;

const USAGE: &str = "usage: tollgate-rules POLICY.yaml... [--format rules|prometheusrule] [--namespace NS] [--history 30d] [--fresh 10m] [--learning 1d] [--rate-window 1m]";

fn duration_ok(d: &str) -> bool {
    let unit = d.trim_start_matches(|c: char| c.is_ascii_digit());
    unit.len() < d.len()
        && ["ms", "s", "m", "h", "d", "w", "y"].contains(&unit)
        && !d.starts_with('0')
}

/// (namespace, name, policy) of every document of one file.
fn read(path: &str, default_ns: &str) -> Result<Vec<(String, String, CompiledPolicy)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let docs = tollgate_ir::yaml::read_policies(&text).map_err(|e| format!("{path} ({e})"))?;
    Ok(docs
        .into_iter()
        .map(|d| {
            let ns = d.namespace.unwrap_or_else(|| default_ns.to_string());
            let name = d.name.unwrap_or_else(|| d.policy.tenant.clone());
            (ns, name, d.policy)
        })
        .collect())
}

fn run() -> Result<(), (u8, String)> {
    let usage = |m: &str| (2, format!("{m}\n{USAGE}"));
    let mut inputs = Vec::new();
    let mut format = "rules".to_string();
    let mut namespace = "default".to_string();
    let mut opt = RuleOptions::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .ok_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--format" => format = val("--format")?,
            "--namespace" | "-n" => namespace = val("--namespace")?,
            "--history" => opt.history = val("--history")?,
            "--fresh" => opt.fresh = val("--fresh")?,
            "--learning" => opt.learning = val("--learning")?,
            "--rate-window" => opt.rate_window = val("--rate-window")?,
            "-h" | "--help" => return Err((0, USAGE.to_string())),
            f if f.starts_with('-') => return Err(usage(&format!("unknown flag {f}"))),
            _ => inputs.push(a),
        }
    }
    if inputs.is_empty() {
        return Err(usage("no policy file given"));
    }
    if format != "rules" && format != "prometheusrule" {
        return Err(usage("--format is rules or prometheusrule"));
    }
    for d in [&opt.history, &opt.fresh, &opt.learning, &opt.rate_window] {
        if !duration_ok(d) {
            return Err(usage(&format!(
                "`{d}` is not a Prometheus duration (e.g. 10m)"
            )));
        }
    }
    let mut groups = Vec::new();
    for path in &inputs {
        for (ns, name, p) in read(path, &namespace).map_err(|e| (2, e))? {
            let g = rules_for_with(&p, &ns, &name, &opt);
            for s in &g.skipped {
                eprintln!("note: {s}");
            }
            groups.push((ns, name, g));
        }
    }
    if format == "rules" {
        let file = RuleFile {
            groups: groups.into_iter().map(|(_, _, g)| g).collect(),
        };
        let y = tollgate_ir::yaml::to_yaml(&file).map_err(|e| (2, e.to_string()))?;
        print!("{y}");
    } else {
        for (i, (ns, name, g)) in groups.iter().enumerate() {
            if i > 0 {
                println!("---");
            }
            let y = tollgate_ir::yaml::to_yaml(&prometheus_rule(g, ns, name))
                .map_err(|e| (2, e.to_string()))?;
            print!("{y}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("{}{msg}", if code == 0 { "" } else { "error: " });
            ExitCode::from(code)
        }
    }
}
