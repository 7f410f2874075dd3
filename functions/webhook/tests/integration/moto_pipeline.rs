//! The webhook receiver against moto, with every resource provisioned from `template.yaml`.

use crate::common;

use common::{MotoReceiver, body_json, sample};
use jiff::SignedDuration;
use lambda_http::Body;
use std::collections::HashMap;
use tributary_aws as aws;
use tributary_domain::archive::archive_key;
use tributary_domain::event::CanonicalEvent;
use webhook::handler::handle;

#[tokio::test]
async fn accepted_delivery_is_archived_marked_and_published_exactly_once() {
    let local = MotoReceiver::start().await;
    let (request, now) = sample("webhook-stripe-valid.json");
    let response = handle(&local.deps, request, now).await;
    assert_eq!(response.status(), 202, "{:?}", response.body());
    assert_eq!(
        body_json(&response).await,
        serde_json::json!({"event_id": "evt_1QxTributaryDemo0001", "duplicate": false})
    );

    // Exactly one message, with the attributes subscriptions filter on.
    let messages = local.probe.drain().await.unwrap();
    assert_eq!(messages.len(), 1);
    let event = CanonicalEvent::from_message(&messages[0].message).unwrap();
    assert_eq!(event.id.as_str(), "evt_1QxTributaryDemo0001");
    assert_eq!(event.received_at, now);
    let expected_attributes: HashMap<String, String> =
        [("source".to_string(), "stripe".to_string()), ("type".to_string(), "stripe.invoice.paid".to_string())].into();
    assert_eq!(messages[0].attributes, expected_attributes);

    // The raw body, byte for byte, with the selected headers and never a token.
    let key = archive_key(&event);
    assert_eq!(key, "raw/source=stripe/date=2026-11-23/evt_1QxTributaryDemo0001.json");
    assert_eq!(local.archived_keys().await, vec![key.clone()]);
    let object = aws::s3_client(&local.aws.sdk)
        .get_object()
        .bucket(&local.config.archive_bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let metadata = object.metadata().cloned().unwrap_or_default();
    assert!(metadata["stripe-signature"].starts_with("t=1795424400,v1="));
    assert_eq!(metadata["event-type"], "stripe.invoice.paid");
    let (original, _) = sample("webhook-stripe-valid.json");
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(stored.as_ref(), original.body().as_ref());

    // The dedup marker: completed, kept at least four days.
    let items = local.dedup_items().await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["pk"].as_s().unwrap(), "stripe#evt_1QxTributaryDemo0001");
    assert_eq!(item["status"].as_s().unwrap(), "COMPLETED");
    let expires_at: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert!(expires_at >= now.as_second() + 4 * 86_400);

    // Stripe's retry: acknowledged as a duplicate, nothing published.
    let (duplicate, now) = sample("webhook-stripe-duplicate.json");
    let response = handle(&local.deps, duplicate, now).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response).await["duplicate"], true);
    assert!(local.probe.drain().await.unwrap().is_empty());
}

#[tokio::test]
async fn rejected_deliveries_write_and_publish_nothing() {
    let local = MotoReceiver::start().await;
    let mut cases = Vec::new();
    for name in ["webhook-stripe-bad-signature.json", "webhook-stripe-expired.json", "webhook-stripe-malformed.json"] {
        cases.push((name.to_string(), sample(name)));
    }
    let (mut wrong_type, now) = sample("webhook-stripe-valid.json");
    wrong_type.headers_mut().insert("content-type", "text/plain".parse().unwrap());
    cases.push(("content type".into(), (wrong_type, now)));
    let (mut too_large, now) = sample("webhook-stripe-valid.json");
    *too_large.body_mut() = Body::Text("x".repeat(300_000));
    cases.push(("too large".into(), (too_large, now)));
    let (mut no_header, now) = sample("webhook-standard-acme.json");
    no_header.headers_mut().remove("webhook-signature");
    cases.push(("no signature".into(), (no_header, now)));
    let (future, now) = sample("webhook-stripe-valid.json");
    cases.push(("future timestamp".into(), (future, now.checked_sub(SignedDuration::from_secs(301)).unwrap())));
    let (mut unknown, now) = sample("webhook-standard-acme.json");
    *unknown.uri_mut() = "https://x.example/webhooks/unknown".parse().unwrap();
    cases.push(("unknown source".into(), (unknown, now)));

    for (name, (request, now)) in cases {
        let status = handle(&local.deps, request, now).await.status().as_u16();
        assert!((400..500).contains(&status), "{name}: {status}");
    }
    assert!(local.archived_keys().await.is_empty());
    assert!(local.dedup_items().await.is_empty());
    assert!(local.probe.drain().await.unwrap().is_empty());
}

