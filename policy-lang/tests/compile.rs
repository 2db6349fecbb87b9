//! The example policies compile to the IR we expect: imports and overrides,
//! late-bound zones, shared calling codes, defaults, source map, determinism.

use std::path::Path;
use tollgate_ir::{CompiledPolicy, GeoMode, LimitMetric, Verdict, WindowWhen};
use tollgate_policy::check;
use tollgate_policy::load::{MemoryFs, Workspace};

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

fn compile(tenant: &str) -> CompiledPolicy {
    let root = examples();
    let mut ws = Workspace::on_disk(&root);
    let c = check::check(&mut ws, &root.join(format!("tenants/{tenant}.tgp"))).expect("readable");
    assert!(!c.has_errors(), "{tenant}: {:?}", c.diagnostics);
    c.policy.expect("a tenant without errors compiles")
}

fn compile_text(files: &[(&str, &str)]) -> check::Compilation {
    let mut fs = MemoryFs::new();
    for (name, text) in files {
        fs = fs.with(name, *text);
    }
    let mut ws = Workspace::new(fs, "");
    check::check(&mut ws, Path::new(files[0].0)).expect("in memory")
}

/// The decisive entry for a number, ignoring windows (the unconditional entry
/// of the longest matching prefix).
fn decide<'a>(p: &'a CompiledPolicy, number: &str) -> (&'a str, Verdict) {
    let e = p
        .destinations
        .iter()
        .filter(|e| number.starts_with(&e.prefix) && e.window.is_none())
        .max_by_key(|e| e.prefix.len())
        .expect("the root entry matches everything");
    (e.rule.as_str(), e.action)
}

#[test]
fn acme_allows_canada_but_not_the_caribbean() {
    let p = compile("acme");
    assert_eq!(p.home_country, "US");
    assert_eq!(decide(&p, "12125550100"), ("dst:national", Verdict::Allow)); // New York
    assert_eq!(
        decide(&p, "14165550100"),
        ("dst:country:CA", Verdict::Allow)
    ); // Toronto
    assert_eq!(
        decide(&p, "18765550100"),
        ("dst:international", Verdict::Deny)
    ); // Jamaica
    assert_eq!(
        decide(&p, "18095550100"),
        ("dst:international", Verdict::Deny)
    ); // Dominican Republic
    assert_eq!(
        decide(&p, "19005550100"),
        ("dst:class:premium-rate", Verdict::Deny)
    );
    assert_eq!(
        decide(&p, "12129761234"),
        ("dst:prefix:1212976", Verdict::Deny)
    );
    assert_eq!(
        decide(&p, "18005550100"),
        ("dst:prefix:1800", Verdict::Allow)
    );
    assert_eq!(
        decide(&p, "33612345678"),
        ("dst:international", Verdict::Deny)
    );
}

#[test]
fn acme_windows_bind_late_to_the_tenant_zone() {
    let p = compile("acme");
    let office = p
        .windows
        .iter()
        .find(|w| w.name == "office")
        .expect("office from the base");
    assert_eq!(office.zone, "America/New_York");
    let night = p
        .windows
        .iter()
        .find(|w| w.name == "night-shift")
        .expect("night-shift");
    assert_eq!(
        (night.spans[0].start_minute, night.spans[0].end_minute),
        (22 * 60, 6 * 60)
    );
    let gb: Vec<_> = p
        .destinations
        .iter()
        .filter(|e| e.rule == "dst:country:GB@outside:night-shift")
        .collect();
    assert!(!gb.is_empty());
    assert!(gb.iter().all(|e| {
        e.action == Verdict::Allow
            && e.window
                .as_ref()
                .is_some_and(|w| w.name == "night-shift" && w.when == WindowWhen::Outside)
    }));
}

#[test]
fn tenant_overrides_base_and_the_source_map_says_where_each_rule_is() {
    let p = compile("acme");
    let limit = |m: LimitMetric, class: Option<&str>| {
        p.limits
            .iter()
            .find(|l| l.metric == m && l.class.as_deref() == class)
            .expect("limit present")
    };
    assert_eq!(limit(LimitMetric::Concurrent, None).critical, Some(60)); // acme overrides 16
    assert_eq!(limit(LimitMetric::Rate, None).critical, Some(40)); // from the base
    assert_eq!(limit(LimitMetric::Duration, None).critical, Some(4 * 3600));
    let src = |id: &str| {
        p.rules
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no source for {id}"))
    };
    assert_eq!(src("limit:concurrent").file, "tenants/acme.tgp");
    assert_eq!(src("limit:rate").file, "base/standard.tgp");
    assert_eq!(
        src("limit:concurrent").text,
        "concurrent: warning 40, critical 60"
    );
    // every rule id used by a table has a source
    for e in &p.destinations {
        src(&e.rule);
    }
    for n in &p.sources.networks {
        src(&n.rule);
    }
}

