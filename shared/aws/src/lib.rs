//! AWS adapters of the domain's ports (`tributary_domain::ports`): DynamoDB, S3, SNS, SQS and SSM.
//! With `tributary-testing`, the only crate that imports `aws_sdk_*`; the domain crate cannot.
//!
//! - `problem` (feature `http`): problem+json answers for the functions behind API Gateway.

mod customers;
mod dedup;
mod reports;
mod s3;
mod sns;
mod sqs;
mod ssm;
mod sync;

#[cfg(feature = "http")]
pub mod problem;

pub use customers::{APPLIED_MARKER_TTL, CUSTOMER_KEY_ATTRIBUTES, DynamoDbCustomers};
pub use dedup::{DEDUP_KEY_ATTRIBUTE, DEDUP_TTL_ATTRIBUTE, DynamoDbDedup};
pub use reports::S3SnsReportSink;
pub use s3::S3Archive;
pub use sns::{PUBLISH_BATCHES_IN_FLIGHT, SnsPublisher};
pub use sqs::{SqsDeadLetters, SqsQueues};
pub use ssm::SsmSecrets;
pub use sync::{DynamoDbSyncStore, SYNC_RUN_RETENTION_DAYS};

pub use aws_config::SdkConfig;

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// The SDK configuration from the Lambda environment (region, credentials, and `AWS_ENDPOINT_URL`
/// when set, which is how the local stack points every client at moto).
pub async fn load_sdk_config() -> SdkConfig {
    sdk_config_loader().load().await
}

/// Where every SDK configuration starts, the functions' and the tests' alike: the defaults with an
/// HTTPS client on rustls over ring. The SDK's default client brings aws-lc, a larger C library
/// (docs/performance.md#bootstrap-sizes). Unlike the default client, this one ignores `HTTPS_PROXY`
/// (no function runs behind a proxy) and offers no post-quantum key exchange (ring has none).
pub fn sdk_config_loader() -> ConfigLoader {
    let https = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    #[allow(clippy::disallowed_methods, reason = "the one place the SDK's defaults are taken, with our client")]
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}

pub fn dynamodb_client(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// S3 client; path-style addressing when the endpoint is overridden, since a local endpoint such as
/// `127.0.0.1:5000` has no per-bucket DNS names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

pub fn sns_client(config: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(config)
}

pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

pub fn ssm_client(config: &SdkConfig) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(config)
}

/// A DynamoDB string attribute.
pub(crate) fn string_attribute(value: impl Into<String>) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(value.into())
}

/// A DynamoDB number attribute.
pub(crate) fn number_attribute(value: i64) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::N(value.to_string())
}

/// The key of an item of a `pk`/`sk` table.
pub(crate) fn pk_sk(
    pk: String,
    sk: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    std::collections::HashMap::from([
        ("pk".to_string(), string_attribute(pk)),
        ("sk".to_string(), string_attribute(sk)),
    ])
}

/// The error's whole chain on one line: the SDK's `Display` alone says only "service error".
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
