//! Rebuilds against moto provisioned from `template.yaml`: customers applied by the processor and
//! written to the lake by the lake writer, then the rules changed (`make` no longer an attribute
//! source) and the records rebuilt from the lake, compared with what an all-new processor makes of
//! the same events.

use aws_lambda_events::event::sns::SnsEvent;
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::HashMap;
use tributary_aws::DynamoDbSyncStore;
use tributary_domain::customer::rebuild::RebuildRequest;
use tributary_domain::customer::store::AuditKind;
use tributary_domain::customer::{CustomerId, CustomerRecord};
use tributary_domain::event::{CanonicalEvent, Subject};
use tributary_domain::ports::{CustomerStore, SyncStore};
use tributary_domain::sync::SyncOutcome;
use tributary_testing::memory::{InMemoryCustomers, InMemoryPublisher};
use tributary_testing::{LocalAws, Probe, put_demo_secrets, sample_event, sqs_event};
use tributary_tests::functions::function_env;

fn sample(name: &str) -> Value {
    serde_json::from_str(&sample_event(name).unwrap()).unwrap()
}

/// A canonical event as the bus carries it.
fn event(id: &str, source: &str, event_type: &str, email: &str, at: &str, payload: Value) -> String {
    json!({"id": id, "source": source, "type": event_type, "subject": format!("email:{email}"),
        "occurred_at": at, "received_at": at, "payload": payload})
    .to_string()
}

/// Two customers' events: leads, Make enrichments, a payment.
fn events() -> Vec<String> {
    let lead = |id: &str, email: &str, nom: &str, at: &str| {
        event(
            id,
            "ingestion",
            "lead.upserted",
            email,
            at,
            json!({"id": id, "nom": nom, "email": email, "statut": "contacte"}),
        )
    };
    vec![
        lead("lead-ada", "ada@example.com", "Ada", "2026-11-01T09:00:00Z"),
        lead("lead-grace", "grace@example.com", "Grace", "2026-11-01T10:00:00Z"),
        event(
            "exec-1",
            "make",
            "make.lead.enriched",
            "ada@example.com",
            "2026-11-02T09:00:00Z",
            json!({"company": "Engines"}),
        ),
        event(
            "exec-2",
            "make",
            "make.lead.enriched",
            "grace@example.com",
            "2026-11-02T10:00:00Z",
            json!({"company": "Navy"}),
        ),
        event(
            "exec-3",
            "make",
            "make.lead.enriched",
            "ada@example.com",
            "2026-11-03T09:00:00Z",
            json!({"employees": 12}),
        ),
    ]
}

