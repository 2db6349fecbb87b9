#![allow(clippy::panic, clippy::unwrap_used)]

use super::parse;
use crate::ast::*;
use crate::diag::Diagnostic;
use crate::source::FileId;
use crate::span::Span;

const EXAMPLE: &str = r#"# tenants/acme.tgp
tenant acme
import "../base/standard.tgp"
home US
zone America/New_York

window business: mon-fri 08:00-18:00

destinations {
  international: deny
  allow country CA, GB
  allow country MX during business
  deny prefix +1 900
}

sources {
  allow 198.51.100.0/24, 2001:db8:10::/48
  trunk carrier-a: 203.0.113.10/32
  deny country CN, RU
}

limits {
  concurrent: warning 10, critical 20
  rate international: warning 5/min, critical 10/min
  duration: 2h
}

responses {
  on concurrent critical: block class international for 1h
  on anomaly new-destination: block tenant until acknowledged
}

crypto {
  tls: required
  srtp: required
}
"#;

fn ok(text: &str) -> File {
    let (f, d) = parse(text, FileId(0));
    assert!(d.is_empty(), "unexpected diagnostics: {d:#?}");
    f.expect("a tree")
}

fn errs(text: &str) -> Vec<Diagnostic> {
    parse(text, FileId(0)).1
}

fn codes(text: &str) -> Vec<&'static str> {
    errs(text).iter().map(|d| d.code.as_str()).collect()
}

/// The one diagnostic of `text`, with the text its span covers.
fn one(text: &str) -> (Diagnostic, &str) {
    let d = errs(text);
    assert_eq!(d.len(), 1, "expected one diagnostic: {d:#?}");
    let d = d.into_iter().next().expect("one");
    let s = text
        .get(d.label.span.start..d.label.span.end)
        .unwrap_or("<bad span>");
    (d, s)
}

fn section_stmts<T: Clone>(f: &File, pick: impl Fn(&Item) -> Option<&Block<T>>) -> Vec<T> {
    f.items
        .iter()
        .filter_map(|i| pick(&i.node))
        .flat_map(|b| b.stmts.iter().map(|s| s.node.clone()))
        .collect()
}

fn dests(text: &str) -> Vec<DestStmt> {
    let f = ok(&format!("tenant t\ndestinations {{\n{text}\n}}\n"));
    section_stmts(&f, |i| match i {
        Item::Destinations(b) => Some(b),
        _ => None,
    })
}

fn sources(text: &str) -> Vec<SourceStmt> {
    let f = ok(&format!("tenant t\nsources {{\n{text}\n}}\n"));
    section_stmts(&f, |i| match i {
        Item::Sources(b) => Some(b),
        _ => None,
    })
}

fn limits(text: &str) -> Vec<LimitStmt> {
    let f = ok(&format!("tenant t\nlimits {{\n{text}\n}}\n"));
    section_stmts(&f, |i| match i {
        Item::Limits(b) => Some(b),
        _ => None,
    })
}

fn responses(text: &str) -> Vec<ResponseStmt> {
    let f = ok(&format!("tenant t\nresponses {{\n{text}\n}}\n"));
    section_stmts(&f, |i| match i {
        Item::Responses(b) => Some(b),
        _ => None,
    })
}

fn crypto(text: &str) -> Vec<CryptoStmt> {
    let f = ok(&format!("tenant t\ncrypto {{\n{text}\n}}\n"));
    section_stmts(&f, |i| match i {
        Item::Crypto(b) => Some(b),
        _ => None,
    })
}

fn id(s: &str) -> Ident {
    Ident::new(s.to_string(), Span::default())
}

fn sp<T>(t: T) -> crate::span::Spanned<T> {
    crate::span::Spanned::new(t, Span::default())
}

