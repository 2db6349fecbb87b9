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
    /// The tenant's id on this SBC (its shard and key prefix,
    /// `kamailio::Placement`); 0 in a state from before shards: one is
    /// given at load.
    #[serde(default)]
    pub id: u64,
}

/// What the agent persists: the applied tenants, each in its own file
/// (`tenants/<name>.json`, so an apply writes one tenant, not all), and
/// `state.json` (the blocks).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Persisted {
    #[serde(default)]
    pub(crate) tenants: BTreeMap<String, TenantState>,
    /// tg_block key → expiry epoch seconds (0 = until lifted).
    #[serde(default)]
    pub(crate) blocks: BTreeMap<String, i64>,
}

/// `state.json` in the state dir.
pub(crate) fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// The dir of the tenants' files.
pub(crate) fn tenants_dir(dir: &Path) -> PathBuf {
    dir.join("tenants")
}

/// A tenant's file in the state dir.
pub(crate) fn tenant_file(dir: &Path, tenant: &str) -> PathBuf {
    // tenant names are `[a-z0-9-]` (the API refuses others); anything
    // else is written as `_` and hex, which no tenant name can be
    let name = if tollgate_agent_api::tenant_ok(tenant) {
        tenant.to_string()
    } else {
        let hex: String = tenant.bytes().map(|b| format!("{b:02x}")).collect();
        format!("_{hex}")
    };
    tenants_dir(dir).join(format!("{name}.json"))
}

/// The content of a tenant's file.
#[derive(Serialize, Deserialize)]
struct TenantFile<S> {
    tenant: String,
    #[serde(flatten)]
    state: S,
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

/// The state persisted in `dir` (empty when there is none yet): the
/// blocks from `state.json`, the tenants from their files (and from
/// `state.json` as written before tenants had files of their own).
pub(crate) fn load(dir: &Path) -> Result<Persisted, AgentError> {
    let sf = state_file(dir);
    let mut p = if sf.exists() {
        let bad = |message: String| AgentError::StateFile {
            path: sf.clone(),
            message,
        };
        let text = std::fs::read_to_string(&sf).map_err(|e| bad(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
    } else {
        Persisted::default()
    };
    let td = tenants_dir(dir);
    if let Ok(list) = std::fs::read_dir(&td) {
        for e in list.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let bad = |message: String| AgentError::StateFile {
                path: path.clone(),
                message,
            };
            let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
            let f: TenantFile<TenantState> =
                serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            p.tenants.insert(f.tenant, f.state);
        }
    }
    Ok(p)
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, dir fsync.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(d) = path.parent() {
        std::fs::File::open(d)?.sync_all()?;
    }
    Ok(())
}

/// Writes (`Some`) or removes (`None`) the files of the tenants given,
/// each atomically; the other tenants' files are not touched.
pub(crate) fn save_tenants<'a>(
    dir: &Path,
    tenants: impl Iterator<Item = (&'a String, Option<&'a TenantState>)>,
) -> Result<(), AgentError> {
    let td = tenants_dir(dir);
    std::fs::create_dir_all(&td).map_err(AgentError::Persist)?;
    for (t, s) in tenants {
        let path = tenant_file(dir, t);
        match s {
            Some(state) => {
                let text = serde_json::to_vec(&TenantFile {
                    tenant: t.clone(),
                    state,
                })?;
                write_atomic(&path, &text).map_err(AgentError::Persist)?;
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(AgentError::Persist(e)),
            },
        }
    }
    Ok(())
}

/// Writes `state.json` (the blocks) atomically.
pub(crate) fn save_blocks(dir: &Path, blocks: &BTreeMap<String, i64>) -> Result<(), AgentError> {
    #[derive(Serialize)]
    struct View<'a> {
        blocks: &'a BTreeMap<String, i64>,
    }
    let text = serde_json::to_vec(&View { blocks })?;
    write_atomic(&state_file(dir), &text).map_err(AgentError::Persist)
}
