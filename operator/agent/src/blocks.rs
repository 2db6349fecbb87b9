//! Emergency blocks (`tg_block`): set, lift, persisted with the state.

use std::collections::BTreeMap;
use std::time::SystemTime;
use tollgate_agent_api::BlocksAnswer;
use tollgate_kamailio::{Bundle, TenantRows, write};

use crate::agent::Agent;
use crate::error::{ApplyError, BlockKeyError};
use crate::prepare::block_file;

/// Valid tg_block key: `<tenant>` or `<tenant>::<class>`.
pub(crate) fn block_key_ok(
    key: &str,
    tenants: &BTreeMap<String, TenantRows>,
) -> Result<(), BlockKeyError> {
    let (t, class) = match key.split_once("::") {
        Some((t, c)) => (t, Some(c)),
        None => (key, None),
    };
    if !tenants.contains_key(t) {
        return Err(BlockKeyError::NoTenant(t.to_string()));
    }
    if let Some(c) = class {
        let ok = c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
        if !ok {
            return Err(BlockKeyError::BadClass(c.to_string()));
        }
    }
    Ok(())
}

impl Agent {
    /// Sets (`Some(expiry)`, 0 = until lifted) or lifts (`None`) a block.
    pub async fn block(&self, key: &str, expires: Option<i64>) -> Result<BlocksAnswer, ApplyError> {
        let mut inner = self.inner.lock().await;
        if expires.is_some() {
            block_key_ok(key, &inner.rows)
                .map_err(|e| ApplyError::Rejected(vec![e.to_string()]))?;
        } else if !inner.state.blocks.contains_key(key) {
            return Err(ApplyError::NotFound(format!("no block `{key}`")));
        }
        let mut blocks = inner.state.blocks.clone();
        match expires {
            Some(e) => {
                if e < 0 {
                    return Err(ApplyError::Rejected(vec!["expires must be >= 0".into()]));
                }
                self.rpc
                    .call("htable.sets", &["tg_block", key, &e.to_string()])
                    .await
                    .map_err(|e| ApplyError::Failed(e.to_string()))?;
                blocks.insert(key.to_string(), e);
            }
            None => {
                // absent in memory (e.g. after a restart without the file) is fine
                let _ = self.rpc.call("htable.delete", &["tg_block", key]).await;
                blocks.remove(key);
            }
        }
        let file = block_file(&blocks, &inner.placed);
        let bundle = Bundle::new(BTreeMap::from([("tg_block".to_string(), file)]));
        write::write_bundle(&self.cfg.data_dir, &bundle, SystemTime::now())
            .map_err(|e| ApplyError::Failed(format!("write tg_block: {e}")))?;
        crate::state::save_blocks(&self.cfg.state_dir, &blocks)
            .map_err(|e| ApplyError::Failed(e.to_string()))?;
        inner.state.blocks = blocks;
        inner.note_files(bundle.files.iter());
        Ok(BlocksAnswer {
            blocks: inner.state.blocks.clone(),
        })
    }
}