#[test]
fn parses_the_documented_example() {
    let f = ok(EXAMPLE);
    assert_eq!(f.header.node.kind.node, FileKind::Tenant);
    assert_eq!(f.header.node.name.node, "acme");
    assert_eq!(f.header.trivia.leading[0].text, " tenants/acme.tgp");
    assert_eq!(f.items.len(), 9);
    assert!(matches!(&f.items[0].node, Item::Import(p) if p.node == "../base/standard.tgp"));
    assert!(matches!(&f.items[1].node, Item::Home(c) if c.node == "US"));
    assert!(matches!(&f.items[2].node, Item::Zone(z) if z.node == "America/New_York"));
    assert!(f.items[3].trivia.blank_before);
}

#[test]
fn header_kinds_and_spans() {
    let f = ok("base standard\n");
    assert_eq!(f.header.node.kind.node, FileKind::Base);
    assert_eq!(f.header.node.kind.span, Span::new(0, 4));
    assert_eq!(f.header.node.name.span, Span::new(5, 13));
    assert_eq!(f.header.span, Span::new(0, 13));
}

#[test]
fn window_forms() {
    let f = ok(
        "tenant t\nwindow night: mon-sun 22:00-06:00, sat 09:00-13:00 Europe/London\nwindow w: fri 24:00-25:61\n",
    );
    let Item::Window(w) = &f.items[0].node else {
        panic!("not a window")
    };
    assert_eq!(w.name.node, "night");
    assert_eq!(w.spans.len(), 2);
    assert_eq!(w.spans[0].from_day.node, "mon");
    assert_eq!(
        w.spans[0].to_day.as_ref().map(|d| d.node.as_str()),
        Some("sun")
    );
    assert_eq!(
        w.spans[0].start.node,
        ClockTime {
            hour: 22,
            minute: 0
        }
    );
    assert_eq!(w.spans[1].to_day, None);
    assert_eq!(
        w.zone.as_ref().map(|z| z.node.as_str()),
        Some("Europe/London")
    );
    // Out-of-range times are kept for the checker.
    let Item::Window(w) = &f.items[1].node else {
        panic!("not a window")
    };
    assert_eq!(
        w.spans[0].end.node,
        ClockTime {
            hour: 25,
            minute: 61
        }
    );
    assert_eq!(w.zone, None);
}

#[test]
fn destination_forms() {
    let d = dests(
        "international: deny\nnational: allow\nallow country CA, GB\nallow class premium-rate, satellite outside business\ndeny prefix +1 900, +44  20 7 during night",
    );
    assert_eq!(
        d[0],
        DestStmt::Default {
            scope: sp(Scope::International),
            action: sp(Action::Deny)
        }
    );
    assert_eq!(
        d[1],
        DestStmt::Default {
            scope: sp(Scope::National),
            action: sp(Action::Allow)
        }
    );
    assert_eq!(
        d[2],
        DestStmt::Rule {
            action: sp(Action::Allow),
            selector: Selector::Country(vec![id("CA"), id("GB")]),
            window: None
        }
    );
    assert_eq!(
        d[3],
        DestStmt::Rule {
            action: sp(Action::Allow),
            selector: Selector::Class(vec![id("premium-rate"), id("satellite")]),
            window: Some(WindowRef {
                mode: sp(WindowMode::Outside),
                name: id("business")
            })
        }
    );
    assert_eq!(
        d[4],
        DestStmt::Rule {
            action: sp(Action::Deny),
            selector: Selector::Prefix(vec![
                sp(Prefix {
                    text: "+1 900".into()
                }),
                sp(Prefix {
                    text: "+44 20 7".into()
                })
            ]),
            window: Some(WindowRef {
                mode: sp(WindowMode::During),
                name: id("night")
            })
        }
    );
}

#[test]
fn prefix_span_covers_all_groups() {
    let text = "tenant t\ndestinations {\n  deny prefix +44  20 7\n}\n";
    let f = ok(text);
    let Item::Destinations(b) = &f.items[0].node else {
        panic!("not destinations")
    };
    let DestStmt::Rule {
        selector: Selector::Prefix(p),
        ..
    } = &b.stmts[0].node
    else {
        panic!("not a prefix rule")
    };
    assert_eq!(&text[p[0].span.start..p[0].span.end], "+44  20 7");
    assert_eq!(p[0].digits(), "44207");
}

