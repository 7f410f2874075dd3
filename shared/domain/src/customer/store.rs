//! What the processor writes per event and what the read API reads back; the storage port itself
//! is [`crate::ports::CustomerStore`].

use super::record::{CustomerId, CustomerRecord, FieldDiff};
use crate::event::{EventId, Subject};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// An event applied to the record by a rule.
    Event,
    /// A push of the record to an external API.
    Integration,
    /// The record recomputed from its events with today's rules ([`super::rebuild`]).
    Rebuild,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushOutcome {
    Success,
    /// The target refused the request (a 4xx other than 429): retrying cannot help.
    PermanentFailure,
    /// Retries ran out on 5xx, 429 or timeouts.
    GaveUp,
}

impl PushOutcome {
    /// The name the audit trail and the push tallies use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::PermanentFailure => "permanent_failure",
            Self::GaveUp => "gave_up",
        }
    }
}

/// The outcome of one push, in an audit entry of kind `integration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationResult {
    pub integration: String,
    pub outcome: PushOutcome,
    pub idempotency_key: String,
    pub attempts: u32,
    /// The last HTTP status, when there was an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One entry of a customer's append-only audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub customer_id: CustomerId,
    pub kind: AuditKind,
    /// The record version the entry produced (kind `event`) or pushed (kind `integration`).
    pub version: u64,
    pub event_id: EventId,
    pub source: String,
    pub event_type: String,
    /// The rule that produced the changes (kind `event`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Per-field before/after; empty when the event changed nothing visible (an older value).
    #[serde(default)]
    pub changes: Vec<FieldDiff>,
    pub occurred_at: Timestamp,
    pub processed_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<IntegrationResult>,
    /// The name of the API key that asked for it (kind `rebuild`, asked through the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

impl AuditEntry {
    /// The entry's sort key within its customer: by version, and for pushes after the version's
    /// own entry, so that reading the keys in descending order lists the newest first.
    pub fn sort_key(&self) -> String {
        match &self.integration {
            None => format!("{AUDIT_PREFIX}{:020}", self.version),
            Some(push) => format!(
                "{AUDIT_PREFIX}{:020}#{}#{:020}",
                self.version,
                push.integration,
                self.processed_at.as_millisecond().max(0)
            ),
        }
    }
}

/// Every audit sort key starts with this.
pub const AUDIT_PREFIX: &str = "AUDIT#";

/// Whether `key` has the shape of an audit sort key (a cursor from a client must).
pub fn is_audit_sort_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(AUDIT_PREFIX) else { return false };
    let mut parts = rest.split('#');
    let version_ok = parts.next().is_some_and(|v| v.len() == 20 && v.bytes().all(|b| b.is_ascii_digit()));
    let tail: Vec<&str> = parts.collect();
    version_ok
        && match tail.as_slice() {
            [] => true,
            [name, millis] => {
                !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && millis.len() == 20
                    && millis.bytes().all(|b| b.is_ascii_digit())
            }
            _ => false,
        }
}

/// The payload of `customer.updated`, published on the `updates` topic after each commit that
/// changed a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerUpdated {
    pub customer_id: CustomerId,
    pub version: u64,
    pub changed_fields: Vec<String>,
    /// The event that caused the change.
    pub event_id: EventId,
}

impl CustomerUpdated {
    /// As a canonical event (the `updates` topic carries the same envelope as `events`): id
    /// `<customer>:<version>`, subject `customer:<id>`.
    pub fn to_event(&self, now: Timestamp) -> Result<crate::event::CanonicalEvent, crate::event::EventBuildError> {
        let id = format!("{}:{}", self.customer_id, self.version);
        let subject = Some(Subject::external("customer", self.customer_id.as_str()));
        crate::event::CanonicalEvent::produced(
            id,
            "processor",
            crate::event::types::CUSTOMER_UPDATED,
            subject,
            now,
            now,
            self,
        )
    }
}

/// Written with the commit: the event has been applied. Its `pending` notification is the
/// `customer.updated` still to publish (an outbox), cleared once published, so that a Lambda that
/// dies between commit and publish does not lose the notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMarker {
    /// Event ids are unique per source only (the webhook's dedup keys say the same).
    pub source: String,
    pub event_id: EventId,
    pub customer_id: CustomerId,
    pub version: u64,
    pub committed_at: Timestamp,
    /// The event's [`content_digest`](crate::event::CanonicalEvent::content_digest): the same id
    /// delivered later with another digest was reused for other content. Absent on markers written
    /// before digests were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<CustomerUpdated>,
}

impl AppliedMarker {
    pub fn key(&self) -> String {
        applied_key(&self.source, &self.event_id)
    }
}

/// The marker key of an event: `<source>#<event id>`.
pub fn applied_key(source: &str, event_id: &EventId) -> String {
    format!("{source}#{event_id}")
}

/// Everything one event writes, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The record after the event, `version` already incremented.
    pub record: CustomerRecord,
    /// The version read before applying the event; 0 creates the customer.
    pub expected_version: u64,
    /// Subjects to link to the customer (known to be unlinked when read).
    pub new_links: Vec<Subject>,
    pub audit: AuditEntry,
    pub marker: AppliedMarker,
    /// Ledger entries to write (key, value), each its own item under the customer; guarded by the
    /// record's version check like the rest of the commit.
    pub ledger: Vec<(String, serde_json::Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// The record or a link changed since it was read: read again and retry.
    Conflict,
    /// The event's marker exists: it was applied before.
    AlreadyApplied,
    /// An item of the commit is over DynamoDB's 400 KB item limit: retrying cannot help.
    TooLarge,
}

/// Largest record item the processor writes, in bytes of its JSON: below DynamoDB's 400 KB item
/// limit with room for the item's other attributes. A record that would pass it is refused
/// (dead-lettered as `record_too_large`) instead of failing its every retry.
pub const MAX_RECORD_BYTES: usize = 350_000;

/// A page of audit entries, newest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Sort key of the last entry returned, when more may follow.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_keys_sort_newest_first_and_cursors_are_checked() {
        let event = AuditEntry {
            customer_id: CustomerId::new(),
            kind: AuditKind::Event,
            version: 7,
            event_id: EventId::parse("evt_1").unwrap(),
            source: "stripe".into(),
            event_type: "stripe.invoice.paid".into(),
            rule: Some("stripe".into()),
            changes: vec![],
            occurred_at: Timestamp::UNIX_EPOCH,
            processed_at: Timestamp::UNIX_EPOCH,
            integration: None,
            requested_by: None,
        };
        let push = AuditEntry {
            kind: AuditKind::Integration,
            integration: Some(IntegrationResult {
                integration: "crm".into(),
                outcome: PushOutcome::Success,
                idempotency_key: "k".into(),
                attempts: 1,
                status: Some(200),
                detail: None,
            }),
            ..event.clone()
        };
        let next = AuditEntry { version: 8, ..event.clone() };
        let mut keys = vec![event.sort_key(), push.sort_key(), next.sort_key()];
        keys.sort_by(|a, b| b.cmp(a));
        assert_eq!(keys, vec![next.sort_key(), push.sort_key(), event.sort_key()]);
        assert!(keys.iter().all(|k| is_audit_sort_key(k)));
        for bad in ["", "AUDIT#", "AUDIT#12", "RECORD", "AUDIT#00000000000000000007#a b#00000000000000000001"] {
            assert!(!is_audit_sort_key(bad), "{bad}");
        }
    }
}
