//! The `events` table read back as canonical events: what a rebuild replays.

use crate::{LakeError, LakeTable};
use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::TimestampMicrosecondType;
use tributary_domain::event::{CanonicalEvent, EventId, Subject};

/// What a scan looks at before building an event: its id, source, type, subject and time.
#[derive(Debug, Clone, Copy)]
pub struct EventKey<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub event_type: &'a str,
    pub subject: Option<&'a str>,
    pub occurred_at: jiff::Timestamp,
}

/// Every event of the table `keep` selects, file by file (one file's rows in memory at a time).
pub async fn scan_events(
    table: &LakeTable,
    mut keep: impl FnMut(&EventKey<'_>) -> bool,
) -> Result<Vec<CanonicalEvent>, LakeError> {
    let mut events = Vec::new();
    for file in table.files()? {
        for batch in table.read_file(&file).await? {
            read_batch(table, &batch, &mut keep, &mut events)?;
        }
    }
    Ok(events)
}

fn read_batch(
    table: &LakeTable,
    batch: &RecordBatch,
    keep: &mut impl FnMut(&EventKey<'_>) -> bool,
    events: &mut Vec<CanonicalEvent>,
) -> Result<(), LakeError> {
    let bad = |reason: String| LakeError::Batch { table: table.name().to_string(), reason };
    let text = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| bad(format!("no text column {name}")))
    };
    let time = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| bad(format!("no timestamp column {name}")))
    };
    let (ids, sources, types, subjects, payloads) =
        (text("id")?, text("source")?, text("type")?, text("subject")?, text("payload")?);
    let (occurred, received) = (time("occurred_at")?, time("received_at")?);
    let instant = |micros: i64| {
        jiff::Timestamp::from_microsecond(micros).map_err(|e| bad(format!("a timestamp out of range: {e}")))
    };
    for row in 0..batch.num_rows() {
        let subject = (!subjects.is_null(row)).then(|| subjects.value(row));
        let key = EventKey {
            id: ids.value(row),
            source: sources.value(row),
            event_type: types.value(row),
            subject,
            occurred_at: instant(occurred.value(row))?,
        };
        if !keep(&key) {
            continue;
        }
        let id = EventId::parse(key.id).map_err(|e| bad(format!("event id {:?}: {e}", key.id)))?;
        let payload = serde_json::value::RawValue::from_string(payloads.value(row).to_string())
            .map_err(|e| bad(format!("event {}: payload is not JSON: {e}", key.id)))?;
        events.push(CanonicalEvent {
            id,
            source: key.source.to_string(),
            event_type: key.event_type.to_string(),
            subject: key.subject.map(Subject::from_stored),
            occurred_at: key.occurred_at,
            received_at: instant(received.value(row))?,
            payload,
        });
    }
    Ok(())
}
