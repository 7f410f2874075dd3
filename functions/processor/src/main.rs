use jiff::Timestamp;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use processor::config::ProcessorConfig;
use processor::handler::{HandlerError, handle, handle_redriven};
use tributary_aws as aws;
use tributary_domain::config::ProcessEnv;
use tributary_domain::runtime::is_sqs_batch;
use tributary_domain::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        ProcessorConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let deps = config.aws_deps(&sdk);
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
