//! Scenario files (`*.test.yaml`): arbitrary bytes never panic the reader;
//! what it accepts is a list of calls it can evaluate against a policy
//! (the example tenant acme) without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_policy::eval::Evaluator;
use tollgate_policy_fuzz::acme;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((_tenant, cases)) = tollgate_policy::scenario::parse(&text) {
        let ev = Evaluator::new(acme());
        for c in cases.iter().take(64) {
            let _ = ev.decide(&c.call, true);
        }
    }
});
