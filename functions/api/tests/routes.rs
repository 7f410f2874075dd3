//! `/api/v1` over the in-memory store: the samples of `events/`, pagination, and every error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test or bench fails loudly on what it did not expect"
)]

use api::failures::Repair;
use api::handler::{Deps, handle};
use jiff::Timestamp;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use tributary_domain::api_key::ApiKeys;
use tributary_domain::customer::store::{AuditEntry, AuditKind};
use tributary_domain::customer::{Change, CustomerId, CustomerRecord, Stamp, SubSchema};
use tributary_domain::event::EventId;
use tributary_domain::failures::{FailureQueue, QUEUE_URL_VARIABLES, QueueUrls};
use tributary_domain::ports::CustomerStore;
use tributary_domain::ports::MessageQueues;
use tributary_domain::sync::SyncOutcome;
use tributary_testing::memory::{
    InMemoryCustomers, InMemoryDedup, InMemoryPublisher, InMemoryQueues, InMemorySyncStore,
};
use tributary_testing::{demo_secrets, sample_event};

const CUSTOMER: &str = "6b1f9c52-3c1e-4f7e-8a9d-2e5b7c1d0a11";

fn sample_value(name: &str) -> Value {
    serde_json::from_str(&sample_event(name).unwrap()).unwrap()
}

fn request(value: &Value) -> Request {
    lambda_http::request::from_str(&value.to_string()).unwrap()
}

/// The get-customer sample re-targeted at `path?query`.
fn get(path: &str, query: &str) -> Request {
    call("GET", path, query, None)
}

fn now() -> Timestamp {
    "2026-11-23T09:00:05Z".parse().unwrap()
}

type MemoryDeps = Deps<InMemoryCustomers, InMemoryPublisher, InMemoryDedup, InMemoryQueues, InMemorySyncStore>;

/// Every queue URL named after its variable.
fn queue_urls() -> QueueUrls {
    let env: std::collections::HashMap<String, String> =
        QUEUE_URL_VARIABLES.iter().map(|name| (name.to_string(), format!("queue:{name}"))).collect();
    QueueUrls::from_env(&env).unwrap()
}

async fn deps() -> MemoryDeps {
    let hashes = demo_secrets().unwrap().into_iter().find(|(name, _)| name == "/tributary/api-key-hashes").unwrap().1;
    let store = InMemoryCustomers::default();
    let id = CustomerId::parse(CUSTOMER).unwrap();
    let mut record = CustomerRecord::new(id.clone());
    record.identities.insert("email:ada.lovelace@example.com".into());
    for version in 1..=3u64 {
        let stamp = Stamp {
            at: Timestamp::from_second(1_700_000_000 + version as i64).unwrap(),
            event_id: EventId::parse(format!("evt_{version}")).unwrap(),
        };
        let diffs = record
            .apply("test", &[SubSchema::Identity], &stamp, &[Change::new("identity.nom", format!("Ada v{version}"))])
            .unwrap();
        record.version = version;
        store
            .append_audit(&AuditEntry {
                customer_id: id.clone(),
                kind: AuditKind::Event,
                version,
                event_id: stamp.event_id.clone(),
                source: "test".into(),
                event_type: "test.changed".into(),
                rule: Some("test".into()),
                changes: diffs,
                occurred_at: stamp.at,
                processed_at: stamp.at,
                integration: None,
                requested_by: None,
            })
            .await
            .unwrap();
    }
    store.insert(record);
    Deps {
        keys: tributary_domain::secrets::Refreshing::fixed(ApiKeys::parse(&hashes).unwrap()),
        store,
        events: InMemoryPublisher::default(),
        dedup: InMemoryDedup::default(),
        repair: Repair { queues: InMemoryQueues::default(), urls: queue_urls(), runs: InMemorySyncStore::default() },
    }
}