#[test]
fn source_forms() {
    let s = sources(
        "allow 198.51.100.0/24, 2001:db8::/32\ndeny country CN, RU\ntrunk carrier-a: 203.0.113.10/32, 203.0.113.11\nallow 999.1.1.1/77",
    );
    assert_eq!(
        s[0],
        SourceStmt::Networks {
            action: sp(Action::Allow),
            networks: vec![id("198.51.100.0/24"), id("2001:db8::/32")]
        }
    );
    assert_eq!(
        s[1],
        SourceStmt::Countries {
            action: sp(Action::Deny),
            countries: vec![id("CN"), id("RU")]
        }
    );
    assert_eq!(
        s[2],
        SourceStmt::Trunk {
            name: id("carrier-a"),
            networks: vec![id("203.0.113.10/32"), id("203.0.113.11")]
        }
    );
    // Invalid CIDR text is semantic, not syntax.
    assert_eq!(
        s[3],
        SourceStmt::Networks {
            action: sp(Action::Allow),
            networks: vec![id("999.1.1.1/77")]
        }
    );
}

#[test]
fn limit_forms() {
    let l = limits(
        "concurrent: warning 10, critical 20\nrate international: critical 10/min\nduration premium-rate: 1h30m\nconcurrent: critical 5, warning 3",
    );
    assert_eq!(
        l[0],
        LimitStmt {
            metric: sp(Metric::Concurrent),
            class: None,
            value: LimitValue::Levels {
                warning: Some(sp(10)),
                critical: Some(sp(20))
            }
        }
    );
    assert_eq!(
        l[1],
        LimitStmt {
            metric: sp(Metric::Rate),
            class: Some(id("international")),
            value: LimitValue::Levels {
                warning: None,
                critical: Some(sp(10))
            }
        }
    );
    assert_eq!(
        l[2],
        LimitStmt {
            metric: sp(Metric::Duration),
            class: Some(id("premium-rate")),
            value: LimitValue::Max(sp(Duration { seconds: 5400 }))
        }
    );
    assert_eq!(
        l[3].value,
        LimitValue::Levels {
            warning: Some(sp(3)),
            critical: Some(sp(5))
        }
    );
}

#[test]
fn durations() {
    for (t, s) in [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1d2h3m4s", 93784),
        ("0s", 0),
    ] {
        let l = limits(&format!("duration: {t}"));
        assert_eq!(
            l[0].value,
            LimitValue::Max(sp(Duration { seconds: s })),
            "{t}"
        );
    }
    for t in ["2", "2x", "30m1h", "1h1h", "h", "1.5h"] {
        let text = format!("tenant t\nlimits {{\nduration: {t}\n}}\n");
        assert_eq!(codes(&text), ["syntax::bad-duration"], "{t}");
    }
}

#[test]
fn response_forms() {
    let r = responses(
        "on concurrent critical: block class international, premium-rate for 1h\non rate international warning: alert\non anomaly new-destination: block tenant until acknowledged",
    );
    assert_eq!(
        r[0],
        ResponseStmt {
            trigger: Trigger::Breach {
                metric: sp(Metric::Concurrent),
                class: None,
                level: sp(Level::Critical)
            },
            action: ResponseAction::BlockClasses(
                Span::default(),
                vec![id("international"), id("premium-rate")]
            ),
            hold: Some(sp(Hold::For(Duration { seconds: 3600 }))),
        }
    );
    assert_eq!(
        r[1],
        ResponseStmt {
            trigger: Trigger::Breach {
                metric: sp(Metric::Rate),
                class: Some(id("international")),
                level: sp(Level::Warning)
            },
            action: ResponseAction::Alert(Span::default()),
            hold: None,
        }
    );
    assert_eq!(
        r[2].trigger,
        Trigger::Anomaly {
            kind: id("new-destination")
        }
    );
    assert_eq!(r[2].hold.map(|h| h.node), Some(Hold::UntilAcknowledged));
}

