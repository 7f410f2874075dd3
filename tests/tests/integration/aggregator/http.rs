//! The aggregator's routes and monthly job with the samples of `events/`, over a local lake
//! written by the lake writer from its own sample batch, and in-memory sync runs.

use super::support;

use aggregator::alerts::AlertRules;
use aggregator::config::LakeQueryConfig;
use aggregator::engine::EngineLimits;
use aggregator::http::{Deps, handle};
use aggregator::jobs::{JobRequest, MonthlySettings, run_latest_dates_job, run_recorded_job};
use aggregator::reader::{KeptOutcome, LakeReader};
use jiff::Timestamp;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::sync::Mutex;
use support::temp_lake;
use tributary_domain::api_key::ApiKeys;
use tributary_domain::ports::{PortError, ReportSink, SyncStore};
use tributary_domain::sync::{SyncOutcome, SyncRun};
use tributary_testing::memory::InMemorySyncStore;
use tributary_testing::{demo_secrets, sample_event};

fn sample(name: &str) -> Value {
    serde_json::from_str(&sample_event(name).unwrap()).unwrap()
}

fn request(value: &Value) -> Request {
    lambda_http::request::from_str(&value.to_string()).unwrap()
}

fn with_query(name: &str, query: &str) -> Request {
    let mut value = sample(name);
    value["rawQueryString"] = json!(query);
    let pairs: serde_json::Map<String, Value> =
        query.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k.to_string(), json!(v))).collect();
    value["queryStringParameters"] = Value::Object(pairs);
    request(&value)
}

