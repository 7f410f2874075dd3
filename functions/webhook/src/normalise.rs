//! From a verified request body to the canonical event, one function per sender family.
//!
//! Validation errors name the field at fault (dotted path into the body, or the header name), so
//! the 422 answer tells the sender exactly what to fix.

use jiff::Timestamp;
use serde_json::{Map, Value};
use tributary_shared::event::{CanonicalEvent, EventId, Subject};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self { field: field.to_string(), reason: reason.into() }
    }
}

/// Parses the body as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Invalid::new("body", "must be a JSON object")),
        Err(e) => Err(Invalid::new("body", format!("is not valid JSON ({e})"))),
    }
}

/// The value at a dotted path (`data.object.customer`).
pub fn lookup<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = object.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

fn required_str<'a>(object: &'a Map<String, Value>, path: &str) -> Result<&'a str, Invalid> {
    match lookup(object, path) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) => Err(Invalid::new(path, "must not be empty")),
        Some(_) => Err(Invalid::new(path, "must be a string")),
        None => Err(Invalid::new(path, "is required")),
    }
}

fn event_id(value: &str, field: &str) -> Result<EventId, Invalid> {
    EventId::parse(value).map_err(|e| Invalid::new(field, e.to_string()))
}

fn rfc3339(value: &Value, field: &str) -> Result<Timestamp, Invalid> {
    value
        .as_str()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .ok_or_else(|| Invalid::new(field, "must be an RFC 3339 date-time with an offset"))
}

/// An event type segment: what follows the source prefix in `type`.
fn type_segment(value: &str, field: &str) -> Result<String, Invalid> {
    let valid = value.len() <= 128
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid { Ok(value.to_string()) } else { Err(Invalid::new(field, "may only contain letters, digits and . _ -")) }
}

fn subject_from_field(object: &Map<String, Value>, path: Option<&str>, system: &str) -> Option<Subject> {
    match lookup(object, path?)? {
        Value::String(s) if !s.trim().is_empty() => Some(Subject::from_field_value(system, s)),
        Value::Number(n) => Some(Subject::external(system, &n.to_string())),
        _ => None,
    }
}

/// A Stripe event: `id`, `type`, `created` and `data.object` are required.
pub fn stripe_event(body: &[u8], received_at: Timestamp) -> Result<CanonicalEvent, Invalid> {
    let object = parse_object(body)?;
    let id = event_id(required_str(&object, "id")?, "id")?;
    let stripe_type = type_segment(required_str(&object, "type")?, "type")?;
    let created = lookup(&object, "created")
        .and_then(Value::as_i64)
        .ok_or_else(|| Invalid::new("created", "must be a Unix timestamp in seconds"))?;
    let occurred_at = Timestamp::from_second(created).map_err(|_| Invalid::new("created", "is out of range"))?;
    let data_object = match lookup(&object, "data.object") {
        Some(Value::Object(map)) => map,
        Some(_) => return Err(Invalid::new("data.object", "must be an object")),
        None => return Err(Invalid::new("data.object", "is required")),
    };
    Ok(CanonicalEvent {
        id,
        source: "stripe".into(),
        event_type: format!("stripe.{stripe_type}"),
        subject: stripe_subject(data_object),
        occurred_at,
        received_at,
        payload: Value::Object(object),
    })
}

/// The customer a Stripe object is about: its customer id when it has one (the object itself for
/// `customer` events, `customer` as an id or an expanded object otherwise), else an e-mail address.
fn stripe_subject(data_object: &Map<String, Value>) -> Option<Subject> {
    let customer_id = if data_object.get("object").and_then(Value::as_str) == Some("customer") {
        data_object.get("id").and_then(Value::as_str)
    } else {
        match data_object.get("customer") {
            Some(Value::String(id)) => Some(id.as_str()),
            Some(Value::Object(customer)) => customer.get("id").and_then(Value::as_str),
            _ => None,
        }
    };
    if let Some(id) = customer_id.filter(|id| !id.is_empty()) {
        return Some(Subject::external("stripe", id));
    }
    ["customer_email", "email", "customer_details.email", "billing_details.email", "receipt_email"]
        .iter()
        .find_map(|path| lookup(data_object, path).and_then(Value::as_str).filter(|s| s.contains('@')))
        .map(Subject::email)
}

