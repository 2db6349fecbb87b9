//! The response rules' tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use proptest::prelude::*;

fn at(s: i64) -> Time {
    Time(Timestamp::from_second(s).unwrap())
}

fn alert(fp: &str, starts: i64) -> AlertReference {
    AlertReference {
        name: "A".into(),
        fingerprint: Some(fp.into()),
        starts_at: Some(Timestamp::from_second(starts).unwrap().to_string()),
    }
}

fn classes(c: &[&str]) -> ResponseAction {
    ResponseAction::BlockClasses {
        classes: c.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// An entry of `rule` set off by alert `fp` (instance started at 100).
fn entry(rule: &str, expires: Option<i64>, fp: &str) -> ActiveResponse {
    entry_of(rule, expires, alert(fp, 100))
}

fn entry_of(rule: &str, expires: Option<i64>, a: AlertReference) -> ActiveResponse {
    ActiveResponse {
        rule: rule.into(),
        action: classes(&["international"]),
        since: at(1000),
        expires: expires.map(at),
        until_acknowledged: expires.is_none(),
        alerts: vec![a.clone()],
        alert: a,
        folded_rules: Vec::new(),
    }
}

#[test]
fn merge_never_loosens() {
    let mut a = vec![];
    assert_eq!(merge(&mut a, entry("r1", Some(2000), "f1")), Merge::Added);
    // the same alert instance again (a re-send): nothing, even with a
    // later expiry (a re-send never extends a hold)
    assert_eq!(
        merge(&mut a, entry("r1", Some(9000), "f1")),
        Merge::Unchanged
    );
    // another alert, shorter: recorded with the entry, nothing loosened
    assert_eq!(merge(&mut a, entry("r1", Some(1500), "f2")), Merge::Joined);
    assert_eq!(agent_expiry(&a[0]), 2000);
    assert_eq!(a[0].alert.fingerprint.as_deref(), Some("f1"));
    assert_eq!(a[0].alerts.len(), 2);
    assert_eq!(a[0].alerts[0].fingerprint.as_deref(), Some("f2"));
    // longer wins
    assert_eq!(
        merge(&mut a, entry("r1", Some(3000), "f3")),
        Merge::Strengthened
    );
    assert_eq!(agent_expiry(&a[0]), 3000);
    assert_eq!(a[0].alert.fingerprint.as_deref(), Some("f3"));
    // until acknowledged wins and stays
    assert_eq!(merge(&mut a, entry("r1", None, "f4")), Merge::Strengthened);
    assert!(a[0].until_acknowledged && a[0].expires.is_none());
    assert_eq!(
        merge(&mut a, entry("r1", Some(99_999), "f5")),
        Merge::Joined
    );
    assert!(a[0].until_acknowledged);
    assert_eq!(a.len(), 1);
    // the same fingerprint fired anew (a new startsAt) is a new instance
    assert_eq!(
        merge(&mut a, entry_of("r1", None, alert("f1", 500))),
        Merge::Joined
    );
    assert_eq!(
        merge(&mut a, entry_of("r1", None, alert("f1", 500))),
        Merge::Unchanged
    );
    // at most MAX_RESPONSE_ALERTS instances, newest first
    for i in 0..20 {
        merge(&mut a, entry("r1", None, &format!("g{i}")));
    }
    assert_eq!(a[0].alerts.len(), MAX_RESPONSE_ALERTS);
    assert_eq!(a[0].alerts[0].fingerprint.as_deref(), Some("g19"));
}

#[test]
fn a_fired_anew_alert_extends_a_hold() {
    let mut a = vec![entry_of("r1", Some(2000), alert("f1", 100))];
    // the same instance re-sent later: no extension
    assert_eq!(
        merge(&mut a, entry_of("r1", Some(5000), alert("f1", 100))),
        Merge::Unchanged
    );
    assert_eq!(agent_expiry(&a[0]), 2000);
    // resolved and fired again: a new instance acts
    assert_eq!(
        merge(&mut a, entry_of("r1", Some(5000), alert("f1", 1900))),
        Merge::Strengthened
    );
    assert_eq!(agent_expiry(&a[0]), 5000);
}

#[test]
fn a_changed_declaration_of_a_rule_only_widens() {
    // the rule blocked the tenant until 5000; a later revision declares
    // it as a class block held longer: both hold (the tenant until 9000)
    let mut t = entry("r", Some(5000), "f1");
    t.action = ResponseAction::BlockTenant;
    let mut a = vec![t];
    assert_eq!(
        merge(&mut a, entry("r", Some(9000), "f2")),
        Merge::Strengthened
    );
    assert_eq!(a[0].action, ResponseAction::BlockTenant);
    assert_eq!(agent_expiry(&a[0]), 9000);
    // classes: the union
    let mut a = vec![entry("r", None, "f1")];
    let mut n = entry("r", Some(10), "f2");
    n.action = classes(&["premium-rate"]);
    assert_eq!(merge(&mut a, n), Merge::Strengthened);
    assert_eq!(a[0].action, classes(&["international", "premium-rate"]));
    assert!(a[0].until_acknowledged);
}

#[test]
fn covers_and_union() {
    let i = classes(&["international"]);
    let ip = classes(&["international", "premium-rate"]);
    assert!(covers(&ip, &i) && !covers(&i, &ip));
    assert!(covers(&ResponseAction::BlockTenant, &ip));
    assert!(!covers(&ip, &ResponseAction::BlockTenant));
    assert!(covers(&i, &ResponseAction::Alert));
    assert_eq!(union(&i, &classes(&["premium-rate"])), ip);
    assert_eq!(union(&ip, &i), ip);
    assert_eq!(
        union(&i, &ResponseAction::BlockTenant),
        ResponseAction::BlockTenant
    );
    assert_eq!(union(&ResponseAction::Alert, &i), i);
    let many: Vec<String> = (0..MAX_ACTION_CLASSES).map(|n| format!("c{n}")).collect();
    let big = ResponseAction::BlockClasses { classes: many };
    assert_eq!(union(&big, &big), big);
    assert_eq!(
        union(&big, &classes(&["one-more"])),
        ResponseAction::BlockTenant
    );
}

/// A full list: the entry of every rule `x0..x63`, international
/// blocked until 5000 except x7 (premium-rate, until acknowledged) and
/// x9 (the tenant, until 3000).
fn full() -> Vec<ActiveResponse> {
    let mut a: Vec<ActiveResponse> = (0..MAX_ACTIVE)
        .map(|i| entry(&format!("x{i}"), Some(5000), &format!("fx{i}")))
        .collect();
    a[7].action = classes(&["premium-rate"]);
    a[7].expires = None;
    a[7].until_acknowledged = true;
    a[9].action = ResponseAction::BlockTenant;
    a[9].expires = Some(at(3000));
    a
}

#[test]
fn a_full_list_folds_and_never_drops() {
    // the same action, a hold within: into the first such entry, the
    // name recorded, nothing else changes
    let mut a = full();
    let before = a.clone();
    let m = merge(&mut a, entry("new", Some(4000), "fn"));
    assert_eq!(
        m,
        Merge::Folded {
            into: "x0".into(),
            named: true
        }
    );
    assert_eq!(a.len(), MAX_ACTIVE);
    assert_eq!(a[0].folded_rules, vec!["new".to_string()]);
    assert_eq!(agent_expiry(&a[0]), 5000);
    assert_eq!(desired_blocks("t", &a, 0), desired_blocks("t", &before, 0));
    // until acknowledged, premium-rate: x7 covers it exactly
    let mut a = full();
    let mut n = entry("p", None, "fp");
    n.action = classes(&["premium-rate"]);
    assert!(matches!(merge(&mut a, n), Merge::Folded { into, .. } if into == "x7"));
    // a longer hold of international: into the first entry of the same
    // action, held longer
    let mut a = full();
    let m = merge(&mut a, entry("long", Some(8000), "fl"));
    assert!(
        matches!(m, Merge::Folded { ref into, .. } if into == "x0"),
        "{m:?}"
    );
    assert_eq!(agent_expiry(&a[0]), 8000);
    assert_eq!(a[0].alert.fingerprint.as_deref(), Some("fl"));
    // a class nobody blocks: added to the least changed entry
    let mut a = full();
    let mut n = entry("mobile", Some(6000), "fm");
    n.action = classes(&["mobile"]);
    let m = merge(&mut a, n);
    assert!(
        matches!(m, Merge::Folded { ref into, .. } if into == "x7"),
        "{m:?}"
    );
    assert_eq!(a[7].action, classes(&["premium-rate", "mobile"]));
    assert!(a[7].until_acknowledged);
    // the rule again: found in foldedRules, an instance joins
    assert_eq!(
        merge(&mut a, {
            let mut n = entry("mobile", Some(6000), "fm2");
            n.action = classes(&["mobile"]);
            n
        }),
        Merge::Joined
    );
    // the tenant: into the tenant block
    let mut a = full();
    let mut n = entry("all", None, "ft");
    n.action = ResponseAction::BlockTenant;
    let m = merge(&mut a, n);
    assert!(
        matches!(m, Merge::Folded { ref into, .. } if into == "x9"),
        "{m:?}"
    );
    assert!(a[9].until_acknowledged);
    // a full foldedRules: the next host with room
    let mut a = full();
    for i in 0..MAX_FOLDED_RULES + 1 {
        merge(
            &mut a,
            entry(&format!("f{i}"), Some(4000), &format!("ff{i}")),
        );
    }
    assert_eq!(a[0].folded_rules.len(), MAX_FOLDED_RULES);
    assert_eq!(a[1].folded_rules, vec![format!("f{MAX_FOLDED_RULES}")]);
    // no room anywhere: the blocks still go in, the name does not
    let mut a = full();
    for e in &mut a {
        e.folded_rules = (0..MAX_FOLDED_RULES)
            .map(|i| format!("{}-{i}", e.rule))
            .collect();
    }
    let mut n = entry("late", None, "fl");
    n.action = classes(&["late"]);
    let m = merge(&mut a, n);
    assert_eq!(
        m,
        Merge::Folded {
            into: "x7".into(),
            named: false
        }
    );
    assert_eq!(a[7].action, classes(&["premium-rate", "late"]));
    assert_eq!(desired_blocks("t", &a, 0).get("t::late"), Some(&0));
}

fn arb_entry() -> impl Strategy<Value = ActiveResponse> {
    (
        0usize..80,
        prop::option::of(1000i64..9000),
        0usize..6,
        prop::collection::vec(0usize..5, 1..4),
        0u8..6,
        0i64..3,
    )
        .prop_map(|(rule, exp, kind, cls, fp, starts)| {
            let mut e = entry_of(
                &format!("r{rule}"),
                exp,
                alert(&format!("f{fp}"), 100 + starts),
            );
            e.action = if kind == 0 {
                ResponseAction::BlockTenant
            } else {
                let mut c: Vec<String> = cls.iter().map(|n| format!("c{n}")).collect();
                c.dedup();
                ResponseAction::BlockClasses { classes: c }
            };
            e
        })
}

proptest! {
    /// Whatever is merged, in whatever order, into however full a
    /// list: no key in force before is weaker after; the keys of a
    /// response set off by an alert instance new to its rule hold at
    /// least as long as it declares (a re-sent instance never extends
    /// a hold); the list stays within the CRD's limits.
    #[test]
    fn merge_never_loosens_and_never_drops(
        seq in prop::collection::vec(arb_entry(), 1..200),
    ) {
        let mut a: Vec<ActiveResponse> = Vec::new();
        let mut seen: Vec<(String, AlertReference)> = Vec::new();
        for n in seq {
            let before = desired_blocks("t", &a, 0);
            let key = (n.rule.clone(), n.alert.clone());
            let want = if seen.contains(&key) {
                BTreeMap::new()
            } else {
                seen.push(key);
                desired_blocks("t", std::slice::from_ref(&n), 0)
            };
            merge(&mut a, n);
            let after = desired_blocks("t", &a, 0);
            // the tenant block covers every class key
            let held = |k: &str| match (after.get(k), after.get("t")) {
                (Some(a), Some(b)) => Some(stricter(*a, *b)),
                (a, b) => a.or(b).copied(),
            };
            for (k, e) in before.iter().chain(want.iter()) {
                let h = held(k);
                prop_assert!(satisfied(h, *e), "{k}: {e} -> {h:?}");
            }
            prop_assert!(a.len() <= MAX_ACTIVE);
            for r in &a {
                prop_assert!(r.alerts.len() <= MAX_RESPONSE_ALERTS);
                prop_assert!(r.folded_rules.len() <= MAX_FOLDED_RULES);
                if let ResponseAction::BlockClasses { classes } = &r.action {
                    prop_assert!(classes.len() <= MAX_ACTION_CLASSES);
                }
            }
        }
    }
}

#[test]
fn keys_and_desired_take_the_stricter() {
    let mut t = entry("t", Some(5000), "f");
    t.action = ResponseAction::BlockTenant;
    let a = vec![
        entry("weak", Some(2000), "f1"),
        entry("strong", Some(4000), "f2"),
        t,
    ];
    let d = desired_blocks("acme", &a, 1500);
    assert_eq!(d.get("acme::international"), Some(&4000));
    assert_eq!(d.get("acme"), Some(&5000));
    // after the weak one's end the strong one still holds
    let d = desired_blocks("acme", &a, 3000);
    assert_eq!(d.get("acme::international"), Some(&4000));
    let mut u = a.clone();
    u.push(entry("ack", None, "f3"));
    assert_eq!(
        desired_blocks("acme", &u, 1500).get("acme::international"),
        Some(&0)
    );
    assert!(block_keys("acme", &ResponseAction::Alert).is_empty());
}

#[test]
fn satisfied_compares_strictness() {
    assert!(!satisfied(None, 100));
    assert!(satisfied(Some(0), 100));
    assert!(satisfied(Some(0), 0));
    assert!(!satisfied(Some(100), 0));
    assert!(satisfied(Some(200), 100));
    assert!(!satisfied(Some(50), 100));
    assert_eq!(stricter(0, 5), 0);
    assert_eq!(stricter(7, 5), 7);
}

#[test]
fn prune_release_and_next_expiry() {
    let mut a = vec![
        entry("a", Some(2000), "f1"),
        entry("b", Some(4000), "f2"),
        entry("c", None, "f3"),
    ];
    assert_eq!(next_expiry(&a), Some(2000));
    let gone = prune(&mut a, 2000);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].rule, "a");
    assert_eq!(next_expiry(&a), Some(4000));
    let r = release(&mut a, "c, nope");
    assert_eq!(r.removed.len(), 1);
    assert!(r.unfolded.is_empty());
    assert_eq!(r.acknowledged, vec![("c".to_string(), alert("f3", 100))]);
    assert_eq!(a.len(), 1);
    let mut b = vec![entry("a", None, "f"), entry("b", None, "g")];
    let r = release(&mut b, "all");
    assert_eq!(r.removed.len(), 2);
    assert_eq!(r.acknowledged.len(), 2);
    assert!(b.is_empty());
    assert_eq!(next_expiry(&b), None);
    assert!(release(&mut b, "all").is_empty());
}

