//! The API's configuration, parsed once at cold start, and the API keys it loads.

use crate::failures::Repair;
use crate::handler::Deps;
use tributary_aws::{
    self as aws, DynamoDbCustomers, DynamoDbDedup, DynamoDbSyncStore, SdkConfig, SnsPublisher, SqsQueues,
};
use tributary_domain::api_key::{ApiKeys, LoadApiKeysError};
use tributary_domain::config::{ConfigError, Env};
use tributary_domain::failures::{QUEUE_URL_VARIABLES, QueueUrls};
use tributary_domain::ports::SecretSource;
use tributary_domain::secrets::Refreshing;

/// The API over AWS: what `main.rs` runs, and what the cross-function tests run over moto.
pub type AwsDeps = Deps<DynamoDbCustomers, SnsPublisher, DynamoDbDedup, SqsQueues, DynamoDbSyncStore>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub customer_table: String,
    /// Where ingested leads are published as `lead.upserted`.
    pub events_topic_arn: String,
    /// SSM parameter holding the SHA-256 hashes of the accepted API keys.
    pub api_key_hashes_param: String,
    /// How long the key hashes are used before they are read again.
    pub secrets_max_age: jiff::SignedDuration,
    /// The dedup table, where ingestion `Idempotency-Key`s are remembered.
    pub dedup_table: String,
    /// The failure queues and where their messages are re-driven.
    pub queues: QueueUrls,
    /// The ingestion table, where re-drives are recorded as runs.
    pub ingestion_table: String,
}

/// Every environment variable [`ApiConfig::from_env`] reads (the README's table).
pub const ENVIRONMENT: [&str; 18] = [
    "CUSTOMER_TABLE",
    "EVENTS_TOPIC_ARN",
    "API_KEY_HASHES_PARAM",
    tributary_domain::secrets::MAX_AGE_VARIABLE,
    "DEDUP_TABLE",
    "INGESTION_TABLE",
    QUEUE_URL_VARIABLES[0],
    QUEUE_URL_VARIABLES[1],
    QUEUE_URL_VARIABLES[2],
    QUEUE_URL_VARIABLES[3],
    QUEUE_URL_VARIABLES[4],
    QUEUE_URL_VARIABLES[5],
    QUEUE_URL_VARIABLES[6],
    QUEUE_URL_VARIABLES[7],
    QUEUE_URL_VARIABLES[8],
    QUEUE_URL_VARIABLES[9],
    QUEUE_URL_VARIABLES[10],
    QUEUE_URL_VARIABLES[11],
];

impl ApiConfig {
    /// The API's adapters, each client built once from `sdk`, answering to `keys`.
    pub fn aws_deps(&self, sdk: &SdkConfig, keys: Refreshing<ApiKeys>) -> AwsDeps {
        Deps {
            keys,
            store: DynamoDbCustomers::new(aws::dynamodb_client(sdk), &self.customer_table),
            events: SnsPublisher::new(aws::sns_client(sdk), &self.events_topic_arn),
            dedup: DynamoDbDedup::new(aws::dynamodb_client(sdk), &self.dedup_table),
            repair: Repair {
                queues: SqsQueues::new(aws::sqs_client(sdk)),
                urls: self.queues.clone(),
                runs: DynamoDbSyncStore::new(aws::dynamodb_client(sdk), &self.ingestion_table),
            },
        }
    }

    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            customer_table: env.required("CUSTOMER_TABLE")?,
            events_topic_arn: env.required("EVENTS_TOPIC_ARN")?,
            api_key_hashes_param: env.required("API_KEY_HASHES_PARAM")?,
            secrets_max_age: tributary_domain::secrets::max_age_from_env(env)?,
            dedup_table: env.required("DEDUP_TABLE")?,
            queues: QueueUrls::from_env(env)?,
            ingestion_table: env.required("INGESTION_TABLE")?,
        })
    }
}

/// The API keys of `/api/v1`, from the parameter the configuration names.
pub async fn load_api_keys(config: &ApiConfig, source: &impl SecretSource) -> Result<ApiKeys, LoadApiKeysError> {
    tributary_domain::api_key::load_api_keys(&config.api_key_hashes_param, source).await
}
