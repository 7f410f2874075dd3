//! The processor's handler over in-memory adapters: the samples of `events/`, failures, and
//! order independence over every order of six events.

use crate::common;

use common::*;
use processor::handler::{Summary, handle};
use serde_json::json;
use tributary_domain::customer::store::CustomerUpdated;
use tributary_domain::event::CanonicalEvent;
use tributary_domain::ports::CustomerStore;

#[tokio::test]
async fn every_sample_family_is_applied_and_announced() {
    let deps = memory_deps();
    for name in [
        "processor-lead-upserted.json",
        "processor-stripe-invoice-paid.json",
        "processor-matomo-visit.json",
        "processor-personnage.json",
    ] {
        let summary = handle(&deps, sample(name), now()).await.unwrap();
        assert_eq!(summary, Summary { applied: 1, ..Summary::default() }, "{name}");
    }
    // Lead, Stripe and Matomo name the same e-mail address: one customer; the personnage another.
    let records = deps.processor.store.records();
    assert_eq!(records.len(), 2);
    let ada = records.iter().find(|r| r.version == 3).expect("Ada's record has three events");
    assert_eq!(ada.value("billing.totals.eur"), Some(&json!(4900)));
    assert_eq!(ada.value("web.visit_count"), Some(&json!(1)));
    assert_eq!(ada.value("lead.statut"), Some(&json!("appel_propose")));
    assert!(ada.identities.contains("stripe:cus_TributaryDemo01"));
    assert_eq!(deps.processor.store.audit_entries(&ada.id).len(), 3);

    let updates = deps.processor.updates.messages();
    assert_eq!(updates.len(), 4);
    let update = CanonicalEvent::from_message(&updates[1].body).unwrap();
    assert_eq!((update.event_type.as_str(), updates[1].event_type.as_str()), ("customer.updated", "customer.updated"));
    let payload: CustomerUpdated = update.payload_as().unwrap();
    assert_eq!(payload.version, 2);
    assert!(payload.changed_fields.contains(&"billing.totals.eur".to_string()), "{:?}", payload.changed_fields);
}

#[tokio::test]
async fn malformed_messages_and_unreadable_payloads_are_dead_lettered_without_a_write() {
    let deps = memory_deps();
    let summary = handle(&deps, sample("processor-malformed.json"), now()).await.unwrap();
    assert_eq!(summary, Summary { dead_lettered: 1, ..Summary::default() });
    let bad_payment = event(
        "evt_bad",
        "stripe.invoice.paid",
        None,
        "2025-01-01T00:00:00Z",
        json!({"data": {"object": {"customer": "cus_1", "amount_paid": 10}}}),
    );
    let summary = handle(&deps, delivery_of(&bad_payment), now()).await.unwrap();
    assert_eq!(summary.dead_lettered, 1);
    let letters = deps.dead_letters.letters();
    assert!(letters[0].1.starts_with("not a canonical event"), "{}", letters[0].1);
    assert!(letters[1].1.contains("currency"), "{}", letters[1].1);
    assert_eq!(letters[0].0, "{not a canonical event", "the message is kept as received");
    assert!(deps.processor.store.records().is_empty());
    assert!(deps.processor.updates.messages().is_empty());
}

#[tokio::test]
async fn events_without_rule_or_without_customer_are_acknowledged_and_counted() {
    let deps = memory_deps();
    let unknown = event("evt_x", "shop.order.created", None, "2025-01-01T00:00:00Z", json!({}));
    let summary = handle(&deps, delivery_of(&unknown), now()).await.unwrap();
    assert_eq!(summary, Summary { without_rule: 1, ..Summary::default() });
    let anonymous_visit = event(
        "visit-anon",
        "matomo.visit",
        None,
        "2025-01-01T00:00:00Z",
        json!({"visit_id": "7", "site_id": 1, "time": "2025-01-01T00:00:00Z", "actions": 2}),
    );
    let summary = handle(&deps, delivery_of(&anonymous_visit), now()).await.unwrap();
    assert_eq!(summary, Summary { without_subject: 1, ..Summary::default() });
    assert!(deps.dead_letters.letters().is_empty());
}

#[tokio::test]
async fn a_store_failure_fails_the_invocation_and_the_retry_applies_once() {
    let deps = memory_deps();
    deps.processor.store.set_failing(true);
    let error = handle(&deps, sample("processor-stripe-invoice-paid.json"), now()).await.unwrap_err();
    assert!(error.to_string().contains("injected failure"), "{error}");
    deps.processor.store.set_failing(false);
    let summary = handle(&deps, sample("processor-stripe-invoice-paid.json"), now()).await.unwrap();
    assert_eq!(summary.applied, 1);
    assert_eq!(deps.processor.updates.messages().len(), 1);
}

#[tokio::test]
async fn a_notification_lost_between_commit_and_publish_is_sent_by_the_redelivery() {
    let deps = memory_deps();
    deps.processor.updates.set_failing(true);
    assert!(handle(&deps, sample("processor-stripe-invoice-paid.json"), now()).await.is_err());
    deps.processor.updates.set_failing(false);
    // A redelivery while the first attempt could still be running does not publish twice…
    let summary = handle(&deps, sample("processor-stripe-invoice-paid.json"), now()).await.unwrap();
    assert_eq!(summary.duplicates, 1);
    assert!(deps.processor.updates.messages().is_empty());
    // …Lambda's retry a few minutes later publishes the pending notification, once.
    let later = now() + jiff::SignedDuration::from_mins(3);
    for _ in 0..2 {
        handle(&deps, sample("processor-stripe-invoice-paid.json"), later).await.unwrap();
    }
    assert_eq!(deps.processor.updates.messages().len(), 1);
    let id = deps.processor.store.records()[0].id.clone();
    assert_eq!(deps.processor.store.audit_entries(&id).len(), 1);
    let event = message_of("processor-stripe-invoice-paid.json");
    let key = tributary_domain::customer::store::applied_key(&event.source, &event.id);
    assert_eq!(deps.processor.store.applied(&key).await.unwrap().unwrap().pending, None);
}

