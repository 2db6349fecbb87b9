//! Property tests of the formatter: random valid policy texts, built from the
//! grammar with random layout (spacing, indentation, comments, blank lines),
//! must parse without errors, format idempotently, and keep their meaning.

use proptest::prelude::*;
use proptest::sample::select;
use tollgate_policy::ast::File;
use tollgate_policy::fmt::format;
use tollgate_policy::parse::parse;
use tollgate_policy::source::FileId;

fn parse_ok(text: &str) -> Result<File, TestCaseError> {
    let (f, d) = parse(text, FileId(0));
    prop_assert!(d.is_empty(), "diagnostics for\n{text}\n{d:#?}");
    match f {
        Some(f) => Ok(f),
        None => Err(TestCaseError::fail(format!("no tree for\n{text}"))),
    }
}

fn sp() -> impl Strategy<Value = &'static str> {
    select(vec![" ", " ", " ", "  ", "\t"])
}

fn opt_sp() -> impl Strategy<Value = &'static str> {
    select(vec!["", "", " ", "  "])
}

fn comma() -> impl Strategy<Value = &'static str> {
    select(vec![", ", ", ", ",", " , ", ",  "])
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}"
}

fn country() -> impl Strategy<Value = String> {
    "[A-Z]{2}"
}

fn class() -> impl Strategy<Value = String> {
    select(vec![
        "international",
        "premium-rate",
        "satellite",
        "mobile",
        "national",
    ])
    .prop_map(String::from)
}

fn zone() -> impl Strategy<Value = String> {
    select(vec![
        "UTC",
        "Europe/London",
        "America/New_York",
        "Etc/GMT+5",
    ])
    .prop_map(String::from)
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?",
        select(vec![
            "2001:db8::/32",
            "::1",
            "fe80::1/64",
            "2001:db8:10::/48"
        ])
        .prop_map(String::from),
    ]
}

fn prefix() -> impl Strategy<Value = String> {
    (
        "[0-9]{1,3}",
        prop::collection::vec(("[0-9]{1,4}", sp()), 0..3),
    )
        .prop_map(|(first, groups)| {
            let mut s = format!("+{first}");
            for (g, sep) in groups {
                s.push_str(sep);
                s.push_str(&g);
            }
            s
        })
}

fn duration() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), 4)
        .prop_flat_map(|mask| {
            let units: Vec<char> = ['d', 'h', 'm', 's']
                .into_iter()
                .zip(&mask)
                .filter(|(_, m)| **m)
                .map(|(u, _)| u)
                .collect();
            let units = if units.is_empty() { vec!['m'] } else { units };
            let n = units.len();
            (Just(units), prop::collection::vec(0u64..200, n))
        })
        .prop_map(|(units, nums)| {
            units
                .iter()
                .zip(nums)
                .map(|(u, n)| format!("{n}{u}"))
                .collect()
        })
}

fn time() -> impl Strategy<Value = String> {
    "[0-2][0-9]:[0-5][0-9]"
}

fn list<S: Strategy<Value = String>>(item: S, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec((item, comma()), 1..=max).prop_map(|v| {
        let n = v.len();
        let mut s = String::new();
        for (k, (x, c)) in v.into_iter().enumerate() {
            s.push_str(&x);
            if k + 1 < n {
                s.push_str(c);
            }
        }
        s
    })
}

fn day() -> impl Strategy<Value = &'static str> {
    select(vec!["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
}

fn timespan() -> impl Strategy<Value = String> {
    (day(), prop::option::of(day()), sp(), time(), time()).prop_map(|(d, to, s, a, b)| match to {
        Some(t) => format!("{d}-{t}{s}{a}-{b}"),
        None => format!("{d}{s}{a}-{b}"),
    })
}

fn top_item() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z./_-]{1,20}".prop_map(|p| format!("import \"{p}\"")),
        (sp(), country()).prop_map(|(s, c)| format!("home{s}{c}")),
        (sp(), zone()).prop_map(|(s, z)| format!("zone{s}{z}")),
        (
            name(),
            opt_sp(),
            sp(),
            list(timespan(), 3),
            prop::option::of(zone())
        )
            .prop_map(|(n, a, b, spans, z)| match z {
                Some(z) => format!("window {n}{a}:{b}{spans} {z}"),
                None => format!("window {n}{a}:{b}{spans}"),
            }),
    ]
}

fn action() -> impl Strategy<Value = &'static str> {
    select(vec!["allow", "deny"])
}

