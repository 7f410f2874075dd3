//! The scheduled lake maintenance: compaction of small files, the expiry of old log entries, then
//! vacuum, on every table.
//!
//! One run handles the tables one after the other; a table that fails does not stop the others,
//! and the run then fails naming it (EventBridge's retry runs everything again, which is safe:
//! compaction of an already compacted table commits nothing, vacuum and expiry delete only what is
//! due).

use jiff::Timestamp;
use tributary_domain::config::{ConfigError, Env};
use tributary_domain::ports::SyncStore;
use tributary_domain::sync::{FailureReason, LAKE_MAINTENANCE_JOB, SyncOutcome, SyncRun};
use tributary_lake::schema::{EVENTS, LEADS, MATOMO_VISITS, TableSpec};
use tributary_lake::{CompactionPolicy, CompactionSummary, LakeError, LakeLocation, LakeTable, VacuumSummary};

/// Every table of the lake.
pub const MAINTAINED_TABLES: [&TableSpec; 3] = [&EVENTS, &LEADS, &MATOMO_VISITS];

const MIB: i64 = 1024 * 1024;

/// The maintenance function's configuration.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    pub lake: LakeLocation,
    pub policy: CompactionPolicy,
    /// Where each run is recorded, one per table (`GET /api/v1/runs`, job `lake-maintenance`).
    pub ingestion_table: String,
}

impl MaintenanceConfig {
    /// `LAKE_BUCKET`, `LAKE_PREFIX`, `INGESTION_TABLE`, and optionally `COMPACT_SMALL_FILE_MB`
    /// (default 32) and `COMPACT_TARGET_FILE_MB` (default 128).
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let defaults = CompactionPolicy::default();
        let small: i64 = env.parsed_or("COMPACT_SMALL_FILE_MB", defaults.small_file_bytes / MIB)?;
        let target: i64 = env.parsed_or("COMPACT_TARGET_FILE_MB", defaults.target_file_bytes / MIB)?;
        if small < 1 {
            return Err(ConfigError::invalid("COMPACT_SMALL_FILE_MB", "must be at least 1"));
        }
        if target < small {
            return Err(ConfigError::invalid("COMPACT_TARGET_FILE_MB", "must be at least COMPACT_SMALL_FILE_MB"));
        }
        Ok(Self {
            lake: LakeLocation::from_env(env)?,
            policy: CompactionPolicy { small_file_bytes: small * MIB, target_file_bytes: target * MIB },
            ingestion_table: env.required("INGESTION_TABLE")?,
        })
    }
}

/// What maintenance did to one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableMaintenance {
    pub table: &'static str,
    /// `false` when nothing was ever written to the table.
    pub exists: bool,
    pub compaction_version: Option<u64>,
    /// The run's time ran out before every small file was merged; the next run continues.
    pub compaction_unfinished: bool,
    pub files_compacted: usize,
    pub files_written: usize,
    pub files_vacuumed: usize,
    /// Log entries (commits and checkpoints) past the log's retention period, deleted.
    pub log_entries_expired: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("lake maintenance failed for {}", failures.iter().map(|(table, e)| format!("{table} ({e})")).collect::<Vec<_>>().join(", "))]
