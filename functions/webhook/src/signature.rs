//! Authentication schemes: Stripe signatures, Standard Webhooks signatures, shared tokens.
//!
//! Every comparison of a secret-derived value is constant-time. Callers get one opaque error kind
//! per reason for the logs; the HTTP answer is the same 401 whichever part failed. The signatures
//! themselves are computed by `tributary_domain::signing`, which the senders of the tests sign with.

use base64::Engine;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
pub use tributary_domain::signing::{InvalidSecret, decode_standard_secret};
use tributary_domain::signing::{signature_matches, standard_v1, stripe_v1};

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
    fn check(self, timestamp: i64, now: Timestamp) -> Result<(), AuthError> {
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

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 keyed with the whole
/// `whsec_…` string over `"{t}.{raw body}"`. Any `v1` may match any configured secret.
#[derive(Debug, Clone)]
pub struct StripeVerifier {
    secrets: Vec<String>,
    tolerance: Tolerance,
}

impl StripeVerifier {
    pub fn new(secrets: Vec<String>, tolerance: Tolerance) -> Self {
        Self { secrets, tolerance }
    }

    pub fn verify(&self, header: Option<&str>, body: &[u8], now: Timestamp) -> Result<(), AuthError> {
        let header = header.ok_or(AuthError::MissingHeader)?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            let (key, value) = item.trim().split_once('=').ok_or(AuthError::MalformedHeader)?;
            match key {
                "t" => timestamp = Some(value.parse::<i64>().map_err(|_| AuthError::MalformedHeader)?),
                // An undecodable v1 cannot match; other v1 values still may.
                "v1" => signatures.extend(hex::decode(value).ok()),
                _ => {} // v0 (test mode) and future schemes are ignored, as Stripe's libraries do.
            }
        }
        let timestamp = timestamp.ok_or(AuthError::MalformedHeader)?;
        if signatures.is_empty() {
            return Err(AuthError::MalformedHeader);
        }
        self.tolerance.check(timestamp, now)?;
        let timestamp = timestamp.to_string();
        let matched = self.secrets.iter().any(|secret| {
            let expected = stripe_v1(secret, &timestamp, body);
            signatures.iter().any(|signature| signature_matches(&expected, signature))
        });
        if matched { Ok(()) } else { Err(AuthError::NoMatch) }
    }
}

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
    keys: Vec<Vec<u8>>,
    tolerance: Tolerance,
}

