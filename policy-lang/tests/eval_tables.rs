//! The evaluator's indexes (the destination and class tables it builds once)
//! answer what a plain scan of the compiled policy does: the longest prefix
//! whose entry applies at that time, and the classes of every class prefix
//! the number begins with. Random numbers and times on the example policies
//! and generated ones, decided past the reading (`Call::e164`) with a policy
//! whose sources, geo, crypto and limits let the destination stage decide.

#[path = "../benches/synth/mod.rs"]
mod synth;

use std::path::Path;
use tollgate_ir::{CompiledPolicy, SourceNetwork, Verdict, WindowWhen};
use tollgate_policy::eval::{Call, Evaluator, Outcome};
use tollgate_policy::window;

fn example(tenant: &str) -> CompiledPolicy {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let mut ws = tollgate_policy::load::Workspace::on_disk(&root);
    let c = tollgate_policy::check::check(&mut ws, &root.join(format!("tenants/{tenant}.tgp")))
        .expect("readable");
    c.policy.expect("compiles")
}

/// Only the destination stage decides (as the agent's trial probes do).
fn destinations_only(p: &CompiledPolicy) -> CompiledPolicy {
    let mut q = p.clone();
    q.sources.networks = vec![SourceNetwork {
        cidr: "0.0.0.0/0".into(),
        action: Verdict::Allow,
        trunk: None,
        rule: "probe:source".into(),
    }];
    q.sources.geo = None;
    q.crypto = Default::default();
    q.limits.clear();
    q
}

/// The deciding rule and its action, by a scan of every entry.
fn scan_destination(p: &CompiledPolicy, number: &str, at: jiff::Timestamp) -> (String, Verdict) {
    for n in (0..=number.len()).rev() {
        for e in p.destinations.iter().filter(|e| e.prefix == number[..n]) {
            let applies = match &e.window {
                None => true,
                Some(w) => {
                    let open = p
                        .windows
                        .iter()
                        .find(|x| x.name == w.name)
                        .is_some_and(|x| window::is_open(x, at).unwrap_or(false));
                    (w.when == WindowWhen::During) == open
                }
            };
            if applies {
                return (e.rule.clone(), e.action);
            }
        }
    }
    ("dst:international".into(), Verdict::Deny)
}

/// The classes, by a scan of every class prefix.
fn scan_classes(p: &CompiledPolicy, number: &str) -> Vec<String> {
    let matching: Vec<&str> = p
        .classes
        .iter()
        .filter(|c| !c.prefix.is_empty() && number.starts_with(&c.prefix))
        .map(|c| c.class.as_str())
        .collect();
    let national = matching.contains(&"national");
    let mut rest: Vec<String> = matching
        .into_iter()
        .filter(|c| *c != "national")
        .map(str::to_string)
        .collect();
    rest.sort();
    rest.dedup();
    let first = if national {
        "national"
    } else {
        "international"
    };
    std::iter::once(first.to_string()).chain(rest).collect()
}

#[test]
fn the_tables_answer_what_a_scan_of_the_policy_does() {
    let mut policies: Vec<CompiledPolicy> = ["acme", "globex", "initech"]
        .iter()
        .map(|t| example(t))
        .collect();
    policies.push(synth::policy(11, 3_000));
    policies.push(synth::compile(&synth::deny_list_text(5, 2_000)));
    let mut rng = synth::Rng::new(17);
    let mut checked = 0;
    for p in &policies {
        let q = destinations_only(p);
        let eval = Evaluator::new(&q);
        for _ in 0..4_000 {
            let number = if rng.chance(50) && !q.destinations.is_empty() {
                // a prefix of the policy, extended
                let e = &q.destinations[rng.below(q.destinations.len() as u64) as usize];
                let more = rng.below(8) as usize;
                format!("{}{}", e.prefix, rng.digits(more))
            } else if rng.chance(30) && !q.classes.is_empty() {
                let c = &q.classes[rng.below(q.classes.len() as u64) as usize];
                let more = rng.below(8) as usize;
                format!("{}{}", c.prefix, rng.digits(more))
            } else {
                rng.digits_between(1, 15)
            };
            let number: String = number.chars().take(15).collect();
            let at = jiff::Timestamp::from_second(1_768_176_000 + rng.below(14 * 86_400) as i64)
                .expect("in range");
            let mut call = Call::new(format!("+{number}"), [10, 0, 0, 1].into(), at);
            call.e164 = Some(number.clone());
            let d = eval.decide(&call, false);
            let (rule, action) = scan_destination(&q, &number, at);
            let outcome = match action {
                Verdict::Allow => Outcome::Allow,
                Verdict::Deny => Outcome::Deny,
            };
            assert_eq!(
                (d.outcome, d.rule.to_string()),
                (outcome, rule),
                "{} +{number} at {at}",
                q.tenant
            );
            let classes: Vec<String> = d.classes.iter().map(|c| c.to_string()).collect();
            assert_eq!(classes, scan_classes(&q, &number), "{} +{number}", q.tenant);
            checked += 1;
        }
    }
    assert_eq!(checked, 20_000);
}
