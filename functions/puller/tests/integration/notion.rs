//! The Notion job against a fake Notion (wiremock, fixture-shaped answers): both API versions,
//! delta sync with the watermark, rate limits, invalid pages, and crash/resume with no gap.

use crate::support;

use jiff::{SignedDuration, Timestamp};
use puller::Budget;
use puller::fetch::RetryPolicy;
use puller::handler::{Deps, NotionDeps, handle};
use puller::notion::api::NotionApi;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Crash, Faults, NOTION_TOKEN, NotionData, notion_properties, start_notion};
use tributary_domain::event::CanonicalEvent;
use tributary_domain::retry::Backoff;
use tributary_domain::sync::SyncOutcome;
use tributary_lake::LakeLocation;
use tributary_testing::memory::{InMemoryPublisher, InMemorySyncStore};
use wiremock::MockServer;

struct Harness {
    _server: MockServer,
    faults: Arc<Faults>,
    data: Arc<Mutex<NotionData>>,
    deps: Deps<InMemorySyncStore, InMemoryPublisher>,
}

async fn harness(data: NotionData, version: &str, pacing: Duration) -> Harness {
    let database = data.database.clone();
    let data = Arc::new(Mutex::new(data));
    let (server, faults) = start_notion(data.clone()).await;
    let policy = RetryPolicy {
        attempts: 3,
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(2),
        },
    };
    let api = NotionApi::new(
        reqwest::Client::new(),
        reqwest::Url::parse(&server.uri()).unwrap(),
        NOTION_TOKEN.into(),
        version.into(),
        policy,
    )
    .with_min_interval(pacing);
    let deps = Deps {
        store: InMemorySyncStore::default(),
        publisher: InMemoryPublisher::default(),
        // Unused by the Notion job.
        lake: LakeLocation::s3("unused", "").unwrap(),
        matomo: None,
        notion: Some(NotionDeps { api, properties: notion_properties(), databases: vec![database] }),
    };
    Harness { _server: server, faults, data, deps }
}

fn budget() -> Budget {
    Budget { deadline: Timestamp::now() + SignedDuration::from_secs(3600), margin: SignedDuration::from_secs(5) }
}

impl Harness {
    async fn run(&self) -> Result<puller::handler::JobReport, puller::handler::HandlerError> {
        handle(&self.deps, &json!({"job": "notion"}), budget()).await
    }

    fn events(&self) -> Vec<CanonicalEvent> {
        self.deps.publisher.messages().iter().map(|m| CanonicalEvent::from_message(&m.body).unwrap()).collect()
    }

    /// The lead ids on the bus, each under one event id with one content
    /// (`support::announced_once`; a republication after a crash is the same event).
    fn bus_lead_ids(&self) -> Vec<String> {
        support::announced_once(&self.deps.publisher.messages(), |event| {
            event.payload_as::<Value>().unwrap()["id"].as_str().unwrap().to_string()
        })
    }

    /// Every valid page a committed watermark has passed (edited before it) is on the bus: the
    /// watermark never moves past what was published.
    fn assert_watermarks_behind_the_bus(&self, label: &str) {
        let on_bus: BTreeSet<String> = self.bus_lead_ids().into_iter().collect();
        let valid: BTreeSet<String> = self.data.lock().unwrap().valid_ids().into_iter().collect();
        let data = self.data.lock().unwrap();
        for (key, mark) in self.watermarks() {
            let mark: Timestamp = mark.parse().unwrap();
            let (source, pages) = data.sources.iter().find(|(source, _)| key.ends_with(source.as_str())).unwrap();
            for page in pages {
                let id = page["id"].as_str().unwrap();
                let edited: Timestamp = page["last_edited_time"].as_str().unwrap().parse().unwrap();
                if edited < mark && valid.contains(id) {
                    assert!(on_bus.contains(id), "{label}: watermark {mark} of {source} passed {id}, never published");
                }
            }
        }
    }

    fn watermarks(&self) -> Vec<(String, String)> {
        let mut marks: Vec<(String, String)> = self.deps.store.watermarks().into_iter().collect();
        marks.sort();
        marks
    }
}

#[tokio::test]
async fn data_sources_are_discovered_and_pulled_one_by_one() {
    // 2025-09-03: two data sources, 130 and 20 pages (two query pages for the first), every 7th invalid.
    let h = harness(NotionData::generate(&[130, 20], 1, 7), "2025-09-03", Duration::ZERO).await;
    let report = h.run().await.unwrap();
    let run = &report.runs[0];
    assert_eq!(run.outcome, SyncOutcome::Completed);
    let expected = h.data.lock().unwrap().valid_ids();
    assert_eq!(h.bus_lead_ids(), expected);
    assert_eq!(run.records as usize, expected.len());
    assert_eq!(run.rejected, 150 - expected.len() as u64);
    assert_eq!(run.pages, 3);
    let urls = h.faults.urls();
    assert!(urls[0].starts_with("GET") && urls[0].contains("/v1/databases/"), "{urls:?}");
    assert_eq!(urls.iter().filter(|u| u.contains("/v1/data_sources/")).count(), 3, "{urls:?}");
    assert_eq!(h.watermarks().len(), 2, "one watermark per data source");
    // The database's run lists each data source's watermark.
    let listed: Vec<String> =
        h.watermarks().into_iter().map(|(key, mark)| format!("{}={mark}", &key["notion#".len()..])).collect();
    assert_eq!(run.watermark_after.as_deref(), Some(listed.join(", ").as_str()), "{run:?}");
    assert_eq!(
        run.watermark_before.as_deref(),
        Some(
            listed
                .iter()
                .map(|l| format!("{}=start", l.split('=').next().unwrap()))
                .collect::<Vec<_>>()
                .join(", ")
                .as_str()
        )
    );
    let event = &h.events()[0];
    assert_eq!((event.source.as_str(), event.event_type.as_str()), ("notion", "lead.upserted"));
    assert_eq!(event.occurred_at.to_string(), "2025-03-01T08:00:00Z", "the page's last edit");
}

