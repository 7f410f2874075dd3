//! One Delta table: open or create it, read a writer's committed position, append in one commit.

use super::schema::TableSpec;
use super::{CHECKPOINT_INTERVAL, LakeError, LakeLocation};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Transaction};
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, Path, TableProperty};
use std::collections::HashMap;

/// Rows per batch when a data file is read back.
const READ_BATCH_ROWS: usize = 65_536;

/// Reader features that change nothing for a reader of the snapshot's Parquet files.
const HONOURED_READER_FEATURES: &[&str] = &["timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"];

/// The table at its location, not loaded yet; `create_local_dir` for writers (delta-rs refuses a
/// local location that does not exist yet; S3 has no directories).
fn unloaded_table(location: &LakeLocation, spec: &TableSpec, create_local_dir: bool) -> Result<DeltaTable, LakeError> {
    let delta = |source| LakeError::Delta { table: spec.name.to_string(), source };
    let url = location.table_url(spec.name)?;
    if create_local_dir
        && url.scheme() == "file"
        && let Ok(dir) = url.to_file_path()
    {
        std::fs::create_dir_all(&dir).map_err(|e| LakeError::Location(format!("{}: {e}", dir.display())))?;
    }
    DeltaTableBuilder::from_url(url)
        .map_err(delta)?
        .with_storage_options(location.storage_options().clone())
        .build()
        .map_err(delta)
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// A new table version holds the rows (and the writer's position).
    Committed { version: u64 },
    /// The writer's position was already at or past this write: nothing was written again.
    AlreadyCommitted,
}

/// A data file of the table's current snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeFile {
    /// Relative to the table root, percent-decoded.
    pub path: String,
    /// Partition column values as the log keeps them (text; `None` for null).
    pub partition_values: HashMap<String, Option<String>>,
    pub size: i64,
}

/// Attempts of an append's commit. Appends only add files, so a commit that lost the race to a
/// concurrent writer is retried on the new version and always succeeds in the end; delta-rs's
/// default of 15 was exhausted once by 8 concurrent writers on the loaded 2-core CI machine, and
/// every Lambda instance the queue starts is such a writer (a failed batch would only come back
/// after the queue's visibility timeout).
const APPEND_COMMIT_ATTEMPTS: usize = 100;

/// The properties of every commit of ours: no expired-log cleanup after it. delta-rs cleans by
/// default after each commit, and its cleanup lists the whole `_delta_log/` (every entry of the
/// log's 30-day retention, a thousand keys per S3 LIST request) to find the few it may delete:
/// on a table the lake writer commits to every few seconds that is a listing growing with the
/// table's age, paid by every batch. The maintenance job expires the log once a run instead
/// ([`LakeTable::expire_log_entries`]), just before vacuum, whose first commit delta-rs makes with
/// its default properties.
pub(crate) fn commit_properties() -> CommitProperties {
    CommitProperties::default().with_cleanup_expired_logs(Some(false))
}

/// A loaded Delta table of the lake.
pub struct LakeTable {
    table: DeltaTable,
    spec: &'static TableSpec,
}

/// A writer's name and the number of the write being committed: after a successful commit the
/// table's `txn` for `app_id` is `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPosition {
    pub app_id: String,
    pub version: i64,
}

impl LakeTable {
    /// Loads the table, creating it (with the declared columns, partitioning and checkpoint
    /// interval) when the location holds none yet.
    pub async fn open_or_create(location: &LakeLocation, spec: &'static TableSpec) -> Result<Self, LakeError> {
        let delta = |source| LakeError::Delta { table: spec.name.to_string(), source };
        let mut table = unloaded_table(location, spec, true)?;
        match table.load().await {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => {
                // Two first writers may race to create version 0: the loser's conditional put
                // fails and it loads the winner's table instead.
                let created = table
                    .create()
                    .with_table_name(spec.name)
                    .with_columns(spec.delta_fields())
                    .with_partition_columns(spec.partition_columns.iter().copied())
                    .with_configuration_property(
                        TableProperty::CheckpointInterval,
                        Some(CHECKPOINT_INTERVAL.to_string()),
                    )
                    .with_save_mode(SaveMode::Ignore)
                    .with_commit_properties(commit_properties())
                    .await;
                table = match created {
                    Ok(table) => table,
                    Err(create_error) => match table.load().await {
                        Ok(()) => table,
                        Err(_) => return Err(delta(create_error)),
                    },
                };
            }
            Err(other) => return Err(delta(other)),
        }
        let lake_table = Self { table, spec };
        lake_table.ensure_columns(spec)?;
        Ok(lake_table)
    }

