use super::atoms::{Clock, states};
use super::context::{duration_text, list};
use super::trie::Table;
use super::*;
use ipnet::IpNet;
use tollgate_ir::{
    Limit, LimitMetric, SourceNetwork, TimeWindow, Verdict, Weekday, WeeklySpan, WindowWhen,
};

const WEEKDAYS: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];
const ALL_DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn window(name: &str, zone: &str, spans: &[(&[Weekday], u16, u16)]) -> TimeWindow {
    TimeWindow {
        name: name.into(),
        zone: zone.into(),
        spans: spans
            .iter()
            .map(|(days, start, end)| WeeklySpan {
                days: days.to_vec(),
                start_minute: *start,
                end_minute: *end,
            })
            .collect(),
        rule: format!("window:{name}"),
    }
}

#[test]
fn week_sets_cover_days_and_nights() {
    let office = window("o", "UTC", &[(&WEEKDAYS, 480, 1080)]);
    assert_eq!(WeekSet::of_window(&office).minutes(), 5 * 600);
    // Sunday night wraps into Monday morning
    let night = window("n", "UTC", &[(&[Weekday::Sun], 1320, 360)]);
    let set = WeekSet::of_window(&night);
    assert_eq!(set.minutes(), 480);
    assert!(set.contains(0) && set.contains(359) && !set.contains(360));
    assert!(set.contains(WEEK - 1) && !set.contains(6 * DAY + 1319));
    // every day, all day, written two ways
    let all = window("a", "UTC", &[(&ALL_DAYS, 0, 1440)]);
    assert!(WeekSet::of_window(&all).is_full());
    let nights_and_days = window(
        "b",
        "UTC",
        &[(&ALL_DAYS, 1200, 480), (&ALL_DAYS, 480, 1200)],
    );
    assert!(WeekSet::of_window(&nights_and_days).is_full());
    // overlapping spans count once
    let twice = window(
        "t",
        "UTC",
        &[(&WEEKDAYS, 480, 1080), (&WEEKDAYS, 600, 1200)],
    );
    assert_eq!(WeekSet::of_window(&twice).minutes(), 5 * 720);
    // an empty period covers nothing
    let empty = window("e", "UTC", &[(&WEEKDAYS, 600, 600)]);
    assert!(WeekSet::of_window(&empty).is_empty());
}

#[test]
fn atoms_of_one_zone_are_the_combinations_that_occur() {
    let office = window("office", "Europe/London", &[(&WEEKDAYS, 480, 1080)]);
    let lunch = window("lunch", "Europe/London", &[(&WEEKDAYS, 720, 780)]);
    let used = BTreeSet::from(["office", "lunch"]);
    let clock = Clock::new(&[office, lunch], &used);
    // closed/closed, open/closed, open/open; never lunch outside the office
    assert_eq!(clock.atoms, 3);
    let office = clock.when(Some(&WindowCondition {
        name: "office".into(),
        when: WindowWhen::During,
    }));
    let lunch = clock.when(Some(&WindowCondition {
        name: "lunch".into(),
        when: WindowWhen::During,
    }));
    assert!(lunch.minus(&office).is_empty());
    assert!(!office.minus(&lunch).is_empty());
}

#[test]
fn atoms_across_zones_follow_the_offsets() {
    // 09:00-10:00 in London and 04:00-05:00 in New York are the same hour
    // except in the weeks where only one of them has changed to summer time.
    let london = window("london", "Europe/London", &[(&ALL_DAYS, 540, 600)]);
    let ny = window("ny", "America/New_York", &[(&ALL_DAYS, 240, 300)]);
    let used = BTreeSet::from(["london", "ny"]);
    let combos = states(&[
        (&london, WeekSet::of_window(&london)),
        (&ny, WeekSet::of_window(&ny)),
    ]);
    assert!(combos.contains(&vec![true, true]));
    assert!(combos.contains(&vec![false, false]));
    // the US changes a few weeks before Europe: one open without the other
    assert!(combos.contains(&vec![true, false]) || combos.contains(&vec![false, true]));
    let clock = Clock::new(&[london, ny], &used);
    assert!(clock.atoms >= 3);
    // zones 12 hours apart with no DST never overlap these hours
    let tokyo = window("tokyo", "Asia/Tokyo", &[(&ALL_DAYS, 540, 600)]);
    let utc = window("utc", "UTC", &[(&ALL_DAYS, 540, 600)]);
    let combos = states(&[
        (&tokyo, WeekSet::of_window(&tokyo)),
        (&utc, WeekSet::of_window(&utc)),
    ]);
    assert!(!combos.contains(&vec![true, true]));
}

