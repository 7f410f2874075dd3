//! The lake writer: SQS batches of canonical events (raw delivery from the `events` topic) into
//! the Delta tables `events` (every event) and `leads` (one row per `lead.upserted` version).
//!
//! A batch is appended with one commit per table touched. A record that cannot be read (not a
//! canonical event, or a `lead.upserted` whose payload is not a valid lead) is reported as a
//! batch item failure: SQS redelivers it alone and, after the queue's `maxReceiveCount`, moves it
//! to the dead-letter queue, while the rest of the batch is committed. If a commit fails the
//! whole batch fails and is redelivered, so an event may be appended twice (the `events` commit
//! made it, the `leads` one did not): readers deduplicate by event id, and for leads the latest
//! `_occurred_at` per lead id wins.

pub mod maintenance;
pub mod rows;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use jiff::Timestamp;
use rows::{Accepted, accept};
use tokio::sync::Mutex;
use tributary_domain::config::{ConfigError, Env};
use tributary_domain::metrics::Metrics;
use tributary_domain::ports::SyncStore;
use tributary_domain::sync::{Tally, TallyKind, count};
use tributary_lake::schema::{EVENTS, LEADS};
use tributary_lake::{LakeError, LakeLocation, LakeTable};

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// A commit failed; `committed` says what the batch had committed before it (its rows are in
    /// the table, and the redelivered batch appends them again: readers deduplicate).
    #[error("committing to {table}: {source}")]
    Commit { table: &'static str, source: LakeError, committed: Option<(&'static str, usize)> },
}

impl From<WriterError> for lambda_runtime::Diagnostic {
    fn from(error: WriterError) -> Self {
        // The whole batch fails and SQS redelivers it.
        lambda_runtime::Diagnostic { error_type: "LakeCommitFailed".into(), error_message: error.to_string() }
    }
}

/// The two tables, opened once per Lambda instance (by its first batch).
pub struct Tables {
    pub events: Mutex<LakeTable>,
    pub leads: Mutex<LakeTable>,
}

impl Tables {
    pub async fn open(location: &LakeLocation) -> Result<Self, LakeError> {
        Ok(Self {
            events: Mutex::new(LakeTable::open_or_create(location, &EVENTS).await?),
            leads: Mutex::new(LakeTable::open_or_create(location, &LEADS).await?),
        })
    }
}

/// What one batch did (logged, and returned to tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub events: usize,
    pub leads: usize,
    pub rejected: usize,
}

impl BatchSummary {
    /// The invocation's metrics line (EMF): one commit per table that received rows.
    pub fn metrics(&self) -> Metrics {
        Metrics::new("lake-writer")
            .count("lake_commits", u64::from(self.events > 0) + u64::from(self.leads > 0))
            .count("events_written", self.events as u64)
            .count("leads_written", self.leads as u64)
            .count("rejected", self.rejected as u64)
    }
}

/// The lake writer's configuration, parsed once at cold start.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub lake: LakeLocation,
    /// Where commits are counted by table and hour.
    pub ingestion_table: String,
}

impl WriterConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self { lake: LakeLocation::from_env(env)?, ingestion_table: env.required("INGESTION_TABLE")? })
    }
}

/// One SQS batch; `request_id` (the Lambda invocation's) goes on the metrics line. Each commit,
/// and a commit that failed, is counted by table in the hour (`GET /api/v1/runs?kind=lake-commits`).
pub async fn handle(
    tables: &Tables,
    tallies: &impl SyncStore,
    batch: SqsEvent,
    now: Timestamp,
    request_id: &str,
) -> Result<SqsBatchResponse, WriterError> {
    let written = write_batch(tables, batch, now).await;
    let (response, summary) = match written {
        Ok(written) => written,
        Err(error) => {
            if let WriterError::Commit { table, committed, .. } = &error {
                if let Some((done, rows)) = committed {
                    count_commit(tallies, done, *rows, now).await;
                }
                count(tallies, &Tally::one(TallyKind::LakeCommits, table, "failed", now)).await;
            }
            return Err(error);
        }
    };
    tracing::info!(events = summary.events, leads = summary.leads, rejected = summary.rejected, "batch appended");
    summary.metrics().emit(request_id);
    for (table, rows) in [(EVENTS.name, summary.events), (LEADS.name, summary.leads)] {
        if rows > 0 {
            count_commit(tallies, table, rows, now).await;
        }
    }
    Ok(response)
}

async fn count_commit(tallies: &impl SyncStore, table: &str, rows: usize, now: Timestamp) {
    let mut commit = Tally::one(TallyKind::LakeCommits, table, "committed", now);
    commit.records = rows as u64;
    count(tallies, &commit).await;
}

pub async fn write_batch(
    tables: &Tables,
    batch: SqsEvent,
    now: Timestamp,
) -> Result<(SqsBatchResponse, BatchSummary), WriterError> {
    let mut accepted = Accepted::default();
    let mut failures = Vec::new();
    for record in batch.records {
        let message_id = record.message_id.unwrap_or_default();
        match accept(&mut accepted, record.body.as_deref().unwrap_or_default()) {
            Ok(()) => {}
            Err(reason) => {
                tracing::warn!(message_id, %reason, "record refused; SQS will redeliver it, then dead-letter it");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                failures.push(failure);
            }
        }
    }
    let summary = BatchSummary { events: accepted.events.len(), leads: accepted.leads.len(), rejected: failures.len() };
    if !accepted.events.is_empty() {
        let mut events = tables.events.lock().await;
        let batch = rows::events_batch(&events.arrow_schema()?, &accepted.events)?;
        events.append(vec![batch], None).await.map_err(|source| WriterError::Commit {
            table: EVENTS.name,
            source,
            committed: None,
        })?;
    }
    if !accepted.leads.is_empty() {
        let mut leads = tables.leads.lock().await;
        let batch = rows::leads_batch(&leads.arrow_schema()?, &accepted.leads, now)?;
        let committed = (!accepted.events.is_empty()).then_some((EVENTS.name, accepted.events.len()));
        leads.append(vec![batch], None).await.map_err(|source| WriterError::Commit {
            table: LEADS.name,
            source,
            committed,
        })?;
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    Ok((response, summary))
}
