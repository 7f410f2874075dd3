//! One DuckDB connection per Lambda instance, set up once and locked down: bounded memory and
//! threads, no extension install or autoload (nothing may be downloaded at run time), files
//! readable only under the lake's directories, then the configuration is frozen so no later
//! statement can loosen it.

use crate::AggregatorError;
use crate::snapshot::LocalSnapshot;
use crate::sql;
use duckdb::{Config, Connection};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineLimits {
    pub threads: u32,
    pub memory_limit_mb: u32,
}

impl EngineLimits {
    /// For a Lambda function of `memory_mb`: Lambda gives one vCPU per 1 769 MB (at least one);
    /// DuckDB may use 60 % of the memory, leaving the rest to the runtime, delta-rs and the
    /// answer being built.
    pub fn for_lambda_memory(memory_mb: u32) -> Self {
        Self { threads: (memory_mb / 1769).clamp(1, 6), memory_limit_mb: (memory_mb * 3 / 5).max(64) }
    }
}

pub struct Engine {
    connection: Connection,
    /// The snapshot the `latest_dates` table currently shows.
    shown: Option<LocalSnapshot>,
    /// The files the `lead_versions` and `latest_leads` views read.
    views: Option<Vec<PathBuf>>,
    /// How `latest_dates` was last started from nothing.
    started: Option<LatestDatesStart>,
}

/// How the `latest_dates` table was started when there was none to merge into (logged, and what
/// tests check the kept latest dates were taken by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatestDatesStart {
    /// From the kept latest dates of table `version`, then `added_files` merged.
    Kept { version: u64, added_files: usize },
    /// Grouped from every version of every lead.
    EveryVersion,
}

impl Engine {
    /// `readable_dirs`: where the lake's Parquet files are (the download cache, or the lake itself
    /// when it is on local disk); `spill_dir`: DuckDB's temporary files when memory runs short.
    pub fn open(limits: EngineLimits, readable_dirs: &[PathBuf], spill_dir: &Path) -> Result<Self, AggregatorError> {
        let config = Config::default()
            .threads(i64::from(limits.threads))?
            .max_memory(&format!("{}MB", limits.memory_limit_mb))?
            .enable_autoload_extension(false)?;
        let connection = Connection::open_in_memory_with_flags(config)?;
        let dirs: Vec<String> = readable_dirs
            .iter()
            .map(|dir| {
                let text = dir.to_string_lossy();
                sql::quote_literal(&if text.ends_with('/') { text.into_owned() } else { format!("{text}/") })
            })
            .collect();
        connection.execute_batch(&format!(
            "SET autoinstall_known_extensions = false; \
             SET temp_directory = {spill}; \
             SET allowed_directories = [{dirs}]; \
             SET enable_external_access = false; \
             SET lock_configuration = true; \
             {macros}",
            spill = sql::quote_literal(&spill_dir.to_string_lossy()),
            dirs = dirs.join(", "),
            macros = sql::MACROS,
        ))?;
        Ok(Self { connection, shown: None, views: None, started: None })
    }

    /// Points the `lead_versions` and `latest_leads` views (every version, whole rows: the report
    /// and the alerts) at `snapshot`'s files, which must all be on local disk (nothing to do when
    /// they already read them).
    pub fn show_versions(&mut self, snapshot: &LocalSnapshot) -> Result<(), AggregatorError> {
        if self.views.as_ref() == Some(&snapshot.files) {
            return Ok(());
        }
        self.views = None;
        self.connection.execute_batch(&sql::lead_versions_view(&snapshot.files))?;
        self.connection.execute_batch(&sql::latest_leads_view())?;
        self.views = Some(snapshot.files.clone());
        Ok(())
    }

    /// Brings the `latest_dates` table (what the counts read) up to `snapshot` (nothing to do when
    /// it already shows it). A snapshot that only added files to the shown one (appends) is merged
    /// from those files alone. Otherwise (a first look, or a compaction) the table starts again:
    /// from the kept latest dates that come with the snapshot when they can be brought up to it
    /// (then only the files added since they were computed need to be on local disk), from every
    /// version when not (then every file must be).
    pub fn show_latest_dates(&mut self, snapshot: &LocalSnapshot) -> Result<(), AggregatorError> {
        if self.shown.as_ref().is_some_and(|shown| shown.same_files(snapshot)) {
            return Ok(());
        }
        let added = self.shown.as_ref().and_then(|shown| snapshot.files_added_since(&shown.lake_paths));
        // Whatever happens below, the table must not be thought to show an older snapshot.
        self.shown = None;
        match added {
            Some(files) if files.is_empty() => {}
            Some(files) => self.in_transaction(&sql::merge_latest_dates(&files))?,
            None => self.start_latest_dates(snapshot)?,
        }
        self.shown = Some(snapshot.clone());
        Ok(())
    }