#[test]
fn releasing_folded_rules() {
    let mut e = entry("host", None, "f1");
    e.folded_rules = vec!["x".into(), "y".into()];
    e.alerts.push(alert("f2", 100));
    // a folded rule: its name goes, the blocks stay with the others
    let mut a = vec![e.clone()];
    let r = release(&mut a, "x");
    assert!(r.removed.is_empty());
    assert_eq!(r.unfolded, vec![("x".to_string(), "host".to_string())]);
    assert_eq!(a[0].folded_rules, vec!["y".to_string()]);
    // every instance of the entry is acknowledged (which set x off is
    // not known; acknowledging the others changes nothing while the
    // entry stays)
    assert_eq!(r.acknowledged.len(), 2);
    // the entry's own rule: the next folded one takes its place
    let r = release(&mut a, "host");
    assert_eq!(r.unfolded, vec![("host".to_string(), "y".to_string())]);
    assert_eq!(a[0].rule, "y");
    assert!(a[0].folded_rules.is_empty());
    // the last rule: gone
    let r = release(&mut a, "y");
    assert_eq!(r.removed.len(), 1);
    assert!(a.is_empty());
    // every name at once
    let mut a = vec![e];
    let r = release(&mut a, "y,host,x");
    assert_eq!(r.removed.len(), 1);
    assert!(r.unfolded.is_empty());
}

