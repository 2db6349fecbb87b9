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

use clap::{Parser, ValueEnum};
use tollgate_alerts::rules::{RuleFile, RuleOptions, prometheus_rule, rules_for_with};
use tollgate_ir::CompiledPolicy;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One plain Prometheus rules file, one group per policy.
    Rules,
    /// One `PrometheusRule` per policy, YAML documents separated by `---`.
    #[value(name = "prometheusrule")]
    PrometheusRule,
}

/// Compiled policies → Prometheus alerting rules (docs/alerts.md).
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Exit status: 0 printed, 2 usage or input error."
)]
struct Args {
    /// Compiled `TollPolicy` resources or bare compiled policies (YAML).
    #[arg(value_name = "POLICY.yaml", required = true)]
    inputs: Vec<String>,
    /// What to print.
    #[arg(long, value_enum, default_value = "rules")]
    format: Format,
    /// Namespace of bare compiled policies.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// How far back "called before" looks.
    #[arg(long, default_value_t = RuleOptions::default().history, value_parser = duration)]
    history: String,
    /// How long a new country stays "new".
    #[arg(long, default_value_t = RuleOptions::default().fresh, value_parser = duration)]
    fresh: String,
    /// How long Prometheus must hold a tenant's calls before a
    /// new-destination alert can fire.
    #[arg(long, default_value_t = RuleOptions::default().learning, value_parser = duration)]
    learning: String,
    /// Window of the rate and "calls in unusual hours" increases.
    #[arg(long, default_value_t = RuleOptions::default().rate_window, value_parser = duration)]
    rate_window: String,
}

/// A Prometheus duration (`10m`, `30d`; one unit).
fn duration(d: &str) -> Result<String, String> {
    let unit = d.trim_start_matches(|c: char| c.is_ascii_digit());
    if unit.len() < d.len()
        && ["ms", "s", "m", "h", "d", "w", "y"].contains(&unit)
        && !d.starts_with('0')
    {
        Ok(d.to_string())
    } else {
        Err(format!("`{d}` is not a Prometheus duration (e.g. 10m)"))
    }
}

/// Why no rules were printed (exit status 2).
#[derive(Debug, thiserror::Error)]
enum RulesError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} ({source})")]
    Parse {
        path: String,
        source: tollgate_ir::yaml::PolicyDocumentError,
    },
    #[error(transparent)]
    Yaml(#[from] tollgate_ir::yaml::Error),
}

/// (namespace, name, policy) of every document of one file.
fn read(path: &str, default_ns: &str) -> Result<Vec<(String, String, CompiledPolicy)>, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
        path: path.to_string(),
        source,
    })?;
    let docs = tollgate_ir::yaml::read_policies(&text).map_err(|source| RulesError::Parse {
        path: path.to_string(),
        source,
    })?;
    Ok(docs
        .into_iter()
        .map(|d| {
            let ns = d.namespace.unwrap_or_else(|| default_ns.to_string());
            let name = d.name.unwrap_or_else(|| d.policy.tenant.clone());
            (ns, name, d.policy)
        })
        .collect())
}

fn run(args: Args) -> Result<(), RulesError> {
    let opt = RuleOptions {
        history: args.history,
        fresh: args.fresh,
        learning: args.learning,
        rate_window: args.rate_window,
    };
    let mut groups = Vec::new();
    for path in &args.inputs {
        for (ns, name, p) in read(path, &args.namespace)? {
            let g = rules_for_with(&p, &ns, &name, &opt);
            for s in &g.skipped {
                eprintln!("note: {s}");
            }
            groups.push((ns, name, g));
        }
    }
    match args.format {
        Format::Rules => {
            let file = RuleFile {
                groups: groups.into_iter().map(|(_, _, g)| g).collect(),
            };
            print!("{}", tollgate_ir::yaml::to_yaml(&file)?);
        }
        Format::PrometheusRule => {
            for (i, (ns, name, g)) in groups.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!(
                    "{}",
                    tollgate_ir::yaml::to_yaml(&prometheus_rule(g, ns, name))?
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
