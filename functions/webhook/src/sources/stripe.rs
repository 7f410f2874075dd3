//! Stripe: the `Stripe-Signature` check and the Stripe event envelope.

use super::{AuthError, Invalid, Tolerance, event_id, raw_payload, type_segment};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use tributary_domain::event::{CanonicalEvent, EventId, Subject};
use tributary_domain::signing::{SigningKey, signature_matches, stripe_v1};

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 keyed with the whole
/// `whsec_…` string over `"{t}.{raw body}"`. Any `v1` may match any configured secret.
#[derive(Debug, Clone)]
pub struct StripeVerifier {
    keys: Vec<SigningKey>,
    tolerance: Tolerance,
}

impl StripeVerifier {
    pub fn new(secrets: Vec<String>, tolerance: Tolerance) -> Self {
        Self { keys: secrets.iter().map(|secret| SigningKey::new(secret.as_bytes())).collect(), tolerance }
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
        let matched = self.keys.iter().any(|key| {
            let expected = stripe_v1(key, &timestamp, body);
            signatures.iter().any(|signature| signature_matches(&expected, signature))
        });
        if matched { Ok(()) } else { Err(AuthError::NoMatch) }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::split_secret_list;
    use crate::sources::test_clock::{NOW, at, now, tolerance};
    use sha2::Sha256;
    use tributary_testing::senders::stripe_signature_header;

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
    fn the_verifier_never_shows_its_secrets() {
        // A verifier reaches logs through `Debug` (the receiver's, an error's context): the
        // signing secrets must not go with it.
        let verifier = StripeVerifier::new(vec!["whsec_do_not_log".into(), "whsec_nor_this".into()], tolerance());
        let shown = format!("{verifier:?}");
        assert!(!shown.contains("do_not_log") && !shown.contains("nor_this"), "{shown}");
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
        let Some(dir) = tributary_testing::external_fixture("webhooks/stripe/odoo-signed") else { return };
        let body = std::fs::read(dir.join("checkout.session.completed.body.json")).unwrap();
        let vector = std::fs::read_to_string(dir.join("checkout.session.completed.signature-vector.json")).unwrap();
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
        let Some(dir) = tributary_testing::external_fixture("webhooks/stripe") else { return };
        let groups = std::fs::read_dir(&dir).unwrap();
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
}
