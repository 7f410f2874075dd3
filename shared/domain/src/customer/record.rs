//! The record itself: a map of field paths to values, each stamped with the event that set it, and
//! the per-field merge policies that make the result independent of delivery order.

use crate::event::{CanonicalEvent, EventId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Longest customer id accepted from a URL.
const MAX_CUSTOMER_ID_LEN: usize = 64;

/// A customer's stable id (a UUID when Tributary creates it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a customer id is 1 to {MAX_CUSTOMER_ID_LEN} of a-z, 0-9 and -")]
pub struct CustomerIdError;

impl CustomerId {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn parse(value: impl Into<String>) -> Result<Self, CustomerIdError> {
        let value = value.into();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if value.is_empty() || value.len() > MAX_CUSTOMER_ID_LEN || !value.chars().all(allowed) {
            return Err(CustomerIdError);
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CustomerId {
    fn default() -> Self {
        Self::new()
    }
}

impl TryFrom<String> for CustomerId {
    type Error = CustomerIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<CustomerId> for String {
    fn from(id: CustomerId) -> Self {
        id.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which event set a value: its `occurred_at`, the event id breaking ties, so that any two
/// events are ordered the same way whatever order they are delivered in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub at: Timestamp,
    pub event_id: EventId,
}

impl Stamp {
    pub fn of(event: &CanonicalEvent) -> Self {
        Self { at: event.occurred_at, event_id: event.id.clone() }
    }
}

impl Ord for Stamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at).then_with(|| self.event_id.as_str().cmp(other.event_id.as_str()))
    }
}

impl PartialOrd for Stamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One field's value and the event behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldState {
    pub value: Value,
    #[serde(flatten)]
    pub stamp: Stamp,
}

/// How a field combines a new value with the current one. Every policy is commutative and
/// associative over distinct events, which is what makes the record order independent (each event
/// is applied once: the processor's applied-event marker guarantees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// The value of the newest event wins (by [`Stamp`]).
    Latest,
    /// The value of the oldest event wins (first visit).
    Earliest,
    /// Integers add up (visit count, totals per currency).
    Sum,
    /// Sets of strings unite (goals reached).
    Union,
}

/// The record's sub-schemas: every field path belongs to one, and the rules of an event family
/// may only write the sub-schemas they own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubSchema {
    Identity,
    Lead,
    Billing,
    Web,
    Attributes,
}

/// Every field of the record: exact paths, or prefixes ending in `.` for open families
/// (`billing.totals.<currency>`, `attributes.<source>.<key>`). The README's table is this list.
pub const SCHEMA: &[(&str, SubSchema, Merge)] = &[
    ("identity.nom", SubSchema::Identity, Merge::Latest),
    ("identity.email", SubSchema::Identity, Merge::Latest),
    ("identity.telephone", SubSchema::Identity, Merge::Latest),
    ("lead.date_prise_contact", SubSchema::Lead, Merge::Latest),
    ("lead.date_reponse_prospect", SubSchema::Lead, Merge::Latest),
    ("lead.date_appel_propose", SubSchema::Lead, Merge::Latest),
    ("lead.date_appel_booke", SubSchema::Lead, Merge::Latest),
    ("lead.date_relance", SubSchema::Lead, Merge::Latest),
    ("lead.statut", SubSchema::Lead, Merge::Latest),
    ("billing.stripe_customer", SubSchema::Billing, Merge::Latest),
    ("billing.last_payment", SubSchema::Billing, Merge::Latest),
    // Each payment counted once, refunds subtracted: the payments themselves are ledger entries
    // outside the record (`rules::stripe_payments`), so the record does not grow with them.
    // (Records written before the ledger may still hold `billing.payments.<id>` fields.)
    ("billing.totals.", SubSchema::Billing, Merge::Sum),
    ("web.visit_count", SubSchema::Web, Merge::Sum),
    ("web.first_visit", SubSchema::Web, Merge::Earliest),
    ("web.last_visit", SubSchema::Web, Merge::Latest),
    ("web.goals", SubSchema::Web, Merge::Union),
    ("attributes.", SubSchema::Attributes, Merge::Latest),
];

/// The schema entry of a field path, if the path is part of the record.
pub fn field_policy(path: &str) -> Option<(SubSchema, Merge)> {
    SCHEMA.iter().find_map(|(pattern, schema, merge)| {
        let matches = match pattern.strip_suffix('.') {
            Some(_) => path.len() > pattern.len() && path.starts_with(pattern),
            None => path == *pattern,
        };
        matches.then_some((*schema, *merge))
    })
}

/// A candidate value for one field, produced by a rule from one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: String,
    pub value: Value,
}

impl Change {
    pub fn new(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self { field: field.into(), value: value.into() }
    }
}