#[tokio::test]
async fn the_2022_version_queries_the_database() {
    let h = harness(NotionData::generate(&[30], 1, 0), "2022-06-28", Duration::ZERO).await;
    h.run().await.unwrap();
    assert_eq!(h.bus_lead_ids().len(), 30);
    assert!(
        h.faults.urls().iter().all(|u| u.starts_with("POST") && u.contains("/v1/databases/") && u.ends_with("/query"))
    );
    let marks = h.watermarks();
    assert_eq!(marks[0].0, format!("notion#database-{}", h.data.lock().unwrap().database));
    assert_eq!(marks[0].1, h.data.lock().unwrap().max_edited().to_string());
}

#[tokio::test]
async fn only_pages_edited_since_the_watermark_are_read_and_reread_pages_are_duplicates() {
    let h = harness(NotionData::generate(&[250], 1, 0), "2025-09-03", Duration::ZERO).await;
    h.run().await.unwrap();
    let first = h.events().len();
    assert_eq!(first, 250);
    // A second run reads the overlap only (the last two minutes), same content → same event ids.
    let report = h.run().await.unwrap();
    assert_eq!(report.runs[0].pages, 1);
    let events = h.events();
    let ids: BTreeSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids.len(), 250, "re-read pages carry the ids already published");
    assert!(events.len() - first <= 3, "{} re-read", events.len() - first);

    // Two edits within the same minute: same rounded last_edited_time, different content → a new event.
    {
        let mut data = h.data.lock().unwrap();
        let last = data.sources.values_mut().next().unwrap().last_mut().unwrap();
        last["properties"]["Email"]["email"] = json!("new.address@example.fr");
    }
    h.run().await.unwrap();
    let ids: BTreeSet<String> = h.events().iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids.len(), 251);
}

#[tokio::test]
async fn rate_limits_are_honoured_and_requests_are_paced() {
    let h = harness(NotionData::generate(&[250], 1, 0), "2025-09-03", puller::notion::api::MIN_REQUEST_INTERVAL).await;
    h.faults.soft_errors.lock().unwrap().push(2);
    h.run().await.unwrap();
    assert_eq!(h.bus_lead_ids().len(), 250);
    let log = h.faults.log.lock().unwrap().clone();
    // retrieve database, query (429), query again after Retry-After: 1, two more queries.
    assert_eq!(log.len(), 5);
    let gap = |i: usize| log[i].0.duration_since(log[i - 1].0);
    // Ignoring `Retry-After: 1` would retry at the pacing interval, 334 ms later.
    assert!(gap(2) >= SignedDuration::from_millis(800), "Retry-After honoured: {:?}", gap(2));
    // Paced: without the pacer a request follows the last by a few milliseconds. The times (here
    // and above) are the fake server's, late by its own scheduling on a loaded machine (302 ms seen
    // under CI for the 334 ms interval), so the exact interval is the pacer's unit test's, measured
    // where requests start.
    for i in 1..log.len() {
        assert!(gap(i) >= SignedDuration::from_millis(200), "requests not paced: {:?} apart", gap(i));
    }
}

