//! `tollgate`: check, format and compile Tollgate policy files.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

mod commands;
mod diff;
mod explain;
mod replay;
mod resource;
mod test_cmd;

/// Toll-fraud protection for SIP networks, as code.
///
/// Policy files (`*.tgp`) declare, per tenant, which destinations may be called
/// and when, which SIP sources may call, call limits, what a breach or an
/// anomaly triggers, and mandatory TLS/SRTP. `tollgate` checks them, formats
/// them and compiles them into `TollPolicy` custom resources for the Tollgate
/// operator.
///
/// File names in diagnostics and in the compiled source maps are relative to
/// the current folder: run `tollgate` from the root of the policy repository.
///
/// Exit codes: 0 success; 1 problems found in the policies (or, for `fmt
/// --check`, files not formatted; for `diff`, a change that loosens); 2 the
/// command itself could not run (bad arguments, unreadable files).
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, long_about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check policy files for errors (syntax, unknown names, conflicts, impossible values).
    ///
    /// Takes files and folders (folders are searched for `*.tgp`, skipping hidden
    /// folders). Every file is checked with everything it imports; all problems
    /// of all files are reported, each with file, line, column and what to do.
    ///
    /// Example: tollgate check examples/policies
    Check {
        /// Policy files or folders; default: the current folder.
        paths: Vec<PathBuf>,
        /// Output: `human` (annotated source snippets) or `json` (one object, for CI tools).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors (exit 1).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Rewrite policy files in the canonical layout, keeping comments.
    ///
    /// Files with syntax errors are left untouched and reported. With `--check`,
    /// nothing is written: the files that would change are listed and the exit
    /// code is 1 if there are any.
    ///
    /// Example: tollgate fmt --check examples/policies
    Fmt {
        /// Policy files or folders; default: the current folder.
        paths: Vec<PathBuf>,
        /// Only report files that are not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Compile tenant policies into `TollPolicy` custom resources (YAML).
    ///
    /// Every file is checked first; if any has an error, nothing is written.
    /// Base files (`base NAME`) are checked but produce no resource. Output is
    /// deterministic: resources sorted by tenant, every table sorted, and every
    /// rule traceable to its file and line through `spec.policy.rules`. A
    /// policy too big for one Kubernetes object (over 192 KiB, or a list over
    /// 10,000 entries) is written as PolicyChunks followed by the TollPolicy
    /// that names them (docs/crds.md).
    ///
    /// Example: tollgate compile examples/policies --fleet edge -n tenants -o build/
    Compile {
        /// Policy files or folders; default: the current folder.
        paths: Vec<PathBuf>,
        /// Namespace of the generated resources.
        #[arg(short = 'n', long, default_value = "tollgate", value_parser = dns_label)]
        namespace: String,
        /// Name of the SbcFleet the policies roll out to.
        #[arg(long, default_value = "default", value_parser = dns_label)]
        fleet: String,
        /// Write one `<tenant>.yaml` per tenant into this folder instead of one
        /// multi-document YAML stream on standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Compare two versions of tenant policies and say what changed for calls.
    ///
    /// OLD and NEW are tenant policy files (`*.tgp`, compiled with their
    /// imports), compiled `TollPolicy` YAML files (`*.yaml`, as written by
    /// `compile`), or two folders of either (tenants paired by name; scenario
    /// files `*.test.yaml` and hidden folders are skipped). Every
    /// change is marked `loosens` (lets through calls rejected before, or
    /// weakens limits, responses or crypto), `tightens` or `neutral`.
    ///
    /// Exit codes: 0 nothing loosens; 1 something loosens (so CI can require a
    /// review); 2 a side could not be read or has errors.
    ///
    /// Example: tollgate diff build-main/ build/
    Diff {
        /// The policy before the change: a file or a folder.
        old: PathBuf,
        /// The policy after the change: a file or a folder.
        new: PathBuf,
        /// Output: `human` (lines grouped by area) or `json`.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Run scenario files (`*.test.yaml`): calls and the decision each must get.
    ///
    /// Each scenario file names a tenant policy and lists cases: a call (destination,
    /// source, time, transport, counts, blocks) and the expected outcome and deciding
    /// rule. Prints `ok`/`FAILED` per case, with expected and actual rules, their
    /// source lines and the trace for failures, then `N passed, N failed`. Exit 1 if
    /// any case failed. Format: docs/testing.md.
    ///
    /// Example: tollgate test examples/policies
    Test(test_cmd::TestArgs),
    /// Explain what a policy decides for one call, and why.
    ///
    /// Prints the verdict, the deciding rule with its source line, the number as
    /// normalized and its classes, the responses triggered, the longest call allowed
    /// and every rule considered (with its source line).
    ///
    /// Example: tollgate explain examples/policies/tenants/acme.tgp --to +442071234567 --from 198.51.100.20 --at 2026-01-14T10:00:00-05:00
    Explain(explain::ExplainArgs),
    Replay(replay::Args),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

/// Namespaces and fleet names are Kubernetes DNS labels.
fn dns_label(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be a DNS label: 1 to 63 lowercase letters, digits and `-`, starting and ending with a letter or digit".into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let result = match cli.command {
        Command::Check {
            paths,
            format,
            deny_warnings,
        } => commands::check(&paths, format == Format::Json, deny_warnings, color),
        Command::Fmt { paths, check } => commands::fmt(&paths, check, color),
        Command::Compile {
            paths,
            namespace,
            fleet,
            output,
        } => commands::compile(&paths, &namespace, &fleet, output.as_deref(), color),
        Command::Diff { old, new, format } => diff::diff(&old, &new, format == Format::Json, color),
        Command::Test(args) => test_cmd::run(&args, color),
        Command::Explain(args) => explain::run(&args, color),
        Command::Replay(args) => replay::run(&args, color),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