#[test]
fn acknowledgements_name_instances() {
    let mut acks = Vec::new();
    let t = Timestamp::from_second(5000).unwrap();
    acknowledge(
        &mut acks,
        "r1",
        [alert("f1", 100), alert("f2", 100)],
        AcknowledgedReason::Released,
        t,
    );
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0].alert.fingerprint.as_deref(), Some("f2"));
    // the same instance, a later acknowledgement: one entry, newest
    acknowledge(
        &mut acks,
        "r2",
        [alert("f1", 100)],
        AcknowledgedReason::HoldEnded,
        t,
    );
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0].rule, "r2");
    assert_eq!(acks[0].reason, AcknowledgedReason::HoldEnded);
    // an instance without startsAt or fingerprint is never recorded
    let mut no_start = alert("f3", 100);
    no_start.starts_at = None;
    let mut no_fp = alert("f4", 100);
    no_fp.fingerprint = None;
    acknowledge(
        &mut acks,
        "r",
        [no_start.clone(), no_fp],
        AcknowledgedReason::Released,
        t,
    );
    assert_eq!(acks.len(), 2);
    // matching: the same fingerprint and startsAt only
    assert!(acknowledged(&acks, &alert("f1", 100)).is_some());
    assert!(acknowledged(&acks, &alert("f1", 101)).is_none());
    assert!(acknowledged(&acks, &alert("f9", 100)).is_none());
    assert!(acknowledged(&acks, &no_start).is_none());
    // bounded, newest kept
    for i in 0..MAX_ACKNOWLEDGED_ALERTS + 10 {
        acknowledge(
            &mut acks,
            "r",
            [alert(&format!("g{i}"), 100)],
            AcknowledgedReason::Released,
            t,
        );
    }
    assert_eq!(acks.len(), MAX_ACKNOWLEDGED_ALERTS);
    let newest = format!("g{}", MAX_ACKNOWLEDGED_ALERTS + 9);
    assert_eq!(acks[0].alert.fingerprint.as_deref(), Some(newest.as_str()));
    assert!(acknowledged(&acks, &alert("f1", 100)).is_none());
    let reason = ack_reason(&acks[0]);
    assert!(
        reason.contains(&newest) && reason.contains("released"),
        "{reason}"
    );
}

