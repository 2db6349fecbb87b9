//! What the agent persists (`state.json` in the state dir): the applied
//! tenants (revision, policy, rows as rendered) and the blocks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::TenantRows;
use tollgate_kamailio::kamailio;

use crate::error::AgentError;

/// What the agent persists per tenant (after a successful apply only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantState {
    pub revision: String,
    pub policy: CompiledPolicy,
    /// sha256 (hex) of the rows as rendered (`TenantRows::hash`).
    pub rows_hash: String,
    /// The rows themselves (so a restart composes the same bytes).
    pub tables: BTreeMap<String, Vec<String>>,
    pub networks: Vec<String>,
    pub applied_at: String,
}

/// The content of `state.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Persisted {
    pub(crate) tenants: BTreeMap<String, TenantState>,
    /// tg_block key → expiry epoch seconds (0 = until lifted).
    pub(crate) blocks: BTreeMap<String, i64>,
}

/// `state.json` in the state dir.
pub(crate) fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// The rows of an applied tenant, as the state holds them.
pub(crate) fn rows_of(tenant: &str, s: &TenantState) -> Result<TenantRows, AgentError> {
    let networks = s
        .networks
        .iter()
        .map(|n| kamailio::parse_cidr(n).ok_or_else(|| AgentError::BadNetwork(n.clone())))
        .collect::<Result<_, _>>()?;
    Ok(TenantRows {
        tenant: tenant.to_string(),
        revision: s.revision.clone(),
        tables: s.tables.clone(),
        networks,
    })
}

/// The state persisted in `dir` (empty when there is none yet).
pub(crate) fn load(dir: &Path) -> Result<Persisted, AgentError> {
    let sf = state_file(dir);
    if !sf.exists() {
        return Ok(Persisted::default());
    }
    let bad = |message: String| AgentError::StateFile {
        path: sf.clone(),
        message,
    };
    let text = std::fs::read_to_string(&sf).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
}

/// Writes the state file in `dir` (the tenants as given, the blocks)
/// atomically: temp file, fsync, rename, dir fsync. Borrowed: a change is
/// persisted before the in-memory state takes it, without copying every
/// tenant's policy and rows.
pub(crate) fn save<'a>(
    dir: &Path,
    tenants: impl Iterator<Item = (&'a String, &'a TenantState)>,
    blocks: &BTreeMap<String, i64>,
) -> Result<(), AgentError> {
    #[derive(Serialize)]
    struct View<'a> {
        tenants: BTreeMap<&'a String, &'a TenantState>,
        blocks: &'a BTreeMap<String, i64>,
    }
    let sf = state_file(dir);
    let tmp = sf.with_extension("json.tmp");
    let view = View {
        tenants: tenants.collect(),
        blocks,
    };
    let text = serde_json::to_vec(&view)?;
    (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &sf)?;
        std::fs::File::open(dir)?.sync_all()
    })()
    .map_err(AgentError::Persist)
}