#[tokio::test]
async fn all_720_orders_of_six_events_give_the_same_record() {
    let events = six_events("");
    let mut reference = None;
    for order in permutations(&events) {
        let deps = memory_deps();
        for event in &order {
            handle(&deps, delivery_of(event), now()).await.unwrap();
        }
        let records = deps.processor.store.records();
        assert_eq!(records.len(), 1, "the six events meet in one customer");
        let record = &records[0];
        let comparable = (record.version, record.identities.clone(), record.fields.clone());
        match &reference {
            None => reference = Some(comparable),
            Some(expected) => assert_eq!(&comparable, expected),
        }
    }
    let (version, _, fields) = reference.unwrap();
    assert_eq!(version, 6);
    assert_eq!(fields["identity.nom"].value, json!("Ada L."));
    assert_eq!(fields["billing.totals.eur"].value, json!(2500));
    assert_eq!(fields["web.first_visit"].value, json!("2024-12-30T10:00:00Z"));
    assert_eq!(fields["web.last_visit"].value, json!("2025-01-06T10:00:00Z"));
    assert_eq!(fields["web.goals"].value, json!(["Demo booked", "Newsletter"]));
    assert_eq!(fields["lead.statut"].value, json!("appel_booke"));
    assert_eq!(fields["lead.date_prise_contact"].value, json!("2025-01-01"));
}

/// Counts the store calls the processor makes; each is one DynamoDB request in the AWS adapter.
#[derive(Default)]
struct CountingStore {
    inner: tributary_testing::memory::InMemoryCustomers,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

impl CountingStore {
    fn count(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

use tributary_domain::customer::store::{AppliedMarker, AuditEntry, AuditPage, Commit, CommitOutcome};
use tributary_domain::customer::{CustomerId, CustomerRecord};
use tributary_domain::event::Subject;
use tributary_domain::ports::PortError;

impl CustomerStore for CountingStore {
    async fn find(&self, subject: &Subject) -> Result<Option<CustomerId>, PortError> {
        self.count("GetItem lookup");
        self.inner.find(subject).await
    }
    async fn find_each(&self, subjects: &[Subject]) -> Result<Vec<Option<CustomerId>>, PortError> {
        self.count(if subjects.len() == 1 { "GetItem lookup" } else { "BatchGetItem lookups" });
        self.inner.find_each(subjects).await
    }
    async fn load(&self, id: &CustomerId) -> Result<Option<CustomerRecord>, PortError> {
        self.count("GetItem record");
        self.inner.load(id).await
    }
    async fn commit(&self, commit: &Commit) -> Result<CommitOutcome, PortError> {
        self.count("TransactWriteItems");
        self.inner.commit(commit).await
    }
    async fn ledger(
        &self,
        id: &CustomerId,
        keys: &[String],
    ) -> Result<tributary_domain::customer::rules::Ledger, PortError> {
        self.count("BatchGetItem ledger");
        self.inner.ledger(id, keys).await
    }
    async fn applied(&self, key: &str) -> Result<Option<AppliedMarker>, PortError> {
        self.count("GetItem marker");
        self.inner.applied(key).await
    }
    async fn mark_notified(&self, key: &str) -> Result<(), PortError> {
        self.count("UpdateItem marker");
        self.inner.mark_notified(key).await
    }
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), PortError> {
        self.inner.append_audit(entry).await
    }
    async fn audit(&self, id: &CustomerId, limit: usize, after: Option<&str>) -> Result<AuditPage, PortError> {
        self.inner.audit(id, limit, after).await
    }
}

#[tokio::test]
async fn aws_calls_per_event() {
    let processor = processor::process::Processor {
        registry: tributary_domain::customer::rules::Registry::standard(&[]),
        store: CountingStore::default(),
        updates: tributary_testing::memory::InMemoryPublisher::default(),
        commit_attempts: 8,
    };
    let events = six_events("");
    // A new customer: its subjects are looked up together (the lead names two).
    processor.process(&events[0], now()).await.unwrap();
    assert_eq!(processor.store.take(), ["BatchGetItem lookups", "TransactWriteItems", "UpdateItem marker"]);
    // A known customer: one lookup, one read, one transaction, one outbox update (and one publish).
    processor.process(&events[2], now()).await.unwrap();
    let stripe_new_link = processor.store.take();
    // Its Stripe customer id is new (linked in the transaction), its e-mail address known.
    assert_eq!(
        stripe_new_link,
        ["BatchGetItem lookups", "GetItem record", "BatchGetItem ledger", "TransactWriteItems", "UpdateItem marker"]
    );
    // A payment also reads the ledger entries of its ids (one request for all of them).
    processor.process(&events[3], now()).await.unwrap();
    assert_eq!(
        processor.store.take(),
        ["BatchGetItem lookups", "GetItem record", "BatchGetItem ledger", "TransactWriteItems", "UpdateItem marker"]
    );
    assert_eq!(processor.updates.messages().len(), 3);
    // A duplicate: the transaction is refused by the marker, which is then read.
    processor.process(&events[3], now()).await.unwrap();
    assert_eq!(
        processor.store.take(),
        ["BatchGetItem lookups", "GetItem record", "BatchGetItem ledger", "TransactWriteItems", "GetItem marker"]
    );
}