    /// Loads the table for reading; `None` when nothing was ever written there. A table whose
    /// format this code cannot read correctly is refused (see [`LakeTable::ensure_readable`]).
    pub async fn open_existing(location: &LakeLocation, spec: &'static TableSpec) -> Result<Option<Self>, LakeError> {
        let url = location.table_url(spec.name)?;
        if url.scheme() == "file" && url.to_file_path().is_ok_and(|dir| !dir.exists()) {
            // delta-rs answers a missing local directory with an error, not "not a table".
            return Ok(None);
        }
        let mut table = unloaded_table(location, spec, false)?;
        match table.load().await {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => return Ok(None),
            Err(other) => return Err(LakeError::Delta { table: spec.name.to_string(), source: other }),
        }
        let lake_table = Self { table, spec };
        lake_table.ensure_readable()?;
        lake_table.ensure_columns(spec)?;
        Ok(Some(lake_table))
    }

    /// Our readers hand the snapshot's Parquet files to DuckDB as they are, so a table that needs
    /// more from a reader than that (deletion vectors hide rows inside files, column mapping
    /// renames physical columns, an unknown feature may do anything) is refused rather than read
    /// wrongly.
    pub fn ensure_readable(&self) -> Result<(), LakeError> {
        let snapshot = self.table.snapshot().map_err(|e| self.delta(e))?;
        let refuse = |reason: String| Err(LakeError::Unsupported { table: self.spec.name.to_string(), reason });
        // The kernel's protocol accessors are crate-private; its serde form is the Delta protocol's.
        let protocol = serde_json::to_value(snapshot.protocol())
            .map_err(|e| LakeError::Unsupported { table: self.spec.name.to_string(), reason: e.to_string() })?;
        let min_reader = protocol.get("minReaderVersion").and_then(serde_json::Value::as_i64).unwrap_or(1);
        let features: Vec<&str> = protocol
            .get("readerFeatures")
            .and_then(serde_json::Value::as_array)
            .map(|list| list.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        let unsupported: Vec<&str> =
            features.iter().copied().filter(|f| !HONOURED_READER_FEATURES.contains(f)).collect();
        if !unsupported.is_empty() {
            return refuse(format!(
                "the table needs reader features this reader does not honour: {}",
                unsupported.join(", ")
            ));
        }
        let mapping = snapshot.metadata().configuration().get("delta.columnMapping.mode").map(String::as_str);
        if min_reader == 2 || mapping.is_some_and(|mode| mode != "none") {
            return refuse("the table uses column mapping, which this reader does not honour".into());
        }
        if min_reader > 3 {
            return refuse(format!("the table needs reader version {min_reader}"));
        }
        Ok(())
    }

    /// Rows in the snapshot, from the log's file statistics (no data file is read). `None` when a
    /// file was written without statistics.
    pub fn row_count(&self) -> Result<Option<u64>, LakeError> {
        let snapshot = self.table.snapshot().map_err(|e| self.delta(e))?;
        Ok(snapshot.log_data().iter().map(|file| file.num_records().map(|n| n as u64)).sum())
    }

    /// When the loaded version was committed (the log entry's modification time).
    pub fn last_commit_time(&self) -> Result<Option<jiff::Timestamp>, LakeError> {
        let snapshot = self.table.snapshot().map_err(|e| self.delta(e))?;
        let version = snapshot.version();
        Ok(snapshot.version_timestamp(version).and_then(|millis| jiff::Timestamp::from_millisecond(millis).ok()))
    }

    /// A data file's path on local disk, when the table lives on local disk.
    pub fn local_path(&self, file: &LakeFile) -> Option<std::path::PathBuf> {
        let root = self.table.table_url().to_file_path().ok()?;
        Some(root.join(&file.path))
    }

    /// Refuses a table that lacks a declared column (written by an older, incompatible release or
    /// by hand): appending would fail half-way, reading would mislead.
    fn ensure_columns(&self, spec: &TableSpec) -> Result<(), LakeError> {
        let schema = self.table.snapshot().map_err(|e| self.delta(e))?.schema();
        let missing: Vec<&str> =
            spec.columns.iter().map(|c| c.name).filter(|name| schema.field(name).is_none()).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(LakeError::Unsupported {
                table: self.spec.name.to_string(),
                reason: format!("the table has no column {}", missing.join(", ")),
            })
        }
    }