#[test]
fn crypto_forms() {
    let c = crypto("tls: required\nsrtp: optional\nclient-certificate: required");
    assert_eq!(
        c[0],
        CryptoStmt {
            key: sp(CryptoKey::Tls),
            value: sp(Requirement::Required)
        }
    );
    assert_eq!(
        c[1],
        CryptoStmt {
            key: sp(CryptoKey::Srtp),
            value: sp(Requirement::Optional)
        }
    );
    assert_eq!(c[2].key.node, CryptoKey::ClientCertificate);
}

#[test]
fn empty_and_repeated_sections() {
    let f = ok("tenant t\ncrypto {}\ncrypto {\n}\ncrypto {\n  tls: required\n}\n");
    assert_eq!(f.items.len(), 3);
}

#[test]
fn comments_and_blank_lines_are_trivia() {
    let text = "# top\n\ntenant t  # the tenant\n\n\n# about home\nhome GB\n\nsources {  # open\n\n  # first\n  allow 10.0.0.0/8  # lan\n\n  # second\n\n  deny country CN\n  # end of block\n}  # close\n# end of file\n";
    let f = ok(text);
    assert_eq!(f.header.trivia.leading.len(), 1);
    assert!(!f.header.trivia.blank_before);
    assert_eq!(
        f.header.trivia.trailing.as_ref().map(|c| c.text.as_str()),
        Some(" the tenant")
    );
    let home = &f.items[0];
    assert!(home.trivia.blank_before);
    assert_eq!(home.trivia.leading[0].text, " about home");
    let src = &f.items[1];
    assert_eq!(
        src.trivia.trailing.as_ref().map(|c| c.text.as_str()),
        Some(" open")
    );
    let Item::Sources(b) = &src.node else {
        panic!("not sources")
    };
    assert!(
        !b.stmts[0].trivia.blank_before,
        "no blank before the first statement"
    );
    assert_eq!(b.stmts[0].trivia.leading[0].text, " first");
    assert_eq!(
        b.stmts[0].trivia.trailing.as_ref().map(|c| c.text.as_str()),
        Some(" lan")
    );
    assert!(b.stmts[1].trivia.blank_before);
    assert_eq!(b.stmts[1].trivia.leading[0].text, " second");
    let ends: Vec<&str> = b.end_comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(ends, [" end of block", " close"]);
    assert_eq!(f.end_comments[0].text, " end of file");
    let c = &f.end_comments[0];
    assert_eq!(&text[c.span.start..c.span.end], "# end of file");
}

#[test]
fn hash_inside_a_string_is_not_a_comment() {
    let f = ok("tenant t\nimport \"a#b.tgp\"  # real\n");
    assert!(matches!(&f.items[0].node, Item::Import(p) if p.node == "a#b.tgp"));
    assert_eq!(
        f.items[0].trivia.trailing.as_ref().map(|c| c.text.as_str()),
        Some(" real")
    );
}

#[test]
fn crlf_and_tabs() {
    let f = ok("tenant t\r\nlimits {\r\n\tconcurrent:\twarning 1\r\n}\r\n");
    assert_eq!(f.items.len(), 1);
}

// ---------------------------------------------------------------- errors

#[test]
fn missing_header() {
    let (d, s) = one("home GB\n");
    assert_eq!(d.code.as_str(), "syntax::missing-header");
    assert_eq!(s, "home");
    assert_eq!(parse("home GB\n", FileId(0)).0, None);
    let (d, s) = one("tenat acme\nhome GB\n");
    assert_eq!((d.code.as_str(), s), ("syntax::missing-header", "tenat"));
    assert_eq!(d.help.as_deref(), Some("did you mean `tenant`?"));
    let (d, _) = one("# only a comment\n");
    assert_eq!(d.code.as_str(), "syntax::missing-header");
    assert_eq!(d.label.span, Span::new(0, 0));
    assert_eq!(codes(""), ["syntax::missing-header"]);
}