fn rule(prefix: &str, action: Verdict, id: &str, w: Option<(&str, WindowWhen)>) -> DestinationRule {
    DestinationRule {
        prefix: prefix.into(),
        action,
        rule: id.into(),
        window: w.map(|(name, when)| WindowCondition {
            name: name.into(),
            when,
        }),
    }
}

#[test]
fn the_trie_falls_through_windows_to_shorter_prefixes() {
    let office = window("office", "UTC", &[(&WEEKDAYS, 480, 1080)]);
    let used = BTreeSet::from(["office"]);
    let clock = Clock::new(std::slice::from_ref(&office), &used);
    assert_eq!(clock.atoms, 2);
    let dests = vec![
        rule("", Verdict::Deny, "dst:international", None),
        rule(
            "33",
            Verdict::Allow,
            "dst:country:FR@office",
            Some(("office", WindowWhen::During)),
        ),
        rule("3389", Verdict::Deny, "dst:class:premium-rate", None),
    ];
    let table = Table::new(&dests, &clock);
    assert_eq!(table.nodes.len(), 3);
    assert_eq!(table.nodes[2].parent, Some(1));
    let open = clock.when(dests[1].window.as_ref());
    assert_eq!(table.nodes[1].allow, open);
    assert!(table.nodes[2].allow.is_empty());
    assert!(table.ever_allows_under("33"));
    assert!(table.ever_allows_under("331"));
    assert!(!table.ever_allows_under("3389"));
    assert!(!table.ever_allows_under("44"));
    assert_eq!(table.under("33"), 1..3);
    assert_eq!(table.deepest("33891"), Some(2));
    assert_eq!(table.deepest("4420"), Some(0));
}

#[test]
fn network_containment_is_found_by_the_nearest_enclosing_network() {
    let a: IpNet = "10.0.0.0/8".parse().unwrap();
    let b: IpNet = "10.1.0.0/16".parse().unwrap();
    assert!(a.contains(&b) && !b.contains(&a));
}

// ------------------------------------------------ whole analyses on hand-built IR

fn policy(dests: Vec<DestinationRule>, windows: Vec<TimeWindow>) -> CompiledPolicy {
    CompiledPolicy {
        tenant: "t".into(),
        home_country: "DE".into(),
        numbering_plan: String::new(),
        emergency_numbers: vec!["112".into()],
        destinations: dests,
        classes: Vec::new(),
        sources: Default::default(),
        windows,
        limits: Vec::new(),
        responses: Vec::new(),
        crypto: Default::default(),
        rules: Vec::new(),
    }
}

const ROOT: FileId = FileId(1);
const BASE: FileId = FileId(0);

