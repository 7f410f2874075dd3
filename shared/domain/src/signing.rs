//! HMAC-SHA256 keys and the signatures webhook senders compute, as their schemes define them: what
//! the receiver checks (`webhook`'s verifiers) and what a sender produces
//! (`tributary_testing::senders`) are the same functions, so the two sides cannot drift apart. The
//! puller's anonymisation hashes with the same `SigningKey`.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 key ready to sign: its two padded blocks are hashed once, when the key is made,
/// so that each signature costs only the message's blocks and the outer one (a receiver checks
/// every delivery with the same few keys). Its `Debug` shows no key material.
#[derive(Clone)]
pub struct SigningKey(HmacSha256);

impl SigningKey {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        Self(<HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length")))
    }

    /// The HMAC of the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// Stripe's `v1` signature: HMAC-SHA256 keyed with the whole `whsec_…` string
/// (`SigningKey::new(secret.as_bytes())`) over `"{t}.{raw body}"`, `timestamp` the decimal text of
/// `t` (the verifier writes back the number it parsed, as Stripe's own libraries do).
pub fn stripe_v1(key: &SigningKey, timestamp: &str, body: &[u8]) -> [u8; 32] {
    key.sign(&[timestamp.as_bytes(), b".", body])
}

/// The Standard Webhooks `v1` signature: HMAC-SHA256 with the decoded secret over
/// `"{webhook-id}.{webhook-timestamp}.{body}"`, `timestamp` as the sender wrote it.
pub fn standard_v1(key: &SigningKey, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    key.sign(&[id.as_bytes(), b".", timestamp.as_bytes(), b".", body])
}

/// Whether `presented` equals `expected`, in time independent of where they differ.
pub fn signature_matches(expected: &[u8; 32], presented: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    // A length is no secret; the bytes are compared in constant time.
    presented.len() == expected.len() && bool::from(expected.as_slice().ct_eq(presented))
}

/// Standard Webhooks secrets may be published with or without base64 padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Standard Webhooks secret must be `whsec_` followed by base64")]
pub struct InvalidSecret;

/// Decodes a `whsec_<base64>` secret into its key bytes.
pub fn decode_standard_secret(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    LENIENT_BASE64.decode(encoded).ok().filter(|key| !key.is_empty()).ok_or(InvalidSecret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn sha256(value: &[u8]) -> [u8; 32] {
        Sha256::digest(value).into()
    }

    /// HMAC-SHA256 as defined in RFC 2104, written out with SHA-256 alone: an answer computed
    /// independently of the `hmac` crate.
    fn reference_hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&sha256(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        let inner = sha256(&[inner_pad.as_slice(), message].concat());
        sha256(&[outer_pad.as_slice(), &inner].concat())
    }

    #[test]
    fn reference_hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = reference_hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn one_key_signs_each_message_as_a_fresh_hmac_would() {
        // A short key and one longer than SHA-256's block (hashed first, RFC 2104), each used
        // for several messages in turn: no state carries over from one signature to the next.
        for key in [b"k".to_vec(), vec![0xa5; 131]] {
            let signing = SigningKey::new(&key);
            for message in [b"".as_slice(), b"first", &[7u8; 300], b"first"] {
                assert_eq!(signing.sign(&[message]), reference_hmac_sha256(&key, message));
                let (head, tail) = message.split_at(message.len() / 2);
                assert_eq!(signing.sign(&[head, tail]), reference_hmac_sha256(&key, message));
            }
        }
        assert_eq!(format!("{:?}", SigningKey::new(b"whsec_secret")), "SigningKey(..)");
    }

    #[test]
    fn stripe_v1_is_the_published_scheme() {
        let body = br#"{"id":"evt_1","object":"event"}"#;
        let expected = reference_hmac_sha256(b"whsec_test_secret", &[b"1700000000.".as_slice(), body].concat());
        assert_eq!(stripe_v1(&SigningKey::new(b"whsec_test_secret"), "1700000000", body), expected);
    }

    #[test]
    fn standard_v1_is_the_published_vector() {
        let key = decode_standard_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = standard_v1(&SigningKey::new(&key), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body);
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(signature),
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let reference = reference_hmac_sha256(&key, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}");
        assert_eq!(signature, reference);
    }

    #[test]
    fn matching_wants_the_same_bytes_and_length() {
        let expected = stripe_v1(&SigningKey::new(b"k"), "1", b"x");
        assert!(signature_matches(&expected, &expected));
        assert!(!signature_matches(&expected, &expected[..31]));
        let mut other = expected;
        other[31] ^= 1;
        assert!(!signature_matches(&expected, &other));
    }

    #[test]
    fn standard_secrets_decode_with_or_without_padding() {
        assert_eq!(decode_standard_secret("whsec_YWJj").unwrap(), b"abc");
        assert_eq!(decode_standard_secret("whsec_YWI=").unwrap(), b"ab");
        assert_eq!(decode_standard_secret("whsec_YWI").unwrap(), b"ab");
        assert_eq!(decode_standard_secret("whsec_!!"), Err(InvalidSecret));
        assert_eq!(decode_standard_secret("whsec_"), Err(InvalidSecret));
    }
}
