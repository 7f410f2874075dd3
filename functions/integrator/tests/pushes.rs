//! The integrator's handler against local HTTP servers (wiremock): success, a retried 500, a 400
//! that is not retried, a refused private address, and one failing target beside a working one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test or bench fails loudly on what it did not expect"
)]

use aws_lambda_events::event::sns::SnsEvent;
use integrator::config::{IntegrationsDocument, LoadedIntegrations};
use integrator::handler::{Deps, Summary, handle, http_client};
use integrator::push::Backoff;
use jiff::Timestamp;
use serde_json::json;
use std::time::Duration;
use tributary_domain::customer::store::{AuditKind, PushOutcome};
use tributary_domain::customer::{Change, CustomerId, CustomerRecord, Stamp, SubSchema};
use tributary_domain::event::EventId;
use tributary_testing::memory::{InMemoryCustomers, InMemoryDeadLetters, InMemorySecrets, InMemorySyncStore};
use tributary_testing::sample_event;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CUSTOMER: &str = "6b1f9c52-3c1e-4f7e-8a9d-2e5b7c1d0a11";

fn now() -> Timestamp {
    "2026-11-23T09:00:05Z".parse().unwrap()
}

/// The sample delivery of `events/` (customer `CUSTOMER`, version 1, identity and billing changed).
fn delivery() -> SnsEvent {
    serde_json::from_str(&sample_event("integrator-customer-updated.json").unwrap()).unwrap()
}

fn customer() -> CustomerRecord {
    let mut record = CustomerRecord::new(CustomerId::parse(CUSTOMER).unwrap());
    let stamp = Stamp { at: "2026-11-23T08:58:00Z".parse().unwrap(), event_id: EventId::parse("evt_1").unwrap() };
    let changes = [
        Change::new("identity.email", "ada.lovelace@example.com"),
        Change::new("identity.nom", "Ada Lovelace"),
        Change::new("billing.totals.eur", 4900),
    ];
    record.apply("test", &[SubSchema::Identity, SubSchema::Billing], &stamp, &changes).unwrap();
    record.version = 1;
    record
}

async fn deps(document: &str, allow_loopback: bool) -> Deps<InMemoryCustomers, InMemoryDeadLetters, InMemorySyncStore> {
    let secrets = InMemorySecrets {
        values: [("/tributary/integrations/crm-token".to_string(), "s3cret".to_string())].into_iter().collect(),
    };
    let document = IntegrationsDocument::parse(document).unwrap();
    let store = InMemoryCustomers::default();
    store.insert(customer());
    Deps {
        integrations: tributary_domain::secrets::Refreshing::fixed(
            LoadedIntegrations::from_document(document, &secrets).await.unwrap(),
        ),
        client: http_client(allow_loopback).unwrap(),
        store,
        dead_letters: InMemoryDeadLetters::default(),
        tallies: InMemorySyncStore::default(),
        allow_loopback,
        backoff: Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            max_retry_after: Duration::from_millis(50),
        },
    }
}

fn crm_document(server: &MockServer) -> String {
    format!(
        r#"
allowed_hosts: ["127.0.0.1"]
integrations:
  - name: crm
    url: {}/v1/contacts
    method: PUT
    on_fields: ["identity.*"]
    body: {{email: identity.email, name: identity.nom, phone: identity.telephone, id: $customer_id, version: $version}}
    auth: {{header: Authorization, secret_param: /tributary/integrations/crm-token, prefix: "Bearer "}}
"#,
        server.uri()
    )
}

#[tokio::test]
async fn a_push_carries_the_mapped_fields_the_secret_and_the_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/contacts"))
        .and(header("authorization", "Bearer s3cret"))
        .and(header("idempotency-key", format!("{CUSTOMER}:1:crm").as_str()))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let deps = deps(&crm_document(&server), true).await;
    let summary = handle(&deps, delivery(), now()).await.unwrap();
    assert_eq!(summary, Summary { pushed: 1, ..Summary::default() });
    let requests = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        body,
        json!({"email": "ada.lovelace@example.com", "name": "Ada Lovelace", "phone": null, "id": CUSTOMER, "version": 1})
    );
    let audit = deps.store.audit_entries(&CustomerId::parse(CUSTOMER).unwrap());
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].kind, AuditKind::Integration);
    let result = audit[0].integration.as_ref().unwrap();
    assert_eq!((result.outcome, result.attempts, result.status), (PushOutcome::Success, 1, Some(200)));
}

