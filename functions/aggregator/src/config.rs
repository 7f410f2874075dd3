//! The aggregator's configuration, parsed once at cold start.

use crate::alerts::AlertRules;
use crate::engine::EngineLimits;
use std::path::PathBuf;
use tributary_domain::config::{ConfigError, Env};
use tributary_lake::LakeLocation;

/// What both binaries (HTTP and scheduled jobs) read.
#[derive(Debug, Clone)]
pub struct LakeQueryConfig {
    pub lake: LakeLocation,
    /// Where downloaded lake files are cached (Lambda: under /tmp).
    pub cache_dir: PathBuf,
    pub limits: EngineLimits,
    pub alert_rules: AlertRules,
}

impl LakeQueryConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        // Lambda sets AWS_LAMBDA_FUNCTION_MEMORY_SIZE; the DuckDB limits follow unless overridden.
        let memory: u32 = env.parsed_or("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1024)?;
        let sized = EngineLimits::for_lambda_memory(memory);
        let limits = EngineLimits {
            threads: env.parsed_or("DUCKDB_THREADS", sized.threads)?,
            memory_limit_mb: env.parsed_or("DUCKDB_MEMORY_LIMIT_MB", sized.memory_limit_mb)?,
        };
        if limits.threads == 0 {
            return Err(ConfigError::invalid("DUCKDB_THREADS", "must be at least 1"));
        }
        let defaults = AlertRules::default();
        Ok(Self {
            lake: LakeLocation::from_env(env)?,
            // `/tmp/lake-cache` on Lambda (no TMPDIR there); a local process gets its own /tmp.
            cache_dir: env
                .optional("LAKE_CACHE_DIR")
                .map_or_else(|| std::env::temp_dir().join("lake-cache"), PathBuf::from),
            limits,
            alert_rules: AlertRules {
                no_answer_days: env.parsed_or("ALERT_NO_ANSWER_DAYS", defaults.no_answer_days)?,
                unbooked_call_days: env.parsed_or("ALERT_UNBOOKED_CALL_DAYS", defaults.unbooked_call_days)?,
                no_follow_up_days: env.parsed_or("ALERT_NO_FOLLOW_UP_DAYS", defaults.no_follow_up_days)?,
            },
        })
    }
}

/// The HTTP function's configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub query: LakeQueryConfig,
    /// The puller's sync runs, for `/api/v1/ingestion/status`.
    pub ingestion_table: String,
    /// SSM parameter holding the SHA-256 hashes of the accepted API keys.
    pub api_key_hashes_param: String,
    /// How long the key hashes are used before they are read again.
    pub secrets_max_age: jiff::SignedDuration,
}

impl HttpConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            query: LakeQueryConfig::from_env(env)?,
            ingestion_table: env.required("INGESTION_TABLE")?,
            api_key_hashes_param: env.required("API_KEY_HASHES_PARAM")?,
            secrets_max_age: tributary_domain::secrets::max_age_from_env(env)?,
        })
    }
}

/// The scheduled jobs' configuration.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub query: LakeQueryConfig,
    /// Where the xlsx files are written (`reports/<month>/…`, `alerts/<day>.xlsx`).
    pub reports_bucket: String,
    /// The `reports` topic; its e-mail subscribers get the links.
    pub reports_topic_arn: String,
    /// The zone the monthly report's buckets are computed in (`REPORT_TIME_ZONE`, default UTC).
    pub report_time_zone: String,
    /// How long the download links stay valid (at most 7 days, and never longer than the
    /// credentials that sign them).
    pub link_validity: std::time::Duration,
    /// Where each run of the job is recorded (`GET /api/v1/runs`).
    pub ingestion_table: String,
}

/// Every environment variable the two binaries read (the README's table).
pub const ENVIRONMENT: [&str; 17] = [
    "LAKE_BUCKET",
    "LAKE_PREFIX",
    "LAKE_CACHE_DIR",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "DUCKDB_THREADS",
    "DUCKDB_MEMORY_LIMIT_MB",
    "ALERT_NO_ANSWER_DAYS",
    "ALERT_UNBOOKED_CALL_DAYS",
    "ALERT_NO_FOLLOW_UP_DAYS",
    "INGESTION_TABLE",
    "API_KEY_HASHES_PARAM",
    "SECRETS_MAX_AGE_SECONDS",
    "REPORTS_BUCKET",
    "REPORTS_TOPIC_ARN",
    "REPORT_TIME_ZONE",
    "REPORT_LINK_HOURS",
    "AWS_ENDPOINT_URL",
];

impl JobsConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let hours: u64 = env.parsed_or("REPORT_LINK_HOURS", 12)?;
        if !(1..=168).contains(&hours) {
            return Err(ConfigError::invalid("REPORT_LINK_HOURS", "must be between 1 and 168 (7 days)"));
        }
        Ok(Self {
            query: LakeQueryConfig::from_env(env)?,
            reports_bucket: env.required("REPORTS_BUCKET")?,
            reports_topic_arn: env.required("REPORTS_TOPIC_ARN")?,
            report_time_zone: env.optional("REPORT_TIME_ZONE").unwrap_or_else(|| "UTC".into()),
            link_validity: std::time::Duration::from_secs(hours * 3600),
            ingestion_table: env.required("INGESTION_TABLE")?,
        })
    }
}
