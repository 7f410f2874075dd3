use jiff::Timestamp;
use lambda_http::{Error, run, service_fn};
use std::convert::Infallible;
use tributary_aws::{self as aws, DynamoDbDedup, DynamoDbSyncStore, S3Archive, SnsPublisher, SsmSecrets};
use tributary_domain::config::ProcessEnv;
use tributary_domain::secrets::Refreshing;
use tributary_domain::telemetry;
use webhook::config::{Receiver, WebhookConfig};
use webhook::handler::{Deps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        WebhookConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let receiver = Receiver::load(&config, &SsmSecrets::new(aws::ssm_client(&sdk)))
        .await
        .inspect_err(|e| tracing::error!(error = %e, "loading secrets failed"))?;
    let (reload_config, ssm) = (config.clone(), aws::ssm_client(&sdk));
    let receiver = Refreshing::new(receiver, Timestamp::now(), config.secrets_max_age, move || {
        let (config, secrets) = (reload_config.clone(), SsmSecrets::new(ssm.clone()));
        async move { Receiver::load(&config, &secrets).await.map_err(|e| e.to_string()) }
    });
    let deps = Deps {
        receiver,
        dedup: DynamoDbDedup::new(aws::dynamodb_client(&sdk), &config.dedup_table),
        archive: S3Archive::new(aws::s3_client(&sdk), &config.archive_bucket),
        publisher: SnsPublisher::new(aws::sns_client(&sdk), &config.events_topic_arn),
        tallies: DynamoDbSyncStore::new(aws::dynamodb_client(&sdk), &config.ingestion_table),
    };
    let deps = &deps;
    run(service_fn(move |request| async move { Ok::<_, Infallible>(handle(deps, request, Timestamp::now()).await) }))
        .await
}
