//! Configured sources (`PROCESSOR_ATTRIBUTE_SOURCES`, e.g. `make`, a Standard Webhooks sender):
//! the payload's top-level scalar fields (or those of its `data` object, the Standard Webhooks
//! shape) become `attributes.<source>.<field>`.

use super::{Rule, RuleError, subjects};
use crate::customer::record::{Change, CustomerRecord, SubSchema};
use crate::event::{CanonicalEvent, Subject};
use serde_json::{Map, Value};

pub const RULE: Rule = Rule { name: "attributes", owns: &[SubSchema::Attributes], identities, changes };

/// Field names kept as attribute keys; others are skipped (they would break the dotted path).
fn key_allowed(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn identities(event: &CanonicalEvent) -> Result<Vec<Subject>, RuleError> {
    subjects(event, None)
}

fn changes(_record: &CustomerRecord, event: &CanonicalEvent) -> Result<Vec<Change>, RuleError> {
    let payload: Map<String, Value> = event.payload_as().map_err(|e| RuleError::payload("JSON object", e))?;
    let fields = match payload.get("data") {
        Some(Value::Object(data)) => data,
        _ => &payload,
    };
    Ok(fields
        .iter()
        .filter(|(key, value)| key_allowed(key) && (value.is_string() || value.is_number() || value.is_boolean()))
        .map(|(key, value)| Change::new(format!("attributes.{}.{key}", event.source), value.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::rules::test_support::event;
    use serde_json::json;

    #[test]
    fn scalar_fields_of_data_become_attributes() {
        let e = event(
            "acme.contact.created",
            Some("email:a@x.io"),
            "2025-01-01T00:00:00Z",
            json!({"type": "contact.created", "data": {"plan": "pro", "seats": 3, "tags": ["x"], "a.b": 1}}),
        );
        let changes = changes(&CustomerRecord::new(Default::default()), &e).unwrap();
        let fields: Vec<_> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["attributes.acme.plan", "attributes.acme.seats"]);
        let anonymous = event("acme.x", None, "2025-01-01T00:00:00Z", json!({}));
        assert_eq!(identities(&anonymous), Err(RuleError::NoSubject));
    }
}
