//! Keeping a table cheap to read as it grows: compaction of small files and vacuum.
//!
//! The lake writer appends one small file per SQS batch (a few KB every few seconds), so a month of
//! traffic leaves tens of thousands of files that every reader must list, download and open.
//! [`LakeTable::compact`] rewrites the small files of each partition into larger ones and commits
//! the swap as one `OPTIMIZE` entry (`dataChange: false`): readers see the same rows before and
//! after, and concurrent appends do not conflict with it (they only add files). The replaced files
//! stay on storage, still needed by readers of older snapshots, until [`LakeTable::vacuum`] deletes
//! them once the table's retention period (`delta.deletedFileRetentionDuration`, 7 days by default)
//! has passed since their removal.
//!
//! delta-rs's own `optimize` needs its DataFusion feature, a large dependency the lake does not
//! otherwise use; the rewrite here is a file-level bin-packing that reads each file back with the
//! Parquet reader and writes through the same `RecordBatchWriter` as appends.

use super::LakeError;
use super::table::{LakeTable, commit_properties};
use deltalake::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array, new_null_array};
use deltalake::arrow::compute::{CastOptions, cast_with_options, take};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Remove};
use deltalake::operations::vacuum::{Clock, VacuumMode};
use deltalake::protocol::DeltaOperation;
use deltalake::protocol::checkpoints::cleanup_expired_logs_for;
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which files compaction rewrites, and how much it rewrites into one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// A file smaller than this is worth merging.
    pub small_file_bytes: i64,
    /// Small files are packed into groups of at most this many bytes; each group becomes one file.
    /// The rewrite holds one group's output in memory, so this bounds the memory it needs.
    pub target_file_bytes: i64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        // Parquet readers (DuckDB included) do best with files of tens to hundreds of MB; 128 MB
        // also keeps a rewrite well inside a 1 GB Lambda.
        Self { small_file_bytes: 32 * 1024 * 1024, target_file_bytes: 128 * 1024 * 1024 }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionSummary {
    /// The last `OPTIMIZE` version (one per group of files), or `None` when no partition had two
    /// small files.
    pub version: Option<u64>,
    /// The deadline came before every group was rewritten; the next run continues.
    pub stopped_at_deadline: bool,
    pub files_removed: usize,
    pub files_added: usize,
    pub bytes_removed: i64,
    pub bytes_added: i64,
}

/// What a vacuum did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumSummary {
    pub files_deleted: usize,
}

/// A file's partition values as the log keeps them (text, `None` for null), ordered.
type PartitionValues = BTreeMap<String, Option<String>>;

/// A snapshot file that compaction may replace.
struct Candidate {
    remove: Remove,
    partition: PartitionValues,
}

/// Packs each partition's small files, in log order, into groups of at most `target` bytes; a
/// group of one file would be rewritten for nothing and is dropped.
fn plan_groups<T>(files: Vec<(PartitionValues, i64, T)>, target: i64) -> Vec<Vec<T>> {
    let mut by_partition: BTreeMap<PartitionValues, Vec<(i64, T)>> = BTreeMap::new();
    for (partition, size, file) in files {
        by_partition.entry(partition).or_default().push((size, file));
    }
    let mut groups = Vec::new();
    for files in by_partition.into_values() {
        let mut group = Vec::new();
        let mut group_bytes = 0;
        for (size, file) in files {
            if !group.is_empty() && group_bytes + size > target {
                groups.push(std::mem::take(&mut group));
                group_bytes = 0;
            }
            group.push(file);
            group_bytes += size;
        }
        groups.push(group);
    }
    groups.retain(|group| group.len() > 1);
    groups
}

/// A value that does not convert is an error, not a silent null.
const STRICT: CastOptions<'static> =
    CastOptions { safe: false, format_options: deltalake::arrow::util::display::FormatOptions::new() };