fn body(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

#[tokio::test]
async fn the_samples_answer_as_documented() {
    let deps = deps().await;
    let response = handle(&deps, request(&sample_value("api-get-customer.json")), now()).await;
    assert_eq!(response.status(), 200);
    let customer = body(&response);
    assert_eq!(customer["version"], 3);
    assert_eq!(customer["profile"], json!({"identity": {"nom": "Ada v3"}}));
    assert_eq!(customer["fields"]["identity.nom"]["event_id"], "evt_3");

    let response = handle(&deps, request(&sample_value("api-get-customer-audit.json")), now()).await;
    let versions: Vec<_> = body(&response)["items"].as_array().unwrap().iter().map(|e| e["version"].clone()).collect();
    assert_eq!(versions, [json!(3), json!(2), json!(1)], "newest first");
    assert!(body(&response).get("next_cursor").is_none());

    let response = handle(&deps, request(&sample_value("api-find-customer-by-email.json")), now()).await;
    assert_eq!((response.status().as_u16(), body(&response)["id"].clone()), (200, json!(CUSTOMER)));

    let response = handle(&deps, request(&sample_value("api-get-customer-unauthorized.json")), now()).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_audit_trail_pages_with_an_opaque_cursor() {
    let deps = deps().await;
    let audit = format!("/api/v1/customers/{CUSTOMER}/audit");
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    loop {
        let page = body(&handle(&deps, get(&audit, &query), now()).await);
        seen.extend(page["items"].as_array().unwrap().iter().map(|e| e["version"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, [3, 2, 1]);
}

#[tokio::test]
async fn bad_requests_unknown_customers_and_unknown_routes() {
    let deps = deps().await;
    let audit = format!("/api/v1/customers/{CUSTOMER}/audit");
    for (path, query, status) in [
        (audit.as_str(), "cursor=bm9wZQ", 400),
        (audit.as_str(), "limit=0", 400),
        (audit.as_str(), "limit=x", 400),
        ("/api/v1/customers/00000000-0000-0000-0000-000000000000", "", 404),
        ("/api/v1/customers/00000000-0000-0000-0000-000000000000/audit", "", 404),
        ("/api/v1/customers/NOT..AN..ID", "", 404),
        ("/api/v1/customers", "", 400),
        ("/api/v1/customers", "email=nobody@example.com", 404),
        ("/api/v1/elsewhere", "", 404),
    ] {
        let response = handle(&deps, get(path, query), now()).await;
        assert_eq!(response.status().as_u16(), status, "{path}?{query}");
    }
    let mut wrong_key = sample_value("api-get-customer.json");
    wrong_key["headers"]["authorization"] = json!("Bearer not-the-key");
    assert_eq!(handle(&deps, request(&wrong_key), now()).await.status(), 401);
    let mut post = sample_value("api-get-customer.json");
    post["requestContext"]["http"]["method"] = json!("POST");
    assert_eq!(handle(&deps, request(&post), now()).await.status(), 405);
}

#[tokio::test]
async fn a_valid_lead_batch_is_published_as_lead_upserted_events() {
    let deps = deps().await;
    let response = handle(&deps, request(&sample_value("api-ingest-leads.json")), now()).await;
    assert_eq!(response.status(), 202);
    assert_eq!(body(&response), json!({"accepted": 2, "duplicate": false}));
    let messages = deps.events.messages();
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m.event_type == "lead.upserted" && m.source == "ingestion"));
    let event = tributary_domain::event::CanonicalEvent::from_message(&messages[0].body).unwrap();
    assert_eq!(event.subject.as_ref().unwrap().as_str(), "lead:lead-0001");
    let lead: tributary_domain::lead::Lead = event.payload_as().unwrap();
    assert_eq!(lead.telephone.as_deref(), Some("+33612345678"), "normalised before publishing");
}

/// Lead versions follow the request: a retry with the same `Idempotency-Key` is answered as a
/// duplicate and publishes nothing (after a failed attempt it publishes the same event ids); the
/// key with another batch is a conflict; any other request is new versions, even of the same content.
#[tokio::test]
async fn an_idempotency_key_makes_a_retried_batch_a_duplicate() {
    let deps = deps().await;
    let with_key = |key: Option<&str>, body: Option<&str>| {
        let mut value = sample_value("api-ingest-leads.json");
        if let Some(key) = key {
            value["headers"]["idempotency-key"] = json!(key);
        }
        if let Some(body) = body {
            value["body"] = json!(body);
        }
        request(&value)
    };
    let ids = |from: usize| -> Vec<String> {
        deps.events.messages()[from..]
            .iter()
            .map(|m| tributary_domain::event::CanonicalEvent::from_message(&m.body).unwrap().id.to_string())
            .collect()
    };
    let later = now() + jiff::SignedDuration::from_secs(30);
    assert_eq!(handle(&deps, with_key(Some("batch-1"), None), now()).await.status(), 202);
    let retry = handle(&deps, with_key(Some("batch-1"), None), later).await;
    assert_eq!((retry.status().as_u16(), body(&retry)), (200, json!({"accepted": 2, "duplicate": true})));
    assert_eq!(deps.events.messages().len(), 2, "the retry published nothing");
    let other_batch = r#"[{"id": "lead-0009", "nom": "Zoé"}]"#;
    assert_eq!(handle(&deps, with_key(Some("batch-1"), Some(other_batch)), later).await.status(), 409);

    // A failed attempt releases the key: its retry publishes the same ids.
    deps.events.set_failing(true);
    assert_eq!(handle(&deps, with_key(Some("batch-2"), None), now()).await.status(), 503);
    deps.events.set_failing(false);
    assert_eq!(handle(&deps, with_key(Some("batch-2"), None), later).await.status(), 202);
    let second = ids(2);
    assert!(second.iter().all(|id| !ids(0)[..2].contains(id)), "another key: new versions");
    assert_eq!(handle(&deps, with_key(Some("batch-3"), None), later).await.status(), 202);
    assert_ne!(ids(4), second, "the same batch under another key: new versions");

    assert_eq!(handle(&deps, with_key(None, None), now()).await.status(), 202);
    assert_eq!(handle(&deps, with_key(None, None), later).await.status(), 202);
    assert_ne!(ids(6)[..2], ids(8)[..], "no key: each request is new versions");
    for bad in ["", "a b", &"k".repeat(201)] {
        let mut value = sample_value("api-ingest-leads.json");
        value["headers"]["idempotency-key"] = json!(bad);
        let response = handle(&deps, request(&value), now()).await;
        assert_eq!(response.status(), 400, "{bad:?}");
        assert_eq!(body(&response)["field"], "idempotency-key");
    }
    assert_eq!(deps.events.messages().len(), 10, "nothing published for a bad key");
}

#[tokio::test]
async fn an_invalid_batch_lists_every_problem_and_publishes_nothing() {
    let deps = deps().await;
    let response = handle(&deps, request(&sample_value("api-ingest-leads-invalid.json")), now()).await;
    assert_eq!(response.status(), 422);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let errors: Vec<(u64, String)> = body(&response)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(u64, String)> =
        ["id", "email", "statut", "date_relance"].iter().map(|f| (1, f.to_string())).collect();
    assert_eq!(errors, expected);
    assert!(deps.events.messages().is_empty());

    let mut value = sample_value("api-ingest-leads.json");
    for (body_text, content_type, status) in
        [("{\"id\": \"x\"}", "application/json", 400), ("not json", "application/json", 400), ("[]", "text/plain", 415)]
    {
        value["body"] = json!(body_text);
        value["headers"]["content-type"] = json!(content_type);
        assert_eq!(handle(&deps, request(&value), now()).await.status().as_u16(), status, "{body_text}");
    }
    let too_many = serde_json::to_string(&vec![json!({"id": "x", "nom": "y"}); 1001]).unwrap();
    value["body"] = json!(too_many);
    value["headers"]["content-type"] = json!("application/json");
    assert_eq!(handle(&deps, request(&value), now()).await.status(), 413);
    let mut get = sample_value("api-ingest-leads.json");
    get["requestContext"]["http"]["method"] = json!("GET");
    assert_eq!(handle(&deps, request(&get), now()).await.status(), 405);
    deps.events.set_failing(true);
    assert_eq!(handle(&deps, request(&sample_value("api-ingest-leads.json")), now()).await.status(), 503);
}

/// `path` with `method` and `body`, as the samples send them (with the demo key).
fn call(method: &str, path: &str, query: &str, body: Option<Value>) -> Request {
    let mut value = sample_value("api-get-customer.json");
    value["requestContext"]["http"]["method"] = json!(method);
    value["rawPath"] = json!(path);
    value["requestContext"]["http"]["path"] = json!(path);
    value["rawQueryString"] = json!(query);
    if !query.is_empty() {
        let pairs: serde_json::Map<String, Value> =
            query.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k.to_string(), json!(v))).collect();
        value["queryStringParameters"] = Value::Object(pairs);
    }
    if let Some(body) = body {
        value["body"] = json!(body.to_string());
        value["isBase64Encoded"] = json!(false);
        value["headers"]["content-type"] = json!("application/json");
    }
    request(&value)
}

fn canonical(id: &str) -> String {
    json!({"id": id, "source": "stripe", "type": "stripe.invoice.paid", "subject": "email:ada@example.com",
        "occurred_at": "2026-11-20T09:00:00Z", "received_at": "2026-11-20T09:00:01Z", "payload": {}})
    .to_string()
}

#[tokio::test]
async fn failures_are_listed_without_being_taken_and_redriven_with_their_count() {
    let deps = deps().await;
    let urls = queue_urls();
    let dead_letters = &urls.processor_dead_letters;
    // As the processor dead-letters them: the event, and why.
    for id in ["evt_a", "evt_b", "evt_c"] {
        let reason = ("reason", "no rule reads this payload".to_string());
        deps.repair.queues.send(dead_letters, &canonical(id), &[reason]).await.unwrap();
    }

    let listed = handle(&deps, call("GET", "/api/v1/failures", "queue=processor-dead-letters", None), now()).await;
    assert_eq!(listed.status(), 200);
    let listed = body(&listed);
    let queue = &listed["queues"][0];
    assert_eq!(queue["queue"], "processor-dead-letters");
    assert_eq!(queue["depth"], 3);
    assert_eq!(queue["messages"].as_array().unwrap().len(), 3);
    assert_eq!(queue["messages"][0]["reason"], "no rule reads this payload");
    assert_eq!(queue["messages"][0]["event_type"], "stripe.invoice.paid");
    assert_eq!(deps.repair.queues.depth(dead_letters).await.unwrap().visible, 3, "listing takes nothing");
    let all = body(&handle(&deps, call("GET", "/api/v1/failures", "", None), now()).await);
    assert_eq!(all["queues"].as_array().unwrap().len(), FailureQueue::ALL.len(), "every failure queue");

    // One by id, then the rest.
    let first = queue["messages"][0]["id"].as_str().unwrap().to_string();
    let path = "/api/v1/failures/processor-dead-letters/redrive";
    let one = handle(&deps, call("POST", path, "", Some(json!({"ids": [first, "gone"]}))), now()).await;
    assert_eq!(one.status(), 200);
    let one = body(&one);
    assert_eq!((one["redriven"].as_u64(), one["not_found"].clone()), (Some(1), json!(["gone"])));
    let rest = body(&handle(&deps, call("POST", path, "", Some(json!({"all": true}))), now()).await);
    assert_eq!(rest["redriven"], 2);
    assert!(deps.repair.queues.messages(dead_letters).is_empty());
    let redriven = deps.repair.queues.messages(&urls.processor_redrive);
    assert_eq!(redriven.len(), 3);
    assert_eq!(redriven[0].body, canonical("evt_a"));
    assert_eq!(redriven[0].attribute("redrives"), Some("1"));
    assert_eq!(redriven[0].attribute("redriven_from"), Some("processor-dead-letters"));
    assert!(redriven[0].attribute("first_failed_at").is_some());

    // Each re-drive is a run of the history.
    let runs = deps.repair.runs.runs();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|run| run.job == "redrive" && run.outcome == SyncOutcome::Completed));
    assert_eq!(runs.iter().map(|run| run.records).sum::<u64>(), 3);
    assert_eq!(runs[0].rejected, 1, "the id not found");
    assert!(runs.iter().all(|run| run.requested_by.as_deref() == Some("demo")), "each names the key that asked");
}

