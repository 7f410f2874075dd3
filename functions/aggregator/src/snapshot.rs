//! A Delta table's current snapshot as Parquet files on local disk, for DuckDB.
//!
//! The file list (and the check that the table can be read this way) comes from the Delta log
//! through delta-rs. On S3 each data file is downloaded into a cache directory when a question
//! first needs it ([`SnapshotCache::fetch`]): Delta never rewrites a data file, so a warm Lambda
//! fetches only files added since its last request, and files that left the snapshot (compaction,
//! vacuum) are removed from the cache. The newest kept
//! latest dates of the table ([`KeptLatestDates`]) come with the snapshot, the same way.

use crate::AggregatorError;
use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use tributary_lake::schema::TableSpec;
use tributary_lake::{DERIVED_DIR, LakeError, LakeFile, LakeLocation, LakeTable, deltalake};

/// Files downloaded at once.
const PARALLEL_DOWNLOADS: usize = 8;

/// The derived files ([`tributary_lake::DerivedFile`]) holding each lead's latest dates.
pub const LATEST_DATES_KIND: &str = "latest_dates";

/// The Parquet metadata key under which a kept latest-dates file lists the data files it was
/// computed from (a JSON array of paths relative to the table root, as the Delta log names them).
pub const COVERS_KEY: &str = "tributary.covers";

/// Kept latest-dates files left on storage: the newest and the one before it, which a reader that
/// listed just before a new one was written may still be downloading.
pub const KEPT_LATEST_DATES: usize = 2;

/// What a reader sees: the table version and its data files on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSnapshot {
    /// `None`: the table does not exist yet (nothing was ever written).
    pub version: Option<u64>,
    pub files: Vec<PathBuf>,
    /// The same files as the Delta log names them (relative to the table root), in the same order.
    pub lake_paths: Vec<String>,
    /// The newest kept latest dates computed from this version of the table or an earlier one.
    pub latest_dates: Option<KeptLatestDates>,
}

impl LocalSnapshot {
    /// Whether both show the same rows from the same files (what was kept beside them aside).
    pub fn same_files(&self, other: &LocalSnapshot) -> bool {
        self.version == other.version && self.files == other.files
    }

    /// The local files of this snapshot that are not among `before` (paths as the log names them),
    /// or `None` when some of `before` are no longer in this snapshot (a compaction replaced
    /// them): then a state computed from `before` cannot be brought up to this snapshot by merging.
    pub fn files_added_since(&self, before: &[String]) -> Option<Vec<PathBuf>> {
        let now: HashSet<&str> = self.lake_paths.iter().map(String::as_str).collect();
        if !before.iter().all(|path| now.contains(path.as_str())) {
            return None;
        }
        let before: HashSet<&str> = before.iter().map(String::as_str).collect();
        Some(
            self.files
                .iter()
                .zip(&self.lake_paths)
                .filter(|(_, lake_path)| !before.contains(lake_path.as_str()))
                .map(|(file, _)| file.clone())
                .collect(),
        )
    }
}

/// Each lead's latest dates as computed at an earlier version of the table and kept beside it
/// (`_derived/latest_dates/`), so that a cold reader reads one row per lead instead of grouping
/// every version: it loads them, then merges only the files added since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLatestDates {
    /// The table version they were computed from.
    pub version: u64,
    /// Their Parquet file on local disk.
    pub path: PathBuf,
    /// The data files they were computed from, as the Delta log names them.
    pub covers: Vec<String>,
}

