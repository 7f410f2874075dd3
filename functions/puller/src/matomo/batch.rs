//! Visits as an Arrow record batch of the `matomo_visits` table.

use super::visit::VisitRow;
use jiff::Timestamp;
use std::sync::Arc;
use tributary_lake::deltalake::arrow::array::{
    ArrayRef, Date32Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use tributary_lake::deltalake::arrow::datatypes::SchemaRef;
use tributary_lake::deltalake::arrow::record_batch::RecordBatch;
use tributary_lake::schema::MATOMO_VISITS;
use tributary_lake::{LakeError, date32};

fn micros(at: Option<Timestamp>) -> Option<i64> {
    at.map(|t| t.as_microsecond())
}

/// The rows as one batch with the table's Arrow schema (column order as declared).
pub fn visits_batch(schema: &SchemaRef, rows: &[VisitRow], pulled_at: Timestamp) -> Result<RecordBatch, LakeError> {
    let n = rows.len();
    let mut site_id = Int32Builder::with_capacity(n);
    let mut day = Date32Builder::with_capacity(n);
    let mut id_visit = Int64Builder::with_capacity(n);
    let mut visitor_id = StringBuilder::with_capacity(n, n * 16);
    let mut user_id = StringBuilder::with_capacity(n, n * 16);
    let mut first_action_at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut last_action_at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut actions = Int32Builder::with_capacity(n);
    let mut visit_duration_s = Int32Builder::with_capacity(n);
    let mut goal_conversions = Int32Builder::with_capacity(n);
    let mut visit = StringBuilder::with_capacity(n, rows.iter().map(|r| r.visit.len()).sum());
    let mut pulled = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    for row in rows {
        site_id.append_value(row.site_id);
        day.append_value(date32(row.day));
        id_visit.append_value(row.id_visit);
        visitor_id.append_option(row.visitor_id.as_deref());
        user_id.append_option(row.user_id.as_deref());
        first_action_at.append_option(micros(row.first_action_at));
        last_action_at.append_option(micros(row.last_action_at));
        actions.append_option(row.actions);
        visit_duration_s.append_option(row.visit_duration_s);
        goal_conversions.append_option(row.goal_conversions);
        visit.append_value(&row.visit);
        pulled.append_value(pulled_at.as_microsecond());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(site_id.finish()),
        Arc::new(day.finish()),
        Arc::new(id_visit.finish()),
        Arc::new(visitor_id.finish()),
        Arc::new(user_id.finish()),
        Arc::new(first_action_at.finish()),
        Arc::new(last_action_at.finish()),
        Arc::new(actions.finish()),
        Arc::new(visit_duration_s.finish()),
        Arc::new(goal_conversions.finish()),
        Arc::new(visit.finish()),
        Arc::new(pulled.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| LakeError::Batch { table: MATOMO_VISITS.name.to_string(), reason: e.to_string() })
}
