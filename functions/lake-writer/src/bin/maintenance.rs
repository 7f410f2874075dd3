use lake_writer::maintenance::{MaintenanceConfig, maintain};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use tributary_shared::config::ProcessEnv;
use tributary_shared::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        MaintenanceConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let config = &config;
    // The schedule's input carries nothing: every run maintains every table.
    run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        maintain(&config.lake, config.policy, jiff::Timestamp::now()).await
    }))
    .await
}
