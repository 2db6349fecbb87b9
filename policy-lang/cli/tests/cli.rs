//! The `tollgate` binary as a user runs it: exit codes, human and JSON
//! diagnostics, fmt that never loses a file, compile output.

mod common;

use common::{examples, folder, text, tollgate};

#[test]
fn check_passes_on_the_examples() {
    let out = tollgate(&examples(), &["check", "."]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("checked 5 files: 0 errors, 0 warnings"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_reports_every_error_with_file_line_and_column_and_exits_1() {
    let dir = folder(
        "errors",
        &[
            (
                "a.tgp",
                "tenant a\nhome GB\n\ndestinations {\n  allow country UK\n}\n",
            ),
            (
                "b.tgp",
                "tenant b\nhome GB\n\nsources {\n  allow 127.0.0.300\n}\n",
            ),
        ],
    );
    let out = tollgate(&dir, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("a.tgp:5:17"), "{err}");
    assert!(err.contains("unknown country `UK`"), "{err}");
    assert!(err.contains("b.tgp:5:9"), "{err}");
    assert!(err.contains("`300` is out of range"), "{err}");
    assert!(
        err.contains("checked 2 files: 2 errors, 0 warnings"),
        "{err}"
    );
}

#[test]
fn check_json_is_one_object_with_positions() {
    let dir = folder(
        "json",
        &[(
            "a.tgp",
            "tenant a\nhome GB\n\ndestinations {\n  allow country UK\n}\n",
        )],
    );
    let out = tollgate(&dir, &["check", "--format", "json", "a.tgp"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["errors"], 1);
    assert_eq!(v["ok"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(d["file"], "a.tgp");
    assert_eq!(d["code"], "destinations::unknown-country");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(5), Some(17))
    );
    assert_eq!(d["label"]["end"]["column"], 19);
    assert!(
        d["help"].as_str().is_some_and(|h| h.contains("`GB`")),
        "{d}"
    );
}

#[test]
fn unreadable_paths_exit_2() {
    let out = tollgate(&examples(), &["check", "no-such-folder"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read `no-such-folder`"));
}

#[test]
fn fmt_rewrites_keeps_comments_and_check_mode_changes_nothing() {
    let messy = "tenant a   # the tenant\nhome   GB\ndestinations {\n    # keep me\n  allow country   FR,DE\n}\n";
    let dir = folder("fmt", &[("a.tgp", messy)]);
    let out = tollgate(&dir, &["fmt", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("a.tgp: not formatted"));
    assert_eq!(
        std::fs::read_to_string(dir.join("a.tgp")).expect("read"),
        messy,
        "--check must not write"
    );

    let out = tollgate(&dir, &["fmt"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let formatted = std::fs::read_to_string(dir.join("a.tgp")).expect("read");
    assert!(
        formatted.contains("# the tenant") && formatted.contains("# keep me"),
        "{formatted}"
    );
    assert!(
        formatted.contains("  allow country FR, DE\n"),
        "{formatted}"
    );
    let again = tollgate(&dir, &["fmt", "--check"]);
    assert!(
        again.status.success(),
        "formatting is idempotent: {}",
        text(&again.stdout)
    );
}

#[test]
fn fmt_leaves_a_file_with_syntax_errors_untouched() {
    let broken = "tenant a\nhome GB\ndestinations {\n  alow country FR\n}\n";
    let dir = folder("fmt-broken", &[("a.tgp", broken)]);
    let out = tollgate(&dir, &["fmt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not formatted (syntax errors)"));
    assert_eq!(
        std::fs::read_to_string(dir.join("a.tgp")).expect("read"),
        broken
    );
}

#[test]
fn examples_are_formatted() {
    let out = tollgate(&examples(), &["fmt", "--check", "."]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn compile_writes_nothing_when_any_file_has_an_error() {
    let dir = folder(
        "compile-err",
        &[
            ("good.tgp", "tenant good\nhome GB\n"),
            ("bad.tgp", "tenant bad\nhome ZZ\n"),
        ],
    );
    let out = tollgate(&dir, &["compile", "-o", "out"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.join("out").exists());
}

#[test]
fn compile_is_deterministic_and_traceable() {
    let a = tollgate(
        &examples(),
        &["compile", ".", "--fleet", "edge", "-n", "tenants"],
    );
    let b = tollgate(
        &examples(),
        &["compile", ".", "--fleet", "edge", "-n", "tenants"],
    );
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    let yaml = text(&a.stdout);
    assert_eq!(
        yaml.matches("kind: TollPolicy").count(),
        3,
        "one resource per tenant, none for bases"
    );
    assert!(yaml.contains("namespace: tenants"));
    assert!(yaml.contains("file: tenants/acme.tgp"));
    assert!(yaml.contains("file: base/standard.tgp"));
}
