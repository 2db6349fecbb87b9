use super::*;
use crate::fixtures::*;
use tollgate_ir::{ResponseAction, ResponseTrigger as T};

fn mapped(status: &str, pairs: &[(&str, &str)]) -> Mapped {
    let a: Alert = serde_json::from_value(alert(status, "fp", pairs)).unwrap();
    map_alert(&a)
}

#[test]
fn label_mapping() {
    let alert_ref = |name: &str| AlertRef {
        name: name.into(),
        fingerprint: "fp".into(),
        starts_at: "2026-11-25T10:00:00.000Z".into(),
        summary: Some("acme: concurrent at or above 2".into()),
    };
    let respond = |trigger: T, name: &str| {
        Mapped::Action(AlertAction::Respond {
            namespace: "tenants".into(),
            policy: "acme".into(),
            tenant: "acme".into(),
            trigger,
            alert: alert_ref(name),
        })
    };
    let ns = ("namespace", "tenants");
    let pol = ("tollgate_policy", "acme");
    let ten = ("tollgate_tenant", "acme");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Mapped);
    let table: Vec<Case> = vec![
        (
            "limit with class and tollgate_level",
            BREACH.to_vec(),
            respond(
                T::Breach {
                    metric: LimitMetric::Concurrent,
                    class: Some("international".into()),
                    level: AlertLevel::Critical,
                },
                "TollgateConcurrentCritical",
            ),
        ),
        (
            "tenant-wide rate, severity as the level, plain `tenant`",
            vec![
                ("alertname", "R"),
                ns,
                pol,
                ("tenant", "acme"),
                ("tollgate_limit", "rate"),
                ("severity", "warning"),
            ],
            respond(
                T::Breach {
                    metric: LimitMetric::Rate,
                    class: None,
                    level: AlertLevel::Warning,
                },
                "R",
            ),
        ),
        (
            "tollgate_level wins over severity",
            vec![
                ("alertname", "D"),
                ns,
                pol,
                ten,
                ("tollgate_limit", "duration"),
                ("tollgate_level", "critical"),
                ("severity", "warning"),
            ],
            respond(
                T::Breach {
                    metric: LimitMetric::Duration,
                    class: None,
                    level: AlertLevel::Critical,
                },
                "D",
            ),
        ),
        (
            "anomaly",
            vec![
                ("alertname", "N"),
                ns,
                pol,
                ten,
                ("tollgate_anomaly", "new-destination"),
                ("country", "IE"),
            ],
            respond(
                T::Anomaly {
                    anomaly: "new-destination".into(),
                },
                "N",
            ),
        ),
        (
            "anomaly wins over limit",
            vec![
                ("alertname", "U"),
                ns,
                pol,
                ten,
                ("tollgate_anomaly", "unusual-hours"),
                ("tollgate_limit", "rate"),
            ],
            respond(
                T::Anomaly {
                    anomaly: "unusual-hours".into(),
                },
                "U",
            ),
        ),
        (
            "revision: rollback, even with a tenant",
            vec![
                ("alertname", "B"),
                ns,
                pol,
                ten,
                ("tollgate_revision", "acme-r2"),
                ("tollgate_anomaly", "traffic"),
            ],
            Mapped::Action(AlertAction::Rollback {
                namespace: "tenants".into(),
                policy: "acme".into(),
                revision: "acme-r2".into(),
                alert: alert_ref("B"),
            }),
        ),
        (
            "no namespace",
            vec![pol, ten, ("tollgate_anomaly", "traffic")],
            Mapped::Ignored("no `namespace` label".into()),
        ),
        (
            "no policy",
            vec![ns, ten, ("tollgate_anomaly", "traffic")],
            Mapped::Ignored("no `tollgate_policy` label".into()),
        ),
        (
            "no tenant",
            vec![ns, pol, ("tollgate_anomaly", "traffic")],
            Mapped::Ignored(
                "no `tollgate_revision` and no `tollgate_tenant` (or `tenant`) label".into(),
            ),
        ),
        (
            "neither anomaly nor limit",
            vec![ns, pol, ten, ("severity", "critical")],
            Mapped::Ignored(
                "neither `tollgate_anomaly` nor `tollgate_limit`: not a Tollgate alert".into(),
            ),
        ),
        (
            "unknown anomaly",
            vec![ns, pol, ten, ("tollgate_anomaly", "any")],
            Mapped::Ignored(
                "`tollgate_anomaly` must be one of new-destination, unusual-hours, traffic".into(),
            ),
        ),
        (
            "unknown limit",
            vec![
                ns,
                pol,
                ten,
                ("tollgate_limit", "bandwidth"),
                ("severity", "critical"),
            ],
            Mapped::Ignored("`tollgate_limit` must be concurrent, rate or duration".into()),
        ),
        (
            "limit without a level",
            vec![
                ns,
                pol,
                ten,
                ("tollgate_limit", "rate"),
                ("severity", "info"),
            ],
            Mapped::Ignored(
                "a limit alert needs `tollgate_level` (or `severity`) warning or critical".into(),
            ),
        ),
        (
            "bad namespace",
            vec![
                ("namespace", "Tenants"),
                pol,
                ten,
                ("tollgate_anomaly", "traffic"),
            ],
            Mapped::Ignored("`namespace` is not a namespace name".into()),
        ),
        (
            "bad tenant",
            vec![
                ns,
                pol,
                ("tollgate_tenant", "../acme"),
                ("tollgate_anomaly", "traffic"),
            ],
            Mapped::Ignored("the tenant label is not a tenant name".into()),
        ),
        (
            "bad class",
            vec![
                ns,
                pol,
                ten,
                ("tollgate_limit", "rate"),
                ("severity", "warning"),
                ("tollgate_class", "a b"),
            ],
            Mapped::Ignored("`tollgate_class` is not a class name".into()),
        ),
        (
            "bad revision",
            vec![ns, pol, ("tollgate_revision", "r 1")],
            Mapped::Ignored("`tollgate_revision` is not an object name".into()),
        ),
    ];
    for (what, pairs, want) in table {
        assert_eq!(mapped("firing", &pairs), want, "{what}");
        assert_eq!(
            mapped("resolved", &pairs),
            Mapped::Resolved,
            "{what} resolved"
        );
    }
}

