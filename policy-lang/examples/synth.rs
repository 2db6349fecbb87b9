//! Writes a synthetic tenant policy and call log, to try `tollgate replay` on
//! large inputs:
//!
//!     cargo run --release -p tollgate-policy --example synth -- OUT_DIR [PREFIXES] [ROWS] [SEED]
//!     tollgate replay OUT_DIR/bench.tgp --cdr OUT_DIR/cdr.csv
//!
//! Defaults: 1,000 prefixes, 100,000 rows, seed 1. The generator is the one
//! the benchmarks and the tests use (`benches/synth`). The inputs of the
//! language benchmark (`benches/lang.rs`), to time `tollgate check` and
//! `tollgate compile` on them:
//!
//!     cargo run --release -p tollgate-policy --example synth -- --deny-list OUT_DIR LINES [SEED]
//!     tollgate check OUT_DIR/carrier.tgp
//!     cargo run --release -p tollgate-policy --example synth -- --tenants OUT_DIR COUNT [SEED]
//!     tollgate check OUT_DIR

#[path = "../benches/synth/mod.rs"]
mod synth;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--deny-list OUT_DIR LINES [SEED]` and `--tenants OUT_DIR COUNT [SEED]`.
fn language_inputs(args: &[String]) -> ExitCode {
    let (Some(mode), Some(dir), Some(Ok(n))) = (
        args.first(),
        args.get(1).map(PathBuf::from),
        args.get(2).map(|a| a.replace('_', "").parse::<usize>()),
    ) else {
        eprintln!("usage: synth --deny-list OUT_DIR LINES [SEED] | --tenants OUT_DIR COUNT [SEED]");
        return ExitCode::from(2);
    };
    let Ok(seed) = args.get(3).map_or(Ok(1), |a| a.parse::<u64>()) else {
        eprintln!("SEED is a number");
        return ExitCode::from(2);
    };
    let write = |path: PathBuf, text: &str| -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)
    };
    let run = || -> std::io::Result<String> {
        if mode == "--deny-list" {
            let path = dir.join("carrier.tgp");
            write(path.clone(), &synth::deny_list_text(seed, n))?;
            Ok(path.display().to_string())
        } else {
            write(dir.join("base/standard.tgp"), synth::SMALL_TENANT_BASE)?;
            for i in 0..n {
                write(
                    dir.join(format!("tenants/t{i:04}.tgp")),
                    &synth::small_tenant_text(seed, i),
                )?;
            }
            Ok(format!(
                "{n} tenants and their base under {}",
                dir.display()
            ))
        }
    };
    match run() {
        Ok(what) => {
            eprintln!("wrote {what}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .first()
        .is_some_and(|a| a == "--deny-list" || a == "--tenants")
    {
        return language_inputs(&args);
    }
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: synth OUT_DIR [PREFIXES] [ROWS] [SEED]");
        return ExitCode::from(2);
    };
    let num = |i: usize, default: u64| -> Option<u64> {
        args.get(i)
            .map_or(Some(default), |a| a.replace('_', "").parse().ok())
    };
    let (Some(prefixes), Some(rows), Some(seed)) = (num(1, 1_000), num(2, 100_000), num(3, 1))
    else {
        eprintln!("PREFIXES, ROWS and SEED are numbers");
        return ExitCode::from(2);
    };
    let run = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("bench.tgp"),
            synth::policy_text(seed, prefixes as usize),
        )?;
        let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("cdr.csv"))?);
        synth::write_cdr(&mut w, seed, rows)?;
        w.flush()
    };
    match run() {
        Ok(()) => {
            eprintln!(
                "wrote {} and {}",
                dir.join("bench.tgp").display(),
                dir.join("cdr.csv").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
