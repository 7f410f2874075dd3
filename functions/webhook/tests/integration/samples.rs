//! Every sample of `events/` through the handler with in-memory adapters: the answers the README
//! documents, and what each one leaves behind.

use crate::common;

use common::{base_env, body_json, memory_deps, memory_deps_with, sample};
use jiff::{SignedDuration, Timestamp};
use lambda_http::Body;
use tributary_domain::event::CanonicalEvent;
use tributary_testing::memory::MarkerStatus;
use webhook::handler::handle;

#[tokio::test]
async fn each_sample_gets_its_documented_answer() {
    let expected = [
        ("webhook-health.json", 200),
        ("webhook-stripe-valid.json", 202),
        ("webhook-stripe-bad-signature.json", 401),
        ("webhook-stripe-expired.json", 401),
        ("webhook-stripe-malformed.json", 422),
        ("webhook-personnage.json", 202),
        ("webhook-standard-acme.json", 202),
        ("webhook-make.json", 202),
    ];
    let document = tributary_testing::openapi::document().unwrap();
    for (name, status) in expected {
        let deps = memory_deps().await;
        let (request, now) = sample(name);
        // The route the document names it by.
        let (method, path) = (request.method().to_string(), request.uri().path().to_string());
        let route = match path.as_str() {
            "/health" | "/webhooks/stripe" | "/webhook/personnage" => path.clone(),
            _ => "/webhooks/{source}".to_string(),
        };
        let response = handle(&deps, request, now).await;
        assert_eq!(response.status().as_u16(), status, "{name}: {:?}", response.body());
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        tributary_testing::openapi::check_answer(
            &document,
            &method,
            &route,
            status,
            &content_type,
            response.body().as_ref(),
        )
        .unwrap_or_else(|problem| panic!("{name}: {problem}"));
        let published = deps.publisher.messages().len();
        assert_eq!(published, usize::from(status == 202), "{name} published {published}");
        assert_eq!(deps.archive.objects().len(), usize::from(status == 202), "{name} archive");
    }
}

#[tokio::test]
async fn duplicate_sample_is_acknowledged_and_not_published_again() {
    let deps = memory_deps().await;
    let (valid, now) = sample("webhook-stripe-valid.json");
    assert_eq!(handle(&deps, valid, now).await.status(), 202);
    let (duplicate, now) = sample("webhook-stripe-duplicate.json");
    let response = handle(&deps, duplicate, now).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        body_json(&response).await,
        serde_json::json!({"event_id": "evt_1QxTributaryDemo0001", "duplicate": true})
    );
    assert_eq!(deps.publisher.messages().len(), 1);
}

#[tokio::test]
async fn normalised_events_carry_source_type_subject_and_enrichment() {
    let deps = memory_deps().await;
    for name in
        ["webhook-stripe-valid.json", "webhook-personnage.json", "webhook-standard-acme.json", "webhook-make.json"]
    {
        let (request, now) = sample(name);
        assert_eq!(handle(&deps, request, now).await.status(), 202, "{name}");
    }
    let messages = deps.publisher.messages();
    let events: Vec<CanonicalEvent> = messages.iter().map(|m| CanonicalEvent::from_message(&m.body).unwrap()).collect();
    let summary: Vec<(&str, &str, Option<&str>)> = events
        .iter()
        .map(|e| (e.source.as_str(), e.event_type.as_str(), e.subject.as_ref().map(|s| s.as_str())))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("stripe", "stripe.invoice.paid", Some("stripe:cus_TributaryDemo01")),
            ("personnage", "personnage.submitted", None),
            ("acme", "acme.contact.created", Some("email:grace.hopper@example.com")),
            ("make", "make.lead.created", Some("email:linus@example.com")),
        ]
    );
    for (message, event) in messages.iter().zip(&events) {
        assert_eq!(
            (message.source.as_str(), message.event_type.as_str()),
            (event.source.as_str(), event.event_type.as_str())
        );
    }
    assert_eq!(events[1].payload_as::<serde_json::Value>().unwrap()["niveau"], "expert");
    // The sender's bytes travel unchanged: Stripe's pretty-printed body is the payload verbatim.
    let (stripe, _) = sample("webhook-stripe-valid.json");
    assert_eq!(events[0].payload.get().as_bytes(), stripe.body().as_ref());
    assert_eq!(events[1].id.as_str(), "personnage-naruto-0001");
}