/// A Standard Webhooks delivery: the id is the `webhook-id` header; the body must carry `type`;
/// `timestamp` (RFC 3339), when present, is when the event occurred, else the header's timestamp.
pub fn standard_event(
    source: &str,
    webhook_id: &str,
    webhook_timestamp: Timestamp,
    subject_field: Option<&str>,
    body: &[u8],
    received_at: Timestamp,
) -> Result<CanonicalEvent, Invalid> {
    let object = parse_object(body)?;
    let id = event_id(webhook_id, "webhook-id")?;
    let kind = type_segment(required_str(&object, "type")?, "type")?;
    let occurred_at = match object.get("timestamp") {
        Some(value) => rfc3339(value, "timestamp")?,
        None => webhook_timestamp,
    };
    Ok(CanonicalEvent {
        id,
        source: source.to_string(),
        event_type: format!("{source}.{kind}"),
        subject: subject_from_field(&object, subject_field, source),
        occurred_at,
        received_at,
        payload: Value::Object(object),
    })
}

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
        payload: Value::Object(object),
    })
}

/// Score bands of the personnage contract (inclusive bounds), lowest first.
pub const NIVEAU_BANDS: [(u8, u8, &str); 5] = [
    (0, 24, "novice"),
    (25, 49, "apprenti"),
    (50, 74, "confirmé"),
    (75, 89, "expert"),
    (90, 100, "légendaire"),
];

pub fn niveau(score: u8) -> &'static str {
    NIVEAU_BANDS.iter().find(|(low, high, _)| (*low..=*high).contains(&score)).map_or("légendaire", |band| band.2)
}