/// A batch read back from one data file, shaped like the table's write schema: partition columns
/// (kept in the log, not in the file) come back from the file's partition values, and columns
/// added after the file was written (an additive schema change) are null.
fn conform_batch(batch: &RecordBatch, schema: &SchemaRef, partition: &PartitionValues) -> Result<RecordBatch, String> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column: ArrayRef = if let Some(value) = partition.get(field.name()) {
                match value {
                    Some(text) => {
                        // The file's one value, converted once and repeated for its rows.
                        let value =
                            cast_with_options(&StringArray::from(vec![text.as_str()]), field.data_type(), &STRICT)
                                .map_err(|e| format!("partition value {}={text}: {e}", field.name()))?;
                        take(&value, &UInt32Array::from(vec![0; rows]), None)
                            .map_err(|e| format!("partition value {}={text}: {e}", field.name()))?
                    }
                    None => new_null_array(field.data_type(), rows),
                }
            } else if let Some(column) = batch.column_by_name(field.name()) {
                if column.data_type() == field.data_type() {
                    column.clone()
                } else {
                    cast_with_options(column, field.data_type(), &STRICT)
                        .map_err(|e| format!("column {}: {e}", field.name()))?
                }
            } else {
                new_null_array(field.data_type(), rows)
            };
            Ok(column)
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// The vacuum's notion of "now", so that tests can move past the retention period.
#[derive(Debug)]
struct FixedClock(i64);

impl Clock for FixedClock {
    fn current_timestamp_millis(&self) -> i64 {
        self.0
    }
}

impl LakeTable {
    /// Rewrites the latest snapshot's small files, partition by partition, into files of up to
    /// `policy.target_file_bytes`, each group's swap committed as one `OPTIMIZE` entry. No group is
    /// started after `deadline`. The rows, the writers' positions and every other file are
    /// untouched.
    pub async fn compact(
        &mut self,
        policy: CompactionPolicy,
        deadline: jiff::Timestamp,
    ) -> Result<CompactionSummary, LakeError> {
        self.refresh().await?;
        let schema = self.arrow_schema()?;
        let snapshot = self.delta_table().snapshot().map_err(|e| self.delta(e))?;
        let candidates: Vec<(PartitionValues, i64, Candidate)> = snapshot
            .log_data()
            .iter()
            .filter(|view| view.size() < policy.small_file_bytes)
            .map(|view| {
                let remove = view.remove_action(false);
                let partition: PartitionValues =
                    remove.partition_values.clone().unwrap_or_default().into_iter().collect();
                (partition.clone(), view.size(), Candidate { remove, partition })
            })
            .collect();
        let mut summary = CompactionSummary::default();
        // One commit per group: a backlog larger than one run can rewrite (the first run on a
        // lake that grew for months) is worked off over several runs, each keeping what it did.
        for group in plan_groups(candidates, policy.target_file_bytes) {
            if jiff::Timestamp::now() >= deadline {
                summary.stopped_at_deadline = true;
                break;
            }
            let mut actions = Vec::new();
            let mut writer = RecordBatchWriter::for_table(self.delta_table())
                .map_err(|e| self.delta(e))?
                .with_writer_properties(self.spec().writer_properties());
            for candidate in group {
                let path = candidate.remove.path.as_str();
                for batch in self.read_path_batches(path).await? {
                    let batch = batch.map_err(|e| self.batch_error(format!("{path}: {e}")))?;
                    let batch = conform_batch(&batch, &schema, &candidate.partition)
                        .map_err(|reason| self.batch_error(format!("{path}: {reason}")))?;
                    writer.write(batch).await.map_err(|e| self.delta(e))?;
                }
                summary.files_removed += 1;
                summary.bytes_removed += candidate.remove.size.unwrap_or_default();
                actions.push(Action::Remove(candidate.remove));
            }
            for mut add in writer.flush().await.map_err(|e| self.delta(e))? {
                // The same rows in fewer files: streaming readers of the log skip this commit.
                add.data_change = false;
                summary.files_added += 1;
                summary.bytes_added += add.size;
                actions.push(Action::Add(add));
            }
            let operation = DeltaOperation::Optimize { predicate: None, target_size: policy.target_file_bytes };
            let snapshot = self.delta_table().snapshot().map_err(|e| self.delta(e))?;
            let committed = CommitBuilder::from(commit_properties())
                .with_actions(actions)
                .build(Some(snapshot), self.delta_table().log_store(), operation)
                .await
                .map_err(|e| self.delta(e))?;
            summary.version = Some(committed.version());
            self.set_state(committed.snapshot());
        }
        Ok(summary)
    }

