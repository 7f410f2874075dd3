//! The senders, one module each with its authentication, its normalisation (verified body → the
//! canonical event) and their tests; what they share is here: the validation error naming the field
//! at fault (so the 422 answer tells the sender exactly what to fix), the JSON helpers, the
//! authentication errors and clock tolerance, and the shared-token check of Make and personnage.
//! The signatures themselves are computed by `tributary_domain::signing`.

pub mod make;
pub mod personnage;
pub mod standard_webhooks;
pub mod stripe;

use jiff::Timestamp;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tributary_domain::event::{EventId, Subject};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub(crate) fn new(field: &str, reason: impl Into<String>) -> Self {
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

pub(crate) fn required_str<'a>(object: &'a Map<String, Value>, path: &str) -> Result<&'a str, Invalid> {
    match lookup(object, path) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) => Err(Invalid::new(path, "must not be empty")),
        Some(_) => Err(Invalid::new(path, "must be a string")),
        None => Err(Invalid::new(path, "is required")),
    }
}

pub(crate) fn event_id(value: &str, field: &str) -> Result<EventId, Invalid> {
    EventId::parse(value).map_err(|e| Invalid::new(field, e.to_string()))
}

pub(crate) fn rfc3339(value: &Value, field: &str) -> Result<Timestamp, Invalid> {
    value
        .as_str()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .ok_or_else(|| Invalid::new(field, "must be an RFC 3339 date-time with an offset"))
}

/// An event type segment: what follows the source prefix in `type`.
pub(crate) fn type_segment(value: &str, field: &str) -> Result<String, Invalid> {
    let valid = value.len() <= 128 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid { Ok(value.to_string()) } else { Err(Invalid::new(field, "may only contain letters, digits and . _ -")) }
}

pub(crate) fn subject_from_field(object: &Map<String, Value>, path: Option<&str>, system: &str) -> Option<Subject> {
    match lookup(object, path?)? {
        Value::String(s) if !s.trim().is_empty() => Some(Subject::from_field_value(system, s)),
        Value::Number(n) => Some(Subject::external(system, &n.to_string())),
        _ => None,
    }
}

/// The sender's body as the event payload, byte for byte (it has been parsed, so it is JSON).
pub(crate) fn raw_payload(body: &[u8]) -> Result<Box<RawValue>, Invalid> {
    let text = std::str::from_utf8(body).map_err(|_| Invalid::new("body", "is not UTF-8"))?;
    RawValue::from_string(text.to_owned()).map_err(|e| Invalid::new("body", format!("is not valid JSON ({e})")))
}

/// Why a delivery was not authenticated. Logged, never sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication header missing")]
    MissingHeader,
    #[error("authentication header malformed")]
    MalformedHeader,
    #[error("timestamp outside the tolerance")]
    TimestampOutOfTolerance,
    #[error("no signature matched")]
    NoMatch,
}

/// Accepted clock difference between the sender's timestamp and ours, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    pub seconds: i64,
}

impl Tolerance {
    pub(crate) fn check(self, timestamp: i64, now: Timestamp) -> Result<(), AuthError> {
        // `abs_diff` cannot overflow, whatever the sender put in the header (`t=-9223372036854775808`).
        if now.as_second().abs_diff(timestamp) > self.seconds.unsigned_abs() {
            return Err(AuthError::TimestampOutOfTolerance);
        }
        Ok(())
    }
}

/// Splits a secret parameter's value into the secrets it holds (several during a rotation).
pub fn split_secret_list(value: &str) -> Vec<String> {
    value.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// A shared token in a configured header (Make, the personnage route). Several tokens may be
/// valid at once during a rotation.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    header: String,
    /// SHA-256 of each accepted header value: comparing fixed-length digests in constant time
    /// does not leak the token's length either.
    digests: Vec<[u8; 32]>,
}

fn sha256(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

impl TokenVerifier {
    /// `prefix` is prepended to each token to form the expected header value (`"Bearer "` for the
    /// `Authorization` header, empty otherwise).
    pub fn new(header: &str, prefix: &str, tokens: &[String]) -> Self {
        let digests = tokens.iter().map(|token| sha256(format!("{prefix}{token}").as_bytes())).collect();
        Self { header: header.to_ascii_lowercase(), digests }
    }

    pub fn header(&self) -> &str {
        &self.header
    }

    pub fn verify(&self, value: Option<&str>) -> Result<(), AuthError> {
        let presented = sha256(value.ok_or(AuthError::MissingHeader)?.trim().as_bytes());
        // Fold over every digest so the time does not depend on which one matched.
        let matched =
            self.digests.iter().fold(subtle::Choice::from(0), |found, digest| found | digest.ct_eq(&presented));
        if bool::from(matched) { Ok(()) } else { Err(AuthError::NoMatch) }
    }
}

/// The clock of the senders' tests: `now` for signatures (`NOW` as Unix seconds), `at` for receipts.
#[cfg(test)]
pub(crate) mod test_clock {
    use super::Tolerance;
    use jiff::Timestamp;

    pub(crate) const NOW: i64 = 1_700_000_000;

    pub(crate) fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap()
    }

    pub(crate) fn tolerance() -> Tolerance {
        Tolerance { seconds: 300 }
    }

    pub(crate) fn at() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_in_constant_time_and_rotate() {
        let verifier = TokenVerifier::new("X-Make-Token", "", &["t0k3n".into(), "n3w".into()]);
        assert_eq!(verifier.header(), "x-make-token");
        assert_eq!(verifier.verify(Some("t0k3n")), Ok(()));
        assert_eq!(verifier.verify(Some("n3w")), Ok(()));
        assert_eq!(verifier.verify(Some("t0k3")), Err(AuthError::NoMatch));
        assert_eq!(verifier.verify(None), Err(AuthError::MissingHeader));
        let bearer = TokenVerifier::new("Authorization", "Bearer ", &["abc".into()]);
        assert_eq!(bearer.verify(Some("Bearer abc")), Ok(()));
        assert_eq!(bearer.verify(Some("abc")), Err(AuthError::NoMatch));
    }
}
