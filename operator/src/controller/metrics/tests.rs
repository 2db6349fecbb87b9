use super::*;

/// `text` with the series of each family in a fixed order (a family's
/// series come in no fixed order; a histogram's lines stay together).
pub(crate) fn sorted_series(text: &str) -> String {
    let mut out = String::new();
    let mut chunks: Vec<String> = Vec::new();
    let mut chunk = String::new();
    let flush = |out: &mut String, chunks: &mut Vec<String>| {
        chunks.sort();
        for c in chunks.drain(..) {
            out.push_str(&c);
        }
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut out, &mut chunks);
            out.push_str(line);
            out.push('\n');
            continue;
        }
        chunk.push_str(line);
        chunk.push('\n');
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if !name.ends_with("_bucket") && !name.ends_with("_sum") {
            chunks.push(std::mem::take(&mut chunk));
        }
    }
    flush(&mut out, &mut chunks);
    out
}

fn scenario() -> Metrics {
    let m = Metrics::default();
    m.reconciled(true, 0.02);
    m.reconciled(false, 3.0);
    m.agent_call("apply", "ok");
    let obj = ObjectRef::<TollPolicy>::new("p").within("ns");
    m.set_targets(
        &obj,
        Some(TargetCounts {
            applied: 2,
            pending: 1,
            failing: 0,
            ineligible: 0,
        }),
    );
    m.rollout_seen(&obj, 1, 100);
    m.rollout_ended(&obj, 1, 130, true);
    m
}

#[test]
fn renders_bounded_series() {
    let t = scenario().render();
    assert!(t.contains("tollgate_operator_reconciles_total{result=\"ok\"} 1"));
    assert!(t.contains("tollgate_operator_reconciles_total{result=\"error\"} 1"));
    assert!(t.contains("tollgate_operator_reconcile_duration_seconds_bucket{le=\"0.05\"} 1"));
    assert!(t.contains("tollgate_operator_reconcile_duration_seconds_count 2"));
    assert!(t.contains("tollgate_operator_targets{state=\"applied\"} 2"));
    assert!(t.contains(
        "tollgate_operator_rollout_duration_seconds_bucket{outcome=\"complete\",le=\"60\"} 1"
    ));
    assert!(t.contains("tollgate_operator_agent_calls_total{call=\"apply\",result=\"ok\"} 1"));
    assert!(!t.contains("ns"), "no policy names in labels");
}

#[test]
fn targets_are_summed_over_policies_and_forgotten_with_them() {
    let m = Metrics::default();
    let a = ObjectRef::<TollPolicy>::new("a").within("ns");
    let b = ObjectRef::<TollPolicy>::new("b").within("ns");
    let c = |applied, failing| TargetCounts {
        applied,
        failing,
        ..TargetCounts::default()
    };
    m.set_targets(&a, Some(c(2, 1)));
    m.set_targets(&b, Some(c(3, 0)));
    let t = m.render();
    assert!(
        t.contains("tollgate_operator_targets{state=\"applied\"} 5\n"),
        "{t}"
    );
    assert!(
        t.contains("tollgate_operator_targets{state=\"failing\"} 1\n"),
        "{t}"
    );
    m.set_targets(&a, None);
    let t = m.render();
    assert!(
        t.contains("tollgate_operator_targets{state=\"applied\"} 3\n"),
        "{t}"
    );
    assert!(
        t.contains("tollgate_operator_targets{state=\"failing\"} 0\n"),
        "{t}"
    );
    m.set_leader(true);
    assert!(m.render().contains("\ntollgate_operator_leader 1\n"));
}

/// The exposition, pinned: names, types, HELP texts and labels as
/// docs/operator.md documents them and scripts/test-operator.sh reads them.
#[test]
fn exposition_is_pinned() {
    let expected = r#"# HELP tollgate_operator_reconciles_total Reconciles of TollPolicies, by result.
# TYPE tollgate_operator_reconciles_total counter
tollgate_operator_reconciles_total{result="error"} 1
tollgate_operator_reconciles_total{result="ok"} 1
# HELP tollgate_operator_reconcile_duration_seconds Time one reconcile took (agent calls included).
# TYPE tollgate_operator_reconcile_duration_seconds histogram
tollgate_operator_reconcile_duration_seconds_bucket{le="0.01"} 0
tollgate_operator_reconcile_duration_seconds_bucket{le="0.05"} 1
tollgate_operator_reconcile_duration_seconds_bucket{le="0.1"} 1
tollgate_operator_reconcile_duration_seconds_bucket{le="0.25"} 1
tollgate_operator_reconcile_duration_seconds_bucket{le="0.5"} 1
tollgate_operator_reconcile_duration_seconds_bucket{le="1"} 1
tollgate_operator_reconcile_duration_seconds_bucket{le="2.5"} 1
tollgate_operator_reconcile_duration_seconds_bucket{le="5"} 2
tollgate_operator_reconcile_duration_seconds_bucket{le="10"} 2
tollgate_operator_reconcile_duration_seconds_bucket{le="30"} 2
tollgate_operator_reconcile_duration_seconds_bucket{le="+Inf"} 2
tollgate_operator_reconcile_duration_seconds_sum 3.02
tollgate_operator_reconcile_duration_seconds_count 2
# HELP tollgate_operator_rollout_duration_seconds From the first reconcile that saw a rollout to its completion or rollback.
# TYPE tollgate_operator_rollout_duration_seconds histogram
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="1"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="5"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="15"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="60"} 1
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="300"} 1
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="900"} 1
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="1800"} 1
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="3600"} 1
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="14400"} 1
tollgate_operator_rollout_duration_seconds_bucket{outcome="complete",le="+Inf"} 1
tollgate_operator_rollout_duration_seconds_sum{outcome="complete"} 30.0
tollgate_operator_rollout_duration_seconds_count{outcome="complete"} 1
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="1"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="5"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="15"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="60"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="300"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="900"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="1800"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="3600"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="14400"} 0
tollgate_operator_rollout_duration_seconds_bucket{outcome="rolled_back",le="+Inf"} 0
tollgate_operator_rollout_duration_seconds_sum{outcome="rolled_back"} 0.0
tollgate_operator_rollout_duration_seconds_count{outcome="rolled_back"} 0
# HELP tollgate_operator_targets Targets of all policies, by state.
# TYPE tollgate_operator_targets gauge
tollgate_operator_targets{state="applied"} 2
tollgate_operator_targets{state="failing"} 0
tollgate_operator_targets{state="ineligible"} 0
tollgate_operator_targets{state="pending"} 1
# HELP tollgate_operator_agent_calls_total Calls to SBC agents, by call and result.
# TYPE tollgate_operator_agent_calls_total counter
tollgate_operator_agent_calls_total{call="apply",result="ok"} 1
# HELP tollgate_operator_leader 1 while this process holds the leader lease.
# TYPE tollgate_operator_leader gauge
tollgate_operator_leader 0
"#;
    assert_eq!(sorted_series(&scenario().render()), expected);
}
