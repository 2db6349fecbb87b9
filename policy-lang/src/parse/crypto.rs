//! Statements of a `crypto` section: `tls`, `srtp` and `client-certificate`
//! requirements.

use super::tokens::{In, PResult, keyword, punct};
use crate::ast::{CryptoKey, CryptoStmt, Requirement};

pub(super) fn crypto_stmt(i: In<'_>) -> PResult<'_, CryptoStmt> {
    let (r, key) = keyword(
        i,
        &[
            ("tls", CryptoKey::Tls),
            ("srtp", CryptoKey::Srtp),
            ("client-certificate", CryptoKey::ClientCertificate),
        ],
        "`tls`, `srtp` or `client-certificate`",
        "write e.g. `tls: required`",
    )?;
    let (r, _) = punct(r, ':', "the crypto setting", "write e.g. `tls: required`")?;
    let (r, value) = keyword(
        r,
        &[
            ("required", Requirement::Required),
            ("optional", Requirement::Optional),
        ],
        "`required` or `optional`",
        "write e.g. `tls: required`",
    )?;
    Ok((r, CryptoStmt { key, value }))
}
