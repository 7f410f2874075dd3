//! A Delta table's current snapshot as Parquet files on local disk, for DuckDB.
//!
//! The file list (and the check that the table can be read this way) comes from the Delta log
//! through delta-rs. On S3 each data file is downloaded once into a cache directory: Delta never
//! rewrites a data file, so a warm Lambda fetches only files added since its last request, and
//! files that left the snapshot (compaction, vacuum) are removed from the cache.

use crate::AggregatorError;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tributary_lake::schema::TableSpec;
use tributary_lake::{LakeError, LakeFile, LakeLocation, LakeTable};

/// Files downloaded at once.
const PARALLEL_DOWNLOADS: usize = 8;

/// What a reader sees: the table version and its data files on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSnapshot {
    /// `None`: the table does not exist yet (nothing was ever written).
    pub version: Option<u64>,
    pub files: Vec<PathBuf>,
}

/// Keeps one table's snapshot available locally.
pub struct SnapshotCache {
    location: LakeLocation,
    spec: &'static TableSpec,
    /// `<cache>/<table>/`, for tables on S3.
    dir: PathBuf,
    table: Option<LakeTable>,
}

impl SnapshotCache {
    pub fn new(location: LakeLocation, spec: &'static TableSpec, cache_dir: &Path) -> Self {
        Self { location, spec, dir: cache_dir.join(spec.name), table: None }
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
                None => return Ok(LocalSnapshot { version: None, files: Vec::new() }),
            },
        };
        let lake_files = table.files()?;
        let mut local = Vec::with_capacity(lake_files.len());
        for chunk in lake_files.chunks(PARALLEL_DOWNLOADS) {
            let mut copies = Vec::with_capacity(chunk.len());
            for file in chunk {
                copies.push(local_copy(&self.dir, table, file));
            }
            local.extend(futures::future::try_join_all(copies).await?);
        }
        if self.location.local_root().is_none() {
            remove_stale(&self.dir, &local)?;
        }
        Ok(LocalSnapshot { version: table.version(), files: local })
    }
}

/// The file itself for a table on local disk; otherwise its cached copy in `dir`, downloaded first
/// if missing (written under a temporary name and renamed, so a cut download is never used).
async fn local_copy(dir: &Path, table: &LakeTable, file: &LakeFile) -> Result<PathBuf, AggregatorError> {
    if let Some(path) = table.local_path(file) {
        return Ok(path);
    }
    let target = dir.join(&file.path);
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
                pending.push(path);
            } else if !keep.contains(path.as_path()) {
                std::fs::remove_file(&path)
                    .map_err(|e| AggregatorError::Cache { path: path.display().to_string(), source: e })?;
            }
        }
    }
    Ok(())
}
