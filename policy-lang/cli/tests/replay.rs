//! `tollgate replay` as a user runs it, on the example policies and a small
//! CDR whose counts were worked out by hand (see the comments).

mod common;

use common::{examples, folder_with_examples as folder, text, tollgate};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn cdr() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay/acme.csv")
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the output is JSON")
}

/// Calls per rule, from the JSON report.
fn rules(report: &Value) -> Vec<(String, u64, String)> {
    report["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let at = match (r["file"].as_str(), r["line"].as_u64()) {
                (Some(f), Some(l)) => format!("{f}:{l}"),
                _ => "built in".into(),
            };
            (
                r["rule"].as_str().expect("rule").to_string(),
                r["calls"].as_u64().expect("calls"),
                at,
            )
        })
        .collect()
}

fn rule(name: &str, calls: u64, at: &str) -> (String, u64, String) {
    (name.to_string(), calls, at.to_string())
}

/// The CDR (line numbers as in the file; Wednesday 2026-01-14, 10:00 in New York):
/// - 2, 3: national calls, allowed (`dst:national`); 3 is dialed nationally.
/// - 4-9: six calls to Canada, allowed; 10: the seventh Canadian call within a
///   minute reaches `rate international: critical 6/min` → limit.
/// - 11: Jamaica → the international default denies; 12: +1 900 denied.
/// - 13: from the lobby phone (a denied source); 14: 911 from it → allowed.
/// - 15: tenant globex → skipped; 16: source not an IP → malformed, skipped.
/// - 17: unknown source; 18: out of order (15:00:05 after 15:00:13), national.
/// - 19: a minute later, Canada again: the rate window is empty → allowed.
/// - 20: Mexico during office hours; 21: GB from the carrier trunk outside the
///   night shift; 22: from China → geo-blocked.
#[test]
fn counts_per_outcome_and_rule_are_the_ones_worked_out_by_hand() {
    let cdr = cdr();
    let out = tollgate(
        &examples(),
        &[
            "replay",
            "tenants/acme.tgp",
            "--cdr",
            cdr.to_str().expect("utf-8"),
            "--format",
            "json",
        ],
    );
    let r = json(&out);
    assert_eq!(r["rows"], 21);
    assert_eq!(r["decided"], 19);
    assert_eq!(r["skipped_other_tenant"], 1);
    assert_eq!(r["bad"], 1);
    assert_eq!(r["out_of_order"], 1);
    assert_eq!(r["out_of_order_lines"], serde_json::json!([18]));
    let p = &r["policy"];
    assert_eq!(
        p["outcomes"],
        serde_json::json!({"allow": 13, "deny": 5, "limit": 1})
    );
    assert_eq!(
        rules(p),
        [
            rule("dst:country:CA", 7, "tenants/acme.tgp:13"),
            rule("dst:national", 3, "base/standard.tgp:11"),
            rule("dst:class:premium-rate", 1, "base/standard.tgp:14"),
            rule(
                "dst:country:GB@outside:night-shift",
                1,
                "tenants/acme.tgp:15"
            ),
            rule("dst:country:MX@office", 1, "tenants/acme.tgp:14"),
            rule("dst:emergency", 1, "built in"),
            rule("dst:international", 1, "base/standard.tgp:10"),
            rule("limit:rate:international", 1, "base/standard.tgp:21"),
            rule("src:geo", 1, "tenants/acme.tgp:27"),
            rule("src:net:198.51.100.66/32", 1, "tenants/acme.tgp:25"),
            rule("src:unknown", 1, "built in"),
        ]
    );
    // blocked: 13, 17, 22 to +1 212 55…, 10 to +1 416 55…, 11, 12
    let top: Vec<(String, u64)> = p["top_blocked"]
        .as_array()
        .expect("top")
        .iter()
        .map(|t| {
            (
                t["prefix"].as_str().expect("prefix").to_string(),
                t["calls"].as_u64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        top,
        [
            ("+121255".to_string(), 3),
            ("+141655".into(), 1),
            ("+187655".into(), 1),
            ("+190055".into(), 1)
        ]
    );
    // up at 15:00:13: 2 national + 6 Canadian + 911 + line 18
    assert_eq!(p["peak_concurrent"], 10);
    assert_eq!(p["peak_rate"], 10);
    assert!(r["against"].is_null() && r["changes"].is_null());
}

#[test]
fn human_output_has_the_tables_and_warnings_go_to_stderr() {
    let cdr = cdr();
    let out = tollgate(
        &examples(),
        &[
            "replay",
            "tenants/acme.tgp",
            "--cdr",
            cdr.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("rows: 21 read, 19 decided, 1 of other tenants skipped, 1 malformed skipped, 1 out of order"), "{stdout}");
    assert!(stdout.contains("limit:rate:international"), "{stdout}");
    assert!(stdout.contains("base/standard.tgp:21"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("acme.csv:16: skipped: source `not-an-ip` is not an IP address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 row(s) start earlier than a row before them (lines 18)"),
        "{stderr}"
    );
    // not a terminal: no progress output
    assert!(!stderr.contains("replaying"), "{stderr}");
}

/// The new policy drops Canada and opens Jamaica: lines 4-9 and 19 go
/// allow → deny, line 10 limit → deny (no longer a Canadian call to count),
/// line 11 deny → allow.
#[test]
fn against_reports_the_calls_whose_outcome_changes() {
    let acme = std::fs::read_to_string(examples().join("tenants/acme.tgp")).expect("acme");
    let changed = acme.replace("  allow country CA\n", "").replace(
        "  deny prefix +1 212 976",
        "  allow prefix +1 876\n  deny prefix +1 212 976",
    );
    assert_ne!(acme, changed);
    let dir = folder("against", &[("tenants/acme-new.tgp", &changed)]);
    let cdr = cdr();
    let out = tollgate(
        &dir,
        &[
            "replay",
            "tenants/acme-new.tgp",
            "--against",
            "tenants/acme.tgp",
            "--cdr",
            cdr.to_str().expect("utf-8"),
            "--format",
            "json",
        ],
    );
    let r = json(&out);
    assert_eq!(
        r["policy"]["outcomes"],
        serde_json::json!({"allow": 7, "deny": 12, "limit": 0})
    );
    assert_eq!(
        r["against"]["outcomes"],
        serde_json::json!({"allow": 13, "deny": 5, "limit": 1})
    );
    let c = &r["changes"];
    assert_eq!(c["changed"], 9);
    let transitions: Vec<(String, String, u64)> = c["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| {
            (
                t["from"].as_str().expect("from").into(),
                t["to"].as_str().expect("to").into(),
                t["calls"].as_u64().expect("n"),
            )
        })
        .collect();
    let t = |a: &str, b: &str, n| (a.to_string(), b.to_string(), n);
    assert_eq!(
        transitions,
        [
            t("allow", "allow", 6),
            t("allow", "deny", 7),
            t("deny", "allow", 1),
            t("deny", "deny", 4),
            t("limit", "deny", 1)
        ]
    );
    let lines: Vec<u64> = c["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| s["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, [4, 5, 6, 7, 8, 9, 10, 11, 19]);
    assert_eq!(c["samples"][0]["from_rule"], "dst:country:CA");
    assert_eq!(c["samples"][0]["to_rule"], "dst:international");
    assert_eq!(
        c["newly_blocked"],
        serde_json::json!([{"prefix": "+141655", "calls": 7, "error": 0}])
    );
    assert_eq!(
        c["newly_allowed"],
        serde_json::json!([{"prefix": "+187655", "calls": 1, "error": 0}])
    );

    let human = tollgate(
        &dir,
        &[
            "replay",
            "tenants/acme-new.tgp",
            "--against",
            "tenants/acme.tgp",
            "--cdr",
            cdr.to_str().expect("utf-8"),
        ],
    );
    let stdout = text(&human.stdout);
    assert!(
        stdout.contains("against tenants/acme.tgp: 9 calls change outcome"),
        "{stdout}"
    );
    assert!(stdout.contains("* allow → deny              7"), "{stdout}");
}

#[test]
fn malformed_rows_are_reported_with_their_line_and_skipped() {
    let dir = folder(
        "malformed",
        &[(
            "calls.csv",
            "destination,time,tenant,source,duration,transport,srtp\n\
             +12125550100,2026-01-14T15:00:00Z,acme,198.51.100.20,60,udp,no\n\
             +12125550100,2026-01-14 15:00:00,acme,198.51.100.20,60,,\n\
             +12125550100,2026-01-14T15:00:01Z,acme,198.51.100.20,sixty,,\n\
             \n\
             +12125550100,2026-01-14T15:00:02Z,acme,198.51.100.20,60\n\
             \"+1 212 555,0100\",2026-01-14T15:00:03Z,acme,198.51.100.20,60,tls,true\n\
             +12125550100,2026-01-14T15:00:04Z,acme,198.51.100.20,60,carrier-pigeon,\n\
             \"+12125550100,2026-01-14T15:00:05Z,acme,198.51.100.20,60,,\n\
             +12125550100,2026-01-14T15:00:06-05:00,acme,198.51.100.20,1.5,TCP,1\n",
        )],
    );
    let out = tollgate(
        &dir,
        &[
            "replay",
            "tenants/acme.tgp",
            "--cdr",
            "calls.csv",
            "--format",
            "json",
        ],
    );
    let r = json(&out);
    let bad: Vec<u64> = r["bad_rows"]
        .as_array()
        .expect("bad")
        .iter()
        .map(|b| b["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(bad, [3, 4, 6, 8, 9]);
    assert_eq!(r["bad"], 5);
    assert_eq!(r["rows"], 8);
    // 2, 7 (the quoted destination with a comma is read as `+1 212 555,0100`: not a number) and 10
    assert_eq!(r["decided"], 3);
    assert_eq!(
        r["policy"]["outcomes"],
        serde_json::json!({"allow": 2, "deny": 1, "limit": 0})
    );
    let stderr = text(&out.stderr);
    for needle in [
        "calls.csv:3: skipped: time `2026-01-14 15:00:00` is not RFC 3339 with an offset",
        "calls.csv:4: skipped: duration `sixty` is not a number of seconds",
        "calls.csv:6: skipped: 5 fields, the header has 7",
        "calls.csv:8: skipped: transport `carrier-pigeon` is not udp, tcp or tls",
        "calls.csv:9: skipped: a quoted field does not end",
    ] {
        assert!(stderr.contains(needle), "{needle}\n{stderr}");
    }
}

#[test]
fn too_many_malformed_rows_stop_the_replay_with_exit_2() {
    let mut csv = String::from("time,tenant,source,destination,duration\n");
    for _ in 0..4 {
        csv.push_str("yesterday,acme,198.51.100.20,+12125550100,60\n");
    }
    let dir = folder("toomany", &[("calls.csv", &csv)]);
    let out = tollgate(
        &dir,
        &[
            "replay",
            "tenants/acme.tgp",
            "--cdr",
            "calls.csv",
            "--max-bad-rows",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("more than 3 malformed rows (the last at line 5): stopped"),
        "{}",
        text(&out.stderr)
    );
    let ok = tollgate(
        &dir,
        &[
            "replay",
            "tenants/acme.tgp",
            "--cdr",
            "calls.csv",
            "--max-bad-rows",
            "4",
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
}

#[test]
fn unusable_inputs_exit_2() {
    let dir = folder(
        "unusable",
        &[
            ("noheader.csv", ""),
            ("nocolumn.csv", "time,tenant,source,destination\n"),
            ("broken.tgp", "tenant broken\nhome XX\n"),
        ],
    );
    let cases: [(&[&str], &str); 5] = [
        (
            &["replay", "tenants/acme.tgp", "--cdr", "missing.csv"],
            "cannot read `missing.csv`",
        ),
        (
            &["replay", "tenants/acme.tgp", "--cdr", "noheader.csv"],
            "a header row is required",
        ),
        (
            &["replay", "tenants/acme.tgp", "--cdr", "nocolumn.csv"],
            "no `duration` column",
        ),
        (
            &["replay", "broken.tgp", "--cdr", "nocolumn.csv"],
            "has errors",
        ),
        (
            &[
                "replay",
                "tenants/acme.tgp",
                "--cdr",
                "nocolumn.csv",
                "--against",
                "tenants/globex.tgp",
            ],
            "tenant `globex`, not `acme`",
        ),
    ];
    for (args, needle) in cases {
        let out = tollgate(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[path = "../../benches/synth/mod.rs"]
mod synth;

/// A generated CDR (the benchmark's generator): every row is accounted for,
/// the same seed gives the same file, and the CLI agrees with the library.
#[test]
fn a_generated_cdr_is_accounted_for_row_by_row() {
    let text = synth::policy_text(3, 500);
    let mut a = Vec::new();
    synth::write_cdr(&mut a, 9, 20_000).expect("in memory");
    let mut b = Vec::new();
    synth::write_cdr(&mut b, 9, 20_000).expect("in memory");
    assert_eq!(a, b, "the generator is deterministic");
    assert_eq!(text, synth::policy_text(3, 500));

    let policy = synth::compile(&text);
    let report = tollgate_policy::replay::Replay::new(&policy, None, Default::default())
        .run(&a[..], &mut |_| {})
        .expect("replays");
    assert_eq!(report.rows, 20_000);
    assert_eq!(report.bad, 0);
    assert_eq!(report.out_of_order, 0);
    assert_eq!(report.decided + report.skipped_other_tenant, report.rows);
    let p = &report.policy;
    assert_eq!(p.outcomes.total(), report.decided);
    assert_eq!(p.rules.iter().map(|r| r.calls).sum::<u64>(), report.decided);
    assert!(
        p.outcomes.allow > 0 && p.outcomes.deny > 0,
        "{:?}",
        p.outcomes
    );

    let dir = folder("generated", &[("bench.tgp", &text)]);
    std::fs::write(dir.join("cdr.csv"), &a).expect("write");
    let out = tollgate(
        &dir,
        &[
            "replay",
            "bench.tgp",
            "--cdr",
            "cdr.csv",
            "--format",
            "json",
        ],
    );
    let cli = json(&out);
    assert_eq!(cli["decided"], report.decided);
    assert_eq!(cli["policy"]["outcomes"]["allow"], p.outcomes.allow);
    assert_eq!(cli["policy"]["outcomes"]["limit"], p.outcomes.limit);
    assert_eq!(
        cli["policy"]["top_blocked"][0]["calls"],
        p.top_blocked[0].calls
    );
}
