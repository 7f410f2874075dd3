use integrator::config::{IntegratorConfig, LoadedIntegrations};
use integrator::handler::{HandlerError, handle, handle_redriven};
use jiff::Timestamp;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use tributary_aws::{self as aws, SsmSecrets};
use tributary_domain::config::ProcessEnv;
use tributary_domain::runtime::is_sqs_batch;
use tributary_domain::secrets::Refreshing;
use tributary_domain::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        IntegratorConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let secrets = SsmSecrets::new(aws::ssm_client(&sdk));
    let integrations = LoadedIntegrations::load(&config, &secrets)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "loading the integrations failed"))?;
    tracing::info!(integrations = integrations.document.integrations.len(), "integrations loaded");
    let reload_config = config.clone();
    let integrations = Refreshing::new(integrations, Timestamp::now(), config.secrets_max_age, move || {
        let (config, secrets) = (reload_config.clone(), secrets.clone());
        async move { LoadedIntegrations::load(&config, &secrets).await.map_err(|e| e.to_string()) }
    });
    let deps = config.aws_deps(&sdk, integrations)?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let request_id = event.context.request_id;
        if is_sqs_batch(&event.payload) {
            let batch = serde_json::from_value(event.payload).map_err(HandlerError::Payload)?;
            let (summary, response) = handle_redriven(deps, batch, Timestamp::now()).await;
            summary.metrics().emit(&request_id);
            return serde_json::to_value(response).map_err(HandlerError::Payload);
        }
        let delivery = serde_json::from_value(event.payload).map_err(HandlerError::Payload)?;
        let summary = handle(deps, delivery, Timestamp::now()).await?;
        summary.metrics().emit(&request_id);
        serde_json::to_value(summary).map_err(HandlerError::Payload)
    }))
    .await
}