/// Runs the analysis with `root` rules declared in the root file and
/// `base` rules in an imported one; returns (code, rule id at the label).
fn run(
    p: &CompiledPolicy,
    root: &[&str],
    base: &[&str],
    runner_up: &[DestinationRule],
) -> Vec<(&'static str, String)> {
    let mut declared_at = BTreeMap::new();
    let mut names = BTreeMap::new();
    for (i, id) in root.iter().chain(base).enumerate() {
        let file = if i < root.len() { ROOT } else { BASE };
        let span = Span::new(i * 10, i * 10 + 5);
        declared_at.insert(id.to_string(), (file, span));
        names.insert((file, span), id.to_string());
    }
    let runner_up = runner_up
        .iter()
        .map(|r| ((r.prefix.clone(), r.window.clone()), r.clone()))
        .collect();
    let input = Input {
        policy: p,
        root: ROOT,
        declared_at: &declared_at,
        displaced: &BTreeMap::new(),
        files: &[BASE, ROOT],
        runner_up: &runner_up,
        replaced: &BTreeSet::new(),
    };
    let mut out: Vec<(&'static str, String)> = analyze(&input)
        .into_iter()
        .map(|d| (d.code.as_str(), names[&(d.file, d.label.span)].clone()))
        .collect();
    out.sort();
    out
}

fn during(w: &str) -> Option<(&str, WindowWhen)> {
    Some((w, WindowWhen::During))
}

fn outside(w: &str) -> Option<(&str, WindowWhen)> {
    Some((w, WindowWhen::Outside))
}

fn redundant(found: &[(&'static str, String)]) -> Vec<String> {
    found
        .iter()
        .filter(|(c, _)| *c == "analysis::redundant-rule")
        .map(|(_, r)| r.clone())
        .collect()
}

const BERLIN: &str = "Europe/Berlin";

#[test]
fn a_rule_inside_a_wider_window_of_the_same_action_is_redundant() {
    let windows = vec![
        window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)]),
        window("lunch", BERLIN, &[(&WEEKDAYS, 720, 780)]),
        window("late", BERLIN, &[(&WEEKDAYS, 720, 1140)]),
    ];
    let intl = rule("", Verdict::Deny, "dst:international", None);
    let at = rule(
        "43",
        Verdict::Allow,
        "dst:country:AT@office",
        during("office"),
    );
    // lunch ⊂ office: redundant
    let p = policy(
        vec![
            intl.clone(),
            at.clone(),
            rule(
                "431",
                Verdict::Allow,
                "dst:prefix:431@lunch",
                during("lunch"),
            ),
        ],
        windows.clone(),
    );
    let found = run(
        &p,
        &["dst:country:AT@office", "dst:prefix:431@lunch"],
        &[],
        &[],
    );
    assert_eq!(redundant(&found), ["dst:prefix:431@lunch"]);
    // 12:00-19:00 reaches past the office: it decides 18:00-19:00
    let p = policy(
        vec![
            intl.clone(),
            at.clone(),
            rule("431", Verdict::Allow, "dst:prefix:431@late", during("late")),
        ],
        windows.clone(),
    );
    let found = run(
        &p,
        &["dst:country:AT@office", "dst:prefix:431@late"],
        &[],
        &[],
    );
    assert!(redundant(&found).is_empty(), "{found:?}");
    // outside the office the country rule does not apply: the default denies anyway
    let p = policy(
        vec![
            intl.clone(),
            at.clone(),
            rule(
                "431",
                Verdict::Deny,
                "dst:prefix:431@outside:office",
                outside("office"),
            ),
        ],
        windows.clone(),
    );
    let found = run(
        &p,
        &["dst:country:AT@office", "dst:prefix:431@outside:office"],
        &[],
        &[],
    );
    assert_eq!(redundant(&found), ["dst:prefix:431@outside:office"]);
    // ... but not when the parent allows at all times
    let p = policy(
        vec![
            intl,
            rule("43", Verdict::Allow, "dst:country:AT", None),
            rule(
                "431",
                Verdict::Deny,
                "dst:prefix:431@outside:office",
                outside("office"),
            ),
        ],
        windows,
    );
    let found = run(
        &p,
        &["dst:country:AT", "dst:prefix:431@outside:office"],
        &[],
        &[],
    );
    assert!(redundant(&found).is_empty(), "{found:?}");
}

#[test]
fn the_order_of_windowed_entries_at_one_prefix_counts() {
    let windows = vec![
        window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)]),
        window("lunch", BERLIN, &[(&WEEKDAYS, 720, 780)]),
    ];
    // at +43: deny during lunch is consulted before allow during office
    let p = policy(
        vec![
            rule("", Verdict::Deny, "dst:international", None),
            rule("43", Verdict::Deny, "dst:prefix:43@lunch", during("lunch")),
            rule(
                "43",
                Verdict::Allow,
                "dst:prefix:43@office",
                during("office"),
            ),
        ],
        windows,
    );
    let found = run(
        &p,
        &["dst:prefix:43@lunch", "dst:prefix:43@office"],
        &[],
        &[],
    );
    assert!(redundant(&found).is_empty(), "{found:?}");
}

