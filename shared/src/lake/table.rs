//! One Delta table: open or create it, read a writer's committed position, append in one commit.

use super::schema::TableSpec;
use super::{CHECKPOINT_INTERVAL, LakeError, LakeLocation};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Transaction};
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, Path, TableProperty};
use std::collections::HashMap;

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

/// A loaded Delta table of the lake.
pub struct LakeTable {
    table: DeltaTable,
    name: &'static str,
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
        let url = location.table_url(spec.name)?;
        if url.scheme() == "file"
            && let Ok(dir) = url.to_file_path()
        {
            // delta-rs refuses a local location that does not exist yet; S3 has no directories.
            std::fs::create_dir_all(&dir).map_err(|e| LakeError::Location(format!("{}: {e}", dir.display())))?;
        }
        let mut table = DeltaTableBuilder::from_url(url)
            .map_err(delta)?
            .with_storage_options(location.storage_options().clone())
            .build()
            .map_err(delta)?;
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
        let lake_table = Self { table, name: spec.name };
        lake_table.ensure_columns(spec)?;
        Ok(lake_table)
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
                table: self.name.to_string(),
                reason: format!("the table has no column {}", missing.join(", ")),
            })
        }
    }

    fn delta(&self, source: DeltaTableError) -> LakeError {
        LakeError::Delta { table: self.name.to_string(), source }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The loaded version (a table is created at version 0).
    pub fn version(&self) -> Option<u64> {
        self.table.version()
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
        let path = Path::parse(&file.path).unwrap_or_else(|_| Path::from(file.path.as_str()));
        let store = self.table.object_store();
        let read = async { store.get(&path).await?.bytes().await };
        read.await.map_err(|e| self.delta(DeltaTableError::ObjectStore { source: e }))
    }

    /// Every row of the current snapshot, file by file (partition columns are in
    /// [`LakeFile::partition_values`], not in the batches). For tests and small tables; the
    /// aggregator hands the files to DuckDB instead.
    pub async fn read_all(&self) -> Result<Vec<(LakeFile, Vec<RecordBatch>)>, LakeError> {
        let mut out = Vec::new();
        for file in self.files()? {
            let bytes = self.read_file_bytes(&file).await?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(|builder| builder.build())
                .map_err(|e| self.delta(DeltaTableError::Parquet { source: e }))?;
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| LakeError::Batch { table: self.name.to_string(), reason: e.to_string() })?;
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
        self.table.update_state().await.map_err(|e| LakeError::Delta { table: self.name.to_string(), source: e })
    }

    /// The last version `app_id` committed, in the latest table version.
    pub async fn committed_position(&mut self, app_id: &str) -> Result<Option<i64>, LakeError> {
        self.refresh().await?;
        let snapshot = self.table.snapshot().map_err(|e| self.delta(e))?;
        snapshot
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| LakeError::Delta { table: self.name.to_string(), source: e })
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
        let mut writer = RecordBatchWriter::for_table(&self.table).map_err(|e| self.delta(e))?;
        for batch in batches {
            writer.write(batch).await.map_err(|e| self.delta(e))?;
        }
        let adds: Vec<Action> = writer.flush().await.map_err(|e| self.delta(e))?.into_iter().map(Action::Add).collect();
        let mut properties = CommitProperties::default();
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
                self.table.state = Some(finalized.snapshot());
                Ok(AppendOutcome::Committed { version })
            }
            Err(error) => {
                // The log entry may be written although the call failed (the checkpoint after it
                // failed, or the answer to the conditional put was lost): the position tells.
                if let Some(position) = &position
                    && self.committed_position(&position.app_id).await?.is_some_and(|done| done >= position.version)
                {
                    tracing::warn!(table = self.name, error = %error, "commit reported an error but is in the log");
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
    use crate::lake::schema::{Column, ColumnType, LEADS, TableSpec};
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
        };
        let location = temp_location();
        LakeTable::open_or_create(&location, &NARROW).await.unwrap();
        let error = LakeTable::open_or_create(&location, &LEADS).await.err().unwrap().to_string();
        assert!(error.starts_with("Delta table leads: the table has no column nom, email"), "{error}");
    }
}
