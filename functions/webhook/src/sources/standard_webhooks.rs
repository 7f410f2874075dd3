//! Standard Webhooks: the `webhook-signature` check and the delivery's event.

use super::{
    AuthError, Invalid, Tolerance, event_id, parse_object, raw_payload, required_str, rfc3339, subject_from_field,
    type_segment,
};
use base64::Engine;
use jiff::Timestamp;
use tributary_domain::event::CanonicalEvent;
pub use tributary_domain::signing::{InvalidSecret, decode_standard_secret};
use tributary_domain::signing::{SigningKey, signature_matches, standard_v1};

/// The Standard Webhooks headers of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct StandardHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Standard Webhooks: HMAC-SHA256 over `"{webhook-id}.{webhook-timestamp}.{body}"` with the decoded
/// secret, sent as a space-separated list of `v1,<base64>` in `webhook-signature`.
#[derive(Debug, Clone)]
pub struct StandardVerifier {
    keys: Vec<SigningKey>,
    tolerance: Tolerance,
}

impl StandardVerifier {
    pub fn new(secrets: &[String], tolerance: Tolerance) -> Result<Self, InvalidSecret> {
        let keys = secrets
            .iter()
            .map(|s| decode_standard_secret(s).map(|key| SigningKey::new(&key)))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(InvalidSecret);
        }
        Ok(Self { keys, tolerance })
    }

    /// A verifier for one raw key (no secret text to decode).
    pub fn with_key(key: &[u8], tolerance: Tolerance) -> Self {
        Self { keys: vec![SigningKey::new(key)], tolerance }
    }

    /// On success, the instant the sender signed the delivery (`webhook-timestamp`).
    pub fn verify(&self, headers: StandardHeaders<'_>, body: &[u8], now: Timestamp) -> Result<Timestamp, AuthError> {
        let id = headers.id.ok_or(AuthError::MissingHeader)?;
        let raw_timestamp = headers.timestamp.ok_or(AuthError::MissingHeader)?;
        let signature_header = headers.signature.ok_or(AuthError::MissingHeader)?;
        let timestamp = raw_timestamp.trim().parse::<i64>().map_err(|_| AuthError::MalformedHeader)?;
        self.tolerance.check(timestamp, now)?;
        // Within the tolerance of a valid `now`, so in range.
        let signed_at = Timestamp::from_second(timestamp).map_err(|_| AuthError::TimestampOutOfTolerance)?;
        let signatures: Vec<Vec<u8>> = signature_header
            .split_whitespace()
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, value)| base64::engine::general_purpose::STANDARD.decode(value).ok())
            .collect();
        if signatures.is_empty() {
            return Err(AuthError::MalformedHeader);
        }
        let matched = self.keys.iter().any(|key| {
            let expected = standard_v1(key, id, raw_timestamp.trim(), body);
            signatures.iter().any(|signature| signature_matches(&expected, signature))
        });
        if matched { Ok(signed_at) } else { Err(AuthError::NoMatch) }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_clock::{NOW, at, now, tolerance};
    use tributary_testing::senders::standard_webhooks_signature;

    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_verifier_never_shows_its_keys() {
        // The decoded key of SW_SECRET, as bytes and as Debug writes a Vec<u8>.
        let key = decode_standard_secret(SW_SECRET).unwrap();
        let shown = format!("{:?}", StandardVerifier::new(&[SW_SECRET.into()], tolerance()).unwrap());
        let listed = format!("{key:?}");
        assert!(!shown.contains(&listed[1..listed.len() - 1]) && !shown.contains("MfKQ9r8"), "{shown}");
    }

    #[test]
    fn standard_webhooks_published_vector() {
        // The vector published by the Standard Webhooks specification's libraries.
        let verifier = StandardVerifier::new(&[SW_SECRET.into()], tolerance()).unwrap();
        let headers = StandardHeaders {
            id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
            timestamp: Some("1614265330"),
            signature: Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        };
        let body = br#"{"test": 2432232314}"#;
        let at = Timestamp::from_second(1_614_265_330).unwrap();
        assert_eq!(verifier.verify(headers, body, at), Ok(at));
        assert_eq!(
            standard_webhooks_signature(SW_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn standard_webhooks_rejections_and_rotation() {
        let verifier = StandardVerifier::new(&[SW_SECRET.into()], tolerance()).unwrap();
        let body = br#"{"type":"user.created"}"#;
        let signature = standard_webhooks_signature(SW_SECRET, "msg_1", NOW, body).unwrap();
        let ts = NOW.to_string();
        let ok = StandardHeaders { id: Some("msg_1"), timestamp: Some(&ts), signature: Some(&signature) };
        assert_eq!(verifier.verify(ok, body, now()), Ok(now()));

        assert_eq!(verifier.verify(ok, br#"{"type":"user.deleted"}"#, now()), Err(AuthError::NoMatch));
        assert_eq!(verifier.verify(StandardHeaders { id: Some("msg_2"), ..ok }, body, now()), Err(AuthError::NoMatch));
        assert_eq!(verifier.verify(StandardHeaders { id: None, ..ok }, body, now()), Err(AuthError::MissingHeader));
        assert_eq!(
            verifier.verify(StandardHeaders { signature: None, ..ok }, body, now()),
            Err(AuthError::MissingHeader)
        );
        assert_eq!(
            verifier.verify(StandardHeaders { timestamp: None, ..ok }, body, now()),
            Err(AuthError::MissingHeader)
        );
        let old = (NOW - 301).to_string();
        let old_sig = standard_webhooks_signature(SW_SECRET, "msg_1", NOW - 301, body).unwrap();
        let old_headers = StandardHeaders { id: Some("msg_1"), timestamp: Some(&old), signature: Some(&old_sig) };
        assert_eq!(verifier.verify(old_headers, body, now()), Err(AuthError::TimestampOutOfTolerance));
        let future = (NOW + 301).to_string();
        let future_sig = standard_webhooks_signature(SW_SECRET, "msg_1", NOW + 301, body).unwrap();
        let future_headers =
            StandardHeaders { id: Some("msg_1"), timestamp: Some(&future), signature: Some(&future_sig) };
        assert_eq!(verifier.verify(future_headers, body, now()), Err(AuthError::TimestampOutOfTolerance));
        for bad in ["v1,", "v2,abc", "garbage", ""] {
            let headers = StandardHeaders { signature: Some(bad), ..ok };
            assert!(verifier.verify(headers, body, now()).is_err(), "{bad:?} accepted");
        }
        let truncated = &signature[..signature.len() - 4];
        assert_eq!(
            verifier.verify(StandardHeaders { signature: Some(truncated), ..ok }, body, now()),
            Err(AuthError::NoMatch)
        );

        // Rotation: the sender lists several signatures; any one from a known key passes.
        let other_secret = "whsec_dGhlLW5ldy1zZWNyZXQtZm9yLXJvdGF0aW9u";
        let other = standard_webhooks_signature(other_secret, "msg_1", NOW, body).unwrap();
        let list = format!("v1a,xyz {other} {signature}");
        assert_eq!(verifier.verify(StandardHeaders { signature: Some(&list), ..ok }, body, now()), Ok(now()));
        let rotated = StandardVerifier::new(&[other_secret.into(), SW_SECRET.into()], tolerance()).unwrap();
        assert_eq!(rotated.verify(ok, body, now()), Ok(now()));
        let wrong_key = StandardVerifier::new(&[other_secret.into()], tolerance()).unwrap();
        assert_eq!(wrong_key.verify(ok, body, now()), Err(AuthError::NoMatch));
    }

    #[test]
    fn standard_webhooks_vectors_file_when_present() {
        let Some(path) = tributary_testing::external_fixture("webhooks/standard-webhooks/test-vectors.json") else {
            return;
        };
        let text = std::fs::read_to_string(path).unwrap();
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        let (mut positives, mut negatives) = (0, 0);
        for vector in document["vectors"].as_array().unwrap() {
            let text = |k: &str| vector.get(k).and_then(|v| v.as_str());
            let (Some(secret), Some(id), Some(payload)) = (text("secret"), text("msg_id"), text("payload")) else {
                continue; // Patterns and unverifiable spec examples carry no key.
            };
            let verifier = StandardVerifier::new(&[secret.to_string()], tolerance()).unwrap();
            if let Some(expected) = text("expected_signature") {
                let timestamp = vector["timestamp"].as_i64().unwrap();
                assert_eq!(
                    standard_webhooks_signature(secret, id, timestamp, payload.as_bytes()).unwrap(),
                    expected,
                    "{vector}"
                );
                let ts = timestamp.to_string();
                let headers = StandardHeaders { id: Some(id), timestamp: Some(&ts), signature: Some(expected) };
                let at = Timestamp::from_second(timestamp).unwrap();
                assert_eq!(verifier.verify(headers, payload.as_bytes(), at), Ok(at), "{vector}");
                positives += 1;
            } else if let Some(header) = text("signature_header") {
                let ts = NOW.to_string();
                let headers = StandardHeaders { id: Some(id), timestamp: Some(&ts), signature: Some(header) };
                assert!(verifier.verify(headers, payload.as_bytes(), now()).is_err(), "{vector}");
                negatives += 1;
            }
        }
        assert!(positives >= 2 && negatives >= 3, "only {positives} positive and {negatives} negative vectors read");
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
}
