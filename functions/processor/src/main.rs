use jiff::Timestamp;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use processor::config::ProcessorConfig;
use processor::handler::{Deps, HandlerError, handle};
use processor::process::Processor;
use tributary_aws::{self as aws, DynamoDbCustomers, SnsPublisher, SqsDeadLetters};
use tributary_domain::config::ProcessEnv;
use tributary_domain::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        ProcessorConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let deps = Deps {
        processor: Processor {
            registry: config.registry(),
            store: DynamoDbCustomers::new(aws::dynamodb_client(&sdk), &config.customer_table),
            updates: SnsPublisher::new(aws::sns_client(&sdk), &config.updates_topic_arn),
            commit_attempts: config.commit_attempts,
        },
        dead_letters: SqsDeadLetters::new(aws::sqs_client(&sdk), &config.dead_letter_queue_url),
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<_>| async move {
        let summary = handle(deps, event.payload, Timestamp::now()).await?;
        summary.metrics().emit(&event.context.request_id);
        Ok::<_, HandlerError>(summary)
    }))
    .await
}