    pub(super) fn delta(&self, source: DeltaTableError) -> LakeError {
        LakeError::Delta { table: self.spec.name.to_string(), source }
    }

    pub(super) fn batch_error(&self, reason: String) -> LakeError {
        LakeError::Batch { table: self.spec.name.to_string(), reason }
    }

    /// Adopts the snapshot a commit of ours produced (no need to read the log again).
    pub(super) fn set_state(&mut self, snapshot: deltalake::table::state::DeltaTableState) {
        self.table.state = Some(snapshot);
    }

    /// Loads the latest version again from the log's last checkpoint, forgetting the snapshot.
    pub(super) async fn reload(&mut self) -> Result<(), LakeError> {
        self.table.state = None;
        self.refresh().await
    }

    /// Adopts the table an operation returned.
    pub(super) fn replace_table(&mut self, table: DeltaTable) {
        self.table = table;
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// The loaded version (a table is created at version 0).
    pub fn version(&self) -> Option<u64> {
        self.table.version()
    }

    pub fn spec(&self) -> &'static TableSpec {
        self.spec
    }

    pub fn delta_table(&self) -> &DeltaTable {
        &self.table
    }

    /// The data files of the loaded snapshot.
    pub fn files(&self) -> Result<Vec<LakeFile>, LakeError> {
        let snapshot = self.table.snapshot().map_err(|e| self.delta(e))?;
        Ok(snapshot
            .log_data()
            .iter()
            .map(|view| {
                // The raw partition map is private in delta-rs 0.32; the Add action is the public
                // way to it (deprecated there in favour of typed values we would only print back).
                #[allow(deprecated)]
                let add = view.add_action();
                LakeFile { path: view.path().into_owned(), partition_values: add.partition_values, size: view.size() }
            })
            .collect())
    }

    /// The bytes of one data file, through the table's object store (S3, moto or local disk).
    pub async fn read_file_bytes(&self, file: &LakeFile) -> Result<bytes::Bytes, LakeError> {
        self.read_path_bytes(&file.path).await
    }

    /// The bytes of a data file named by its path relative to the table root, percent-decoded.
    pub(super) async fn read_path_bytes(&self, path: &str) -> Result<bytes::Bytes, LakeError> {
        let path = Path::parse(path).unwrap_or_else(|_| Path::from(path));
        let store = self.table.object_store();
        let read = async { store.get(&path).await?.bytes().await };
        read.await.map_err(|e| self.delta(DeltaTableError::ObjectStore { source: e }))
    }

    /// The record batches of a data file named by its path relative to the table root (the file's
    /// own columns: partition values are in the log). Large batches, since appending them to a
    /// writer copies the writer's buffer each time.
    pub(super) async fn read_path_batches(&self, path: &str) -> Result<ParquetRecordBatchReader, LakeError> {
        let bytes = self.read_path_bytes(path).await?;
        ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map(|builder| builder.with_batch_size(READ_BATCH_ROWS))
            .and_then(|builder| builder.build())
            .map_err(|e| self.delta(DeltaTableError::Parquet { source: e }))
    }

    /// The rows of one file of the snapshot, to stream a table file by file.
    pub async fn read_file(&self, file: &LakeFile) -> Result<Vec<RecordBatch>, LakeError> {
        let reader = self.read_path_batches(&file.path).await?;
        reader.collect::<Result<Vec<_>, _>>().map_err(|e| self.batch_error(e.to_string()))
    }

    /// Every row of the current snapshot, file by file (partition columns are in
    /// [`LakeFile::partition_values`], not in the batches). For tests and small tables; the
    /// aggregator hands the files to DuckDB instead.
    pub async fn read_all(&self) -> Result<Vec<(LakeFile, Vec<RecordBatch>)>, LakeError> {
        let mut out = Vec::new();
        for file in self.files()? {
            let batches = self.read_file(&file).await?;
            out.push((file, batches));
        }
        Ok(out)
    }

