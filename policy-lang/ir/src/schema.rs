//! Hand-written JSON schemas for the IR's internally tagged enums
//! ([`ResponseTrigger`], [`ResponseAction`]).
//!
//! Kubernetes requires structural schemas: one object type with every
//! property declared once. A serde internally tagged enum derives to a
//! `oneOf` whose variants each pin the `kind` tag to a different value, which
//! kube's schema rewriter cannot merge. So these schemas declare the union of
//! the variants' properties, an enum for `kind`, and a CEL rule that states
//! which properties each `kind` takes. The serde representation is unchanged.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::{AlertLevel, LimitMetric, ResponseAction, ResponseTrigger};

impl JsonSchema for ResponseTrigger {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "ResponseTrigger".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let metric = described(
            generator.subschema_for::<LimitMetric>(),
            "With `kind: breach`: the limit's metric.",
        );
        let level = described(
            generator.subschema_for::<AlertLevel>(),
            "With `kind: breach`: the level crossed.",
        );
        json_schema!({
            "description": "What sets off a response: `kind: breach` (a limit crossed a level; `metric`, `level`, optional `class`) or `kind: anomaly` (an anomaly alert; `anomaly`).",
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {
                    "description": "`breach`: a limit crossed its warning or critical level. `anomaly`: an anomaly alert (from Alertmanager).",
                    "type": "string",
                    "enum": ["breach", "anomaly"]
                },
                "metric": metric,
                "class": {
                    "description": "With `kind: breach`: destination class of the limit; absent for the tenant-wide limit.",
                    "type": "string",
                    "maxLength": 63
                },
                "level": level,
                "anomaly": {
                    "description": "With `kind: anomaly`: `new-destination`, `unusual-hours`, `traffic` or `any`.",
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 63
                }
            },
            "x-kubernetes-validations": [{
                "rule": "self.kind == 'breach' ? (has(self.metric) && has(self.level) && !has(self.anomaly)) : (has(self.anomaly) && !has(self.metric) && !has(self.level) && !has(self.class))",
                "message": "a breach trigger takes metric, level and optional class; an anomaly trigger takes only anomaly"
            }]
        })
    }
}

impl JsonSchema for ResponseAction {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "ResponseAction".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "What a response does: `kind: alert` (only alert), `kind: blockClasses` (block the destination classes in `classes`) or `kind: blockTenant` (block every call of the tenant; emergency numbers still pass).",
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {
                    "description": "`alert`: only alert, nothing is blocked. `blockClasses`: block calls to `classes`. `blockTenant`: block every call of the tenant (emergency numbers still pass).",
                    "type": "string",
                    "enum": ["alert", "blockClasses", "blockTenant"]
                },
                "classes": {
                    "description": "With `kind: blockClasses`: destination classes to block.",
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 64,
                    "items": { "type": "string", "minLength": 1, "maxLength": 63 }
                }
            },
            "x-kubernetes-validations": [{
                "rule": "self.kind == 'blockClasses' ? has(self.classes) : !has(self.classes)",
                "message": "classes is required with kind blockClasses and not allowed with other kinds"
            }]
        })
    }
}

fn described(mut schema: Schema, description: &str) -> Schema {
    schema.insert("description".into(), description.into());
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResponseTrigger;

    #[test]
    fn schema_properties_match_serde() {
        let t = ResponseTrigger::Breach {
            metric: LimitMetric::Rate,
            class: Some("premium-rate".into()),
            level: AlertLevel::Critical,
        };
        let v = serde_json::to_value(&t).expect("serializes");
        let schema = schemars::schema_for!(ResponseTrigger).to_value();
        for key in v.as_object().expect("object").keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{key} missing from schema"
            );
        }
        let a = ResponseAction::BlockClasses {
            classes: vec!["x".into()],
        };
        let v = serde_json::to_value(&a).expect("serializes");
        let schema = schemars::schema_for!(ResponseAction).to_value();
        for key in v.as_object().expect("object").keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{key} missing from schema"
            );
        }
    }
}