fn dest_stmt() -> impl Strategy<Value = String> {
    fn window_ref() -> impl Strategy<Value = String> {
        prop::option::of((select(vec!["during", "outside"]), name()))
            .prop_map(|w| w.map_or(String::new(), |(m, n)| format!(" {m} {n}")))
    }
    prop_oneof![
        (
            select(vec!["international", "national"]),
            opt_sp(),
            action()
        )
            .prop_map(|(s, o, a)| format!("{s}{o}: {a}")),
        (action(), list(prefix(), 3), window_ref())
            .prop_map(|(a, l, w)| format!("{a} prefix {l}{w}")),
        (action(), list(country(), 3), window_ref())
            .prop_map(|(a, l, w)| format!("{a} country {l}{w}")),
        (action(), list(class(), 3), window_ref())
            .prop_map(|(a, l, w)| format!("{a} class {l}{w}")),
    ]
}

fn source_stmt() -> impl Strategy<Value = String> {
    prop_oneof![
        (action(), list(address(), 3)).prop_map(|(a, l)| format!("{a} {l}")),
        (action(), list(country(), 3)).prop_map(|(a, l)| format!("{a} country {l}")),
        (name(), list(address(), 3)).prop_map(|(n, l)| format!("trunk {n}: {l}")),
    ]
}

fn levels(unit: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..1000).prop_map(move |w| format!("warning {w}{unit}")),
        (0u64..1000).prop_map(move |c| format!("critical {c}{unit}")),
        (0u64..1000, 0u64..1000, comma(), any::<bool>()).prop_map(move |(w, c, k, swap)| {
            if swap {
                format!("critical {c}{unit}{k}warning {w}{unit}")
            } else {
                format!("warning {w}{unit}{k}critical {c}{unit}")
            }
        }),
    ]
}

fn opt_class() -> impl Strategy<Value = String> {
    prop::option::of(class()).prop_map(|c| c.map_or(String::new(), |c| format!(" {c}")))
}

fn limit_stmt() -> impl Strategy<Value = String> {
    prop_oneof![
        (opt_class(), levels("")).prop_map(|(c, l)| format!("concurrent{c}: {l}")),
        (opt_class(), levels("/min")).prop_map(|(c, l)| format!("rate{c}: {l}")),
        (opt_class(), duration()).prop_map(|(c, d)| format!("duration{c}: {d}")),
    ]
}

fn response_stmt() -> impl Strategy<Value = String> {
    let trigger = prop_oneof![
        (
            select(vec!["concurrent", "rate"]),
            opt_class(),
            select(vec!["warning", "critical"])
        )
            .prop_map(|(m, c, l)| format!("{m}{c} {l}")),
        select(vec!["new-destination", "burst", "night-traffic"])
            .prop_map(|k| format!("anomaly {k}")),
    ];
    let hold = prop_oneof![
        duration().prop_map(|d| format!(" for {d}")),
        Just(" until acknowledged".to_string()),
    ];
    let reaction = prop_oneof![
        Just("alert".to_string()),
        (list(class(), 2), hold.clone()).prop_map(|(l, h)| format!("block class {l}{h}")),
        hold.prop_map(|h| format!("block tenant{h}")),
    ];
    (trigger, reaction).prop_map(|(t, r)| format!("on {t}: {r}"))
}

fn crypto_stmt() -> impl Strategy<Value = String> {
    (
        select(vec!["tls", "srtp", "client-certificate"]),
        select(vec!["required", "optional"]),
    )
        .prop_map(|(k, v)| format!("{k}: {v}"))
}

/// Layout around one statement: blank lines, leading comments, trailing comment.
#[derive(Clone, Debug)]
struct Layout {
    blanks: usize,
    leading: Vec<String>,
    trailing: Option<(String, &'static str)>,
    indent: &'static str,
}

fn comment_text() -> impl Strategy<Value = String> {
    "[ a-zA-Z0-9#:{},\"-]{0,15}"
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        select(vec![0usize, 0, 0, 1, 2]),
        prop::collection::vec(comment_text(), 0..2),
        prop::option::of((comment_text(), select(vec!["", " ", "  ", "\t"]))),
        select(vec!["", "  ", "    ", "\t"]),
    )
        .prop_map(|(blanks, leading, trailing, indent)| Layout {
            blanks,
            leading,
            trailing,
            indent,
        })
}