pub struct MaintenanceError {
    pub failures: Vec<(&'static str, LakeError)>,
    /// The tables that were maintained before and after the failures.
    pub done: Vec<TableMaintenance>,
}

impl From<MaintenanceError> for lambda_runtime::Diagnostic {
    fn from(error: MaintenanceError) -> Self {
        lambda_runtime::Diagnostic { error_type: "LakeMaintenanceFailed".into(), error_message: error.to_string() }
    }
}

async fn maintain_table(
    location: &LakeLocation,
    spec: &'static TableSpec,
    policy: CompactionPolicy,
    now: Timestamp,
    compaction_deadline: Timestamp,
) -> Result<TableMaintenance, LakeError> {
    let Some(mut table) = LakeTable::open_existing(location, spec).await? else {
        return Ok(TableMaintenance {
            table: spec.name,
            exists: false,
            compaction_version: None,
            compaction_unfinished: false,
            files_compacted: 0,
            files_written: 0,
            files_vacuumed: 0,
            log_entries_expired: 0,
        });
    };
    // Each step runs even when one before it failed (each is safe on its own, and a table that
    // keeps failing to compact must still lose its expired files), and each failure is logged.
    let failed =
        |step: &'static str| move |error: &LakeError| tracing::error!(table = spec.name, step, %error, "failed");
    let compaction = table.compact(policy, compaction_deadline).await.inspect_err(failed("compaction")).inspect(|c| {
        tracing::info!(
            table = spec.name,
            version = ?c.version,
            files_removed = c.files_removed,
            files_added = c.files_added,
            bytes_removed = c.bytes_removed,
            bytes_added = c.bytes_added,
            stopped_at_deadline = c.stopped_at_deadline,
            "compacted"
        )
    });
    // Before vacuum: delta-rs makes vacuum's first commit with its default properties, whose
    // clean-up after the commit then finds nothing left to delete (commits of ours do not clean:
    // `commit_properties` in tributary-lake).
    let expiry = table
        .expire_log_entries(now)
        .await
        .inspect_err(failed("log expiry"))
        .inspect(|deleted| tracing::info!(table = spec.name, log_entries_deleted = deleted, "log expired"));
    let vacuum = table
        .vacuum(now)
        .await
        .inspect_err(failed("vacuum"))
        .inspect(|v| tracing::info!(table = spec.name, files_deleted = v.files_deleted, "vacuumed"));
    let CompactionSummary { version, files_removed, files_added, stopped_at_deadline, .. } = compaction?;
    let log_entries_expired = expiry?;
    let VacuumSummary { files_deleted } = vacuum?;
    Ok(TableMaintenance {
        table: spec.name,
        exists: true,
        compaction_version: version,
        compaction_unfinished: stopped_at_deadline,
        files_compacted: files_removed,
        files_written: files_added,
        files_vacuumed: files_deleted,
        log_entries_expired,
    })
}

/// Compacts every table of the lake, expires its old log entries and vacuums it. No compaction
/// group is started after `compaction_deadline` (the invocation's deadline less the time the
/// expiries and vacuums need); what is left waits for the next run.
pub async fn maintain(
    location: &LakeLocation,
    policy: CompactionPolicy,
    now: Timestamp,
    compaction_deadline: Timestamp,
) -> Result<Vec<TableMaintenance>, MaintenanceError> {
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for spec in MAINTAINED_TABLES {
        match maintain_table(location, spec, policy, now, compaction_deadline).await {
            Ok(report) => done.push(report),
            Err(error) => {
                tracing::error!(table = spec.name, error = %error, "maintenance failed");
                failures.push((spec.name, error));
            }
        }
    }
    if failures.is_empty() { Ok(done) } else { Err(MaintenanceError { failures, done }) }
}

/// [`maintain`], each table's outcome recorded as a run of job `lake-maintenance` (scope: the
/// table; `records`: the small files merged; `pages`: the files vacuumed). A run that cannot be
/// recorded is logged: the maintenance is done all the same.
pub async fn maintain_recorded(
    location: &LakeLocation,
    policy: CompactionPolicy,
    runs: &impl SyncStore,
    now: Timestamp,
    compaction_deadline: Timestamp,
) -> Result<Vec<TableMaintenance>, MaintenanceError> {
    let result = maintain(location, policy, now, compaction_deadline).await;
    let ended = Timestamp::now().max(now);
    let run_id = SyncRun::new_id();
    let (done, failed): (&[TableMaintenance], Vec<&str>) = match &result {
        Ok(done) => (done, Vec::new()),
        Err(error) => (&error.done, error.failures.iter().map(|(table, _)| *table).collect()),
    };
    let mut recorded = Vec::new();
    for table in done {
        let mut run = SyncRun::start(LAKE_MAINTENANCE_JOB, table.table, &run_id, now, None);
        run.records = table.files_compacted as u64;
        run.pages = table.files_vacuumed as u64;
        run.finish(if table.compaction_unfinished { SyncOutcome::MoreToDo } else { SyncOutcome::Completed }, ended);
        recorded.push(run);
    }
    for table in failed {
        let mut run = SyncRun::start(LAKE_MAINTENANCE_JOB, table, &run_id, now, None);
        let message = "compaction, vacuum or log expiry failed; see the function's log".to_string();
        run.finish(SyncOutcome::Failed { reason: FailureReason::LakeFailed, message }, ended);
        recorded.push(run);
    }
    for run in &recorded {
        if let Err(e) = runs.put_run(run).await {
            tracing::error!(error = %e, table = run.scope, "the maintenance run could not be recorded");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn sizes_default_and_are_checked() {
        let config =
            MaintenanceConfig::from_env(&env(&[("LAKE_BUCKET", "lake"), ("INGESTION_TABLE", "ingestion")])).unwrap();
        assert_eq!(config.policy, CompactionPolicy::default());
        let custom = env(&[
            ("LAKE_BUCKET", "lake"),
            ("INGESTION_TABLE", "ingestion"),
            ("COMPACT_SMALL_FILE_MB", "8"),
            ("COMPACT_TARGET_FILE_MB", "64"),
        ]);
        let policy = MaintenanceConfig::from_env(&custom).unwrap().policy;
        assert_eq!((policy.small_file_bytes, policy.target_file_bytes), (8 * MIB, 64 * MIB));
        let inverted = env(&[
            ("LAKE_BUCKET", "lake"),
            ("INGESTION_TABLE", "ingestion"),
            ("COMPACT_SMALL_FILE_MB", "64"),
            ("COMPACT_TARGET_FILE_MB", "8"),
        ]);
        assert_eq!(
            MaintenanceConfig::from_env(&inverted).unwrap_err().to_string(),
            "environment variable COMPACT_TARGET_FILE_MB is invalid: must be at least COMPACT_SMALL_FILE_MB"
        );
        let zero = env(&[("LAKE_BUCKET", "lake"), ("INGESTION_TABLE", "ingestion"), ("COMPACT_SMALL_FILE_MB", "0")]);
        assert!(MaintenanceConfig::from_env(&zero).is_err());
    }
}