/// What an all-new processor with `registry` makes of `messages`: the records by e-mail.
async fn fresh_records(
    config: &processor::config::ProcessorConfig,
    messages: &[String],
) -> HashMap<String, CustomerRecord> {
    let processor = processor::process::Processor {
        registry: config.registry(),
        store: InMemoryCustomers::default(),
        updates: InMemoryPublisher::default(),
        commit_attempts: 3,
    };
    for message in messages {
        let event = CanonicalEvent::from_message(message).unwrap();
        processor.process(&event, Timestamp::now()).await.unwrap();
    }
    let mut records = HashMap::new();
    for email in ["ada@example.com", "grace@example.com"] {
        let id = processor.store.find(&Subject::email(email)).await.unwrap().unwrap();
        records.insert(email.to_string(), processor.store.load(&id).await.unwrap().unwrap());
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_rebuilt_after_a_rule_change_equal_an_all_new_run_and_resume_from_their_checkpoint() {
    let local = LocalAws::start(&[("AttributeSources", "make")]).await.unwrap();
    put_demo_secrets(&local.sdk).await.unwrap();
    let now: Timestamp = "2026-11-23T09:00:05Z".parse().unwrap();

    // Yesterday's processor (`make` feeds the attributes) applies the events; the lake writer keeps them.
    let processor_env = local.stack.function_env("ProcessorFunction").unwrap();
    let yesterday = processor::config::ProcessorConfig::from_env(&processor_env).unwrap();
    let processor = yesterday.aws_deps(&local.sdk);
    let messages = events();
    for message in &messages {
        let mut delivery: SnsEvent = serde_json::from_value(sample("processor-lead-upserted.json")).unwrap();
        delivery.records[0].sns.message = message.clone();
        assert_eq!(processor::handler::handle(&processor, delivery, now).await.unwrap().applied, 1);
    }
    let writer_env = function_env(&local.stack, "LakeWriterFunction", &local.moto.endpoint()).unwrap();
    let location = tributary_lake::LakeLocation::from_env(&writer_env).unwrap();
    let tables = lake_writer::Tables::open(&location).await.unwrap();
    let (response, _) = lake_writer::write_batch(&tables, sqs_event(&messages), now).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let store = &processor.processor.store;
    let ada = store.find(&Subject::email("ada@example.com")).await.unwrap().unwrap();
    let before = store.load(&ada).await.unwrap().unwrap();
    assert_eq!(before.value("attributes.make.company"), Some(&json!("Engines")));

    // Today's rules: `make` is no longer an attribute source.
    let mut env = function_env(&local.stack, "RebuildFunction", &local.moto.endpoint()).unwrap();
    env.insert("ATTRIBUTE_SOURCES".into(), String::new());
    let config = rebuild::config::RebuildConfig::from_env(&env).unwrap();
    let deps = config.aws_deps(&local.sdk);
    let updates = Probe::subscribe(&local.sdk, &config.updates_topic_arn, "rebuild-updates").await.unwrap();
    let mut today_env = processor_env.clone();
    today_env.insert("ATTRIBUTE_SOURCES".into(), String::new());
    let today = processor::config::ProcessorConfig::from_env(&today_env).unwrap();
    let expected = fresh_records(&today, &messages).await;

    // One customer.
    let one = RebuildRequest { customer_id: Some(ada.clone()), ..RebuildRequest::default() };
    let summary = rebuild::job::run(&deps, &one, || false, now).await.unwrap();
    assert_eq!((summary.customers, summary.rebuilt, summary.unchanged), (1, 1, 0), "{summary:?}");
    let after = store.load(&ada).await.unwrap().unwrap();
    assert_eq!(after.fields, expected["ada@example.com"].fields, "as an all-new processor makes it");
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.identities, before.identities);
    let audit = store.audit(&ada, 1, None).await.unwrap().entries;
    assert_eq!(audit[0].kind, AuditKind::Rebuild);
    let changed: Vec<&str> = audit[0].changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(changed, ["attributes.make.company", "attributes.make.employees"]);
    let published = updates.drain().await.unwrap();
    assert_eq!(published.len(), 1, "the change is announced, for the pushes");
    let update: Value = serde_json::from_str(&published[0].message).unwrap();
    assert_eq!(update["payload"]["changed_fields"], json!(["attributes.make.company", "attributes.make.employees"]));

    // Again: nothing changes, nothing is written.
    let again = rebuild::job::run(&deps, &one, || false, now).await.unwrap();
    assert_eq!((again.rebuilt, again.unchanged), (0, 1));
    assert_eq!(store.load(&ada).await.unwrap().unwrap().version, after.version);

    // Every customer Make touched, stopped after the first (a crash, a deadline), then resumed.
    let touched = RebuildRequest { event_type: Some("make.".into()), ..RebuildRequest::default() };
    // A deadline already past: one customer (every invocation moves on), then the continuation.
    let first = rebuild::job::run(&deps, &touched, || true, now).await.unwrap();
    let resume = first.resume.clone().expect("stopped with work left");
    assert_eq!(first.customers, 1);
    let later = now.checked_add(jiff::SignedDuration::from_secs(60)).unwrap();
    let rest = rebuild::job::run(&deps, &resume, || false, later).await.unwrap();
    assert_eq!(rest.resume, None);
    assert_eq!(first.customers + rest.customers, 2, "each customer once: {first:?} {rest:?}");
    for email in ["ada@example.com", "grace@example.com"] {
        let id = store.find(&Subject::email(email)).await.unwrap().unwrap();
        assert_eq!(store.load(&id).await.unwrap().unwrap().fields, expected[email].fields, "{email}");
    }
    let runs = DynamoDbSyncStore::new(tributary_aws::dynamodb_client(&local.sdk), &config.ingestion_table)
        .recent_runs("rebuild", 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 4, "one run per invocation");
    let continued: Vec<_> = runs.iter().filter(|run| run.run_id == resume.run_id.clone().unwrap()).collect();
    assert_eq!(continued.len(), 2, "the continuation carries its run's id");
    assert!(continued.iter().any(|run| run.outcome == SyncOutcome::MoreToDo));
    assert!(continued.iter().any(|run| run.outcome == SyncOutcome::Completed));

    // A live event applied but not in the lake yet: the customer is left as it is, never rebuilt without it.
    let live = event(
        "exec-9",
        "make",
        "make.lead.enriched",
        "grace@example.com",
        "2026-11-04T09:00:00Z",
        json!({"plan": "team"}),
    );
    let mut delivery: SnsEvent = serde_json::from_value(sample("processor-lead-upserted.json")).unwrap();
    delivery.records[0].sns.message = live;
    processor::handler::handle(&processor, delivery, now).await.unwrap();
    let grace = store.find(&Subject::email("grace@example.com")).await.unwrap().unwrap();
    let version = store.load(&grace).await.unwrap().unwrap().version;
    let request = RebuildRequest { customer_id: Some(grace.clone()), ..RebuildRequest::default() };
    let left = rebuild::job::run(&deps, &request, || false, now).await.unwrap();
    assert_eq!(left.left.len(), 1, "{left:?}");
    assert!(left.left[0].1.contains("exec-9"), "{left:?}");
    assert_eq!(store.load(&grace).await.unwrap().unwrap().version, version, "untouched");

    // One rebuild at a time: while another holds the lease, a request is deferred, nothing done.
    let runs_store = DynamoDbSyncStore::new(tributary_aws::dynamodb_client(&local.sdk), &config.ingestion_table);
    let held = tributary_domain::sync::Lease {
        key: tributary_domain::sync::Lease::key_for("rebuild", "all"),
        owner: "another-run".into(),
        now,
        until: now.checked_add(jiff::SignedDuration::from_secs(300)).unwrap(),
    };
    assert!(runs_store.acquire_lease(&held).await.unwrap());
    let deferred = rebuild::job::run(&deps, &one, || false, now).await.unwrap();
    assert!(deferred.deferred && deferred.customers == 0, "{deferred:?}");
    runs_store.release_lease(&held).await.unwrap();
    assert!(!rebuild::job::run(&deps, &one, || false, now).await.unwrap().deferred, "the lease is free again");

    let unknown = RebuildRequest { customer_id: Some(CustomerId::new()), ..RebuildRequest::default() };
    assert_eq!(rebuild::job::run(&deps, &unknown, || false, now).await.unwrap().left[0].1, "no such customer");
}
