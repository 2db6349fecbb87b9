use super::destinations::{Step, allowed, describe_chain, show_prefix};
use super::responses::action_strength;
use super::sources::geo;
use super::time::{days_text, describe_minutes, hours, open_minutes, window_minutes};
use super::*;
use std::cmp::Ordering;
use tollgate_ir::{
    CompiledPolicy, DestinationRule, GeoMode, GeoPolicy, Limit, LimitMetric, ResponseAction,
    SourceNetwork, TimeWindow, Verdict, Weekday, WeeklySpan, WindowCondition, WindowWhen,
};

fn window(days: &[Weekday], start: u16, end: u16) -> TimeWindow {
    TimeWindow {
        name: "w".into(),
        zone: "Europe/Paris".into(),
        spans: vec![WeeklySpan {
            days: days.to_vec(),
            start_minute: start,
            end_minute: end,
        }],
        rule: "window:w".into(),
    }
}

fn empty() -> CompiledPolicy {
    CompiledPolicy {
        tenant: "t".into(),
        home_country: "GB".into(),
        numbering_plan: "test".into(),
        emergency_numbers: vec!["112".into(), "999".into()],
        destinations: vec![DestinationRule {
            prefix: String::new(),
            action: Verdict::Deny,
            rule: "dst:international".into(),
            window: None,
        }],
        classes: Vec::new(),
        sources: Default::default(),
        windows: Vec::new(),
        limits: Vec::new(),
        responses: Vec::new(),
        crypto: Default::default(),
        rules: Vec::new(),
    }
}

#[test]
fn open_minutes_run_past_midnight_and_wrap_the_week() {
    let w = window(&[Weekday::Sun], 22 * 60, 6 * 60);
    let m = open_minutes(&w);
    assert_eq!(m.count(), 8 * 60);
    assert!(m.get(6 * 1440 + 23 * 60)); // sunday 23:00
    assert!(m.get(5 * 60)); // monday 05:00
    assert!(!m.get(6 * 60));
    assert_eq!(describe_minutes(&m), "mon 00:00-06:00, sun 22:00-24:00");
    let whole = open_minutes(&window(&[Weekday::Mon], 0, 1440));
    assert_eq!(whole.count(), 1440);
}

#[test]
fn days_and_hours_read_naturally() {
    assert_eq!(days_text(&[0, 1, 2, 3, 4]), "mon-fri");
    assert_eq!(days_text(&[0, 5, 6]), "sat-mon");
    assert_eq!(days_text(&[0, 2]), "mon,wed");
    assert_eq!(hours(120), "2 h");
    assert_eq!(hours(90), "1 h 30 min");
    assert_eq!(hours(45), "45 min");
}

#[test]
fn prefixes_show_their_calling_code() {
    assert_eq!(show_prefix("447"), "+44 7");
    assert_eq!(show_prefix("1900"), "+1 900");
    assert_eq!(show_prefix("44"), "+44");
    assert_eq!(show_prefix(""), "every number");
}

#[test]
fn chains_are_described_by_when_they_allow() {
    let mut p = empty();
    p.windows.push(window(&[Weekday::Mon], 480, 1080));
    let w = window_minutes(&p);
    let during = Step {
        when: Some(WindowCondition {
            name: "w".into(),
            when: WindowWhen::During,
        }),
        action: Verdict::Allow,
        rule: "a".into(),
    };
    let deny = Step {
        when: None,
        action: Verdict::Deny,
        rule: "d".into(),
    };
    let chain = vec![during.clone(), deny.clone()];
    assert_eq!(
        describe_chain(&chain, &allowed(&chain, &w)),
        "allowed only during `w`"
    );
    let outside_deny = Step {
        when: Some(WindowCondition {
            name: "w".into(),
            when: WindowWhen::Outside,
        }),
        action: Verdict::Deny,
        rule: "o".into(),
    };
    let allow = Step {
        action: Verdict::Allow,
        ..deny.clone()
    };
    let chain = vec![outside_deny, allow];
    assert_eq!(
        describe_chain(&chain, &allowed(&chain, &w)),
        "allowed only during `w`"
    );
    // a window that never opens changes nothing
    let chain = vec![
        Step {
            when: Some(WindowCondition {
                name: "missing".into(),
                when: WindowWhen::During,
            }),
            ..during
        },
        deny,
    ];
    assert_eq!(describe_chain(&chain, &allowed(&chain, &w)), "denied");
}

