//! The rebuild job's configuration, parsed once at cold start.

use crate::job::Deps;
use tributary_aws::{self as aws, DynamoDbCustomers, DynamoDbSyncStore, SdkConfig, SnsPublisher};
use tributary_domain::config::{ConfigError, Env};
use tributary_domain::customer::rules::{RULES_ENVIRONMENT, RulesConfig};
use tributary_lake::LakeLocation;

#[derive(Debug, Clone)]
pub struct RebuildConfig {
    pub customer_table: String,
    pub updates_topic_arn: String,
    /// Where runs are recorded.
    pub ingestion_table: String,
    /// Where the job sends its own continuation when the deadline comes first.
    pub rebuild_queue_url: String,
    /// The processor's rules, configured as the processor's (the template gives both the same).
    pub rules: RulesConfig,
    pub lake: LakeLocation,
}

/// Every environment variable [`RebuildConfig::from_env`] reads.
pub const ENVIRONMENT: [&str; 8] = [
    "CUSTOMER_TABLE",
    "UPDATES_TOPIC_ARN",
    "INGESTION_TABLE",
    "REBUILD_QUEUE_URL",
    RULES_ENVIRONMENT[0],
    RULES_ENVIRONMENT[1],
    "LAKE_BUCKET",
    "LAKE_PREFIX",
];

/// The job over AWS: what `main.rs` runs, and what the cross-function tests run over moto.
pub type AwsDeps = Deps<DynamoDbCustomers, SnsPublisher, DynamoDbSyncStore>;

impl RebuildConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            customer_table: env.required("CUSTOMER_TABLE")?,
            updates_topic_arn: env.required("UPDATES_TOPIC_ARN")?,
            ingestion_table: env.required("INGESTION_TABLE")?,
            rebuild_queue_url: env.required("REBUILD_QUEUE_URL")?,
            rules: RulesConfig::from_env(env)?,
            lake: LakeLocation::from_env(env)?,
        })
    }

    /// The job's adapters, each client built once from `sdk`.
    pub fn aws_deps(&self, sdk: &SdkConfig) -> AwsDeps {
        Deps {
            registry: self.rules.registry(),
            store: DynamoDbCustomers::new(aws::dynamodb_client(sdk), &self.customer_table),
            updates: SnsPublisher::new(aws::sns_client(sdk), &self.updates_topic_arn),
            runs: DynamoDbSyncStore::new(aws::dynamodb_client(sdk), &self.ingestion_table),
            lake: self.lake.clone(),
        }
    }
}