#[tokio::test]
async fn twenty_concurrent_deliveries_of_one_event_publish_once() {
    let local = MotoReceiver::start().await;
    let deps = &local.deps;
    let attempts = (0..20).map(|_| async move {
        let (request, now) = sample("webhook-standard-acme.json");
        handle(deps, request, now).await.status().as_u16()
    });
    let statuses = futures::future::join_all(attempts).await;
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert_eq!(accepted, 1, "statuses: {statuses:?}");
    assert!(statuses.iter().all(|s| [202, 200, 409].contains(s)), "statuses: {statuses:?}");
    assert_eq!(local.probe.drain().await.unwrap().len(), 1);
    assert_eq!(local.archived_keys().await.len(), 1);
}

#[tokio::test]
async fn a_failed_publish_is_retried_successfully_by_the_sender() {
    let local = MotoReceiver::start().await;
    // The same receiver, publishing to a topic that does not exist: SNS refuses the publish.
    let missing_topic = format!("{}-missing", local.config.events_topic_arn);
    let broken = MotoReceiver::deps_for(&local.aws, &local.config, &missing_topic).await;
    let (request, now) = sample("webhook-stripe-valid.json");
    assert_eq!(handle(&broken, request, now).await.status(), 503);
    assert!(local.dedup_items().await.is_empty(), "the claim must be released");
    assert!(local.probe.drain().await.unwrap().is_empty());

    let (retry, now) = sample("webhook-stripe-duplicate.json");
    assert_eq!(handle(&local.deps, retry, now).await.status(), 202);
    assert_eq!(local.probe.drain().await.unwrap().len(), 1);
    assert_eq!(local.dedup_items().await[0]["status"].as_s().unwrap(), "COMPLETED");
}

#[tokio::test]
async fn every_sender_family_reaches_the_topic() {
    let local = MotoReceiver::start().await;
    for name in ["webhook-personnage.json", "webhook-standard-acme.json", "webhook-make.json"] {
        let (request, now) = sample(name);
        assert_eq!(handle(&local.deps, request, now).await.status(), 202, "{name}");
    }
    let mut types: Vec<String> =
        local.probe.drain().await.unwrap().into_iter().map(|m| m.attributes["type"].clone()).collect();
    types.sort();
    assert_eq!(types, vec!["acme.contact.created", "make.lead.created", "personnage.submitted"]);
}

/// Long headers (a verbose user agent, a signature list during a key rotation) once made every
/// delivery of that sender fail with 503: S3 refuses more than 2 KB of metadata (moto-server.py
/// refuses it likewise). The delivery is archived with the headers cut to fit.
#[tokio::test]
async fn long_headers_are_cut_to_fit_the_archive_metadata() {
    let local = MotoReceiver::start().await;
    let (mut request, now) = sample("webhook-stripe-valid.json");
    let signature = request.headers()["stripe-signature"].to_str().unwrap().to_string();
    // Stripe lists every valid v1 during a rotation: ours still verifies among 40 others.
    let rotated = format!("{signature}{}", format!(",v1={}", "ab".repeat(32)).repeat(40));
    request.headers_mut().insert("stripe-signature", rotated.parse().unwrap());
    request.headers_mut().insert("user-agent", "Agent/1.0 ".repeat(300).parse().unwrap());
    let response = handle(&local.deps, request, now).await;
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let key = local.archived_keys().await.pop().unwrap();
    let object = aws::s3_client(&local.aws.sdk)
        .get_object()
        .bucket(&local.config.archive_bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let metadata = object.metadata().cloned().unwrap_or_default();
    let size: usize = metadata.iter().map(|(k, v)| "x-amz-meta-".len() + k.len() + v.len()).sum();
    assert!(size <= webhook::handler::MAX_ARCHIVE_METADATA_BYTES, "{size}");
    assert!(metadata["stripe-signature"].starts_with(&signature[..20]));
    assert!(metadata["truncated-headers"].contains("stripe-signature"), "{metadata:?}");
    assert_eq!(local.probe.drain().await.unwrap().len(), 1);
}

/// The digest travels with the DynamoDB marker: a Make record id sent again with a changed field
/// is refused with 409 and leaves nothing behind; the same content again is a duplicate.
#[tokio::test]
async fn a_reused_make_id_is_refused_against_dynamodb() {
    let local = MotoReceiver::start().await;
    let make = |body: &str| {
        let (mut request, now) = sample("webhook-make.json");
        *request.body_mut() = Body::Text(body.to_string());
        (request, now)
    };
    let (request, now) = make(r#"{"id":"rec_1","email":"ada@example.com","plan":"pro"}"#);
    assert_eq!(handle(&local.deps, request, now).await.status(), 202);
    let (request, now) = make(r#"{"id":"rec_1","email":"ada@example.com","plan":"team"}"#);
    assert_eq!(handle(&local.deps, request, now).await.status(), 409);
    let (request, now) = make(r#"{"plan":"pro","id":"rec_1","email":"ada@example.com"}"#);
    assert_eq!(handle(&local.deps, request, now).await.status(), 200);
    assert_eq!(local.probe.drain().await.unwrap().len(), 1);
    assert_eq!(local.archived_keys().await.len(), 1);
    let items = local.dedup_items().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["digest"].as_s().unwrap().len(), 32);
}
