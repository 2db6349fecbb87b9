//! Snapshot tests of analysis warnings: every `tests/cases/warnings/<code>.tgp`
//! (with `::` written as `--` in the file name) must produce the warning of
//! that code and still compile; the rendered output (message, underlined span,
//! help) of all its diagnostics is compared with `tests/snapshots/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tollgate_policy::check;
use tollgate_policy::diag::{Severity, render};
use tollgate_policy::load::Workspace;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/warnings")
}

fn cases() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("the cases folder exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tgp"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_warning_case_reports_its_code_compiles_and_matches_its_snapshot() {
    let mut codes = BTreeSet::new();
    for case in cases() {
        let stem = case
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let expected_code = stem.replace("--", "::");
        let mut ws = Workspace::on_disk(dir());
        let c = check::check(&mut ws, &case).expect("the case file is readable");
        assert!(
            c.diagnostics
                .iter()
                .any(|d| d.code == expected_code && d.severity == Severity::Warning),
            "{stem}: expected a `{expected_code}` warning, got {:?}",
            c.diagnostics
                .iter()
                .map(|d| (d.code, &d.message))
                .collect::<Vec<_>>()
        );
        assert!(
            !c.has_errors(),
            "{stem}: a warning case must have no errors: {:?}",
            c.diagnostics
        );
        assert!(c.policy.is_some(), "{stem}: a file with warnings compiles");
        codes.insert(expected_code);
        let rendered = render(&c.diagnostics, &ws.sources, false);
        insta::assert_snapshot!(stem, rendered);
    }
    for code in [
        "analysis::never-decides",
        "analysis::redundant-rule",
        "analysis::source-overlap",
        "analysis::window-always-open",
        "analysis::unused-window",
        "analysis::limit-never-triggers",
        "analysis::premium-open",
    ] {
        assert!(codes.contains(code), "no case for `{code}`");
    }
}
