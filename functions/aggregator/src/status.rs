//! `GET /api/v1/ingestion/status`: the last sync runs of each pull job, and each lake table's
//! current version, row count and last commit time (from the Delta log, no data file read).

use crate::AggregatorError;
use jiff::Timestamp;
use serde::Serialize;
use tributary_domain::ports::SyncStore;
use tributary_domain::sync::{JOBS, SyncRun};
use tributary_lake::schema::{EVENTS, LEADS, MATOMO_VISITS, TableSpec};
use tributary_lake::{LakeLocation, LakeTable};

/// Runs shown per job, newest first.
pub const RUNS_PER_JOB: usize = 10;

#[derive(Debug, Serialize)]
pub struct JobRuns {
    pub job: &'static str,
    pub runs: Vec<SyncRun>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TableStatus {
    pub table: &'static str,
    /// False until the first write.
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Rows in the current version, duplicates included (readers deduplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_commit_at: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
pub struct IngestionStatus {
    pub jobs: Vec<JobRuns>,
    pub tables: Vec<TableStatus>,
}

pub const LAKE_TABLES: [&TableSpec; 3] = [&EVENTS, &LEADS, &MATOMO_VISITS];

pub async fn table_status(location: &LakeLocation, spec: &'static TableSpec) -> Result<TableStatus, AggregatorError> {
    let Some(table) = LakeTable::open_existing(location, spec).await? else {
        return Ok(TableStatus {
            table: spec.name,
            exists: false,
            version: None,
            rows: None,
            files: None,
            last_commit_at: None,
        });
    };
    Ok(TableStatus {
        table: spec.name,
        exists: true,
        version: table.version(),
        rows: table.row_count()?,
        files: Some(table.files()?.len()),
        last_commit_at: table.last_commit_time()?,
    })
}

pub async fn ingestion_status(
    store: &impl SyncStore,
    location: &LakeLocation,
) -> Result<IngestionStatus, AggregatorError> {
    let mut jobs = Vec::new();
    for job in JOBS {
        jobs.push(JobRuns { job, runs: store.recent_runs(job, RUNS_PER_JOB).await? });
    }
    let mut tables = Vec::new();
    for spec in LAKE_TABLES {
        tables.push(table_status(location, spec).await?);
    }
    Ok(IngestionStatus { jobs, tables })
}