#[tokio::test]
async fn failure_routes_refuse_what_they_cannot_do() {
    let deps = deps().await;
    let cases = [
        (call("GET", "/api/v1/failures", "queue=nope", None), 400),
        (call("GET", "/api/v1/failures", "limit=1000", None), 400),
        (call("POST", "/api/v1/failures/nope/redrive", "", Some(json!({"all": true}))), 404),
        (call("POST", "/api/v1/failures/processor-failures/redrive", "", Some(json!({}))), 400),
        (call("POST", "/api/v1/failures/processor-failures/redrive", "", Some(json!({"ids": []}))), 400),
        (
            call("POST", "/api/v1/failures/processor-failures/redrive", "", Some(json!({"ids": ["a"], "all": true}))),
            400,
        ),
        (call("POST", "/api/v1/failures/processor-failures/redrive", "", Some(json!({"every": true}))), 400),
        (call("GET", "/api/v1/failures/processor-failures/redrive", "", None), 405),
        (call("POST", "/api/v1/failures", "", None), 405),
        (call("GET", "/api/v1/failures/processor-failures", "", None), 404),
    ];
    for (request, status) in cases {
        let path = request.uri().to_string();
        let response = handle(&deps, request, now()).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{path}");
    }
    let mut unauthorized = sample_value("api-get-customer-unauthorized.json");
    unauthorized["rawPath"] = json!("/api/v1/failures");
    unauthorized["requestContext"]["http"]["path"] = json!("/api/v1/failures");
    assert_eq!(handle(&deps, request(&unauthorized), now()).await.status(), 401);
}

