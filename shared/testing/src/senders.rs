//! What the webhook senders put in their headers, for tests, the demo and `make load`: signed
//! with the same scheme functions the receiver checks with (`tributary_domain::signing`).

use base64::Engine;
use tributary_domain::signing::{InvalidSecret, SigningKey, decode_standard_secret, standard_v1, stripe_v1};

/// The `Stripe-Signature` header a sender holding `secret` sends for `body` at `timestamp`.
pub fn stripe_signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    format!("t={timestamp},v1={}", hex::encode(stripe_v1(&SigningKey::new(secret.as_bytes()), &timestamp, body)))
}

/// The `webhook-signature` value a Standard Webhooks sender holding `secret` sends.
pub fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, InvalidSecret> {
    let key = decode_standard_secret(secret)?;
    let signature = standard_v1(&SigningKey::new(&key), id, &timestamp.to_string(), body);
    Ok(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(signature)))
}
