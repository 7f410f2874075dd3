//! The ingestion table (`pk`/`sk`): sync runs, leases and watermarks of the scheduled pulls.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | sync run | `RUNS#<job>` | `<started_at>#<run id>#<scope>` (newest first with a reverse query) |
//! | lease | `LEASE#<job>#<scope>` | `LEASE` |
//! | watermark | `WATERMARK#<key>` | `WATERMARK` |

use super::{describe, number_attribute as n, pk_sk as key, string_attribute as s};
use aws_sdk_dynamodb::Client;
use tributary_domain::ports::{PortError, SyncStore};
use tributary_domain::sync::{Lease, SyncRun};

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
}
