use jiff::{SignedDuration, Timestamp};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use rebuild::config::RebuildConfig;
use rebuild::job::{JobError, RebuildSummary};
use serde_json::Value;
use tributary_aws::{self as aws, SqsQueues};
use tributary_domain::config::ProcessEnv;
use tributary_domain::customer::rebuild::RebuildRequest;
use tributary_domain::ports::MessageQueues;
use tributary_domain::runtime::{invocation_deadline, job_requests};
use tributary_domain::telemetry;

/// Kept before the invocation's deadline for recording the run and sending the continuation.
const MARGIN: SignedDuration = SignedDuration::from_secs(20);
/// How long a request waits when another rebuild is running.
const DEFERRAL: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
enum HandlerError {
    #[error("the invocation is neither a rebuild request nor an SQS batch of them: {0}")]
    Payload(serde_json::Error),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("sending the continuation (or the deferred request) failed: {0}")]
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
        RebuildConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let deps = config.aws_deps(&sdk);
    let queues = SqsQueues::new(aws::sqs_client(&sdk));
    let (deps, queues, queue_url) = (&deps, &queues, config.rebuild_queue_url.as_str());
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let now = Timestamp::now();
        let deadline = invocation_deadline(event.context.deadline, now).saturating_sub(MARGIN).unwrap_or(now);
        // An SQS batch (the API's requests, the job's continuations; one at a time) or a request
        // (answered with its summary).
        let invocation = job_requests::<RebuildRequest>(event.payload).map_err(HandlerError::Payload)?;
        let mut summaries: Vec<RebuildSummary> = Vec::new();
        for request in &invocation.requests {
            let summary = rebuild::job::run(deps, request, || Timestamp::now() >= deadline, now).await?;
            tracing::info!(
                scope = request.scope(),
                customers = summary.customers,
                rebuilt = summary.rebuilt,
                unchanged = summary.unchanged,
                left = summary.left.len(),
                more = summary.resume.is_some(),
                "rebuild"
            );
            // Another rebuild is running: this request waits its turn.
            if summary.deferred {
                let body = serde_json::to_string(request).map_err(HandlerError::Payload)?;
                queues.send_later(queue_url, &body, DEFERRAL).await.map_err(HandlerError::Continuation)?;
            }
            // The next invocation goes on from the checkpoint.
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
