//! `diff`: every kind of loosening is reported as loosening, and its reverse
//! as tightening (never as loosening); the `tollgate diff` exit codes.

mod common;

use common::{text, tollgate};
use std::path::{Path, PathBuf};
use tollgate_ir::CompiledPolicy;
use tollgate_policy::check;
use tollgate_policy::diff::{self, Area, Change};
use tollgate_policy::load::{MemoryFs, Workspace};

const BASE: &str = "base standard
window office: mon-fri 08:00-18:00

destinations {
  international: deny
  deny class premium-rate
}

limits {
  concurrent: warning 10, critical 20
}

responses {
  on concurrent critical: block tenant for 1h
}
";

/// Compiles a tenant file (`t.tgp`) that may import `base.tgp` (= [`BASE`]).
fn compile(tenant: &str) -> CompiledPolicy {
    let fs = MemoryFs::new().with("t.tgp", tenant).with("base.tgp", BASE);
    let mut ws = Workspace::new(fs, "");
    let c = check::check(&mut ws, Path::new("t.tgp")).expect("in memory");
    assert!(!c.has_errors(), "{tenant}: {:?}", c.diagnostics);
    c.policy.expect("a tenant compiles")
}

fn tenant_text(body: &str) -> String {
    format!("tenant t\nimport \"base.tgp\"\nhome GB\nzone Europe/London\n\n{body}")
}

fn tenant(body: &str) -> CompiledPolicy {
    compile(&tenant_text(body))
}

fn changes(old: &str, new: &str) -> Vec<Change> {
    diff::diff(&tenant(old), &tenant(new))
}

