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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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

impl CanonicalEvent {
    /// Serialised form on the bus (compact JSON).
    pub fn to_message(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    pub fn from_message(message: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(message)
    }

    /// The payload parsed as `T`.
    pub fn payload_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
