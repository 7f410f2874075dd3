use jiff::Timestamp;
use lake_writer::{Tables, handle};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use tributary_domain::config::ProcessEnv;
use tributary_domain::telemetry;
use tributary_lake::LakeLocation;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let location =
        LakeLocation::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let tables =
        Tables::open(&location).await.inspect_err(|e| tracing::error!(error = %e, "opening the lake failed"))?;
    let tables = &tables;
    run(service_fn(move |event: LambdaEvent<_>| async move {
        handle(tables, event.payload, Timestamp::now(), &event.context.request_id).await
    }))
    .await
}
