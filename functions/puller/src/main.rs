use jiff::Timestamp;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use puller::Budget;
use puller::config::PullerConfig;
use puller::handler::{Deps, HandlerError, handle};
use serde_json::Value;
use std::time::Duration;
use tributary_aws::{self as aws, DynamoDbSyncStore, SnsPublisher, SsmSecrets};
use tributary_domain::config::ProcessEnv;
use tributary_domain::ports::SecretSource;
use tributary_domain::runtime::invocation_deadline;
use tributary_domain::secrets::Refreshing;
use tributary_domain::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        PullerConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    // One client for both sources: rustls, a per-request timeout, redirects not followed.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tributary-puller/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (ssm, dynamodb, sns) = (aws::ssm_client(&sdk), aws::dynamodb_client(&sdk), aws::sns_client(&sdk));
    // The dependencies are re-built from the secrets once older than their maximum age, at the
    // start of an invocation (a run never changes keys half-way).
    let build = move |config: PullerConfig| {
        let (ssm, dynamodb, sns, http) = (ssm.clone(), dynamodb.clone(), sns.clone(), http.clone());
        async move {
            let secrets = SsmSecrets::new(ssm).get_secrets(&config.secret_names()).await.map_err(|e| e.to_string())?;
            Deps::from_config(
                &config,
                &secrets,
                http,
                DynamoDbSyncStore::new(dynamodb, &config.ingestion_table),
                SnsPublisher::new(sns, &config.events_topic_arn),
            )
            .map_err(|e| e.to_string())
        }
    };
    let first = build(config.clone()).await.inspect_err(|e| tracing::error!(error = %e, "loading secrets failed"))?;
    let reload_config = config.clone();
    let deps = Refreshing::new(first, Timestamp::now(), config.secrets_max_age, move || build(reload_config.clone()));
    let (deps, margin) = (&deps, config.deadline_margin);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = invocation_deadline(event.context.deadline, Timestamp::now());
        let deps = deps.current(Timestamp::now()).await;
        let report = handle(&deps, &event.payload, Budget { deadline, margin }).await?;
        report.metrics().emit(&event.context.request_id);
        Ok::<_, HandlerError>(report)
    }))
    .await
}
