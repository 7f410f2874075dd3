//! The customer table (single-table design, keys `pk`/`sk`, all strings):
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | record | `CUSTOMER#<id>` | `RECORD` | `version` (N), `record` (JSON) |
//! | audit entry | `CUSTOMER#<id>` | `AUDIT#<version, 20 digits>[#<integration>#<ms>]` | `kind`, `entry` (JSON) |
//! | identity lookup | `LOOKUP#<subject>` | `LOOKUP` | `customer_id` |
//! | applied-event marker | `EVENT#<source>#<event id>` | `APPLIED` | `marker` (JSON), `pending` (JSON, until published), `expires_at` (TTL) |
//! | ledger entry (a payment, under each of its ids) | `CUSTOMER#<id>` | `LEDGER#<key>` (`LEDGER#PAYMENT#pi_…`) | `entry` (JSON) |

use super::{describe, pk_sk as key, string_attribute as s};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use jiff::SignedDuration;
use std::collections::HashMap;
use tributary_domain::customer::store::{AUDIT_PREFIX, AppliedMarker, AuditEntry, AuditPage, Commit, CommitOutcome};
use tributary_domain::customer::{CustomerId, CustomerRecord};
use tributary_domain::event::Subject;
use tributary_domain::ports::{CustomerStore, PortError};

pub const CUSTOMER_KEY_ATTRIBUTES: (&str, &str) = ("pk", "sk");
/// Applied-event markers outlive every redelivery (SNS, Lambda retries, a replay of the archive
/// within a year); after that DynamoDB's TTL removes them.
pub const APPLIED_MARKER_TTL: SignedDuration = SignedDuration::from_hours(24 * 365);

const RECORD_SK: &str = "RECORD";
const LOOKUP_SK: &str = "LOOKUP";
const APPLIED_SK: &str = "APPLIED";
const LEDGER_PREFIX: &str = "LEDGER#";
/// BatchGetItem reads at most 100 keys per call.
const MAX_BATCH_GET_KEYS: usize = 100;
/// Position of the marker in the commit transaction (its cancellation reason tells a duplicate).
const MARKER_INDEX: usize = 1;

pub struct DynamoDbCustomers {
    client: Client,
    table: String,
}

fn customer_pk(id: &CustomerId) -> String {
    format!("CUSTOMER#{id}")
}

fn lookup_pk(subject: &Subject) -> String {
    format!("LOOKUP#{}", subject.as_str())
}

fn event_pk(applied_key: &str) -> String {
    format!("EVENT#{applied_key}")
}

fn json_attribute<T: serde::de::DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
    operation: &'static str,
) -> Result<T, PortError> {
    let text = item
        .get(name)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| PortError::new(operation, format!("item has no `{name}` attribute")))?;
    serde_json::from_str(text).map_err(|e| PortError::new(operation, format!("`{name}` is not readable: {e}")))
}

fn to_json(value: &impl serde::Serialize, operation: &'static str) -> Result<String, PortError> {
    serde_json::to_string(value).map_err(|e| PortError::new(operation, e))
}

