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
                    Err(_) => {
                        table.load().await.map_err(delta)?;
                        table
                    }
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
