//! Scenario files (`*.test.yaml`): arbitrary bytes never panic the reader;
//! what it accepts is a list of calls it can evaluate against a policy
//! (the example tenant acme) without a panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_ir::CompiledPolicy;
use tollgate_policy::check;
use tollgate_policy::eval::Evaluator;
use tollgate_policy::load::{MemoryFs, Workspace};

fn acme() -> &'static CompiledPolicy {
    static P: OnceLock<CompiledPolicy> = OnceLock::new();
    P.get_or_init(|| {
        let fs = MemoryFs::new()
            .with("tenants/acme.tgp", include_str!("../../../examples/policies/tenants/acme.tgp"))
            .with("base/standard.tgp", include_str!("../../../examples/policies/base/standard.tgp"));
        let mut ws = Workspace::new(fs, "");
        let c = check::check(&mut ws, Path::new("tenants/acme.tgp")).expect("in memory");
        c.policy.expect("the example compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((_tenant, cases)) = tollgate_policy::scenario::parse(&text) {
        let ev = Evaluator::new(acme());
        for c in cases.iter().take(64) {
            let _ = ev.decide(&c.call, true);
        }
    }
});
