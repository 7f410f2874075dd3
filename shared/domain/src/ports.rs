//! Ports: what the domain code needs from storage and the bus, with no AWS type in sight.
//!
//! Each port has an AWS adapter (`tributary-aws`) and an in-memory adapter (`tributary_testing::memory`); handlers
//! are generic over the ports, so unit tests and benchmarks run without a network and integration
//! tests run the very same handler against moto.

use crate::event::CanonicalEvent;
use jiff::Timestamp;
use std::future::Future;

/// A failed call to a backing service. The details are for logs, never for HTTP clients.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {source}")]
pub struct PortError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl PortError {
    pub fn new(operation: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { operation, source: source.into() }
    }
}

/// An idempotency marker for one delivery, claimed before any side effect and completed after the
/// last one (the in-progress/completed scheme of AWS Lambda Powertools' idempotency utility).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupClaim {
    /// `{source}#{event id}`.
    pub key: String,
    /// Random per attempt: only the attempt that claimed the marker may complete or release it.
    pub token: String,
    pub event_type: String,
    /// [`CanonicalEvent::content_digest`]: a later delivery under the same key with another digest
    /// reuses the id for other content.
    pub digest: String,
    pub now: Timestamp,
    /// After this instant an unfinished claim is considered abandoned (the Lambda died) and a
    /// retry may take it over.
    pub in_progress_until: Timestamp,
    /// When the marker may be forgotten (the table's TTL attribute).
    pub expires_at: Timestamp,
}

impl DedupClaim {
    /// A fresh claim token (random per attempt).
    pub fn new_token() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    pub fn key_for(source: &str, event_id: &crate::event::EventId) -> String {
        format!("{source}#{event_id}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This attempt owns the marker and must complete or release it.
    Claimed,
    /// The event was fully handled before: a duplicate.
    AlreadyCompleted,
    /// Another attempt is handling the event right now.
    InProgress,
    /// The key was claimed for other content (same id, another digest): not a duplicate, and
    /// nothing of this delivery may be written.
    Reused,
}

pub trait DedupStore: Send + Sync {
    fn claim(&self, claim: &DedupClaim) -> impl Future<Output = Result<ClaimOutcome, PortError>> + Send;
    /// Marks the claimed event as handled. Only succeeds for the attempt holding `claim.token`.
    fn complete(&self, claim: &DedupClaim) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Removes this attempt's in-progress marker so that the sender's retry is processed again.
    fn release(&self, claim: &DedupClaim) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A raw delivery kept as received, for audit and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedDelivery {
    pub key: String,
    pub body: Vec<u8>,
    pub content_type: String,
    /// Selected request headers and envelope facts, stored as object metadata.
    pub metadata: Vec<(String, String)>,
}

impl ArchivedDelivery {
    /// A metadata value by name (names are lower case).
    pub fn metadata_value(&self, name: &str) -> Option<&str> {
        self.metadata.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str())
    }
}

/// One page of archive keys, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveListing {
    pub keys: Vec<String>,
    /// More keys follow the last one.
    pub more: bool,
}

pub trait RawArchive: Send + Sync {
    fn put(&self, delivery: &ArchivedDelivery) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Keys under `prefix` after `start_after`, in key order, at most `max`.
    fn list(
        &self,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> impl Future<Output = Result<ArchiveListing, PortError>> + Send;
    /// A delivery with its metadata; `None` when the key holds nothing (any more).
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<ArchivedDelivery>, PortError>> + Send;
}

/// SNS's limit for one message, body and attributes together.
pub const SNS_MAX_MESSAGE_BYTES: usize = 262_144;

/// A canonical event as it travels on the bus: the JSON body and the `source`/`type` attributes
/// that subscriptions filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub body: String,
    pub source: String,
    pub event_type: String,
}

impl BusMessage {
    pub fn from_event(event: &CanonicalEvent) -> Result<Self, serde_json::Error> {
        Ok(Self { body: event.to_message()?, source: event.source.clone(), event_type: event.event_type.clone() })
    }

    /// Size as SNS counts it: body plus attribute names, types and values.
    pub fn size(&self) -> usize {
        const STRING_TYPE: usize = "String".len();
        self.body.len()
            + "source".len()
            + STRING_TYPE
            + self.source.len()
            + "type".len()
            + STRING_TYPE
            + self.event_type.len()
    }
}

/// `PublishBatch` takes at most ten entries, and at most [`SNS_MAX_MESSAGE_BYTES`] for all of them.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// A message that no batch can carry: refused before anything is published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "message {index} ({event_type}) is {size} bytes with its attributes; the bus takes at most {SNS_MAX_MESSAGE_BYTES}"
)]
pub struct OversizedMessage {
    pub index: usize,
    pub event_type: String,
    pub size: usize,
}