#[tokio::test]
async fn rebuilds_are_queued_for_the_rebuild_job() {
    let deps = deps().await;
    let urls = queue_urls();
    let one = handle(&deps, call("POST", &format!("/api/v1/customers/{CUSTOMER}/rebuild"), "", None), now()).await;
    assert_eq!(one.status(), 202);
    // Queued with the name of the key that asked (the demo key is named `demo`).
    assert_eq!(body(&one)["queued"], json!({"customer_id": CUSTOMER, "requested_by": "demo"}));
    let selection = json!({"event_type": "stripe.", "from": "2026-11-01T00:00:00Z"});
    let many = handle(&deps, call("POST", "/api/v1/rebuilds", "", Some(selection.clone())), now()).await;
    assert_eq!(many.status(), 202);
    let queued: Vec<Value> =
        deps.repair.queues.messages(&urls.rebuild).iter().map(|m| serde_json::from_str(&m.body).unwrap()).collect();
    let mut asked_selection = selection.clone();
    asked_selection["requested_by"] = json!("demo");
    assert_eq!(queued, [json!({"customer_id": CUSTOMER, "requested_by": "demo"}), asked_selection]);

    let unknown = "0b8c7d6e-5f4a-4b3c-9d2e-1f0a9b8c7d6e";
    let cases = [
        (call("POST", &format!("/api/v1/customers/{unknown}/rebuild"), "", None), 404),
        (call("GET", &format!("/api/v1/customers/{CUSTOMER}/rebuild"), "", None), 405),
        (call("POST", "/api/v1/rebuilds", "", Some(json!({}))), 400),
        (call("POST", "/api/v1/rebuilds", "", Some(json!({"customer_id": CUSTOMER}))), 400),
        (
            call(
                "POST",
                "/api/v1/rebuilds",
                "",
                Some(json!({"from": "2026-12-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"})),
            ),
            400,
        ),
        (call("POST", "/api/v1/rebuilds", "", Some(json!({"event_type": "stripe.", "every": true}))), 400),
        (call("POST", "/api/v1/rebuilds", "", Some(json!({"event_type": "stripe.", "requested_by": "someone"}))), 400),
        (call("GET", "/api/v1/rebuilds", "", None), 405),
    ];
    for (request, status) in cases {
        let path = request.uri().to_string();
        assert_eq!(handle(&deps, request, now()).await.status(), status, "{path}");
    }
    assert_eq!(deps.repair.queues.messages(&urls.rebuild).len(), 2, "nothing more queued");
}

