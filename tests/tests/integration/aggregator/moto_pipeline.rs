//! Against moto, provisioned from template.yaml: leads posted to the ingestion API go to the
//! events topic, through the lake writer's queue (raw delivery) to the Delta tables on S3, and the
//! aggregator's answers equal a reference computed in plain Rust over the same leads — with
//! several versions of a lead and a batch delivered twice.

use super::support;

use aggregator::config::{HttpConfig, LakeQueryConfig};
use aggregator::engine::LatestDatesStart;
use aggregator::http::Deps;
use aggregator::reader::{KeptOutcome, LakeReader};
use aggregator::sql::Bucket;
use aggregator::stats::{CountQuery, count_dates};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use std::collections::HashMap;
use support::{Version, iso_week, latest, month_of, reference_counts};
use tributary_aws::{self as aws, DynamoDbSyncStore, SsmSecrets};
use tributary_domain::api_key::load_api_keys;
use tributary_domain::lead::Lead;
use tributary_lake::schema::LEADS;
use tributary_lake::{CompactionPolicy, LakeLocation, LakeTable};
use tributary_testing::{LocalAws, put_demo_secrets, sample_event};

fn sample(name: &str) -> Value {
    serde_json::from_str(&sample_event(name).unwrap()).unwrap()
}

fn function_env(local: &LocalAws, function: &str) -> HashMap<String, String> {
    let mut env = local.stack.function_env(function).unwrap();
    env.insert("AWS_ENDPOINT_URL".into(), local.moto.endpoint());
    env.insert("AWS_REGION".into(), "us-east-1".into());
    env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
    env
}