/// The list of data files a kept latest-dates file was computed from, read from its footer, once
/// the footer shows the columns of `latest_dates` (a file written by another release, with other
/// columns, is not taken: the job then writes a new one).
pub fn read_covers(path: &Path) -> Result<Vec<String>, AggregatorError> {
    let invalid = |reason: String| AggregatorError::KeptLatestDates { path: path.display().to_string(), reason };
    let file = std::fs::File::open(path).map_err(|e| invalid(e.to_string()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| invalid(e.to_string()))?;
    let metadata = reader.metadata().file_metadata();
    let columns: Vec<&str> = metadata.schema_descr().columns().iter().map(|column| column.name()).collect();
    if columns != crate::sql::latest_dates_column_names() {
        return Err(invalid(format!("columns {columns:?} are not those of latest_dates")));
    }
    let value = metadata
        .key_value_metadata()
        .and_then(|pairs| pairs.iter().find(|pair| pair.key == COVERS_KEY))
        .and_then(|pair| pair.value.clone())
        .ok_or_else(|| invalid(format!("no {COVERS_KEY} in its metadata")))?;
    serde_json::from_str(&value).map_err(|e| invalid(format!("{COVERS_KEY}: {e}")))
}

/// Keeps one table's snapshot available locally.
pub struct SnapshotCache {
    location: LakeLocation,
    spec: &'static TableSpec,
    /// `<cache>/<table>/`, for tables on S3.
    dir: PathBuf,
    table: Option<LakeTable>,
    /// The data files of the last snapshot listed, by local path (what [`Self::fetch`] downloads).
    listed: HashMap<PathBuf, LakeFile>,
}

impl SnapshotCache {
    pub fn new(location: LakeLocation, spec: &'static TableSpec, cache_dir: &Path) -> Self {
        Self { location, spec, dir: cache_dir.join(spec.name), table: None, listed: HashMap::new() }
    }

    /// The latest snapshot, its files on local disk.
    pub async fn current(&mut self) -> Result<LocalSnapshot, AggregatorError> {
        if !self.spec.partition_columns.is_empty() {
            // Partition values live in the log, not in the files; these readers do not need them.
            return Err(LakeError::Unsupported {
                table: self.spec.name.into(),
                reason: "partitioned tables are not read through the local snapshot".into(),
            }
            .into());
        }
        let table = match &mut self.table {
            Some(table) => {
                table.refresh().await?;
                table.ensure_readable()?;
                table
            }
            slot @ None => match LakeTable::open_existing(&self.location, self.spec).await? {
                Some(table) => slot.insert(table),
                None => {
                    self.listed.clear();
                    return Ok(LocalSnapshot {
                        version: None,
                        files: Vec::new(),
                        lake_paths: Vec::new(),
                        latest_dates: None,
                    });
                }
            },
        };
        let lake_files = table.files()?;
        let local: Vec<PathBuf> = lake_files.iter().map(|file| local_path(&self.dir, table, file)).collect();
        if self.location.local_root().is_none() {
            remove_stale(&self.dir, &local)?;
        }
        let lake_paths = lake_files.iter().map(|file| file.path.clone()).collect();
        self.listed = local.iter().cloned().zip(lake_files).collect();
        Ok(LocalSnapshot { version: table.version(), files: local, lake_paths, latest_dates: None })
    }

    /// Makes `files` (local paths of the last [`Self::current`] snapshot) available on local disk:
    /// on S3, downloads those not cached yet, a few at a time. Only what a question needs is
    /// fetched: the counts of a reader that starts from the kept latest dates need only the files
    /// added since, not the whole table.
    pub async fn fetch(&self, files: &[PathBuf]) -> Result<(), AggregatorError> {
        let Some(table) = &self.table else { return Ok(()) };
        let wanted: Vec<&LakeFile> = files.iter().filter_map(|path| self.listed.get(path)).collect();
        for chunk in wanted.chunks(PARALLEL_DOWNLOADS) {
            let copies = chunk.iter().map(|file| local_copy(&self.dir, table, file));
            futures::future::try_join_all(copies).await?;
        }
        Ok(())
    }

    /// The newest kept latest dates for the loaded version ([`KeptLatestDates`]), downloaded,
    /// with the files they cover; `None` when there are none. Only ever a shortcut: whatever is
    /// wrong with the kept file is logged and the answer is `None` (the data files give the same
    /// answer). Call it after [`Self::current`], which removes cached files it does not list.
    pub async fn kept_latest_dates(&self) -> Option<KeptLatestDates> {
        let table = self.table.as_ref()?;
        match kept_latest_dates(&self.dir, table).await {
            Ok(kept) => kept,
            Err(error) => {
                tracing::warn!(%error, "the kept latest dates are unusable; computing them from every version");
                None
            }
        }
    }

    /// Keeps `bytes`, the latest dates computed from `version` of the table, beside it; then
    /// deletes all but the [`KEPT_LATEST_DATES`] newest. Returns the kept file's path.
    pub async fn keep_latest_dates(&mut self, version: u64, bytes: bytes::Bytes) -> Result<String, AggregatorError> {
        let Some(table) = &self.table else {
            return Err(LakeError::Unsupported {
                table: self.spec.name.into(),
                reason: "the table is not open".into(),
            }
            .into());
        };
        let path = table.put_derived(LATEST_DATES_KIND, version, bytes).await?;
        table.prune_derived(LATEST_DATES_KIND, KEPT_LATEST_DATES).await?;
        Ok(path)
    }
}

/// The newest kept latest dates for the loaded version, on local disk with the files they cover.
async fn kept_latest_dates(dir: &Path, table: &LakeTable) -> Result<Option<KeptLatestDates>, AggregatorError> {
    let Some(derived) = table.newest_derived(LATEST_DATES_KIND).await? else { return Ok(None) };
    let file = LakeFile {
        path: derived.path.clone(),
        partition_values: Default::default(),
        size: i64::try_from(derived.size).unwrap_or(i64::MAX),
    };
    let path = local_copy(dir, table, &file).await?;
    // Earlier kept files downloaded into the cache are no longer needed.
    if let Some(folder) = path.parent().filter(|folder| folder.starts_with(dir))
        && let Ok(entries) = std::fs::read_dir(folder)
    {
        for entry in entries.flatten() {
            if entry.path() != path {
                std::fs::remove_file(entry.path())
                    .map_err(|e| AggregatorError::Cache { path: entry.path().display().to_string(), source: e })?;
            }
        }
    }
    let covers = read_covers(&path)?;
    Ok(Some(KeptLatestDates { version: derived.version, path, covers }))
}

/// Where a data file is read from: the file itself for a table on local disk; otherwise its
/// cached copy in `dir`.
fn local_path(dir: &Path, table: &LakeTable, file: &LakeFile) -> PathBuf {
    table.local_path(file).unwrap_or_else(|| dir.join(&file.path))
}

/// [`local_path`], downloaded first when the table is on S3 and the copy is missing (written
/// under a temporary name and renamed, so a cut download is never used).
async fn local_copy(dir: &Path, table: &LakeTable, file: &LakeFile) -> Result<PathBuf, AggregatorError> {
    let target = local_path(dir, table, file);
    if table.local_path(file).is_some() {
        return Ok(target);
    }
    let cache_error = |path: &Path, source| AggregatorError::Cache { path: path.display().to_string(), source };
    if std::fs::metadata(&target).is_ok_and(|meta| meta.len() as i64 == file.size) {
        return Ok(target);
    }
    let bytes = table.read_file_bytes(file).await?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| cache_error(parent, e))?;
    }
    let partial = target.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, &bytes).map_err(|e| cache_error(&partial, e))?;
    std::fs::rename(&partial, &target).map_err(|e| cache_error(&target, e))?;
    Ok(target)
}

/// Deletes cached files in `dir` that are no longer in the snapshot (Lambda's /tmp is bounded).
fn remove_stale(dir: &Path, keep: &[PathBuf]) -> Result<(), AggregatorError> {
    let keep: HashSet<&Path> = keep.iter().map(PathBuf::as_path).collect();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                // The kept latest dates are not data files: [`kept_latest_dates`] keeps their copy.
                if path.file_name().is_some_and(|name| name == DERIVED_DIR) {
                    continue;
                }
                pending.push(path);
            } else if !keep.contains(path.as_path()) {
                std::fs::remove_file(&path)
                    .map_err(|e| AggregatorError::Cache { path: path.display().to_string(), source: e })?;
            }
        }
    }
    Ok(())
}
