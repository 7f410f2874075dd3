use aggregator::config::JobsConfig;
use aggregator::jobs::{JobRequest, MonthlySettings, run_latest_dates_job, run_recorded_job};
use aggregator::reader::KeptOutcome;
use aggregator::reader::LakeReader;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use tokio::sync::Mutex;
use tributary_aws as aws;
use tributary_aws::{DynamoDbSyncStore, S3SnsReportSink};
use tributary_domain::config::ProcessEnv;
use tributary_domain::sync::LATEST_DATES_JOB;
use tributary_domain::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = JobsConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let reader =
        LakeReader::open(&config.query).inspect_err(|e| tracing::error!(error = %e, "DuckDB set-up failed"))?;
    let reader = &Mutex::new(reader);
    let sink = &S3SnsReportSink {
        s3: aws::s3_client(&sdk),
        sns: aws::sns_client(&sdk),
        bucket: config.reports_bucket.clone(),
        topic_arn: config.reports_topic_arn.clone(),
        link_validity: config.link_validity,
    };
    let settings = &MonthlySettings { zone: &config.report_time_zone, rules: config.query.alert_rules };
    let runs = &DynamoDbSyncStore::new(aws::dynamodb_client(&sdk), &config.ingestion_table);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let now = jiff::Timestamp::now();
        let mut reader = reader.lock().await;
        let outcome = match JobRequest::from_event(event.payload) {
            Ok(request) if request.job == LATEST_DATES_JOB => {
                run_latest_dates_job(request, &mut reader, runs, now).await.map(|kept| match kept {
                    KeptOutcome::NoTable => serde_json::json!({ "latest_dates": "no leads table yet" }),
                    KeptOutcome::UpToDate { version } => serde_json::json!({ "latest_dates": "up to date", "version": version }),
                    KeptOutcome::Written { version, path, leads, bytes } => serde_json::json!({ "latest_dates": "written", "version": version, "path": path, "leads": leads, "bytes": bytes }),
                })
            }
            Ok(request) => run_recorded_job(request, &mut reader, sink, runs, settings, now).await.map(|output| {
                serde_json::json!({ "month": output.month, "report": output.report_key, "alerts": output.alerts_key, "alert_count": output.alerts })
            }),
            Err(error) => Err(error),
        };
        outcome.map_err(|e| {
            tracing::error!(error = %e, "job failed");
            Diagnostic { error_type: e.kind().into(), error_message: e.to_string() }
        })
    }))
    .await
}
