//! The committed `data/numbering.tsv` must match what `numbering-gen`
//! produces from the pinned libphonenumber metadata.
//!
//! Runs the generator through cargo; skipped (with a note) when cargo is not
//! available, e.g. when the crate is tested outside the workspace.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_numbering_data_is_not_stale() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(root) = manifest.parent() else {
        return;
    };
    if !root.join("tools/numbering-gen/Cargo.toml").exists() {
        eprintln!("numbering-gen not found; skipping the freshness check");
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["run", "-q", "-p", "numbering-gen", "--", "--check"])
        .arg(manifest.join("data/numbering.tsv"))
        .status();
    match status {
        Ok(status) => assert!(status.success(), "policy-lang/data/numbering.tsv is stale"),
        Err(e) => eprintln!("cannot run cargo ({e}); skipping the freshness check"),
    }
}
