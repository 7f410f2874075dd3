//! The API's configuration, parsed once at cold start, and the API keys it loads.

use tributary_shared::api_key::{ApiKeys, ApiKeysError};
use tributary_shared::config::{ConfigError, Env};
use tributary_shared::ports::{PortError, SecretSource};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub customer_table: String,
    /// Where ingested leads are published as `lead.upserted`.
    pub events_topic_arn: String,
    /// SSM parameter holding the SHA-256 hashes of the accepted API keys.
    pub api_key_hashes_param: String,
}

/// Every environment variable [`ApiConfig::from_env`] reads (the README's table).
pub const ENVIRONMENT: [&str; 3] = ["CUSTOMER_TABLE", "EVENTS_TOPIC_ARN", "API_KEY_HASHES_PARAM"];

impl ApiConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            customer_table: env.required("CUSTOMER_TABLE")?,
            events_topic_arn: env.required("EVENTS_TOPIC_ARN")?,
            api_key_hashes_param: env.required("API_KEY_HASHES_PARAM")?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("reading the API key hashes failed: {0}")]
    Secrets(#[from] PortError),
    #[error("parameter {param}: {source}")]
    Keys { param: String, source: ApiKeysError },
}

pub async fn load_api_keys(config: &ApiConfig, source: &impl SecretSource) -> Result<ApiKeys, StartupError> {
    let param = &config.api_key_hashes_param;
    let values = source.get_secrets(std::slice::from_ref(param)).await?;
    let text = values.get(param).map(String::as_str).unwrap_or_default();
    ApiKeys::parse(text).map_err(|source| StartupError::Keys { param: param.clone(), source })
}
