//! SBC backends: compiled policy (IR) → the data an SBC enforces.
//!
//! A backend renders each tenant on its own ([`Backend::render_tenant`]: rows
//! that depend on that tenant's policy, revision and the current time only),
//! then composes the rows of every tenant of a fleet into one set of files
//! ([`Backend::compose`]). Rendering is deterministic (the same inputs give
//! the same bytes), one tenant's rows never depend on another tenant, and
//! every value is validated before it reaches the SBC: a policy the SBC could
//! misread is an error, never a file.

pub mod kamailio;
pub mod write;

use ipnet::IpNet;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tollgate_ir::CompiledPolicy;

/// An SBC implementation the operator can render policies for.
pub trait Backend {
    /// Short name, e.g. `kamailio`.
    fn name(&self) -> &'static str;

    /// One tenant's rows: its policy at `revision`, with time windows
    /// resolved for the days after `now`.
    fn render_tenant(
        &self,
        policy: &CompiledPolicy,
        revision: &str,
        now: Timestamp,
    ) -> Result<TenantRows, RenderError>;

    /// The files of one SBC (or fleet) from the rows of all its tenants
    /// (keyed by tenant name). Fails when tenants conflict (e.g. two claim the
    /// same source network).
    fn compose(&self, tenants: &BTreeMap<String, TenantRows>) -> Result<Bundle, RenderError>;
}

/// What one tenant contributes to each table: rows in their final text form
/// (fields escaped and joined) but without the row id, which is assigned when
/// the tables are composed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRows {
    pub tenant: String,
    pub revision: String,
    /// Table name → rows, in file order.
    pub tables: BTreeMap<String, Vec<String>>,
    /// The source networks the tenant claims (checked across tenants).
    pub networks: Vec<IpNet>,
}

impl TenantRows {
    /// sha256 (hex) over the tenant's rows, table by table.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for (table, rows) in &self.tables {
            h.update(table.as_bytes());
            h.update([0]);
            for r in rows {
                h.update(r.as_bytes());
                h.update([b'\n']);
            }
            h.update([0]);
        }
        hex(&h.finalize())
    }

    /// Number of rows over all tables.
    pub fn len(&self) -> usize {
        self.tables.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The files of one SBC data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// File name → content.
    pub files: BTreeMap<String, String>,
    /// `sha256:<hex>` over every file name and content, in name order.
    pub hash: String,
}

impl Bundle {
    /// Some files of an SBC, without a hash over them (`hash` empty).
    pub fn unhashed(files: BTreeMap<String, String>) -> Self {
        Bundle {
            files,
            hash: String::new(),
        }
    }

    pub fn new(files: BTreeMap<String, String>) -> Self {
        let mut h = Sha256::new();
        for (name, content) in &files {
            h.update(name.as_bytes());
            h.update([0]);
            h.update((content.len() as u64).to_be_bytes());
            h.update(content.as_bytes());
        }
        Bundle {
            files,
            hash: format!("sha256:{}", hex(&h.finalize())),
        }
    }
}

/// Why a policy cannot be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A value of the tenant's policy the SBC cannot take safely.
    #[error("tenant `{tenant}`: {field}: {message}")]
    Invalid {
        tenant: String,
        /// Where in the policy, e.g. `sources.networks[2].cidr`.
        field: String,
        message: String,
    },
    /// Two tenants of one fleet claim the same source network.
    #[error("source network {network} is claimed by tenant `{first}` and by tenant `{second}`")]
    DuplicateNetwork {
        network: String,
        first: String,
        second: String,
    },
    /// The fleet as a whole exceeds what the SBC is configured for.
    #[error("{0}")]
    Fleet(String),
}

impl RenderError {
    pub(crate) fn invalid(
        tenant: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RenderError::Invalid {
            tenant: tenant.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
