//! `decide(call, false)` skips the notes of the trace; everything else must be
//! what `decide(call, true)` decides. Random calls on the example policies and
//! a generated one.

#[path = "../benches/synth/mod.rs"]
mod synth;

use std::path::Path;
use tollgate_policy::eval::{Call, Evaluator, Transport};

#[test]
fn without_a_trace_the_decision_is_the_same() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let mut policies: Vec<_> = ["acme", "globex", "initech"]
        .iter()
        .map(|t| {
            let mut ws = tollgate_policy::load::Workspace::on_disk(&root);
            let c = tollgate_policy::check::check(&mut ws, &root.join(format!("tenants/{t}.tgp")))
                .expect("readable");
            c.policy.expect("compiles")
        })
        .collect();
    policies.push(synth::policy(11, 2_000));
    let sources = [
        "198.51.100.20",
        "198.51.100.66",
        "203.0.113.10",
        "192.0.2.7",
        "198.18.3.4",
        "203.0.113.130",
        "10.1.2.3",
        "10.66.1.1",
        "2001:db8:ac::5",
        "2001:db8::1",
        "8.8.8.8",
    ];
    let mut rng = synth::Rng::new(5);
    for p in &policies {
        let eval = Evaluator::new(p);
        for _ in 0..20_000 {
            let dest = match rng.below(4) {
                0 => synth::destination(&mut rng),
                1 => ["911", "112", "999", "110"][rng.below(4) as usize].to_string(),
                _ => format!("+{}", rng.digits_between(1, 14)),
            };
            let at = jiff::Timestamp::from_second(1_768_176_000 + rng.below(14 * 86_400) as i64)
                .expect("in range");
            let src = sources[rng.below(sources.len() as u64) as usize];
            let mut c = Call::new(dest, src.parse().expect("ip"), at);
            c.source_country =
                [None, Some("GB"), Some("CN")][rng.below(3) as usize].map(String::from);
            c.transport = [Transport::Udp, Transport::Tls][rng.below(2) as usize];
            c.srtp = rng.chance(50);
            c.client_certificate = rng.chance(50);
            c.concurrent = rng.below(80);
            c.rate = rng.below(60);
            c.blocked_tenant = rng.chance(2);
            if rng.chance(10) {
                c.blocked_classes.insert("international".into());
            }
            c.class_concurrent
                .insert("international".into(), rng.below(15));
            let fast = eval.decide(&c, false);
            let mut traced = eval.decide(&c, true);
            assert!(fast.trace.is_empty());
            assert!(!traced.trace.is_empty());
            traced.trace.clear();
            assert_eq!(fast, traced, "{c:?}");
        }
    }
}
