//! `tollgate-render`: compiled policies → the Kamailio SBC data directory.
//!
//! ```console
//! tollgate-render POLICY.yaml... --out DIR [--now RFC3339] [--revision TENANT=REV]... [--reloads]
//! ```
//!
//! Reads compiled `TollPolicy` resources (as `tollgate compile` writes them;
//! one or several YAML documents per file) or bare compiled policies,
//! renders every tenant into ONE set of tables (a fleet), and writes the
//! files that changed atomically with their mtime moved forward (see
//! docs/sbc.md). `--now` fixes the instant the time windows are resolved
//! from (default: the current time). A tenant's revision defaults to
//! `sha256:` and 12 hex digits of its compiled policy. `--reloads` prints,
//! per changed table, the JSON-RPC method that makes a running SBC re-read
//! it. Exit status: 0 written, 1 a policy cannot be rendered, 2 usage or I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use clap::Parser;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::kamailio::{self, Kamailio};
use tollgate_kamailio::{Backend, write};

/// Compiled policies → the Kamailio SBC data directory (docs/sbc.md).
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Exit status: 0 written, 1 a policy cannot be rendered, 2 usage or I/O."
)]
struct Args {
    /// Compiled `TollPolicy` resources or bare compiled policies (YAML).
    #[arg(value_name = "POLICY.yaml", required = true)]
    inputs: Vec<PathBuf>,
    /// The SBC data directory to write.
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,
    /// The instant time windows are resolved from (default: now).
    #[arg(long, value_name = "RFC3339")]
    now: Option<Timestamp>,
    /// A tenant's revision label (default: `sha256:` and 12 hex digits of
    /// its compiled policy); repeatable.
    #[arg(long = "revision", value_name = "TENANT=REV", value_parser = tenant_revision)]
    revisions: Vec<(String, String)>,
    /// Print, per changed table, the JSON-RPC reload that makes a running
    /// SBC re-read it.
    #[arg(long)]
    reloads: bool,
}

fn tenant_revision(v: &str) -> Result<(String, String), String> {
    let (t, r) = v.split_once('=').ok_or("needs TENANT=REV")?;
    Ok((t.to_string(), r.to_string()))
}

/// Why a policy file cannot be read (exit status 2).
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} ({source})", path.display())]
    Parse {
        path: PathBuf,
        source: tollgate_ir::yaml::PolicyDocumentError,
    },
}

/// The compiled policies of one file: `TollPolicy` documents or bare policies.
fn read_policies(path: &Path) -> Result<Vec<CompiledPolicy>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.to_owned(),
        source,
    })?;
    let docs = tollgate_ir::yaml::read_policies(&text).map_err(|source| InputError::Parse {
        path: path.to_owned(),
        source,
    })?;
    Ok(docs.into_iter().map(|d| d.policy).collect())
}

fn default_revision(p: &CompiledPolicy) -> Result<String, tollgate_ir::yaml::Error> {
    let yaml = tollgate_ir::yaml::to_yaml(p)?;
    let digest = Sha256::digest(yaml.as_bytes());
    Ok(format!(
        "sha256:{}",
        digest
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let revisions: BTreeMap<String, String> = args.revisions.iter().cloned().collect();
    let mut policies = Vec::new();
    for path in &args.inputs {
        match read_policies(path) {
            Ok(ps) => policies.extend(ps),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let now = args.now.unwrap_or_else(Timestamp::now);
    let started = Instant::now();
    let backend = Kamailio;
    let mut tenants = BTreeMap::new();
    for p in &policies {
        let revision = match revisions.get(&p.tenant) {
            Some(r) => r.clone(),
            None => match default_revision(p) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            },
        };
        let rows = match backend.render_tenant(p, &revision, now) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        if tenants.insert(p.tenant.clone(), rows).is_some() {
            eprintln!("error: tenant `{}` is given twice", p.tenant);
            return ExitCode::from(1);
        }
    }
    let bundle = match backend.compose(&tenants) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let rendered = started.elapsed();
    let written = match write::write_bundle(&args.out, &bundle, SystemTime::now()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: writing {}: {e}", args.out.display());
            return ExitCode::from(2);
        }
    };
    for (t, rows) in &tenants {
        println!(
            "tenant {t}: revision {}, {} rows ({} prefixes in d:{t})",
            rows.revision,
            rows.len(),
            rows.tables
                .get("mtree")
                .map_or(0, |m| m.iter().filter(|r| r.starts_with("d\\:")).count())
        );
    }
    println!(
        "bundle {}: {} files, {} bytes, rendered in {} ms; written: {}",
        bundle.hash,
        bundle.files.len(),
        bundle.files.values().map(String::len).sum::<usize>(),
        rendered.as_millis(),
        if written.is_empty() {
            "nothing changed".to_string()
        } else {
            written.join(" ")
        }
    );
    if args.reloads {
        for table in &written {
            if let Some((method, params)) = kamailio::reload_command(table) {
                println!("reload {table}: {method} {}", params.join(" "));
            }
        }
    }
    ExitCode::SUCCESS
}
