use jiff::{SignedDuration, Timestamp};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use tributary_aws::{self as aws, DynamoDbSyncStore, S3Archive, SnsPublisher, SqsQueues};
use tributary_domain::archive::ReplayRequest;
use tributary_domain::config::ProcessEnv;
use tributary_domain::runtime::{JobStep, invocation_deadline, run_job_invocation};
use tributary_domain::telemetry;
use webhook::config::ReplayConfig;
use webhook::replay::{Deps, JobError};

/// Kept before the invocation's deadline for the group in flight, the run record and the continuation.
const MARGIN: SignedDuration = SignedDuration::from_secs(20);

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        ReplayConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let deps = Deps {
        normaliser: config.normaliser(),
        archive: S3Archive::new(aws::s3_client(&sdk), &config.archive_bucket),
        publisher: SnsPublisher::new(aws::sns_client(&sdk), &config.events_topic_arn),
        runs: DynamoDbSyncStore::new(aws::dynamodb_client(&sdk), &config.ingestion_table),
    };
    let queues = SqsQueues::new(aws::sqs_client(&sdk));
    let (deps, queues, queue_url) = (&deps, &queues, config.replay_queue_url.as_str());
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now = Timestamp::now();
        let deadline = invocation_deadline(event.context.deadline, now).saturating_sub(MARGIN).unwrap_or(now);
        // An SQS batch (the API's requests, the job's continuations) or a request (answered with
        // its summary: a dry run's counts by type).
        run_job_invocation(event.payload, queues, queue_url, |request: ReplayRequest| async move {
            let summary = webhook::replay::run(deps, &request, || Timestamp::now() >= deadline, now).await?;
            tracing::info!(
                scope = request.scope(),
                run_id = summary.run_id,
                selected = summary.totals.selected(),
                published = summary.totals.published,
                refused = summary.totals.refused,
                more = summary.resume.is_some(),
                "replay"
            );
            Ok(JobStep { resume: summary.resume.clone(), later: None, summary })
        })
        .await
        .map_err(|error| Diagnostic {
            error_type: error.error_type(|e| matches!(e, JobError::Request(_))).into(),
            error_message: error.to_string(),
        })
    }))
    .await
}