fn with_body(name: &str, body: &str) -> (lambda_http::Request, Timestamp) {
    let (mut request, now) = sample(name);
    *request.body_mut() = Body::Text(body.to_string());
    (request, now)
}

#[tokio::test]
async fn pipeline_checks_run_in_order_and_write_nothing_on_rejection() {
    let deps = memory_deps().await;

    // Size before anything else: a huge unsigned body is 413, not 401.
    let (request, now) = with_body("webhook-stripe-valid.json", &"x".repeat(262_145));
    assert_eq!(handle(&deps, request, now).await.status(), 413);

    // Content type before the signature.
    let (mut request, now) = sample("webhook-stripe-valid.json");
    request.headers_mut().insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(handle(&deps, request, now).await.status(), 415);
    let (mut request, now) = sample("webhook-stripe-valid.json");
    request.headers_mut().remove("content-type");
    assert_eq!(handle(&deps, request, now).await.status(), 415);

    // Tampered body: the signature no longer matches. The answer says nothing of why.
    let (request, now) = sample("webhook-stripe-valid.json");
    let tampered = match request.body() {
        Body::Text(text) => text.replace("4900", "9900"),
        _ => unreachable!(),
    };
    let (mut request, _) = sample("webhook-stripe-valid.json");
    *request.body_mut() = Body::Text(tampered);
    let response = handle(&deps, request, now).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        body_json(&response).await,
        serde_json::json!({"type": "about:blank", "title": "Unauthorized", "status": 401})
    );

    // Missing signature header.
    let (mut request, now) = sample("webhook-stripe-valid.json");
    request.headers_mut().remove("stripe-signature");
    assert_eq!(handle(&deps, request, now).await.status(), 401);

    // The same delivery 301 s late.
    let (request, now) = sample("webhook-stripe-valid.json");
    let late = now.checked_add(SignedDuration::from_secs(301)).unwrap();
    assert_eq!(handle(&deps, request, late).await.status(), 401);

    // Make and personnage without or with a wrong token.
    let (mut request, now) = sample("webhook-make.json");
    request.headers_mut().insert("x-make-token", "wrong".parse().unwrap());
    assert_eq!(handle(&deps, request, now).await.status(), 401);
    let (mut request, now) = sample("webhook-personnage.json");
    request.headers_mut().remove("authorization");
    assert_eq!(handle(&deps, request, now).await.status(), 401);

    // A signature timestamp at the edge of i64 is out of tolerance (it overflowed before).
    let (mut request, now) = sample("webhook-stripe-valid.json");
    let extreme = "t=-9223372036854775808,v1=".to_string() + &"0".repeat(64);
    request.headers_mut().insert("stripe-signature", extreme.parse().unwrap());
    assert_eq!(handle(&deps, request, now).await.status(), 401);

    // An unconfigured sender answers exactly as a configured one with a wrong signature: nothing
    // tells which names are configured.
    let (mut request, now) = sample("webhook-standard-acme.json");
    request.headers_mut().insert("webhook-signature", "v1,AAAA".parse().unwrap());
    let configured = handle(&deps, request, now).await;
    let (mut request, now) = sample("webhook-standard-acme.json");
    *request.uri_mut() = "https://abc123.execute-api.eu-west-3.amazonaws.com/webhooks/nobody".parse().unwrap();
    let unconfigured = handle(&deps, request, now).await;
    assert_eq!((configured.status().as_u16(), unconfigured.status().as_u16()), (401, 401));
    assert_eq!(configured.headers(), unconfigured.headers());
    assert_eq!(body_json(&configured).await, body_json(&unconfigured).await);
    // Unknown route, wrong method.
    let (mut request, now) = sample("webhook-standard-acme.json");
    *request.uri_mut() = "https://abc123.execute-api.eu-west-3.amazonaws.com/elsewhere".parse().unwrap();
    assert_eq!(handle(&deps, request, now).await.status(), 404);
    let (mut request, now) = sample("webhook-health.json");
    *request.method_mut() = lambda_http::http::Method::POST;
    assert_eq!(handle(&deps, request, now).await.status(), 405);

    assert!(deps.publisher.messages().is_empty());
    assert!(deps.archive.objects().is_empty());
}

