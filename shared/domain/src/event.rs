//! The canonical event: the one envelope every input becomes before it reaches the `events` topic.
//!
//! See `ARCHITECTURE.md` ("The canonical event"). The JSON field names are a contract between the
//! functions: `id, source, type, subject, occurred_at, received_at, payload`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// Longest event id accepted; ids go into DynamoDB keys and S3 object keys.
pub const MAX_EVENT_ID_LEN: usize = 200;

/// An event id as sent by its producer (Stripe event id, `webhook-id`, …).
///
/// Restricted to `[A-Za-z0-9_.:-]`, 1 to 200 characters, so that it is safe verbatim in a
/// DynamoDB key and an S3 object key without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventIdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_EVENT_ID_LEN} characters")]
    TooLong,
    #[error("may only contain letters, digits and the characters _ . : -")]
    InvalidCharacter,
}

impl EventId {
    pub fn parse(value: impl Into<String>) -> Result<Self, EventIdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(EventIdError::Empty);
        }
        if value.len() > MAX_EVENT_ID_LEN {
            return Err(EventIdError::TooLong);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
        if !value.chars().all(allowed) {
            return Err(EventIdError::InvalidCharacter);
        }
        Ok(Self(value))
    }

    /// A fresh random id, for producers that send none (see the personnage route).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = EventIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The customer an event is about, as a typed key: `email:<normalised address>` or
/// `<system>:<external id>` (`stripe:cus_…`, `notion:<page id>`, `matomo:<userId>`, `<source>:<id>`).
///
/// The prefix tells identity resolution which lookup to use; the value is kept as sent except
/// e-mail addresses, which are trimmed and lower-cased so that one person meets in one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Subject(String);

impl Subject {
    pub fn email(address: &str) -> Self {
        Self(format!("email:{}", normalise_email(address)))
    }

    pub fn external(system: &str, id: &str) -> Self {
        Self(format!("{system}:{}", id.trim()))
    }

    /// A value taken from a payload field: an address if it looks like one, else an id of `system`.
    pub fn from_field_value(system: &str, value: &str) -> Self {
        if value.contains('@') { Self::email(value) } else { Self::external(system, value) }
    }

