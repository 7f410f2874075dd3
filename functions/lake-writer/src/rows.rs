//! Canonical events as rows of the `events` and `leads` tables.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::sync::Arc;
use tributary_domain::event::CanonicalEvent;
use tributary_domain::lead::Lead;
use tributary_lake::deltalake::arrow::array::{ArrayRef, Date32Builder, StringBuilder, TimestampMicrosecondBuilder};
use tributary_lake::deltalake::arrow::datatypes::SchemaRef;
use tributary_lake::deltalake::arrow::record_batch::RecordBatch;
use tributary_lake::schema::{EVENTS, LEADS};
use tributary_lake::{LakeError, date32};

use tributary_domain::event::types::LEAD_UPSERTED;

/// A lead version and the event that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadVersion {
    pub lead: Lead,
    pub event_id: String,
    pub occurred_at: Timestamp,
}

/// The readable records of a batch.
#[derive(Debug, Default)]
pub struct Accepted {
    pub events: Vec<CanonicalEvent>,
    pub leads: Vec<LeadVersion>,
}

/// Reads one SQS body; on success adds its rows to `accepted`, otherwise says why not (nothing of
/// the record is added).
pub fn accept(accepted: &mut Accepted, body: &str) -> Result<(), String> {
    let event: CanonicalEvent = serde_json::from_str(body).map_err(|e| format!("not a canonical event: {e}"))?;
    if event.event_type == LEAD_UPSERTED {
        let lead: Lead = serde_json::from_str(event.payload.get())
            .map_err(|e| format!("event {}: payload is not a lead: {e}", event.id))?;
        // Producers validate before publishing; a lead that fails here came from elsewhere.
        let lead = lead.validated().map_err(|problems| {
            let listed: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.reason)).collect();
            format!("event {}: invalid lead ({})", event.id, listed.join("; "))
        })?;
        accepted.leads.push(LeadVersion { lead, event_id: event.id.to_string(), occurred_at: event.occurred_at });
    }
    accepted.events.push(event);
    Ok(())
}

fn batch(table: &str, schema: &SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, LakeError> {
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| LakeError::Batch { table: table.to_string(), reason: e.to_string() })
}

fn timestamps(values: impl Iterator<Item = Timestamp>, n: usize) -> ArrayRef {
    let mut builder = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for value in values {
        builder.append_value(value.as_microsecond());
    }
    Arc::new(builder.finish())
}

fn texts<'a>(values: impl Iterator<Item = Option<&'a str>>, n: usize) -> ArrayRef {
    let mut builder = StringBuilder::with_capacity(n, n * 24);
    for value in values {
        builder.append_option(value);
    }
    Arc::new(builder.finish())
}

/// `events` rows, partitioned by the UTC day the event occurred.
pub fn events_batch(schema: &SchemaRef, events: &[CanonicalEvent]) -> Result<RecordBatch, LakeError> {
    let n = events.len();
    let mut event_date = Date32Builder::with_capacity(n);
    for event in events {
        event_date.append_value(date32(event.occurred_at.to_zoned(TimeZone::UTC).date()));
    }
    let columns = vec![
        texts(events.iter().map(|e| Some(e.id.as_str())), n),
        texts(events.iter().map(|e| Some(e.source.as_str())), n),
        texts(events.iter().map(|e| Some(e.event_type.as_str())), n),
        texts(events.iter().map(|e| e.subject.as_ref().map(|s| s.as_str())), n),
        timestamps(events.iter().map(|e| e.occurred_at), n),
        timestamps(events.iter().map(|e| e.received_at), n),
        texts(events.iter().map(|e| Some(e.payload.get())), n),
        Arc::new(event_date.finish()),
    ];
    batch(EVENTS.name, schema, columns)
}

/// `leads` rows: the ten fields, the event id, when the version occurred, when it was ingested.
pub fn leads_batch(schema: &SchemaRef, leads: &[LeadVersion], now: Timestamp) -> Result<RecordBatch, LakeError> {
    let n = leads.len();
    let field = |get: fn(&Lead) -> Option<&str>| texts(leads.iter().map(|v| get(&v.lead)), n);
    let columns = vec![
        field(|l| Some(l.id.as_str())),
        field(|l| Some(l.nom.as_str())),
        field(|l| l.email.as_deref()),
        field(|l| l.telephone.as_deref()),
        field(|l| l.date_prise_contact.as_deref()),
        field(|l| l.date_appel_booke.as_deref()),
        field(|l| l.date_appel_propose.as_deref()),
        field(|l| l.date_relance.as_deref()),
        field(|l| l.date_reponse_prospect.as_deref()),
        field(|l| l.statut.as_deref()),
        texts(leads.iter().map(|v| Some(v.event_id.as_str())), n),
        timestamps(leads.iter().map(|v| v.occurred_at), n),
        timestamps(std::iter::repeat_n(now, n), n),
    ];
    batch(LEADS.name, schema, columns)
}
