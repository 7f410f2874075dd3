//! What opening a lake table costs as its log grows: a `leads` table after `--commits N` lake-writer
//! batches (default: 10, then 1 000), on local disk and on moto's S3. For each: the median time of
//! `LakeTable::open_existing` over 20 opens, the log files it has to read (the last checkpoint and
//! the JSON entries after it), and on S3 the number of requests one open makes (counted in moto's
//! request log). Then the same after a compaction. Run:
//!
//! `cargo bench -p lake-writer --bench table_open` (or `make bench-lake-open`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test or bench fails loudly on what it did not expect"
)]

use aws_lambda_events::sqs::SqsEvent;
use jiff::Timestamp;
use lake_writer::{Tables, write_batch};
use std::time::{Duration, Instant};
use tributary_domain::lead::Lead;
use tributary_lake::schema::LEADS;
use tributary_lake::{CompactionPolicy, LakeLocation, LakeTable};
use tributary_testing::{Moto, sqs_event};

/// One SQS batch of `size` lead versions, as the lake writer receives it.
fn batch(commit: usize, size: usize) -> SqsEvent {
    let at: Timestamp = "2025-01-06T10:00:00Z".parse().unwrap();
    sqs_event((0..size).map(|i| {
        let lead = Lead {
            id: format!("lead-{commit}-{i}"),
            nom: format!("Lead {commit} {i}"),
            email: Some(format!("lead{commit}.{i}@example.com")),
            date_prise_contact: Some("2025-01-06".into()),
            statut: Some("contacte".into()),
            ..Lead::default()
        };
        lead.upserted_event(format!("ev-{commit}-{i}"), "ingestion", at, at).unwrap().to_message().unwrap()
    }))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Requests moto has logged so far (one line per request).
fn moto_requests(moto: &Moto) -> usize {
    std::fs::read_to_string(moto.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("HTTP/1.1\""))
        .count()
}

async fn measure(label: &str, location: &LakeLocation, moto: Option<&Moto>) {
    let mut samples = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let table = LakeTable::open_existing(location, &LEADS).await.unwrap().unwrap();
        samples.push(started.elapsed());
        drop(table);
    }
    let mut requests = None;
    if let Some(moto) = moto {
        // moto writes a log line after answering: let it catch up before and after.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = moto_requests(moto);
        drop(LakeTable::open_existing(location, &LEADS).await.unwrap().unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
        requests = Some(moto_requests(moto) - before);
    }
    let table = LakeTable::open_existing(location, &LEADS).await.unwrap().unwrap();
    let version = table.version().unwrap_or_default();
    let checkpoint = version + 1 - (version + 1) % u64::from(tributary_lake::CHECKPOINT_INTERVAL);
    let json_after = version + 1 - checkpoint;
    println!(
        "{label:<34} version {version:>5}  files {:>5}  open median {:>8.2?}  log read: {}{json_after} JSON{}",
        table.files().unwrap().len(),
        median(samples),
        if checkpoint > 0 { "1 checkpoint + " } else { "" },
        requests.map(|n| format!("  S3 requests per open: {n}")).unwrap_or_default(),
    );
}

async fn run(label: &str, location: &LakeLocation, moto: Option<&Moto>, commits: &[usize]) {
    let tables = Tables::open(location).await.unwrap();
    let mut done = 0;
    for &target in commits {
        let started = Instant::now();
        while done < target {
            write_batch(&tables, batch(done, 10), Timestamp::now()).await.unwrap();
            done += 1;
        }
        println!("{label}: {target} commits written (these took {:.1?})", started.elapsed());
        measure(&format!("{label}, {target} commits"), location, moto).await;
    }
    let mut table = LakeTable::open_existing(location, &LEADS).await.unwrap().unwrap();
    let summary = table.compact(CompactionPolicy::default(), Timestamp::MAX).await.unwrap();
    println!("{label}: compacted {} files into {}", summary.files_removed, summary.files_added);
    measure(&format!("{label}, after compaction"), location, moto).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip_while(|a| a != "--commits").skip(1);
    let commits: Vec<usize> = match args.next() {
        Some(n) => vec![n.parse().expect("--commits N")],
        None => vec![10, 1000],
    };
    let dir = std::env::temp_dir().join(format!("tributary-open-bench-{}", uuid::Uuid::new_v4()));
    run("local disk", &LakeLocation::local_dir(&dir).unwrap(), None, &commits).await;
    let _ = std::fs::remove_dir_all(&dir);

    let moto = Moto::start().await.unwrap();
    let sdk = moto.sdk_config().await;
    tributary_aws::s3_client(&sdk).create_bucket().bucket("bench-lake").send().await.unwrap();
    let location = LakeLocation::s3("bench-lake", "tributary").unwrap().with_endpoint(
        &moto.endpoint(),
        "us-east-1",
        "testing",
        "testing",
    );
    run("moto S3", &location, Some(&moto), &commits).await;
}