fn body(response: &lambda_http::Response<lambda_http::Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

/// Round `round` of the leads: each lead fills one more date per round.
fn round_of(round: usize, leads: usize) -> Vec<Lead> {
    (0..leads)
        .map(|n| {
            let day = |offset: usize| Some(format!("2025-12-{:02}", 1 + (n * 3 + offset) % 28));
            let mut lead = Lead { id: format!("lead-{n:03}"), nom: format!("Nom {n}"), ..Lead::default() };
            lead.date_prise_contact =
                if n % 4 == 0 { Some(format!("2026-01-0{}T23:30:00Z", 1 + n % 4)) } else { day(0) };
            if round >= 1 {
                lead.date_appel_propose = day(2);
            }
            if round >= 2 && n % 2 == 0 {
                lead.date_appel_booke = day(5);
            }
            lead.statut = Some(["contacte", "appel_propose", "appel_booke"][round].to_string());
            lead
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_leads_reach_the_lake_and_the_statistics_equal_the_reference() {
    let local = LocalAws::start(&[]).await.unwrap();
    put_demo_secrets(&local.sdk).await.unwrap();

    // The ingestion API, as deployed.
    let api_config = api::config::ApiConfig::from_env(&function_env(&local, "ApiFunction")).unwrap();
    let ssm = SsmSecrets::new(aws::ssm_client(&local.sdk));
    let keys = api::config::load_api_keys(&api_config, &ssm).await.unwrap();
    let api = api_config.aws_deps(&local.sdk, tributary_domain::secrets::Refreshing::fixed(keys));
    let start: Timestamp = "2026-01-10T08:00:00Z".parse().unwrap();
    let mut versions = Vec::new();
    // Three rounds of 40 leads, then the last round posted again with its Idempotency-Key (a client
    // retry): answered as a duplicate, nothing published again.
    for (post, round) in [0, 1, 2, 2].into_iter().enumerate() {
        let at = start.checked_add(jiff::SignedDuration::from_hours(if post == 3 { 2 } else { post as i64 })).unwrap();
        let leads = round_of(round, 40);
        let mut request = sample("api-ingest-leads.json");
        request["body"] = json!(serde_json::to_string(&leads).unwrap());
        let key = format!("round-{round}");
        request["headers"]["idempotency-key"] = json!(key);
        let response =
            api::handler::handle(&api, lambda_http::request::from_str(&request.to_string()).unwrap(), at).await;
        if post == 3 {
            assert_eq!(response.status(), 200, "{:?}", body(&response));
            assert_eq!(body(&response)["duplicate"], true);
            continue;
        }
        assert_eq!(response.status(), 202, "{:?}", body(&response));
        versions.extend(leads.into_iter().map(|lead| Version {
            event_id: lead.version_id_in_request(Some(&key), at),
            lead,
            occurred_at: at,
        }));
    }

    // The lake writer, fed from its queue the way the SQS event source would.
    let lake = LakeLocation::from_env(&function_env(&local, "LakeWriterFunction")).unwrap();
    let tables = lake_writer::Tables::open(&lake).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&local.sdk);
    let queue_url = local.stack.physical("LakeWriterQueue").unwrap().url.clone().unwrap();
    let mut written = 0;
    loop {
        let received = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        let mut batch = SqsEvent::default();
        for message in &messages {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id.clone();
            record.body = message.body.clone();
            batch.records.push(record);
        }
        let (response, summary) = lake_writer::write_batch(&tables, batch, Timestamp::now()).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        written += summary.leads;
        for message in messages {
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(written, 120, "every published lead version; the retried round was not published again");

    // The aggregator, as deployed.
    let mut env = function_env(&local, "AggregatorFunction");
    let cache = std::env::temp_dir().join(format!("tributary-aggregator-cache-{}", uuid::Uuid::new_v4()));
    env.insert("LAKE_CACHE_DIR".into(), cache.display().to_string());
    let config = HttpConfig::from_env(&env).unwrap();
    let aggregator = Deps {
        keys: tributary_domain::secrets::Refreshing::fixed(
            load_api_keys(&config.api_key_hashes_param, &ssm).await.unwrap(),
        ),
        reader: tokio::sync::Mutex::new(LakeReader::open(&config.query).unwrap()),
        sync: DynamoDbSyncStore::new(aws::dynamodb_client(&local.sdk), &config.ingestion_table),
        lake: config.query.lake.clone(),
        rules: config.query.alert_rules,
    };
    let latest = latest(&versions);
    assert_eq!(latest.len(), 40);
    for (name, zone, bucket, key) in [
        ("aggregator-count-by-week.json", "UTC", iso_week as fn(_) -> _, "semaine"),
        ("aggregator-count-by-week.json", "Europe/Paris", iso_week, "semaine"),
        ("aggregator-count-by-month.json", "UTC", month_of, "mois"),
    ] {
        let mut request = sample(name);
        request["rawQueryString"] = json!(format!("tz={zone}"));
        request["queryStringParameters"] = json!({"tz": zone});
        let response = aggregator::http::handle(
            &aggregator,
            lambda_http::request::from_str(&request.to_string()).unwrap(),
            Timestamp::now(),
        )
        .await;
        assert_eq!(response.status(), 200);
        let expected: Vec<Value> = reference_counts(&latest, &TimeZone::get(zone).unwrap(), bucket, None)
            .into_iter()
            .map(|(label, counts)| {
                let mut row = serde_json::Map::new();
                row.insert(key.into(), json!(label));
                for (column, count) in support::DATE_COLUMNS.iter().zip(counts) {
                    row.insert(column.to_string(), json!(count));
                }
                Value::Object(row)
            })
            .collect();
        assert_eq!(body(&response), Value::Array(expected), "{name} {zone}");
    }
    let status = aggregator::http::handle(
        &aggregator,
        lambda_http::request::from_str(&sample("aggregator-ingestion-status.json").to_string()).unwrap(),
        Timestamp::now(),
    )
    .await;
    let status = body(&status);
    assert_eq!(status["tables"][1]["table"], "leads");
    assert_eq!(status["tables"][1]["rows"], 120);
    // The downloaded files are in the cache, under the table's name.
    assert!(cache.join("leads").read_dir().unwrap().next().is_some());

    // The hourly latest-dates job, as deployed, keeps the latest dates on S3 beside the table; a
    // cold reader with a cache of its own starts from them and, for the counts, downloads them
    // and no data file. The report's whole rows then fetch every file.
    let reader_in = |function: &str, name: &str| {
        let mut env = function_env(&local, function);
        let dir = std::env::temp_dir().join(format!("tributary-{name}-{}", uuid::Uuid::new_v4()));
        env.insert("LAKE_CACHE_DIR".into(), dir.display().to_string());
        (LakeReader::open(&LakeQueryConfig::from_env(&env).unwrap()).unwrap(), dir)
    };
    let (mut job, _) = reader_in("AggregatorJobsFunction", "latest-dates-job");
    let KeptOutcome::Written { version, leads, .. } = job.keep_latest_dates().await.unwrap() else {
        panic!("nothing kept")
    };
    assert_eq!(leads, 40);
    assert_eq!(job.keep_latest_dates().await.unwrap(), KeptOutcome::UpToDate { version });
    let (mut cold, cold_cache) = reader_in("AggregatorFunction", "cold-reader");
    let engine = cold.latest_dates().await.unwrap();
    assert_eq!(engine.latest_dates_start(), Some(LatestDatesStart::Kept { version, added_files: 0 }));
    let query = CountQuery { bucket: Bucket::Week, zone: "Europe/Paris".into(), from: None, to: None };
    let counts: Vec<(String, [i64; 5])> =
        count_dates(engine, &query).unwrap().into_iter().map(|row| (row.bucket, row.counts)).collect();
    assert_eq!(counts, reference_counts(&latest, &TimeZone::get("Europe/Paris").unwrap(), iso_week, None));
    let cached = |dir: &std::path::Path| -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    pending.push(entry.path());
                } else {
                    found.push(entry.path().strip_prefix(&cold_cache).unwrap().display().to_string());
                }
            }
        }
        found
    };
    let downloaded = cached(&cold_cache.join("leads"));
    assert_eq!(downloaded, [format!("leads/_derived/latest_dates/v{version:020}.parquet")], "{downloaded:?}");
    cold.latest().await.unwrap();
    assert!(cached(&cold_cache.join("leads")).len() > 1, "the report's rows need the data files");

    // After a compaction and the job's next run, the same (warm) reader starts again from the kept
    // file for the counts: the compacted file is not downloaded, the replaced ones leave the cache.
    let mut table = LakeTable::open_existing(&lake, &LEADS).await.unwrap().unwrap();
    table.compact(CompactionPolicy::default(), Timestamp::MAX).await.unwrap();
    let KeptOutcome::Written { version: compacted, .. } = job.keep_latest_dates().await.unwrap() else {
        panic!("the compacted snapshot was not kept")
    };
    let engine = cold.latest_dates().await.unwrap();
    assert_eq!(engine.latest_dates_start(), Some(LatestDatesStart::Kept { version: compacted, added_files: 0 }));
    let counts: Vec<(String, [i64; 5])> =
        count_dates(engine, &query).unwrap().into_iter().map(|row| (row.bucket, row.counts)).collect();
    assert_eq!(counts, reference_counts(&latest, &TimeZone::get("Europe/Paris").unwrap(), iso_week, None));
    let downloaded = cached(&cold_cache.join("leads"));
    assert_eq!(downloaded, [format!("leads/_derived/latest_dates/v{compacted:020}.parquet")], "{downloaded:?}");
}
