use jiff::Timestamp;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use puller::Budget;
use puller::config::PullerConfig;
use puller::handler::{Deps, HandlerError, handle};
use serde_json::Value;
use std::time::Duration;
use tributary_shared::aws::{self, DynamoDbIngestion, SnsPublisher, SsmSecrets};
use tributary_shared::config::ProcessEnv;
use tributary_shared::ports::SecretSource;
use tributary_shared::runtime::invocation_deadline;
use tributary_shared::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        PullerConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let secrets = SsmSecrets::new(aws::ssm_client(&sdk))
        .get_secrets(&config.secret_names())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "loading secrets failed"))?;
    // One client for both sources: rustls, a per-request timeout, redirects not followed.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tributary-puller/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let deps = Deps::from_config(
        &config,
        &secrets,
        http,
        DynamoDbIngestion::new(aws::dynamodb_client(&sdk), &config.ingestion_table),
        SnsPublisher::new(aws::sns_client(&sdk), &config.events_topic_arn),
    )
    .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let (deps, margin) = (&deps, config.deadline_margin);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = invocation_deadline(event.context.deadline, Timestamp::now());
        let report = handle(deps, &event.payload, Budget { deadline, margin }).await?;
        report.metrics().emit(&event.context.request_id);
        Ok::<_, HandlerError>(report)
    }))
    .await
}
