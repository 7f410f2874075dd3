//! The lake writer on a local-disk lake: rows per table, refused records, concurrent writers.

use crate::support;

use jiff::Timestamp;
use lake_writer::{BatchSummary, Tables, write_batch};
use support::{column, lead_body, temp_lake};
use tributary_lake::LakeTable;
use tributary_lake::schema::{EVENTS, LEADS};
use tributary_testing::sqs_event;

#[tokio::test]
async fn every_event_goes_to_events_and_leads_to_leads_and_bad_records_are_reported_alone() {
    let location = temp_lake();
    let tables = Tables::open(&location).await.unwrap();
    let stripe = r#"{"id":"evt_1","source":"stripe","type":"stripe.invoice.paid","subject":"stripe:cus_1","occurred_at":"2025-01-06T09:00:00Z","received_at":"2025-01-06T09:00:01Z","payload":{"amount":12}}"#;
    let invalid_lead = lead_body("l-bad", "ev-bad").replace("l-bad@example.com", "not-an-email");
    let bodies = vec![
        lead_body("l1", "ev-1"),
        stripe.to_string(),
        "{not json".to_string(),
        invalid_lead,
        lead_body("l2", "ev-2"),
    ];
    let (response, summary) = write_batch(&tables, sqs_event(&bodies), Timestamp::now()).await.unwrap();
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["m2", "m3"]);
    assert_eq!(summary, BatchSummary { events: 3, leads: 2, rejected: 2 });
    assert_eq!(column(&location, &EVENTS, "id").await, ["ev-1", "ev-2", "evt_1"]);
    assert!(column(&location, &EVENTS, "payload").await.contains(&r#"{"amount":12}"#.to_string()));
    assert_eq!(column(&location, &LEADS, "id").await, ["l1", "l2"]);
    assert_eq!(column(&location, &LEADS, "_event_id").await, ["ev-1", "ev-2"]);
    // One commit per table touched: version 0 is the creation.
    let leads = LakeTable::open_existing(&location, &LEADS).await.unwrap().unwrap();
    assert_eq!(leads.version(), Some(1));
    // A batch without leads does not touch the leads table.
    write_batch(&tables, sqs_event(&[stripe.replace("evt_1", "evt_2")]), Timestamp::now()).await.unwrap();
    let leads = LakeTable::open_existing(&location, &LEADS).await.unwrap().unwrap();
    assert_eq!(leads.version(), Some(1));
}

/// Eight writers (eight Lambda instances) append at once: no commit is lost, versions are
/// contiguous, and the row count is the sum of the writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_writers_lose_no_commit() {
    let location = temp_lake();
    Tables::open(&location).await.unwrap();
    let mut writers = Vec::new();
    for writer in 0..8 {
        let location = location.clone();
        writers.push(tokio::spawn(async move {
            let tables = Tables::open(&location).await.unwrap();
            for round in 0..3 {
                let bodies: Vec<String> = (0..=writer)
                    .map(|i| lead_body(&format!("w{writer}-r{round}-{i}"), &format!("e{writer}-{round}-{i}")))
                    .collect();
                write_batch(&tables, sqs_event(&bodies), Timestamp::now()).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let expected_rows: usize = (1..=8).map(|n| n * 3).sum();
    let leads = LakeTable::open_existing(&location, &LEADS).await.unwrap().unwrap();
    assert_eq!(leads.version(), Some(24), "8 writers × 3 commits after the creation");
    assert_eq!(leads.row_count().unwrap(), Some(expected_rows as u64));
    assert_eq!(column(&location, &LEADS, "id").await.len(), expected_rows);
    let log = location.table_url("leads").unwrap().to_file_path().unwrap().join("_delta_log");
    for version in 0..=24 {
        assert!(log.join(format!("{version:020}.json")).exists(), "version {version} missing");
    }
}

#[tokio::test]
async fn each_commit_is_counted_by_table_in_its_hour_with_its_rows() {
    use tributary_domain::sync::TallyKind;
    use tributary_testing::memory::InMemorySyncStore;
    let tables = Tables::open(&temp_lake()).await.unwrap();
    let tallies = InMemorySyncStore::default();
    let now: Timestamp = "2026-12-04T09:30:00Z".parse().unwrap();
    let bodies = [lead_body("l1", "ev-1"), lead_body("l2", "ev-2"), "{not json".to_string()];
    lake_writer::handle(&tables, &tallies, sqs_event(&bodies), now, "r-1").await.unwrap();
    lake_writer::handle(&tables, &tallies, sqs_event(&bodies[..1]), now, "r-2").await.unwrap();
    let mut counted: Vec<(String, String, u64, u64)> = tallies
        .all_tallies()
        .into_iter()
        .inspect(|t| {
            assert_eq!((t.kind, t.hour.to_string().as_str()), (TallyKind::LakeCommits, "2026-12-04T09:00:00Z"))
        })
        .map(|t| (t.name, t.outcome, t.count, t.records))
        .collect();
    counted.sort();
    // Two commits to each table: three rows each (the refused record is not a row).
    assert_eq!(counted, [("events".into(), "committed".into(), 2, 3), ("leads".into(), "committed".into(), 2, 3)]);
}