    /// A subject as stored (the lake's `subject` column, a record's identities): taken as it is.
    pub fn from_stored(stored: &str) -> Self {
        Self(stored.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Event families and sources the product itself produces or trusts. A configured Standard Webhooks
/// sender may not take one of these names: its events would be typed `lead.upserted`,
/// `stripe.invoice.paid`, … and applied by the rules written for the product's own sources.
/// (`make` is not listed: a Standard Webhooks source named `make` *is* the Make route, signed.)
pub const RESERVED_SOURCE_NAMES: [&str; 14] = [
    "stripe",
    "personnage",
    "lead",
    "ingestion",
    "notion",
    "matomo",
    "customer",
    "processor",
    "integrator",
    "puller",
    "lake",
    "aggregator",
    "tributary",
    "health",
];

/// Trimmed and lower-cased: the one normal form of an e-mail address used for matching.
pub fn normalise_email(address: &str) -> String {
    address.trim().to_lowercase()
}

/// The envelope published on the `events` topic.
///
/// `payload` is kept as raw JSON text: the sender's bytes travel unchanged (no re-serialisation on
/// the hot path, nothing lost or reordered), and each consumer parses the part it needs into its
/// own typed struct (`serde_json::from_str::<T>(event.payload.get())`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CanonicalEvent {
    pub id: EventId,
    /// Where the event came from: `stripe`, `make`, `personnage`, a configured Standard Webhooks
    /// source name, `matomo`, `notion`, `ingestion`.
    pub source: String,
    /// Dotted type, prefixed by the source family: `stripe.invoice.paid`, `lead.upserted`, …
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    pub occurred_at: Timestamp,
    pub received_at: Timestamp,
    pub payload: Box<RawValue>,
}

impl PartialEq for CanonicalEvent {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.source == other.source
            && self.event_type == other.event_type
            && self.subject == other.subject
            && self.occurred_at == other.occurred_at
            && self.received_at == other.received_at
            && self.payload.get() == other.payload.get()
    }
}

/// The event types that our own producers emit or that code selects on, in one place (the senders'
/// types are theirs: `stripe.<type>`, `<source>.<type>`).
/// Whether `event_type` is in a selection: every type (`None`), a family (a prefix ending in `.`,
/// `stripe.`) or one type. Rebuilds and replays select events this way.
pub fn type_selected(selection: Option<&str>, event_type: &str) -> bool {
    match selection {
        None => true,
        Some(family) if family.ends_with('.') => event_type.starts_with(family),
        Some(exact) => event_type == exact,
    }
}

pub mod types {
    /// A lead version, from the ingestion API or the Notion pull.
    pub const LEAD_UPSERTED: &str = "lead.upserted";
    /// A known visitor's Matomo visit, from the Matomo pull.
    pub const MATOMO_VISIT: &str = "matomo.visit";
    /// A customer record's change, from the processor on the `updates` topic.
    pub const CUSTOMER_UPDATED: &str = "customer.updated";
    /// A personnage delivery (the seed contract), from the webhook.
    pub const PERSONNAGE_SUBMITTED: &str = "personnage.submitted";
}

/// Why one of our producers could not build its event: an id that breaks the id rules or a payload
/// that does not serialise (a defect of the producer, never of its input).
#[derive(Debug, thiserror::Error)]
pub enum EventBuildError {
    #[error("event id {0}")]
    Id(#[from] EventIdError),
    #[error("payload: {0}")]
    Payload(#[from] serde_json::Error),
}

impl CanonicalEvent {
    /// The one constructor of the events our producers emit (the lead ingestion, the pulls, the
    /// processor's `customer.updated`): the id checked, the payload serialised. The webhook builds
    /// its events from deliveries, whose payload is the sender's JSON as received.
    pub fn produced<T: Serialize + ?Sized>(
        id: impl Into<String>,
        source: &str,
        event_type: &str,
        subject: Option<Subject>,
        occurred_at: Timestamp,
        received_at: Timestamp,
        payload: &T,
    ) -> Result<Self, EventBuildError> {
        Ok(Self {
            id: EventId::parse(id)?,
            source: source.to_string(),
            event_type: event_type.to_string(),
            subject,
            occurred_at,
            received_at,
            payload: serde_json::value::to_raw_value(payload)?,
        })
    }

    /// Serialised form on the bus (compact JSON).
    pub fn to_message(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    pub fn from_message(message: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(message)
    }

    /// A digest of what the event says, independent of how and when it was delivered: its type,
    /// its subject and its payload in canonical JSON (keys sorted, no insignificant white space),
    /// without the fields a sender changes between attempts of one event (Stripe's
    /// `pending_webhooks`). Kept with the webhook's dedup marker and the processor's applied marker:
    /// the same id with the same digest is a duplicate, with another digest a reuse of the id.
    pub fn content_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.event_type.as_bytes());
        hasher.update([0]);
        hasher.update(self.subject.as_ref().map_or("", Subject::as_str).as_bytes());
        hasher.update([0]);
        match serde_json::from_str::<serde_json::Value>(self.payload.get()) {
            Ok(mut payload) => {
                if let Some(object) = payload.as_object_mut() {
                    for (source, field) in VOLATILE_PAYLOAD_FIELDS {
                        if self.source == source {
                            object.remove(field);
                        }
                    }
                }
                write_canonical(&payload, &mut hasher);
            }
            // Not reachable for an event that was parsed, but a digest of the text is still exact.
            Err(_) => hasher.update(self.payload.get().as_bytes()),
        }
        hex::encode(&hasher.finalize()[..16])
    }

    /// The payload parsed as `T`.
    pub fn payload_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }
}

/// Top-level payload fields that differ between delivery attempts of one event, by source.
const VOLATILE_PAYLOAD_FIELDS: [(&str, &str); 1] = [("stripe", "pending_webhooks")];

/// Canonical JSON into a hasher: object keys sorted, numbers and strings as serde_json writes them.
fn write_canonical(value: &serde_json::Value, hasher: &mut impl sha2::Digest) {
    use serde_json::Value;
    match value {
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    hasher.update(b",");
                }
                hasher.update(Value::String(key.clone()).to_string().as_bytes());
                hasher.update(b":");
                write_canonical(&object[key], hasher);
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    hasher.update(b",");
                }
                write_canonical(item, hasher);
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_with(source: &str, payload: &str) -> CanonicalEvent {
        CanonicalEvent {
            id: EventId::parse("rec_1").unwrap(),
            source: source.into(),
            event_type: format!("{source}.delivery"),
            subject: None,
            occurred_at: Timestamp::UNIX_EPOCH,
            received_at: Timestamp::UNIX_EPOCH,
            payload: RawValue::from_string(payload.into()).unwrap(),
        }
    }

