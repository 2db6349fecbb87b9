//! Writes the CRD YAML files (`crds/*.yaml`), or with `--check` verifies they
//! are up to date and exits 1 naming each stale file.
//!
//! Usage: `crdgen [--check] [--dir DIR]` (DIR defaults to this crate's directory).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Writes the CRD YAML files, or checks that they are up to date.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Verify the files instead of writing them; exit 1 naming each stale one.
    #[arg(long)]
    check: bool,
    /// Directory of the files.
    #[arg(long, value_name = "DIR", default_value = env!("CARGO_MANIFEST_DIR"))]
    dir: PathBuf,
}

fn main() -> ExitCode {
    let Args { check, dir } = Args::parse();
    let mut stale = 0;
    for (file, crd) in tollgate_crds::all_crds() {
        let path = dir.join(file);
        let yaml = match tollgate_crds::yaml::crd_to_yaml(&crd) {
            Ok(y) => y,
            Err(e) => {
                eprintln!("crdgen: cannot render {file}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(yaml.as_str()) {
            continue;
        }
        if check {
            eprintln!(
                "crdgen: {} is stale; run `cargo run -p tollgate-crds --bin crdgen`",
                path.display()
            );
            stale += 1;
        } else if let Err(e) = std::fs::write(&path, yaml) {
            eprintln!("crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        } else {
            eprintln!("crdgen: wrote {}", path.display());
        }
    }
    if stale > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