#[test]
fn bad_header_gives_no_tree_but_all_errors() {
    let (f, d) = parse("tenant Acme\nhom GB\n", FileId(0));
    assert!(f.is_none());
    let c: Vec<_> = d.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(c, ["syntax::bad-name", "syntax::unknown-statement"]);
}

#[test]
fn duplicate_header() {
    let text = "tenant a\nhome GB\nbase b\n";
    let (d, s) = one(text);
    assert_eq!((d.code.as_str(), s), ("syntax::duplicate-header", "base"));
    assert_eq!(d.related[0].span, Span::new(0, 8));
}

#[test]
fn unknown_statements_suggest_keywords() {
    let (d, s) = one("tenant t\ndestnations {\n  allow country GB\n}\n");
    assert_eq!(
        (d.code.as_str(), s),
        ("syntax::unknown-statement", "destnations")
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `destinations`?"));
    let (d, s) = one("tenant t\ndestinations {\n  alow country GB\n}\n");
    assert_eq!((d.code.as_str(), s), ("syntax::unknown-statement", "alow"));
    assert_eq!(d.help.as_deref(), Some("did you mean `allow`?"));
    let (d, _) = one("tenant t\ndestinations {\n  tls: required\n}\n");
    assert!(
        d.help.as_deref().is_some_and(|h| h.contains("`crypto`")),
        "{d:?}"
    );
    let (d, s) = one("tenant t\nlimits {\n  concurent: warning 1\n}\n");
    assert_eq!(
        (d.code.as_str(), s),
        ("syntax::unknown-statement", "concurent")
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `concurrent`?"));
}

#[test]
fn unknown_keywords_suggest_keywords() {
    let cases = [
        ("destinations {\n  allow contry GB\n}", "contry", "country"),
        (
            "destinations {\n  allow country GB durng biz\n}",
            "durng",
            "during",
        ),
        ("destinations {\n  international: dny\n}", "dny", "deny"),
        ("sources {\n  deny contry CN\n}", "contry", "country"),
        ("limits {\n  concurrent: warnig 1\n}", "warnig", "warning"),
        (
            "responses {\n  on concurent critical: alert\n}",
            "concurent",
            "concurrent",
        ),
        (
            "responses {\n  on concurrent critcal: alert\n}",
            "critcal",
            "critical",
        ),
        ("responses {\n  on anomaly x: alrt\n}", "alrt", "alert"),
        (
            "responses {\n  on anomaly x: block tenat for 1h\n}",
            "tenat",
            "tenant",
        ),
        (
            "responses {\n  on anomaly x: block tenant fr 1h\n}",
            "fr",
            "for",
        ),
        (
            "responses {\n  on anomaly x: block tenant until acknowleged\n}",
            "acknowleged",
            "acknowledged",
        ),
        ("crypto {\n  tls: requred\n}", "requred", "required"),
    ];
    for (body, tok, want) in cases {
        let text = format!("tenant t\n{body}\n");
        let (d, s) = one(&text);
        assert_eq!(
            (d.code.as_str(), s),
            ("syntax::unknown-keyword", tok),
            "{body}"
        );
        assert_eq!(d.help, Some(format!("did you mean `{want}`?")), "{body}");
    }
}

#[test]
fn error_spans_are_exact() {
    // `+44a` at bytes 38..42.
    let text = "tenant t\ndestinations {\n  deny prefix +44a\n}\n";
    let (d, _) = one(text);
    assert_eq!(d.code.as_str(), "syntax::bad-prefix");
    assert_eq!(d.label.span, Span::new(38, 42));
    assert_eq!(&text[38..42], "+44a");
    // missing `:` points at the token where it was expected
    let text = "tenant t\ncrypto {\n  tls required\n}\n";
    let (d, s) = one(text);
    assert_eq!((d.code.as_str(), s), ("syntax::expected", "required"));
    assert_eq!(d.label.span, Span::new(24, 32));
    // end of line: an empty span at the end of the content
    let text = "tenant t\nhome\n";
    let (d, _) = one(text);
    assert_eq!(d.code.as_str(), "syntax::expected");
    assert_eq!(d.label.span, Span::new(13, 13));
    // day
    let text = "tenant t\nwindow w: mon-fry 08:00-09:00\n";
    let (d, s) = one(text);
    assert_eq!((d.code.as_str(), s), ("syntax::bad-day", "fry"));
    assert_eq!(d.label.span, Span::new(23, 26));
    assert_eq!(d.help.as_deref(), Some("did you mean `fri`?"));
}

#[test]
fn value_errors() {
    let t = |body: &str| {
        let text = format!("tenant t\n{body}\n");
        let (d, s) = one(&text);
        (d.code.as_str(), s.to_string())
    };
    assert_eq!(
        t("destinations {\n deny prefix +\n}"),
        ("syntax::bad-prefix", "+".into())
    );
    assert_eq!(
        t("destinations {\n deny prefix 44\n}"),
        ("syntax::bad-prefix", "44".into())
    );
    assert_eq!(
        t("destinations {\n deny prefix +44 2x\n}"),
        ("syntax::bad-prefix", "2x".into())
    );
    assert_eq!(
        t("window w: mon 8:00-09:00"),
        ("syntax::bad-time", "8:00".into())
    );
    assert_eq!(
        t("window w: mon 08:00-9pm"),
        ("syntax::bad-time", "9pm".into())
    );
    assert_eq!(
        t("window w: monday 08:00-09:00"),
        ("syntax::bad-day", "monday".into())
    );
    assert_eq!(
        t("import \"abc"),
        ("syntax::unterminated-string", "\"abc".into())
    );
    assert_eq!(
        t("limits {\n rate: warning 5\n}"),
        ("syntax::missing-rate-unit", "5".into())
    );
    assert_eq!(
        t("limits {\n concurrent: warning 5/min\n}"),
        ("syntax::unexpected-rate-unit", "/min".into())
    );
    assert_eq!(
        t("limits {\n rate: warning 5/sec\n}"),
        ("syntax::bad-rate-unit", "/sec".into())
    );
    assert_eq!(
        t("limits {\n concurrent: warning 1, warning 2\n}"),
        ("syntax::duplicate-level", "warning".into())
    );
    assert_eq!(
        t("limits {\n concurrent: warning 10x\n}"),
        ("syntax::bad-number", "10x".into())
    );
    assert_eq!(
        t("limits {\n concurrent: warning 18446744073709551616\n}"),
        ("syntax::number-overflow", "18446744073709551616".into())
    );
    assert_eq!(
        t("limits {\n duration: 999999999999999999d\n}").0,
        "syntax::number-overflow"
    );
    assert_eq!(
        t("window Biz: mon 08:00-09:00"),
        ("syntax::bad-name", "Biz".into())
    );
    assert_eq!(t("home GB FR"), ("syntax::trailing-input", "FR".into()));
    let l = limits("concurrent: warning 18446744073709551615");
    assert_eq!(
        l[0].value,
        LimitValue::Levels {
            warning: Some(sp(u64::MAX)),
            critical: None
        }
    );
}

#[test]
fn trailing_input_spans_the_rest_of_the_line() {
    let text = "tenant t
destinations {
  allow country GB FR DE  # c
}
";
    let (d, s) = one(text);
    assert_eq!((d.code.as_str(), s), ("syntax::trailing-input", "FR DE"));
}

#[test]
fn unclosed_block_before_next_section() {
    let text = "tenant t
destinations {
  allow country GB
sources {
  allow 10.0.0.0/8
}
";
    let (f, d) = parse(text, FileId(0));
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].code.as_str(), "syntax::unclosed-block");
    assert_eq!(d[0].label.span, Span::new(9, 21)); // `destinations`
    assert!(d[0].help.is_some());
    assert_eq!(
        &text[d[0].related[0].span.start..d[0].related[0].span.end],
        "sources"
    );
    // both sections are still in the tree
    assert_eq!(f.map(|f| f.items.len()), Some(2));
}

#[test]
fn unclosed_block_at_end_of_file() {
    let text = "tenant t
limits {
  concurrent: warning 1
";
    let (d, s) = one(text);
    assert_eq!((d.code.as_str(), s), ("syntax::unclosed-block", "limits"));
}

#[test]
fn stray_close() {
    let text = "tenant t
home GB
}
zone UTC
";
    let (f, d) = parse(text, FileId(0));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code.as_str(), "syntax::unexpected-close");
    assert_eq!(d[0].label.span, Span::new(17, 18));
    assert_eq!(f.map(|f| f.items.len()), Some(2));
}

