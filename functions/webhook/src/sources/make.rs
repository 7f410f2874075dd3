//! Make: a token-authenticated delivery (see `TokenVerifier`) whose id, type and subject fields the
//! scenario author maps.

use super::{
    Invalid, event_id, lookup, parse_object, raw_payload, required_str, rfc3339, subject_from_field, type_segment,
};
use jiff::Timestamp;
use serde_json::Value;
use tributary_domain::event::CanonicalEvent;

/// Where a Make delivery keeps its id, type and subject (Make has no envelope of its own: the
/// scenario author maps them, e.g. `id` ← `{{executionId}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeFields {
    pub id_field: String,
    pub subject_field: String,
}

/// A Make delivery authenticated by token: the id field is required, `type` optional
/// (`make.delivery` by default), `timestamp` optional (RFC 3339, else the receipt time).
pub fn make_event(fields: &MakeFields, body: &[u8], received_at: Timestamp) -> Result<CanonicalEvent, Invalid> {
    let object = parse_object(body)?;
    let raw_id = match lookup(&object, &fields.id_field) {
        Some(Value::Number(n)) => n.to_string(),
        _ => required_str(&object, &fields.id_field)?.to_string(),
    };
    let id = event_id(&raw_id, &fields.id_field)?;
    let kind = match object.get("type") {
        None => "delivery".to_string(),
        Some(_) => type_segment(required_str(&object, "type")?, "type")?,
    };
    let occurred_at = match object.get("timestamp") {
        Some(value) => rfc3339(value, "timestamp")?,
        None => received_at,
    };
    Ok(CanonicalEvent {
        id,
        source: "make".into(),
        event_type: format!("make.{kind}"),
        subject: subject_from_field(&object, Some(&fields.subject_field), "make"),
        occurred_at,
        received_at,
        payload: raw_payload(body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_clock::at;

    #[test]
    fn make_event_requires_the_configured_id() {
        let fields = MakeFields { id_field: "id".into(), subject_field: "email".into() };
        let event = make_event(&fields, br#"{"id":"exec-1","email":"a@b.c","type":"row.added"}"#, at()).unwrap();
        assert_eq!(event.event_type, "make.row.added");
        assert_eq!(event.subject.unwrap().as_str(), "email:a@b.c");
        assert_eq!(event.occurred_at, at());
        let numeric = make_event(&fields, br#"{"id":42}"#, at()).unwrap();
        assert_eq!((numeric.id.as_str(), numeric.event_type.as_str()), ("42", "make.delivery"));
        assert_eq!(make_event(&fields, br#"{"email":"a@b.c"}"#, at()).unwrap_err().field, "id");
        let nested = MakeFields { id_field: "meta.execution".into(), subject_field: "who".into() };
        assert_eq!(make_event(&nested, br#"{"meta":{}}"#, at()).unwrap_err().field, "meta.execution");
    }
}
