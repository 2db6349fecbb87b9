//! Semantic diff of two compiled policies, in the user's terms.
//!
//! [`diff`] compares two [`CompiledPolicy`] values (never their text) and
//! says what changed for calls: which numbers are now allowed or denied, and
//! when; which sources may call; how windows, limits, responses and crypto
//! requirements moved. Every [`Change`] says whether it **loosens** (lets
//! through a call that was rejected before, or weakens detection or the
//! response to it) and whether it **tightens** (the reverse); a change that
//! does neither is neutral (the same decisions under another rule id, a
//! window nobody uses, ...). A change can do both (calls allowed at other
//! hours than before).
//!
//! Times are compared as minutes of the week in each window's own local time;
//! a chain of rules whose windows are in different zones is compared as if
//! the zones were the same (the zone change itself is reported under
//! windows).
//!
//! `change` holds the model ([`Change`], [`Area`]); `time` the window minutes
//! several areas compare; `tenant`, `destinations`, `sources`, `windows`,
//! `limits`, `responses`, `crypto` and `classes` one comparison each.

mod change;
mod classes;
mod crypto;
mod destinations;
mod limits;
mod responses;
mod sources;
mod tenant;
mod time;
mod windows;

pub use change::{Area, Change};

use classes::classes;
use crypto::crypto;
use destinations::destinations;
use limits::limits;
use responses::responses;
use sources::sources;
use tenant::tenant_and_home;
use windows::windows;

use tollgate_ir::CompiledPolicy;

/// Most prefixes named in one destination change; the rest are counted.
pub const MAX_PREFIXES_SHOWN: usize = 8;
/// Most destination changes listed; the rest are summed up in one last change.
pub const MAX_DESTINATION_CHANGES: usize = 50;

/// The changes from `old` to `new`, ordered by area.
pub fn diff(old: &CompiledPolicy, new: &CompiledPolicy) -> Vec<Change> {
    let mut out = Vec::new();
    tenant_and_home(old, new, &mut out);
    destinations(old, new, &mut out);
    sources(old, new, &mut out);
    windows(old, new, &mut out);
    limits(old, new, &mut out);
    responses(old, new, &mut out);
    crypto(old, new, &mut out);
    classes(old, new, &mut out);
    out.sort_by_key(|c| c.area);
    out
}

/// Whether any change loosens.
pub fn loosens(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.loosens)
}

/// One tenant's changes as `tollgate diff` prints them: grouped by area
/// (`  <area>:`), one line each with its effect.
pub fn text(changes: &[Change]) -> String {
    let mut out = String::new();
    let mut area = None;
    for c in changes {
        if area != Some(c.area) {
            area = Some(c.area);
            out.push_str(&format!("  {}:\n", c.area.name()));
        }
        out.push_str(&format!("    {:<16}  {}\n", c.effect(), c.description));
    }
    out
}

/// `N changes: a loosen, b tighten, c neutral`.
pub fn summary<'c>(changes: impl IntoIterator<Item = &'c Change>) -> String {
    let (mut n, mut loosen, mut tighten, mut neutral) = (0, 0, 0, 0);
    for c in changes {
        n += 1;
        if c.loosens {
            loosen += 1;
        } else if c.tightens {
            tighten += 1;
        } else {
            neutral += 1;
        }
    }
    let count = if n == 1 {
        "1 change".to_owned()
    } else {
        format!("{n} changes")
    };
    format!("{count}: {loosen} loosen, {tighten} tighten, {neutral} neutral")
}

#[cfg(test)]
mod tests;
