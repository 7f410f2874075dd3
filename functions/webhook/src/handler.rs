//! The delivery pipeline: route → size → content type → authenticate → validate and normalise →
//! claim the dedup marker → archive → publish → complete the marker → 202.
//!
//! Nothing of the delivery is written before the request is known to be good (its outcome is then
//! counted, whatever it is). Once the marker is claimed, a failed
//! archive or publish releases it and answers 5xx, so the sender's retry is processed again; a
//! concurrent delivery of the same event sees the claim and gets 409.

use crate::config::{MakeAuth, Receiver};
use crate::sources::standard_webhooks::StandardHeaders;
use crate::sources::{self, AuthError, Invalid};
use jiff::Timestamp;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::time::Instant;
use tributary_aws::problem::{Problem, json_response, request_id};
use tributary_domain::archive::{archive_key, metadata};
use tributary_domain::event::CanonicalEvent;
use tributary_domain::metrics::Metrics;
use tributary_domain::ports::SyncStore;
use tributary_domain::ports::{
    ArchivedDelivery, BusMessage, ClaimOutcome, DedupClaim, DedupStore, EventPublisher, RawArchive,
    SNS_MAX_MESSAGE_BYTES,
};
use tributary_domain::secrets::Refreshing;
use tributary_domain::sync::{Tally, TallyKind, count};

/// The receiver (re-built from its secrets once older than their maximum age) and the ports it
/// writes to.
pub struct Deps<D, A, P, T> {
    pub receiver: Refreshing<Receiver>,
    pub dedup: D,
    pub archive: A,
    pub publisher: P,
    /// Where deliveries are counted by source, outcome and hour (the ingestion table).
    pub tallies: T,
}

/// Request headers kept with the archived body: what is needed to re-verify or trace a delivery,
/// most useful first (when S3's metadata budget runs short, the last ones are cut or left out).
/// Tokens (`authorization`, the Make token header) are never archived.
const ARCHIVED_HEADERS: [&str; 7] = [
    "content-type",
    metadata::WEBHOOK_ID,
    metadata::WEBHOOK_TIMESTAMP,
    metadata::IDEMPOTENCY_KEY,
    "stripe-signature",
    "webhook-signature",
    "user-agent",
];

/// S3 refuses an object whose user metadata (names and values, UTF-8 bytes) passes 2 KB. The
/// names are counted with their `x-amz-meta-` prefix, which keeps a margin whatever S3 counts.
pub const MAX_ARCHIVE_METADATA_BYTES: usize = 2048;
/// Longest metadata value kept when there is room; longer values are cut.
const MAX_METADATA_VALUE_CHARS: usize = 512;
/// A header value cut to fewer characters than this says nothing useful: it is left out instead.
const MIN_USEFUL_METADATA_VALUE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Health,
    Stripe,
    Make,
    Personnage,
    Standard(&'a str),
}

/// What one delivery did, for its log line.
#[derive(Debug, Default)]
struct Outcome {
    source: Option<String>,
    event_type: Option<String>,
    event_id: Option<String>,
    outcome: &'static str,
}

#[derive(Serialize)]
struct Accepted<'a> {
    event_id: &'a str,
    duplicate: bool,
    /// The personnage route answers with the enriched submission (`nom`, `score`, `niveau`), as
    /// the seed contract returned it.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    enriched: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Handles one HTTP request, logs one line about it (never the body or a secret) and counts it.
pub async fn handle<D, A, P, T>(deps: &Deps<D, A, P, T>, request: Request, now: Timestamp) -> Response<Body>
where
    D: DedupStore,
    A: RawArchive,
    P: EventPublisher,
    T: SyncStore,
{
    let started = Instant::now();
    let mut outcome = Outcome::default();
    let response = process(deps, &request, now, &mut outcome).await;
    tracing::info!(
        method = %request.method(),
        path = request.uri().path(),
        status = response.status().as_u16(),
        source = outcome.source.as_deref(),
        event_type = outcome.event_type.as_deref(),
        event_id = outcome.event_id.as_deref(),
        outcome = outcome.outcome,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "delivery"
    );
    outcome.metrics(started.elapsed().as_secs_f64() * 1000.0).emit(&request_id(&request));
    // A request to no sender (health, an unknown path) is not a delivery.
    if let Some(source) = &outcome.source {
        count(&deps.tallies, &Tally::one(TallyKind::Deliveries, source, outcome.outcome, now)).await;
    }
    response
}