#[test]
fn fingerprint_fallback() {
    let mut a: Alert = serde_json::from_value(alert("firing", "", BREACH)).unwrap();
    let f = fingerprint_of(&a);
    assert_eq!(f.len(), 16);
    a.labels.insert("x".into(), "y".into());
    assert_ne!(fingerprint_of(&a), f);
}

#[test]
fn seen_is_bounded() {
    let now = Instant::now();
    let k = |i: u32| (format!("f{i}"), "t".to_string(), "firing".to_string());
    let mut s = Seen::new(3, Duration::from_secs(60));
    for i in 0..5 {
        assert!(s.claim(k(i), now));
    }
    assert_eq!(s.len(), 3);
    assert!(s.claim(k(0), now), "the oldest was evicted");
    assert!(!s.claim(k(4), now));
    // time-bounded
    let later = now + Duration::from_secs(61);
    assert!(s.claim(k(4), later));
    assert_eq!(s.len(), 1);
    s.release(&k(4));
    assert!(s.is_empty());
    assert!(s.claim(k(4), later));
}

fn policy_with(responses: Vec<tollgate_ir::Response>) -> CompiledPolicy {
    CompiledPolicy {
        tenant: "acme".into(),
        home_country: "US".into(),
        numbering_plan: String::new(),
        emergency_numbers: vec!["911".into()],
        destinations: vec![],
        classes: vec![],
        sources: Default::default(),
        windows: vec![],
        limits: vec![],
        responses,
        crypto: Default::default(),
        rules: vec![],
    }
}

fn resp(trigger: T, rule: &str) -> tollgate_ir::Response {
    tollgate_ir::Response {
        trigger,
        action: ResponseAction::BlockTenant,
        hold_seconds: Some(900),
        until_acknowledged: false,
        rule: rule.into(),
    }
}

#[test]
fn responses_match() {
    let breach = |class: Option<&str>, level| T::Breach {
        metric: LimitMetric::Concurrent,
        class: class.map(Into::into),
        level,
    };
    let p = policy_with(vec![
        resp(
            T::Anomaly {
                anomaly: "any".into(),
            },
            "any",
        ),
        resp(breach(None, AlertLevel::Critical), "conc-crit"),
        resp(
            T::Anomaly {
                anomaly: "new-destination".into(),
            },
            "newdst",
        ),
        resp(
            breach(Some("international"), AlertLevel::Critical),
            "intl-crit",
        ),
        resp(
            T::Breach {
                metric: LimitMetric::Rate,
                class: None,
                level: AlertLevel::Warning,
            },
            "rate-warn",
        ),
    ]);
    let ids = |t: T| {
        responses_for(&p, &t)
            .iter()
            .map(|r| r.rule.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(T::Anomaly {
            anomaly: "new-destination".into()
        }),
        ["any", "newdst"]
    );
    assert_eq!(
        ids(T::Anomaly {
            anomaly: "traffic".into()
        }),
        ["any"]
    );
    assert_eq!(ids(breach(None, AlertLevel::Critical)), ["conc-crit"]);
    assert_eq!(ids(breach(None, AlertLevel::Warning)), Vec::<&str>::new());
    assert_eq!(
        ids(breach(Some("international"), AlertLevel::Critical)),
        ["intl-crit"]
    );
    assert_eq!(
        ids(breach(Some("premium-rate"), AlertLevel::Critical)),
        Vec::<&str>::new()
    );
    assert_eq!(
        ids(T::Breach {
            metric: LimitMetric::Rate,
            class: None,
            level: AlertLevel::Warning
        }),
        ["rate-warn"]
    );
    assert!(responses_for(&policy_with(vec![]), &breach(None, AlertLevel::Critical)).is_empty());
}

#[test]
fn payload_parse() {
    let p =
        parse_payload(&serde_json::to_vec(&payload(vec![alert("firing", "f", BREACH)])).unwrap())
            .unwrap();
    assert_eq!(p.version, "4");
    assert_eq!(p.external_url, "http://127.0.0.1:9093");
    assert_eq!(p.alerts[0].generator_url, "http://127.0.0.1:9090/graph");
    assert_eq!(
        parse_payload(br#"{"version":"5","status":"firing","alerts":[]}"#),
        Err(PayloadError::Version("5".into()))
    );
    assert!(matches!(
        parse_payload(b"{}"),
        Err(PayloadError::Malformed(_))
    ));
}
