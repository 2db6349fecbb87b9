//! Snapshot tests of diagnostics. Every `tests/cases/errors/<code>.tgp` and
//! `tests/cases/warnings/<code>.tgp` (with `::` written as `--` in the file
//! name) must produce the diagnostic of that code, with the severity of its
//! folder: an error case must not compile, a warning case must compile without
//! errors. A code that no policy text can reach ([`Code::precluded_by`]) has
//! its case in `tests/cases/precluded/`: the input that would reach it, which
//! must produce the earlier stage's error instead. The rendered output
//! (message, underlined span, help) of all the file's diagnostics is compared
//! with `tests/snapshots/`. Every code of [`Code::ALL`] has exactly one case.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tollgate_policy::check;
use tollgate_policy::diag::{Code, Severity, render};
use tollgate_policy::load::Workspace;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

/// The `.tgp` files of a folder of cases, sorted.
fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the cases folder exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tgp"))
        .collect();
    cases.sort();
    cases
}

/// The case file's name for a code: `::` written as `--`.
fn stem_of(code: Code) -> String {
    code.as_str().replace("::", "--")
}

/// The folder a code's case belongs in.
fn folder_of(code: Code) -> &'static str {
    if code.precluded_by().is_some() {
        "precluded"
    } else if code.as_str().starts_with("analysis::") {
        "warnings"
    } else {
        "errors"
    }
}

/// Checks every case of `folder`; returns the codes covered.
fn run_cases(folder: &str, severity: Severity) -> BTreeSet<String> {
    let dir = cases_dir().join(folder);
    let cases = case_files(&dir);
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
                .any(|d| d.code.as_str() == expected_code && d.severity == severity),
            "{stem}: expected a `{expected_code}` {severity:?}, got {:?}",
            c.diagnostics
                .iter()
                .map(|d| (d.code.as_str(), &d.message))
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

#[test]
fn every_precluded_case_reports_the_earlier_error_and_matches_its_snapshot() {
    let dir = cases_dir().join("precluded");
    for case in case_files(&dir) {
        let stem = case
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let code: Code = stem
            .replace("--", "::")
            .parse()
            .unwrap_or_else(|()| panic!("{stem}: not a diagnostic code"));
        let instead = code.precluded_by().unwrap_or_else(|| {
            panic!("{stem}: `{code}` is reachable; its case belongs in errors/ or warnings/")
        });
        let mut ws = Workspace::on_disk(&dir);
        let c = check::check(&mut ws, &case).expect("the case file is readable");
        let codes: Vec<Code> = c.diagnostics.iter().map(|d| d.code).collect();
        assert!(
            codes.contains(&instead) && !codes.contains(&code),
            "{stem}: expected `{instead}` (and no `{code}`), got {codes:?}"
        );
        assert!(
            c.policy.is_none(),
            "{stem}: a file with errors must not compile"
        );
        insta::assert_snapshot!(stem, render(&c.diagnostics, &ws.sources, false));
    }
}

/// A code added to [`Code`] without an example fails here.
#[test]
fn every_code_has_a_case_file() {
    let missing: Vec<String> = Code::ALL
        .iter()
        .map(|&c| format!("{}/{}.tgp", folder_of(c), stem_of(c)))
        .filter(|path| !cases_dir().join(path).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a case file under tests/cases/: {missing:?}"
    );
    // and every case file (and snapshot) names a code, in the right folder
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut stems: Vec<String> = Vec::new();
    for folder in ["errors", "warnings", "precluded"] {
        for case in case_files(&cases_dir().join(folder)) {
            let stem = case.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let code: Result<Code, ()> = stem.replace("--", "::").parse();
            assert!(
                code.is_ok_and(|c| folder_of(c) == folder),
                "{folder}/{stem}.tgp: not a code whose case belongs in {folder}/"
            );
            stems.push(stem.to_string());
        }
    }
    for snap in std::fs::read_dir(&snapshots).expect("the snapshots folder exists") {
        let name = snap.expect("a snapshot entry").file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name
            .strip_prefix("diagnostics__")
            .and_then(|n| n.strip_suffix(".snap"))
        {
            assert!(
                stems.iter().any(|s| s == stem),
                "snapshot {name} has no case file"
            );
        }
    }
}
