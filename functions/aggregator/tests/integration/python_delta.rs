//! Tables written by another Delta implementation (the Python `deltalake` package, see
//! tests/fixtures/python-deltalake/generate.py) are read through their log: `plain` has a DELETE
//! whose removed files are still on disk, `checkpointed` can only be read from its checkpoint plus
//! the JSON entries after it. The counts must equal the ones the generator computed in plain Python.

use aggregator::alerts::AlertRules;
use aggregator::config::LakeQueryConfig;
use aggregator::engine::EngineLimits;
use aggregator::reader::LakeReader;
use aggregator::sql::Bucket;
use aggregator::stats::{CountQuery, CountsJson, count_dates};
use serde_json::Value;
use std::path::PathBuf;
use tributary_lake::schema::LEADS;
use tributary_lake::{LakeLocation, LakeTable};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python-deltalake")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap()
}

async fn check_table(name: &str) {
    let expected = &expected()[name];
    let location = LakeLocation::local_dir(&fixtures().join(name)).unwrap();
    let table = LakeTable::open_existing(&location, &LEADS).await.unwrap().expect("the fixture table exists");
    assert_eq!(table.row_count().unwrap(), expected["rows"].as_u64(), "{name}: rows from the log's statistics");

    let cache = std::env::temp_dir().join(format!("tributary-python-delta-{}", uuid::Uuid::new_v4()));
    let mut reader = LakeReader::open(&LakeQueryConfig {
        lake: location,
        cache_dir: cache,
        limits: EngineLimits { threads: 2, memory_limit_mb: 512 },
        alert_rules: AlertRules::default(),
    })
    .unwrap();
    let engine = reader.latest().await.unwrap();
    for zone in ["UTC", "Europe/Paris"] {
        for (bucket, key) in [(Bucket::Week, "week"), (Bucket::Month, "month")] {
            let query = CountQuery { bucket, zone: zone.into(), from: None, to: None };
            let rows = count_dates(engine, &query).unwrap();
            let actual = serde_json::to_value(CountsJson { bucket, rows: &rows }).unwrap();
            assert_eq!(actual, expected["counts"][zone][key], "{name} {zone} {key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_removed_files_still_on_disk_is_read_through_its_log() {
    let expected = expected();
    // The fixture is only a test if the files on disk would give another answer.
    assert_ne!(expected["plain"]["parquet_rows_on_disk"], expected["plain"]["rows"]);
    check_table("plain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_whose_early_commits_are_gone_is_read_from_its_checkpoint() {
    let log = fixtures().join("checkpointed/leads/_delta_log");
    assert!(!log.join(format!("{:020}.json", 0)).exists(), "the checkpoint must be needed");
    assert!(log.join("_last_checkpoint").exists());
    check_table("checkpointed").await;
}