/// What applying an event did to one field, for the audit trail and `customer.updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub field: String,
    pub before: Option<Value>,
    pub after: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("field `{0}` is not part of the customer record")]
    UnknownField(String),
    #[error("field `{field}` belongs to the {schema:?} sub-schema, which rule `{rule}` does not own")]
    NotOwned { field: String, schema: SubSchema, rule: &'static str },
    #[error("field `{field}` adds up integers; got {value}")]
    NotAnInteger { field: String, value: Value },
    #[error("field `{field}` is a set of strings; got {value}")]
    NotAStringSet { field: String, value: Value },
}

/// One unified customer record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub id: CustomerId,
    /// Incremented by every applied event; the optimistic-concurrency check of each write.
    pub version: u64,
    /// Every subject (`email:…`, `stripe:…`, …) that resolves to this customer.
    pub identities: BTreeSet<String>,
    pub fields: BTreeMap<String, FieldState>,
}

impl CustomerRecord {
    pub fn new(id: CustomerId) -> Self {
        Self { id, version: 0, identities: BTreeSet::new(), fields: BTreeMap::new() }
    }

    pub fn value(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).map(|state| &state.value)
    }

    /// Merges `changes` from the event stamped `stamp`, each with its field's policy, and returns
    /// the fields whose value changed. A change a rule may not make fails the whole event and
    /// leaves the record untouched.
    pub fn apply(
        &mut self,
        rule: &'static str,
        owns: &[SubSchema],
        stamp: &Stamp,
        changes: &[Change],
    ) -> Result<Vec<FieldDiff>, ApplyError> {
        let mut policies = Vec::with_capacity(changes.len());
        for change in changes {
            let (schema, merge) =
                field_policy(&change.field).ok_or_else(|| ApplyError::UnknownField(change.field.clone()))?;
            if !owns.contains(&schema) {
                return Err(ApplyError::NotOwned { field: change.field.clone(), schema, rule });
            }
            match merge {
                Merge::Sum if change.value.as_i64().is_none() => {
                    return Err(ApplyError::NotAnInteger { field: change.field.clone(), value: change.value.clone() });
                }
                Merge::Union if string_set(&change.value).is_none() => {
                    return Err(ApplyError::NotAStringSet { field: change.field.clone(), value: change.value.clone() });
                }
                _ => {}
            }
            policies.push(merge);
        }

        let mut diffs = Vec::new();
        for (change, merge) in changes.iter().zip(policies) {
            let current = self.fields.get(&change.field);
            let merged = merge_field(merge, current, &change.value, stamp);
            let Some(next) = merged else { continue };
            let before = current.map(|state| state.value.clone()).filter(|value| !value.is_null());
            // `null` is "not set": a field cleared before it was ever set changes nothing visible.
            if before.as_ref().unwrap_or(&Value::Null) != &next.value {
                diffs.push(FieldDiff { field: change.field.clone(), before, after: next.value.clone() });
            }
            self.fields.insert(change.field.clone(), next);
        }
        Ok(diffs)
    }

    /// The fields as nested objects (`identity.email` → `{"identity": {"email": …}}`): the
    /// customer as a person reads it, without the stamps, and without cleared (`null`) fields.
    pub fn profile(&self) -> Value {
        let mut root = Map::new();
        for (path, state) in self.fields.iter().filter(|(_, state)| !state.value.is_null()) {
            let mut node = &mut root;
            let mut segments = path.split('.').peekable();
            while let Some(segment) = segments.next() {
                if segments.peek().is_none() {
                    node.insert(segment.to_string(), state.value.clone());
                    break;
                }
                let child = node.entry(segment.to_string()).or_insert_with(|| Value::Object(Map::new()));
                if !child.is_object() {
                    *child = Value::Object(Map::new());
                }
                let Value::Object(next) = child else { break };
                node = next;
            }
        }
        Value::Object(root)
    }
}

fn string_set(value: &Value) -> Option<BTreeSet<&str>> {
    value.as_array()?.iter().map(Value::as_str).collect()
}

