//! The aggregator: DuckDB over the lake's `leads` table.
//!
//! - [`snapshot`]: the current Delta snapshot of a table as local Parquet files (downloaded once
//!   into a cache; Delta data files never change, so a warm Lambda only fetches new ones).
//! - [`engine`]: one locked-down DuckDB connection (bounded memory and threads, no extension
//!   loading, file access limited to the lake's files), the `latest_leads` view and the
//!   `latest_dates` table kept up to date from snapshot to snapshot.
//! - [`sql`]: every statement, as text with `$n` parameters; request values are only ever bound.
//! - [`stats`], [`report`], [`alerts`]: the three questions, as typed results.
//! - [`xlsx`]: the same results as workbooks; [`chart`]: the counts as an SVG chart. [`http`]: the routes. [`jobs`]: the monthly job.

pub mod alerts;
pub mod chart;
pub mod config;
pub mod engine;
pub mod http;
pub mod jobs;
pub mod reader;
pub mod report;
pub mod snapshot;
pub mod sql;
pub mod stats;
pub mod status;
pub mod xlsx;

use tributary_lake::LakeError;

#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("DuckDB: {0}")]
    DuckDb(#[from] duckdb::Error),
    #[error("kept latest dates {path}: {reason}")]
    KeptLatestDates { path: String, reason: String },
    #[error("lake cache {path}: {source}")]
    Cache { path: String, source: std::io::Error },
    #[error("writing a workbook: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("{0}")]
    Store(#[from] tributary_domain::ports::PortError),
}