#[test]
fn recovery_reports_every_error() {
    let text = "\
tenant t
hom GB
window w: mon-fry 08:00-18:00
destinations {
  allow contry GB
  deny prefix 44
  allow country FR
}
}
limits {
  rate: warning 5
  concurent: critical 1
  concurrent: critical 2
responses {
  on anomaly x: alert
}
crypto {
  tls: maybe
";
    let (f, d) = parse(text, FileId(0));
    let c: Vec<_> = d.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(
        c,
        [
            "syntax::unknown-statement",
            "syntax::bad-day",
            "syntax::unknown-keyword",
            "syntax::bad-prefix",
            "syntax::unexpected-close",
            "syntax::missing-rate-unit",
            "syntax::unknown-statement",
            "syntax::unclosed-block",
            "syntax::unknown-keyword",
            "syntax::unclosed-block",
        ]
    );
    let f = f.expect("tree");
    // the good statements survive
    let kinds: Vec<usize> = f
        .items
        .iter()
        .map(|i| match &i.node {
            Item::Destinations(b) => b.stmts.len(),
            Item::Limits(b) => b.stmts.len(),
            Item::Responses(b) => b.stmts.len(),
            Item::Crypto(b) => b.stmts.len(),
            _ => 99,
        })
        .collect();
    assert_eq!(kinds, [1, 1, 1, 0]);
}

#[test]
fn unknown_section_body_is_skipped() {
    let text = "tenant t
whatever {
  nonsense here
}
home GB
";
    let (f, d) = parse(text, FileId(0));
    assert_eq!(d.len(), 1);
    assert_eq!(f.map(|f| f.items.len()), Some(1));
}

#[test]
fn messages_follow_the_style() {
    let text = "tenant t
hom GB
window w: mon-fry 08:00-18:00
destinations {
  allow contry GB
  deny prefix 44
}
}
limits {
  rate: warning 5
";
    for d in errs(text) {
        assert!(!d.message.ends_with('.'), "{}", d.message);
        assert!(
            d.message.chars().next().is_some_and(|c| !c.is_uppercase()),
            "{}",
            d.message
        );
        assert!(d.help.is_some(), "{}", d.message);
    }
}

#[test]
fn never_panics_on_odd_input() {
    let long = "a".repeat(100_000);
    let inputs = [
        "\u{feff}tenant t",
        "tenant t\n\u{0}\u{7f}",
        "tenant t\nimport \"é#\"",
        "tenant t\ndestinations {\n  allow country é, ü during ñ\n}",
        "tenant t\nwindow w: ß 0é:00-",
        "tenant t\n{{{{}}}}",
        "tenant t\n\u{2003}home GB",
        "}",
        "\n\n\n",
        long.as_str(),
        "tenant t\nlimits {\n  rate x: warning 1/",
        "tenant t\nresponses {\n  on\n  on rate\n  on rate x warning\n  on rate x warning:\n}",
    ];
    for i in inputs {
        let _ = parse(i, FileId(0));
    }
    let deep = "destinations {\n".repeat(2000);
    let _ = parse(&format!("tenant t\n{deep}"), FileId(0));
}

#[test]
fn long_tokens_are_cut_in_messages() {
    let text = format!("tenant t\n{}\n", "x".repeat(10_000));
    let (d, _) = one(&text);
    assert!(d.message.len() < 100, "{}", d.message);
    assert_eq!(d.label.span, Span::new(9, 10_009));
}
