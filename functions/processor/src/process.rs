//! One canonical event applied to the customer it is about: resolve, read, apply the rule, commit
//! in one transaction, announce. Generic over the ports, so tests and benchmarks run it in memory
//! and against moto alike.

use jiff::{SignedDuration, Timestamp};
use std::time::Duration;
use tributary_domain::customer::announce::announce;
use tributary_domain::customer::rules::{Ledger, Registry, Rule, RuleError};
use tributary_domain::customer::store::{
    AppliedMarker, AuditEntry, AuditKind, Commit, CommitOutcome, CustomerUpdated, MAX_RECORD_BYTES, applied_key,
};
use tributary_domain::customer::{ApplyError, CustomerId, CustomerRecord, Stamp};
use tributary_domain::event::{CanonicalEvent, Subject};
use tributary_domain::ports::{CustomerStore, EventPublisher, PortError};
use tributary_domain::retry::Backoff;

/// A pending notification older than this was left by an attempt that died between commit and
/// publish: no attempt runs longer than the processor's timeout (`template.yaml` sets it to this;
/// a test checks), and Lambda's retries come at least a minute later, so they publish it.
pub const NOTIFY_GRACE: SignedDuration = SignedDuration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Applied {
        customer_id: CustomerId,
        version: u64,
        changed_fields: Vec<String>,
        attempts: u32,
    },
    /// Applied before; `republished` when this delivery published a notification left pending.
    Duplicate {
        republished: bool,
    },
    /// No rule for this event type: acknowledged and counted.
    NoRule,
    /// The event names no customer (an anonymous visit): acknowledged and counted.
    NoSubject,
}

/// The dead-letter reason of an event whose id was applied before with other content.
pub const ID_REUSED: &str = "id_reused";
/// The dead-letter reason of an event that would make the customer's record too large to store.
pub const RECORD_TOO_LARGE: &str = "record_too_large";

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The event can never be applied (bad payload, no customer named, a rule writing outside
    /// its sub-schemas): dead-letter it with this reason.
    #[error("{0}")]
    Rejected(String),
    /// The event's id was applied before with other content: dead-letter it ([`ID_REUSED`]).
    #[error("{ID_REUSED}: event id reused with different content")]
    IdReused,
    /// The record would pass DynamoDB's item limit: dead-letter it ([`RECORD_TOO_LARGE`]), never
    /// retry it in a loop.
    #[error("{RECORD_TOO_LARGE}: {0}")]
    TooLarge(String),
    /// A backing service failed: fail the invocation so Lambda retries.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Other writers kept changing the customer; Lambda's retry will try again later.
    #[error("gave up after {0} conflicting attempts")]
    Contention(u32),
}

impl From<RuleError> for ProcessError {
    fn from(error: RuleError) -> Self {
        Self::Rejected(error.to_string())
    }
}

impl From<ApplyError> for ProcessError {
    fn from(error: ApplyError) -> Self {
        Self::Rejected(error.to_string())
    }
}

pub struct Processor<S, P> {
    pub registry: Registry,
    pub store: S,
    pub updates: P,
    pub commit_attempts: u32,
}

/// Where an event lands: its customer (existing or new) and the subjects to link to it.
pub struct Resolution {
    pub customer_id: CustomerId,
    pub new_links: Vec<Subject>,
}

impl<S: CustomerStore, P: EventPublisher> Processor<S, P> {
    pub async fn process(&self, event: &CanonicalEvent, now: Timestamp) -> Result<Processed, ProcessError> {
        let Some(rule) = self.registry.rule_for(&event.event_type) else {
            return Ok(Processed::NoRule);
        };
        let subjects = match (rule.identities)(event) {
            Err(RuleError::NoSubject) => return Ok(Processed::NoSubject),
            result => result?,
        };
        for attempt in 1..=self.commit_attempts {
            let (resolution, current) = self.resolve(&subjects).await?;
            // The ledger entries the rule reads; a new customer has none.
            let keys = match (rule.ledger, &current) {
                (Some(ledger_rule), Some(_)) => (ledger_rule.keys)(event)?,
                _ => Vec::new(),
            };
            let ledger = match &current {
                Some(record) if !keys.is_empty() => self.store.ledger(&record.id, &keys).await?,
                _ => Ledger::new(),
            };
            let commit = build_commit(rule, event, current, &ledger, resolution, now)?;
            match self.store.commit(&commit).await? {
                CommitOutcome::Committed => {
                    if let Some(update) = &commit.marker.pending {
                        announce(&self.store, &self.updates, update, &commit.marker.key(), now).await?;
                    }
                    return Ok(Processed::Applied {
                        customer_id: commit.record.id,
                        version: commit.record.version,
                        changed_fields: commit.audit.changes.into_iter().map(|d| d.field).collect(),
                        attempts: attempt,
                    });
                }
                CommitOutcome::AlreadyApplied => {
                    return self.duplicate(event, now).await;
                }
                // No wait after the last attempt: nothing follows it.
                CommitOutcome::Conflict if attempt < self.commit_attempts => {
                    tokio::time::sleep(CONFLICT_BACKOFF.delay(attempt, None)).await
                }
                CommitOutcome::Conflict => {}
                CommitOutcome::TooLarge => {
                    return Err(ProcessError::TooLarge("the table refused an item over its size limit".into()));
                }
            }
        }
        Err(ProcessError::Contention(self.commit_attempts))
    }