fn show(cs: &[Change]) -> String {
    cs.iter()
        .map(|c| format!("{:?} {} {}", c.area, c.effect(), c.description))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `old → new` has a loosening change in `area` whose description contains
/// `says`; `new → old` has a tightening one there and nothing that loosens.
/// Returns the loosening changes.
fn loosens_and_back(area: Area, old: &str, new: &str, says: &str) -> Vec<Change> {
    let forward = changes(old, new);
    let found: Vec<Change> = forward
        .iter()
        .filter(|c| c.area == area && c.loosens)
        .cloned()
        .collect();
    assert!(
        found.iter().any(|c| c.description.contains(says)),
        "expected a loosening {area:?} change saying {says:?}:\n{}",
        show(&forward)
    );
    let back = changes(new, old);
    assert!(
        !diff::loosens(&back),
        "the reverse must not loosen:\n{}",
        show(&back)
    );
    assert!(
        back.iter().any(|c| c.area == area && c.tightens),
        "the reverse must tighten {area:?}:\n{}",
        show(&back)
    );
    found
}

// ------------------------------------------------------------ destinations

#[test]
fn same_policy_has_no_changes() {
    let body = "destinations {\n  allow country FR during office\n}\n";
    assert!(changes(body, body).is_empty());
}

#[test]
fn destination_denied_to_allowed_loosens() {
    let found = loosens_and_back(
        Area::Destinations,
        "",
        "destinations {\n  allow country FR\n}\n",
        "now allowed (were denied)",
    );
    assert!(found[0].description.contains("+33"), "{}", show(&found));
    assert_eq!(
        found[0].rules,
        (
            vec!["dst:international".to_string()],
            vec!["dst:country:FR".to_string()]
        )
    );
}

#[test]
fn destination_allowed_in_more_time_loosens() {
    loosens_and_back(
        Area::Destinations,
        "destinations {\n  allow country FR during office\n}\n",
        "destinations {\n  allow country FR\n}\n",
        "calls to +33 (except",
    );
    loosens_and_back(
        Area::Destinations,
        "",
        "destinations {\n  allow country FR during office\n}\n",
        "now allowed only during `office` (were denied)",
    );
}

#[test]
fn deny_prefix_is_tightening_and_named_by_shortest_prefix() {
    let cs = changes("", "destinations {\n  deny prefix +44 20\n}\n");
    assert_eq!(cs.len(), 1, "{}", show(&cs));
    assert_eq!(
        cs[0].description,
        "calls to +44 20 now denied (were allowed) [dst:national → dst:prefix:4420]"
    );
    assert!(cs[0].tightens && !cs[0].loosens);
}

#[test]
fn ten_siblings_changed_alike_merge_into_their_parent() {
    let all: Vec<String> = (0..10).map(|d| format!("+44 20 {d}")).collect();
    let cs = changes(
        "",
        &format!("destinations {{\n  deny prefix {}\n}}\n", all.join(", ")),
    );
    assert_eq!(cs.len(), 1, "{}", show(&cs));
    assert!(
        cs[0].description.starts_with("calls to +44 20 now denied"),
        "{}",
        show(&cs)
    );
    assert_eq!(cs[0].rules.1.len(), 10, "every deciding rule is named");
    // nine of ten: the parent minus the one left out
    let cs = changes(
        "",
        &format!(
            "destinations {{\n  deny prefix {}\n}}\n",
            all[..9].join(", ")
        ),
    );
    assert!(
        cs[0]
            .description
            .starts_with("calls to +44 20 (except +44 209) now denied"),
        "{}",
        show(&cs)
    );
    // three of ten: listed one by one
    let cs = changes(
        "",
        &format!(
            "destinations {{\n  deny prefix {}\n}}\n",
            all[..3].join(", ")
        ),
    );
    assert!(
        cs[0]
            .description
            .starts_with("calls to +44 200, +44 201, +44 202 now denied"),
        "{}",
        show(&cs)
    );
}

#[test]
fn long_prefix_lists_are_capped_with_a_count() {
    let cs = changes("", "destinations {\n  allow class premium-rate\n}\n");
    let long = cs
        .iter()
        .find(|c| c.description.contains(" more now allowed (were denied)"))
        .expect("premium-rate ranges of many countries");
    let (_, rest) = long.description.split_once(" and ").expect("a count");
    let more: usize = rest
        .split_once(' ')
        .and_then(|(n, _)| n.parse().ok())
        .expect("a number");
    assert!(more > diff::MAX_PREFIXES_SHOWN, "{}", long.description);
    assert!(long.description.len() < 400, "{}", long.description);
}

#[test]
fn deny_rule_applying_shorter_loosens() {
    loosens_and_back(
        Area::Destinations,
        "destinations {\n  deny prefix +44 20\n}\n",
        "destinations {\n  deny prefix +44 20 during office\n}\n",
        "calls to +44 20 now allowed only outside `office` (were denied)",
    );
}

#[test]
fn same_decision_under_another_rule_is_neutral() {
    let cs = changes("", "destinations {\n  deny country CN\n}\n");
    assert!(!cs.is_empty());
    assert!(
        cs.iter().all(|c| !c.loosens && !c.tightens),
        "{}",
        show(&cs)
    );
    assert!(cs[0].description.contains("still denied"), "{}", show(&cs));
}

#[test]
fn import_override_of_a_base_deny_loosens() {
    let found = loosens_and_back(
        Area::Destinations,
        "",
        "destinations {\n  allow class premium-rate\n}\n",
        "now allowed (were denied)",
    );
    assert!(
        found
            .iter()
            .any(|c| c.rules.0 == ["dst:class:premium-rate"]
                && c.rules.1 == ["dst:class:premium-rate"]),
        "{}",
        show(&found)
    );
}

// ------------------------------------------------------------ sources

#[test]
fn source_network_newly_allowed_loosens() {
    loosens_and_back(
        Area::Sources,
        "sources {\n  allow 198.51.100.0/24\n}\n",
        "sources {\n  allow 198.51.100.0/24\n  allow 203.0.113.0/24\n}\n",
        "source 203.0.113.0/24 now allowed (was rejected",
    );
    loosens_and_back(
        Area::Sources,
        "sources {\n  allow 198.51.100.0/24\n  deny 198.51.100.66\n}\n",
        "sources {\n  allow 198.51.100.0/24\n}\n",
        "source 198.51.100.66/32 now allowed (was denied)",
    );
}

#[test]
fn source_no_longer_allowed_is_tightening() {
    let cs = changes(
        "sources {\n  allow 198.51.100.0/24\n}\n",
        "sources {\n  deny 198.51.100.0/24\n}\n",
    );
    assert!(
        cs[0].description.contains("no longer allowed") && cs[0].tightens && !cs[0].loosens,
        "{}",
        show(&cs)
    );
}

#[test]
fn geo_block_removed_loosens() {
    let nets = "sources {\n  allow 198.51.100.0/24\n";
    loosens_and_back(
        Area::Sources,
        &format!("{nets}  deny country CN, RU\n}}\n"),
        &format!("{nets}  deny country CN\n}}\n"),
        "sources in RU no longer geo-blocked",
    );
    loosens_and_back(
        Area::Sources,
        &format!("{nets}  deny country CN\n}}\n"),
        &format!("{nets}}}\n"),
        "geo-blocking removed",
    );
    loosens_and_back(
        Area::Sources,
        &format!("{nets}  allow country GB\n}}\n"),
        &format!("{nets}  allow country GB, FR\n}}\n"),
        "sources in FR no longer geo-blocked",
    );
}

#[test]
fn trunk_added_loosens() {
    loosens_and_back(
        Area::Sources,
        "sources {\n  allow 198.51.100.0/24\n  deny country CN\n}\n",
        "sources {\n  allow 198.51.100.0/24\n  trunk carrier-a: 203.0.113.10\n  deny country CN\n}\n",
        "trunk `carrier-a` added",
    );
}

// ------------------------------------------------------------ windows

#[test]
fn window_longer_for_an_allow_rule_loosens() {
    let found = loosens_and_back(
        Area::Windows,
        "window late: mon-fri 18:00-20:00\ndestinations {\n  allow country FR during late\n}\n",
        "window late: mon-fri 18:00-22:00\ndestinations {\n  allow country FR during late\n}\n",
        "window `late` extended by 10 h",
    );
    assert!(
        found[0]
            .description
            .contains("now also open mon-fri 20:00-22:00"),
        "{}",
        show(&found)
    );
    // the numbers it affects are named under destinations
    let cs = changes(
        "window late: mon-fri 18:00-20:00\ndestinations {\n  allow prefix +33 1 during late\n}\n",
        "window late: mon-fri 18:00-22:00\ndestinations {\n  allow prefix +33 1 during late\n}\n",
    );
    assert!(
        cs.iter().any(|c| c.area == Area::Destinations
            && c.loosens
            && c.description.starts_with(
                "calls to +33 1 now allowed 10 h more per week (still allowed only during `late`"
            )),
        "{}",
        show(&cs)
    );
}

#[test]
fn window_shorter_for_a_deny_rule_loosens() {
    loosens_and_back(
        Area::Windows,
        "window late: mon-sun 18:00-06:00\ndestinations {\n  deny prefix +44 20 during late\n}\n",
        "window late: mon-fri 18:00-06:00\ndestinations {\n  deny prefix +44 20 during late\n}\n",
        "no longer open sun,mon 00:00-06:00, sat,sun 18:00-24:00",
    );
}

#[test]
fn unused_window_change_is_neutral() {
    let cs = changes(
        "window late: mon-fri 18:00-20:00\n",
        "window late: mon-fri 18:00-22:00\n",
    );
    assert_eq!(cs.len(), 1, "{}", show(&cs));
    assert!(!cs[0].loosens && !cs[0].tightens, "{}", show(&cs));
}

// ------------------------------------------------------------ limits

#[test]
fn limit_raised_loosens() {
    loosens_and_back(
        Area::Limits,
        "",
        "limits {\n  concurrent: warning 10, critical 40\n}\n",
        "concurrent limit: critical 20 → 40",
    );
}

#[test]
fn limit_removed_loosens() {
    loosens_and_back(
        Area::Limits,
        "limits {\n  rate international: warning 5/min, critical 10/min\n}\n",
        "",
        "rate limit for `international` removed",
    );
    loosens_and_back(
        Area::Limits,
        "limits {\n  duration: 1h\n}\n",
        "limits {\n  duration: 2h\n}\n",
        "duration limit 1h → 2h",
    );
}

// ------------------------------------------------------------ responses

#[test]
fn response_weakened_loosens() {
    loosens_and_back(
        Area::Responses,
        "",
        "responses {\n  on concurrent critical: alert\n}\n",
        "on concurrent critical: block tenant for 1h → alert (weaker)",
    );
    loosens_and_back(
        Area::Responses,
        "",
        "responses {\n  on concurrent critical: block tenant for 10m\n}\n",
        "block tenant for 1h → block tenant for 10m (weaker)",
    );
    loosens_and_back(
        Area::Responses,
        "responses {\n  on concurrent critical: block tenant until acknowledged\n}\n",
        "",
        "block tenant until acknowledged → block tenant for 1h (weaker)",
    );
    loosens_and_back(
        Area::Responses,
        "responses {\n  on concurrent critical: block tenant for 1h\n}\n",
        "responses {\n  on concurrent critical: block class international for 1h\n}\n",
        "(weaker)",
    );
}

#[test]
fn response_removed_loosens() {
    loosens_and_back(
        Area::Responses,
        "responses {\n  on anomaly traffic: alert\n}\n",
        "",
        "on anomaly traffic: alert removed",
    );
}

// ------------------------------------------------------------ crypto

#[test]
fn crypto_requirement_dropped_loosens() {
    loosens_and_back(
        Area::Crypto,
        "crypto {\n  tls: required\n}\n",
        "",
        "TLS no longer required",
    );
    loosens_and_back(
        Area::Crypto,
        "crypto {\n  tls: required\n  srtp: required\n}\n",
        "crypto {\n  tls: required\n}\n",
        "SRTP no longer required",
    );
}

// ------------------------------------------------------------ home

#[test]
fn home_change_is_reported_with_its_emergency_numbers() {
    let old = compile("tenant t\nhome GB\n");
    let new = compile("tenant t\nhome DE\n");
    let cs = diff::diff(&old, &new);
    assert!(
        cs.iter()
            .any(|c| c.area == Area::Home && c.description.starts_with("home country GB → DE")),
        "{}",
        show(&cs)
    );
    assert!(
        cs.iter().any(|c| c.area == Area::Home
            && c.loosens
            && c.description.starts_with("emergency numbers 110")),
        "{}",
        show(&cs)
    );
    // GB numbers stop being national: denied now; DE numbers allowed now
    assert!(
        cs.iter()
            .any(|c| c.area == Area::Destinations && c.loosens && c.description.contains("+49")),
        "{}",
        show(&cs)
    );
}

// ------------------------------------------------------------ CLI

fn cli_folder(name: &str) -> PathBuf {
    let files = [
        ("old/base.tgp", BASE.to_string()),
        ("new/base.tgp", BASE.to_string()),
        ("old/t.tgp", tenant_text("crypto {\n  tls: required\n}\n")),
        ("new/t.tgp", tenant_text("")),
        ("new/u.tgp", "tenant u\nhome FR\n".to_string()),
        // a scenario file in a side's folder is not a policy: skipped
        (
            "new/tests/t.test.yaml",
            "tenant: t\ncalls: []\n".to_string(),
        ),
        (
            "bad/t.tgp",
            tenant_text("destinations {\n  allow country XX\n}\n"),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, b)| (*p, b.as_str())).collect();
    common::folder(name, &files)
}

#[test]
fn cli_exit_codes() {
    let dir = cli_folder("codes");
    // loosening: 1
    let out = tollgate(&dir, &["diff", "old/t.tgp", "new/t.tgp"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  crypto:\n    loosens           TLS no longer required"),
        "{stdout}"
    );
    // tightening only: 0
    let out = tollgate(&dir, &["diff", "new/t.tgp", "old/t.tgp"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("tightens"),
        "{}",
        text(&out.stdout)
    );
    // nothing: 0
    let out = tollgate(&dir, &["diff", "old/t.tgp", "old/t.tgp"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("no changes"),
        "{}",
        text(&out.stdout)
    );
    // a policy with errors: 2, with its diagnostics
    let out = tollgate(&dir, &["diff", "old/t.tgp", "bad/t.tgp"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("destinations::unknown-country"), "{stderr}");
    assert!(stderr.contains("NEW (`bad/t.tgp`) has errors"), "{stderr}");
    // unreadable: 2
    let out = tollgate(&dir, &["diff", "old/t.tgp", "missing.tgp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read `missing.tgp`"));
    // a base alone is not a tenant policy: 2
    let out = tollgate(&dir, &["diff", "old/base.tgp", "new/base.tgp"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cli_folders_pair_tenants_and_report_added_ones() {
    let dir = cli_folder("folders");
    let out = tollgate(&dir, &["diff", "--format", "json", "old", "new"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["loosens"], true);
    assert_eq!(v["tenants"][0]["tenant"], "t");
    assert_eq!(v["tenants"][0]["changes"][0]["area"], "crypto");
    assert_eq!(v["tenants"][0]["changes"][0]["effect"], "loosens");
    assert_eq!(v["tenants"][1]["tenant"], "u");
    assert_eq!(v["tenants"][1]["status"], "added");
    assert_eq!(v["tenants"][1]["loosens"], true);
    // removed tenants tighten
    let out = tollgate(&dir, &["diff", "--format", "json", "new", "old"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["tenants"][1]["status"], "removed");
    assert_eq!(v["tenants"][1]["loosens"], false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn cli_reads_compiled_yaml() {
    let dir = cli_folder("yaml");
    for side in ["old", "new"] {
        let out = tollgate(&dir, &["compile", side, "-o", &format!("{side}-yaml")]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = tollgate(&dir, &["diff", "old-yaml/t.yaml", "new-yaml/t.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("TLS no longer required"));
    // a compiled YAML against its source: nothing changed
    let out = tollgate(&dir, &["diff", "old-yaml/t.yaml", "old/t.tgp"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("tenant t: no changes"));
    // the multi-document stream of `compile` without -o
    let out = tollgate(&dir, &["compile", "new"]);
    std::fs::write(dir.join("stream.yaml"), &out.stdout).expect("write");
    let out = tollgate(&dir, &["diff", "new-yaml", "stream.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = tollgate(&dir, &["diff", "old-yaml", "stream.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}