#[test]
fn globex_gets_crypto_from_the_secure_base_and_keeps_guernsey_international() {
    let p = compile("globex");
    assert!(p.crypto.require_tls && p.crypto.require_srtp && p.crypto.require_client_certificate);
    let geo = p.sources.geo.as_ref().expect("geo policy");
    assert_eq!(geo.mode, GeoMode::AllowOnly);
    assert_eq!(geo.countries, ["DE", "FR", "GB", "IE", "NL"]);
    assert_eq!(decide(&p, "442071234567").0, "dst:national"); // London
    assert_eq!(
        decide(&p, "441481123456"),
        ("dst:international", Verdict::Deny)
    ); // Guernsey
    assert_eq!(
        decide(&p, "447012345678"),
        ("dst:prefix:4470", Verdict::Deny)
    );
    for n in ["112", "911", "999"] {
        assert!(p.emergency_numbers.iter().any(|e| e == n), "{n} missing");
    }
}

#[test]
fn initech_windowed_rule_comes_before_the_unconditional_one() {
    let p = compile("initech");
    let sat: Vec<_> = p
        .destinations
        .iter()
        .filter(|e| e.prefix == "881")
        .collect();
    assert_eq!(sat.len(), 2, "{sat:?}");
    assert_eq!(sat[0].rule, "dst:class:satellite@office");
    assert_eq!(sat[0].action, Verdict::Allow);
    assert_eq!(sat[1].rule, "dst:class:satellite");
    assert_eq!(sat[1].action, Verdict::Deny);
    assert!(
        p.classes
            .iter()
            .any(|c| c.class == "satellite" && c.prefix == "881")
    );
}

#[test]
fn compiling_is_deterministic() {
    for t in ["acme", "globex", "initech"] {
        let a = serde_json::to_string(&compile(t)).expect("serializes");
        let b = serde_json::to_string(&compile(t)).expect("serializes");
        assert_eq!(a, b);
    }
}

#[test]
fn defaults_are_deny_international_allow_national() {
    let c = compile_text(&[("t.tgp", "tenant t\nhome FR\n")]);
    let p = c.policy.expect("compiles");
    assert_eq!(decide(&p, "33123456789"), ("dst:national", Verdict::Allow));
    assert_eq!(
        decide(&p, "4912345678"),
        ("dst:international", Verdict::Deny)
    );
}

#[test]
fn a_later_import_overrides_an_earlier_one_and_the_tenant_overrides_both() {
    let c = compile_text(&[
        (
            "t.tgp",
            "tenant t\nimport \"a.tgp\"\nimport \"b.tgp\"\nhome FR\n\nlimits {\n  rate: critical 9/min\n}\n",
        ),
        (
            "a.tgp",
            "base a\n\nlimits {\n  concurrent: critical 5\n  rate: critical 7/min\n}\n",
        ),
        ("b.tgp", "base b\n\nlimits {\n  concurrent: critical 6\n}\n"),
    ]);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let p = c.policy.expect("compiles");
    let crit = |m| {
        p.limits
            .iter()
            .find(|l| l.metric == m && l.class.is_none())
            .and_then(|l| l.critical)
    };
    assert_eq!(crit(LimitMetric::Concurrent), Some(6));
    assert_eq!(crit(LimitMetric::Rate), Some(9));
}

#[test]
fn a_tenant_rule_replaces_a_base_rule_at_the_same_prefix_without_conflict() {
    let c = compile_text(&[
        (
            "t.tgp",
            "tenant t\nimport \"a.tgp\"\nhome GB\n\ndestinations {\n  allow prefix +33\n}\n",
        ),
        ("a.tgp", "base a\n\ndestinations {\n  deny prefix +33\n}\n"),
    ]);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let p = c.policy.expect("compiles");
    assert_eq!(decide(&p, "33612345678"), ("dst:prefix:33", Verdict::Allow));
}

#[test]
fn errors_in_several_files_are_all_reported() {
    let c = compile_text(&[
        ("t.tgp", "tenant t\nimport \"a.tgp\"\nhome XX\n"),
        ("a.tgp", "base a\n\nsources {\n  allow 10.0.0.300\n}\n"),
    ]);
    let codes: Vec<_> = c.diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert!(codes.contains(&"home::unknown-country"), "{codes:?}");
    assert!(codes.contains(&"sources::bad-address"), "{codes:?}");
    assert!(c.policy.is_none());
}