impl StandardVerifier {
    pub fn new(secrets: &[String], tolerance: Tolerance) -> Result<Self, InvalidSecret> {
        let keys = secrets.iter().map(|s| decode_standard_secret(s)).collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(InvalidSecret);
        }
        Ok(Self { keys, tolerance })
    }

    /// A verifier for one raw key (no secret text to decode).
    pub fn with_key(key: Vec<u8>, tolerance: Tolerance) -> Self {
        Self { keys: vec![key], tolerance }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_testing::senders::{standard_webhooks_signature, stripe_signature_header};

    const NOW: i64 = 1_700_000_000;

    fn now() -> Timestamp {
        Timestamp::from_second(NOW).unwrap()
    }

    fn tolerance() -> Tolerance {
        Tolerance { seconds: 300 }
    }

    #[test]
    fn stripe_known_answer_from_the_published_scheme() {
        let secret = "whsec_test_secret";
        let body = br#"{"id":"evt_1","object":"event"}"#;
        // The signed content and the key as Stripe documents them, computed apart from the scheme
        // function (whose own test checks it against an RFC 2104 HMAC written out with SHA-256).
        let expected = {
            use hmac::{KeyInit, Mac};
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{NOW}.{}", std::str::from_utf8(body).unwrap()).as_bytes());
            mac.finalize().into_bytes()
        };
        let header = format!("t={NOW},v1={}", hex::encode(expected));
        assert_eq!(stripe_signature_header(secret, NOW, body), header);
        let verifier = StripeVerifier::new(vec![secret.into()], tolerance());
        assert_eq!(verifier.verify(Some(&header), body, now()), Ok(()));
    }

    #[test]
    fn stripe_rejects_every_tampering() {
        let secret = "whsec_abc";
        let body = br#"{"id":"evt_1"}"#;
        let verifier = StripeVerifier::new(vec![secret.into()], tolerance());
        let header = stripe_signature_header(secret, NOW, body);

        assert_eq!(verifier.verify(Some(&header), br#"{"id":"evt_2"}"#, now()), Err(AuthError::NoMatch));
        let other = StripeVerifier::new(vec!["whsec_other".into()], tolerance());
        assert_eq!(other.verify(Some(&header), body, now()), Err(AuthError::NoMatch));
        assert_eq!(verifier.verify(None, body, now()), Err(AuthError::MissingHeader));
        assert_eq!(verifier.verify(Some("garbage"), body, now()), Err(AuthError::MalformedHeader));
        assert_eq!(verifier.verify(Some(&format!("t={NOW}")), body, now()), Err(AuthError::MalformedHeader));

        let old = stripe_signature_header(secret, NOW - 301, body);
        assert_eq!(verifier.verify(Some(&old), body, now()), Err(AuthError::TimestampOutOfTolerance));
        let edge = stripe_signature_header(secret, NOW - 300, body);
        assert_eq!(verifier.verify(Some(&edge), body, now()), Ok(()));
        let future = stripe_signature_header(secret, NOW + 301, body);
        assert_eq!(verifier.verify(Some(&future), body, now()), Err(AuthError::TimestampOutOfTolerance));
        // Extreme timestamps are out of tolerance, never an arithmetic overflow (a panic in dev builds).
        for extreme in [i64::MIN, i64::MAX, i64::MIN + 1] {
            let signed = stripe_signature_header(secret, extreme, body);
            assert_eq!(verifier.verify(Some(&signed), body, now()), Err(AuthError::TimestampOutOfTolerance));
        }
        // A valid signature moved to another timestamp no longer matches.
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(verifier.verify(Some(&moved), body, now()), Err(AuthError::NoMatch));
    }

    #[test]
    fn stripe_rotation_any_v1_and_any_secret() {
        let body = b"{}";
        let old_header = stripe_signature_header("whsec_old", NOW, body);
        let new_header = stripe_signature_header("whsec_new", NOW, body);
        let new_v1 = new_header.split_once(",v1=").unwrap().1;
        // Stripe signs with both secrets while a rolled secret is still valid.
        let both = format!("{old_header},v1={new_v1},v0=deadbeef");
        let new_only = StripeVerifier::new(vec!["whsec_new".into()], tolerance());
        assert_eq!(new_only.verify(Some(&both), body, now()), Ok(()));
        // And the receiver may hold both secrets while it rotates its own configuration.
        let both_secrets = StripeVerifier::new(split_secret_list("whsec_new, whsec_old"), tolerance());
        assert_eq!(both_secrets.verify(Some(&old_header), body, now()), Ok(()));
    }

    #[test]
    fn stripe_matches_the_odoo_signed_delivery_when_present() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/webhooks/stripe/odoo-signed");
        let (Ok(body), Ok(vector)) = (
            std::fs::read(dir.join("checkout.session.completed.body.json")),
            std::fs::read_to_string(dir.join("checkout.session.completed.signature-vector.json")),
        ) else {
            return; // The shared fixtures are beside the project on developer machines and in CI only.
        };
        let vector: serde_json::Value = serde_json::from_str(&vector).unwrap();
        let header = vector["headers"]["Stripe-Signature"].as_str().unwrap().to_string();
        let secret = vector["webhook_secret"].as_str().unwrap().to_string();
        let t: i64 = header.split(',').find_map(|p| p.strip_prefix("t=")).unwrap().parse().unwrap();
        let at = Timestamp::from_second(t + 10).unwrap();
        let verifier = StripeVerifier::new(vec![secret.clone()], tolerance());
        assert_eq!(verifier.verify(Some(&header), &body, at), Ok(()));
        let tampered = String::from_utf8(body.clone()).unwrap().replacen("1500", "10", 1);
        assert_ne!(tampered.as_bytes(), body.as_slice());
        assert_eq!(verifier.verify(Some(&header), tampered.as_bytes(), at), Err(AuthError::NoMatch));
        let too_old = Timestamp::from_second(t + 301).unwrap();
        assert_eq!(verifier.verify(Some(&header), &body, too_old), Err(AuthError::TimestampOutOfTolerance));
    }

    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

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
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/webhooks/standard-webhooks/test-vectors.json");
        let Ok(text) = std::fs::read_to_string(path) else {
            return; // The shared fixtures are beside the project on developer machines and in CI only.
        };
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
