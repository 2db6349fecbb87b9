//! The Alertmanager webhook body: arbitrary bytes never panic the parser;
//! every alert of an accepted payload maps to a decision without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = tollgate_alerts::parse_payload(data) {
        for a in &p.alerts {
            let _ = tollgate_alerts::map_alert(a);
            let _ = tollgate_alerts::fingerprint_of(a);
        }
    }
});