impl Outcome {
    /// Deliveries received, accepted as new events, duplicates and rejected (401/413/415/422).
    fn metrics(&self, duration_ms: f64) -> Metrics {
        let is = |outcomes: &[&str]| u64::from(outcomes.contains(&self.outcome));
        Metrics::new("webhook")
            .count("deliveries_received", u64::from(self.outcome != "health"))
            .count("events_accepted", is(&["accepted"]))
            .count("duplicates", is(&["duplicate"]))
            .count("ids_reused", is(&["id_reused"]))
            .count(
                "rejected",
                is(&["unauthorized", "invalid", "too_large", "unsupported_media_type", "unknown_source"]),
            )
            .milliseconds("duration", duration_ms)
    }
}

fn route<'a>(path: &'a str) -> Option<Route<'a>> {
    let path = path.trim_end_matches('/');
    match path {
        "/health" => Some(Route::Health),
        "/webhook/personnage" => Some(Route::Personnage),
        "/webhooks/stripe" => Some(Route::Stripe),
        "/webhooks/make" => Some(Route::Make),
        _ => {
            path.strip_prefix("/webhooks/").filter(|name| !name.is_empty() && !name.contains('/')).map(Route::Standard)
        }
    }
}

fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `application/json` or any `+json` media type, parameters allowed.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else { return false };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn not_found() -> Response<Body> {
    Problem::new(404, "Not Found").into_response()
}

enum Rejection {
    Unauthorized(AuthError),
    Invalid(Invalid),
}

impl From<Invalid> for Rejection {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid)
    }
}

async fn process<D, A, P, T>(
    deps: &Deps<D, A, P, T>,
    request: &Request,
    now: Timestamp,
    outcome: &mut Outcome,
) -> Response<Body>
where
    D: DedupStore,
    A: RawArchive,
    P: EventPublisher,
{
    let receiver = &*deps.receiver.current(now).await;
    let Some(route) = route(request.uri().path()) else {
        outcome.outcome = "not_found";
        return not_found();
    };
    let expected_method = if route == Route::Health { "GET" } else { "POST" };
    if request.method().as_str() != expected_method {
        outcome.outcome = "method_not_allowed";
        let mut response = Problem::new(405, "Method Not Allowed").into_response();
        if let Ok(allow) = expected_method.parse() {
            response.headers_mut().insert("allow", allow);
        }
        return response;
    }
    if route == Route::Health {
        outcome.outcome = "health";
        return json_response(200, "application/json", &serde_json::json!({"status": "ok"}));
    }
    // An unconfigured sender goes through the same checks as a configured one and fails at the
    // signature (401): the answers do not tell which names are configured.
    let configured = match route {
        Route::Stripe => receiver.stripe.is_some(),
        Route::Make => receiver.make.is_some(),
        Route::Personnage => receiver.personnage.is_some(),
        Route::Standard(name) => receiver.sources.contains_key(name),
        Route::Health => true,
    };
    // Counted under the sender's name; every unconfigured name as one (they are the caller's words).
    outcome.source = Some(match route {
        Route::Stripe => "stripe".into(),
        Route::Make => "make".into(),
        Route::Personnage => "personnage".into(),
        Route::Standard(name) if configured => name.to_string(),
        Route::Standard(_) | Route::Health => "unknown".into(),
    });

    let body: &[u8] = request.body().as_ref();
    if body.len() > receiver.limits.max_body_bytes {
        outcome.outcome = "too_large";
        return Problem::new(413, "Content Too Large")
            .with_detail(format!("the body must be at most {} bytes", receiver.limits.max_body_bytes))
            .into_response();
    }
    if !is_json(header(request, "content-type")) {
        outcome.outcome = "unsupported_media_type";
        return Problem::new(415, "Unsupported Media Type").with_detail("send application/json").into_response();
    }

    let event = match authenticate_and_normalise(receiver, route, request, body, now) {
        Ok(event) => event,
        Err(Rejection::Unauthorized(reason)) => {
            tracing::warn!(reason = %reason, configured, "delivery not authenticated");
            outcome.outcome = if configured { "unauthorized" } else { "unknown_source" };
            return Problem::new(401, "Unauthorized").into_response();
        }
        Err(Rejection::Invalid(invalid)) => {
            outcome.outcome = "invalid";
            return Problem::new(422, "Unprocessable Content")
                .with_detail(invalid.to_string())
                .with_field(invalid.field)
                .into_response();
        }
    };
    outcome.event_type = Some(event.event_type.clone());
    outcome.event_id = Some(event.id.to_string());

    let message = match BusMessage::from_event(&event) {
        Ok(message) if message.size() <= SNS_MAX_MESSAGE_BYTES => message,
        Ok(_) => {
            outcome.outcome = "too_large";
            return Problem::new(413, "Content Too Large")
                .with_detail("the event with its envelope exceeds the bus's 256 KiB message limit")
                .into_response();
        }
        Err(error) => {
            tracing::error!(error = %error, "serialising the canonical event failed");
            outcome.outcome = "error";
            return Problem::new(500, "Internal Server Error").into_response();
        }
    };

    deliver(deps, request, body, &event, &message, now, outcome).await
}

