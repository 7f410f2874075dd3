use jiff::Timestamp;
use lake_writer::{Tables, WriterConfig, handle};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use tributary_aws::{self as aws, DynamoDbSyncStore};
use tributary_domain::config::ProcessEnv;
use tributary_domain::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        WriterConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let tables =
        Tables::open(&config.lake).await.inspect_err(|e| tracing::error!(error = %e, "opening the lake failed"))?;
    let sdk = aws::load_sdk_config().await;
    let tallies = DynamoDbSyncStore::new(aws::dynamodb_client(&sdk), &config.ingestion_table);
    let (tables, tallies) = (&tables, &tallies);
    run(service_fn(move |event: LambdaEvent<_>| async move {
        handle(tables, tallies, event.payload, Timestamp::now(), &event.context.request_id).await
    }))
    .await
}
