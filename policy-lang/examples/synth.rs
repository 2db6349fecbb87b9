//! Writes a synthetic tenant policy and call log, to try `tollgate replay` on
//! large inputs:
//!
//!     cargo run --release -p tollgate-policy --example synth -- OUT_DIR [PREFIXES] [ROWS] [SEED]
//!     tollgate replay OUT_DIR/bench.tgp --cdr OUT_DIR/cdr.csv
//!
//! Defaults: 1,000 prefixes, 100,000 rows, seed 1. The generator is the one
//! the benchmark and the tests use (`benches/synth`).

#[path = "../benches/synth/mod.rs"]
mod synth;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