    /// Deletes the data files no snapshot within the retention period still needs: files removed
    /// (by compaction) longer ago than `delta.deletedFileRetentionDuration`, and files no commit
    /// ever referenced (left by a writer whose commit failed) older than that period.
    pub async fn vacuum(&mut self, now: jiff::Timestamp) -> Result<VacuumSummary, LakeError> {
        self.refresh().await?;
        let (table, metrics) = self
            .delta_table()
            .clone()
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_clock(Arc::new(FixedClock(now.as_millisecond())))
            .with_commit_properties(commit_properties())
            .await
            .map_err(|e| self.delta(e))?;
        self.replace_table(table);
        Ok(VacuumSummary { files_deleted: metrics.files_deleted.len() })
    }

    /// Deletes the log entries (commits and checkpoints) no reader needs any more: those before
    /// the latest checkpoint that is not newer than the oldest version committed within the table's
    /// `delta.logRetentionDuration` (30 days by default) before `now`, and themselves older than that
    /// period. Every version of the period can still be read. Returns how many were deleted.
    /// Commits do not clean the log ([`commit_properties`]): cleaning lists the whole log.
    pub async fn expire_log_entries(&mut self, now: jiff::Timestamp) -> Result<usize, LakeError> {
        self.refresh().await?;
        let snapshot = self.delta_table().snapshot().map_err(|e| self.delta(e))?;
        let retention = i64::try_from(snapshot.table_config().log_retention_duration().as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.as_millisecond().saturating_sub(retention);
        let deleted =
            cleanup_expired_logs_for(snapshot.version(), self.delta_table().log_store().as_ref(), cutoff, None)
                .await
                .map_err(|e| self.delta(e))?;
        if deleted > 0 {
            // The loaded snapshot may have been read from entries just deleted: load it again
            // from what is left, as delta-rs does after its own cleanup.
            self.reload().await?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EVENTS;
    use crate::{AppPosition, LakeLocation, date32};
    use deltalake::arrow::array::{Array, AsArray, Date32Array, TimestampMicrosecondArray};

    /// An `events` batch: one row per id, on `day`.
    fn events_batch(schema: &SchemaRef, ids: &[String], day: jiff::civil::Date) -> RecordBatch {
        let n = ids.len();
        let text = |value: &str| Arc::new(StringArray::from(vec![value; n])) as ArrayRef;
        let at = Arc::new(TimestampMicrosecondArray::from(vec![0i64; n]).with_timezone("UTC")) as ArrayRef;
        let columns = schema
            .fields()
            .iter()
            .map(|field| match field.name().as_str() {
                "id" => Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
                "occurred_at" | "received_at" => at.clone(),
                "event_date" => Arc::new(Date32Array::from(vec![date32(day); n])) as ArrayRef,
                "subject" => new_null_array(field.data_type(), n),
                other => text(other),
            })
            .collect();
        RecordBatch::try_new(schema.clone(), columns).unwrap()
    }

    /// Every (id, event_date) of the snapshot, sorted.
    async fn rows(table: &LakeTable) -> Vec<(String, i32)> {
        let mut rows = Vec::new();
        for (file, batches) in table.read_all().await.unwrap() {
            let day: jiff::civil::Date = file.partition_values["event_date"].as_deref().unwrap().parse().unwrap();
            for batch in batches {
                let ids = batch.column_by_name("id").unwrap().as_string::<i32>();
                rows.extend((0..ids.len()).map(|i| (ids.value(i).to_string(), date32(day))));
            }
        }
        rows.sort();
        rows
    }

    fn data_files(dir: &std::path::Path) -> usize {
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("_delta_log") {
                count += data_files(&path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                count += 1;
            }
        }
        count
    }

    #[tokio::test]
    async fn compaction_keeps_the_rows_and_positions_and_vacuum_waits_for_the_retention_period() {
        let dir = std::env::temp_dir().join(format!("tributary-compact-{}", uuid::Uuid::new_v4()));
        let location = LakeLocation::local_dir(&dir).unwrap();
        let mut table = LakeTable::open_or_create(&location, &EVENTS).await.unwrap();
        let schema = table.arrow_schema().unwrap();
        let days = [jiff::civil::date(2025, 1, 1), jiff::civil::date(2025, 1, 2)];
        for write in 0..12 {
            let ids: Vec<String> = (0..3).map(|i| format!("e{write}-{i}")).collect();
            let batch = events_batch(&schema, &ids, days[write % 2]);
            table
                .append(vec![batch], Some(AppPosition { app_id: "w".into(), version: write as i64 + 1 }))
                .await
                .unwrap();
        }
        let before = rows(&table).await;
        assert_eq!(before.len(), 36);
        assert_eq!(table.files().unwrap().len(), 12);

        // A run whose deadline has passed starts no group, though two are due, and says so.
        let late = table.compact(CompactionPolicy::default(), jiff::Timestamp::UNIX_EPOCH).await.unwrap();
        assert_eq!(late, CompactionSummary { stopped_at_deadline: true, ..CompactionSummary::default() });
        assert_eq!(table.files().unwrap().len(), 12);

        let summary = table.compact(CompactionPolicy::default(), jiff::Timestamp::MAX).await.unwrap();
        assert_eq!((summary.files_removed, summary.files_added), (12, 2));
        assert_eq!(summary.version, Some(14), "one commit per day");
        // A fresh reader sees the same rows in one file per day, and the writer's position.
        let mut reopened = LakeTable::open_existing(&location, &EVENTS).await.unwrap().unwrap();
        assert_eq!(rows(&reopened).await, before);
        assert_eq!(reopened.files().unwrap().len(), 2);
        assert_eq!(reopened.committed_position("w").await.unwrap(), Some(12));
        // The commit says it changed no data.
        let log = dir.join("events/_delta_log/00000000000000000013.json");
        let entry = std::fs::read_to_string(log).unwrap();
        assert!(entry.contains("\"operation\":\"OPTIMIZE\""), "{entry}");
        assert!(!entry.contains("\"dataChange\":true"), "{entry}");
        // Nothing left to merge: a second run commits nothing.
        assert_eq!(
            table.compact(CompactionPolicy::default(), jiff::Timestamp::MAX).await.unwrap(),
            CompactionSummary::default()
        );

        // A file no commit references (a writer died before committing).
        std::fs::write(dir.join("events/orphan.parquet"), b"not referenced").unwrap();
        let table_dir = dir.join("events");
        assert_eq!(data_files(&table_dir), 15);
        // Within the retention period the replaced files stay for readers of older snapshots.
        assert_eq!(table.vacuum(jiff::Timestamp::now()).await.unwrap().files_deleted, 0);
        assert_eq!(data_files(&table_dir), 15);
        let after_retention = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 8);
        assert_eq!(table.vacuum(after_retention).await.unwrap().files_deleted, 13);
        assert_eq!(data_files(&table_dir), 2);
        let reopened = LakeTable::open_existing(&location, &EVENTS).await.unwrap().unwrap();
        assert_eq!(rows(&reopened).await, before);
        let first_day = reopened
            .files()
            .unwrap()
            .iter()
            .filter(|f| f.partition_values["event_date"].as_deref() == Some("2025-01-01"))
            .count();
        assert_eq!(first_day, 1);
    }

    fn partition(day: &str) -> PartitionValues {
        [("day".to_string(), Some(day.to_string()))].into_iter().collect()
    }

    #[test]
    fn small_files_are_packed_per_partition_up_to_the_target() {
        let files = vec![
            (partition("2025-01-01"), 40, "a1"),
            (partition("2025-01-02"), 10, "b1"),
            (partition("2025-01-01"), 40, "a2"),
            (partition("2025-01-01"), 40, "a3"),
            (partition("2025-01-03"), 10, "c1"),
            (partition("2025-01-02"), 10, "b2"),
        ];
        let groups = plan_groups(files, 100);
        // 2025-01-01: a1+a2 fit in 100, a3 alone is left as it is; 2025-01-03 has one file.
        assert_eq!(groups, vec![vec!["a1", "a2"], vec!["b1", "b2"]]);
    }

    #[test]
    fn a_file_read_back_gets_its_partition_column_and_later_columns() {
        use deltalake::arrow::array::{Array, Date32Array, Int64Array};
        use deltalake::arrow::datatypes::{DataType, Field, Schema};
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("day", DataType::Date32, false),
            Field::new("added_later", DataType::Utf8, true),
        ]));
        let file_schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(file_schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let conformed = conform_batch(&batch, &schema, &partition("2025-01-02")).unwrap();
        let days = conformed.column(1).as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(days.values().to_vec(), vec![20090, 20090]);
        assert_eq!(conformed.column(2).null_count(), 2);
        let bad = conform_batch(&batch, &schema, &partition("not a day")).unwrap_err();
        assert!(bad.starts_with("partition value day=not a day"), "{bad}");
    }

