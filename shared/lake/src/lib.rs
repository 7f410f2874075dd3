//! The analytical lake: Delta tables on S3 (or a local directory), written with delta-rs.
//!
//! - [`LakeLocation`]: where the tables live (`s3://<bucket>/<prefix><table>`) and how to reach it.
//! - [`schema`]: every table's columns and partitioning, declared once ([`schema::MATOMO_VISITS`],
//!   [`schema::EVENTS`], [`schema::LEADS`]).
//! - [`LakeTable`]: open-or-create a table, read an application's committed position, append
//!   record batches in one commit together with that position.
//! - [`events`]: the `events` table read back as canonical events.
//! - [`DerivedFile`]: files computed from a table's snapshot and kept beside it (`_derived/`), such
//!   as the latest version of each lead.
//!
//! Exactly-once appends use Delta's application transactions (`txn` actions): a writer names
//! itself (`app_id`) and numbers its writes (`version`); the number is committed in the same log
//! entry as the data, so the data and the writer's checkpoint can never disagree, whatever the
//! point at which a run dies. Commits to S3 are safe against concurrent writers because delta-rs
//! writes each log entry with a conditional put (`If-None-Match: *`): a writer that loses the race
//! retries on the next version, and nothing is overwritten.

mod derived;
pub mod events;
mod maintenance;
pub mod schema;
mod table;

pub use derived::{DERIVED_DIR, DerivedFile};
pub use maintenance::{CompactionPolicy, CompactionSummary, VacuumSummary};
pub use table::{AppPosition, AppendOutcome, LakeFile, LakeTable};

/// delta-rs and its Arrow, for the crates that build batches (one version in the workspace).
pub use deltalake;

use deltalake::DeltaTableError;
use std::collections::HashMap;
use tributary_domain::config::{ConfigError, Env};
use url::Url;

/// delta-rs writes a Parquet checkpoint after every this-many commits (after versions 19, 39, …),
/// so opening a table reads one checkpoint plus fewer than this many JSON entries.
pub const CHECKPOINT_INTERVAL: u32 = 20;

/// Days since 1970-01-01, Arrow's `Date32`.
pub fn date32(day: jiff::civil::Date) -> i32 {
    // The span between two civil dates in days always fits: jiff dates span ±9999 years.
    let epoch = jiff::civil::Date::constant(1970, 1, 1);
    (day - epoch).get_days()
}

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("Delta table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: DeltaTableError,
    },
    #[error("Delta table {table}: {reason}")]
    Unsupported { table: String, reason: String },
    #[error("building a batch for {table}: {reason}")]
    Batch { table: String, reason: String },
    #[error("lake location {0} is not a valid URL")]
    Location(String),
}

/// Where the lake's tables live, with the object-store options delta-rs needs to reach them.
#[derive(Debug, Clone)]
pub struct LakeLocation {
    /// Ends with `/`; a table's URL is the root joined with its name.
    root: Url,
    storage_options: HashMap<String, String>,
}

impl LakeLocation {
    /// `s3://<bucket>/<prefix>`; credentials and region come from the Lambda environment.
    pub fn s3(bucket: &str, prefix: &str) -> Result<Self, LakeError> {
        let prefix = prefix.trim_matches('/');
        let text = if prefix.is_empty() { format!("s3://{bucket}/") } else { format!("s3://{bucket}/{prefix}/") };
        let root = Url::parse(&text).map_err(|_| LakeError::Location(text.clone()))?;
        Ok(Self { root, storage_options: HashMap::new() })
    }

    /// A directory on local disk (benchmarks, fixtures written by other Delta implementations).
    pub fn local_dir(path: &std::path::Path) -> Result<Self, LakeError> {
        let shown = path.display().to_string();
        let mut root = Url::from_directory_path(path).map_err(|_| LakeError::Location(shown))?;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(Self { root, storage_options: HashMap::new() })
    }

    /// An S3-compatible endpoint other than AWS (moto in tests and the local stack), with static
    /// credentials; plain HTTP is allowed only for such an override.
    pub fn with_endpoint(mut self, endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> Self {
        let options = [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_REGION", region),
            ("AWS_ACCESS_KEY_ID", access_key),
            ("AWS_SECRET_ACCESS_KEY", secret_key),
            ("AWS_ALLOW_HTTP", if endpoint.starts_with("http://") { "true" } else { "false" }),
        ];
        self.storage_options.extend(options.into_iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// `LAKE_BUCKET` (required) and `LAKE_PREFIX` (optional). When `AWS_ENDPOINT_URL` is set (the
    /// local stack) the tables are reached there too, with the environment's static credentials.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let bucket = env.required("LAKE_BUCKET")?;
        let prefix = env.optional("LAKE_PREFIX").unwrap_or_default();
        let location = Self::s3(&bucket, &prefix).map_err(|e| ConfigError::invalid("LAKE_BUCKET", e))?;
        Ok(match env.optional("AWS_ENDPOINT_URL") {
            None => location,
            Some(endpoint) => location.with_endpoint(
                &endpoint,
                &env.optional("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
                &env.optional("AWS_ACCESS_KEY_ID").unwrap_or_default(),
                &env.optional("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
            ),
        })
    }

    pub fn table_url(&self, table: &str) -> Result<Url, LakeError> {
        self.root.join(&format!("{table}/")).map_err(|_| LakeError::Location(format!("{}{table}", self.root)))
    }

    /// The lake's directory when it is on local disk.
    pub fn local_root(&self) -> Option<std::path::PathBuf> {
        (self.root.scheme() == "file").then(|| self.root.to_file_path().ok()).flatten()
    }

    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.storage_options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_days_from_the_epoch() {
        assert_eq!(date32(jiff::civil::date(1970, 1, 1)), 0);
        assert_eq!(date32(jiff::civil::date(2025, 1, 1)), 20089);
    }

    #[test]
    fn tables_live_under_the_bucket_prefix() {
        let location = LakeLocation::s3("lake-bucket", "/tributary/").unwrap();
        assert_eq!(location.table_url("matomo_visits").unwrap().as_str(), "s3://lake-bucket/tributary/matomo_visits/");
        let bare = LakeLocation::s3("lake-bucket", "").unwrap();
        assert_eq!(bare.table_url("leads").unwrap().as_str(), "s3://lake-bucket/leads/");
    }

    #[test]
    fn the_endpoint_override_comes_from_the_environment() {
        let env: HashMap<String, String> = [("LAKE_BUCKET", "b"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let location = LakeLocation::from_env(&env).unwrap();
        assert_eq!(location.storage_options()["AWS_ALLOW_HTTP"], "true");
        assert_eq!(location.storage_options()["AWS_ENDPOINT_URL"], "http://127.0.0.1:5000");
        let missing: HashMap<String, String> = HashMap::new();
        assert_eq!(LakeLocation::from_env(&missing).unwrap_err(), ConfigError::Missing("LAKE_BUCKET".into()));
    }
}
