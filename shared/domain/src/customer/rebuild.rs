//! A customer's record recomputed from scratch: every event of the customer applied in event-time
//! order with today's rules to an empty record, its ledger kept in memory. Because every merge
//! policy is order independent, this is the record an all-new processor would build from the same
//! events; compared with the stored record, it says which fields a rule change (or a fix) moves.

use super::record::{CustomerId, CustomerRecord, FieldDiff, Stamp};
use super::rules::{Ledger, Registry};
use super::store::{AppliedMarker, AuditEntry, AuditKind, Commit, CustomerUpdated, MAX_RECORD_BYTES};
use crate::event::{CanonicalEvent, EventId, type_selected};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// The source and rule name a rebuild's audit entry and marker carry.
pub const REBUILD_SOURCE: &str = "rebuild";

/// What to rebuild: one customer, or every customer that events of a type (or family: a prefix
/// ending in `.`) and/or of a time range `[from, to)` touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    /// Checkpoint of a continuation: customers up to this id (in id order) are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<CustomerId>,
    /// The run a continuation belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The name of the API key that asked (set by the API, never by the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(String);

impl RebuildRequest {
    /// A request names one customer, or a selection of events (never "everything" by omission).
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        let selection = self.event_type.is_some() || self.from.is_some() || self.to.is_some();
        match (&self.customer_id, selection) {
            (Some(_), true) => {
                Err(InvalidRequest("name a customer_id or a selection (event_type, from, to), not both".into()))
            }
            (None, false) => Err(InvalidRequest("name a customer_id, or an event_type and/or a from/to range".into())),
            _ if self.event_type.as_deref().is_some_and(|t| t.is_empty() || t.len() > 200) => {
                Err(InvalidRequest("event_type is 1 to 200 characters".into()))
            }
            _ if matches!((self.from, self.to), (Some(from), Some(to)) if from >= to) => {
                Err(InvalidRequest("from must be before to".into()))
            }
            _ => Ok(()),
        }
    }

    /// What the run history names it by.
    pub fn scope(&self) -> String {
        match &self.customer_id {
            Some(id) => format!("customer {id}"),
            None => {
                let time = |t: &Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_else(|| "…".into());
                format!(
                    "{} from {} to {}",
                    self.event_type.as_deref().unwrap_or("every type"),
                    time(&self.from),
                    time(&self.to)
                )
            }
        }
    }

    /// Whether an event of `event_type` at `occurred_at` is in the selection.
    pub fn selects(&self, event_type: &str, occurred_at: Timestamp) -> bool {
        type_selected(self.event_type.as_deref(), event_type)
            && self.from.is_none_or(|from| occurred_at >= from)
            && self.to.is_none_or(|to| occurred_at < to)
    }
}

/// One event a rebuild could not apply (the processor would have dead-lettered it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub event_id: EventId,
    pub reason: String,
}

/// A record recomputed from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    /// The fields as today's rules make them, under the stored record's id, identities and version.
    pub record: CustomerRecord,
    /// The ledger as the events make it (every entry, each to write).
    pub ledger: Ledger,
    /// Each field whose value differs from the stored record (`after` is `null` for a field the
    /// events no longer set).
    pub changes: Vec<FieldDiff>,
    pub applied: usize,
    pub skipped: Vec<Skipped>,
}

