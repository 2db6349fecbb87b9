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
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::kamailio::{self, Kamailio};
use tollgate_kamailio::{Backend, write};

const USAGE: &str = "usage: tollgate-render POLICY.yaml... --out DIR [--now RFC3339] [--revision TENANT=REV]... [--reloads]";

struct Args {
    inputs: Vec<PathBuf>,
    out: PathBuf,
    now: Option<Timestamp>,
    revisions: BTreeMap<String, String>,
    reloads: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut inputs = Vec::new();
    let mut out = None;
    let mut now = None;
    let mut revisions = BTreeMap::new();
    let mut reloads = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" | "-o" => out = Some(PathBuf::from(it.next().ok_or("--out needs a folder")?)),
            "--now" => {
                let v = it.next().ok_or("--now needs an RFC 3339 time")?;
                now = Some(
                    v.parse::<Timestamp>()
                        .map_err(|e| format!("--now {v}: {e}"))?,
                );
            }
            "--revision" => {
                let v = it.next().ok_or("--revision needs TENANT=REV")?;
                let (t, r) = v.split_once('=').ok_or("--revision needs TENANT=REV")?;
                revisions.insert(t.to_string(), r.to_string());
            }
            "--reloads" => reloads = true,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => inputs.push(PathBuf::from(a)),
        }
    }
    if inputs.is_empty() {
        return Err("no policy files".into());
    }
    Ok(Args {
        inputs,
        out: out.ok_or("--out is required")?,
        now,
        revisions,
        reloads,
    })
}

/// The compiled policies of one file: `TollPolicy` documents or bare policies.
fn read_policies(path: &PathBuf) -> Result<Vec<CompiledPolicy>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs =
        tollgate_ir::yaml::read_policies(&text).map_err(|e| format!("{} ({e})", path.display()))?;
    Ok(docs.into_iter().map(|d| d.policy).collect())
}

fn default_revision(p: &CompiledPolicy) -> Result<String, String> {
    let yaml = tollgate_ir::yaml::to_yaml(p).map_err(|e| e.to_string())?;
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
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
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
        let revision = match args.revisions.get(&p.tenant) {
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
