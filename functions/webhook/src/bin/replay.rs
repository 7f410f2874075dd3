use jiff::{SignedDuration, Timestamp};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use tributary_aws::{self as aws, DynamoDbSyncStore, S3Archive, SnsPublisher, SqsQueues};
use tributary_domain::archive::ReplayRequest;
use tributary_domain::config::ProcessEnv;
use tributary_domain::ports::MessageQueues;
use tributary_domain::runtime::{invocation_deadline, job_requests};
use tributary_domain::telemetry;
use webhook::config::ReplayConfig;
use webhook::replay::{Deps, JobError, ReplaySummary};

/// Kept before the invocation's deadline for the group in flight, the run record and the continuation.
const MARGIN: SignedDuration = SignedDuration::from_secs(20);

#[derive(Debug, thiserror::Error)]
enum HandlerError {
    #[error("the invocation is neither a replay request nor an SQS batch of them: {0}")]
    Payload(serde_json::Error),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("sending the continuation failed: {0}")]
    Continuation(tributary_domain::ports::PortError),
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Payload(_) | HandlerError::Job(JobError::Request(_)) => "InvalidRequest",
            HandlerError::Job(_) => "BackingServiceFailed",
            HandlerError::Continuation(_) => "ContinuationFailed",
        };
        Self { error_type: error_type.into(), error_message: error.to_string() }
    }
}

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
        let invocation = job_requests::<ReplayRequest>(event.payload).map_err(HandlerError::Payload)?;
        let mut summaries: Vec<ReplaySummary> = Vec::new();
        for request in &invocation.requests {
            let summary = webhook::replay::run(deps, request, || Timestamp::now() >= deadline, now).await?;
            tracing::info!(
                scope = request.scope(),
                run_id = summary.run_id,
                selected = summary.totals.selected(),
                published = summary.totals.published,
                refused = summary.totals.refused,
                more = summary.resume.is_some(),
                "replay"
            );
            if let Some(resume) = &summary.resume {
                let body = serde_json::to_string(resume).map_err(HandlerError::Payload)?;
                queues.send(queue_url, &body, &[]).await.map_err(HandlerError::Continuation)?;
            }
            summaries.push(summary);
        }
        match (invocation.direct, summaries.pop()) {
            (true, Some(summary)) => serde_json::to_value(summary).map_err(HandlerError::Payload),
            (_, last) => serde_json::to_value(summaries.into_iter().chain(last).collect::<Vec<_>>())
                .map_err(HandlerError::Payload),
        }
    }))
    .await
}
