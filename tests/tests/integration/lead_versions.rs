//! A lead's versions through the ingestion API, the processor and the lake writer, on moto: the
//! customer record and the lake agree on the lead's latest version, whatever its history.

use aws_lambda_events::event::sns::SnsEvent;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tributary_aws::{self as aws, SsmSecrets};
use tributary_domain::lead::LEAD_FIELDS;
use tributary_lake::deltalake::arrow::array::{Array, AsArray};
use tributary_lake::schema::LEADS;
use tributary_lake::{LakeLocation, LakeTable};
use tributary_testing::{LocalAws, Probe, put_demo_secrets, sample_event, sqs_event};

fn sample(name: &str) -> Value {
    serde_json::from_str(&sample_event(name).unwrap()).unwrap()
}

fn ingest(leads: &Value, idempotency_key: Option<&str>) -> lambda_http::Request {
    let mut request = sample("api-ingest-leads.json");
    request["body"] = json!(leads.to_string());
    if let Some(key) = idempotency_key {
        request["headers"]["idempotency-key"] = json!(key);
    }
    lambda_http::request::from_str(&request.to_string()).unwrap()
}

/// The lake's latest row of each lead, by the aggregator's definition: greatest `_occurred_at`,
/// then greatest `_event_id`.
async fn lake_latest(location: &LakeLocation) -> Vec<serde_json::Map<String, Value>> {
    let table = LakeTable::open_existing(location, &LEADS).await.unwrap().unwrap();
    let mut latest: std::collections::BTreeMap<String, (i64, String, serde_json::Map<String, Value>)> =
        Default::default();
    for (_, batches) in table.read_all().await.unwrap() {
        for batch in batches {
            let occurred = batch
                .column_by_name("_occurred_at")
                .unwrap()
                .as_primitive::<tributary_lake::deltalake::arrow::datatypes::TimestampMicrosecondType>();
            for row in 0..batch.num_rows() {
                let text = |name: &str| {
                    let column = batch.column_by_name(name).unwrap().as_string::<i32>();
                    if column.is_null(row) { Value::Null } else { json!(column.value(row)) }
                };
                let mut lead = serde_json::Map::new();
                for field in LEAD_FIELDS {
                    lead.insert(field.to_string(), text(field));
                }
                let key = (occurred.value(row), text("_event_id").as_str().unwrap().to_string());
                let id = lead["id"].as_str().unwrap().to_string();
                let newer = latest.get(&id).is_none_or(|(at, event, _)| (key.0, &key.1) > (*at, event));
                if newer {
                    latest.insert(id, (key.0, key.1, lead));
                }
            }
        }
    }
    latest.into_values().map(|(_, _, lead)| lead).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_posted_as_a_b_then_a_again_ends_on_a_in_the_record_and_the_lake() {
    let local = LocalAws::start(&[]).await.unwrap();
    put_demo_secrets(&local.sdk).await.unwrap();
    let api_config = api::config::ApiConfig::from_env(&local.stack.function_env("ApiFunction").unwrap()).unwrap();
    let events = Probe::subscribe(&local.sdk, &api_config.events_topic_arn, "lead-versions").await.unwrap();
    let keys = api::config::load_api_keys(&api_config, &SsmSecrets::new(aws::ssm_client(&local.sdk))).await.unwrap();
    let api = api_config.aws_deps(&local.sdk, tributary_domain::secrets::Refreshing::fixed(keys));

    let a = json!([{"id": "L-77", "nom": "Ada", "email": "ada@example.com", "statut": "contacte",
        "date_prise_contact": "2026-11-02"}]);
    let b = json!([{"id": "L-77", "nom": "Ada", "email": "ada@example.com", "statut": "appel_propose",
        "date_prise_contact": "2026-11-02", "date_appel_propose": "2026-11-05"}]);
    let start: Timestamp = "2026-11-23T09:00:00Z".parse().unwrap();
    let at = |seconds: i64| start.checked_add(SignedDuration::from_secs(seconds)).unwrap();
    // A, B, A; then the last request retried with its Idempotency-Key, and B's request retried late
    // (after the newer A): both answered as duplicates, nothing published again.
    for (leads, key, when, status) in [
        (&a, None, 0, 202),
        (&b, Some("req-2"), 10, 202),
        (&a, Some("req-3"), 20, 202),
        (&a, Some("req-3"), 30, 200),
        (&b, Some("req-2"), 35, 200),
    ] {
        let response = api::handler::handle(&api, ingest(leads, key), at(when)).await;
        assert_eq!(response.status(), status, "{key:?} at {when} s");
    }
    // A key reused for another batch is a conflict.
    assert_eq!(api::handler::handle(&api, ingest(&a, Some("req-2")), at(36)).await.status(), 409);
    let published = events.drain().await.unwrap();
    let ids: std::collections::HashSet<String> = published
        .iter()
        .map(|m| serde_json::from_str::<Value>(&m.message).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!((published.len(), ids.len()), (3, 3), "A, B and A again are three versions, published once each");

    // The processor applies every message (the retry is a duplicate) ...
    let config =
        processor::config::ProcessorConfig::from_env(&local.stack.function_env("ProcessorFunction").unwrap()).unwrap();
    let processor = config.aws_deps(&local.sdk);
    let mut applied = 0;
    for message in &published {
        let mut delivery: SnsEvent = serde_json::from_value(sample("processor-lead-upserted.json")).unwrap();
        delivery.records[0].sns.message = message.message.clone();
        let summary = processor::handler::handle(&processor, delivery, at(40)).await.unwrap();
        assert_eq!(summary.dead_lettered, 0, "{summary:?}");
        applied += summary.applied;
    }
    assert_eq!(applied, 3);

    // ... and the lake writer writes them, as its queue would hand them over.
    let mut writer_env = local.stack.function_env("LakeWriterFunction").unwrap();
    writer_env.insert("AWS_ENDPOINT_URL".into(), local.moto.endpoint());
    writer_env.insert("AWS_REGION".into(), "us-east-1".into());
    writer_env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
    writer_env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
    let location = LakeLocation::from_env(&writer_env).unwrap();
    let tables = lake_writer::Tables::open(&location).await.unwrap();
    let batch = sqs_event(published.iter().map(|message| message.message.clone()));
    let (response, _) = lake_writer::write_batch(&tables, batch, at(40)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());

    // The customer API and the lake's latest row agree: A.
    let mut request = sample("api-find-customer-by-email.json");
    request["rawQueryString"] = json!("email=ada@example.com");
    request["queryStringParameters"] = json!({"email": "ada@example.com"});
    let found = api::handler::handle(&api, lambda_http::request::from_str(&request.to_string()).unwrap(), at(50)).await;
    assert_eq!(found.status(), 200);
    let customer: Value = serde_json::from_slice(found.body().as_ref()).unwrap();
    let latest = lake_latest(&location).await;
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0]["statut"], "contacte");
    assert_eq!(latest[0]["date_appel_propose"], Value::Null);
    // Every lead field of the record equals the lake's latest row (B's proposed call cleared).
    let profile = &customer["profile"];
    for field in [
        "statut",
        "date_prise_contact",
        "date_reponse_prospect",
        "date_appel_propose",
        "date_appel_booke",
        "date_relance",
    ] {
        assert_eq!(profile["lead"][field], latest[0][field], "lead.{field}: {customer}");
    }
    for field in ["nom", "email", "telephone"] {
        assert_eq!(profile["identity"][field], latest[0][field], "identity.{field}: {customer}");
    }
}
