use jiff::Timestamp;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use processor::config::ProcessorConfig;
use processor::handler::{HandlerError, handle};
use tributary_aws as aws;
use tributary_domain::config::ProcessEnv;
use tributary_domain::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        ProcessorConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let deps = config.aws_deps(&sdk);
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<_>| async move {
        let summary = handle(deps, event.payload, Timestamp::now()).await?;
        summary.metrics().emit(&event.context.request_id);
        Ok::<_, HandlerError>(summary)
    }))
    .await
}