    /// The log entries of `dir`'s `events` table: (version, file name), sorted.
    fn log_entries(dir: &std::path::Path) -> Vec<(u64, String)> {
        let mut entries: Vec<(u64, String)> = std::fs::read_dir(dir.join("events/_delta_log"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".json") || name.ends_with(".checkpoint.parquet"))
            .filter_map(|name| Some((name.split('.').next()?.parse().ok()?, name)))
            .collect();
        entries.sort();
        entries
    }

    #[tokio::test]
    async fn commits_leave_the_log_alone_and_maintenance_expires_its_old_entries() {
        let dir = std::env::temp_dir().join(format!("tributary-expire-{}", uuid::Uuid::new_v4()));
        let location = LakeLocation::local_dir(&dir).unwrap();
        let mut table = LakeTable::open_or_create(&location, &EVENTS).await.unwrap();
        let schema = table.arrow_schema().unwrap();
        let day = jiff::civil::date(2025, 1, 1);
        let interval = u64::from(crate::CHECKPOINT_INTERVAL);
        let append = async |table: &mut LakeTable, write: u64| {
            let ids = vec![format!("e{write}")];
            let position = AppPosition { app_id: "w".into(), version: write as i64 };
            table.append(vec![events_batch(&schema, &ids, day)], Some(position)).await.unwrap();
        };
        // Versions 1 to `interval` + 1: a checkpoint after version `interval` - 1.
        for write in 1..=interval + 1 {
            append(&mut table, write).await;
        }
        let checkpoint = interval - 1;
        // Every entry so far older than the log's retention period (30 days).
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 24 * 3600);
        for (_, name) in log_entries(&dir) {
            let file = std::fs::File::options().write(true).open(dir.join("events/_delta_log").join(name)).unwrap();
            file.set_modified(long_ago).unwrap();
        }
        let before = log_entries(&dir);
        assert!(before.iter().any(|(v, name)| *v == checkpoint && name.ends_with(".checkpoint.parquet")), "{before:?}");