    /// The customer of the first subject already known (and its record), else a new one; the
    /// other subjects not yet known are linked to it. The subjects are looked up together, so a
    /// new customer costs one request and a known one two (the lookups, its record). A subject
    /// known as another customer stays theirs (merging two customers is an operator's decision,
    /// not a side effect of an event).
    async fn resolve(&self, subjects: &[Subject]) -> Result<(Resolution, Option<CustomerRecord>), PortError> {
        let found = self.store.find_each(subjects).await?;
        let mut chosen: Option<(CustomerId, Option<CustomerRecord>)> = None;
        let mut new_links = Vec::new();
        for (subject, found) in subjects.iter().zip(found) {
            if let Some((_, Some(record))) = &chosen
                && record.identities.contains(subject.as_str())
            {
                continue;
            }
            match (found, &chosen) {
                (None, _) => new_links.push(subject.clone()),
                (Some(found), None) => {
                    let record = self.store.load(&found).await?;
                    chosen = Some((found, record));
                }
                (Some(found), Some((id, _))) if found != *id => tracing::warn!(
                    subject = subject.as_str(),
                    customer = %id,
                    other_customer = %found,
                    "subject belongs to another customer; not linked"
                ),
                (Some(_), Some(_)) => {}
            }
        }
        let (customer_id, record) = chosen.unwrap_or_default();
        Ok((Resolution { customer_id, new_links }, record))
    }

    async fn duplicate(&self, event: &CanonicalEvent, now: Timestamp) -> Result<Processed, ProcessError> {
        let key = &applied_key(&event.source, &event.id);
        let Some(marker) = self.store.applied(key).await? else {
            return Ok(Processed::Duplicate { republished: false });
        };
        if marker.digest.as_ref().is_some_and(|digest| *digest != event.content_digest()) {
            return Err(ProcessError::IdReused);
        }
        let abandoned = marker.committed_at.saturating_add(NOTIFY_GRACE).is_ok_and(|deadline| now > deadline);
        match &marker.pending {
            Some(update) if abandoned => {
                announce(&self.store, &self.updates, update, key, now).await?;
                Ok(Processed::Duplicate { republished: true })
            }
            _ => Ok(Processed::Duplicate { republished: false }),
        }
    }
}

/// Backoff between conflicting attempts (the shared full-jitter backoff): a random wait below 20 ms,
/// 40 ms, … capped at 640 ms, so that racing writers spread out; on average what the former
/// 10 ms·2ⁿ⁻¹ ± 50 % gave. DynamoDB sends no `Retry-After`.
const CONFLICT_BACKOFF: Backoff =
    Backoff { base: Duration::from_millis(20), cap: Duration::from_millis(640), max_retry_after: Duration::ZERO };

/// The whole write for `event` on `current` (the record as read, or none for a new customer) and
/// the customer's `ledger` entries the rule asked for.
pub fn build_commit(
    rule: &'static Rule,
    event: &CanonicalEvent,
    current: Option<CustomerRecord>,
    ledger: &Ledger,
    resolution: Resolution,
    now: Timestamp,
) -> Result<Commit, ProcessError> {
    let mut record = current.unwrap_or_else(|| CustomerRecord::new(resolution.customer_id.clone()));
    let expected_version = record.version;
    let mut proposed = (rule.changes)(&record, event)?;
    let mut ledger_writes = Vec::new();
    if let Some(ledger_rule) = rule.ledger {
        let outcome = (ledger_rule.apply)(&record, ledger, event)?;
        proposed.extend(outcome.changes);
        ledger_writes = outcome.writes;
    }
    let diffs = record.apply(rule.name, rule.owns, &Stamp::of(event), &proposed)?;
    record.version += 1;
    record.identities.extend(resolution.new_links.iter().map(|s| s.as_str().to_string()));
    let size = serde_json::to_vec(&record).map_or(0, |json| json.len());
    if size > MAX_RECORD_BYTES {
        return Err(ProcessError::TooLarge(format!(
            "the record would be {size} bytes of JSON, over the {MAX_RECORD_BYTES} stored per customer"
        )));
    }
    let changed_fields: Vec<String> = diffs.iter().map(|d| d.field.clone()).collect();
    let pending = (!changed_fields.is_empty()).then(|| CustomerUpdated {
        customer_id: record.id.clone(),
        version: record.version,
        changed_fields,
        event_id: event.id.clone(),
    });
    Ok(Commit {
        expected_version,
        new_links: resolution.new_links,
        audit: AuditEntry {
            customer_id: record.id.clone(),
            kind: AuditKind::Event,
            version: record.version,
            event_id: event.id.clone(),
            source: event.source.clone(),
            event_type: event.event_type.clone(),
            rule: Some(rule.name.to_string()),
            changes: diffs,
            occurred_at: event.occurred_at,
            processed_at: now,
            integration: None,
            requested_by: None,
        },
        marker: AppliedMarker {
            source: event.source.clone(),
            event_id: event.id.clone(),
            customer_id: record.id.clone(),
            version: record.version,
            committed_at: now,
            digest: Some(event.content_digest()),
            pending,
        },
        record,
        ledger: ledger_writes,
    })
}
