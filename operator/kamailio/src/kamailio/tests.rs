use super::*;
use tollgate_ir::{
    ClassPrefix, CryptoPolicy, GeoPolicy, Limit, SourceNetwork, SourcePolicy, Weekday, WeeklySpan,
    WindowCondition,
};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("RFC 3339")
}

fn dest(
    prefix: &str,
    action: Verdict,
    rule: &str,
    window: Option<(&str, WindowWhen)>,
) -> DestinationRule {
    DestinationRule {
        prefix: prefix.into(),
        action,
        rule: rule.into(),
        window: window.map(|(n, when)| WindowCondition {
            name: n.into(),
            when,
        }),
    }
}

fn net(cidr: &str, action: Verdict, rule: &str, trunk: Option<&str>) -> SourceNetwork {
    SourceNetwork {
        cidr: cidr.into(),
        action,
        trunk: trunk.map(Into::into),
        rule: rule.into(),
    }
}

const WEEKDAYS: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];

/// A small policy touching every table.
fn small(tenant: &str) -> CompiledPolicy {
    use Verdict::{Allow, Deny};
    CompiledPolicy {
        tenant: tenant.into(),
        home_country: "US".into(),
        numbering_plan: "test".into(),
        emergency_numbers: vec!["911".into(), "112".into()],
        destinations: vec![
            dest("", Deny, "dst:international", None),
            dest("1", Allow, "dst:national", None),
            dest("1900", Deny, "dst:prefix:1900", None),
            dest(
                "33",
                Allow,
                "dst:country:FR",
                Some(("office", WindowWhen::During)),
            ),
            dest("44", Allow, "dst:country:GB", None),
            dest(
                "4470",
                Deny,
                "dst:prefix:4470",
                Some(("office", WindowWhen::Outside)),
            ),
        ],
        classes: vec![
            ClassPrefix {
                prefix: "1".into(),
                class: "national".into(),
            },
            ClassPrefix {
                prefix: "1900".into(),
                class: "premium-rate".into(),
            },
            ClassPrefix {
                prefix: "4470".into(),
                class: "personal".into(),
            },
            ClassPrefix {
                prefix: "447".into(),
                class: "mobile".into(),
            },
        ],
        sources: SourcePolicy {
            networks: vec![
                net("127.10.0.0/16", Allow, "src:127.10.0.0/16", None),
                net("127.10.5.0/24", Allow, "src:trunk:carrier", Some("carrier")),
                net("127.10.9.0/24", Deny, "src:127.10.9.0/24", None),
                net("127.10.9.66/32", Deny, "src:127.10.9.66", None),
                net("2001:db8:ac::/48", Allow, "src:2001:db8:ac::/48", None),
            ],
            geo: Some(GeoPolicy {
                mode: GeoMode::Deny,
                countries: vec!["KP".into(), "RU".into()],
                rule: "src:geo".into(),
            }),
        },
        windows: vec![TimeWindow {
            name: "office".into(),
            zone: "America/New_York".into(),
            spans: vec![WeeklySpan {
                days: WEEKDAYS.to_vec(),
                start_minute: 480,
                end_minute: 1080,
            }],
            rule: "window:office".into(),
        }],
        limits: vec![
            Limit {
                metric: LimitMetric::Concurrent,
                class: None,
                warning: Some(1),
                critical: Some(2),
                rule: "limit:concurrent".into(),
            },
            Limit {
                metric: LimitMetric::Rate,
                class: Some("international".into()),
                warning: Some(3),
                critical: Some(6),
                rule: "limit:rate:international".into(),
            },
            Limit {
                metric: LimitMetric::Duration,
                class: None,
                warning: None,
                critical: Some(14400),
                rule: "limit:duration".into(),
            },
        ],
        responses: vec![],
        crypto: CryptoPolicy {
            require_tls: false,
            require_srtp: true,
            require_client_certificate: false,
        },
        rules: vec![],
    }
}

const NOW: &str = "2026-03-05T00:00:00Z"; // a Thursday; New York springs forward on Sunday 2026-03-08

