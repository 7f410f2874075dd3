//! The processor's handler against moto, wired from `template.yaml` as in AWS: redeliveries,
//! every delivery order, concurrent writers, dead letters.

use crate::common;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use common::*;
use futures::StreamExt;
use processor::handler::handle;
use serde_json::json;
use tributary_aws as aws;
use tributary_domain::event::CanonicalEvent;
use tributary_domain::ports::CustomerStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_deliveries_of_one_event_make_one_change_one_audit_entry_one_update() {
    let moto = MotoProcessor::start().await;
    let mut applied = 0;
    let mut duplicates = 0;
    for _wave in 0..5 {
        let results = futures::future::join_all(
            (0..10).map(|_| handle(&moto.deps, sample("processor-stripe-invoice-paid.json"), now())),
        )
        .await;
        for summary in results {
            let summary = summary.unwrap();
            applied += summary.applied;
            duplicates += summary.duplicates;
        }
    }
    assert_eq!((applied, duplicates), (1, 49));
    let items = moto.items().await;
    let audit: Vec<_> = items.iter().filter(|(_, sk)| sk.starts_with("AUDIT#")).collect();
    assert_eq!(audit.len(), 1, "{items:?}");
    assert_eq!(items.iter().filter(|(_, sk)| sk == "RECORD").count(), 1, "{items:?}");
    assert_eq!(moto.updates.drain().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_order_of_six_events_gives_the_same_record() {
    let moto = MotoProcessor::start().await;
    let all = permutations(&[0usize, 1, 2, 3, 4, 5]);
    assert_eq!(all.len(), 720);
    // moto answers about 45 requests a second here: all 720 orders (29 000 requests) take 11 min,
    // so by default every 24th order runs (30 orders, every event first and last at least once);
    // `TRIBUTARY_ALL_ORDERS=1` runs all of them. The in-memory test runs all 720 every time.
    let step = if std::env::var_os("TRIBUTARY_ALL_ORDERS").is_some() { 1 } else { 24 };
    let orders: Vec<Vec<usize>> = all.into_iter().step_by(step).collect();
    let events = six_events("");
    // Each order runs against its own table with the customer table's key schema: the same
    // event ids in every order, and moto's per-transaction snapshot of a table stays small.
    let records: Vec<String> = futures::stream::iter(orders.into_iter().enumerate())
        .map(|(n, order)| {
            let events = &events;
            let moto = &moto;
            async move {
                let table = moto.table_like_customers(&format!("customers-order-{n:03}")).await;
                let processor = moto.processor_on(&table);
                for index in order {
                    let outcome = processor.process(&events[index], now()).await.unwrap();
                    assert!(matches!(outcome, processor::process::Processed::Applied { .. }), "{outcome:?}");
                }
                let subject = tributary_domain::event::Subject::email("ada@example.com");
                let id = processor.store.find(&subject).await.unwrap().expect("customer");
                let record = processor.store.load(&id).await.unwrap().unwrap();
                json!({"version": record.version, "identities": record.identities, "fields": record.fields}).to_string()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(records.iter().all(|r| r == &records[0]), "records differ between delivery orders");
    let record: serde_json::Value = serde_json::from_str(&records[0]).unwrap();
    assert_eq!(record["version"], 6);
    assert_eq!(record["fields"]["billing.totals.eur"]["value"], 2500);
    assert_eq!(record["fields"]["identity.nom"]["value"], "Ada L.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_writers_on_one_customer_lose_no_change() {
    let moto = MotoProcessor::start().await;
    let visit = |n: u32| {
        event(
            &format!("visit-{n}"),
            "matomo.visit",
            None,
            &format!("2025-01-01T10:00:{n:02}Z"),
            json!({"visit_id": n.to_string(), "site_id": 1, "time": format!("2025-01-01T10:00:{n:02}Z"), "user_id": "grace@example.com", "actions": 1}),
        )
    };
    handle(&moto.deps, delivery_of(&visit(0)), now()).await.unwrap();
    let results = futures::future::join_all((1..=8).map(|n| handle(&moto.deps, delivery_of(&visit(n)), now()))).await;
    let succeeded = results.iter().filter(|r| r.as_ref().is_ok_and(|s| s.applied == 1)).count() as u64;
    assert!(succeeded >= 1, "{results:?}");
    let store = &moto.deps.processor.store;
    let id = store.find(&tributary_domain::event::Subject::email("grace@example.com")).await.unwrap().unwrap();
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(record.version, 1 + succeeded);
    assert_eq!(record.value("web.visit_count"), Some(&json!(1 + succeeded)));
    let audit = store.audit(&id, 100, None).await.unwrap();
    assert_eq!(audit.entries.len() as u64, record.version);
    println!("8 concurrent writers: {succeeded} committed within their attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_goes_to_the_dead_letter_queue_with_its_reason_and_writes_nothing() {
    let moto = MotoProcessor::start().await;
    let summary = handle(&moto.deps, sample("processor-malformed.json"), now()).await.unwrap();
    assert_eq!(summary.dead_lettered, 1);
    let sqs = aws::sqs_client(&moto.aws.sdk);
    let received = sqs
        .receive_message()
        .queue_url(&moto.config.dead_letter_queue_url)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body(), Some("{not a canonical event"));
    let reason = messages[0].message_attributes().and_then(|a| a.get("reason")).and_then(|v| v.string_value());
    assert!(reason.is_some_and(|r| r.starts_with("not a canonical event")), "{reason:?}");
    assert!(moto.items().await.is_empty());
    assert!(moto.updates.drain().await.unwrap().is_empty());
}

/// An id already applied, delivered again with other content (a Make record id reused for a
/// changed record, after the webhook's dedup marker expired): dead-lettered with reason
/// `id_reused`, the record untouched. The same content again stays a plain duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_reused_with_other_content_is_dead_lettered_not_dropped() {
    let moto = MotoProcessor::start().await;
    let subject = Some(tributary_domain::event::Subject::email("ada@example.com"));
    let pro = event("rec_1", "make.row", subject.clone(), "2026-11-01T00:00:00Z", json!({"plan": "pro"}));
    let team = event("rec_1", "make.row", subject, "2026-11-01T00:00:00Z", json!({"plan": "team"}));
    assert_eq!(handle(&moto.deps, delivery_of(&pro), now()).await.unwrap().applied, 1);
    assert_eq!(handle(&moto.deps, delivery_of(&pro), now()).await.unwrap().duplicates, 1);
    assert_eq!(handle(&moto.deps, delivery_of(&team), now()).await.unwrap().dead_lettered, 1);
    let received = aws::sqs_client(&moto.aws.sdk)
        .receive_message()
        .queue_url(&moto.config.dead_letter_queue_url)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let reason = messages[0].message_attributes().and_then(|a| a.get("reason")).and_then(|v| v.string_value());
    assert!(reason.is_some_and(|r| r.starts_with("id_reused")), "{reason:?}");
    assert_eq!(CanonicalEvent::from_message(messages[0].body().unwrap()).unwrap(), team);
}

/// Resident and peak memory of a process, in MiB (`VmRSS`, `VmHWM` of `/proc/<pid>/status`).
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Every payment used to add a `billing.payments.<id>` field to the record item, which passed
/// DynamoDB's 400 KB near 1 750 payments; the customer was then stuck for good. Payments are now
/// ledger items beside the record: 200 distinct `invoice.paid` for one customer are all applied,
/// the version moves with each, the total is exact and the record item stays under 4 KB (with a
/// field per payment it would pass 10 KB: about 50 bytes each). Volume on moto is `make load`'s
/// work, not this test's (600 payments here made it the longest test of the suite, 34 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_payments_of_one_customer_keep_its_record_small() {
    const PAYMENTS: usize = 200;
    const LAP: usize = 50;
    /// The record item's size this test holds it under (it has no per-payment field at all).
    const RECORD_LIMIT_BYTES: usize = 4_096;
    let moto = MotoProcessor::start().await;
    // The customer table on moto as deployed; the notifications stay in memory (not under test here).
    let deps = moto.table_only(moto.config.registry());
    let started = std::time::Instant::now();
    let mut lap = std::time::Instant::now();
    let mut expected_total = 0;
    for n in 0..PAYMENTS {
        if n > 0 && n % LAP == 0 {
            let (rss, _) = memory_mib(moto.aws.moto.pid());
            println!(
                "payments {}..{n}: {:.0} events/s, moto RSS {rss} MiB",
                n - LAP,
                LAP as f64 / lap.elapsed().as_secs_f64()
            );
            lap = std::time::Instant::now();
        }
        let amount = 100 + (n as i64 * 37) % 9_000;
        expected_total += amount;
        let invoice = event(
            &format!("evt_pay_{n:05}"),
            "stripe.invoice.paid",
            Some(tributary_domain::event::Subject::external("stripe", "cus_many")),
            "2026-01-01T00:00:00Z",
            json!({"type": "invoice.paid", "data": {"object": {"object": "invoice", "id": format!("in_{n:05}"),
                "customer": "cus_many", "amount_paid": amount, "currency": "eur"}}}),
        );
        let summary = handle(&deps, delivery_of(&invoice), now()).await.unwrap();
        assert_eq!(summary.applied, 1, "payment {n}: {summary:?}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let id = deps.processor.store.find(&tributary_domain::event::Subject::external("stripe", "cus_many")).await;
    let record = deps.processor.store.load(&id.unwrap().unwrap()).await.unwrap().unwrap();
    assert_eq!(record.version, PAYMENTS as u64);
    assert_eq!(record.value("billing.totals.eur"), Some(&json!(expected_total)));
    let record_bytes = serde_json::to_vec(&record).unwrap().len();
    assert!(record_bytes < RECORD_LIMIT_BYTES, "the record is {record_bytes} bytes");
    let (rss, peak) = memory_mib(moto.aws.moto.pid());
    println!(
        "{PAYMENTS} payments of one customer: {:.0} events/s on moto ({seconds:.1} s), record {record_bytes} B, \
         moto RSS {rss} MiB (peak {peak} MiB)",
        PAYMENTS as f64 / seconds
    );
}

/// A record that would pass the table's item limit is dead-lettered as `record_too_large`, once,
/// and counted; the customer's smaller events go on. Five attribute sources each filling their 100
/// keys with 1 000-character values pass the limit; and an item over 400 KB that reaches the table
/// anyway is refused by it as too large, not taken for a passing failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_too_large_to_store_is_dead_lettered_not_retried() {
    use tributary_domain::customer::rules::Registry;
    let moto = MotoProcessor::start().await;
    let sources: Vec<String> = (1..=5).map(|n| format!("src{n}")).collect();
    let deps = moto.table_only(Registry::standard(&sources));
    let subject = Some(tributary_domain::event::Subject::email("big@example.com"));
    let (mut applied, mut too_large) = (0, 0);
    for source in &sources {
        let attributes: serde_json::Map<String, serde_json::Value> =
            (0..100).map(|k| (format!("key_{k}"), json!("v".repeat(1_000)))).collect();
        let row = event(
            &format!("row_{source}"),
            &format!("{source}.row"),
            subject.clone(),
            "2026-01-01T00:00:00Z",
            json!(attributes),
        );
        let summary = handle(&deps, delivery_of(&row), now()).await.unwrap();
        applied += summary.applied;
        too_large += summary.records_too_large;
    }
    assert_eq!((applied, too_large), (3, 2), "three sources fit, the fourth and fifth would pass the limit");
    let letters = deps.dead_letters.letters();
    assert!(letters.iter().all(|(_, reason)| reason.starts_with("record_too_large")), "{letters:?}");
    // A small event of the same customer is still applied.
    let small = event("row_small", "src1.row", subject, "2026-01-02T00:00:00Z", json!({"plan": "pro"}));
    assert_eq!(handle(&deps, delivery_of(&small), now()).await.unwrap().applied, 1);

    // The adapter: an item the table refuses for its size is `TooLarge`.
    let id =
        deps.processor.store.find(&tributary_domain::event::Subject::email("big@example.com")).await.unwrap().unwrap();
    let mut record = deps.processor.store.load(&id).await.unwrap().unwrap();
    let stamp = record.fields.values().next().unwrap().stamp.clone();
    record.fields.insert(
        "attributes.src9.huge".into(),
        tributary_domain::customer::FieldState { value: json!("x".repeat(420_000)), stamp },
    );
    let mut commit = processor::process::build_commit(
        tributary_domain::customer::rules::Registry::standard(&[]).rule_for("stripe.invoice.paid").unwrap(),
        &event("evt_x", "stripe.customer.updated", None, "2026-01-03T00:00:00Z", json!({"data": {"object": {}}})),
        Some(deps.processor.store.load(&id).await.unwrap().unwrap()),
        &Default::default(),
        processor::process::Resolution { customer_id: id.clone(), new_links: vec![] },
        now(),
    )
    .unwrap();
    record.version = commit.record.version;
    commit.record = record;
    assert_eq!(
        deps.processor.store.commit(&commit).await.unwrap(),
        tributary_domain::customer::store::CommitOutcome::TooLarge
    );
}

#[tokio::test]
async fn subjects_looked_up_together_answer_in_their_order() {
    use tributary_domain::event::Subject;
    let moto = MotoProcessor::start().await;
    let events = six_events("");
    // The lead links ada@example.com and its Notion id; the Stripe customer links its own id.
    for index in [0, 2] {
        moto.deps.processor.process(&events[index], now()).await.unwrap();
    }
    let store = &moto.deps.processor.store;
    let ada = store.find(&Subject::email("ada@example.com")).await.unwrap().expect("ada");
    let stripe = Subject::external("stripe", "cus");
    assert_eq!(store.find(&stripe).await.unwrap().as_ref(), Some(&ada), "the Stripe event linked its id");
    let unknown = Subject::email("nobody@example.com");
    // 151 subjects, 150 keys: two BatchGetItem requests of at most 100 keys, a known subject in
    // each (the keys are sorted: the Stripe id comes after every address), one named twice,
    // unknown ones.
    let mut subjects: Vec<Subject> = (0..147).map(|n| Subject::email(&format!("unknown-{n}@example.com"))).collect();
    subjects.insert(3, Subject::email("ada@example.com"));
    subjects.insert(60, stripe.clone());
    subjects.insert(120, Subject::email("ada@example.com"));
    subjects.push(unknown.clone());
    let found = store.find_each(&subjects).await.unwrap();
    assert_eq!(found.len(), subjects.len());
    for (index, (subject, found)) in subjects.iter().zip(&found).enumerate() {
        let known = subject.as_str() == "email:ada@example.com" || subject == &stripe;
        assert_eq!(found, &known.then(|| ada.clone()), "subject {index}: {}", subject.as_str());
    }
    assert_eq!(store.find_each(std::slice::from_ref(&unknown)).await.unwrap(), [None]);
    assert_eq!(store.find_each(&[]).await.unwrap(), Vec::<Option<_>>::new());
}