#[tokio::test]
async fn a_500_is_retried_once_with_the_same_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(500)).up_to_n_times(1).mount(&server).await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(201)).mount(&server).await;
    let deps = deps(&crm_document(&server), true).await;
    assert_eq!(handle(&deps, delivery(), now()).await.unwrap().pushed, 1);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let keys: Vec<_> = requests.iter().map(|r| r.headers["idempotency-key"].to_str().unwrap().to_string()).collect();
    assert_eq!(keys, vec![format!("{CUSTOMER}:1:crm"); 2]);
    let audit = deps.store.audit_entries(&CustomerId::parse(CUSTOMER).unwrap());
    assert_eq!(audit[0].integration.as_ref().unwrap().attempts, 2);
}

#[tokio::test]
async fn a_429_honours_retry_after_and_persistent_5xx_give_up() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let deps = deps(&crm_document(&server), true).await;
    let summary = handle(&deps, delivery(), now()).await.unwrap();
    assert_eq!(summary.failed, 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 4, "max_attempts defaults to 4");
    let audit = deps.store.audit_entries(&CustomerId::parse(CUSTOMER).unwrap());
    assert_eq!(audit[0].integration.as_ref().unwrap().outcome, PushOutcome::GaveUp);
    let letters = deps.dead_letters.letters();
    assert!(letters[0].1.starts_with("push to crm GaveUp"), "{}", letters[0].1);
}

#[tokio::test]
async fn a_400_is_not_retried_and_does_not_block_another_target() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/contacts")).respond_with(ResponseTemplate::new(400)).mount(&server).await;
    Mock::given(path("/billing")).respond_with(ResponseTemplate::new(204)).mount(&server).await;
    let document = format!(
        "{}  - name: billing\n    url: {}/billing\n    on_fields: [billing.totals.eur]\n    body: {{total: billing.totals.eur}}\n",
        crm_document(&server),
        server.uri()
    );
    let deps = deps(&document, true).await;
    let summary = handle(&deps, delivery(), now()).await.unwrap();
    assert_eq!((summary.pushed, summary.failed), (1, 1));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.iter().filter(|r| r.url.path() == "/v1/contacts").count(), 1, "a 400 is final");
    let audit = deps.store.audit_entries(&CustomerId::parse(CUSTOMER).unwrap());
    let outcomes: Vec<_> = audit.iter().map(|e| e.integration.as_ref().unwrap().outcome).collect();
    assert!(outcomes.contains(&PushOutcome::PermanentFailure) && outcomes.contains(&PushOutcome::Success));
    // Counted by integration and outcome in the hour, under the audit trail's outcome names.
    let mut tallies: Vec<(String, String, u64)> =
        deps.tallies.all_tallies().into_iter().map(|t| (t.name, t.outcome, t.count)).collect();
    tallies.sort();
    assert_eq!(tallies, [("billing".into(), "success".into(), 1), ("crm".into(), "permanent_failure".into(), 1)]);
    for outcome in [PushOutcome::Success, PushOutcome::PermanentFailure, PushOutcome::GaveUp] {
        assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.name());
    }
}

#[tokio::test]
async fn private_and_loopback_addresses_are_refused_without_a_request() {
    let server = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;
    let port = server.address().port();
    // A literal private address, and a name that resolves to loopback while loopback is not allowed.
    for (host, url) in
        [("10.0.0.5", "https://10.0.0.5/hook".to_string()), ("localhost", format!("https://localhost:{port}/hook"))]
    {
        let document = format!(
            "allowed_hosts: [\"{host}\"]\nintegrations:\n  - name: crm\n    url: {url}\n    on_fields: [\"identity.*\"]\n    body: {{email: identity.email}}\n"
        );
        let deps = deps(&document, false).await;
        let summary = handle(&deps, delivery(), now()).await.unwrap();
        assert_eq!(summary.failed, 1, "{url}");
        let audit = deps.store.audit_entries(&CustomerId::parse(CUSTOMER).unwrap());
        let result = audit[0].integration.as_ref().unwrap();
        assert_eq!(result.outcome, PushOutcome::PermanentFailure);
        let detail = result.detail.as_deref().unwrap_or_default();
        assert!(detail.starts_with("refused"), "{detail}");
        // The audit trail is served by the read API: no address, host or URL in it.
        assert!(
            !detail.contains("127.0.0.1")
                && !detail.contains("localhost")
                && !detail.contains("http")
                && !detail.contains("10."),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn updates_no_integration_wants_and_foreign_messages() {
    let server = MockServer::start().await;
    let deps = deps(&crm_document(&server).replace("identity.*", "lead.statut"), true).await;
    assert_eq!(handle(&deps, delivery(), now()).await.unwrap().not_triggered, 1);
    let mut foreign = delivery();
    foreign.records[0].sns.message = "{}".into();
    assert_eq!(handle(&deps, foreign, now()).await.unwrap().dead_lettered, 1);
    assert!(server.received_requests().await.unwrap().is_empty());
}
