//! CPU cost of applying one event, without a network: the rule, the diff and the items of the
//! transaction (`build_commit` + the `TransactWriteItem`s the DynamoDB adapter sends), then the
//! whole `process` over the in-memory store. `make bench`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test or bench fails loudly on what it did not expect"
)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use processor::process::{Processor, Resolution, build_commit};
use std::hint::black_box;
use tributary_aws::DynamoDbCustomers;
use tributary_domain::customer::CustomerId;
use tributary_domain::customer::rules::Registry;
use tributary_domain::event::{CanonicalEvent, EventId, Subject};
use tributary_testing::memory::{InMemoryCustomers, InMemoryPublisher};

/// A Stripe `invoice.paid` of realistic size (about 2 KB), as the webhook publishes it.
fn invoice_paid(id: u64, at: Timestamp) -> CanonicalEvent {
    let lines: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::json!({"id": format!("il_{i}"), "amount": 1000, "currency": "eur", "description": "Pro plan × 1 (at €10.00 / month)", "period": {"start": 1735689600, "end": 1738368000}}))
        .collect();
    let payload = serde_json::json!({
        "id": format!("evt_{id}"), "object": "event", "type": "invoice.paid", "created": at.as_second(),
        "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_bench", "customer_email": "ada@example.com",
            "customer_name": "Ada Lovelace", "amount_paid": 3000, "amount_due": 3000, "currency": "eur", "status": "paid",
            "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test_YWNjdF8x", "lines": {"object": "list", "data": lines}}}
    });
    CanonicalEvent {
        id: EventId::parse(format!("evt_{id}")).unwrap(),
        source: "stripe".into(),
        event_type: "stripe.invoice.paid".into(),
        subject: Some(Subject::external("stripe", "cus_bench")),
        occurred_at: at,
        received_at: at,
        payload: serde_json::value::to_raw_value(&payload).unwrap(),
    }
}

fn processor() -> Processor<InMemoryCustomers, InMemoryPublisher> {
    Processor {
        registry: Registry::standard(&[]),
        store: InMemoryCustomers::default(),
        updates: InMemoryPublisher::default(),
        commit_attempts: 8,
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let now: Timestamp = "2025-02-01T00:00:00Z".parse().unwrap();
    let registry = Registry::standard(&[]);
    let rule = registry.rule_for("stripe.invoice.paid").unwrap();

    // An existing customer with a history: the usual case.
    let seeded = processor();
    runtime.block_on(seeded.process(&invoice_paid(0, "2025-01-01T00:00:00Z".parse().unwrap()), now)).unwrap();
    let record = seeded.store.records().pop().unwrap();

    let event = invoice_paid(1, "2025-01-15T00:00:00Z".parse().unwrap());
    // A client that is never called: building the items needs no network.
    let offline = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .build();
    let adapter = DynamoDbCustomers::new(aws_sdk_dynamodb::Client::from_conf(offline), "customers");
    c.bench_function("rule + diff + transaction items (existing customer)", |b| {
        b.iter(|| {
            let resolution = Resolution { customer_id: record.id.clone(), new_links: vec![] };
            let commit =
                build_commit(rule, black_box(&event), Some(record.clone()), &Default::default(), resolution, now)
                    .unwrap();
            black_box(adapter.transaction_items(&commit).unwrap())
        })
    });

    c.bench_function("rule + diff + transaction items (new customer)", |b| {
        b.iter(|| {
            let resolution = Resolution {
                customer_id: CustomerId::new(),
                new_links: vec![Subject::external("stripe", "cus_bench"), Subject::email("ada@example.com")],
            };
            let commit = build_commit(rule, black_box(&event), None, &Default::default(), resolution, now).unwrap();
            black_box(adapter.transaction_items(&commit).unwrap())
        })
    });

    c.bench_function("process() over the in-memory store (existing customer)", |b| {
        b.iter_batched(
            || {
                let p = processor();
                runtime.block_on(p.process(&invoice_paid(0, "2025-01-01T00:00:00Z".parse().unwrap()), now)).unwrap();
                p
            },
            |p| runtime.block_on(p.process(black_box(&event), now)).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