#[tokio::test]
async fn validation_problem_names_the_field() {
    let deps = memory_deps().await;
    let (mut request, now) = sample("webhook-personnage.json");
    *request.body_mut() = Body::Text(r#"{"nom": "Naruto", "score": 101}"#.into());
    let response = handle(&deps, request, now).await;
    assert_eq!(response.status(), 422);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body = body_json(&response).await;
    assert_eq!(body["field"], "score");
    assert_eq!(body["status"], 422);

    let (request, now) = sample("webhook-stripe-malformed.json");
    let body = body_json(&handle(&deps, request, now).await).await;
    assert_eq!(body["field"], "body");
    assert!(deps.publisher.messages().is_empty());
}

#[tokio::test]
async fn failed_publish_releases_the_claim_so_the_retry_is_processed() {
    let deps = memory_deps().await;
    deps.publisher.set_failing(true);
    let (request, now) = sample("webhook-stripe-valid.json");
    assert_eq!(handle(&deps, request, now).await.status(), 503);
    assert_eq!(deps.dedup.marker("stripe#evt_1QxTributaryDemo0001"), None);

    deps.publisher.set_failing(false);
    let (request, now) = sample("webhook-stripe-duplicate.json");
    assert_eq!(handle(&deps, request, now).await.status(), 202);
    assert_eq!(deps.publisher.messages().len(), 1);
    let marker = deps.dedup.marker("stripe#evt_1QxTributaryDemo0001").unwrap();
    assert_eq!(marker.status, MarkerStatus::Completed);
    assert!(marker.expires_at >= now.checked_add(SignedDuration::from_hours(96)).unwrap());
}

#[tokio::test]
async fn failed_archive_publishes_nothing_and_releases_the_claim() {
    let deps = memory_deps().await;
    deps.archive.set_failing(true);
    let (request, now) = sample("webhook-stripe-valid.json");
    assert_eq!(handle(&deps, request, now).await.status(), 503);
    assert!(deps.publisher.messages().is_empty());
    assert_eq!(deps.dedup.marker("stripe#evt_1QxTributaryDemo0001"), None);
}

#[tokio::test]
async fn an_abandoned_claim_is_taken_over_after_its_timeout() {
    use tributary_domain::ports::{DedupClaim, DedupStore};
    let deps = memory_deps().await;
    let (_, now) = sample("webhook-stripe-valid.json");
    // A previous attempt claimed the event and died (Lambda timeout) without releasing it.
    let abandoned = DedupClaim {
        key: "stripe#evt_1QxTributaryDemo0001".into(),
        token: "dead-attempt".into(),
        event_type: "stripe.invoice.paid".into(),
        digest: "digest-of-the-same-content".into(),
        now,
        in_progress_until: now.checked_add(SignedDuration::from_secs(30)).unwrap(),
        expires_at: now.checked_add(SignedDuration::from_hours(168)).unwrap(),
    };
    // The digest the receiver computes for this very delivery: the same content.
    let (request, _) = sample("webhook-stripe-valid.json");
    let event = webhook::sources::stripe::stripe_event(request.body().as_ref(), now).unwrap();
    let abandoned = DedupClaim { digest: event.content_digest(), ..abandoned };
    deps.dedup.claim(&abandoned).await.unwrap();
    let (retry, _) = sample("webhook-stripe-valid.json");
    let response = handle(&deps, retry, now).await;
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["retry-after"], "5");

    let later = now.checked_add(SignedDuration::from_secs(31)).unwrap();
    let (retry, _) = sample("webhook-stripe-valid.json");
    // The signature is 31 s old: still within the tolerance.
    assert_eq!(handle(&deps, retry, later).await.status(), 202);
    assert_eq!(deps.publisher.messages().len(), 1);
}