#[test]
fn instants_are_compared_normalized() {
    assert_eq!(
        normalize_instant("2026-01-01T01:00:00.5+01:00"),
        normalize_instant("2026-01-01T00:00:00.500000000Z")
    );
    assert_eq!(
        normalize_instant("2026-01-01T00:00:00.123456789Z").as_deref(),
        Some("2026-01-01T00:00:00.123456789Z")
    );
    assert_eq!(normalize_instant(""), None);
    assert_eq!(normalize_instant("yesterday"), None);
    let r = reference(&AlertRef {
        name: String::new(),
        fingerprint: "x".repeat(100),
        starts_at: "2026-01-01T02:00:00+02:00".into(),
        summary: None,
    });
    assert_eq!(r.name, "unnamed");
    assert_eq!(r.fingerprint.as_ref().map(String::len), Some(64));
    assert_eq!(r.starts_at.as_deref(), Some("2026-01-01T00:00:00Z"));
}

#[test]
fn entries_from_declared_responses() {
    use tollgate_ir::{AlertLevel, LimitMetric, Response, ResponseTrigger};
    let alert = AlertRef {
        name: "TollgateConcurrentCritical".into(),
        fingerprint: "abc".into(),
        starts_at: "2026-11-25T10:00:00.123Z".into(),
        summary: None,
    };
    let mut r = Response {
        trigger: ResponseTrigger::Breach {
            metric: LimitMetric::Concurrent,
            class: Some("international".into()),
            level: AlertLevel::Critical,
        },
        action: classes(&["international"]),
        hold_seconds: Some(600),
        until_acknowledged: false,
        rule: "respond:1".into(),
    };
    let now = Timestamp::from_second(1_000_000).unwrap();
    let e = entry_for(&r, &alert, now);
    assert_eq!(agent_expiry(&e), 1_000_600);
    assert!(!e.until_acknowledged);
    assert_eq!(e.alert.fingerprint.as_deref(), Some("abc"));
    assert_eq!(
        e.alert.starts_at.as_deref(),
        Some("2026-11-25T10:00:00.123Z")
    );
    assert_eq!(e.alerts, vec![e.alert.clone()]);
    r.hold_seconds = None;
    r.until_acknowledged = true;
    let e = entry_for(&r, &alert, now);
    assert!(e.until_acknowledged && e.expires.is_none());
    assert_eq!(agent_expiry(&e), 0);
}