#[tokio::test]
async fn replays_are_queued_for_the_replay_job_under_a_run_id() {
    let deps = deps().await;
    let urls = queue_urls();
    let asked = json!({"source": "stripe", "event_type": "stripe.invoice.", "from": "2026-11-01T00:00:00Z",
                       "to": "2026-11-08T00:00:00Z", "dry_run": true});
    let answer = handle(&deps, call("POST", "/api/v1/replays", "", Some(asked.clone())), now()).await;
    assert_eq!(answer.status(), 202);
    let queued = body(&answer)["queued"].clone();
    let run_id = queued["run_id"].as_str().unwrap().to_string();
    let mut expected = asked.clone();
    expected["run_id"] = json!(run_id);
    expected["requested_by"] = json!("demo");
    assert_eq!(queued, expected);
    let sent: Vec<Value> =
        deps.repair.queues.messages(&urls.replay).iter().map(|m| serde_json::from_str(&m.body).unwrap()).collect();
    assert_eq!(sent, [expected]);

    let range = |from: &str, to: &str| json!({"from": from, "to": to});
    let cases = [
        json!({}),
        range("2026-11-08T00:00:00Z", "2026-11-01T00:00:00Z"),
        range("2024-01-01T00:00:00Z", "2026-11-01T00:00:00Z"),
        json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "source": "Not A Source"}),
        json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "after": "raw/x"}),
        json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "run_id": "mine"}),
        json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "requested_by": "someone else"}),
        json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "everything": true}),
    ];
    for case in cases {
        let answer = handle(&deps, call("POST", "/api/v1/replays", "", Some(case.clone())), now()).await;
        assert_eq!(answer.status(), 400, "{case}");
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(handle(&deps, call("GET", "/api/v1/replays", "", None), now()).await.status(), 405);
    assert_eq!(deps.repair.queues.messages(&urls.replay).len(), 1, "nothing more queued");
}

