//! Schemas the derive cannot express.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose layout the schema does not describe
/// (`x-kubernetes-preserve-unknown-fields`): `status.rollout`, the
/// operator's own bookkeeping, whose type lives in the operator crate.
pub(crate) fn opaque_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Operator bookkeeping; do not edit.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
