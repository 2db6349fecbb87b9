//! Snapshot tests of diagnostics. Every `tests/cases/errors/<code>.tgp` and
//! `tests/cases/warnings/<code>.tgp` (with `::` written as `--` in the file
//! name) must produce the diagnostic of that code, with the severity of its
//! folder: an error case must not compile, a warning case must compile without
//! errors. The rendered output (message, underlined span, help) of all the
//! file's diagnostics is compared with `tests/snapshots/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tollgate_policy::check;
use tollgate_policy::diag::{Severity, render};
use tollgate_policy::load::Workspace;

/// Checks every case of `folder`; returns the codes covered.
fn run_cases(folder: &str, severity: Severity) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cases")
        .join(folder);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the cases folder exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tgp"))
        .collect();
    cases.sort();
    let mut codes = BTreeSet::new();
    for case in cases {
        let stem = case
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let expected_code = stem.replace("--", "::");
        let mut ws = Workspace::on_disk(&dir);
        let c = check::check(&mut ws, &case).expect("the case file is readable");
        assert!(
            c.diagnostics
                .iter()
                .any(|d| d.code == expected_code && d.severity == severity),
            "{stem}: expected a `{expected_code}` {severity:?}, got {:?}",
            c.diagnostics
                .iter()
                .map(|d| (d.code, &d.message))
                .collect::<Vec<_>>()
        );
        match severity {
            Severity::Error => assert!(
                c.policy.is_none(),
                "{stem}: a file with errors must not compile"
            ),
            Severity::Warning => {
                assert!(
                    !c.has_errors(),
                    "{stem}: a warning case must have no errors: {:?}",
                    c.diagnostics
                );
                assert!(c.policy.is_some(), "{stem}: a file with warnings compiles");
            }
        }
        codes.insert(expected_code);
        insta::assert_snapshot!(stem, render(&c.diagnostics, &ws.sources, false));
    }
    codes
}

#[test]
fn every_error_case_reports_its_code_and_matches_its_snapshot() {
    let codes = run_cases("errors", Severity::Error);
    assert!(
        codes.len() >= 25,
        "only {} distinct error kinds have cases",
        codes.len()
    );
}

#[test]
fn every_warning_case_reports_its_code_compiles_and_matches_its_snapshot() {
    let codes = run_cases("warnings", Severity::Warning);
    for code in [
        "analysis::never-decides",
        "analysis::redundant-rule",
        "analysis::source-overlap",
        "analysis::window-always-open",
        "analysis::unused-window",
        "analysis::limit-never-triggers",
        "analysis::premium-open",
        "analysis::override-changes-nothing",
    ] {
        assert!(codes.contains(code), "no case for `{code}`");
    }
}
