//! From a verified request body to the canonical event, one function per sender family.
//!
//! Validation errors name the field at fault (dotted path into the body, or the header name), so
//! the 422 answer tells the sender exactly what to fix.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tributary_domain::event::{CanonicalEvent, EventId, Subject};

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
    let valid = value.len() <= 128 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid { Ok(value.to_string()) } else { Err(Invalid::new(field, "may only contain letters, digits and . _ -")) }
}

fn subject_from_field(object: &Map<String, Value>, path: Option<&str>, system: &str) -> Option<Subject> {
    match lookup(object, path?)? {
        Value::String(s) if !s.trim().is_empty() => Some(Subject::from_field_value(system, s)),
        Value::Number(n) => Some(Subject::external(system, &n.to_string())),
        _ => None,
    }
}

/// The sender's body as the event payload, byte for byte (it has been parsed, so it is JSON).
fn raw_payload(body: &[u8]) -> Result<Box<RawValue>, Invalid> {
    let text = std::str::from_utf8(body).map_err(|_| Invalid::new("body", "is not UTF-8"))?;
    RawValue::from_string(text.to_owned()).map_err(|e| Invalid::new("body", format!("is not valid JSON ({e})")))
}

/// The envelope fields of a Stripe event, borrowed from the body: the rest (most of it) is only
/// scanned, never built into a tree, which keeps the hot path cheap. `D` is the shape expected for
/// `data`: [`StripeData`] on the fast path, raw JSON to diagnose a `data` of the wrong type.
#[derive(Deserialize)]
struct StripeEnvelope<'a, D> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(default = "Option::default")]
    data: Option<D>,
}

#[derive(Deserialize)]
struct StripeData<'a> {
    #[serde(borrow, default)]
    object: Option<StripeObject<'a>>,
}

/// The fields of a Stripe object that can name the customer. Each is read leniently: a field of an
/// unexpected type means "not known", never a rejected event.
#[derive(Deserialize, Default)]
struct StripeObject<'a> {
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    customer: Option<&'a RawValue>,
    #[serde(borrow, default)]
    customer_email: Option<&'a RawValue>,
    #[serde(borrow, default)]
    email: Option<&'a RawValue>,
    #[serde(borrow, default)]
    customer_details: Option<&'a RawValue>,
    #[serde(borrow, default)]
    billing_details: Option<&'a RawValue>,
    #[serde(borrow, default)]
    receipt_email: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WithId<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WithEmail<'a> {
    #[serde(borrow, default)]
    email: Option<&'a RawValue>,
}

/// A JSON string's value, if `raw` is a non-empty string.
fn raw_string(raw: Option<&RawValue>) -> Option<String> {
    serde_json::from_str::<String>(raw?.get()).ok().filter(|s| !s.trim().is_empty())
}

fn required_raw_string(raw: Option<&RawValue>, field: &str) -> Result<String, Invalid> {
    let raw = raw.filter(|r| r.get() != "null").ok_or_else(|| Invalid::new(field, "is required"))?;
    let text = serde_json::from_str::<String>(raw.get()).map_err(|_| Invalid::new(field, "must be a string"))?;
    if text.trim().is_empty() { Err(Invalid::new(field, "must not be empty")) } else { Ok(text) }
}

/// The checked `id`, type and `created` of a Stripe envelope.
fn stripe_envelope_fields<D>(envelope: &StripeEnvelope<'_, D>) -> Result<(EventId, String, Timestamp), Invalid> {
    let id = event_id(&required_raw_string(envelope.id, "id")?, "id")?;
    let stripe_type = type_segment(&required_raw_string(envelope.kind, "type")?, "type")?;
    let created = envelope
        .created
        .and_then(|raw| serde_json::from_str::<i64>(raw.get()).ok())
        .ok_or_else(|| Invalid::new("created", "must be a Unix timestamp in seconds"))?;
    let occurred_at = Timestamp::from_second(created).map_err(|_| Invalid::new("created", "is out of range"))?;
    Ok((id, stripe_type, occurred_at))
}