#[tokio::test]
async fn make_uses_standard_webhooks_when_configured_as_a_source() {
    // The token stays configured: being a Standard Webhooks source takes precedence over it.
    let mut env = base_env();
    env.insert(
        "WEBHOOK_SOURCES".into(),
        r#"[{"name":"make","secret_param":"/tributary/webhook-sources/acme"}]"#.into(),
    );
    let deps = memory_deps_with(env).await;
    // The token alone is no longer enough: Make must sign.
    let (request, now) = sample("webhook-make.json");
    assert_eq!(handle(&deps, request, now).await.status(), 401);
    // The acme sample, signed with the same secret, re-routed to /webhooks/make: the signature
    // covers the id, timestamp and body, not the path, so it verifies.
    let (mut request, now) = sample("webhook-standard-acme.json");
    *request.uri_mut() = "https://abc123.execute-api.eu-west-3.amazonaws.com/webhooks/make".parse().unwrap();
    let response = handle(&deps, request, now).await;
    assert_eq!(response.status(), 202);
    let event = CanonicalEvent::from_message(&deps.publisher.messages()[0].body).unwrap();
    assert_eq!(event.event_type, "make.contact.created");
}

/// A client-chosen id (Make's record id, personnage's `Idempotency-Key`) sent again with other
/// content is a conflict: 409, nothing archived or published, the first content kept. The same
/// id with the same content (in another JSON layout) stays a duplicate.
#[tokio::test]
async fn an_id_reused_with_other_content_is_a_conflict_not_a_duplicate() {
    let deps = memory_deps().await;
    let make = |body: &str| with_body("webhook-make.json", body);
    let (request, now) = make(r#"{"id":"rec_1","email":"ada@example.com","plan":"pro"}"#);
    assert_eq!(handle(&deps, request, now).await.status(), 202);
    let (request, now) = make(r#"{ "plan": "pro", "email": "ada@example.com", "id": "rec_1" }"#);
    let response = handle(&deps, request, now).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response).await["duplicate"], true);
    let (request, now) = make(r#"{"id":"rec_1","email":"ada@example.com","plan":"team"}"#);
    let response = handle(&deps, request, now).await;
    assert_eq!(response.status(), 409);
    let problem = body_json(&response).await;
    assert!(problem["detail"].as_str().unwrap().contains("already used for different content"), "{problem}");
    assert_eq!(deps.publisher.messages().len(), 1);
    assert_eq!(deps.archive.objects().len(), 1);
    let kept = CanonicalEvent::from_message(&deps.publisher.messages()[0].body).unwrap();
    assert_eq!(kept.payload_as::<serde_json::Value>().unwrap()["plan"], "pro");

    // personnage: one Idempotency-Key, two bodies.
    let (request, now) = sample("webhook-personnage.json");
    assert_eq!(handle(&deps, request, now).await.status(), 202);
    let (request, now) = with_body("webhook-personnage.json", r#"{"nom": "Sasuke", "score": 85}"#);
    assert_eq!(handle(&deps, request, now).await.status(), 409);
    let (request, now) = sample("webhook-personnage.json");
    assert_eq!(handle(&deps, request, now).await.status(), 200);
    assert_eq!(deps.publisher.messages().len(), 2);
}

/// A rotated secret: a warm instance keeps accepting the old one for at most the maximum age
/// (5 minutes by default), then only the new one. The clock is the handler's `now`.
#[tokio::test]
async fn a_revoked_secret_stops_working_on_a_warm_instance_within_the_maximum_age() {
    use std::sync::{Arc, Mutex};
    use tributary_domain::secrets::Refreshing;
    use tributary_testing::memory::InMemorySecrets;
    use webhook::config::{Receiver, WebhookConfig};
    let config = WebhookConfig::from_env(&base_env()).unwrap();
    assert_eq!(config.secrets_max_age, SignedDuration::from_mins(5));
    let stored: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(common::local_secrets()));
    let read = |stored: &Arc<Mutex<Vec<(String, String)>>>| InMemorySecrets {
        values: stored.lock().unwrap().iter().cloned().collect(),
    };
    let (_, t0) = sample("webhook-make.json");
    let receiver = Receiver::load(&config, &read(&stored)).await.unwrap();
    let (reload_store, reload_config) = (stored.clone(), config.clone());
    let mut deps = memory_deps().await;
    deps.receiver = Refreshing::new(receiver, t0, config.secrets_max_age, move || {
        let (secrets, config) = (read(&reload_store), reload_config.clone());
        async move { Receiver::load(&config, &secrets).await.map_err(|e| e.to_string()) }
    });
    // The Make token is revoked (a new one replaces it) just after the cold start.
    for (name, value) in stored.lock().unwrap().iter_mut() {
        if name == "/tributary/make-token" {
            *value = "rotated-make-token".into();
        }
    }
    let make = |token: &str, id: &str| {
        let (mut request, _) = with_body("webhook-make.json", &format!(r#"{{"id":"{id}","email":"a@b.io"}}"#));
        request.headers_mut().insert("x-make-token", token.parse().unwrap());
        request
    };
    let later = |seconds: i64| t0.checked_add(SignedDuration::from_secs(seconds)).unwrap();
    assert_eq!(handle(&deps, make("local-demo-make-token", "r1"), later(60)).await.status(), 202);
    assert_eq!(handle(&deps, make("local-demo-make-token", "r2"), later(299)).await.status(), 202);
    assert_eq!(handle(&deps, make("local-demo-make-token", "r3"), later(300)).await.status(), 401);
    assert_eq!(handle(&deps, make("rotated-make-token", "r4"), later(301)).await.status(), 202);
}

#[tokio::test]
async fn deliveries_are_counted_by_source_outcome_and_hour() {
    use tributary_domain::sync::{TallyKind, hour_of};
    let deps = memory_deps().await;
    let names = [
        "webhook-health.json",
        "webhook-stripe-valid.json",
        "webhook-stripe-duplicate.json",
        "webhook-stripe-bad-signature.json",
        "webhook-stripe-malformed.json",
        "webhook-standard-acme.json",
    ];
    let mut at = None;
    for name in names {
        let (request, now) = sample(name);
        handle(&deps, request, now).await;
        at = Some(now);
    }
    let (mut unknown, now) = sample("webhook-standard-acme.json");
    *unknown.uri_mut() = "https://x.example/webhooks/never-configured".parse().unwrap();
    assert_eq!(handle(&deps, unknown, now).await.status(), 401);

    let mut counted: Vec<(String, String, u64)> = deps
        .tallies
        .all_tallies()
        .into_iter()
        .inspect(|t| assert_eq!((t.kind, t.hour), (TallyKind::Deliveries, hour_of(at.unwrap()))))
        .map(|t| (t.name, t.outcome, t.count))
        .collect();
    counted.sort();
    let expected = [
        ("acme", "accepted", 1),
        ("stripe", "accepted", 1),
        ("stripe", "duplicate", 1),
        ("stripe", "invalid", 1),
        ("stripe", "unauthorized", 1),
        // A name no sender has is counted as one, whatever the caller wrote.
        ("unknown", "unknown_source", 1),
    ]
    .map(|(name, outcome, count)| (name.to_string(), outcome.to_string(), count));
    assert_eq!(counted, expected, "the health check is not a delivery");
}

#[tokio::test]
async fn the_personnage_route_answers_with_the_enriched_submission() {
    let deps = memory_deps().await;
    let (request, now) = sample("webhook-personnage.json");
    let first = handle(&deps, request, now).await;
    assert_eq!(first.status(), 202);
    let answer = body_json(&first).await;
    assert_eq!(
        answer,
        serde_json::json!({"event_id": "personnage-naruto-0001", "duplicate": false, "nom": "Naruto", "score": 85,
                           "niveau": answer["niveau"].clone()})
    );
    assert_eq!(answer["niveau"], webhook::sources::personnage::niveau(85));
    let (again, now) = sample("webhook-personnage.json");
    let duplicate = body_json(&handle(&deps, again, now).await).await;
    assert_eq!((duplicate["duplicate"].as_bool(), duplicate["niveau"].clone()), (Some(true), answer["niveau"].clone()));
    // Other senders' answers carry only the id.
    let (stripe, now) = sample("webhook-stripe-valid.json");
    let keys: Vec<String> =
        body_json(&handle(&deps, stripe, now).await).await.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["duplicate", "event_id"]);
}