#[test]
fn removing_a_rule_brings_back_the_entry_it_displaced() {
    let windows = vec![window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)])];
    let mine = rule("4990", Verdict::Deny, "dst:prefix:4990", None);
    let dests = vec![rule("", Verdict::Allow, "dst:international", None), mine];
    let p = policy(dests, windows);
    // the base's class rule would deny too: redundant, named with its place
    let base_deny = rule("4990", Verdict::Deny, "dst:class:premium-rate", None);
    let found = run(
        &p,
        &["dst:prefix:4990"],
        &["dst:class:premium-rate"],
        &[base_deny],
    );
    assert_eq!(redundant(&found), ["dst:prefix:4990"]);
    // the base's rule allowed: not redundant
    let base_allow = rule("4990", Verdict::Allow, "dst:class:premium-rate", None);
    let found = run(
        &p,
        &["dst:prefix:4990"],
        &["dst:class:premium-rate"],
        &[base_allow],
    );
    assert!(redundant(&found).is_empty(), "{found:?}");
    // without a runner-up the default (allow) takes over: not redundant
    let found = run(&p, &["dst:prefix:4990"], &[], &[]);
    assert!(redundant(&found).is_empty(), "{found:?}");
}

#[test]
fn a_windowed_runner_up_goes_back_to_its_place_in_the_order() {
    let windows = vec![
        window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)]),
        window("lunch", BERLIN, &[(&WEEKDAYS, 720, 780)]),
    ];
    // root: deny +43 during office (written first), allow +43 during lunch
    // (consulted after it, so it never decides). The base's deny during
    // office is the runner-up of the root's: without the root's rule it
    // comes after the root's lunch entry, so lunch becomes allowed.
    let p = policy(
        vec![
            rule("", Verdict::Deny, "dst:international", None),
            rule(
                "43",
                Verdict::Deny,
                "dst:prefix:43@office",
                during("office"),
            ),
            rule("43", Verdict::Allow, "dst:prefix:43@lunch", during("lunch")),
        ],
        windows,
    );
    let base = rule(
        "43",
        Verdict::Deny,
        "dst:country:AT@office",
        during("office"),
    );
    let found = run(
        &p,
        &["dst:prefix:43@office", "dst:prefix:43@lunch"],
        &["dst:country:AT@office"],
        &[base],
    );
    // had the runner-up taken the removed entry's place, the office rule
    // would look redundant too
    assert_eq!(redundant(&found), ["dst:prefix:43@lunch"]);
}

#[test]
fn rules_without_entries_never_decide() {
    let p = policy(
        vec![rule("", Verdict::Deny, "dst:international", None)],
        vec![],
    );
    let found = run(&p, &["dst:country:FR"], &[], &[]);
    assert_eq!(
        found,
        [("analysis::never-decides", "dst:country:FR".to_string())]
    );
}

#[test]
fn window_coverage_warnings() {
    let windows = vec![
        window("never", BERLIN, &[(&WEEKDAYS, 600, 600)]),
        window("always", BERLIN, &[(&ALL_DAYS, 0, 1440)]),
        window("idle", BERLIN, &[(&WEEKDAYS, 480, 1080)]),
    ];
    let p = policy(
        vec![
            rule("", Verdict::Deny, "dst:international", None),
            rule(
                "43",
                Verdict::Allow,
                "dst:country:AT@always",
                during("always"),
            ),
        ],
        windows,
    );
    let found = run(
        &p,
        &[
            "window:never",
            "window:always",
            "window:idle",
            "dst:country:AT@always",
        ],
        &[],
        &[],
    );
    let codes: Vec<(&str, &str)> = found.iter().map(|(c, r)| (*c, r.as_str())).collect();
    assert!(
        codes.contains(&("analysis::window-never-open", "window:never")),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("analysis::window-always-open", "window:always")),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("analysis::unused-window", "window:idle")),
        "{codes:?}"
    );
    // a base's always-open window is reported at the root rule that uses it
    let found = run(&p, &["dst:country:AT@always"], &["window:always"], &[]);
    assert!(found.contains(&(
        "analysis::window-always-open",
        "dst:country:AT@always".into()
    )));
}

fn net(cidr: &str, action: Verdict, trunk: Option<&str>, rule: &str) -> SourceNetwork {
    SourceNetwork {
        cidr: cidr.into(),
        action,
        trunk: trunk.map(String::from),
        rule: rule.into(),
    }
}