fn authenticate_and_normalise(
    receiver: &Receiver,
    route: Route<'_>,
    request: &Request,
    body: &[u8],
    now: Timestamp,
) -> Result<CanonicalEvent, Rejection> {
    let headers = StandardHeaders {
        id: header(request, "webhook-id"),
        timestamp: header(request, "webhook-timestamp"),
        signature: header(request, "webhook-signature"),
    };
    // An unconfigured sender is checked against a random key: the same work, the same 401.
    let unconfigured = || -> Rejection {
        let reason = receiver.decoy.verify(headers, body, now).err().unwrap_or(AuthError::NoMatch);
        Rejection::Unauthorized(reason)
    };
    let standard = |name: &str| -> Result<CanonicalEvent, Rejection> {
        let source = receiver.sources.get(name).ok_or_else(unconfigured)?;
        let sent_at = source.verifier.verify(headers, body, now).map_err(Rejection::Unauthorized)?;
        let id = headers.id.ok_or(Rejection::Unauthorized(AuthError::MissingHeader))?;
        Ok(sources::standard_webhooks::standard_event(name, id, sent_at, source.subject_field.as_deref(), body, now)?)
    };

    match route {
        Route::Stripe => {
            let verifier = receiver.stripe.as_ref().ok_or_else(unconfigured)?;
            verifier.verify(header(request, "stripe-signature"), body, now).map_err(Rejection::Unauthorized)?;
            Ok(sources::stripe::stripe_event(body, now)?)
        }
        Route::Make => match &receiver.make {
            Some(MakeAuth::Token { verifier, fields }) => {
                verifier.verify(header(request, verifier.header())).map_err(Rejection::Unauthorized)?;
                Ok(sources::make::make_event(fields, body, now)?)
            }
            Some(MakeAuth::Standard) => standard("make"),
            None => Err(unconfigured()),
        },
        Route::Personnage => {
            let verifier = receiver.personnage.as_ref().ok_or_else(unconfigured)?;
            verifier.verify(header(request, verifier.header())).map_err(Rejection::Unauthorized)?;
            Ok(sources::personnage::personnage_event(body, header(request, "idempotency-key"), now)?)
        }
        Route::Standard(name) => standard(name),
        Route::Health => Err(Rejection::Unauthorized(AuthError::NoMatch)),
    }
}

