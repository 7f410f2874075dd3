use lake_writer::maintenance::{MaintenanceConfig, maintain_recorded};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use tributary_aws::{self as aws, DynamoDbSyncStore};
use tributary_domain::config::ProcessEnv;
use tributary_domain::runtime::invocation_deadline;
use tributary_domain::telemetry;

/// Time kept back from the invocation's 900 s for the group being rewritten, then each table's log
/// expiry (a listing of its log, the deletes, a reload from the checkpoint) and vacuum.
const COMPACTION_MARGIN_SECONDS: i64 = 300;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        MaintenanceConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let runs = &DynamoDbSyncStore::new(aws::dynamodb_client(&sdk), &config.ingestion_table);
    let config = &config;
    // The schedule's input carries nothing: every run maintains every table.
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        // Compaction stops starting new groups early enough for a group in progress and the
        // three log expiries and vacuums to finish before Lambda ends the invocation.
        let deadline = invocation_deadline(event.context.deadline, jiff::Timestamp::now());
        let compaction_deadline = deadline - jiff::SignedDuration::from_secs(COMPACTION_MARGIN_SECONDS);
        maintain_recorded(&config.lake, config.policy, runs, jiff::Timestamp::now(), compaction_deadline).await
    }))
    .await
}
