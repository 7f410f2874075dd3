//! Peak memory of a whole Matomo pull as the number of days grows: `--days N` days of
//! `--visits V` visits (default 10 000) from a fake Matomo that generates each page on request,
//! pulled into a lake on local disk with the default page size and commit grouping. Prints the
//! visits pulled, the time, and the process's peak resident set (VmHWM). Run it once per size
//! (one process each, so each peak is its own):
//!
//! `cargo bench -p puller --bench pull_memory -- --days 10` (or `make bench-puller-memory`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test or bench fails loudly on what it did not expect"
)]

#[path = "../tests/integration/support/mod.rs"]
mod support;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use puller::Budget;
use puller::fetch::RetryPolicy;
use puller::matomo::api::MatomoApi;
use puller::matomo::pull::{MatomoJob, MatomoSettings};
use puller::matomo::visit::Anonymiser;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use tributary_domain::ports::{BusMessage, EventPublisher, PortError};
use tributary_domain::sync::SyncRun;
use tributary_lake::schema::MATOMO_VISITS;
use tributary_lake::{LakeLocation, LakeTable};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Generates the visits of a page from (day, offset, limit): nothing is held between requests.
struct GeneratingMatomo {
    template: Value,
    per_day: usize,
}

impl Respond for GeneratingMatomo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        match query.get("method").map(String::as_str) {
            Some("Live.getLastVisitsDetails") => {
                let day: Date = query["date"].parse().unwrap();
                let limit: usize = query["filter_limit"].parse().unwrap();
                let offset: usize = query["filter_offset"].parse().unwrap();
                let base = i64::from(day.day_of_year()) * 1_000_000 + i64::from(day.year()) * 1_000_000_000;
                let page: Vec<Value> = (offset..(offset + limit).min(self.per_day))
                    .map(|i| {
                        let id = base + i as i64;
                        support::visit(&self.template, 1, day, id, (id % 3 == 0).then(|| format!("v{id}@example.com")))
                    })
                    .collect();
                ResponseTemplate::new(200).set_body_json(page)
            }
            Some("CustomDimensions.getConfiguredCustomDimensions") => ResponseTemplate::new(200)
                .set_body_json(support::fixture("matomo/customdimensions-getconfiguredcustomdimensions.json")),
            Some("Goals.getGoals") => {
                ResponseTemplate::new(200).set_body_json(support::fixture("matomo/goals-getgoals.json"))
            }
            _ => ResponseTemplate::new(200).set_body_json(json!({"result": "error", "message": "unknown method"})),
        }
    }
}

/// Counts what would be published (the bus is not what is measured).
#[derive(Default)]
struct CountingPublisher(AtomicUsize);

impl EventPublisher for CountingPublisher {
    async fn publish(&self, _message: &BusMessage) -> Result<String, PortError> {
        Ok(self.0.fetch_add(1, Ordering::Relaxed).to_string())
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn argument(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` asks every bench target to list its benchmarks.
    }
    let days = argument("--days", 10);
    let per_day = argument("--visits", 10_000);
    let server = MockServer::builder().disable_request_recording().start().await;
    let template = support::fixture("matomo/live-getlastvisitsdetails-page.json")[0].clone();
    Mock::given(method("POST"))
        .and(path("/index.php"))
        .respond_with(GeneratingMatomo { template, per_day })
        .mount(&server)
        .await;

    let today = support::first_unpulled_day();
    let start = today.checked_sub(jiff::Span::new().days(days as i64)).unwrap();
    let dir = std::env::temp_dir().join(format!("tributary-bench-lake-{}", uuid::Uuid::new_v4()));
    let lake_location = LakeLocation::local_dir(&dir).unwrap();
    let mut lake = LakeTable::open_or_create(&lake_location, &MATOMO_VISITS).await.unwrap();
    let api = MatomoApi::new(
        reqwest::Client::new(),
        &reqwest::Url::parse(&server.uri()).unwrap(),
        support::MATOMO_TOKEN.into(),
        RetryPolicy::default(),
    )
    .unwrap();
    let publisher = CountingPublisher::default();
    let anonymiser =
        Anonymiser::new(b"bench-key", &["userId".into(), "actionDetails.url".into(), "actionDetails.subtitle".into()]);
    let settings =
        MatomoSettings { start_date: start, page_size: 1000, commit_pages: 5, timezone: jiff::tz::TimeZone::UTC };
    let job = MatomoJob { api: &api, publisher: &publisher, anonymiser: &anonymiser, settings: &settings };
    let budget = Budget { deadline: Timestamp::MAX, margin: SignedDuration::ZERO };
    let mut run = SyncRun::start("matomo", "site-1", "bench", Timestamp::now(), None);
    let started = std::time::Instant::now();
    let done = job.pull_site(&mut lake, 1, &budget, &mut run).await.unwrap();
    let elapsed = started.elapsed();
    assert!(done);
    let parquet_bytes: i64 = lake.files().unwrap().iter().map(|f| f.size).sum();
    println!(
        "days={days} visits_per_day={per_day} visits={} pages={} events={} parquet_bytes={parquet_bytes} \
         elapsed_s={:.1} visits_per_s={:.0} peak_rss_mib={:.1}",
        run.records,
        run.pages,
        publisher.0.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        run.records as f64 / elapsed.as_secs_f64(),
        peak_rss_kib() as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
