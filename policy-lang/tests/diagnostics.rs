//! Snapshot tests of diagnostics: every `tests/cases/errors/<code>.tgp`
//! (with `::` written as `--` in the file name) must produce the diagnostic of
//! that code; the rendered output (message, underlined span, help) of all its
//! diagnostics is compared with `tests/snapshots/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tollgate_policy::check;
use tollgate_policy::diag::render;
use tollgate_policy::load::Workspace;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/errors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the cases folder exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tgp"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_error_case_reports_its_code_and_matches_its_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/errors");
    let mut codes = BTreeSet::new();
    for case in cases() {
        let stem = case
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let expected_code = stem.replace("--", "::");
        let mut ws = Workspace::on_disk(&dir);
        let c = check::check(&mut ws, &case).expect("the case file is readable");
        assert!(
            c.diagnostics.iter().any(|d| d.code == expected_code),
            "{stem}: expected a `{expected_code}` diagnostic, got {:?}",
            c.diagnostics
                .iter()
                .map(|d| (d.code, &d.message))
                .collect::<Vec<_>>()
        );
        assert!(
            c.policy.is_none(),
            "{stem}: a file with errors must not compile"
        );
        codes.insert(expected_code);
        let rendered = render(&c.diagnostics, &ws.sources, false);
        insta::assert_snapshot!(stem, rendered);
    }
    assert!(
        codes.len() >= 25,
        "only {} distinct error kinds have cases",
        codes.len()
    );
}
