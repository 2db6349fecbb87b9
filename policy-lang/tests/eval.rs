//! The evaluator on the example policies: every stage decides what the
//! language reference says it does, with the rule that decided.

use std::path::Path;
use tollgate_ir::CompiledPolicy;
use tollgate_policy::check;
use tollgate_policy::dialling::Reading;
use tollgate_policy::eval::{Call, Evaluator, Outcome, Stage, Transport, normalize};
use tollgate_policy::load::Workspace;

fn compile(tenant: &str) -> CompiledPolicy {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let mut ws = Workspace::on_disk(&root);
    let c = check::check(&mut ws, &root.join(format!("tenants/{tenant}.tgp"))).expect("readable");
    c.policy.expect("compiles")
}

fn call(dest: &str, src: &str, at: &str) -> Call {
    Call::new(dest, src.parse().expect("ip"), at.parse().expect("rfc3339"))
}

fn decide(p: &CompiledPolicy, c: &Call) -> (Outcome, Stage, String) {
    let d = Evaluator::new(p).decide(c, true);
    (d.outcome, d.stage, d.rule.into_owned())
}

// Wednesday 2026-01-14 15:00 UTC = 10:00 in New York (EST)
const WED_10_NY: &str = "2026-01-14T15:00:00Z";
// Saturday 2026-01-17 15:00 UTC
const SAT_10_NY: &str = "2026-01-17T15:00:00Z";
// Wednesday 2026-01-14 04:00 UTC = Tuesday 23:00 in New York (night shift)
const TUE_23_NY: &str = "2026-01-14T04:00:00Z";
const OFFICE: &str = "198.51.100.20";

fn r(o: Outcome, s: Stage, rule: &str) -> (Outcome, Stage, String) {
    (o, s, rule.to_string())
}

#[test]
fn acme_destinations() {
    let p = compile("acme");
    assert_eq!(
        decide(&p, &call("+12125550100", OFFICE, WED_10_NY)),
        r(Outcome::Allow, Stage::Destination, "dst:national")
    );
    assert_eq!(
        decide(&p, &call("2125550100", OFFICE, WED_10_NY)),
        r(Outcome::Allow, Stage::Destination, "dst:national")
    );
    assert_eq!(
        decide(&p, &call("+14165550100", OFFICE, WED_10_NY)),
        r(Outcome::Allow, Stage::Destination, "dst:country:CA")
    );
    assert_eq!(
        decide(&p, &call("+18765550100", OFFICE, WED_10_NY)),
        r(Outcome::Deny, Stage::Destination, "dst:international")
    );
    assert_eq!(
        decide(&p, &call("+19005550100", OFFICE, WED_10_NY)),
        r(Outcome::Deny, Stage::Destination, "dst:class:premium-rate")
    );
    assert_eq!(
        decide(&p, &call("212 976 1234", OFFICE, WED_10_NY)),
        r(Outcome::Deny, Stage::Destination, "dst:prefix:1212976")
    );
    assert_eq!(
        decide(&p, &call("01133612345678", OFFICE, WED_10_NY)),
        r(Outcome::Deny, Stage::Destination, "dst:international")
    );
}

#[test]
fn acme_windows_decide_by_local_time() {
    let p = compile("acme");
    let mx = "+525512345678";
    assert_eq!(
        decide(&p, &call(mx, OFFICE, WED_10_NY)),
        r(Outcome::Allow, Stage::Destination, "dst:country:MX@office")
    );
    // outside office hours the windowed rule is skipped and the default decides
    assert_eq!(
        decide(&p, &call(mx, OFFICE, SAT_10_NY)),
        r(Outcome::Deny, Stage::Destination, "dst:international")
    );
    let gb = "+442071234567";
    assert_eq!(
        decide(&p, &call(gb, OFFICE, WED_10_NY)),
        r(
            Outcome::Allow,
            Stage::Destination,
            "dst:country:GB@outside:night-shift"
        )
    );
    assert_eq!(
        decide(&p, &call(gb, OFFICE, TUE_23_NY)),
        r(Outcome::Deny, Stage::Destination, "dst:international")
    );
    let d = Evaluator::new(&p).decide(&call(gb, OFFICE, TUE_23_NY), true);
    assert!(
        d.trace
            .iter()
            .any(|s| s.note.contains("window night-shift is open")),
        "{:?}",
        d.trace
    );
}

