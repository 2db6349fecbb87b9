//! Crypto: TLS, SRTP and client-certificate requirements.

use super::change::{Area, Change};
use tollgate_ir::CompiledPolicy;

pub(super) fn crypto(old: &CompiledPolicy, new: &CompiledPolicy, out: &mut Vec<Change>) {
    for (what, rule, a, b) in [
        (
            "TLS",
            "crypto:tls",
            old.crypto.require_tls,
            new.crypto.require_tls,
        ),
        (
            "SRTP",
            "crypto:srtp",
            old.crypto.require_srtp,
            new.crypto.require_srtp,
        ),
        (
            "a TLS client certificate",
            "crypto:client-certificate",
            old.crypto.require_client_certificate,
            new.crypto.require_client_certificate,
        ),
    ] {
        match (a, b) {
            (true, false) => out.push(
                Change::new(
                    Area::Crypto,
                    format!("{what} no longer required"),
                    true,
                    false,
                )
                .rules(&[rule], &[rule]),
            ),
            (false, true) => out.push(
                Change::new(Area::Crypto, format!("{what} now required"), false, true)
                    .rules(&[rule], &[rule]),
            ),
            _ => {}
        }
    }
}