fn put(table: &str, item: HashMap<String, AttributeValue>, condition: &str) -> Result<TransactWriteItem, PortError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .build()
        .map_err(|e| PortError::new("build transaction", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Whether DynamoDB's message is about an item's size ("Item size has exceeded the maximum allowed
/// size", "Item size to update has exceeded …").
fn is_size_message(message: Option<&str>) -> bool {
    message.is_some_and(|m| m.to_ascii_lowercase().contains("item size"))
}

impl DynamoDbCustomers {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    async fn get(
        &self,
        key: HashMap<String, AttributeValue>,
        operation: &'static str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| PortError::new(operation, describe(&e)))?;
        Ok(output.item)
    }

    /// The items of these keys that exist (consistent reads), in no particular order: BatchGetItem
    /// takes 100 keys a request, and the keys it leaves unprocessed (throttling) are asked again
    /// after a growing wait, until none is left.
    async fn batch_get(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
        operation: &'static str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, PortError> {
        let mut items = Vec::new();
        for chunk in keys.chunks(MAX_BATCH_GET_KEYS) {
            let wanted = KeysAndAttributes::builder()
                .consistent_read(true)
                .set_keys(Some(chunk.to_vec()))
                .build()
                .map_err(|e| PortError::new(operation, e))?;
            let mut request = HashMap::from([(self.table.clone(), wanted)]);
            let mut attempt = 0;
            while !request.is_empty() {
                if attempt > 0 {
                    if attempt >= UNPROCESSED_ATTEMPTS {
                        return Err(PortError::new(operation, "keys still unprocessed after repeated throttling"));
                    }
                    tokio::time::sleep(UNPROCESSED_BACKOFF.delay(attempt, None)).await;
                }
                attempt += 1;
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|e| PortError::new(operation, describe(&e)))?;
                items.extend(output.responses.unwrap_or_default().remove(&self.table).unwrap_or_default());
                request = output.unprocessed_keys.unwrap_or_default();
            }
        }
        Ok(items)
    }

    /// The items of the commit transaction, in the order the cancellation reasons refer to
    /// (record, marker, audit entry, links). Public for the processor's benchmark.
    pub fn transaction_items(&self, commit: &Commit) -> Result<Vec<TransactWriteItem>, PortError> {
        const OP: &str = "build transaction";
        let record = &commit.record;
        let mut record_item = key(customer_pk(&record.id), RECORD_SK);
        record_item.insert("version".into(), AttributeValue::N(record.version.to_string()));
        record_item.insert("record".into(), s(to_json(record, OP)?));
        let record_put = if commit.expected_version == 0 {
            put(&self.table, record_item, "attribute_not_exists(pk)")?
        } else {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(record_item))
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", AttributeValue::N(commit.expected_version.to_string()))
                .build()
                .map_err(|e| PortError::new(OP, e))?;
            TransactWriteItem::builder().put(put).build()
        };

        let mut marker_item = key(event_pk(&commit.marker.key()), APPLIED_SK);
        // The pending notification is its own attribute so that clearing it is one UpdateItem.
        let settled = AppliedMarker { pending: None, ..commit.marker.clone() };
        marker_item.insert("marker".into(), s(to_json(&settled, OP)?));
        if let Some(pending) = &commit.marker.pending {
            marker_item.insert("pending".into(), s(to_json(pending, OP)?));
        }
        let expires = commit.marker.committed_at.as_second().saturating_add(APPLIED_MARKER_TTL.as_secs());
        marker_item.insert("expires_at".into(), AttributeValue::N(expires.to_string()));

        let mut audit_item = key(customer_pk(&record.id), &commit.audit.sort_key());
        audit_item.insert("kind".into(), s(to_json(&commit.audit.kind, OP)?.trim_matches('"')));
        audit_item.insert("entry".into(), s(to_json(&commit.audit, OP)?));

        let mut items = vec![
            record_put,
            put(&self.table, marker_item, "attribute_not_exists(pk)")?,
            put(&self.table, audit_item, "attribute_not_exists(pk)")?,
        ];
        for subject in &commit.new_links {
            let mut lookup = key(lookup_pk(subject), LOOKUP_SK);
            lookup.insert("customer_id".into(), s(record.id.as_str()));
            items.push(put(&self.table, lookup, "attribute_not_exists(pk)")?);
        }
        for (ledger_key, entry) in &commit.ledger {
            // Unconditional: the record's version check above guards every entry of the customer.
            let mut item = key(customer_pk(&record.id), &format!("{LEDGER_PREFIX}{ledger_key}"));
            item.insert("entry".into(), s(to_json(entry, OP)?));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(|e| PortError::new(OP, e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        Ok(items)
    }
}

/// Rounds of a `BatchGetItem` whose keys DynamoDB left unprocessed (throttling) before giving up.
const UNPROCESSED_ATTEMPTS: u32 = 8;
/// The wait between those rounds: full jitter below 50 ms, 100 ms, … up to 1 s.
const UNPROCESSED_BACKOFF: tributary_domain::retry::Backoff = tributary_domain::retry::Backoff {
    base: std::time::Duration::from_millis(50),
    cap: std::time::Duration::from_secs(1),
    max_retry_after: std::time::Duration::ZERO,
};

impl CustomerStore for DynamoDbCustomers {
    async fn find(&self, subject: &Subject) -> Result<Option<CustomerId>, PortError> {
        let Some(item) = self.get(key(lookup_pk(subject), LOOKUP_SK), "find customer").await? else {
            return Ok(None);
        };
        let id = item.get("customer_id").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        CustomerId::parse(id).map(Some).map_err(|e| PortError::new("find customer", e))
    }

    async fn find_each(&self, subjects: &[Subject]) -> Result<Vec<Option<CustomerId>>, PortError> {
        const OP: &str = "find customers";
        if let [subject] = subjects {
            return Ok(vec![self.find(subject).await?]);
        }
        // BatchGetItem refuses a request that names a key twice.
        let mut keys: Vec<_> = subjects.iter().map(lookup_pk).collect();
        keys.sort_unstable();
        keys.dedup();
        let keys = keys.into_iter().map(|pk| key(pk, LOOKUP_SK)).collect();
        let mut found = HashMap::new();
        for item in self.batch_get(keys, OP).await? {
            let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let id = item.get("customer_id").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            found.insert(pk, CustomerId::parse(id).map_err(|e| PortError::new(OP, e))?);
        }
        Ok(subjects.iter().map(|subject| found.get(&lookup_pk(subject)).cloned()).collect())
    }

    async fn load(&self, id: &CustomerId) -> Result<Option<CustomerRecord>, PortError> {
        match self.get(key(customer_pk(id), RECORD_SK), "load customer").await? {
            None => Ok(None),
            Some(item) => json_attribute(&item, "record", "load customer").map(Some),
        }
    }

    async fn commit(&self, commit: &Commit) -> Result<CommitOutcome, PortError> {
        let items = self.transaction_items(commit)?;
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        let error = match result {
            Ok(_) => return Ok(CommitOutcome::Committed),
            Err(error) => error,
        };
        match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                let reasons = cancelled.cancellation_reasons();
                let code = |index: usize| reasons.get(index).and_then(|r| r.code()).unwrap_or("None");
                if code(MARKER_INDEX) == "ConditionalCheckFailed" {
                    return Ok(CommitOutcome::AlreadyApplied);
                }
                // DynamoDB cancels a transaction with an item over 400 KB with `ValidationError`.
                if reasons.iter().any(|r| r.code() == Some("ValidationError") && is_size_message(r.message())) {
                    return Ok(CommitOutcome::TooLarge);
                }
                if reasons.is_empty() {
                    // No reasons returned: the marker tells whether it was a duplicate.
                    let applied = self.applied(&commit.marker.key()).await?.is_some();
                    return Ok(if applied { CommitOutcome::AlreadyApplied } else { CommitOutcome::Conflict });
                }
                // Someone else wrote the record or a link first: a conflict. Anything else (an
                // item too large, throttling, a validation error) is a failure, not contention.
                let other = reasons
                    .iter()
                    .filter_map(|r| r.code())
                    .find(|code| !matches!(*code, "None" | "ConditionalCheckFailed" | "TransactionConflict"));
                match other {
                    None => Ok(CommitOutcome::Conflict),
                    Some(code) => Err(PortError::new("commit customer", format!("transaction cancelled: {code}"))),
                }
            }
            // Some implementations (moto) refuse the whole request instead.
            Some(other) if other.code() == Some("ValidationException") && is_size_message(other.message()) => {
                Ok(CommitOutcome::TooLarge)
            }
            _ => Err(PortError::new("commit customer", describe(&error))),
        }
    }

    async fn ledger(
        &self,
        id: &CustomerId,
        keys: &[String],
    ) -> Result<tributary_domain::customer::rules::Ledger, PortError> {
        let keys =
            keys.iter().map(|ledger_key| key(customer_pk(id), &format!("{LEDGER_PREFIX}{ledger_key}"))).collect();
        let mut found = tributary_domain::customer::rules::Ledger::new();
        for item in self.batch_get(keys, "read ledger").await? {
            let sort_key = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let Some(ledger_key) = sort_key.strip_prefix(LEDGER_PREFIX) else { continue };
            found.insert(ledger_key.to_string(), json_attribute(&item, "entry", "read ledger")?);
        }
        Ok(found)
    }

    async fn applied(&self, applied_key: &str) -> Result<Option<AppliedMarker>, PortError> {
        match self.get(key(event_pk(applied_key), APPLIED_SK), "read applied marker").await? {
            None => Ok(None),
            Some(item) => {
                let mut marker: AppliedMarker = json_attribute(&item, "marker", "read applied marker")?;
                if item.contains_key("pending") {
                    marker.pending = Some(json_attribute(&item, "pending", "read applied marker")?);
                }
                Ok(Some(marker))
            }
        }
    }

    async fn mark_notified(&self, applied_key: &str) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(event_pk(applied_key), APPLIED_SK)))
            .update_expression("REMOVE pending")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map_err(|e| PortError::new("mark notified", describe(&e)))?;
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), PortError> {
        let mut item = key(customer_pk(&entry.customer_id), &entry.sort_key());
        item.insert("kind".into(), s(to_json(&entry.kind, "append audit")?.trim_matches('"')));
        item.insert("entry".into(), s(to_json(entry, "append audit")?));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| PortError::new("append audit", describe(&e)))?;
        Ok(())
    }

    async fn audit(&self, id: &CustomerId, limit: usize, after: Option<&str>) -> Result<AuditPage, PortError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :audit)")
            .expression_attribute_values(":pk", s(customer_pk(id)))
            .expression_attribute_values(":audit", s(AUDIT_PREFIX))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX));
        if let Some(after) = after {
            query = query.set_exclusive_start_key(Some(key(customer_pk(id), after)));
        }
        let output = query.send().await.map_err(|e| PortError::new("read audit", describe(&e)))?;
        let items = output.items.unwrap_or_default();
        // DynamoDB also stops at 1 MB of items: then more may follow even with fewer than asked.
        let more = items.len() > limit || output.last_evaluated_key.is_some();
        let mut entries = Vec::with_capacity(limit.min(items.len()));
        let mut last_key = None;
        for item in items.iter().take(limit) {
            entries.push(json_attribute(item, "entry", "read audit")?);
            last_key = item.get("sk").and_then(|v| v.as_s().ok()).cloned();
        }
        Ok(AuditPage { entries, next: if more { last_key } else { None } })
    }
}