#[test]
fn acme_sources_and_emergency() {
    let p = compile("acme");
    assert_eq!(
        decide(&p, &call("+12125550100", "192.0.2.1", WED_10_NY)),
        r(Outcome::Deny, Stage::Source, "src:unknown")
    );
    assert_eq!(
        decide(&p, &call("+12125550100", "198.51.100.66", WED_10_NY)),
        r(Outcome::Deny, Stage::Source, "src:net:198.51.100.66/32")
    );
    // the lobby phone can still reach emergency services
    assert_eq!(
        decide(&p, &call("911", "198.51.100.66", WED_10_NY)),
        r(Outcome::Allow, Stage::Emergency, "dst:emergency")
    );
    assert_eq!(
        decide(&p, &call("+12125550100", "2001:db8:ac::5", WED_10_NY)),
        r(Outcome::Allow, Stage::Destination, "dst:national")
    );
    // geo-blocking applies to networks, not to trunks
    let mut c = call("+12125550100", OFFICE, WED_10_NY);
    c.source_country = Some("CN".into());
    assert_eq!(decide(&p, &c), r(Outcome::Deny, Stage::Geo, "src:geo"));
    let mut c = call("+12125550100", "203.0.113.10", WED_10_NY);
    c.source_country = Some("CN".into());
    assert_eq!(
        decide(&p, &c),
        r(Outcome::Allow, Stage::Destination, "dst:national")
    );
}

#[test]
fn acme_limits_and_responses() {
    let p = compile("acme");
    let mut c = call("+12125550100", OFFICE, WED_10_NY);
    c.concurrent = 59;
    let d = Evaluator::new(&p).decide(&c, false);
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.responses, ["on:concurrent:warning"]); // 60 reaches warning 40
    c.concurrent = 60;
    let d = Evaluator::new(&p).decide(&c, false);
    assert_eq!(
        (d.outcome, d.rule.as_ref()),
        (Outcome::Limit, "limit:concurrent")
    );
    assert!(
        d.responses.contains(&"on:concurrent:critical".into()),
        "{:?}",
        d.responses
    );
    // class limits count the class
    let mut c = call("+14165550100", OFFICE, WED_10_NY);
    c.class_concurrent.insert("international".into(), 10);
    assert_eq!(
        decide(&p, &c),
        r(
            Outcome::Limit,
            Stage::Limit,
            "limit:concurrent:international"
        )
    );
    assert_eq!(
        Evaluator::new(&p).decide(&c, false).max_duration,
        Some(4 * 3600)
    );
    // an active block
    let mut c = call("+14165550100", OFFICE, WED_10_NY);
    c.blocked_classes.insert("international".into());
    assert_eq!(
        decide(&p, &c),
        r(Outcome::Deny, Stage::Block, "block:class:international")
    );
    c.blocked_classes.clear();
    c.blocked_tenant = true;
    assert_eq!(
        decide(&p, &c),
        r(Outcome::Deny, Stage::Block, "block:tenant")
    );
    let mut e = call("911", OFFICE, WED_10_NY);
    e.blocked_tenant = true;
    assert_eq!(
        decide(&p, &e),
        r(Outcome::Allow, Stage::Emergency, "dst:emergency")
    );
}