/// The field's next state, or `None` when the event does not affect it (an older value for a
/// `Latest` field, a later one for an `Earliest` field).
fn merge_field(merge: Merge, current: Option<&FieldState>, value: &Value, stamp: &Stamp) -> Option<FieldState> {
    let Some(current) = current else {
        let value = match merge {
            Merge::Union => Value::from(string_set(value).unwrap_or_default().into_iter().collect::<Vec<_>>()),
            _ => value.clone(),
        };
        return Some(FieldState { value, stamp: stamp.clone() });
    };
    let newest = || if *stamp > current.stamp { stamp.clone() } else { current.stamp.clone() };
    match merge {
        Merge::Latest => (*stamp > current.stamp).then(|| FieldState { value: value.clone(), stamp: stamp.clone() }),
        Merge::Earliest => (*stamp < current.stamp).then(|| FieldState { value: value.clone(), stamp: stamp.clone() }),
        Merge::Sum => {
            let total = current.value.as_i64().unwrap_or(0).saturating_add(value.as_i64().unwrap_or(0));
            Some(FieldState { value: Value::from(total), stamp: newest() })
        }
        Merge::Union => {
            let mut set = string_set(&current.value).unwrap_or_default();
            set.extend(string_set(value).unwrap_or_default());
            Some(FieldState { value: Value::from(set.into_iter().collect::<Vec<_>>()), stamp: newest() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stamp(at: &str, id: &str) -> Stamp {
        Stamp { at: at.parse().unwrap(), event_id: EventId::parse(id).unwrap() }
    }

    const ALL: &[SubSchema] =
        &[SubSchema::Identity, SubSchema::Lead, SubSchema::Billing, SubSchema::Web, SubSchema::Attributes];

    #[test]
    fn every_lead_field_but_the_id_has_its_place_in_the_record() {
        for field in crate::lead::LEAD_FIELDS.iter().filter(|f| **f != "id") {
            let places: Vec<&str> = SCHEMA
                .iter()
                .map(|(path, _, _)| *path)
                .filter(|path| path.split_once('.').is_some_and(|(_, name)| name == *field))
                .collect();
            assert_eq!(places.len(), 1, "{field}: {places:?}");
        }
        let lead_paths = SCHEMA.iter().filter(|(_, sub, _)| *sub == SubSchema::Lead).count();
        assert_eq!(lead_paths, crate::lead::LEAD_DATE_FIELDS.len() + 1, "the dates and the statut");
    }

    #[test]
    fn newer_values_win_and_older_ones_are_ignored() {
        let mut record = CustomerRecord::new(CustomerId::new());
        let new = stamp("2025-01-02T00:00:00Z", "b");
        let old = stamp("2025-01-01T00:00:00Z", "a");
        let diffs = record.apply("t", ALL, &new, &[Change::new("identity.nom", "Ada")]).unwrap();
        assert_eq!(diffs, vec![FieldDiff { field: "identity.nom".into(), before: None, after: json!("Ada") }]);
        assert!(record.apply("t", ALL, &old, &[Change::new("identity.nom", "Old")]).unwrap().is_empty());
        assert_eq!(record.value("identity.nom"), Some(&json!("Ada")));
        // Same instant: the event id breaks the tie, the same way in every order.
        let tie = stamp("2025-01-02T00:00:00Z", "c");
        assert_eq!(record.apply("t", ALL, &tie, &[Change::new("identity.nom", "Cy")]).unwrap().len(), 1);
    }

    #[test]
    fn sums_earliest_and_unions_combine() {
        let mut record = CustomerRecord::new(CustomerId::new());
        let late = stamp("2025-01-03T00:00:00Z", "v2");
        let early = stamp("2025-01-01T00:00:00Z", "v1");
        for s in [&late, &early] {
            let changes = [
                Change::new("web.visit_count", 1),
                Change::new("web.first_visit", s.at.to_string()),
                Change::new("web.goals", json!([s.event_id.as_str()])),
            ];
            record.apply("t", ALL, s, &changes).unwrap();
        }
        assert_eq!(record.value("web.visit_count"), Some(&json!(2)));
        assert_eq!(record.value("web.first_visit"), Some(&json!("2025-01-01T00:00:00Z")));
        assert_eq!(record.value("web.goals"), Some(&json!(["v1", "v2"])));
        assert_eq!(record.fields["web.visit_count"].stamp, late);
    }

    #[test]
    fn rules_only_write_fields_of_their_sub_schemas() {
        let mut record = CustomerRecord::new(CustomerId::new());
        let s = stamp("2025-01-01T00:00:00Z", "a");
        let err = record.apply("web", &[SubSchema::Web], &s, &[Change::new("identity.nom", "x")]).unwrap_err();
        assert!(matches!(err, ApplyError::NotOwned { .. }), "{err}");
        let err = record.apply("t", ALL, &s, &[Change::new("identity.age", 3)]).unwrap_err();
        assert_eq!(err, ApplyError::UnknownField("identity.age".into()));
        let err = record.apply("t", ALL, &s, &[Change::new("web.visit_count", "one")]).unwrap_err();
        assert!(matches!(err, ApplyError::NotAnInteger { .. }));
        assert!(record.fields.is_empty(), "a refused event leaves the record untouched");
        assert_eq!(field_policy("billing.totals.eur"), Some((SubSchema::Billing, Merge::Sum)));
        assert_eq!(field_policy("billing.totals."), None);
    }

    #[test]
    fn profile_nests_fields() {
        let mut record = CustomerRecord::new(CustomerId::new());
        let s = stamp("2025-01-01T00:00:00Z", "a");
        record
            .apply("t", ALL, &s, &[Change::new("identity.nom", "Ada"), Change::new("billing.totals.eur", 500)])
            .unwrap();
        assert_eq!(record.profile(), json!({"identity": {"nom": "Ada"}, "billing": {"totals": {"eur": 500}}}));
    }
}