fn render(p: &CompiledPolicy) -> TenantRows {
    Kamailio
        .render_tenant(p, "acme-r1", ts(NOW))
        .expect("renders")
}

fn table(rows: &TenantRows, name: &str) -> String {
    rows.tables[name].iter().map(|r| format!("{r}\n")).collect()
}

#[test]
fn address_rows() {
    assert_eq!(
        table(&render(&small("acme")), "address"),
        "113:127.10.0.0:16:0:acme|allow|src\\:127.10.0.0/16|\n\
         105:127.10.5.0:24:0:acme|allow|src\\:trunk\\:carrier|carrier\n\
         105:127.10.9.0:24:0:acme|deny|src\\:127.10.9.0/24|\n\
         97:127.10.9.66:32:0:acme|deny|src\\:127.10.9.66|\n\
         81:2001\\:db8\\:ac\\:\\::48:0:acme|allow|src\\:2001\\:db8\\:ac\\:\\:/48|\n"
    );
}

#[test]
fn destination_chains() {
    let rows = render(&small("acme"));
    let d: String = table(&rows, "mtree")
        .lines()
        .filter(|l| l.starts_with("d\\:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        d,
        "d\\:acme:1:a,dst\\:national\n\
         d\\:acme:1900:d,dst\\:prefix\\:1900\n\
         d\\:acme:2:d,dst\\:international\n\
         d\\:acme:3:d,dst\\:international\n\
         d\\:acme:33:a,dst\\:country\\:FR,office,i;d,dst\\:international\n\
         d\\:acme:4:d,dst\\:international\n\
         d\\:acme:44:a,dst\\:country\\:GB\n\
         d\\:acme:4470:d,dst\\:prefix\\:4470,office,o;a,dst\\:country\\:GB\n\
         d\\:acme:5:d,dst\\:international\n\
         d\\:acme:6:d,dst\\:international\n\
         d\\:acme:7:d,dst\\:international\n\
         d\\:acme:8:d,dst\\:international\n\
         d\\:acme:9:d,dst\\:international\n"
    );
}

#[test]
fn chains_without_a_root_and_with_stacked_windows() {
    use Verdict::{Allow, Deny};
    let mut p = small("acme");
    p.destinations = vec![
        dest("4", Allow, "dst:four", Some(("office", WindowWhen::During))),
        dest(
            "44",
            Deny,
            "dst:gb-off",
            Some(("office", WindowWhen::Outside)),
        ),
        dest(
            "447",
            Allow,
            "dst:mobile",
            Some(("office", WindowWhen::During)),
        ),
        dest("447", Deny, "dst:mobile-off", None),
        dest("447", Allow, "dst:unreachable", None),
    ];
    let rows = render(&p);
    let d: Vec<&str> = rows.tables["mtree"]
        .iter()
        .filter(|l| l.starts_with("d\\:"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        d,
        [
            "d\\:acme:1:d,dst\\:international",
            "d\\:acme:2:d,dst\\:international",
            "d\\:acme:3:d,dst\\:international",
            "d\\:acme:4:a,dst\\:four,office,i",
            "d\\:acme:44:d,dst\\:gb-off,office,o;a,dst\\:four,office,i",
            "d\\:acme:447:a,dst\\:mobile,office,i;d,dst\\:mobile-off",
            "d\\:acme:5:d,dst\\:international",
            "d\\:acme:6:d,dst\\:international",
            "d\\:acme:7:d,dst\\:international",
            "d\\:acme:8:d,dst\\:international",
            "d\\:acme:9:d,dst\\:international",
        ]
    );
}

#[test]
fn class_lists() {
    let rows = render(&small("acme"));
    let c: String = table(&rows, "mtree")
        .lines()
        .filter(|l| l.starts_with("c\\:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        c,
        "c\\:acme:1:national\n\
         c\\:acme:1900:national,premium-rate\n\
         c\\:acme:2:international\n\
         c\\:acme:3:international\n\
         c\\:acme:4:international\n\
         c\\:acme:447:international,mobile\n\
         c\\:acme:4470:international,mobile,personal\n\
         c\\:acme:5:international\n\
         c\\:acme:6:international\n\
         c\\:acme:7:international\n\
         c\\:acme:8:international\n\
         c\\:acme:9:international\n"
    );
}

#[test]
fn htables() {
    let rows = render(&small("acme"));
    assert_eq!(
        table(&rows, "tg_tenant"),
        "acme\\:\\:cc:0:0:1:0\n\
         acme\\:\\:home:0:0:3028:0\n\
         acme\\:\\:rev:0:0:acme-r1:0\n\
         acme\\:\\:geo:0:0:deny:0\n\
         acme\\:\\:geo\\:\\:rule:0:0:src\\:geo:0\n\
         acme\\:\\:srtp:0:0:1:0\n"
    );
    assert_eq!(
        table(&rows, "tg_geo"),
        "acme\\:\\:KP:0:0:1:0\nacme\\:\\:RU:0:0:1:0\n"
    );
    assert_eq!(
        table(&rows, "tg_emerg"),
        "acme\\:\\:112:0:0:1:0\nacme\\:\\:911:0:0:1:0\n"
    );
    assert_eq!(
        table(&rows, "tg_limit"),
        "acme\\:\\:concurrent\\:\\:critical:0:0:2:0\n\
         acme\\:\\:concurrent\\:\\:warning:0:0:1:0\n\
         acme\\:\\:concurrent\\:\\:rule:0:0:limit\\:concurrent:0\n\
         acme\\:\\:rate\\:\\:international\\:\\:critical:0:0:6:0\n\
         acme\\:\\:rate\\:\\:international\\:\\:warning:0:0:3:0\n\
         acme\\:\\:rate\\:\\:international\\:\\:rule:0:0:limit\\:rate\\:international:0\n\
         acme\\:\\:duration\\:\\:critical:0:0:14400:0\n\
         acme\\:\\:duration\\:\\:rule:0:0:limit\\:duration:0\n\
         acme\\:\\:limits:0:0:15:0\n"
    );
    assert_eq!(table(&rows, "tg_block"), "");
}

#[test]
fn the_limits_row_names_the_limited_metrics() {
    let limits_row = |limits: Vec<Limit>| {
        let mut p = small("acme");
        p.limits = limits;
        table(&render(&p), "tg_limit")
            .lines()
            .filter(|l| l.starts_with("acme\\:\\:limits:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(limits_row(vec![]), ["acme\\:\\:limits:0:0:8:0"]);
    let class_rate = Limit {
        metric: LimitMetric::Rate,
        class: Some("premium".into()),
        warning: None,
        critical: Some(5),
        rule: "limit:rate:premium".into(),
    };
    assert_eq!(
        limits_row(vec![class_rate.clone()]),
        ["acme\\:\\:limits:0:0:10:0"]
    );
    let tenant_duration = Limit {
        metric: LimitMetric::Duration,
        class: None,
        warning: None,
        critical: Some(60),
        rule: "limit:duration".into(),
    };
    assert_eq!(
        limits_row(vec![tenant_duration, class_rate]),
        ["acme\\:\\:limits:0:0:14:0"]
    );
}

fn epoch(s: &str) -> i64 {
    ts(s).as_second()
}

#[test]
fn window_rows_span_the_spring_forward_of_new_york() {
    let rows = render(&small("acme"));
    // Thu/Fri 08:00-18:00 EST = 13:00-23:00 UTC; from Monday 9 March EDT = 12:00-22:00 UTC
    let want: Vec<String> = [
        ("2026-03-05T13:00:00Z", "2026-03-05T23:00:00Z"),
        ("2026-03-06T13:00:00Z", "2026-03-06T23:00:00Z"),
        ("2026-03-09T12:00:00Z", "2026-03-09T22:00:00Z"),
        ("2026-03-10T12:00:00Z", "2026-03-10T22:00:00Z"),
        ("2026-03-11T12:00:00Z", "2026-03-11T22:00:00Z"),
        ("2026-03-12T12:00:00Z", "2026-03-12T22:00:00Z"),
    ]
    .iter()
    .map(|(a, b)| format!("{},{}", epoch(a), epoch(b)))
    .collect();
    assert_eq!(
        table(&rows, "tg_window"),
        format!("acme\\:\\:office:0:0:{}:0\n", want.join(","))
    );
}

fn one_window(zone: &str, days: &[Weekday], start: u16, end: u16) -> TimeWindow {
    TimeWindow {
        name: "w".into(),
        zone: zone.into(),
        spans: vec![WeeklySpan {
            days: days.to_vec(),
            start_minute: start,
            end_minute: end,
        }],
        rule: "window:w".into(),
    }
}

fn intervals(w: &TimeWindow, now: &str) -> Vec<(i64, i64)> {
    open_intervals(w, &TimeZone::get(&w.zone).unwrap(), ts(now)).unwrap()
}

#[test]
fn window_past_midnight_across_london_spring_forward() {
    // Europe/London springs forward on Sunday 2026-03-29 01:00 GMT -> 02:00 BST
    let night = one_window("Europe/London", &[Weekday::Sat], 22 * 60, 6 * 60);
    assert_eq!(
        intervals(&night, "2026-03-27T12:00:00Z"),
        // Sat 22:00 GMT to Sun 06:00 BST (= 05:00 UTC): 7 hours
        [(epoch("2026-03-28T22:00:00Z"), epoch("2026-03-29T05:00:00Z"))]
    );
}

#[test]
fn window_in_the_gap_and_in_the_repeated_hour() {
    // 02:00-02:30 does not exist on 2026-03-08 in New York: never open that day
    let gap = one_window("America/New_York", &[Weekday::Sun], 120, 150);
    let got = intervals(&gap, "2026-03-07T12:00:00Z");
    assert_eq!(
        got,
        [(epoch("2026-03-15T06:00:00Z"), epoch("2026-03-15T06:30:00Z"))]
    );
    // 01:00-02:00 happens twice on 2026-11-01: open both times, one interval
    let fold = one_window("America/New_York", &[Weekday::Sun], 60, 120);
    let got = intervals(&fold, "2026-10-31T12:00:00Z");
    assert_eq!(
        got,
        [
            (epoch("2026-11-01T05:00:00Z"), epoch("2026-11-01T07:00:00Z")),
            (epoch("2026-11-08T06:00:00Z"), epoch("2026-11-08T07:00:00Z")),
        ]
    );
}

#[test]
fn window_intervals_agree_with_is_open_every_minute() {
    let tz = TimeZone::get("America/New_York").unwrap();
    let p = small("acme");
    let w = &p.windows[0];
    let now = ts("2026-10-29T17:42:31Z"); // a week over the fall-back
    let list = open_intervals(w, &tz, now).unwrap();
    let mut t = now.as_second();
    while t < now.as_second() + WINDOW_DAYS * 86_400 {
        let open = list.iter().any(|(a, b)| *a <= t && t < *b);
        assert_eq!(
            open,
            window::is_open_in(w, Timestamp::from_second(t).unwrap(), &tz),
            "at {t}"
        );
        t += 37;
    }
}

#[test]
fn a_window_always_open_and_an_interval_open_now() {
    let always = one_window(
        "UTC",
        &[
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ],
        0,
        1440,
    );
    let now = "2026-01-01T12:00:30Z";
    // from a day back to 8 days ahead, one interval
    assert_eq!(
        intervals(&always, now),
        [(epoch("2025-12-31T12:00:00Z"), epoch("2026-01-09T12:00:30Z"))]
    );
}

#[test]
fn rendering_is_deterministic() {
    let a = render(&small("acme"));
    let b = render(&small("acme"));
    assert_eq!(a, b);
    let fleet = |r: &TenantRows| {
        let mut m = BTreeMap::new();
        m.insert(r.tenant.clone(), r.clone());
        m.insert(
            "globex".into(),
            render(&small("globex")).tap_networks("127.20"),
        );
        Kamailio.compose(&m).unwrap()
    };
    assert_eq!(fleet(&a), fleet(&b));
    assert_eq!(fleet(&a).hash, fleet(&b).hash);
}

trait TapNetworks {
    fn tap_networks(self, prefix: &str) -> Self;
}

impl TapNetworks for TenantRows {
    /// Re-render with the source networks moved (so two tenants do not clash).
    fn tap_networks(self, prefix: &str) -> Self {
        let mut p = small(&self.tenant);
        for n in &mut p.sources.networks {
            n.cidr = n.cidr.replacen("127.10", prefix, 1);
            n.rule = n.rule.replacen("127.10", prefix, 1);
        }
        p.sources.networks.retain(|n| !n.cidr.contains(':'));
        Kamailio.render_tenant(&p, &self.revision, ts(NOW)).unwrap()
    }
}

fn strip_ids(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .map(|l| l.split_once(':').unwrap().1.to_string())
        .collect()
}

#[test]
fn one_tenants_change_leaves_the_others_rows_alone() {
    let a1 = render(&small("acme"));
    let b = render(&small("globex")).tap_networks("127.20");
    let mut changed = small("acme");
    changed
        .destinations
        .push(dest("49", Verdict::Allow, "dst:country:DE", None));
    changed.classes.push(ClassPrefix {
        prefix: "49".into(),
        class: "europe".into(),
    });
    changed.emergency_numbers.push("999".into());
    changed.limits.remove(0);
    let a2 = Kamailio
        .render_tenant(&changed, "acme-r2", ts(NOW))
        .unwrap();
    assert_ne!(a1, a2);
    let f1 = Kamailio
        .compose(&BTreeMap::from([
            ("acme".into(), a1),
            ("globex".into(), b.clone()),
        ]))
        .unwrap();
    let f2 = Kamailio
        .compose(&BTreeMap::from([
            ("acme".into(), a2),
            ("globex".into(), b.clone()),
        ]))
        .unwrap();
    assert_ne!(f1.hash, f2.hash);
    for (table, _, _) in tables() {
        // globex's rows, byte for byte (without the file-wide row ids)
        let mine = |f: &Bundle| -> Vec<String> {
            strip_ids(&f.files[table])
                .into_iter()
                .filter(|r| r.contains("globex"))
                .collect()
        };
        assert_eq!(mine(&f1), mine(&f2), "table {table}");
        if shard_of_table(table).is_none() && table != "tg_tenant" {
            assert_eq!(
                mine(&f1),
                b.tables.get(table).cloned().unwrap_or_default(),
                "table {table}"
            );
        }
    }
    // globex (the second in name order) is at id FIRST_ID + 1: its trees in
    // that id's shard, under its key
    let at = Placement(FIRST_ID + 1);
    let shard: Vec<String> = strip_ids(&f1.files[&at.table()]);
    let want: Vec<String> = b.tables["mtree"]
        .iter()
        .map(|r| {
            let (tree, rest) = r.split_once(':').unwrap();
            let kind = if tree.starts_with('d') { '1' } else { '2' };
            // the escaped `d\:globex` head: skip its tail
            let rest = rest.strip_prefix("globex:").unwrap();
            format!("{}:{}{kind}{rest}", at.tree(), at.0)
        })
        .collect();
    assert_eq!(shard, want);
}

#[test]
fn compose_writes_headers_ids_and_version() {
    let a = render(&small("acme"));
    let f = Kamailio
        .compose(&BTreeMap::from([("acme".into(), a)]))
        .unwrap();
    let version = &f.files["version"];
    assert!(
        version.starts_with(
            "table_name(string) table_version(int)\naddress:6\ntg_country:1\ntg_dial:1\ntg_tenant:2\ntg_geo:2\ntg_emerg:2\ntg_limit:2\ntg_window:2\ntg_block:2\npl_pipes:1\ntg_shard_0000:1\n"
        ),
        "{version}"
    );
    assert!(version.ends_with("tg_shard_1023:1\n"), "{version}");
    assert_eq!(version.lines().count(), 1 + 10 + SHARDS as usize);
    assert_eq!(
        f.files["pl_pipes"],
        "id(int,auto) pipeid(string) algorithm(string) plimit(int)\n"
    );
    assert_eq!(f.files["tg_block"], format!("{HTABLE_HEADER}\n"));
    assert_eq!(
        f.files["tg_emerg"],
        format!("{HTABLE_HEADER}\n1:acme\\:\\:112:0:0:1:0\n2:acme\\:\\:911:0:0:1:0\n")
    );
    assert_eq!(f.files.len(), 11 + SHARDS as usize);
    assert!(f.hash.starts_with("sha256:") && f.hash.len() == 7 + 64);
}

#[test]
fn the_cfg_declares_exactly_the_shards() {
    let cfg = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../sbc/kamailio/tollgate.cfg"
    ))
    .unwrap();
    let start = cfg.find("# BEGIN shards\n").unwrap() + "# BEGIN shards\n".len();
    let end = cfg.find("# END shards\n").unwrap();
    assert_eq!(&cfg[start..end], shard_modparams());
    assert!(cfg.contains("name=tollgate-dial;dbtable=tg_dial;"));
    assert!(cfg.contains("name=tollgate-country;dbtable=tg_country;"));
    // the renderer's cap on source networks is the permissions module's
    assert!(cfg.contains(&format!(
        "modparam(\"permissions\", \"max_subnets\", {MAX_SUBNETS})"
    )));
}

#[test]
fn placements_map_keys_both_ways() {
    let p = Placement(12_345_678);
    assert_eq!(p.shard(), (12_345_678 % 1024) as u32);
    assert_eq!(p.tree(), format!("tollgate-shard-{:04}", 12_345_678 % 1024));
    assert_eq!(p.key("d:acme", "44").as_deref(), Some("12345678144"));
    assert_eq!(p.key("c:acme", "44").as_deref(), Some("12345678244"));
    assert_eq!(p.key("x:acme", "44"), None);
    assert_eq!(
        p.logical("acme", "12345678144"),
        Some(("d:acme".to_string(), "44".to_string()))
    );
    assert_eq!(
        p.logical("acme", "12345678244"),
        Some(("c:acme".to_string(), "44".to_string()))
    );
    assert_eq!(p.logical("acme", "12345679144"), None);
    assert_eq!(p.logical("acme", "12345678344"), None);
    assert_eq!(shard_of_table("tg_shard_0007"), Some(7));
    assert_eq!(shard_of_table("tg_shard_1024"), None);
    assert_eq!(shard_of_table("tg_shard_007"), None);
    assert_eq!(shard_of_table("tg_shard_7"), None);
    assert_eq!(
        reload_command("tg_shard_0007"),
        Some(("mtree.reload", vec!["tollgate-shard-0007".to_string()]))
    );
}

#[test]
fn two_tenants_claiming_one_network_is_an_error_naming_both() {
    let a = render(&small("acme"));
    let b = render(&small("globex")); // same networks
    let err = Kamailio
        .compose(&BTreeMap::from([("acme".into(), a), ("globex".into(), b)]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "source network 127.10.0.0/16 is claimed by tenant `acme` and by tenant `globex`"
    );
}

fn err_of(p: &CompiledPolicy) -> String {
    Kamailio
        .render_tenant(p, "r1", ts(NOW))
        .unwrap_err()
        .to_string()
}

#[test]
fn invalid_addresses_are_refused() {
    for (cidr, why) in [
        ("127.0.0.300/32", "is not a CIDR network"),
        ("127.0.0.1", "is not a CIDR network"),
        ("127.010.0.0/16", "is not a CIDR network"),
        ("127.10.0.0/33", "is not a CIDR network"),
        ("127.10.0.1/16", "has host bits set"),
        ("2001:db8::1/32", "has host bits set"),
        (" 127.10.0.0/16", "is not a CIDR network"),
    ] {
        let mut p = small("acme");
        p.sources.networks[0].cidr = cidr.into();
        let e = err_of(&p);
        assert!(
            e.contains(why) && e.contains("sources.networks[0].cidr"),
            "{cidr}: {e}"
        );
    }
    let mut p = small("acme");
    p.sources.networks[1].cidr = "127.10.0.0/16".into();
    assert!(err_of(&p).contains("listed twice"));
}

#[test]
fn separators_in_names_and_rules_are_refused() {
    for bad in [
        "a|b", "a,b", "a;b", "a\"b", "a\nb", "a\rb", "a b", "a\\b", "",
    ] {
        let mut p = small("acme");
        p.destinations[1].rule = bad.into();
        assert!(err_of(&p).contains("destinations[1].rule"), "{bad:?}");
        let mut p = small("acme");
        p.sources.networks[0].rule = bad.into();
        assert!(err_of(&p).contains("sources.networks[0].rule"), "{bad:?}");
        let mut p = small("acme");
        p.classes[1].class = bad.into();
        assert!(err_of(&p).contains("classes[1].class"), "{bad:?}");
        let mut p = small("acme");
        p.sources.networks[1].trunk = Some(bad.into());
        assert!(err_of(&p).contains("sources.networks[1].trunk"), "{bad:?}");
        let mut p = small("acme");
        p.limits[0].rule = bad.into();
        assert!(err_of(&p).contains("limits[0].rule"), "{bad:?}");
        if !bad.is_empty() {
            assert!(
                Kamailio
                    .render_tenant(&small("acme"), bad, ts(NOW))
                    .is_err(),
                "revision {bad:?}"
            );
        }
    }
    // names are parts of htable keys: no `:`
    let mut p = small("acme");
    p.classes[1].class = "premium:rate".into();
    assert!(err_of(&p).contains("classes[1].class"));
    let mut p = small("acme");
    p.windows[0].name = "off:ice".into();
    assert!(err_of(&p).contains("windows[0].name"));
    let mut p = small("acme");
    p.tenant = "Acme".into();
    assert!(err_of(&p).contains("DNS label"));
}

#[test]
fn prefixes_numbers_countries_zones_and_windows_are_checked() {
    let mut p = small("acme");
    p.destinations[2].prefix = "19x0".into();
    assert!(err_of(&p).contains("destinations[2].prefix"));
    let mut p = small("acme");
    p.destinations[2].prefix = "1234567890123456".into();
    assert!(err_of(&p).contains("1 to 15 digits"));
    let mut p = small("acme");
    p.classes[0].prefix = String::new();
    assert!(err_of(&p).contains("classes[0].prefix"));
    let mut p = small("acme");
    p.emergency_numbers.push("91 1".into());
    assert!(err_of(&p).contains("emergencyNumbers[2]"));
    let mut p = small("acme");
    p.home_country = "XX".into();
    assert!(err_of(&p).contains("no calling code"));
    let mut p = small("acme");
    if let Some(g) = &mut p.sources.geo {
        g.countries.push("ru".into());
    }
    assert!(err_of(&p).contains("alpha-2"));
    let mut p = small("acme");
    p.windows[0].zone = "Mars/Olympus".into();
    assert!(err_of(&p).contains("unknown time zone"));
    let mut p = small("acme");
    p.destinations[3].window = Some(WindowCondition {
        name: "lunch".into(),
        when: WindowWhen::During,
    });
    assert!(err_of(&p).contains("no window `lunch`"));
    let mut p = small("acme");
    p.limits.push(p.limits[0].clone());
    assert!(err_of(&p).contains("a second concurrent limit"));
}

#[test]
fn long_chains_and_many_classes_are_refused() {
    let mut p = small("acme");
    for i in 0..70 {
        p.destinations.push(dest(
            "1555",
            Verdict::Allow,
            &format!("dst:w{i}"),
            Some(("office", WindowWhen::During)),
        ));
    }
    assert!(err_of(&p).contains("at most 64"));
    let mut p = small("acme");
    let mut prefix = String::from("1");
    for i in 0..14 {
        prefix.push('5');
        for j in 0..3 {
            p.classes.push(ClassPrefix {
                prefix: prefix.clone(),
                class: format!("c{i}-{j}"),
            });
        }
    }
    assert!(err_of(&p).contains("at most 32"));
}

#[test]
fn blocks() {
    let mut rows = render(&small("acme"));
    Kamailio::set_blocks(
        &mut rows,
        &[
            ActiveBlock {
                class: None,
                expires: None,
            },
            ActiveBlock {
                class: Some("premium-rate".into()),
                expires: Some(ts("2026-03-05T01:00:00Z")),
            },
            ActiveBlock {
                class: Some("premium-rate".into()),
                expires: Some(ts("2026-03-05T00:30:00Z")),
            },
        ],
    )
    .unwrap();
    assert_eq!(
        table(&rows, "tg_block"),
        format!(
            "acme:0:0:0:0\nacme\\:\\:premium-rate:0:0:{}:0\n",
            epoch("2026-03-05T01:00:00Z")
        )
    );
}

#[test]
fn escaping() {
    assert_eq!(escape("a:b\\c\nd\re\tf"), "a\\:b\\\\c\\nd\\re\\tf");
}

/// Longest-prefix lookup in the country tree, as `mt_match` mode 0 does.
fn country_lookup(number: &str) -> Option<&'static str> {
    let rows = country_rows();
    (1..=number.len()).rev().find_map(|len| {
        let p = &number[..len];
        rows.binary_search_by(|(q, _)| q.as_str().cmp(p))
            .ok()
            .map(|i| rows[i].1)
    })
}

#[test]
fn the_country_tree_answers_as_country_of() {
    let rows = country_rows();
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "sorted, unique");
    assert!(rows.iter().all(|(p, iso)| {
        !p.is_empty()
            && p.len() <= 15
            && p.bytes().all(|b| b.is_ascii_digit())
            && iso.len() == 2
            && iso.bytes().all(|b| b.is_ascii_uppercase())
    }));
    // every row's numbers and a few beyond, against the numbering table
    let mut numbers: Vec<String> = Vec::new();
    for (p, _) in rows {
        for tail in ["", "0", "5", "9", "1234567"] {
            let n = format!("{p}{tail}");
            if n.len() <= 15 {
                numbers.push(n);
            }
        }
    }
    numbers.extend(
        [
            "33142685300",
            "442079460000",
            "441481712345",
            "12125550100",
            "14165550100",
            "18765550100",
            "18005550100",
            "881612345678",
            "88212345678",
            "8613812345678",
            "77172123456",
            "74951234567",
        ]
        .map(String::from),
    );
    for n in &numbers {
        let want = tollgate_policy::numbering::country_of(n).map(|c| c.iso);
        let got = country_lookup(n).filter(|iso| *iso != NO_COUNTRY);
        assert_eq!(got, want, "+{n}");
    }
    assert_eq!(country_lookup("33142685300"), Some("FR"));
    assert_eq!(country_lookup("441481712345"), Some("GG"));
    assert_eq!(country_lookup("442079460000"), Some("GB"));
    assert_eq!(country_lookup("14165550100"), Some("CA"));
    assert_eq!(country_lookup("18005550100"), None);
    assert_eq!(country_lookup("88212345678"), None);
}

#[test]
fn every_bundle_carries_the_fleet_wide_trees_in_their_tables() {
    let a = render(&small("acme"));
    for tenants in [BTreeMap::new(), BTreeMap::from([("acme".into(), a)])] {
        let f = Kamailio.compose(&tenants).unwrap();
        let rows = country_rows();
        let lines: Vec<&str> = f.files[COUNTRY_TABLE].lines().skip(1).collect();
        assert_eq!(lines.len(), rows.len());
        for (i, (p, iso)) in rows.iter().enumerate() {
            assert_eq!(lines[i], format!("{}:{COUNTRY_TREE}:{p}:{iso}", i + 1));
        }
        let dial = dial_rows();
        let lines: Vec<&str> = f.files[DIAL_TABLE].lines().skip(1).collect();
        assert_eq!(lines.len(), dial.len());
        for (i, (k, v)) in dial.iter().enumerate() {
            assert_eq!(lines[i], format!("{}:{DIAL_TREE}:{k}:{v}", i + 1));
        }
        // deterministic: the same bundle twice
        assert_eq!(Kamailio.compose(&tenants).unwrap().hash, f.hash);
    }
}
