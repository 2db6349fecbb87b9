//! CDR rows (`tollgate replay`'s input) against the example tenant acme:
//! arbitrary bytes never panic the reader or the replay; a malformed row is
//! counted (or the replay stops with an error), never decided.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_ir::CompiledPolicy;
use tollgate_policy::check;
use tollgate_policy::load::{MemoryFs, Workspace};
use tollgate_policy::replay::{Config, Replay};

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
    let replay = Replay::new(acme(), Some(acme()), Config::default());
    if let Ok(report) = replay.run(data, &mut |_| {}) {
        assert!(report.decided + report.bad + report.skipped_other_tenant <= report.rows);
    }
});