#[test]
fn source_overlaps_compare_with_the_nearest_enclosing_network() {
    let mut p = policy(
        vec![rule("", Verdict::Deny, "dst:international", None)],
        vec![],
    );
    p.sources.networks = vec![
        net("10.0.0.0/8", Verdict::Deny, None, "a"),
        net("10.1.0.0/16", Verdict::Allow, None, "b"),
        net("10.1.2.0/24", Verdict::Deny, None, "c"),
        net("10.1.2.3/32", Verdict::Allow, None, "d"),
        net("10.2.0.0/16", Verdict::Deny, None, "e"),
        net("2001:db8::/32", Verdict::Deny, None, "f"),
        net("2001:db8:1::/48", Verdict::Allow, Some("carrier"), "g"),
        net("192.0.2.0/24", Verdict::Allow, None, "h"),
        net("192.0.2.0/25", Verdict::Allow, None, "i"),
        net("198.51.100.0/24", Verdict::Allow, None, "j"),
        net("198.51.100.7/32", Verdict::Deny, None, "k"),
    ];
    let root = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "k"];
    let found = run(&p, &root, &["j"], &[]);
    let at: Vec<&str> = found
        .iter()
        .filter(|(c, _)| *c == "analysis::source-overlap")
        .map(|(_, r)| r.as_str())
        .collect();
    // b opens /8, d opens c, g (a trunk) opens f, k cuts into the base's j;
    // c inside b is an exclusion in one file, e and i agree with their parents
    assert_eq!(at, ["b", "d", "g", "k"]);
}

#[test]
fn class_limits_that_cannot_trigger() {
    let p = policy(
        vec![
            rule("", Verdict::Deny, "dst:international", None),
            rule("49", Verdict::Allow, "dst:national", None),
        ],
        vec![],
    );
    let mut p = p;
    p.classes = vec![tollgate_ir::ClassPrefix {
        prefix: "49".into(),
        class: "national".into(),
    }];
    let limit = |class: Option<&str>, w: Option<u64>, c: Option<u64>, id: &str| Limit {
        metric: LimitMetric::Concurrent,
        class: class.map(String::from),
        warning: w,
        critical: c,
        rule: id.into(),
    };
    p.limits = vec![
        limit(None, Some(10), Some(20), "limit:concurrent"),
        limit(
            Some("international"),
            None,
            Some(2),
            "limit:concurrent:international",
        ),
        limit(
            Some("national"),
            Some(5),
            Some(19),
            "limit:concurrent:national",
        ),
    ];
    let found = run(
        &p,
        &[
            "limit:concurrent",
            "limit:concurrent:international",
            "limit:concurrent:national",
        ],
        &[],
        &[],
    );
    // international calls are all denied; national 19 < 20 and 5 < 10 are fine
    assert_eq!(
        found,
        [(
            "analysis::limit-never-triggers",
            "limit:concurrent:international".to_string()
        )]
    );
}

#[test]
fn a_hundred_thousand_prefix_rules() {
    let windows = vec![window("office", BERLIN, &[(&WEEKDAYS, 480, 1080)])];
    let mut dests = vec![rule("", Verdict::Deny, "dst:international", None)];
    let mut ids = Vec::new();
    for i in 0..100_000u32 {
        let prefix = format!("4{i:06}");
        let (action, w) = if i % 3 == 0 {
            (Verdict::Allow, during("office"))
        } else {
            (Verdict::Deny, None)
        };
        let id = format!("dst:prefix:{prefix}");
        dests.push(rule(&prefix, action, &id, w));
        ids.push(id);
    }
    let p = policy(dests, windows);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let found = run(&p, &ids, &[], &[]);
    eprintln!(
        "analysis of 100000 prefix rules: {:?}, {} warnings",
        started.elapsed(),
        found.len()
    );
    // every deny under the international deny changes nothing
    assert_eq!(redundant(&found).len(), 66_666);
}

#[test]
fn lists_and_durations_read_well() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(list(&s(&["a"]), 3), "a");
    assert_eq!(list(&s(&["a", "b"]), 3), "a and b");
    assert_eq!(
        list(&s(&["a", "b", "c", "d", "e"]), 3),
        "a, b, c and 2 more"
    );
    assert_eq!(duration_text(5400), "1h30m");
    assert_eq!(duration_text(0), "0s");
}