#[tokio::test]
async fn runs_of_every_job_newest_first_filtered_by_job_and_time() {
    use tributary_domain::ports::SyncStore;
    use tributary_domain::sync::SyncRun;
    let deps = deps().await;
    for (job, at) in
        [("matomo", "2026-11-20T01:00:00Z"), ("redrive", "2026-11-21T01:00:00Z"), ("rebuild", "2026-11-22T01:00:00Z")]
    {
        let mut run = SyncRun::start(job, "scope", &SyncRun::new_id(), at.parse().unwrap(), None);
        run.finish(SyncOutcome::Completed, at.parse().unwrap());
        deps.repair.runs.put_run(&run).await.unwrap();
    }
    let all = body(&handle(&deps, call("GET", "/api/v1/runs", "", None), now()).await);
    let jobs: Vec<&str> = all["runs"].as_array().unwrap().iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["rebuild", "redrive", "matomo"], "newest first");
    let recent = body(&handle(&deps, call("GET", "/api/v1/runs", "since=2026-11-21T00:00:00Z", None), now()).await);
    assert_eq!(recent["runs"].as_array().unwrap().len(), 2);
    let pulls = body(&handle(&deps, call("GET", "/api/v1/runs", "kind=matomo", None), now()).await);
    assert_eq!(pulls["runs"].as_array().unwrap().len(), 1);
    for query in ["kind=nope", "since=yesterday", "limit=0", "limit=201", "job=matomo"] {
        assert_eq!(handle(&deps, call("GET", "/api/v1/runs", query, None), now()).await.status(), 400, "{query}");
    }
    assert_eq!(handle(&deps, call("POST", "/api/v1/runs", "", None), now()).await.status(), 405);
}

