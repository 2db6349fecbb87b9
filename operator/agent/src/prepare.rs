//! The pure part of an apply (steps 1–2 of docs/agent.md): render, compose
//! with the blocks in force, own checks, expected read-back. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::kamailio::{ActiveBlock, Kamailio};
use tollgate_kamailio::{Backend, Bundle, TenantRows};

use crate::error::ApplyError;
use crate::rows::{Expected, check_bundle};

/// A block with expiry `e` (epoch seconds, 0 = until lifted) at `now`.
pub(crate) fn block_in_force(e: i64, now: i64) -> bool {
    e == 0 || e > now
}

/// What an apply checked before any Kamailio is touched.
#[derive(Debug)]
pub struct Prepared {
    /// Every tenant's rows after the change.
    pub cand: BTreeMap<String, TenantRows>,
    /// The composed files.
    pub bundle: Bundle,
    /// What Kamailio must hold afterwards.
    pub expected: Expected,
    /// The policies the trial probes (the changed tenant's).
    pub probes: Vec<CompiledPolicy>,
}

/// The pure part of an apply (steps 1–2 of docs/agent.md): render the
/// tenant's revision (`Some`) or drop the tenant (`None`), compose the
/// fleet's bundle with the blocks in force, run the own checks, and derive
/// the expected read-back. No I/O.
pub fn prepare(
    rows: &BTreeMap<String, TenantRows>,
    blocks: &BTreeMap<String, i64>,
    tenant: &str,
    change: Option<&(String, CompiledPolicy)>,
    now: jiff::Timestamp,
) -> Result<Prepared, ApplyError> {
    let mut cand = rows.clone();
    let mut probes = Vec::new();
    match change {
        Some((rev, policy)) => {
            if policy.tenant != tenant {
                return Err(ApplyError::Rejected(vec![format!(
                    "the policy is for tenant `{}`, not `{tenant}`",
                    policy.tenant
                )]));
            }
            let rows = Kamailio
                .render_tenant(policy, rev, now)
                .map_err(|e| ApplyError::Rejected(vec![e.to_string()]))?;
            cand.insert(tenant.to_string(), rows);
            probes.push(policy.clone());
        }
        None => {
            if cand.remove(tenant).is_none() {
                return Err(ApplyError::NotFound(format!("no tenant `{tenant}`")));
            }
        }
    }
    let bundle = compose(&cand, blocks).map_err(ApplyError::Rejected)?;
    let names: BTreeSet<String> = cand.keys().cloned().collect();
    let errs = check_bundle(&bundle, &names);
    if !errs.is_empty() {
        return Err(ApplyError::Rejected(errs));
    }
    let expected = Expected::of(&cand);
    Ok(Prepared {
        cand,
        bundle,
        expected,
        probes,
    })
}

/// Every tenant's rows with its blocks in force, composed.
pub(crate) fn compose(
    rows: &BTreeMap<String, TenantRows>,
    blocks: &BTreeMap<String, i64>,
) -> Result<Bundle, Vec<String>> {
    let now = jiff::Timestamp::now().as_second();
    let mut with = rows.clone();
    for (t, r) in with.iter_mut() {
        let mine: Vec<ActiveBlock> = blocks
            .iter()
            .filter(|(_, e)| block_in_force(**e, now))
            .filter_map(|(k, e)| {
                let class = if k == t {
                    None
                } else {
                    Some(k.strip_prefix(&format!("{t}::"))?.to_string())
                };
                Some(ActiveBlock {
                    class,
                    expires: if *e == 0 {
                        None
                    } else {
                        jiff::Timestamp::from_second(*e).ok()
                    },
                })
            })
            .collect();
        Kamailio::set_blocks(r, &mine).map_err(|e| vec![e.to_string()])?;
    }
    Kamailio.compose(&with).map_err(|e| vec![e.to_string()])
}
