use jiff::Timestamp;
use lake_writer::{Tables, WriterConfig, WriterError, handle};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use tokio::sync::OnceCell;
use tributary_aws::{self as aws, DynamoDbSyncStore};
use tributary_domain::config::ProcessEnv;
use tributary_domain::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        WriterConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let tallies = DynamoDbSyncStore::new(aws::dynamodb_client(&sdk), &config.ingestion_table);
    // The tables are opened by the first batch, not at init: reading their logs is S3 round trips
    // that grow with the log, and a failure then fails that batch (SQS delivers it again) rather
    // than the cold start. Once open, they serve every later batch of the instance.
    let tables: OnceCell<Tables> = OnceCell::new();
    let (tables, tallies, lake) = (&tables, &tallies, &config.lake);
    run(service_fn(move |event: LambdaEvent<_>| async move {
        let tables = tables
            .get_or_try_init(|| Tables::open(lake))
            .await
            .inspect_err(|e| tracing::error!(error = %e, "opening the lake failed"))
            .map_err(WriterError::from)?;
        handle(tables, tallies, event.payload, Timestamp::now(), &event.context.request_id).await
    }))
    .await
}