#[tokio::test]
async fn a_wait_longer_than_allowed_or_past_the_deadline_ends_the_run_instead_of_sleeping() {
    // Notion asks for 120 s; the run waits at most 2 s (the harness's `max_retry_after`).
    let h = harness(NotionData::generate(&[5], 1, 0), "2025-09-03", Duration::ZERO).await;
    h.faults.soft_errors.lock().unwrap().push(2);
    *h.faults.retry_after.lock().unwrap() = Some(120);
    let started = std::time::Instant::now();
    let error = h.run().await.unwrap_err().to_string();
    // The run says what it may show (the wait asked for is in the log line `pull failed`).
    assert!(error.contains("HTTP 429 after 1 attempt(s)"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Notion asks for 2 s but only 1.5 s remain before the margin: no sleep into the deadline.
    let h = harness(NotionData::generate(&[5], 1, 0), "2025-09-03", Duration::ZERO).await;
    h.faults.soft_errors.lock().unwrap().push(2);
    *h.faults.retry_after.lock().unwrap() = Some(2);
    let tight = Budget {
        deadline: Timestamp::now() + SignedDuration::from_millis(6_500),
        margin: SignedDuration::from_secs(5),
    };
    let started = std::time::Instant::now();
    let error = handle(&h.deps, &json!({"job": "notion"}), tight).await.unwrap_err().to_string();
    assert!(error.contains("HTTP 429 after 1 attempt(s)"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2), "no sleep into the deadline");
    assert_eq!(h.faults.count(), 2);
}

#[tokio::test]
async fn server_errors_back_off_then_fail_with_the_watermark_where_it_was() {
    let h = harness(NotionData::generate(&[250], 1, 0), "2025-09-03", Duration::ZERO).await;
    h.faults.fail_from(Some(3));
    let error = h.run().await.unwrap_err().to_string();
    assert!(error.contains("notion run(s) failed"), "{error}");
    let run = h.deps.store.runs().pop().unwrap();
    let SyncOutcome::Failed { reason, message } = &run.outcome else { panic!("{run:?}") };
    assert_eq!(*reason, tributary_domain::sync::FailureReason::SourceUnavailable);
    assert!(message.contains("502") && message.contains("after 3 attempt(s)"), "{message}");
    assert!(
        !message.contains(NOTION_TOKEN) && !message.contains("http") && !message.contains("127.0.0.1"),
        "{message}"
    );
    // The first query page was published, so the watermark is its newest edit.
    assert_eq!(h.deps.publisher.messages().len(), 100);
    assert_eq!(run.watermark_after.as_deref(), Some("2025-03-01T09:39:00Z"));
    h.faults.heal();
    h.run().await.unwrap();
    assert_eq!(h.bus_lead_ids().len(), 250);
}

#[tokio::test]
async fn a_property_of_an_unexpected_type_rejects_the_page_not_the_run() {
    let h = harness(NotionData::generate(&[5], 1, 0), "2025-09-03", Duration::ZERO).await;
    {
        let mut data = h.data.lock().unwrap();
        let page = &mut data.sources.values_mut().next().unwrap()[1];
        page["properties"]["Prise de contact"] = json!({"id": "Ab%3Dc", "type": "rich_text", "rich_text": []});
        let other = &mut data.sources.values_mut().next().unwrap()[2];
        other["properties"].as_object_mut().unwrap().retain(|name, _| name == "Nom");
    }
    let report = h.run().await.unwrap();
    assert_eq!((report.runs[0].records, report.runs[0].rejected), (4, 1));
    let sparse = h.events().into_iter().find(|e| e.payload.get().contains("Lead 3")).unwrap();
    assert_eq!(
        sparse.payload_as::<Value>().unwrap(),
        json!({"id": "00000000-0000-4000-8000-000000000003", "nom": "Lead 3"})
    );
}

/// 40 crashes, each a different one, then a resume: a failure at every request (the source dies
/// and stays dead), the bus failing after 15 different numbers of messages (inside pages of
/// results, around their edges included), and 20 real kills: the run's future dropped at a random
/// instant. After each crash no watermark has passed an unpublished page; after the resume every
/// valid page is on the bus under one event id, and the watermarks equal an uninterrupted run's.
#[tokio::test]
async fn crash_anywhere_then_resume_leaves_no_gap() {
    const KILLS: usize = 20;
    let make = || NotionData::generate(&[230, 40], 2, 9);
    let started = std::time::Instant::now();
    let reference = harness(make(), "2025-09-03", Duration::ZERO).await;
    reference.run().await.unwrap();
    let whole_run = started.elapsed();
    let requests = reference.faults.count();
    let final_marks = reference.watermarks();
    let expected = reference.data.lock().unwrap().valid_ids();
    assert_eq!(requests, 5);

    let mut rng = fastrand::Rng::with_seed(11);
    // The edges of the first page of results (100 pages, some invalid) and random points.
    let mut counts: BTreeSet<usize> = [0, 1, 88, 89, 90].into_iter().collect();
    while counts.len() < 15 {
        counts.insert(rng.usize(2..expected.len()));
    }
    let mut crashes: Vec<Crash> = (1..=requests).map(Crash::SourceDiesAt).collect();
    crashes.extend(counts.iter().copied().map(Crash::BusFailsAfter));
    let planned = crashes.len();
    let mut kills = 0;
    let mut attempts = 0;
    while kills < KILLS || !crashes.is_empty() {
        attempts += 1;
        assert!(attempts < planned + 4 * KILLS, "only {kills} random kills landed before the run ended");
        let crash = crashes.pop().unwrap_or_else(|| Crash::KilledAfter(whole_run.mul_f64(rng.f64())));
        let h = harness(make(), "2025-09-03", Duration::ZERO).await;
        let Some(label) = crash.inflict(&h.faults, &h.deps, h.run()).await else {
            continue; // The run ended before the kill: not a crash, draw another instant.
        };
        if matches!(crash, Crash::KilledAfter(_)) {
            kills += 1;
        }
        h.assert_watermarks_behind_the_bus(&label);
        h.run().await.unwrap();
        assert_eq!(h.bus_lead_ids(), expected, "{label}");
        assert_eq!(h.watermarks(), final_marks, "{label}");
    }
    assert_eq!(planned + kills, 40);
}