/// Applies `events` (in any order, repeats ignored) with `registry` to an empty record of
/// `stored`'s customer. Events without a rule are ignored, as the processor acknowledges them.
pub fn rebuild(registry: &Registry, stored: &CustomerRecord, events: &[CanonicalEvent]) -> Rebuilt {
    let mut ordered: Vec<&CanonicalEvent> = events.iter().collect();
    ordered.sort_by(|a, b| Stamp::of(a).cmp(&Stamp::of(b)).then_with(|| a.source.cmp(&b.source)));
    let mut seen = BTreeSet::new();
    let mut record = CustomerRecord::new(stored.id.clone());
    let mut ledger = Ledger::new();
    let (mut applied, mut skipped) = (0, Vec::new());
    for event in ordered {
        if !seen.insert((event.source.as_str(), event.id.as_str())) {
            continue;
        }
        let Some(rule) = registry.rule_for(&event.event_type) else { continue };
        let mut skip = |reason: String| skipped.push(Skipped { event_id: event.id.clone(), reason });
        let mut proposed = match (rule.changes)(&record, event) {
            Ok(changes) => changes,
            Err(e) => {
                skip(e.to_string());
                continue;
            }
        };
        let mut writes = Vec::new();
        if let Some(ledger_rule) = rule.ledger {
            match (ledger_rule.apply)(&record, &ledger, event) {
                Ok(outcome) => {
                    proposed.extend(outcome.changes);
                    writes = outcome.writes;
                }
                Err(e) => {
                    skip(e.to_string());
                    continue;
                }
            }
        }
        // A rule that may not make its changes fails the whole event, ledger included.
        let mut candidate = record.clone();
        if let Err(e) = candidate.apply(rule.name, rule.owns, &Stamp::of(event), &proposed) {
            skip(e.to_string());
            continue;
        }
        record = candidate;
        ledger.extend(writes);
        applied += 1;
    }
    record.identities = stored.identities.clone();
    record.version = stored.version;
    // The lake keeps times to the microsecond; an event's time in the record may have nanoseconds.
    // The same value set by the same event is the same field, whatever the precision of its time.
    for (field, state) in record.fields.iter_mut() {
        if let Some(old) = stored.fields.get(field)
            && old.value == state.value
            && old.stamp.event_id == state.stamp.event_id
            && old.stamp.at.as_microsecond() == state.stamp.at.as_microsecond()
        {
            *state = old.clone();
        }
    }
    let changes = diff(stored, &record);
    Rebuilt { record, ledger, changes, applied, skipped }
}

/// Each field whose value differs between `before` and `after` (cleared fields count as absent).
fn diff(before: &CustomerRecord, after: &CustomerRecord) -> Vec<FieldDiff> {
    let fields: BTreeSet<&String> = before.fields.keys().chain(after.fields.keys()).collect();
    let visible = |record: &CustomerRecord, field: &str| record.value(field).filter(|v| !v.is_null()).cloned();
    fields
        .into_iter()
        .filter_map(|field| {
            let (old, new) = (visible(before, field), visible(after, field));
            (old != new).then(|| FieldDiff { field: field.clone(), before: old, after: new.unwrap_or(Value::Null) })
        })
        .collect()
}

/// Most items one commit may write (DynamoDB's `TransactWriteItems` takes 100): the record, the
/// marker and the audit entry, then ledger entries.
pub const MAX_COMMIT_ITEMS: usize = 100;

/// Why a rebuild that differs cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildRefused {
    #[error("the rebuilt record would be {0} bytes of JSON, over the {MAX_RECORD_BYTES} stored per customer")]
    TooLarge(usize),
    #[error("{0} ledger entries changed, more than one commit writes")]
    TooManyLedgerEntries(usize),
}

/// The id of the rebuild that wrote `version` of `customer` (its marker's and audit entry's).
pub fn rebuild_event_id(customer: &super::CustomerId, version: u64) -> Option<EventId> {
    EventId::parse(format!("{customer}.{version}")).ok()
}

