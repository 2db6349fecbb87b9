//! `tollgate test` and `tollgate explain` as a user runs them.

mod common;

use common::{folder_with_examples as folder, text, tollgate};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_example_scenarios_pass() {
    let out = tollgate(&repo(), &["test", "examples/policies"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for tenant in ["acme", "globex", "initech"] {
        assert!(
            stdout.contains(&format!("examples/policies/tests/{tenant}.test.yaml")),
            "{stdout}"
        );
    }
    let last = stdout.lines().last().expect("a summary line");
    assert!(
        last.ends_with(" passed, 0 failed") && !last.starts_with("0 "),
        "{last}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
}

const FAILING: &str = "\
policy: ../tenants/acme.tgp
cases:
  - name: GB during the night shift
    call: { to: '+442071234567', from: 198.51.100.20, at: 2026-01-13T23:00:00-05:00 }
    expect: { outcome: allow, rule: 'dst:country:GB@outside:night-shift' }
";

#[test]
fn a_failing_case_shows_both_rules_with_their_source_and_the_trace() {
    let dir = folder("failing", &[("tests/gb.test.yaml", FAILING)]);
    let out = tollgate(&dir, &["test", "tests"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED  GB during the night shift"),
        "{stdout}"
    );
    assert!(
        stdout.contains("outcome:  expected allow, got deny"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "rule:     expected dst:country:GB@outside:night-shift, got dst:international"
        ),
        "{stdout}"
    );
    // both rules with file:line and the source line
    assert!(stdout.contains("--> tenants/acme.tgp:15:17"), "{stdout}");
    assert!(
        stdout.contains("allow country GB outside night-shift"),
        "{stdout}"
    );
    assert!(stdout.contains("--> base/standard.tgp:10:3"), "{stdout}");
    assert!(stdout.contains("10 │   international: deny"), "{stdout}");
    // the trace, each step with its note
    assert!(stdout.contains("trace:"), "{stdout}");
    assert!(stdout.contains("window night-shift is open"), "{stdout}");
    assert!(stdout.contains("+ matched: deny"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("0 passed, 1 failed"),
        "{stdout}"
    );

    let out = tollgate(&dir, &["test", "tests", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["failed"], 1);
    assert_eq!(v["passed"], 0);
    let case = &v["files"][0]["cases"][0];
    assert_eq!(case["ok"], false);
    assert_eq!(case["actual"]["rule"]["id"], "dst:international");
    assert_eq!(case["actual"]["rule"]["source"]["line"], 10);
    assert_eq!(case["expectedRule"]["source"]["line"], 15);
    assert!(
        case["actual"]["trace"]
            .as_array()
            .is_some_and(|t| t.len() >= 3)
    );
}

fn malformed(name: &str, body: &str) -> (i32, String) {
    let dir = folder(name, &[("tests/bad.test.yaml", body)]);
    let out = tollgate(&dir, &["test", "tests"]);
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}

#[test]
fn malformed_scenarios_are_errors_with_file_line_and_column() {
    let (code, out) = malformed(
        "unknown-field",
        &FAILING.replace("expect: {", "expect: { stagee: geo,"),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tests/bad.test.yaml:5:15: cases[0].expect: unknown field `stagee`"),
        "{out}"
    );
    assert!(out.contains("help:"), "{out}");
    assert_eq!(out.lines().last(), Some("0 passed, 1 failed"), "{out}");

    let (code, out) = malformed("no-offset", &FAILING.replace("23:00:00-05:00", "23:00:00"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tests/bad.test.yaml:4:"), "{out}");
    assert!(
        out.contains("time `2026-01-13T23:00:00` has no UTC offset"),
        "{out}"
    );

    let (code, out) = malformed(
        "outcome",
        &FAILING.replace("outcome: allow", "outcome: permit"),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tests/bad.test.yaml:5:"), "{out}");
    assert!(
        out.contains("unknown variant `permit`, expected one of `allow`, `deny`, `limit`"),
        "{out}"
    );

    let (code, out) = malformed(
        "no-rule",
        &FAILING.replace(", rule: 'dst:country:GB@outside:night-shift'", ""),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing field `rule`"), "{out}");
}

#[test]
fn a_policy_with_errors_fails_its_scenarios_with_diagnostics() {
    let dir = folder(
        "broken-policy",
        &[
            (
                "tenants/broken.tgp",
                "tenant broken\nhome GB\n\ndestinations {\n  allow country UK\n}\n",
            ),
            (
                "tests/broken.test.yaml",
                &FAILING.replace("acme.tgp", "broken.tgp"),
            ),
        ],
    );
    let out = tollgate(&dir, &["test", "tests"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("tenants/broken.tgp:5:"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("has 1 error"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stdout).lines().last(), Some("0 passed, 1 failed"));
}

#[test]
fn no_scenario_files_is_exit_2() {
    let dir = folder("none", &[]);
    let out = tollgate(&dir, &["test", "tenants"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no scenario files"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn explain_shows_the_deciding_rule_and_the_trace_with_source_lines() {
    let out = tollgate(
        &repo(),
        &[
            "explain",
            "examples/policies/tenants/acme.tgp",
            "--to",
            "+14165550100",
            "--from",
            "198.51.100.20",
            "--at",
            "2026-01-14T10:00:00-05:00",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("verdict:   allow"), "{stdout}");
    assert!(stdout.contains("rule:      dst:country:CA"), "{stdout}");
    assert!(
        stdout.contains("--> examples/policies/tenants/acme.tgp:13:17"),
        "{stdout}"
    );
    assert!(stdout.contains("13 │   allow country CA\n"), "{stdout}");
    assert!(stdout.contains("│                 ^^\n"), "{stdout}");
    assert!(stdout.contains("number:    +14165550100"), "{stdout}");
    assert!(stdout.contains("classes:   international"), "{stdout}");
    assert!(stdout.contains("max duration: 4h"), "{stdout}");
    assert!(
        stdout.contains("examples/policies/tenants/acme.tgp:23 │ allow 198.51.100.0/24"),
        "{stdout}"
    );

    let out = tollgate(
        &repo(),
        &[
            "explain",
            "examples/policies/tenants/acme.tgp",
            "--to",
            "911",
            "--from",
            "198.51.100.66",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["decision"]["outcome"], "allow");
    assert_eq!(v["decision"]["rule"]["id"], "dst:emergency");
    assert!(v["decision"]["rule"]["builtin"].is_string());
}

#[test]
fn explain_refuses_a_time_without_offset() {
    let out = tollgate(
        &repo(),
        &[
            "explain",
            "examples/policies/tenants/acme.tgp",
            "--to",
            "911",
            "--from",
            "198.51.100.66",
            "--at",
            "2026-01-14T10:00:00",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("has no UTC offset"),
        "{}",
        text(&out.stderr)
    );
}