#[tokio::test]
async fn hourly_tallies_of_deliveries_pushes_and_commits_beside_the_runs() {
    use tributary_domain::ports::SyncStore;
    use tributary_domain::sync::{Tally, TallyKind};
    let deps = deps().await;
    // now() is 2026-11-23T09:00:05Z: the default window is the last 24 hours.
    let counted = [
        (TallyKind::Deliveries, "stripe", "accepted", "2026-11-23T08:10:00Z"),
        (TallyKind::Deliveries, "stripe", "accepted", "2026-11-23T08:50:00Z"),
        (TallyKind::Deliveries, "stripe", "unauthorized", "2026-11-23T09:00:01Z"),
        (TallyKind::Pushes, "crm", "gave_up", "2026-11-23T07:00:00Z"),
        (TallyKind::LakeCommits, "events", "committed", "2026-11-20T07:00:00Z"),
    ];
    for (kind, name, outcome, at) in counted {
        deps.repair.runs.add_tally(&Tally::one(kind, name, outcome, at.parse().unwrap())).await.unwrap();
    }
    let all = body(&handle(&deps, call("GET", "/api/v1/runs", "", None), now()).await);
    let rows: Vec<(String, String, String, u64)> = all["tallies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let text = |f: &str| t[f].as_str().unwrap().to_string();
            (text("hour"), text("kind"), format!("{}/{}", text("name"), text("outcome")), t["count"].as_u64().unwrap())
        })
        .collect();
    let row = |hour: &str, kind: &str, what: &str, count| (hour.to_string(), kind.to_string(), what.to_string(), count);
    assert_eq!(
        rows,
        [
            row("2026-11-23T09:00:00Z", "deliveries", "stripe/unauthorized", 1),
            row("2026-11-23T08:00:00Z", "deliveries", "stripe/accepted", 2),
            row("2026-11-23T07:00:00Z", "pushes", "crm/gave_up", 1),
        ],
        "newest hour first; the commit three days ago is outside the default day"
    );
    let older = body(
        &handle(&deps, call("GET", "/api/v1/runs", "kind=lake-commits&since=2026-11-19T00:00:00Z", None), now()).await,
    );
    assert_eq!(older["tallies"].as_array().unwrap().len(), 1);
    assert!(older["runs"].as_array().unwrap().is_empty(), "a tally kind reads no runs");
    let pushes = body(&handle(&deps, call("GET", "/api/v1/runs", "kind=pushes", None), now()).await);
    assert_eq!(pushes["tallies"].as_array().unwrap().len(), 1);
}

/// Every route of the template is in the OpenAPI document, and every operation of the document is
/// a route of the template.
#[test]
fn the_openapi_document_names_every_route_of_the_template_and_no_other() {
    use tributary_testing::openapi::{document, document_routes, template_routes};
    let template = tributary_testing::Template::workspace().unwrap();
    assert_eq!(document_routes(&document().unwrap()), template_routes(&template));
}