fn emit(out: &mut String, l: &Layout, indent: &str, content: &str) {
    for _ in 0..l.blanks {
        out.push('\n');
    }
    for c in &l.leading {
        out.push_str(indent);
        out.push('#');
        out.push_str(c);
        out.push('\n');
    }
    out.push_str(indent);
    out.push_str(content);
    if let Some((c, gap)) = &l.trailing {
        out.push_str(gap);
        out.push('#');
        out.push_str(c);
    }
    out.push('\n');
}

fn section() -> impl Strategy<Value = (String, Vec<(Layout, String)>)> {
    fn body<S: Strategy<Value = String> + 'static>(
        kw: &'static str,
        s: S,
    ) -> BoxedStrategy<(String, Vec<(Layout, String)>)> {
        prop::collection::vec((layout(), s), 0..5)
            .prop_map(move |v| (kw.to_string(), v))
            .boxed()
    }
    prop_oneof![
        body("destinations", dest_stmt()),
        body("sources", source_stmt()),
        body("limits", limit_stmt()),
        body("responses", response_stmt()),
        body("crypto", crypto_stmt()),
    ]
}

#[derive(Clone, Debug)]
enum Top {
    Simple(Layout, String),
    Section(Layout, String, Vec<(Layout, String)>, Vec<String>),
}

fn top() -> impl Strategy<Value = Top> {
    prop_oneof![
        (layout(), top_item()).prop_map(|(l, s)| Top::Simple(l, s)),
        (
            layout(),
            section(),
            prop::collection::vec(comment_text(), 0..2)
        )
            .prop_map(|(l, (kw, body), ends)| Top::Section(l, kw, body, ends)),
    ]
}

fn policy() -> impl Strategy<Value = String> {
    (
        layout(),
        select(vec!["tenant", "base"]),
        name(),
        prop::collection::vec(top(), 0..8),
        prop::collection::vec(comment_text(), 0..2),
    )
        .prop_map(|(hl, kind, n, items, ends)| {
            let mut out = String::new();
            emit(
                &mut out,
                &Layout { indent: "", ..hl },
                "",
                &format!("{kind} {n}"),
            );
            for item in items {
                match item {
                    Top::Simple(l, s) => emit(&mut out, &l, "", &s),
                    Top::Section(l, kw, body, end) => {
                        emit(&mut out, &l, "", &format!("{kw} {{"));
                        for (sl, s) in body {
                            let ind = sl.indent;
                            emit(&mut out, &sl, ind, &s);
                        }
                        for c in end {
                            out.push_str("  #");
                            out.push_str(&c);
                            out.push('\n');
                        }
                        out.push_str("}\n");
                    }
                }
            }
            for c in ends {
                out.push('#');
                out.push_str(&c);
                out.push('\n');
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn format_is_idempotent_and_keeps_meaning(text in policy()) {
        let tree = parse_ok(&text)?;
        let formatted = format(&tree);
        let reparsed = parse_ok(&formatted)?;
        prop_assert_eq!(&reparsed, &tree, "formatted:\n{}", formatted);
        let again = format(&reparsed);
        prop_assert_eq!(again, formatted);
    }
}

#[test]
fn formats_the_documented_example_unchanged() {
    let doc = include_str!("../../docs/language.md");
    let start = doc.find("```text\n").map(|i| i + 8).unwrap_or(0);
    let end = doc
        .get(start..)
        .and_then(|s| s.find("```"))
        .map_or(doc.len(), |i| start + i);
    let example = doc.get(start..end).unwrap_or("");
    let (f, d) = parse(example, FileId(0));
    assert!(d.is_empty(), "{d:#?}");
    let f = f.expect("tree");
    assert_eq!(format(&f), example);
}

#[test]
fn formats_messy_layout() {
    let text = "# head\n\n\ntenant   acme # t\nhome\tGB\n\n\n\nzone UTC\ndestinations{\n\n\n    allow country GB,FR   ,DE during biz\n\n\n\n\tdeny prefix +44   20 ,+1 900\n# end\n}# closing\nlimits {\n rate international:critical 10/min,warning 5/min\n duration: 90s\n}\nresponses {}\n# bye\n";
    let (f, d) = parse(text, FileId(0));
    assert!(d.is_empty(), "{d:#?}");
    let got = format(&f.expect("tree"));
    let want = "# head\ntenant acme  # t\nhome GB\n\nzone UTC\n\ndestinations {\n  allow country GB, FR, DE during biz\n\n  deny prefix +44 20, +1 900\n  # end\n  # closing\n}\n\nlimits {\n  rate international: warning 5/min, critical 10/min\n  duration: 1m30s\n}\n\nresponses {\n}\n\n# bye\n";
    assert_eq!(got, want);
}