    /// The Arrow schema batches must have to be appended.
    pub fn arrow_schema(&self) -> Result<SchemaRef, LakeError> {
        let writer = RecordBatchWriter::for_table(&self.table).map_err(|e| self.delta(e))?;
        Ok(writer.arrow_schema())
    }

    /// Reloads the latest version of the log.
    pub async fn refresh(&mut self) -> Result<(), LakeError> {
        self.table.update_state().await.map_err(|e| LakeError::Delta { table: self.spec.name.to_string(), source: e })
    }

    /// The last version `app_id` committed, in the latest table version.
    pub async fn committed_position(&mut self, app_id: &str) -> Result<Option<i64>, LakeError> {
        self.refresh().await?;
        let snapshot = self.table.snapshot().map_err(|e| self.delta(e))?;
        snapshot
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| LakeError::Delta { table: self.spec.name.to_string(), source: e })
    }

    /// Appends the batches (possibly none) in one commit. With a position, the commit also records
    /// it, and is skipped when the writer's committed position is already at or past it.
    pub async fn append(
        &mut self,
        batches: Vec<RecordBatch>,
        position: Option<AppPosition>,
    ) -> Result<AppendOutcome, LakeError> {
        if let Some(position) = &position
            && self.committed_position(&position.app_id).await?.is_some_and(|done| done >= position.version)
        {
            return Ok(AppendOutcome::AlreadyCommitted);
        }
        let mut writer = RecordBatchWriter::for_table(&self.table)
            .map_err(|e| self.delta(e))?
            .with_writer_properties(self.spec.writer_properties());
        for batch in batches {
            writer.write(batch).await.map_err(|e| self.delta(e))?;
        }
        let adds: Vec<Action> = writer.flush().await.map_err(|e| self.delta(e))?.into_iter().map(Action::Add).collect();
        let mut properties = commit_properties().with_max_retries(APPEND_COMMIT_ATTEMPTS);
        if let Some(position) = &position {
            properties = properties.with_application_transaction(Transaction::new(&position.app_id, position.version));
        }
        let partition_columns: Vec<String> =
            self.table.snapshot().map_err(|e| self.delta(e))?.metadata().partition_columns().to_vec();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: (!partition_columns.is_empty()).then_some(partition_columns),
            predicate: None,
        };
        let snapshot = self.table.snapshot().map_err(|e| self.delta(e))?;
        let committed = CommitBuilder::from(properties)
            .with_actions(adds)
            .build(Some(snapshot), self.table.log_store(), operation)
            .await;
        match committed {
            Ok(finalized) => {
                let version = finalized.version();
                self.set_state(finalized.snapshot());
                Ok(AppendOutcome::Committed { version })
            }
            Err(error) => {
                // The log entry may be written although the call failed (the checkpoint after it
                // failed, or the answer to the conditional put was lost): the position tells.
                if let Some(position) = &position
                    && self.committed_position(&position.app_id).await?.is_some_and(|done| done >= position.version)
                {
                    tracing::warn!(table = self.spec.name, error = %error, "commit reported an error but is in the log");
                    return Ok(AppendOutcome::AlreadyCommitted);
                }
                Err(self.delta(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, ColumnType, LEADS, TableSpec};
    use deltalake::arrow::array::{Array, AsArray, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc as StdArc;

    fn temp_location() -> LakeLocation {
        let dir = std::env::temp_dir().join(format!("tributary-lake-unit-{}", uuid::Uuid::new_v4()));
        LakeLocation::local_dir(&dir).unwrap()
    }

    /// A `leads` batch of `ids` (the other optional columns null).
    fn leads_batch(schema: &SchemaRef, ids: &[&str]) -> RecordBatch {
        let text =
            |values: Vec<Option<&str>>| StdArc::new(StringArray::from(values)) as deltalake::arrow::array::ArrayRef;
        let at = StdArc::new(TimestampMicrosecondArray::from(vec![0i64; ids.len()]).with_timezone("UTC"));
        let columns = schema
            .fields()
            .iter()
            .map(|field| match field.name().as_str() {
                "id" => text(ids.iter().map(|id| Some(*id)).collect()),
                "nom" => text(ids.iter().map(|_| Some("Ada")).collect()),
                "_event_id" => text(ids.iter().map(|id| Some(*id)).collect()),
                "_occurred_at" | "_ingested_at" => at.clone() as _,
                _ => text(vec![None; ids.len()]),
            })
            .collect();
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    }

    async fn ids(table: &LakeTable) -> Vec<String> {
        let mut ids = Vec::new();
        for (_, batches) in table.read_all().await.unwrap() {
            for batch in batches {
                let column = batch.column_by_name("id").unwrap().as_string::<i32>();
                ids.extend((0..column.len()).map(|i| column.value(i).to_string()));
            }
        }
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn positions_commit_with_the_rows_and_a_committed_position_is_not_appended_again() {
        let location = temp_location();
        let mut table = LakeTable::open_or_create(&location, &LEADS).await.unwrap();
        assert_eq!(table.version(), Some(0));
        let schema = table.arrow_schema().unwrap();
        let position = |version| Some(AppPosition { app_id: "writer-a".into(), version });
        assert_eq!(table.committed_position("writer-a").await.unwrap(), None);
        let first = table.append(vec![leads_batch(&schema, &["l1", "l2"])], position(1)).await.unwrap();
        assert_eq!(first, AppendOutcome::Committed { version: 1 });
        // A rerun of the same write (a crash after the commit) is skipped.
        let again = table.append(vec![leads_batch(&schema, &["l1", "l2"])], position(1)).await.unwrap();
        assert_eq!(again, AppendOutcome::AlreadyCommitted);
        // No rows, only the position (a day without visits).
        assert_eq!(table.append(vec![], position(5)).await.unwrap(), AppendOutcome::Committed { version: 2 });
        assert_eq!(table.committed_position("writer-a").await.unwrap(), Some(5));
        // Another table handle (another process) sees the same.
        let mut other = LakeTable::open_or_create(&location, &LEADS).await.unwrap();
        assert_eq!(other.committed_position("writer-a").await.unwrap(), Some(5));
        assert_eq!(other.committed_position("writer-b").await.unwrap(), None);
        assert_eq!(ids(&other).await, vec!["l1".to_string(), "l2".to_string()]);
    }

    #[tokio::test]
    async fn checkpoints_are_written_at_the_interval_and_positions_survive_them() {
        let location = temp_location();
        let mut table = LakeTable::open_or_create(&location, &LEADS).await.unwrap();
        let schema = table.arrow_schema().unwrap();
        for n in 1..=(CHECKPOINT_INTERVAL as i64 + 2) {
            let id = format!("l{n}");
            table
                .append(
                    vec![leads_batch(&schema, &[id.as_str()])],
                    Some(AppPosition { app_id: "w".into(), version: n }),
                )
                .await
                .unwrap();
        }
        let log = location.table_url("leads").unwrap().to_file_path().unwrap().join("_delta_log");
        // delta-rs checkpoints after version v when v + 1 is a multiple of the interval.
        let checkpoint = log.join(format!("{:020}.checkpoint.parquet", CHECKPOINT_INTERVAL - 1));
        assert!(checkpoint.exists(), "{} missing", checkpoint.display());
        let mut reopened = LakeTable::open_or_create(&location, &LEADS).await.unwrap();
        assert_eq!(reopened.committed_position("w").await.unwrap(), Some(CHECKPOINT_INTERVAL as i64 + 2));
        assert_eq!(ids(&reopened).await.len(), CHECKPOINT_INTERVAL as usize + 2);
    }

    #[tokio::test]
    async fn a_table_without_a_declared_column_is_refused() {
        static NARROW: TableSpec = TableSpec {
            name: "leads",
            columns: &[Column { name: "id", column_type: ColumnType::String, nullable: false }],
            partition_columns: &[],
            documents: &[],
        };
        let location = temp_location();
        LakeTable::open_or_create(&location, &NARROW).await.unwrap();
        let error = LakeTable::open_or_create(&location, &LEADS).await.err().unwrap().to_string();
        assert!(error.starts_with("Delta table leads: the table has no column nom, email"), "{error}");
    }
}
