//! The processor's configuration, parsed once at cold start.

use crate::handler::Deps;
use crate::process::Processor;
use tributary_aws::{self as aws, DynamoDbCustomers, SdkConfig, SnsPublisher, SqsDeadLetters};
use tributary_domain::config::{ConfigError, Env};
use tributary_domain::customer::rules::{Registry, RulesConfig};

/// The processor over AWS: what `main.rs` runs, and what the cross-function tests run over moto.
pub type AwsDeps = Deps<DynamoDbCustomers, SnsPublisher, SqsDeadLetters>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    pub customer_table: String,
    pub updates_topic_arn: String,
    pub dead_letter_queue_url: String,
    /// The rules and their configuration (attribute sources, Matomo user ids).
    pub rules: RulesConfig,
    /// Attempts of one event's read-apply-commit cycle when other writers get there first.
    pub commit_attempts: u32,
}

/// Every environment variable [`ProcessorConfig::from_env`] reads (the README's table).
pub const ENVIRONMENT: [&str; 6] = [
    "CUSTOMER_TABLE",
    "UPDATES_TOPIC_ARN",
    "DEAD_LETTER_QUEUE_URL",
    "ATTRIBUTE_SOURCES",
    "COMMIT_ATTEMPTS",
    "MATOMO_USER_ID_AS_EMAIL",
];

impl ProcessorConfig {
    /// The processor's adapters, each client built once from `sdk`.
    pub fn aws_deps(&self, sdk: &SdkConfig) -> AwsDeps {
        Deps {
            processor: Processor {
                registry: self.registry(),
                store: DynamoDbCustomers::new(aws::dynamodb_client(sdk), &self.customer_table),
                updates: SnsPublisher::new(aws::sns_client(sdk), &self.updates_topic_arn),
                commit_attempts: self.commit_attempts,
            },
            dead_letters: SqsDeadLetters::new(aws::sqs_client(sdk), &self.dead_letter_queue_url),
        }
    }

    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let commit_attempts: u32 = env.parsed_or("COMMIT_ATTEMPTS", 8)?;
        if !(1..=50).contains(&commit_attempts) {
            return Err(ConfigError::invalid("COMMIT_ATTEMPTS", "must be 1 to 50"));
        }
        Ok(Self {
            customer_table: env.required("CUSTOMER_TABLE")?,
            updates_topic_arn: env.required("UPDATES_TOPIC_ARN")?,
            dead_letter_queue_url: env.required("DEAD_LETTER_QUEUE_URL")?,
            rules: RulesConfig::from_env(env)?,
            commit_attempts,
        })
    }

    /// The update rules as configured.
    pub fn registry(&self) -> Registry {
        self.rules.registry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sources_are_listed_and_checked() {
        let mut env: HashMap<String, String> = [
            ("CUSTOMER_TABLE", "customers"),
            ("UPDATES_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:updates"),
            ("DEAD_LETTER_QUEUE_URL", "http://localhost/q"),
            ("ATTRIBUTE_SOURCES", "make, acme"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = ProcessorConfig::from_env(&env).unwrap();
        assert_eq!(config.rules.attribute_sources, ["make", "acme"]);
        assert_eq!(config.commit_attempts, 8);
        assert!(!config.rules.matomo_user_id_as_email, "off unless configured");
        env.insert("MATOMO_USER_ID_AS_EMAIL".into(), "yes".into());
        assert!(ProcessorConfig::from_env(&env).unwrap_err().to_string().contains("MATOMO_USER_ID_AS_EMAIL"));
        env.insert("MATOMO_USER_ID_AS_EMAIL".into(), "true".into());
        assert!(ProcessorConfig::from_env(&env).unwrap().rules.matomo_user_id_as_email);
        env.insert("ATTRIBUTE_SOURCES".into(), "Make".into());
        assert!(ProcessorConfig::from_env(&env).unwrap_err().to_string().contains("ATTRIBUTE_SOURCES"));
        env.insert("ATTRIBUTE_SOURCES".into(), "make".into());
        env.remove("CUSTOMER_TABLE");
        assert_eq!(
            ProcessorConfig::from_env(&env).unwrap_err().to_string(),
            "missing environment variable CUSTOMER_TABLE"
        );
    }
}