/// `POST /webhook/personnage`: `{"nom": non-empty string, "score": integer 0..=100}`, nothing else;
/// enriched with `niveau`. The id is the `Idempotency-Key` header when the caller sends one (so its
/// retries are recognised), else a fresh one.
pub fn personnage_event(
    body: &[u8],
    idempotency_key: Option<&str>,
    received_at: Timestamp,
) -> Result<CanonicalEvent, Invalid> {
    let object = parse_object(body)?;
    if let Some(unknown) = object.keys().find(|k| !matches!(k.as_str(), "nom" | "score")) {
        return Err(Invalid::new(unknown, "is not a field of personnage (expected nom and score)"));
    }
    let nom = required_str(&object, "nom")?.trim().to_string();
    if nom.chars().count() > 200 {
        return Err(Invalid::new("nom", "must be at most 200 characters"));
    }
    let score = match object.get("score") {
        None => return Err(Invalid::new("score", "is required")),
        Some(value) => value
            .as_u64()
            .filter(|s| *s <= 100)
            .ok_or_else(|| Invalid::new("score", "must be an integer from 0 to 100"))?,
    };
    let score = u8::try_from(score).map_err(|_| Invalid::new("score", "must be an integer from 0 to 100"))?;
    let id = match idempotency_key {
        Some(key) => event_id(key, "idempotency-key")?,
        None => EventId::random(),
    };
    Ok(CanonicalEvent {
        id,
        source: "personnage".into(),
        event_type: "personnage.submitted".into(),
        subject: None,
        occurred_at: received_at,
        received_at,
        payload: serde_json::json!({ "nom": nom, "score": score, "niveau": niveau(score) }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn stripe_event_takes_id_type_created_and_customer() {
        let body = br#"{"id":"evt_1","type":"invoice.paid","created":1700000000,
            "data":{"object":{"object":"invoice","customer":"cus_9","customer_email":"A@B.io"}}}"#;
        let event = stripe_event(body, at()).unwrap();
        assert_eq!(event.id.as_str(), "evt_1");
        assert_eq!(event.event_type, "stripe.invoice.paid");
        assert_eq!(event.occurred_at, Timestamp::from_second(1_700_000_000).unwrap());
        assert_eq!(event.subject.unwrap().as_str(), "stripe:cus_9");
        assert_eq!(event.received_at, at());
    }

    #[test]
    fn stripe_subject_for_customers_and_guests() {
        let customer = br#"{"id":"evt_1","type":"customer.created","created":1,"data":{"object":{"object":"customer","id":"cus_1","email":"x@y.z"}}}"#;
        assert_eq!(stripe_event(customer, at()).unwrap().subject.unwrap().as_str(), "stripe:cus_1");
        let guest = br#"{"id":"evt_1","type":"checkout.session.completed","created":1,"data":{"object":{"object":"checkout.session","customer":null,"customer_details":{"email":" Guest@X.io"}}}}"#;
        assert_eq!(stripe_event(guest, at()).unwrap().subject.unwrap().as_str(), "email:guest@x.io");
        let nobody = br#"{"id":"evt_1","type":"plan.created","created":1,"data":{"object":{"object":"plan"}}}"#;
        assert_eq!(stripe_event(nobody, at()).unwrap().subject, None);
    }

    #[test]
    fn stripe_validation_names_the_field() {
        let field = |body: &[u8]| stripe_event(body, at()).unwrap_err().field;
        assert_eq!(field(b"{not json"), "body");
        assert_eq!(field(b"[1]"), "body");
        assert_eq!(field(br#"{"type":"a","created":1,"data":{"object":{}}}"#), "id");
        assert_eq!(field(br#"{"id":"evt 1","type":"a","created":1,"data":{"object":{}}}"#), "id");
        assert_eq!(field(br#"{"id":"evt_1","created":1,"data":{"object":{}}}"#), "type");
        assert_eq!(field(br#"{"id":"evt_1","type":"a","created":"x","data":{"object":{}}}"#), "created");
        assert_eq!(field(br#"{"id":"evt_1","type":"a","created":1,"data":{}}"#), "data.object");
        assert_eq!(field(br#"{"id":"evt_1","type":"a","created":1,"data":{"object":3}}"#), "data.object");
    }

    #[test]
    fn stripe_fixture_files_normalise_when_present() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/webhooks/stripe");
        let Ok(groups) = std::fs::read_dir(&dir) else { return };
        let mut seen = 0;
        for group in groups.flatten() {
            for file in std::fs::read_dir(group.path()).unwrap().flatten() {
                let name = file.file_name().to_string_lossy().to_string();
                if !name.ends_with(".json") || name.contains("signature-vector") || name.contains("event-resource") {
                    continue;
                }
                let body = std::fs::read(file.path()).unwrap();
                let event = stripe_event(&body, at()).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(event.event_type.starts_with("stripe."), "{name}");
                seen += 1;
            }
        }
        assert!(seen >= 10, "only {seen} Stripe fixtures read");
    }

    #[test]
    fn standard_event_uses_header_id_and_payload_type() {
        let body = br#"{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"email":"Z@Q.io"}}"#;
        let ts = Timestamp::from_second(1_674_087_231).unwrap();
        let event = standard_event("acme", "msg_2K", ts, Some("data.email"), body, at()).unwrap();
        assert_eq!(event.id.as_str(), "msg_2K");
        assert_eq!(event.event_type, "acme.contact.created");
        assert_eq!(event.occurred_at, "2022-11-03T20:26:10.344522Z".parse::<Timestamp>().unwrap());
        assert_eq!(event.subject.unwrap().as_str(), "email:z@q.io");

        let no_ts = standard_event("acme", "msg_2K", ts, None, br#"{"type":"a"}"#, at()).unwrap();
        assert_eq!(no_ts.occurred_at, ts);
        assert_eq!(no_ts.subject, None);
        let err = |body: &[u8], id: &str| standard_event("acme", id, ts, None, body, at()).unwrap_err().field;
        assert_eq!(err(br#"{"data":{}}"#, "msg_1"), "type");
        assert_eq!(err(br#"{"type":"a b"}"#, "msg_1"), "type");
        assert_eq!(err(br#"{"type":"a","timestamp":"yesterday"}"#, "msg_1"), "timestamp");
        assert_eq!(err(br#"{"type":"a"}"#, "msg/1"), "webhook-id");
    }

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

    #[test]
    fn personnage_bands_cover_every_score_once() {
        let mut previous_high: Option<u8> = None;
        for (low, high, _) in NIVEAU_BANDS {
            assert_eq!(low, previous_high.map_or(0, |h| h + 1));
            previous_high = Some(high);
        }
        assert_eq!(previous_high, Some(100));
        assert_eq!(niveau(85), "expert");
        assert_eq!(niveau(0), "novice");
        assert_eq!(niveau(100), "légendaire");
    }

    #[test]
    fn personnage_is_validated_and_enriched() {
        let event = personnage_event(br#"{"nom": "Naruto", "score": 85}"#, Some("req-1"), at()).unwrap();
        assert_eq!(event.payload, serde_json::json!({"nom": "Naruto", "score": 85, "niveau": "expert"}));
        assert_eq!(event.id.as_str(), "req-1");
        let fresh = personnage_event(br#"{"nom": "Naruto", "score": 85}"#, None, at()).unwrap();
        assert_ne!(fresh.id.as_str(), "req-1");
        let field = |body: &[u8]| personnage_event(body, None, at()).unwrap_err().field;
        assert_eq!(field(br#"{"score": 85}"#), "nom");
        assert_eq!(field(br#"{"nom": "  ", "score": 85}"#), "nom");
        assert_eq!(field(br#"{"nom": 3, "score": 85}"#), "nom");
        assert_eq!(field(br#"{"nom": "N"}"#), "score");
        assert_eq!(field(br#"{"nom": "N", "score": 101}"#), "score");
        assert_eq!(field(br#"{"nom": "N", "score": -1}"#), "score");
        assert_eq!(field(br#"{"nom": "N", "score": 8.5}"#), "score");
        assert_eq!(field(br#"{"nom": "N", "score": "85"}"#), "score");
        assert_eq!(field(br#"{"nom": "N", "score": 85, "rang": 1}"#), "rang");
    }
}
