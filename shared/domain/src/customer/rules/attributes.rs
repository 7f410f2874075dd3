//! Configured sources (`ATTRIBUTE_SOURCES`, e.g. `make`, a Standard Webhooks sender): the
//! payload's top-level scalar fields (or those of its `data` object, the Standard Webhooks shape)
//! become `attributes.<source>.<field>`.
//!
//! Limits keep the record bounded whatever a sender sends: keys of 1 to 64 of `[A-Za-z0-9_-]`, at
//! most [`MAX_KEYS_PER_SOURCE`] keys per source (a new key beyond them is skipped; known keys keep
//! updating), text values of at most [`MAX_VALUE_CHARS`] characters (a longer one is skipped).

use super::{Rule, RuleError, subjects};
use crate::customer::record::{Change, CustomerRecord, SubSchema};
use crate::event::{CanonicalEvent, Subject};
use serde_json::{Map, Value};

pub const RULE: Rule = Rule { name: "attributes", owns: &[SubSchema::Attributes], identities, changes, ledger: None };

/// Most attribute keys one source may hold in a customer's record.
pub const MAX_KEYS_PER_SOURCE: usize = 100;
/// Longest text value kept, in characters.
pub const MAX_VALUE_CHARS: usize = 1_000;

/// Field names kept as attribute keys; others are skipped (they would break the dotted path).
fn key_allowed(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn identities(event: &CanonicalEvent) -> Result<Vec<Subject>, RuleError> {
    subjects(event, None)
}

fn value_allowed(value: &Value) -> bool {
    match value {
        Value::String(text) => text.chars().count() <= MAX_VALUE_CHARS,
        Value::Number(_) | Value::Bool(_) => true,
        _ => false,
    }
}

fn changes(record: &CustomerRecord, event: &CanonicalEvent) -> Result<Vec<Change>, RuleError> {
    let payload: Map<String, Value> = event.payload_as().map_err(|e| RuleError::payload("JSON object", e))?;
    let fields = match payload.get("data") {
        Some(Value::Object(data)) => data,
        _ => &payload,
    };
    let prefix = format!("attributes.{}.", event.source);
    let mut held = record.fields.keys().filter(|field| field.starts_with(&prefix)).count();
    let mut changes = Vec::new();
    for (key, value) in fields.iter().filter(|(key, value)| key_allowed(key) && value_allowed(value)) {
        let field = format!("{prefix}{key}");
        if !record.fields.contains_key(&field) {
            if held >= MAX_KEYS_PER_SOURCE {
                continue;
            }
            held += 1;
        }
        changes.push(Change::new(field, value.clone()));
    }
    Ok(changes)
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

    #[test]
    fn keys_per_source_and_value_lengths_are_bounded() {
        use crate::customer::record::{FieldState, Stamp};
        let many: serde_json::Map<String, Value> = (0..150)
            .map(|k| (format!("k{k:03}"), json!(k)))
            .chain([("long".to_string(), json!("x".repeat(1_001)))])
            .collect();
        let e = event("acme.x", Some("email:a@x.io"), "2025-01-01T00:00:00Z", Value::Object(many));
        let mut record = CustomerRecord::new(Default::default());
        let proposed = changes(&record, &e).unwrap();
        assert_eq!(proposed.len(), MAX_KEYS_PER_SOURCE);
        assert!(proposed.iter().all(|c| c.field != "attributes.acme.long"));
        // Held keys keep updating once the source is full; new ones are skipped.
        for change in &proposed {
            record
                .fields
                .insert(change.field.clone(), FieldState { value: change.value.clone(), stamp: Stamp::of(&e) });
        }
        let later = event("acme.x", Some("email:a@x.io"), "2025-01-02T00:00:00Z", json!({"k000": 7, "new_key": 1}));
        let fields: Vec<String> = changes(&record, &later).unwrap().into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["attributes.acme.k000"]);
        let other = event("other.x", Some("email:a@x.io"), "2025-01-02T00:00:00Z", json!({"new_key": 1}));
        assert_eq!(changes(&record, &other).unwrap().len(), 1, "each source has its own limit");
    }
}