    /// `latest_dates` for `snapshot` without a previous state: the kept latest dates plus the
    /// files added since they were computed, when every file they cover is still in the snapshot;
    /// otherwise (none kept, a compaction since, a file that cannot be read) grouped from every
    /// version. Both give the same rows: the latest version of a lead over the union of two sets
    /// of versions is the later of each set's latest, and a compaction only moves rows.
    fn start_latest_dates(&mut self, snapshot: &LocalSnapshot) -> Result<(), AggregatorError> {
        self.started = None;
        if let Some(kept) = &snapshot.latest_dates
            && let Some(added) = snapshot.files_added_since(&kept.covers)
        {
            let loaded =
                self.connection.execute_batch(&sql::load_latest_dates(&kept.path)).map_err(AggregatorError::from);
            // A failed merge leaves the kept dates alone in the table: the build below replaces them.
            let merged = loaded.and_then(|()| {
                if added.is_empty() { Ok(()) } else { self.in_transaction(&sql::merge_latest_dates(&added)) }
            });
            match merged {
                Ok(()) => {
                    let start = LatestDatesStart::Kept { version: kept.version, added_files: added.len() };
                    tracing::info!(?start, "latest dates started");
                    self.started = Some(start);
                    return Ok(());
                }
                Err(error) => {
                    tracing::warn!(%error, path = %kept.path.display(), "the kept latest dates could not be loaded; computing them from every version")
                }
            }
        }
        self.show_versions(snapshot)?;
        self.connection.execute_batch(&sql::build_latest_dates())?;
        tracing::info!(start = ?LatestDatesStart::EveryVersion, "latest dates started");
        self.started = Some(LatestDatesStart::EveryVersion);
        Ok(())
    }

    /// How `latest_dates` was last started from nothing (`None` before the first snapshot).
    pub fn latest_dates_start(&self) -> Option<LatestDatesStart> {
        self.started
    }

    /// The snapshot `latest_dates` shows, if any.
    pub fn shown(&self) -> Option<&LocalSnapshot> {
        self.shown.as_ref()
    }

    /// Writes `latest_dates` to `target` (Parquet, compressed), listing `covers` (the data files
    /// of the snapshot it was computed from) in the file's metadata; returns how many leads it holds.
    pub fn export_latest_dates(&self, target: &Path, covers: &[String]) -> Result<u64, AggregatorError> {
        let covers = serde_json::to_string(covers).map_err(|e| AggregatorError::KeptLatestDates {
            path: target.display().to_string(),
            reason: e.to_string(),
        })?;
        let rows = self.connection.execute(&sql::export_latest_dates(target, &covers), [])?;
        Ok(rows as u64)
    }

    /// Runs `statements` all or nothing: a merge that failed half-way must not leave a table that
    /// lacks leads and would be taken for up to date.
    fn in_transaction(&self, statements: &str) -> Result<(), AggregatorError> {
        self.connection.execute_batch("BEGIN TRANSACTION;")?;
        match self.connection.execute_batch(statements) {
            Ok(()) => Ok(self.connection.execute_batch("COMMIT;")?),
            Err(error) => {
                // The rollback's own failure would hide the cause; the caller rebuilds anyway.
                let _ = self.connection.execute_batch("ROLLBACK;");
                Err(error.into())
            }
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Whether `name` is a time zone DuckDB knows.
    pub fn time_zone_exists(&self, name: &str) -> Result<bool, AggregatorError> {
        let count: i64 = self.connection.query_row(sql::TIME_ZONE_EXISTS, [name], |row| row.get(0))?;
        Ok(count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tributary-engine-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lambda_sizes_map_to_threads_and_memory() {
        assert_eq!(EngineLimits::for_lambda_memory(1024), EngineLimits { threads: 1, memory_limit_mb: 614 });
        assert_eq!(EngineLimits::for_lambda_memory(3538), EngineLimits { threads: 2, memory_limit_mb: 2122 });
    }

    #[test]
    fn the_connection_is_locked_down() {
        let allowed = temp_dir("allowed");
        let outside = temp_dir("outside");
        let engine =
            Engine::open(EngineLimits { threads: 1, memory_limit_mb: 128 }, std::slice::from_ref(&allowed), &allowed)
                .unwrap();
        let connection = engine.connection();
        for (dir, name) in [(&allowed, "inside"), (&outside, "outside")] {
            let path = dir.join(format!("{name}.parquet"));
            // Written by a separate, unrestricted connection.
            Connection::open_in_memory()
                .unwrap()
                .execute_batch(&format!(
                    "COPY (SELECT 42 AS answer) TO {} (FORMAT parquet)",
                    sql::quote_literal(&path.to_string_lossy())
                ))
                .unwrap();
        }
        let read = |dir: &Path, name: &str| {
            let path = sql::quote_literal(&dir.join(format!("{name}.parquet")).to_string_lossy());
            connection.query_row(&format!("SELECT answer FROM read_parquet({path})"), [], |row| row.get::<_, i32>(0))
        };
        assert_eq!(read(&allowed, "inside").unwrap(), 42);
        let refused = read(&outside, "outside").unwrap_err().to_string();
        assert!(refused.contains("Permission Error"), "{refused}");
        // The limits cannot be raised again, and no extension can be installed.
        assert!(connection.execute_batch("SET enable_external_access = true").is_err());
        assert!(connection.execute_batch("SET memory_limit = '10GB'").is_err());
        assert!(connection.execute_batch("INSTALL httpfs").is_err());
        let threads: i64 = connection.query_row("SELECT current_setting('threads')", [], |row| row.get(0)).unwrap();
        assert_eq!(threads, 1);
        assert!(engine.time_zone_exists("Europe/Paris").unwrap());
        assert!(!engine.time_zone_exists("Europe/Lutece").unwrap());
    }
}
