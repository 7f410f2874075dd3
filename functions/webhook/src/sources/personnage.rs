//! personnage: the seed contract's `POST /webhook/personnage` (token-authenticated), validated and
//! enriched with its score band.

use super::{Invalid, event_id, parse_object, required_str};
use jiff::Timestamp;
use tributary_domain::event::{CanonicalEvent, EventId};

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
        event_type: tributary_domain::event::types::PERSONNAGE_SUBMITTED.into(),
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
    use crate::sources::test_clock::at;
    use serde_json::Value;

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