#[test]
fn globex_crypto_geo_allow_only_and_classes() {
    let p = compile("globex");
    let mut c = call("+442071234567", "192.0.2.10", "2026-01-14T10:00:00Z");
    c.source_country = Some("GB".into());
    assert_eq!(
        decide(&p, &c),
        r(Outcome::Deny, Stage::Crypto, "crypto:tls")
    );
    c.transport = Transport::Tls;
    assert_eq!(
        decide(&p, &c),
        r(Outcome::Deny, Stage::Crypto, "crypto:client-certificate")
    );
    c.client_certificate = true;
    assert_eq!(
        decide(&p, &c),
        r(Outcome::Deny, Stage::Crypto, "crypto:srtp")
    );
    c.srtp = true;
    assert_eq!(
        decide(&p, &c),
        r(Outcome::Allow, Stage::Destination, "dst:national")
    );
    // national form with the trunk prefix
    c.destination = "02071234567".into();
    assert_eq!(
        decide(&p, &c),
        r(Outcome::Allow, Stage::Destination, "dst:national")
    );
    // premium rate inside the home country
    c.destination = "+449012345678".into();
    let d = Evaluator::new(&p).decide(&c, false);
    assert_eq!(d.outcome, Outcome::Deny);
    assert!(d.rule.starts_with("dst:class:premium-rate"), "{}", d.rule);
    // allow-only geo: an unknown or unlisted country is refused
    c.destination = "+442071234567".into();
    c.source_country = Some("US".into());
    assert_eq!(decide(&p, &c), r(Outcome::Deny, Stage::Geo, "src:geo"));
    c.source_country = None;
    assert_eq!(decide(&p, &c), r(Outcome::Deny, Stage::Geo, "src:geo"));
    // Guernsey is international for a GB tenant
    c.source_country = Some("GB".into());
    c.destination = "+441481123456".into();
    assert_eq!(
        decide(&p, &c),
        r(Outcome::Deny, Stage::Destination, "dst:international")
    );
    assert_eq!(
        *Evaluator::new(&p).decide(&c, false).classes,
        ["international"]
    );
}

#[test]
fn unreadable_numbers_are_denied() {
    let p = compile("globex");
    for dest in ["", "abc", "+", "+1234567890123456", "+0123", "1+1"] {
        let d = Evaluator::new(&p).decide(&call(dest, "192.0.2.10", "2026-01-14T10:00:00Z"), false);
        assert_eq!(
            (d.outcome, d.rule.as_ref()),
            (Outcome::Deny, "dst:invalid"),
            "{dest}"
        );
    }
    // numbers, but not ones libphonenumber reads as Tollgate could be sure
    // of: a national number too short, the home trunk prefix after another
    // calling code, 00 then 0
    for dest in ["12345", "+1 0 900 212 3456", "00 0 44 20 7123 4567"] {
        let d = Evaluator::new(&p).decide(&call(dest, "192.0.2.10", "2026-01-14T10:00:00Z"), true);
        assert_eq!(
            (d.outcome, d.stage, d.rule.as_ref()),
            (Outcome::Deny, Stage::Number, "dst:unreadable"),
            "{dest}"
        );
        assert!(
            d.trace
                .iter()
                .any(|s| s.rule == "dst:unreadable" && s.note.contains("cannot be read")),
            "{dest}: {:?}",
            d.trace
        );
    }
}

#[test]
fn normalization_follows_the_home_country() {
    let n = |s: &str| Reading::Number(s.to_string());
    assert_eq!(normalize("+44 20 7123 4567", "GB"), n("442071234567"));
    assert_eq!(normalize("0044 20 7123 4567", "GB"), n("442071234567"));
    assert_eq!(normalize("020 7123 4567", "GB"), n("442071234567"));
    // the trunk prefix written in brackets in an international form
    assert_eq!(normalize("+44 (0)20 7123 4567", "GB"), n("442071234567"));
    assert_eq!(normalize("+44 (0)20 7123 4567", "US"), n("442071234567"));
    assert_eq!(normalize("011 44 20 7123 4567", "US"), n("442071234567"));
    assert_eq!(normalize("(212) 555-0100", "US"), n("12125550100"));
    assert_eq!(normalize("1 212 555 0100", "US"), n("12125550100"));
    assert_eq!(normalize("+1 1 212 555 0100", "DE"), n("12125550100"));
    assert_eq!(normalize("030 1234567", "DE"), n("49301234567"));
    // a stray trunk prefix before a premium-rate number is read as
    // libphonenumber reads it: +44 909..., not +44 0909...
    assert_eq!(normalize("+44 0909 879 0000", "DE"), n("449098790000"));
    assert!(matches!(normalize("00", "GB"), Reading::NotANumber(_)));
    assert!(matches!(normalize("112", "GB"), Reading::Unreadable(_)));
    assert!(matches!(normalize("5550100", "US"), Reading::Unreadable(_)));
}