fn body(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

fn query_config(location: &tributary_lake::LakeLocation, dir: &std::path::Path) -> LakeQueryConfig {
    LakeQueryConfig {
        lake: location.clone(),
        cache_dir: dir.join("cache"),
        limits: EngineLimits { threads: 1, memory_limit_mb: 256 },
        alert_rules: AlertRules::default(),
    }
}

async fn deps() -> Deps<InMemorySyncStore> {
    let (location, dir) = temp_lake();
    // The lake writer's sample batch: two events (one lead), one refused record.
    let batch: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(sample("lake-writer-sqs-batch.json")).unwrap();
    let tables = lake_writer::Tables::open(&location).await.unwrap();
    let (response, summary) = lake_writer::write_batch(&tables, batch, Timestamp::now()).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!((summary.events, summary.leads), (2, 1));

    let sync = InMemorySyncStore::default();
    let mut run = SyncRun::start("notion", "db-1", "run-1", "2026-11-23T09:00:00Z".parse().unwrap(), None);
    run.records = 12;
    run.finish(SyncOutcome::Completed, "2026-11-23T09:00:04Z".parse().unwrap());
    sync.put_run(&run).await.unwrap();

    let hashes = demo_secrets().unwrap().into_iter().find(|(name, _)| name == "/tributary/api-key-hashes").unwrap().1;
    Deps {
        keys: tributary_domain::secrets::Refreshing::fixed(ApiKeys::parse(&hashes).unwrap()),
        reader: tokio::sync::Mutex::new(LakeReader::open(&query_config(&location, &dir)).unwrap()),
        sync,
        lake: location,
        rules: AlertRules::default(),
    }
}

fn now() -> Timestamp {
    "2026-11-23T09:00:05Z".parse().unwrap()
}

#[tokio::test]
async fn every_sample_route_answers_as_documented() {
    let deps = deps().await;
    let weeks = handle(&deps, request(&sample("aggregator-count-by-week.json")), now()).await;
    assert_eq!(weeks.status(), 200);
    assert_eq!(
        body(&weeks),
        json!([{"semaine": "2026-W45", "date_prise_contact": 1, "date_reponse_prospect": 1, "date_appel_booke": 0,
                "date_appel_propose": 1, "date_relance": 0}])
    );
    let months = handle(&deps, request(&sample("aggregator-count-by-month.json")), now()).await;
    assert_eq!(body(&months)[0]["mois"], "2026-11");

    let report = handle(&deps, request(&sample("aggregator-monthly-report.json")), now()).await;
    assert_eq!(report.status(), 200);
    let report = body(&report);
    assert_eq!(report["month"], "2026-11");
    assert_eq!(
        report["funnel"][0],
        json!({"step": "contact", "leads": 1, "rate_from_previous": null, "rate_from_contact": 1.0})
    );
    assert_eq!(report["by_statut"], json!([{"statut": "appel_propose", "leads": 1}]));

    let xlsx = handle(&deps, request(&sample("aggregator-monthly-report-xlsx.json")), now()).await;
    assert_eq!(xlsx.status(), 200);
    assert_eq!(xlsx.headers()["content-type"], aggregator::xlsx::XLSX_CONTENT_TYPE);
    assert!(xlsx.body().as_ref().starts_with(b"PK"), "an xlsx file is a zip");

    let alerts = handle(&deps, request(&sample("aggregator-alerts.json")), now()).await;
    assert_eq!(alerts.status(), 200);
    let alerts = body(&alerts);
    assert_eq!(alerts["as_of"], "2026-11-23");
    // Proposed on 2026-11-05 and never booked: 18 days > 5.
    assert_eq!(alerts["alerts"][0]["rule"], "proposed_call_not_booked");
    assert_eq!(alerts["alerts"][0]["lead_id"], "lead-0001");

    let status = handle(&deps, request(&sample("aggregator-ingestion-status.json")), now()).await;
    assert_eq!(status.status(), 200);
    let status = body(&status);
    assert_eq!(status["jobs"][1]["job"], "notion");
    assert_eq!(status["jobs"][1]["runs"][0]["records"], 12);
    let tables = status["tables"].as_array().unwrap();
    assert_eq!(
        tables[0],
        json!({"table": "events", "exists": true, "version": 1, "rows": 2, "files": 1,
                                 "last_commit_at": tables[0]["last_commit_at"]})
    );
    assert_eq!(tables[1]["rows"], 1);
    assert_eq!(tables[2], json!({"table": "matomo_visits", "exists": false}));
}

#[tokio::test]
async fn bad_parameters_and_missing_keys_are_refused_clearly() {
    let deps = deps().await;
    let bad_date = handle(&deps, request(&sample("aggregator-count-bad-date.json")), now()).await;
    assert_eq!(bad_date.status(), 400);
    assert_eq!(body(&bad_date)["field"], "from");
    for (sample_name, query, field) in [
        ("aggregator-count-by-week.json", "tz=Mars/Olympus", "tz"),
        ("aggregator-count-by-week.json", "tz=UTC';DROP_TABLE_leads;--", "tz"),
        ("aggregator-count-by-week.json", "from=2026-02-01&to=2026-01-01", "from"),
        ("aggregator-count-by-month.json", "to=2026-02-30", "to"),
        ("aggregator-monthly-report.json", "month=2026-13", "month"),
        ("aggregator-monthly-report.json", "month=2026-11&format=pdf", "format"),
        ("aggregator-alerts.json", "format=csv", "format"),
    ] {
        let response = handle(&deps, with_query(sample_name, query), now()).await;
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(body(&response)["field"], field, "{query}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    let mut anonymous = sample("aggregator-alerts.json");
    anonymous["headers"].as_object_mut().unwrap().remove("authorization");
    assert_eq!(handle(&deps, request(&anonymous), now()).await.status(), 401);
}

/// Every answer of the aggregator's routes, errors included, conforms to the OpenAPI document.
#[tokio::test]
async fn the_answers_conform_to_the_openapi_document() {
    use tributary_testing::openapi::{check_answer, document};
    let document = document().unwrap();
    let deps = deps().await;
    let requests = [
        request(&sample("aggregator-count-by-week.json")),
        with_query("aggregator-count-by-week.json", "format=svg"),
        request(&sample("aggregator-count-by-month.json")),
        request(&sample("aggregator-monthly-report.json")),
        request(&sample("aggregator-monthly-report-xlsx.json")),
        request(&sample("aggregator-alerts.json")),
        with_query("aggregator-alerts.json", "format=xlsx"),
        request(&sample("aggregator-ingestion-status.json")),
        request(&sample("aggregator-count-bad-date.json")),
        with_query("aggregator-monthly-report.json", "month=2026-13"),
    ];
    let mut problems = Vec::new();
    for request in requests {
        let (method, path) = (request.method().to_string(), request.uri().path().to_string());
        let response = handle(&deps, request, now()).await;
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        if let Err(problem) =
            check_answer(&document, &method, &path, response.status().as_u16(), &content_type, response.body().as_ref())
        {
            problems.push(problem);
        }
    }
    assert!(problems.is_empty(), "answers the document does not describe:\n{}", problems.join("\n"));
}

#[derive(Default)]
struct MemorySink {
    files: Mutex<Vec<(String, Vec<u8>)>>,
    notes: Mutex<Vec<(String, String)>>,
}

impl ReportSink for MemorySink {
    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &str) -> Result<String, PortError> {
        self.files.lock().unwrap().push((key.to_string(), bytes));
        Ok(format!("https://reports.example/{key}?signed"))
    }
    async fn notify(&self, subject: &str, message: &str) -> Result<(), PortError> {
        self.notes.lock().unwrap().push((subject.to_string(), message.to_string()));
        Ok(())
    }
}

#[tokio::test]
async fn the_monthly_job_writes_both_workbooks_and_notifies_their_links() {
    let deps = deps().await;
    let sink = MemorySink::default();
    let settings = MonthlySettings { zone: "UTC", rules: AlertRules::default() };
    let request = JobRequest::from_event(sample("aggregator-jobs-monthly.json")).unwrap();
    let mut reader = deps.reader.lock().await;
    let runs = InMemorySyncStore::default();
    let now: jiff::Timestamp = "2026-12-01T06:00:00Z".parse().unwrap();
    let output = run_recorded_job(request, &mut reader, &sink, &runs, &settings, now).await.unwrap();
    assert_eq!(output.month, "2026-11");
    assert_eq!(output.report_key, "reports/2026-11/monthly-report-2026-11.xlsx");
    assert_eq!(output.alerts_key, "alerts/2026-12-01/alerts-2026-12-01.xlsx");
    {
        let files = sink.files.lock().unwrap();
        assert_eq!(files.len(), 2);
        assert!(files.iter().all(|(_, bytes)| bytes.starts_with(b"PK")));
    }
    let notes = sink.notes.lock().unwrap().clone();
    assert_eq!(notes[0].0, "Tributary report 2026-11");
    assert!(
        notes[0].1.contains("https://reports.example/reports/2026-11/monthly-report-2026-11.xlsx?signed"),
        "{}",
        notes[0].1
    );
    assert!(notes[0].1.contains("Leads first contacted in 2026-11: 1"), "{}", notes[0].1);

    for (event, error) in [
        (json!({"job": "weekly"}), "unknown job \"weekly\" (known: monthly-report, latest-dates)"),
        (json!({"job": "monthly-report", "month": "11/2026"}), "month \"11/2026\" is not YYYY-MM"),
    ] {
        let request = JobRequest::from_event(event).unwrap();
        let failed = run_recorded_job(request, &mut reader, &sink, &runs, &settings, now).await.unwrap_err();
        assert_eq!(failed.to_string(), error);
        assert_eq!(failed.kind(), "BadJobRequest");
    }
    // Each run of the monthly job is in the history: the month written with its alerts, then the
    // month refused; the request for another job is no run of this one.
    let recorded = runs.runs();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(recorded.iter().all(|run| run.job == "monthly-report"));
    assert_eq!((recorded[0].scope.as_str(), recorded[0].records), ("2026-11", output.alerts as u64));
    assert_eq!(recorded[0].outcome, tributary_domain::sync::SyncOutcome::Completed);
    assert_eq!(recorded[1].scope, "11/2026");
    assert!(
        matches!(&recorded[1].outcome, tributary_domain::sync::SyncOutcome::Failed { message, .. } if message == "the month is not YYYY-MM"),
        "{:?}",
        recorded[1].outcome
    );
    assert!(JobRequest::from_event(json!({"job": "monthly-report", "extra": 1})).is_err());

    // The hourly latest-dates job, from its sample: written, then up to date; each run recorded.
    let request = JobRequest::from_event(sample("aggregator-jobs-latest-dates.json")).unwrap();
    let kept = run_latest_dates_job(request, &mut reader, &runs, now).await.unwrap();
    let KeptOutcome::Written { version, leads, .. } = kept else { panic!("{kept:?}") };
    assert!(leads > 0);
    let again = JobRequest::from_event(json!({"job": "latest-dates"})).unwrap();
    assert_eq!(run_latest_dates_job(again, &mut reader, &runs, now).await.unwrap(), KeptOutcome::UpToDate { version });
    let with_month = JobRequest::from_event(json!({"job": "latest-dates", "month": "2026-11"})).unwrap();
    let refused = run_latest_dates_job(with_month, &mut reader, &runs, now).await.unwrap_err();
    assert_eq!(refused.kind(), "BadJobRequest");
    let recorded: Vec<(String, u64)> =
        runs.runs().into_iter().filter(|run| run.job == "latest-dates").map(|run| (run.scope, run.records)).collect();
    assert_eq!(recorded, [("leads".to_string(), leads), ("leads".to_string(), 0)]);
}

/// A 40 000-character name (more than an Excel cell holds; leads written before names were
/// limited can hold one) once made the alerts workbook fail with 503: the cell is cut with a
/// visible marker and the workbook is produced.
#[test]
fn a_name_longer_than_an_excel_cell_is_cut_not_a_failed_workbook() {
    let alert = aggregator::alerts::Alert {
        lead_id: "lead-long".into(),
        nom: "N".repeat(40_000),
        statut: Some("appel_propose".into()),
        rule: "proposed_call_not_booked".into(),
        detail: "proposed 18 days ago, never booked".into(),
        dates: Default::default(),
    };
    let bytes = aggregator::xlsx::alerts_workbook(&[alert]).unwrap();
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    use calamine::Reader;
    let sheet = workbook.worksheet_range("Alerts").unwrap();
    let name = sheet.rows().nth(1).unwrap()[1].to_string();
    assert_eq!(name.chars().count(), aggregator::xlsx::MAX_CELL_CHARS);
    assert!(name.starts_with("NNN") && name.ends_with("[…cut: 40000 characters]"));
}