/// The document's `Lead` is the one list of the lead fields (names and which are required).
#[test]
fn the_openapi_lead_is_the_list_of_lead_fields() {
    use tributary_domain::lead::{LEAD_FIELDS, LEAD_REQUIRED_FIELDS};
    let document = tributary_testing::openapi::document().unwrap();
    let lead = &document["components"]["schemas"]["Lead"];
    let names: Vec<&str> = lead["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = LEAD_FIELDS.to_vec();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected);
    assert_eq!(lead["required"], json!(LEAD_REQUIRED_FIELDS));
}

/// The API's answers, errors included, conform to the document: each request is made against the
/// in-memory adapters and its answer checked against the operation's schema.
#[tokio::test]
async fn the_api_answers_as_its_openapi_document_says() {
    use tributary_domain::ports::SyncStore;
    use tributary_domain::sync::{SyncRun, Tally, TallyKind};
    use tributary_testing::openapi::{check_answer, document};
    let document = document().unwrap();
    let deps = deps().await;
    let mut run = SyncRun::start("redrive", "processor-dead-letters", "r-1", now(), None);
    run.requested_by = Some("demo".into());
    run.finish(SyncOutcome::Completed, now());
    deps.repair.runs.put_run(&run).await.unwrap();
    deps.repair.runs.add_tally(&Tally::one(TallyKind::Deliveries, "stripe", "accepted", now())).await.unwrap();
    let failed = r#"{"id":"evt_9","source":"stripe","type":"stripe.invoice.paid","occurred_at":"2026-11-23T09:00:00Z","received_at":"2026-11-23T09:00:00Z","payload":{}}"#;
    let history = tributary_domain::failures::FailureHistory::default();
    deps.repair
        .queues
        .send(&queue_urls().processor_dead_letters, failed, &[("reason", "no rule reads this payload".into())])
        .await
        .unwrap();
    let _ = history;

    let customer = format!("/api/v1/customers/{CUSTOMER}");
    let lead = json!({"id": "l-1", "nom": "Ada", "email": "ada@example.com", "statut": "nouveau", "date_prise_contact": "2026-11-01"});
    // (method, the document's path, the request's path, query, body, the status expected)
    type Case<'a> = (&'a str, &'a str, String, &'a str, Option<Value>, u16);
    let cases: Vec<Case> = vec![
        ("GET", "/api/v1/customers/{id}", customer.clone(), "", None, 200),
        (
            "GET",
            "/api/v1/customers/{id}",
            "/api/v1/customers/0b8c7d6e-5f4a-4b3c-9d2e-1f0a9b8c7d6e".into(),
            "",
            None,
            404,
        ),
        ("GET", "/api/v1/customers/{id}/audit", format!("{customer}/audit"), "limit=2", None, 200),
        ("GET", "/api/v1/customers/{id}/audit", format!("{customer}/audit"), "limit=0", None, 400),
        ("GET", "/api/v1/customers", "/api/v1/customers".into(), "email=ada.lovelace@example.com", None, 200),
        ("GET", "/api/v1/customers", "/api/v1/customers".into(), "", None, 400),
        ("POST", "/api/v1/customers/{id}/rebuild", format!("{customer}/rebuild"), "", None, 202),
        ("POST", "/api/v1/rebuilds", "/api/v1/rebuilds".into(), "", Some(json!({"event_type": "stripe."})), 202),
        ("POST", "/api/v1/rebuilds", "/api/v1/rebuilds".into(), "", Some(json!({})), 400),
        (
            "POST",
            "/api/v1/replays",
            "/api/v1/replays".into(),
            "",
            Some(json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"})),
            202,
        ),
        ("GET", "/api/v1/failures", "/api/v1/failures".into(), "", None, 200),
        ("GET", "/api/v1/failures", "/api/v1/failures".into(), "queue=nope", None, 400),
        (
            "POST",
            "/api/v1/failures/{queue}/redrive",
            "/api/v1/failures/processor-dead-letters/redrive".into(),
            "",
            Some(json!({"all": true})),
            200,
        ),
        (
            "POST",
            "/api/v1/failures/{queue}/redrive",
            "/api/v1/failures/nope/redrive".into(),
            "",
            Some(json!({"all": true})),
            404,
        ),
        ("GET", "/api/v1/runs", "/api/v1/runs".into(), "", None, 200),
        ("GET", "/api/v1/runs", "/api/v1/runs".into(), "kind=nope", None, 400),
        ("POST", "/api/v1/ingestion/leads", "/api/v1/ingestion/leads".into(), "", Some(json!([lead])), 202),
        ("POST", "/api/v1/ingestion/leads", "/api/v1/ingestion/leads".into(), "", Some(json!([{"id": "l-2"}])), 422),
        ("GET", "/api/v1/openapi.json", "/api/v1/openapi.json".into(), "", None, 200),
        ("GET", "/console", "/console".into(), "", None, 200),
        ("GET", "/console/{file}", "/console/console.js".into(), "", None, 200),
        ("GET", "/console/{file}", "/console/nothing.js".into(), "", None, 404),
    ];
    let mut problems = Vec::new();
    for (method, template, path, query, payload, expected) in cases {
        let response = handle(&deps, call(method, &path, query, payload), now()).await;
        let status = response.status().as_u16();
        if status != expected {
            problems.push(format!("{method} {path}?{query}: {status}, not {expected}"));
            continue;
        }
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if let Err(problem) = check_answer(&document, method, template, status, &content_type, response.body().as_ref())
        {
            problems.push(problem);
        }
    }
    // Without a key: the same 401 everywhere.
    let mut anonymous = call("GET", &customer, "", None);
    anonymous.headers_mut().remove("authorization");
    let response = handle(&deps, anonymous, now()).await;
    if let Err(problem) = check_answer(
        &document,
        "GET",
        "/api/v1/customers/{id}",
        401,
        "application/problem+json",
        response.body().as_ref(),
    ) {
        problems.push(problem);
    }
    assert!(problems.is_empty(), "answers the document does not describe:\n{}", problems.join("\n"));
}
