//! What the fuzz targets share: the example tenant `acme`, compiled once.

use std::path::Path;
use std::sync::OnceLock;

use tollgate_ir::CompiledPolicy;
use tollgate_policy::check;
use tollgate_policy::load::{MemoryFs, Workspace};

/// The example tenant acme (examples/policies), compiled with its base.
pub fn acme() -> &'static CompiledPolicy {
    static P: OnceLock<CompiledPolicy> = OnceLock::new();
    P.get_or_init(|| {
        let fs = MemoryFs::new()
            .with(
                "tenants/acme.tgp",
                include_str!("../../../examples/policies/tenants/acme.tgp"),
            )
            .with(
                "base/standard.tgp",
                include_str!("../../../examples/policies/base/standard.tgp"),
            );
        let mut ws = Workspace::new(fs, "");
        let c = check::check(&mut ws, Path::new("tenants/acme.tgp")).expect("in memory");
        c.policy.expect("the example compiles")
    })
}