    #[test]
    fn content_digests_ignore_layout_and_delivery_but_not_content() {
        let pro = event_with("make", r#"{"id":"rec_1","plan":"pro","n":[1,2]}"#);
        let relaid = event_with("make", "{ \"n\": [1, 2],\n \"plan\": \"pro\", \"id\": \"rec_1\" }");
        let later = CanonicalEvent { received_at: "2026-01-01T00:00:00Z".parse().unwrap(), ..relaid.clone() };
        assert_eq!(pro.content_digest(), relaid.content_digest());
        assert_eq!(pro.content_digest(), later.content_digest());
        let team = event_with("make", r#"{"id":"rec_1","plan":"team","n":[1,2]}"#);
        assert_ne!(pro.content_digest(), team.content_digest());
        let reordered = event_with("make", r#"{"id":"rec_1","plan":"pro","n":[2,1]}"#);
        assert_ne!(pro.content_digest(), reordered.content_digest());
        let other_type = CanonicalEvent { event_type: "make.other".into(), ..pro.clone() };
        assert_ne!(pro.content_digest(), other_type.content_digest());
        // Stripe counts the endpoints still to deliver to in every attempt: not content.
        let first = event_with("stripe", r#"{"id":"evt_1","pending_webhooks":2,"data":{"object":{}}}"#);
        let retry = event_with("stripe", r#"{"id":"evt_1","pending_webhooks":1,"data":{"object":{}}}"#);
        assert_eq!(first.content_digest(), retry.content_digest());
        let make_field = event_with("make", r#"{"id":"rec_1","pending_webhooks":1}"#);
        let make_other = event_with("make", r#"{"id":"rec_1","pending_webhooks":2}"#);
        assert_ne!(make_field.content_digest(), make_other.content_digest());
    }

    #[test]
    fn event_ids_are_restricted_to_key_safe_characters() {
        assert!(EventId::parse("evt_1GqFpHAlCFm536g8NYSLoccF").is_ok());
        assert!(EventId::parse("msg_p5jXN8AQM9LWM0D4loKWxJek").is_ok());
        assert_eq!(EventId::parse(""), Err(EventIdError::Empty));
        assert_eq!(EventId::parse("a/b"), Err(EventIdError::InvalidCharacter));
        assert_eq!(EventId::parse("a b"), Err(EventIdError::InvalidCharacter));
        assert_eq!(EventId::parse("x".repeat(201)), Err(EventIdError::TooLong));
        assert!(EventId::parse("x".repeat(200)).is_ok());
    }

    #[test]
    fn subjects_normalise_addresses_and_prefix_ids() {
        assert_eq!(Subject::email("  Ada@Example.COM ").as_str(), "email:ada@example.com");
        assert_eq!(Subject::external("stripe", "cus_123").as_str(), "stripe:cus_123");
        assert_eq!(Subject::from_field_value("acme", "Bob@x.io").as_str(), "email:bob@x.io");
        assert_eq!(Subject::from_field_value("acme", "u-42").as_str(), "acme:u-42");
    }

    #[test]
    fn canonical_event_round_trips_with_contract_field_names() {
        let event = CanonicalEvent {
            id: EventId::parse("evt_1").unwrap(),
            source: "stripe".into(),
            event_type: "stripe.invoice.paid".into(),
            subject: Some(Subject::external("stripe", "cus_1")),
            occurred_at: "2025-01-02T03:04:05Z".parse().unwrap(),
            received_at: "2025-01-02T03:04:06Z".parse().unwrap(),
            payload: serde_json::value::to_raw_value(&serde_json::json!({"a": 1})).unwrap(),
        };
        let message = event.to_message().unwrap();
        let value: serde_json::Value = serde_json::from_str(&message).unwrap();
        assert_eq!(value["type"], "stripe.invoice.paid");
        assert_eq!(value["subject"], "stripe:cus_1");
        assert_eq!(value["occurred_at"], "2025-01-02T03:04:05Z");
        assert_eq!(value["payload"], serde_json::json!({"a": 1}));
        assert_eq!(CanonicalEvent::from_message(&message).unwrap(), event);
        assert_eq!(event.payload_as::<serde_json::Value>().unwrap()["a"], 1);
        assert!(CanonicalEvent::from_message(r#"{"id":"bad id"}"#).is_err());
    }
}