        // A commit does not clean the log (delta-rs's default would delete versions 0 to
        // `checkpoint` - 1 here, after listing the whole log).
        append(&mut table, interval + 2).await;
        let after_commit = log_entries(&dir);
        assert!(after_commit.starts_with(&before), "a commit deleted log entries: {before:?} → {after_commit:?}");
        assert_eq!(after_commit.len(), before.len() + 1);

        // Maintenance does, once the entries are past the retention period (30 days): 20 days
        // ago they were not.
        let twenty_days = jiff::SignedDuration::from_hours(20 * 24);
        assert_eq!(table.expire_log_entries(jiff::Timestamp::now() - twenty_days).await.unwrap(), 0);
        assert_eq!(log_entries(&dir), after_commit);
        // Now: everything before the checkpoint, nothing after it.
        let expired = table.expire_log_entries(jiff::Timestamp::now()).await.unwrap();
        assert_eq!(expired, checkpoint as usize, "versions 0 to {}", checkpoint - 1);
        let left = log_entries(&dir);
        assert_eq!(left.first().map(|(v, _)| *v), Some(checkpoint), "{left:?}");
        assert_eq!(left.len(), after_commit.len() - checkpoint as usize);
        // What is left is needed (the checkpoint and what follows it): a second run deletes nothing.
        assert_eq!(table.expire_log_entries(jiff::Timestamp::now()).await.unwrap(), 0);

        // The table reads the same, from this handle and a new one, and takes appends.
        let ids: Vec<String> = (1..=interval + 2).map(|write| format!("e{write}")).collect();
        let mut expected: Vec<(String, i32)> = ids.iter().map(|id| (id.clone(), date32(day))).collect();
        expected.sort();
        assert_eq!(rows(&table).await, expected);
        let mut reopened = LakeTable::open_existing(&location, &EVENTS).await.unwrap().unwrap();
        assert_eq!(rows(&reopened).await, expected);
        assert_eq!(reopened.committed_position("w").await.unwrap(), Some(interval as i64 + 2));
        append(&mut table, interval + 3).await;
        assert_eq!(table.committed_position("w").await.unwrap(), Some(interval as i64 + 3));
    }
}
