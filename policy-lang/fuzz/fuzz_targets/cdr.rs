//! CDR rows (`tollgate replay`'s input) against the example tenant acme:
//! arbitrary bytes never panic the reader or the replay; a malformed row is
//! counted (or the replay stops with an error), never decided.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_policy::replay::{Config, Replay};
use tollgate_policy_fuzz::acme;

fuzz_target!(|data: &[u8]| {
    let replay = Replay::new(acme(), Some(acme()), Config::default());
    if let Ok(report) = replay.run(data, &mut |_| {}) {
        assert!(report.decided + report.bad + report.skipped_other_tenant <= report.rows);
    }
});
