//! The in-process cost of one Stripe delivery: verify the signature, parse, validate, normalise and
//! serialise the canonical event (`make bench`). The body is the 2 KB `invoice.paid` sample.
//!
//! A second group runs the whole handler with in-memory adapters, i.e. everything but the network.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test or bench fails loudly on what it did not expect"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use std::hint::black_box;
use tributary_domain::ports::BusMessage;
use tributary_testing::memory::{
    InMemoryArchive, InMemoryDedup, InMemoryPublisher, InMemorySecrets, InMemorySyncStore,
};
use tributary_testing::{demo_secrets, workspace_root};
use webhook::config::{Receiver, WebhookConfig};
use webhook::handler::{Deps, handle};
use webhook::sources::Tolerance;
use webhook::sources::stripe::{StripeVerifier, stripe_event};

struct Sample {
    text: String,
    body: Vec<u8>,
    signature: String,
    now: Timestamp,
}

fn sample() -> Sample {
    let text =
        std::fs::read_to_string(workspace_root().join("events/webhook-stripe-valid.json")).expect("sample event");
    let value: serde_json::Value = serde_json::from_str(&text).expect("sample JSON");
    Sample {
        body: value["body"].as_str().expect("body").as_bytes().to_vec(),
        signature: value["headers"]["stripe-signature"].as_str().expect("signature").to_string(),
        now: Timestamp::from_millisecond(value["requestContext"]["timeEpoch"].as_i64().expect("time")).expect("time"),
        text,
    }
}

fn secret() -> String {
    demo_secrets()
        .expect("demo secrets")
        .into_iter()
        .find_map(|(name, value)| (name == "/tributary/stripe-signing-secret").then_some(value))
        .expect("stripe demo secret")
}

fn verify_parse_validate_normalise(c: &mut Criterion) {
    let sample = sample();
    let verifier = StripeVerifier::new(vec![secret()], Tolerance { seconds: 300 });
    let mut group = c.benchmark_group("stripe_2kb");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify+parse+validate+normalise+serialise", |b| {
        b.iter(|| {
            verifier.verify(Some(&sample.signature), black_box(&sample.body), sample.now).expect("valid signature");
            let event = stripe_event(black_box(&sample.body), sample.now).expect("valid event");
            black_box(BusMessage::from_event(&event).expect("serialisable"))
        })
    });
    // The same path step by step, to see where the time goes.
    group.bench_function("step_verify", |b| {
        b.iter(|| {
            verifier.verify(Some(&sample.signature), black_box(&sample.body), sample.now).expect("valid signature")
        })
    });
    // The floor under step_verify: one SHA-256 over the bytes the HMAC covers ("{t}.{body}"), with
    // the same crate. HMAC adds the outer block (the key's two are hashed once, when the verifier
    // is made); a signature check cannot go below this.
    let t = sample.signature.split(',').find_map(|item| item.strip_prefix("t=")).expect("t in the signature");
    let signed_payload = [t.as_bytes(), b".", &sample.body].concat();
    group.bench_function("floor_sha256_of_signed_payload", |b| {
        b.iter(|| black_box(<sha2::Sha256 as sha2::Digest>::digest(black_box(&signed_payload))))
    });
    // What one validating scan of the body by serde_json costs, building nothing.
    // step_parse+validate+normalise makes two: keeping the body byte for byte as a `RawValue`
    // validates it, and the envelope's typed read scans it again (serde_json offers no way to get
    // both from one scan).
    group.bench_function("floor_json_scan_of_body", |b| {
        b.iter(|| black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&sample.body)).expect("JSON")))
    });
    group.bench_function("step_parse+validate+normalise", |b| {
        b.iter(|| black_box(stripe_event(black_box(&sample.body), sample.now).expect("valid event")))
    });
    let event = stripe_event(&sample.body, sample.now).expect("valid event");
    group.bench_function("step_serialise", |b| {
        b.iter(|| black_box(BusMessage::from_event(black_box(&event)).expect("serialisable")))
    });
    group.finish();
}

fn whole_handler_in_memory(c: &mut Criterion) {
    let sample = sample();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let env: std::collections::HashMap<String, String> = [
        ("DEDUP_TABLE", "t"),
        ("INGESTION_TABLE", "i"),
        ("ARCHIVE_BUCKET", "b"),
        ("EVENTS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:events"),
        ("STRIPE_SECRET_PARAM", "/s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = WebhookConfig::from_env(&env).expect("config");
    let secrets = InMemorySecrets { values: [("/s".to_string(), secret())].into() };
    let receiver = runtime.block_on(Receiver::load(&config, &secrets)).expect("receiver");
    let mut group = c.benchmark_group("stripe_2kb");
    group.throughput(Throughput::Elements(1));
    group.bench_function("handler_with_in_memory_adapters", |b| {
        b.iter_batched(
            || {
                // A fresh store each time, so every iteration is a first delivery, not a duplicate.
                let deps = Deps {
                    receiver: tributary_domain::secrets::Refreshing::fixed(receiver.clone()),
                    dedup: InMemoryDedup::default(),
                    archive: InMemoryArchive::default(),
                    publisher: InMemoryPublisher::default(),
                    tallies: InMemorySyncStore::default(),
                };
                (deps, lambda_http::request::from_str(&sample.text).expect("request"))
            },
            |(deps, request)| {
                let response = runtime.block_on(handle(&deps, request, sample.now));
                assert_eq!(response.status(), 202);
                response
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, verify_parse_validate_normalise, whole_handler_in_memory);
criterion_main!(benches);