#[test]
fn reactions_are_ordered_by_what_they_block() {
    let classes = |c: &[&str]| ResponseAction::BlockClasses {
        classes: c.iter().map(|s| s.to_string()).collect(),
    };
    use ResponseAction::{Alert, BlockTenant};
    assert_eq!(action_strength(&Alert, &BlockTenant), Some(Ordering::Less));
    assert_eq!(
        action_strength(&classes(&["a", "b"]), &classes(&["a"])),
        Some(Ordering::Greater)
    );
    assert_eq!(action_strength(&classes(&["a"]), &classes(&["b"])), None);
    assert_eq!(
        action_strength(&BlockTenant, &classes(&["a"])),
        Some(Ordering::Greater)
    );
}

#[test]
fn geo_mode_switches_loosen_and_tighten() {
    let g = |mode, c: &[&str]| GeoPolicy {
        mode,
        countries: c.iter().map(|s| s.to_string()).collect(),
        rule: "src:geo".into(),
    };
    let mut out = Vec::new();
    // allow only GB → deny CN: everything but GB and CN is newly accepted
    geo(
        Some(&g(GeoMode::AllowOnly, &["GB"])),
        Some(&g(GeoMode::Deny, &["CN"])),
        &mut out,
    );
    assert!(out[0].loosens && !out[0].tightens);
    out.clear();
    // deny CN → allow only GB: only tightens
    geo(
        Some(&g(GeoMode::Deny, &["CN"])),
        Some(&g(GeoMode::AllowOnly, &["GB"])),
        &mut out,
    );
    assert!(!out[0].loosens && out[0].tightens);
    out.clear();
    // deny CN → allow only CN, GB: CN newly accepted
    geo(
        Some(&g(GeoMode::Deny, &["CN"])),
        Some(&g(GeoMode::AllowOnly, &["CN", "GB"])),
        &mut out,
    );
    assert!(out[0].loosens && out[0].tightens);
}

#[test]
fn limit_levels_removed_loosen() {
    let mut old = empty();
    old.limits.push(Limit {
        metric: LimitMetric::Rate,
        class: None,
        warning: Some(5),
        critical: Some(10),
        rule: "limit:rate".into(),
    });
    let mut new = old.clone();
    new.limits[0].critical = None;
    let cs = diff(&old, &new);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].description, "rate limit: critical 10/min → none");
    assert!(cs[0].loosens && !cs[0].tightens);
    let cs = diff(&new, &old);
    assert!(cs[0].tightens && !cs[0].loosens);
}

#[test]
fn emergency_numbers_added_loosen() {
    let old = empty();
    let mut new = old.clone();
    new.emergency_numbers.push("110".into());
    let cs = diff(&old, &new);
    assert_eq!(cs.len(), 1);
    assert!(cs[0].loosens, "{cs:?}");
    assert!(diff(&new, &old)[0].tightens);
}

#[test]
fn a_source_moving_into_a_trunk_escapes_geo_blocking() {
    let mut old = empty();
    old.sources.networks.push(SourceNetwork {
        cidr: "198.51.100.0/24".into(),
        action: Verdict::Allow,
        trunk: None,
        rule: "src:net:198.51.100.0/24".into(),
    });
    old.sources.geo = Some(GeoPolicy {
        mode: GeoMode::Deny,
        countries: vec!["CN".into()],
        rule: "src:geo".into(),
    });
    let mut new = old.clone();
    new.sources.networks[0].trunk = Some("carrier".into());
    new.sources.networks[0].rule = "src:trunk:carrier".into();
    let cs = diff(&old, &new);
    assert!(
        cs.iter().any(|c| c.loosens
            && c.description
                == "source 198.51.100.0/24 now allowed as trunk `carrier` (was allowed)"),
        "{cs:?}"
    );
    assert!(!loosens(&diff(&new, &old)));
}
