//! The lake writer and the maintenance job against moto's S3, with the function environments the
//! template declares: concurrent writers lose no commit (conditional puts), and compaction plus
//! vacuum keep every row while appends go on.

use crate::support;

use jiff::{SignedDuration, Timestamp};
use lake_writer::maintenance::{MaintenanceConfig, maintain, maintain_recorded};
use lake_writer::{Tables, write_batch};
use std::collections::HashMap;
use support::{column, lead_body};
use tributary_aws as aws;
use tributary_lake::schema::{EVENTS, LEADS};
use tributary_lake::{LakeLocation, LakeTable};
use tributary_testing::{LocalAws, sqs_event};

struct MotoLake {
    aws: LocalAws,
    location: LakeLocation,
    maintenance: MaintenanceConfig,
    bucket: String,
}

impl MotoLake {
    async fn start() -> Self {
        let aws = LocalAws::start(&[]).await.unwrap();
        let with_endpoint = |mut env: HashMap<String, String>| {
            env.insert("AWS_ENDPOINT_URL".into(), aws.moto.endpoint());
            env.insert("AWS_REGION".into(), "us-east-1".into());
            env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
            env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
            env
        };
        let writer_env = with_endpoint(aws.stack.function_env("LakeWriterFunction").unwrap());
        let location = LakeLocation::from_env(&writer_env).unwrap();
        let maintenance =
            MaintenanceConfig::from_env(&with_endpoint(aws.stack.function_env("LakeMaintenanceFunction").unwrap()))
                .unwrap();
        let bucket = writer_env["LAKE_BUCKET"].clone();
        Self { aws, location, maintenance, bucket }
    }

    /// The keys under a table's prefix: (log entries, data files).
    async fn objects(&self, table: &str) -> (Vec<String>, Vec<String>) {
        let s3 = aws::s3_client(&self.aws.sdk);
        let prefix = self.location.table_url(table).unwrap().path().trim_start_matches('/').to_string();
        let mut keys = Vec::new();
        let mut pages = s3.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            keys.extend(page.unwrap().contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        let (log, data): (Vec<String>, Vec<String>) = keys.into_iter().partition(|key| key.contains("/_delta_log/"));
        (log, data.into_iter().filter(|key| key.ends_with(".parquet")).collect())
    }
}

/// `writers` Lambda instances each append `rounds` batches of leads at once.
async fn concurrent_writes(location: &LakeLocation, writers: usize, rounds: usize, tag: &str) -> usize {
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let location = location.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let tables = Tables::open(&location).await.unwrap();
            for round in 0..rounds {
                let bodies: Vec<String> = (0..=writer)
                    .map(|i| {
                        lead_body(&format!("{tag}-w{writer}-r{round}-{i}"), &format!("{tag}-e{writer}-{round}-{i}"))
                    })
                    .collect();
                write_batch(&tables, sqs_event(&bodies), Timestamp::now()).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (1..=writers).map(|n| n * rounds).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_writers_on_s3_lose_no_commit() {
    let lake = MotoLake::start().await;
    Tables::open(&lake.location).await.unwrap();
    let rows = concurrent_writes(&lake.location, 8, 3, "c").await;
    let leads = LakeTable::open_existing(&lake.location, &LEADS).await.unwrap().unwrap();
    assert_eq!(leads.version(), Some(24), "8 writers × 3 commits after the creation");
    assert_eq!(leads.row_count().unwrap(), Some(rows as u64));
    assert_eq!(column(&lake.location, &LEADS, "id").await.len(), rows);
    let (log, data) = lake.objects("leads").await;
    for version in 0..=24 {
        let entry = format!("/_delta_log/{version:020}.json");
        assert!(log.iter().any(|key| key.ends_with(&entry)), "version {version} missing: {log:?}");
    }
    assert_eq!(data.len(), 24, "one data file per commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn maintenance_compacts_while_writers_append_and_vacuums_after_the_retention_period() {
    let lake = MotoLake::start().await;
    let tables = Tables::open(&lake.location).await.unwrap();
    for batch in 0..20 {
        let bodies: Vec<String> =
            (0..2).map(|i| lead_body(&format!("seed-{batch}-{i}"), &format!("seed-e{batch}-{i}"))).collect();
        write_batch(&tables, sqs_event(&bodies), Timestamp::now()).await.unwrap();
    }
    // The daily run starts while three writers keep appending.
    let maintenance = {
        let config = lake.maintenance.clone();
        tokio::spawn(async move { maintain(&config.lake, config.policy, Timestamp::now(), Timestamp::MAX).await })
    };
    let appended = concurrent_writes(&lake.location, 3, 3, "during").await;
    let reports = maintenance.await.unwrap().unwrap();
    let expected = 40 + appended;
    for report in &reports {
        match report.table {
            "events" | "leads" => {
                assert!(report.exists && report.compaction_version.is_some(), "{report:?}");
                assert!(report.files_compacted >= 20 && report.files_written == 1, "{report:?}");
                assert_eq!(report.files_vacuumed, 0, "nothing is past the retention period yet: {report:?}");
            }
            _ => assert!(!report.exists, "nothing wrote matomo_visits: {report:?}"),
        }
    }
    for spec in [&EVENTS, &LEADS] {
        assert_eq!(column(&lake.location, spec, "id").await.len(), expected, "{}", spec.name);
    }

    // Eight days later the replaced files go; the live ones and every row stay.
    let later = Timestamp::now() + SignedDuration::from_hours(24 * 8);
    let runs = tributary_testing::memory::InMemorySyncStore::default();
    let reports =
        maintain_recorded(&lake.maintenance.lake, lake.maintenance.policy, &runs, later, Timestamp::MAX).await.unwrap();
    // Each table's run is in the history, with what it merged and vacuumed.
    let recorded = runs.runs();
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    for report in &reports {
        let run = recorded.iter().find(|run| run.scope == report.table).unwrap();
        assert_eq!(
            (run.job.as_str(), run.records, run.pages),
            ("lake-maintenance", report.files_compacted as u64, report.files_vacuumed as u64)
        );
        assert_eq!(run.outcome, tributary_domain::sync::SyncOutcome::Completed);
    }
    for spec in [&EVENTS, &LEADS] {
        let report = reports.iter().find(|r| r.table == spec.name).unwrap();
        let compacted = report.files_compacted;
        let table = LakeTable::open_existing(&lake.location, spec).await.unwrap().unwrap();
        let live = table.files().unwrap().len();
        let (_, data) = lake.objects(spec.name).await;
        assert_eq!(data.len(), live, "{}: only the snapshot's files remain ({report:?}, {compacted})", spec.name);
        assert_eq!(live, 1, "{}: the appends made during the first run are compacted by the second", spec.name);
        assert_eq!(column(&lake.location, spec, "id").await.len(), expected, "{}", spec.name);
    }
}
