//! Helpers shared by the lake writer's tests: lead events, a table's column (SQS batches:
//! `tributary_testing::sqs_event`).
// Each test file uses a subset.
#![allow(dead_code)]

use jiff::Timestamp;
use tributary_domain::lead::Lead;
use tributary_lake::deltalake::arrow::array::{Array, AsArray};
use tributary_lake::{LakeLocation, LakeTable};

pub fn temp_lake() -> LakeLocation {
    let dir = std::env::temp_dir().join(format!("tributary-lake-writer-{}", uuid::Uuid::new_v4()));
    LakeLocation::local_dir(&dir).unwrap()
}

pub fn lead_body(id: &str, event_id: &str) -> String {
    let lead = Lead {
        id: id.into(),
        nom: format!("Lead {id}"),
        email: Some(format!("{id}@example.com")),
        date_prise_contact: Some("2025-01-06".into()),
        statut: Some("contacte".into()),
        ..Lead::default()
    };
    let at: Timestamp = "2025-01-06T10:00:00Z".parse().unwrap();
    lead.upserted_event(event_id.into(), "ingestion", at, at).unwrap().to_message().unwrap()
}

pub async fn column(
    location: &LakeLocation,
    spec: &'static tributary_lake::schema::TableSpec,
    name: &str,
) -> Vec<String> {
    let table = LakeTable::open_existing(location, spec).await.unwrap().unwrap();
    let mut values = Vec::new();
    for (_, batches) in table.read_all().await.unwrap() {
        for batch in batches {
            let column = batch.column_by_name(name).unwrap().as_string::<i32>();
            values.extend((0..column.len()).map(|i| column.value(i).to_string()));
        }
    }
    values.sort();
    values
}