/// Why the typed parse of a (valid JSON) Stripe body failed: only `data` or `data.object` of the
/// wrong type can make it fail, once the envelope fields are good.
fn stripe_shape_error(text: &str) -> Invalid {
    let Ok(envelope) = serde_json::from_str::<StripeEnvelope<'_, &RawValue>>(text) else {
        return Invalid::new("body", "must be a JSON object");
    };
    if let Err(invalid) = stripe_envelope_fields(&envelope) {
        return invalid;
    }
    match envelope.data {
        Some(data) if data.get().starts_with('{') => Invalid::new("data.object", "must be an object"),
        _ => Invalid::new("data.object", "is required"),
    }
}

/// A Stripe event: `id`, `type`, `created` and `data.object` are required.
pub fn stripe_event(body: &[u8], received_at: Timestamp) -> Result<CanonicalEvent, Invalid> {
    let payload = raw_payload(body)?;
    if !payload.get().trim_start().starts_with('{') {
        return Err(Invalid::new("body", "must be a JSON object"));
    }
    let envelope: StripeEnvelope<'_, StripeData<'_>> =
        serde_json::from_str(payload.get()).map_err(|_| stripe_shape_error(payload.get()))?;
    let (id, stripe_type, occurred_at) = stripe_envelope_fields(&envelope)?;
    let object =
        envelope.data.and_then(|data| data.object).ok_or_else(|| Invalid::new("data.object", "is required"))?;
    let subject = stripe_subject(&object);
    Ok(CanonicalEvent {
        id,
        source: "stripe".into(),
        event_type: format!("stripe.{stripe_type}"),
        subject,
        occurred_at,
        received_at,
        payload,
    })
}

/// The customer a Stripe object is about: its customer id when it has one (the object itself for
/// `customer` events, `customer` as an id or an expanded object otherwise), else an e-mail address.
fn stripe_subject(object: &StripeObject<'_>) -> Option<Subject> {
    let customer_id = if raw_string(object.object).as_deref() == Some("customer") {
        raw_string(object.id)
    } else {
        object.customer.and_then(|customer| {
            raw_string(Some(customer)).or_else(|| {
                serde_json::from_str::<WithId<'_>>(customer.get()).ok().and_then(|expanded| raw_string(expanded.id))
            })
        })
    };
    if let Some(id) = customer_id {
        return Some(Subject::external("stripe", &id));
    }
    let nested_email = |raw: Option<&RawValue>| {
        serde_json::from_str::<WithEmail<'_>>(raw?.get()).ok().and_then(|holder| raw_string(holder.email))
    };
    [raw_string(object.customer_email), raw_string(object.email), nested_email(object.customer_details)]
        .into_iter()
        .chain([nested_email(object.billing_details), raw_string(object.receipt_email)])
        .flatten()
        .find(|address| address.contains('@'))
        .map(|address| Subject::email(&address))
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
        payload: raw_payload(body)?,
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
        payload: raw_payload(body)?,
    })
}

/// Score bands of the personnage contract (inclusive bounds), lowest first.
pub const NIVEAU_BANDS: [(u8, u8, &str); 5] =
    [(0, 24, "novice"), (25, 49, "apprenti"), (50, 74, "confirmé"), (75, 89, "expert"), (90, 100, "légendaire")];

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
        payload: serde_json::value::to_raw_value(
            &serde_json::json!({ "nom": nom, "score": score, "niveau": niveau(score) }),
        )
        .map_err(|e| Invalid::new("body", e.to_string()))?,
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
        let expanded = br#"{"id":"evt_1","type":"charge.refunded","created":1,"data":{"object":{"object":"charge","customer":{"id":"cus_x","object":"customer"}}}}"#;
        assert_eq!(stripe_event(expanded, at()).unwrap().subject.unwrap().as_str(), "stripe:cus_x");
        // Unexpected types in the subject fields mean "unknown", not a rejected event.
        let odd = br#"{"id":"evt_1","type":"x.y","created":1,"data":{"object":{"customer":7,"customer_details":"n/a","email":"o@p.q"}}}"#;
        assert_eq!(stripe_event(odd, at()).unwrap().subject.unwrap().as_str(), "email:o@p.q");
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
        assert_eq!(
            event.payload_as::<Value>().unwrap(),
            serde_json::json!({"nom": "Naruto", "score": 85, "niveau": "expert"})
        );
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
