use jiff::{SignedDuration, Timestamp};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, run, service_fn};
use rebuild::config::RebuildConfig;
use rebuild::job::JobError;
use serde_json::Value;
use tributary_aws::{self as aws, SqsQueues};
use tributary_domain::config::ProcessEnv;
use tributary_domain::customer::rebuild::RebuildRequest;
use tributary_domain::runtime::{JobStep, invocation_deadline, run_job_invocation};
use tributary_domain::telemetry;

/// Kept before the invocation's deadline for recording the run and sending the continuation.
const MARGIN: SignedDuration = SignedDuration::from_secs(20);
/// How long a request waits when another rebuild is running.
const DEFERRAL: std::time::Duration = std::time::Duration::from_secs(60);

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
        run_job_invocation(event.payload, queues, queue_url, |request: RebuildRequest| async move {
            let summary = rebuild::job::run(deps, &request, || Timestamp::now() >= deadline, now).await?;
            tracing::info!(
                scope = request.scope(),
                customers = summary.customers,
                rebuilt = summary.rebuilt,
                unchanged = summary.unchanged,
                left = summary.left.len(),
                more = summary.resume.is_some(),
                "rebuild"
            );
            // Another rebuild is running: this request waits its turn; the next invocation goes on
            // from the checkpoint.
            let later = summary.deferred.then_some((request, DEFERRAL));
            Ok(JobStep { resume: summary.resume.clone(), later, summary })
        })
        .await
        .map_err(|error| Diagnostic {
            error_type: error.error_type(|e| matches!(e, JobError::Request(_))).into(),
            error_message: error.to_string(),
        })
    }))
    .await
}
