//! A tenant policy file through check, compile and evaluate. Arbitrary bytes
//! (lossy UTF-8) are the tenant's file, which may import the example bases
//! (`base/standard.tgp`, `base/secure.tgp`). Whenever it compiles:
//! - the compiled policy survives its YAML round trip unchanged;
//! - every emergency number of the policy, dialled from every network of
//!   the tenant (deny networks too), is allowed, whatever blocks, limits or
//!   crypto say;
//! - a number under a deny entry of the prefix table whose longest match in
//!   the table is that entry (no longer entry, no window condition on the
//!   way) is never allowed.
#![no_main]

use std::net::IpAddr;
use std::path::Path;

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use tollgate_ir::{CompiledPolicy, Verdict};
use tollgate_policy::check;
use tollgate_policy::eval::{Call, Evaluator, Outcome, Transport};
use tollgate_policy::load::{MemoryFs, Workspace};

const STANDARD: &str = include_str!("../../../examples/policies/base/standard.tgp");
const SECURE: &str = include_str!("../../../examples/policies/base/secure.tgp");

/// The first address of a network (`a.b.c.d/len` or IPv6).
fn first_host(cidr: &str) -> Option<IpAddr> {
    cidr.split('/').next()?.parse().ok()
}

/// A call that meets every requirement but the destination's.
fn call(to: &str, from: IpAddr) -> Call {
    let mut c = Call::new(
        to.to_owned(),
        from,
        Timestamp::from_second(1_800_000_000)
            .ok()
            .unwrap_or(Timestamp::UNIX_EPOCH),
    );
    c.transport = Transport::Tls;
    c.srtp = true;
    c.client_certificate = true;
    c
}

fn check_invariants(p: &CompiledPolicy) {
    let yaml = tollgate_ir::yaml::to_yaml(p).expect("a compiled policy writes");
    let back: CompiledPolicy =
        tollgate_ir::yaml::from_yaml(&yaml).expect("a compiled policy reads back");
    assert_eq!(&back, p, "YAML round trip changed the policy");
    let ev = Evaluator::new(p);
    let sources: Vec<IpAddr> = p
        .sources
        .networks
        .iter()
        .filter_map(|n| first_host(&n.cidr))
        .collect();
    for e in &p.emergency_numbers {
        for &from in &sources {
            let mut c = call(e, from);
            c.blocked_tenant = true;
            c.concurrent = u64::MAX / 2;
            c.rate = u64::MAX / 2;
            c.transport = Transport::Udp;
            c.srtp = false;
            c.client_certificate = false;
            let d = ev.decide(&c, false);
            // a network of a longer match may be another tenant's rule; only
            // the tenant's own networks are asked, so the call is the tenant's
            assert_eq!(
                d.outcome,
                Outcome::Allow,
                "emergency {e} from {from}: {d:?}"
            );
        }
    }
    let allowed: Vec<IpAddr> = p
        .sources
        .networks
        .iter()
        .filter(|n| n.action == Verdict::Allow)
        .filter_map(|n| first_host(&n.cidr))
        .collect();
    let Some(&from) = allowed.first() else { return };
    for d in p
        .destinations
        .iter()
        .filter(|d| d.action == Verdict::Deny && d.window.is_none())
    {
        let mut number = d.prefix.clone();
        while number.len() < 11 {
            number.push('5');
        }
        let longest = p
            .destinations
            .iter()
            .filter(|o| number.starts_with(&o.prefix))
            .map(|o| o.prefix.len())
            .max();
        let at_longest: Vec<_> = p
            .destinations
            .iter()
            .filter(|o| Some(o.prefix.len()) == longest && number.starts_with(&o.prefix))
            .collect();
        if longest != Some(d.prefix.len())
            || at_longest
                .iter()
                .any(|o| o.window.is_some() || o.action != Verdict::Deny)
        {
            continue;
        }
        let c = call(&format!("+{number}"), from);
        let dec = ev.decide(&c, false);
        assert_ne!(
            dec.outcome,
            Outcome::Allow,
            "+{number} under deny {}: {dec:?}",
            d.prefix
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let fs = MemoryFs::new()
        .with("tenants/t.tgp", text.as_ref())
        .with("base/standard.tgp", STANDARD)
        .with("base/secure.tgp", SECURE);
    let mut ws = Workspace::new(fs, "");
    let Ok(c) = check::check(&mut ws, Path::new("tenants/t.tgp")) else {
        return;
    };
    if c.has_errors() {
        return;
    }
    if let Some(p) = c.policy {
        check_invariants(&p);
    }
});