/// Splits `messages` into consecutive batches of at most [`MAX_BATCH_ENTRIES`] entries and
/// [`SNS_MAX_MESSAGE_BYTES`] in all, in order; or names the first message that fits in none.
pub fn batches(messages: &[BusMessage]) -> Result<Vec<&[BusMessage]>, OversizedMessage> {
    if let Some((index, message)) = messages.iter().enumerate().find(|(_, m)| m.size() > SNS_MAX_MESSAGE_BYTES) {
        return Err(OversizedMessage { index, event_type: message.event_type.clone(), size: message.size() });
    }
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, message) in messages.iter().enumerate() {
        if index - start == MAX_BATCH_ENTRIES || bytes + message.size() > SNS_MAX_MESSAGE_BYTES {
            batches.push(&messages[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += message.size();
    }
    if start < messages.len() {
        batches.push(&messages[start..]);
    }
    Ok(batches)
}

pub trait EventPublisher: Send + Sync {
    /// Publishes one message; returns the bus's message id.
    fn publish(&self, message: &BusMessage) -> impl Future<Output = Result<String, PortError>> + Send;

    /// Publishes many messages (SNS: `PublishBatch`, split by [`batches`]). A message too large
    /// for the bus is refused before any is published. On another error some may have been
    /// published: callers retry the whole batch, and consumers deduplicate by event id.
    fn publish_all(&self, messages: &[BusMessage]) -> impl Future<Output = Result<(), PortError>> + Send {
        async move {
            batches(messages).map_err(|e| PortError::new("publish batch", e))?;
            for message in messages {
                self.publish(message).await?;
            }
            Ok(())
        }
    }
}

/// Secret values by parameter name (read at cold start, and again by `crate::secrets::Refreshing`).
pub trait SecretSource: Send + Sync {
    fn get_secrets(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<std::collections::HashMap<String, String>, PortError>> + Send;
}

/// The customer table: records, identity lookups, audit trails and applied-event markers.
pub trait CustomerStore: Send + Sync {
    /// The customer a subject resolves to.
    fn find(
        &self,
        subject: &crate::event::Subject,
    ) -> impl Future<Output = Result<Option<crate::customer::CustomerId>, PortError>> + Send;
    /// The customer each subject resolves to, in the order of `subjects`, looked up together (one
    /// request for an event's subjects rather than one each).
    fn find_each(
        &self,
        subjects: &[crate::event::Subject],
    ) -> impl Future<Output = Result<Vec<Option<crate::customer::CustomerId>>, PortError>> + Send;
    fn load(
        &self,
        id: &crate::customer::CustomerId,
    ) -> impl Future<Output = Result<Option<crate::customer::CustomerRecord>, PortError>> + Send;
    /// Writes the record (if its version is still `expected_version`), the new identity links (if
    /// still unlinked), the audit entry, the ledger entries and the applied-event marker (if
    /// absent), all or nothing.
    fn commit(
        &self,
        commit: &crate::customer::store::Commit,
    ) -> impl Future<Output = Result<crate::customer::store::CommitOutcome, PortError>> + Send;
    /// The customer's ledger entries of these keys (absent ones are absent).
    fn ledger(
        &self,
        id: &crate::customer::CustomerId,
        keys: &[String],
    ) -> impl Future<Output = Result<crate::customer::rules::Ledger, PortError>> + Send;
    /// The marker of an event, by [`applied_key`](crate::customer::store::applied_key).
    fn applied(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<crate::customer::store::AppliedMarker>, PortError>> + Send;
    /// Clears the marker's pending notification once `customer.updated` is published.
    fn mark_notified(&self, key: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Appends an audit entry outside an event commit (integration outcomes).
    fn append_audit(
        &self,
        entry: &crate::customer::store::AuditEntry,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Audit entries newest first, `limit` at most, after the sort key `after` (exclusive).
    fn audit(
        &self,
        id: &crate::customer::CustomerId,
        limit: usize,
        after: Option<&str>,
    ) -> impl Future<Output = Result<crate::customer::store::AuditPage, PortError>> + Send;
}

/// Where messages that can never be processed go, with the reason (an SQS dead-letter queue).
pub trait DeadLetterSink: Send + Sync {
    /// `history`: what a re-driven message carried (its re-drive count and first failure), so that
    /// a message failing again keeps it; the default for a first failure.
    fn send(
        &self,
        body: &str,
        reason: &str,
        history: &crate::failures::FailureHistory,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// One message read from a queue, still on it until deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: String,
    /// What deletes it or makes it visible again (valid while it is hidden).
    pub receipt: String,
    pub body: String,
    /// Its string message attributes.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// When the queue received it.
    pub sent_at: Option<Timestamp>,
}

impl QueuedMessage {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// How many messages a queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
}

/// The queues an operator repairs from (`failures`): read without consuming, send, delete. A queue
/// is named by its URL.
pub trait MessageQueues: Send + Sync {
    fn depth(&self, queue: &str) -> impl Future<Output = Result<QueueDepth, PortError>> + Send;
    /// Up to `max` messages (at most 10), each hidden from other readers for `hide_for`.
    fn receive(
        &self,
        queue: &str,
        max: usize,
        hide_for: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<QueuedMessage>, PortError>> + Send;
    fn send(
        &self,
        queue: &str,
        body: &str,
        attributes: &[(&str, String)],
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Sends `body` to be received no sooner than `delay` from now (at most 15 minutes).
    fn send_later(
        &self,
        queue: &str,
        body: &str,
        delay: std::time::Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    fn delete(&self, queue: &str, receipt: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Makes hidden messages visible again at once.
    fn release(&self, queue: &str, receipts: &[String]) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The ingestion table: sync runs, leases and watermarks of the scheduled pulls.
pub trait SyncStore: Send + Sync {
    /// Takes the lease if it is free or expired; false when another run holds it.
    fn acquire_lease(&self, lease: &crate::sync::Lease) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Gives the lease back (only if `lease.owner` still holds it).
    fn release_lease(&self, lease: &crate::sync::Lease) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Writes (or overwrites, by job, start, run id and scope) a sync run.
    fn put_run(&self, run: &crate::sync::SyncRun) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The job's runs, newest first, `limit` at most.
    fn recent_runs(
        &self,
        job: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<crate::sync::SyncRun>, PortError>> + Send;
    fn watermark(&self, key: &str) -> impl Future<Output = Result<Option<String>, PortError>> + Send;
    fn set_watermark(&self, key: &str, value: &str) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Adds `tally`'s count and records to its hour's.
    fn add_tally(&self, tally: &crate::sync::Tally) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The tallies of `kind` from the hour of `since` on, newest hour first, at most `limit`.
    fn tallies(
        &self,
        kind: crate::sync::TallyKind,
        since: jiff::Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<crate::sync::Tally>, PortError>> + Send;
}

/// Where the aggregator's report files go and who is told of them.
pub trait ReportSink: Send + Sync {
    /// Stores the file; returns a link to download it.
    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<String, PortError>> + Send;
    fn notify(&self, subject: &str, message: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> BusMessage {
        let envelope = BusMessage { body: String::new(), source: "s".into(), event_type: "s.t".into() }.size();
        BusMessage { body: "x".repeat(bytes - envelope), source: "s".into(), event_type: "s.t".into() }
    }

    #[test]
    fn batches_respect_both_the_count_and_the_total_size() {
        let small: Vec<BusMessage> = (0..25).map(|_| message(1_000)).collect();
        let sizes: Vec<usize> = batches(&small).unwrap().iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        // Three messages of 100 KiB: two never share a batch with a third.
        let large: Vec<BusMessage> = (0..5).map(|_| message(100 * 1024)).collect();
        let planned = batches(&large).unwrap();
        assert_eq!(planned.iter().map(|b| b.len()).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(planned.iter().all(|b| b.iter().map(BusMessage::size).sum::<usize>() <= SNS_MAX_MESSAGE_BYTES));
        // Exactly at the limit fits alone; one byte more fits nowhere and is named.
        assert_eq!(batches(&[message(SNS_MAX_MESSAGE_BYTES)]).unwrap().len(), 1);
        let mixed = vec![message(100), message(SNS_MAX_MESSAGE_BYTES + 1)];
        let error = batches(&mixed).unwrap_err();
        assert_eq!((error.index, error.size), (1, SNS_MAX_MESSAGE_BYTES + 1));
        assert!(batches(&[]).unwrap().is_empty());
    }
}
