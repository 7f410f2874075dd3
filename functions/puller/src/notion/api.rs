//! Notion's API: the database query endpoint (`Notion-Version: 2022-06-28`) or, from
//! `2025-09-03`, a database's data sources and the data-source query endpoint.
//!
//! Requests are spaced to stay under Notion's documented average of three per second per
//! integration; a 429 waits what `Retry-After` says; 5xx and 529 back off.

use crate::Budget;
use crate::fetch::{Failure, FetchError, Pacer, RetryPolicy, check_status, fetch_with_retries};
use reqwest::{Client, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// The first API version with data sources.
pub const DATA_SOURCES_VERSION: &str = "2025-09-03";
/// At most three requests per second on average.
pub const MIN_REQUEST_INTERVAL: Duration = Duration::from_millis(334);

/// What a query walks: a whole database (older API versions) or one of its data sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryTarget {
    Database(String),
    DataSource { database: String, data_source: String },
}

impl QueryTarget {
    /// The scope name used for sync runs, leases and watermarks.
    pub fn scope(&self) -> String {
        match self {
            QueryTarget::Database(id) => format!("database-{id}"),
            QueryTarget::DataSource { data_source, .. } => format!("data-source-{data_source}"),
        }
    }
}

/// One page of query results.
#[derive(Debug, Clone, Deserialize)]
pub struct QueryPage {
    pub results: Vec<Value>,
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

pub struct NotionApi {
    http: Client,
    base: Url,
    token: String,
    version: String,
    policy: RetryPolicy,
    pacer: Pacer,
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Result<T, Failure> {
    // Notion's 529 (service overload) is a 5xx, so `check_status` retries it.
    check_status(status, headers, body)?;
    serde_json::from_slice(body).map_err(|e| Failure::Permanent { detail: format!("unexpected answer: {e}") })
}

impl NotionApi {
    pub fn new(http: Client, mut base: Url, token: String, version: String, policy: RetryPolicy) -> Self {
        // Paths are joined to the base: keep a prefix such as `/notion/` of a proxy.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Self { http, base, token, version, policy, pacer: Pacer::new(MIN_REQUEST_INTERVAL) }
    }

    /// Spacing for tests against a local server.
    pub fn with_min_interval(mut self, interval: Duration) -> Self {
        self.pacer = Pacer::new(interval);
        self
    }

    pub fn uses_data_sources(&self) -> bool {
        self.version.as_str() >= DATA_SOURCES_VERSION
    }

    fn url(&self, path: &str) -> Result<Url, FetchError> {
        self.base.join(path).map_err(|e| FetchError {
            what: path.into(),
            detail: e.to_string(),
            attempts: 0,
            status: None,
        })
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        url: Url,
        body: Option<&Value>,
        budget: &Budget,
    ) -> Result<T, FetchError> {
        let request = || {
            let builder = match body {
                Some(body) => self.http.post(url.clone()).json(body),
                None => self.http.get(url.clone()),
            };
            builder.bearer_auth(&self.token).header("Notion-Version", &self.version)
        };
        fetch_with_retries(what, &self.policy, Some(&self.pacer), budget, request, parse_json).await
    }

    /// What to query for a configured database: itself, or each of its data sources.
    pub async fn targets(&self, database: &str, budget: &Budget) -> Result<Vec<QueryTarget>, FetchError> {
        if !self.uses_data_sources() {
            return Ok(vec![QueryTarget::Database(database.to_string())]);
        }
        #[derive(Deserialize)]
        struct Source {
            id: String,
        }
        #[derive(Deserialize)]
        struct Database {
            #[serde(default)]
            data_sources: Vec<Source>,
        }
        let url = self.url(&format!("v1/databases/{database}"))?;
        let found: Database = self.send(&format!("retrieve database {database}"), url, None, budget).await?;
        Ok(found
            .data_sources
            .into_iter()
            .map(|source| QueryTarget::DataSource { database: database.to_string(), data_source: source.id })
            .collect())
    }

    /// Pages edited at or after `since` (all when `None`), oldest edit first, 100 per page.
    pub async fn query(
        &self,
        target: &QueryTarget,
        since: Option<&str>,
        cursor: Option<&str>,
        budget: &Budget,
    ) -> Result<QueryPage, FetchError> {
        let path = match target {
            QueryTarget::Database(id) => format!("v1/databases/{id}/query"),
            QueryTarget::DataSource { data_source, .. } => format!("v1/data_sources/{data_source}/query"),
        };
        let mut body = json!({
            "sorts": [{"timestamp": "last_edited_time", "direction": "ascending"}],
            "page_size": 100,
        });
        if let Some(since) = since {
            body["filter"] = json!({"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": since}});
        }
        if let Some(cursor) = cursor {
            body["start_cursor"] = Value::String(cursor.to_string());
        }
        let url = self.url(&path)?;
        self.send(&format!("query {}", target.scope()), url, Some(&body), budget).await
    }
}