#[test]
fn record_pushes_the_new_keys_at_the_strictness_in_force() {
    let mut a = vec![entry("strong", None, "f1")];
    // a weaker response for the same key: recorded, pushed as held
    let weak = entry("weak", Some(2000), "f2");
    let r = record(&mut a, "t", std::slice::from_ref(&weak), 1000);
    assert_eq!(r.changed, 1);
    assert_eq!(r.notes, vec!["weak active".to_string()]);
    assert_eq!(r.blocks.get("t::international"), Some(&0));
    // the same instance again: nothing changes, still pushed (the fast path
    // re-asserts what is in force)
    let r = record(&mut a, "t", &[weak], 1000);
    assert_eq!(r.changed, 0);
    assert!(r.notes.is_empty());
    assert_eq!(r.blocks.len(), 1);
    // a fold names the host
    let mut a = full();
    let r = record(&mut a, "t", &[entry("new", Some(4000), "fn")], 0);
    assert_eq!(r.folded, vec![("new".into(), "x0".into(), true)]);
    assert!(fold_note("new", "x0", true).contains("folded into x0"));
}

#[test]
fn upkeep_expires_releases_and_lifts() {
    let mut t = entry("tenant", None, "f3");
    t.action = ResponseAction::BlockTenant;
    let active = vec![
        entry("old", Some(1500), "f1"),
        entry("held", Some(5000), "f2"),
        t,
    ];
    // no annotation: only the expired one goes
    let u = upkeep(&active, "acme", None, 2000);
    assert_eq!(u.expired.len(), 1);
    assert!(u.lift.is_empty() && u.released.is_empty());
    let mut acks = Vec::new();
    let stamp = Timestamp::from_second(2000).unwrap();
    let (kept, changed) = u.settle(&mut acks, true, stamp);
    assert!(changed);
    assert_eq!(kept.len(), 2);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].reason, AcknowledgedReason::HoldEnded);
    // nothing to do
    assert!(upkeep(&kept, "acme", None, 2000).is_noop());
    // release the tenant block: its key is lifted, the class key stays
    let u = upkeep(&kept, "acme", Some("tenant"), 2000);
    assert_eq!(u.lift, vec!["acme".to_string()]);
    assert!(u.reset.is_empty());
    assert_eq!(released_rules(&u.released), vec!["tenant".to_string()]);
    // lifting failed: the entries stay, nothing acknowledged as released
    let mut acks = Vec::new();
    let (still, changed) = u.settle(&mut acks, false, stamp);
    assert!(!changed);
    assert_eq!(still.len(), 2);
    assert!(acks.is_empty());
    // lifted: gone and acknowledged
    let (after, changed) = u.settle(&mut acks, true, stamp);
    assert!(changed);
    assert_eq!(after.len(), 1);
    assert_eq!(acks[0].reason, AcknowledgedReason::Released);
    // releasing the longer of two holds on one key re-sets the shorter
    let both = vec![entry("a", Some(3000), "g1"), entry("b", Some(9000), "g2")];
    let u = upkeep(&both, "acme", Some("b"), 2000);
    assert!(u.lift.is_empty());
    assert_eq!(u.reset.get("acme::international"), Some(&3000));
}