/// The write of a rebuild that differs from `stored`: the new record as the next version, one
/// audit entry of kind `rebuild` listing every changed field, the ledger entries that differ from
/// `stored_ledger` (the stored entries of the rebuilt keys), and a marker whose pending
/// `customer.updated` names the changed fields (none when only stamps moved). `None` when the
/// rebuild changes nothing: nothing is written.
pub fn rebuild_commit(
    stored: &CustomerRecord,
    stored_ledger: &Ledger,
    rebuilt: Rebuilt,
    now: Timestamp,
) -> Result<Option<Commit>, RebuildRefused> {
    let ledger: Vec<(String, Value)> =
        rebuilt.ledger.into_iter().filter(|(key, entry)| stored_ledger.get(key) != Some(entry)).collect();
    if rebuilt.record.fields == stored.fields && ledger.is_empty() {
        return Ok(None);
    }
    if ledger.len() + 3 > MAX_COMMIT_ITEMS {
        return Err(RebuildRefused::TooManyLedgerEntries(ledger.len()));
    }
    let mut record = rebuilt.record;
    record.version = stored.version + 1;
    let size = serde_json::to_vec(&record).map_or(0, |json| json.len());
    if size > MAX_RECORD_BYTES {
        return Err(RebuildRefused::TooLarge(size));
    }
    let Some(event_id) = rebuild_event_id(&record.id, record.version) else { return Ok(None) };
    let changed_fields: Vec<String> = rebuilt.changes.iter().map(|d| d.field.clone()).collect();
    let pending = (!changed_fields.is_empty()).then(|| CustomerUpdated {
        customer_id: record.id.clone(),
        version: record.version,
        changed_fields,
        event_id: event_id.clone(),
    });
    Ok(Some(Commit {
        expected_version: stored.version,
        new_links: Vec::new(),
        audit: AuditEntry {
            customer_id: record.id.clone(),
            kind: AuditKind::Rebuild,
            version: record.version,
            event_id: event_id.clone(),
            source: REBUILD_SOURCE.into(),
            event_type: REBUILD_SOURCE.into(),
            rule: None,
            changes: rebuilt.changes,
            occurred_at: now,
            processed_at: now,
            integration: None,
            requested_by: None,
        },
        marker: AppliedMarker {
            source: REBUILD_SOURCE.into(),
            event_id,
            customer_id: record.id.clone(),
            version: record.version,
            committed_at: now,
            digest: None,
            pending,
        },
        ledger,
        record,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::CustomerId;
    use crate::customer::rules::test_support::event;
    use serde_json::json;

    fn lead(id: &str, at: &str, statut: &str) -> CanonicalEvent {
        let mut e = event(
            "lead.upserted",
            Some("email:ada@example.com"),
            at,
            json!({"id": "L1", "nom": "Ada", "email": "ada@example.com", "statut": statut}),
        );
        e.id = EventId::parse(id).unwrap();
        e.source = "ingestion".into();
        e
    }

    fn make(id: &str, at: &str) -> CanonicalEvent {
        let mut e = event("make.lead.enriched", Some("email:ada@example.com"), at, json!({"company": "Martin & Fils"}));
        e.id = EventId::parse(id).unwrap();
        e.source = "make".into();
        e
    }

    /// The record as the processor builds it: each event applied as it arrives.
    fn processed(registry: &Registry, events: &[CanonicalEvent]) -> CustomerRecord {
        let mut record = CustomerRecord::new(CustomerId::parse("c-1").unwrap());
        record.identities.insert("email:ada@example.com".into());
        for e in events {
            if let Some(rule) = registry.rule_for(&e.event_type) {
                let changes = (rule.changes)(&record, e).unwrap();
                record.apply(rule.name, rule.owns, &Stamp::of(e), &changes).unwrap();
                record.version += 1;
            }
        }
        record
    }

    #[test]
    fn the_same_rules_rebuild_the_same_record_and_nothing_is_written() {
        let registry = Registry::standard(&["make".into()]);
        let events = [
            lead("e2", "2026-11-02T00:00:00Z", "appel_propose"),
            lead("e1", "2026-11-01T00:00:00Z", "contacte"),
            make("e3", "2026-11-03T00:00:00Z"),
        ];
        let stored = processed(&registry, &events);
        let mut shuffled = events.to_vec();
        shuffled.reverse();
        shuffled.push(events[0].clone());
        let rebuilt = rebuild(&registry, &stored, &shuffled);
        assert_eq!(rebuilt.applied, 3, "the repeat is applied once");
        assert!(rebuilt.changes.is_empty());
        assert_eq!(rebuild_commit(&stored, &Ledger::new(), rebuilt, Timestamp::now()), Ok(None));
    }

    #[test]
    fn a_time_the_lake_kept_to_the_microsecond_is_the_same_stamp() {
        let registry = Registry::standard(&["make".into()]);
        let precise = make("e3", "2026-11-03T09:00:00.123456789Z");
        let stored = processed(&registry, std::slice::from_ref(&precise));
        let mut from_lake = precise.clone();
        from_lake.occurred_at = "2026-11-03T09:00:00.123456Z".parse().unwrap();
        let rebuilt = rebuild(&registry, &stored, &[from_lake]);
        assert_eq!(rebuilt.record.fields, stored.fields);
        assert_eq!(rebuild_commit(&stored, &Ledger::new(), rebuilt, Timestamp::now()), Ok(None));
    }

    #[test]
    fn a_rule_change_is_one_new_version_listing_every_changed_field() {
        // Stored while `make` fed the attributes; rebuilt after it was taken out of them.
        let events = [lead("e1", "2026-11-01T00:00:00Z", "contacte"), make("e3", "2026-11-03T00:00:00Z")];
        let stored = processed(&Registry::standard(&["make".into()]), &events);
        assert_eq!(stored.value("attributes.make.company"), Some(&json!("Martin & Fils")));
        let today = Registry::standard(&[]);
        let rebuilt = rebuild(&today, &stored, &events);
        assert_eq!(rebuilt.record, processed(&today, &events).clone_with_version(stored.version));
        let fields: Vec<&str> = rebuilt.changes.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["attributes.make.company"]);
        assert_eq!(rebuilt.changes[0].before, Some(json!("Martin & Fils")));
        assert_eq!(rebuilt.changes[0].after, Value::Null);
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let commit = rebuild_commit(&stored, &Ledger::new(), rebuilt, now).unwrap().unwrap();
        assert_eq!((commit.expected_version, commit.record.version), (stored.version, stored.version + 1));
        assert_eq!(commit.audit.kind, AuditKind::Rebuild);
        assert_eq!(commit.audit.changes.len(), 1);
        assert_eq!(commit.record.identities, stored.identities);
        let pending = commit.marker.pending.unwrap();
        assert_eq!(pending.changed_fields, ["attributes.make.company"]);
        assert_eq!(commit.marker.source, REBUILD_SOURCE);
    }

    #[test]
    fn an_event_no_rule_can_apply_is_skipped_with_its_reason() {
        let registry = Registry::standard(&[]);
        let mut bad = lead("e9", "2026-11-05T00:00:00Z", "contacte");
        bad.payload = serde_json::value::RawValue::from_string("{\"nom\": 5}".into()).unwrap();
        let events = [lead("e1", "2026-11-01T00:00:00Z", "contacte"), bad];
        let stored = processed(&registry, &events[..1]);
        let rebuilt = rebuild(&registry, &stored, &events);
        assert_eq!(rebuilt.applied, 1);
        assert_eq!(rebuilt.skipped.len(), 1);
        assert_eq!(rebuilt.skipped[0].event_id.as_str(), "e9");
        assert!(rebuilt.changes.is_empty());
    }

    #[test]
    fn only_changed_ledger_entries_are_written_and_a_commit_never_exceeds_its_items() {
        let stored = CustomerRecord::new(CustomerId::parse("c-1").unwrap());
        let entries =
            |n: usize| -> Ledger { (0..n).map(|i| (format!("PAYMENT#pi_{i}"), json!({"counted": i}))).collect() };
        let rebuilt = |ledger: Ledger| Rebuilt {
            record: stored.clone(),
            ledger,
            changes: Vec::new(),
            applied: 0,
            skipped: Vec::new(),
        };
        let now = Timestamp::now();
        assert_eq!(rebuild_commit(&stored, &entries(5), rebuilt(entries(5)), now), Ok(None), "the same ledger");
        let mut one_more = entries(5);
        one_more.insert("PAYMENT#pi_9".into(), json!({"counted": 9}));
        let commit = rebuild_commit(&stored, &entries(5), rebuilt(one_more), now).unwrap().unwrap();
        assert_eq!(commit.ledger, [("PAYMENT#pi_9".to_string(), json!({"counted": 9}))]);
        assert_eq!(commit.marker.pending, None, "no field changed: nothing to push");
        assert_eq!(
            rebuild_commit(&stored, &Ledger::new(), rebuilt(entries(98)), now),
            Err(RebuildRefused::TooManyLedgerEntries(98))
        );
    }

    impl CustomerRecord {
        fn clone_with_version(&self, version: u64) -> Self {
            Self { version, ..self.clone() }
        }
    }
}
