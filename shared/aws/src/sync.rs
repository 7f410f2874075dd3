//! The ingestion table (`pk`/`sk`): sync runs, leases and watermarks of the scheduled pulls.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | sync run | `RUNS#<job>` | `<started_at>#<run id>#<scope>` (newest first with a reverse query) |
//! | lease | `LEASE#<job>#<scope>` | `LEASE` |
//! | watermark | `WATERMARK#<key>` | `WATERMARK` |
//! | tally | `TALLY#<kind>` | `<hour>#<name>#<outcome>` (newest first with a reverse query) |
//!
//! A tally is added to by `UpdateItem … ADD` as things happen, so every write of a kind goes to
//! one partition: DynamoDB takes about 1 000 of them a second there, far above what the stack's
//! functions send; beyond it a write is throttled and that count alone is lost (logged).

use super::{describe, number_attribute as n, pk_sk as key, string_attribute as s};
use aws_sdk_dynamodb::Client;
use tributary_domain::ports::{PortError, SyncStore};
use tributary_domain::sync::{Lease, SyncRun, Tally, TallyKind, hour_of};

/// Sync runs are kept this long (the table's TTL attribute `expires_at` removes them after).
pub const SYNC_RUN_RETENTION_DAYS: i64 = 90;

pub struct DynamoDbSyncStore {
    client: Client,
    table: String,
}

impl DynamoDbSyncStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// An unconditional put.
    async fn put(
        &self,
        item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
        operation: &'static str,
    ) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| PortError::new(operation, describe(&e)))?;
        Ok(())
    }
}

fn is_condition_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(error: &E) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

impl SyncStore for DynamoDbSyncStore {
    async fn acquire_lease(&self, lease: &Lease) -> Result<bool, PortError> {
        let mut item = key(format!("LEASE#{}", lease.key), "LEASE");
        item.insert("owner".into(), s(&lease.owner));
        item.insert("until_ms".into(), n(lease.until.as_millisecond()));
        item.insert("expires_at".into(), n(lease.until.as_second() + 86_400));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR until_ms < :now")
            .expression_attribute_values(":now", n(lease.now.as_millisecond()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(is_condition_failure) => Ok(false),
            Err(error) => Err(PortError::new("acquire lease", describe(&error))),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), PortError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("LEASE#{}", lease.key), "LEASE")))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&lease.owner))
            .send()
            .await;
        match result {
            // Taken over after expiry: the other run's lease is not ours to remove.
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(is_condition_failure) => Ok(()),
            Err(error) => Err(PortError::new("release lease", describe(&error))),
        }
    }

    async fn put_run(&self, run: &SyncRun) -> Result<(), PortError> {
        let body = serde_json::to_string(run).map_err(|e| PortError::new("put sync run", e))?;
        let mut item = key(format!("RUNS#{}", run.job), &format!("{}#{}#{}", run.started_at, run.run_id, run.scope));
        item.insert("run".into(), s(body));
        item.insert("expires_at".into(), n(run.started_at.as_second() + SYNC_RUN_RETENTION_DAYS * 86_400));
        self.put(item, "put sync run").await
    }

    async fn recent_runs(&self, job: &str, limit: usize) -> Result<Vec<SyncRun>, PortError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("RUNS#{job}")))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| PortError::new("query sync runs", describe(&e)))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let body = item
                    .get("run")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| PortError::new("read sync run", "item without a run attribute"))?;
                serde_json::from_str(body).map_err(|e| PortError::new("read sync run", e))
            })
            .collect()
    }

    async fn watermark(&self, key_name: &str) -> Result<Option<String>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("WATERMARK#{key_name}"), "WATERMARK")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| PortError::new("get watermark", describe(&e)))?;
        Ok(output.item.and_then(|item| item.get("value").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn set_watermark(&self, key_name: &str, value: &str) -> Result<(), PortError> {
        let mut item = key(format!("WATERMARK#{key_name}"), "WATERMARK");
        item.insert("value".into(), s(value));
        self.put(item, "set watermark").await
    }

    async fn add_tally(&self, tally: &Tally) -> Result<(), PortError> {
        let hour = hour_of(tally.hour);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("TALLY#{}", tally.kind.name()),
                &format!("{hour}#{}#{}", tally.name, tally.outcome),
            )))
            .update_expression(
                "ADD #count :count, #records :records SET #name = :name, #outcome = :outcome, #hour = :hour, \
                 expires_at = :expires_at",
            )
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#records", "records")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_names("#hour", "hour")
            .expression_attribute_values(":count", n(i64::try_from(tally.count).unwrap_or(i64::MAX)))
            .expression_attribute_values(":records", n(i64::try_from(tally.records).unwrap_or(i64::MAX)))
            .expression_attribute_values(":name", s(&tally.name))
            .expression_attribute_values(":outcome", s(&tally.outcome))
            .expression_attribute_values(":hour", s(hour.to_string()))
            .expression_attribute_values(":expires_at", n(hour.as_second() + SYNC_RUN_RETENTION_DAYS * 86_400))
            .send()
            .await
            .map_err(|e| PortError::new("add tally", describe(&e)))?;
        Ok(())
    }

    async fn tallies(&self, kind: TallyKind, since: jiff::Timestamp, limit: usize) -> Result<Vec<Tally>, PortError> {
        let mut found = Vec::new();
        let mut start = None;
        // DynamoDB pages at 1 MB: read on until `limit` or the end.
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk >= :from")
                .expression_attribute_values(":pk", s(format!("TALLY#{}", kind.name())))
                .expression_attribute_values(":from", s(hour_of(since).to_string()))
                .scan_index_forward(false)
                .limit(i32::try_from(limit.saturating_sub(found.len())).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| PortError::new("query tallies", describe(&e)))?;
            for item in output.items.unwrap_or_default() {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
                let hour = text("hour").and_then(|h| h.parse().ok());
                match (hour, text("name"), text("outcome")) {
                    (Some(hour), Some(name), Some(outcome)) => found.push(Tally {
                        kind,
                        hour,
                        name,
                        outcome,
                        count: number("count").unwrap_or(0),
                        records: number("records").unwrap_or(0),
                    }),
                    // One bad item does not hide the others.
                    _ => tracing::warn!(sk = ?item.get("sk"), "a tally item without its attributes; skipped"),
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() || found.len() >= limit {
                return Ok(found);
            }
        }
    }
}