/// S3 metadata must be printable ASCII: other characters become `?`; at most `max_chars` kept.
fn metadata_value(value: &str, max_chars: usize) -> String {
    value.chars().take(max_chars).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

fn metadata_size(metadata: &[(String, String)]) -> usize {
    metadata.iter().map(|(name, value)| "x-amz-meta-".len() + name.len() + value.len()).sum()
}

/// The archive's object metadata, always within [`MAX_ARCHIVE_METADATA_BYTES`]: the envelope facts
/// first (short and bounded: an event id is at most 200 characters, a type 128 after its source),
/// then the headers in [`ARCHIVED_HEADERS`] order, each cut to the room left; a header with no
/// useful room left is left out, and `truncated-headers` names every header cut or left out.
pub fn archive_metadata(event: &CanonicalEvent, headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut kept = vec![
        (metadata::EVENT_ID.to_string(), event.id.to_string()),
        (metadata::EVENT_TYPE.to_string(), metadata_value(&event.event_type, 256)),
        ("source".to_string(), metadata_value(&event.source, 64)),
        (metadata::RECEIVED_AT.to_string(), event.received_at.to_string()),
    ];
    // Room kept for the `truncated-headers` list itself (every header name, comma-separated).
    let shortfall_room =
        "x-amz-meta-truncated-headers".len() + ARCHIVED_HEADERS.iter().map(|h| h.len() + 1).sum::<usize>();
    let mut shortened = Vec::new();
    for name in ARCHIVED_HEADERS {
        let Some((_, value)) = headers.iter().find(|(header, _)| header.eq_ignore_ascii_case(name)) else { continue };
        let used = metadata_size(&kept) + shortfall_room + "x-amz-meta-".len() + name.len();
        let room = MAX_ARCHIVE_METADATA_BYTES.saturating_sub(used).min(MAX_METADATA_VALUE_CHARS);
        let cut = metadata_value(value, room);
        if cut.len() < value.chars().count() {
            shortened.push(name);
        }
        if cut.len() >= MIN_USEFUL_METADATA_VALUE.min(value.len()) {
            kept.push((name.to_string(), cut));
        }
    }
    if !shortened.is_empty() {
        kept.push(("truncated-headers".to_string(), shortened.join(",")));
    }
    kept
}

fn archived_delivery(request: &Request, body: &[u8], event: &CanonicalEvent) -> ArchivedDelivery {
    let headers: Vec<(&str, &str)> =
        ARCHIVED_HEADERS.iter().filter_map(|name| header(request, name).map(|value| (*name, value))).collect();
    ArchivedDelivery {
        key: archive_key(event),
        body: body.to_vec(),
        content_type: header(request, "content-type")
            .map_or_else(|| "application/json".into(), |value| metadata_value(value, 256)),
        metadata: archive_metadata(event, &headers),
    }
}

async fn deliver<D, A, P, T>(
    deps: &Deps<D, A, P, T>,
    request: &Request,
    body: &[u8],
    event: &CanonicalEvent,
    message: &BusMessage,
    now: Timestamp,
    outcome: &mut Outcome,
) -> Response<Body>
where
    D: DedupStore,
    A: RawArchive,
    P: EventPublisher,
{
    let limits = &deps.receiver.current(now).await.limits;
    let claim = DedupClaim {
        key: DedupClaim::key_for(&event.source, &event.id),
        token: DedupClaim::new_token(),
        event_type: event.event_type.clone(),
        digest: event.content_digest(),
        now,
        in_progress_until: now.saturating_add(limits.in_progress_timeout).unwrap_or(now),
        expires_at: now.saturating_add(limits.dedup_ttl).unwrap_or(now),
    };
    let enriched = (event.event_type == tributary_domain::event::types::PERSONNAGE_SUBMITTED)
        .then(|| serde_json::from_str(event.payload.get()).ok())
        .flatten();
    let accepted = |duplicate: bool| Accepted { event_id: event.id.as_str(), duplicate, enriched: enriched.clone() };

    match deps.dedup.claim(&claim).await {
        Ok(ClaimOutcome::Claimed) => {}
        Ok(ClaimOutcome::AlreadyCompleted) => {
            outcome.outcome = "duplicate";
            return json_response(200, "application/json", &accepted(true));
        }
        Ok(ClaimOutcome::Reused) => {
            tracing::warn!(event_id = %event.id, "event id reused with different content; refused");
            outcome.outcome = "id_reused";
            return Problem::new(409, "Conflict")
                .with_detail("this event id was already used for different content; send new content under a new id")
                .into_response();
        }
        Ok(ClaimOutcome::InProgress) => {
            outcome.outcome = "in_progress";
            let mut response =
                Problem::new(409, "Conflict").with_detail("this event is being processed; retry later").into_response();
            response.headers_mut().insert("retry-after", lambda_http::http::HeaderValue::from_static("5"));
            return response;
        }
        Err(error) => {
            tracing::error!(error = %error, "dedup claim failed");
            outcome.outcome = "error";
            return Problem::new(503, "Service Unavailable").into_response();
        }
    }

    let side_effects = async {
        deps.archive.put(&archived_delivery(request, body, event)).await?;
        deps.publisher.publish(message).await
    };
    match side_effects.await {
        Ok(message_id) => {
            if let Err(error) = deps.dedup.complete(&claim).await {
                // The event is on the bus: answering 5xx would make the sender publish it again.
                // The marker stays in progress until it expires; downstream deduplicates by id.
                tracing::warn!(error = %error, message_id, "event published but its dedup marker was not completed");
            }
            outcome.outcome = "accepted";
            json_response(202, "application/json", &accepted(false))
        }
        Err(error) => {
            tracing::error!(error = %error, "delivery failed after the dedup claim; releasing it for the retry");
            if let Err(release_error) = deps.dedup.release(&claim).await {
                tracing::error!(error = %release_error, "releasing the dedup claim failed; it expires on its own");
            }
            outcome.outcome = "error";
            Problem::new(503, "Service Unavailable").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/health"), Some(Route::Health));
        assert_eq!(route("/webhooks/stripe/"), Some(Route::Stripe));
        assert_eq!(route("/webhooks/make"), Some(Route::Make));
        assert_eq!(route("/webhook/personnage"), Some(Route::Personnage));
        assert_eq!(route("/webhooks/acme"), Some(Route::Standard("acme")));
        assert_eq!(route("/webhooks/"), None);
        assert_eq!(route("/webhooks/a/b"), None);
        assert_eq!(route("/elsewhere"), None);
    }

    #[test]
    fn archive_metadata_stays_within_s3s_limit_whatever_the_headers() {
        let event = sources::personnage::personnage_event(
            br#"{"nom":"N","score":1}"#,
            Some(&"k".repeat(200)),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let short = archive_metadata(&event, &[("content-type", "application/json"), ("user-agent", "curl/8")]);
        assert_eq!(short.iter().find(|(n, _)| n == "user-agent").map(|(_, v)| v.as_str()), Some("curl/8"));
        assert!(short.iter().all(|(n, _)| n != "truncated-headers"));

        let long = "v1,".to_string() + &"A".repeat(5000);
        let headers: Vec<(&str, &str)> = ARCHIVED_HEADERS.iter().map(|name| (*name, long.as_str())).collect();
        let metadata = archive_metadata(&event, &headers);
        assert!(metadata_size(&metadata) <= MAX_ARCHIVE_METADATA_BYTES, "{}", metadata_size(&metadata));
        // The envelope is whole; the first headers are kept (cut), the last ones named as cut.
        assert_eq!(metadata[0], ("event-id".to_string(), "k".repeat(200)));
        assert!(metadata.iter().any(|(n, v)| n == "content-type" && v.len() == MAX_METADATA_VALUE_CHARS));
        let truncated = metadata.iter().find(|(n, _)| n == "truncated-headers").map(|(_, v)| v.clone()).unwrap();
        assert!(truncated.contains("user-agent") && truncated.contains("content-type"), "{truncated}");
        assert!(metadata.iter().all(|(_, v)| v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')));
    }

    #[test]
    fn json_media_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/cloudevents+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
        assert!(!is_json(None));
    }
}
