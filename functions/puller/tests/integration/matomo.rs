//! The Matomo job against a fake Matomo (wiremock, fixture-shaped answers) and a lake on local
//! disk: paging, metadata, anonymisation, errors, deadline, lease, and crash/resume exactly once.

use crate::support;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use puller::Budget;
use puller::fetch::RetryPolicy;
use puller::handler::{Deps, MatomoDeps, handle};
use puller::matomo::api::MatomoApi;
use puller::matomo::position::Position;
use puller::matomo::pull::MatomoSettings;
use puller::matomo::visit::Anonymiser;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::{Crash, Faults, MATOMO_TOKEN, MatomoData, start_matomo};
use tributary_domain::ports::SyncStore;
use tributary_domain::retry::Backoff;
use tributary_domain::sync::{Lease, SyncOutcome};
use tributary_lake::deltalake::arrow::array::{Array, AsArray};
use tributary_lake::deltalake::arrow::datatypes::Int64Type;
use tributary_lake::schema::MATOMO_VISITS;
use tributary_lake::{LakeLocation, LakeTable};
use tributary_testing::memory::{InMemoryPublisher, InMemorySyncStore};
use wiremock::MockServer;

const PAGE_SIZE: u64 = 5;
const HMAC_KEY: &[u8] = b"test-anonymisation-key";

/// "Today" for the job: see `first_unpulled_day`.
fn today() -> Date {
    support::first_unpulled_day()
}

fn days_ago(n: i64) -> Date {
    today().checked_sub(jiff::Span::new().days(n)).unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        backoff: Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(5),
        },
    }
}

fn budget() -> Budget {
    Budget { deadline: Timestamp::now() + SignedDuration::from_secs(3600), margin: SignedDuration::from_secs(5) }
}

fn temp_lake() -> LakeLocation {
    let dir = std::env::temp_dir().join(format!("tributary-lake-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    LakeLocation::local_dir(&dir).unwrap()
}

struct Harness {
    _server: MockServer,
    faults: Arc<Faults>,
    data: Arc<MatomoData>,
    deps: Deps<InMemorySyncStore, InMemoryPublisher>,
}

/// Site 1 from four days ago: 12 visits (pages 5, 5, 2), none, exactly one page of 5 (then an
/// empty page), 3. Nine requests in all: two metadata calls and seven pages.
const DAYS: [usize; 4] = [12, 0, 5, 3];

async fn harness(days: &[usize], anonymise: &[&str]) -> Harness {
    let data = Arc::new(MatomoData::generate(1, days_ago(days.len() as i64), days));
    harness_with(data, 1, anonymise).await
}

async fn harness_with(data: Arc<MatomoData>, site: u32, anonymise: &[&str]) -> Harness {
    let (server, faults) = start_matomo(data.clone()).await;
    let base = reqwest::Url::parse(&server.uri()).unwrap();
    let start_date = *data.visits.keys().map(|(_, day)| day).min().unwrap();
    let matomo = MatomoDeps {
        api: MatomoApi::new(reqwest::Client::new(), &base, MATOMO_TOKEN.into(), fast_retries()).unwrap(),
        anonymiser: Anonymiser::new(HMAC_KEY, &anonymise.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        settings: MatomoSettings {
            start_date,
            page_size: PAGE_SIZE,
            commit_pages: 2,
            timezone: jiff::tz::TimeZone::UTC,
        },
        sites: vec![site],
    };
    let deps = Deps {
        store: InMemorySyncStore::default(),
        publisher: InMemoryPublisher::default(),
        lake: temp_lake(),
        matomo: Some(matomo),
        notion: None,
    };
    Harness { _server: server, faults, data, deps }
}

impl Harness {
    async fn run(&self) -> Result<puller::handler::JobReport, puller::handler::HandlerError> {
        handle(&self.deps, &json!({"job": "matomo"}), budget()).await
    }

    async fn table(&self) -> LakeTable {
        LakeTable::open_or_create(&self.deps.lake, &MATOMO_VISITS).await.unwrap()
    }

    /// Every row's (id_visit, visit JSON, user_id) in the lake's current snapshot.
    async fn lake_rows(&self) -> Vec<(i64, String, Option<String>)> {
        let mut rows = Vec::new();
        for (_, batches) in self.table().await.read_all().await.unwrap() {
            for batch in batches {
                let ids = batch.column_by_name("id_visit").unwrap().as_primitive::<Int64Type>();
                let visits = batch.column_by_name("visit").unwrap().as_string::<i32>();
                let users = batch.column_by_name("user_id").unwrap().as_string::<i32>();
                for i in 0..batch.num_rows() {
                    let user = (!users.is_null(i)).then(|| users.value(i).to_string());
                    rows.push((ids.value(i), visits.value(i).to_string(), user));
                }
            }
        }
        rows
    }

    async fn lake_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lake_rows().await.into_iter().map(|(id, _, _)| id).collect();
        ids.sort();
        ids
    }

    async fn position(&self, site: u32) -> Option<Position> {
        self.table()
            .await
            .committed_position(&Position::app_id(site))
            .await
            .unwrap()
            .map(|v| Position::from_version(v).unwrap())
    }

    /// The visit ids announced on the bus, each under one event id with one content
    /// (`support::announced_once`; a republication after a crash is the same event).
    fn bus_visit_ids(&self) -> Vec<i64> {
        support::announced_once(&self.deps.publisher.messages(), |event| {
            event.payload_as::<Value>().unwrap()["visit_id"].as_str().unwrap().parse::<i64>().unwrap()
        })
    }

    /// The visits a committed position covers: every visit of the days before, the first
    /// `offset` of its day.
    fn ids_before(&self, position: Option<Position>) -> Vec<i64> {
        let Some(position) = position else { return Vec::new() };
        let mut ids: Vec<i64> = self
            .data
            .visits
            .iter()
            .flat_map(|((_, day), visits)| {
                let take = if *day < position.day {
                    visits.len()
                } else if *day == position.day {
                    position.offset as usize
                } else {
                    0
                };
                visits.iter().take(take).map(|v| v["idVisit"].as_i64().unwrap())
            })
            .collect();
        ids.sort();
        ids
    }
}

#[tokio::test]
async fn an_uninterrupted_pull_takes_every_visit_once_and_stops_after_yesterday() {
    let h = harness(&DAYS, &[]).await;
    let report = h.run().await.unwrap();
    let run = &report.runs[0];
    assert_eq!(run.outcome, SyncOutcome::Completed);
    assert_eq!((run.pages, run.records, run.rejected), (7, 20, 0));
    assert_eq!(run.watermark_before.as_deref(), Some(format!("{}+0", days_ago(4)).as_str()));
    assert_eq!(run.watermark_after.as_deref(), Some(format!("{}+0", today()).as_str()));
    assert_eq!(h.lake_ids().await, h.data.all_ids());
    assert_eq!(h.bus_visit_ids(), h.data.known_visitor_ids());
    assert_eq!(h.position(1).await, Some(Position::start_of(today())));
    assert_eq!(h.deps.publisher.messages().len(), h.data.known_visitor_ids().len(), "each visit announced once");
    // Pages of exactly `filter_limit` visits are followed by an empty one; short pages end the day.
    let requested: Vec<String> = h.faults.urls().into_iter().filter(|u| u.contains("getLastVisitsDetails")).collect();
    assert_eq!(requested.len(), 7);
    assert_eq!(h.deps.store.runs().len(), 1);

    // Up to date: a second run fetches nothing and appends nothing.
    let before = h.faults.count();
    let again = h.run().await.unwrap();
    assert_eq!(again.runs[0].outcome, SyncOutcome::Completed);
    assert_eq!(again.runs[0].pages, 0);
    assert_eq!(h.faults.count(), before);
    assert_eq!(h.lake_ids().await, h.data.all_ids());
}

#[tokio::test]
async fn named_dimensions_and_goals_reach_the_lake_and_the_token_stays_out_of_urls() {
    let h = harness(&[4], &[]).await;
    h.run().await.unwrap();
    let rows = h.lake_rows().await;
    let visit: Value = serde_json::from_str(&rows[0].1).unwrap();
    assert_eq!(visit["plan"], "pro");
    assert_eq!(visit["campaign_cohort"], "fr-campaign-spring");
    assert!(visit.get("dimension1").is_none());
    assert_eq!(visit["actionDetails"][0]["page_kind"], "pricing");
    assert_eq!(visit["actionDetails"][2]["goalName"], "Trial started");
    for url in h.faults.urls() {
        assert!(!url.contains(MATOMO_TOKEN) && !url.contains("token_auth"), "{url}");
        assert!(url.contains("format=JSON"), "{url}");
    }
    let pages: Vec<String> = h.faults.urls().into_iter().filter(|u| u.contains("getLastVisitsDetails")).collect();
    assert!(
        pages[0].contains("period=day") && pages[0].contains("filter_limit=5") && pages[0].contains("filter_offset=0"),
        "{}",
        pages[0]
    );
}

#[tokio::test]
async fn a_site_without_custom_dimensions_keeps_numbered_keys() {
    let data = Arc::new(MatomoData::generate(2, days_ago(1), &[2]));
    let h = harness_with(data, 2, &[]).await;
    h.run().await.unwrap();
    let rows = h.lake_rows().await;
    assert_eq!(rows.len(), 2);
    let visit: Value = serde_json::from_str(&rows[0].1).unwrap();
    assert_eq!(visit["dimension1"], "pro");
    assert_eq!(visit["actionDetails"][2]["goalName"], "Trial started", "the name Matomo sent is kept");
}

#[tokio::test]
async fn no_configured_value_reaches_the_lake_or_the_bus_in_clear() {
    // Matomo repeats an action's URL in its `subtitle`: both must be listed (the README says so).
    let h = harness(
        &[6, 4],
        &["userId", "actionDetails.url", "actionDetails.subtitle", "city", "location", "latitude", "longitude"],
    )
    .await;
    h.run().await.unwrap();
    let mut clear: Vec<String> = Vec::new();
    for visits in h.data.visits.values() {
        for visit in visits {
            for field in ["visitIp", "userId", "city", "location", "latitude", "longitude"] {
                if let Some(text) = visit[field].as_str() {
                    clear.push(text.to_string());
                }
            }
            for action in visit["actionDetails"].as_array().unwrap() {
                if let Some(url) = action["url"].as_str() {
                    clear.push(url.to_string());
                }
            }
        }
    }
    assert!(clear.len() > 50);
    let rows = h.lake_rows().await;
    assert_eq!(rows.len(), 10);
    let messages = h.deps.publisher.messages();
    assert!(!messages.is_empty());
    let anonymiser = Anonymiser::new(HMAC_KEY, &[]);
    for (_, visit, user) in &rows {
        for value in &clear {
            assert!(
                !visit.contains(value.as_str()) && !visit.contains(&value.replace('/', "\\/")),
                "{value} in the lake"
            );
        }
        if let Some(user) = user {
            assert_eq!(user.len(), 64, "user ids are hashes");
        }
        let parsed: Value = serde_json::from_str(visit).unwrap();
        assert_eq!(parsed["visitIp"].as_str().map(str::len), Some(64));
    }
    for message in &messages {
        for value in &clear {
            assert!(!message.body.contains(value.as_str()), "{value} on the bus");
        }
    }
    // The same visitor always gets the same hash: visits still join on it.
    let first = h.data.visits.values().flatten().find(|v| v["userId"].is_string()).unwrap();
    let hashed = anonymiser.hash(first["userId"].as_str().unwrap());
    assert!(rows.iter().any(|(_, _, user)| user.as_deref() == Some(hashed.as_str())));
}

#[tokio::test]
async fn matomo_error_answers_are_retried_and_a_dead_source_fails_the_run_with_the_checkpoint_intact() {
    // One error body (HTTP 200, {"result":"error"}) is retried and the run completes.
    let h = harness(&DAYS, &[]).await;
    h.faults.soft_errors.lock().unwrap().push(4);
    h.run().await.unwrap();
    assert_eq!(h.lake_ids().await, h.data.all_ids());

    // Persistent 500s from the fifth request: retried, then the run fails; what was committed
    // matches the position, and the next run finishes the job.
    let h = harness(&DAYS, &[]).await;
    h.faults.fail_from(Some(5));
    let error = h.run().await.unwrap_err().to_string();
    assert!(error.contains("1 of 1 matomo run(s) failed"), "{error}");
    let failed = h.deps.store.runs().pop().unwrap();
    let SyncOutcome::Failed { reason, message } = &failed.outcome else { panic!("{failed:?}") };
    assert_eq!(*reason, tributary_domain::sync::FailureReason::SourceUnavailable);
    assert!(message.contains("HTTP 500") && message.contains("after 2 attempt(s)"), "{message}");
    // What the status route shows: no token, no URL, nothing of the source's answer.
    assert!(
        !message.contains(MATOMO_TOKEN) && !message.contains("http") && !message.contains("127.0.0.1"),
        "{message}"
    );
    let position = h.position(1).await;
    assert_eq!(h.lake_ids().await, h.ids_before(position));
    h.faults.heal();
    h.run().await.unwrap();
    assert_eq!(h.lake_ids().await, h.data.all_ids());
}

/// 60 crashes, each a different one, then a resume: a failure at every request (each page
/// boundary, the metadata calls included; the source dies and stays dead), the bus failing after
/// every possible number of messages (inside a page: some of its visits announced, the page not
/// committed), and real kills: the run's future dropped at a random instant, wherever it was
/// (between a Parquet upload and its log entry, between publishing and committing, …). After each
/// crash the committed position and the lake agree; after the resume the lake holds every visit
/// exactly once, the bus announces every known visitor's visit under one event id, and the
/// position is the one an uninterrupted run reaches.
#[tokio::test]
async fn crash_anywhere_then_resume_gives_every_visit_exactly_once() {
    const TRIALS: usize = 60;
    let started = std::time::Instant::now();
    let reference = harness(&DAYS, &[]).await;
    reference.run().await.unwrap();
    let whole_run = started.elapsed();
    let requests = reference.faults.count();
    let final_position = reference.position(1).await;
    assert_eq!(requests, 9);
    let announced = reference.data.known_visitor_ids().len();

    let mut crashes: Vec<Crash> = (1..=requests).map(Crash::SourceDiesAt).collect();
    crashes.extend((0..announced).map(Crash::BusFailsAfter));
    let planned = crashes.len();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut kills = 0;
    let mut attempts = 0;
    while planned + kills < TRIALS || !crashes.is_empty() {
        attempts += 1;
        assert!(attempts < 4 * TRIALS, "only {kills} random kills landed before the run ended");
        let crash = crashes.pop().unwrap_or_else(|| Crash::KilledAfter(whole_run.mul_f64(rng.f64())));
        let h = harness(&DAYS, &[]).await;
        let Some(label) = crash.inflict(&h.faults, &h.deps, h.run()).await else {
            continue; // The run ended before the kill: not a crash, draw another instant.
        };
        if matches!(crash, Crash::KilledAfter(_)) {
            kills += 1;
        }
        let position = h.position(1).await;
        assert_eq!(h.lake_ids().await, h.ids_before(position), "{label}: lake and position disagree");
        let resumed = h.run().await.unwrap();
        assert!(!resumed.more_to_do, "{label}");
        assert_eq!(h.lake_ids().await, h.data.all_ids(), "{label}");
        assert_eq!(h.bus_visit_ids(), h.data.known_visitor_ids(), "{label}");
        assert_eq!(h.position(1).await, final_position, "{label}");
    }
    assert_eq!(planned + kills, TRIALS);
}

/// A request that times out and an answer that is not JSON are retried like a 5xx; the run then
/// completes with every visit once.
#[tokio::test]
async fn timeouts_and_answers_that_are_not_json_are_retried() {
    let mut h = harness(&DAYS, &[]).await;
    let client = reqwest::Client::builder().timeout(support::SLOW_ANSWER / 6).build().unwrap();
    let base = reqwest::Url::parse(&h._server.uri()).unwrap();
    let matomo = h.deps.matomo.as_mut().unwrap();
    matomo.api = MatomoApi::new(client, &base, MATOMO_TOKEN.into(), fast_retries()).unwrap();
    // Request 3 is the first page of visits, 5 a page in the middle of the first day.
    h.faults.slow.lock().unwrap().push(3);
    h.faults.garbled.lock().unwrap().push(5);
    let report = h.run().await.unwrap();
    assert_eq!(report.runs[0].outcome, SyncOutcome::Completed);
    assert_eq!(h.faults.count(), 9 + 2, "one retry for each");
    assert_eq!(h.lake_ids().await, h.data.all_ids());
    assert_eq!(h.bus_visit_ids(), h.data.known_visitor_ids());
}

#[tokio::test]
async fn the_deadline_stops_a_run_cleanly_and_the_next_one_continues() {
    let h = harness(&DAYS, &[]).await;
    h.faults.set_delay(Duration::from_millis(150));
    let tight = Budget {
        deadline: Timestamp::now() + SignedDuration::from_millis(5_700),
        margin: SignedDuration::from_secs(5),
    };
    let report = handle(&h.deps, &json!({"job": "matomo"}), tight).await.unwrap();
    assert!(report.more_to_do);
    assert_eq!(report.runs[0].outcome, SyncOutcome::MoreToDo);
    assert!(report.runs[0].pages < 7, "{:?}", report.runs[0]);
    let position = h.position(1).await;
    assert_eq!(h.lake_ids().await, h.ids_before(position));
    h.faults.set_delay(Duration::ZERO);
    let report = h.run().await.unwrap();
    assert_eq!(report.runs[0].outcome, SyncOutcome::Completed);
    assert_eq!(h.lake_ids().await, h.data.all_ids());
}

#[tokio::test]
async fn a_site_leased_by_another_run_is_skipped() {
    let h = harness(&[3], &[]).await;
    let now = Timestamp::now();
    let other = Lease {
        key: Lease::key_for("matomo", "site-1"),
        owner: "other-run".into(),
        now,
        until: now + SignedDuration::from_secs(600),
    };
    assert!(h.deps.store.acquire_lease(&other).await.unwrap());
    let report = h.run().await.unwrap();
    assert_eq!(report.runs[0].outcome, SyncOutcome::SkippedLeased);
    assert_eq!(h.faults.count(), 0);
    h.deps.store.release_lease(&other).await.unwrap();
    assert_eq!(h.run().await.unwrap().runs[0].outcome, SyncOutcome::Completed);
}

#[tokio::test]
async fn unknown_jobs_and_sites_are_clear_errors() {
    let h = harness(&[1], &[]).await;
    let unknown = handle(&h.deps, &json!({"job": "salesforce"}), budget()).await.unwrap_err().to_string();
    assert!(unknown.contains("unknown variant `salesforce`, expected `matomo` or `notion`"), "{unknown}");
    let site = handle(&h.deps, &json!({"job": "matomo", "sites": [9]}), budget()).await.unwrap_err().to_string();
    assert_eq!(site, "Matomo site 9 is not configured for this deployment");
    let notion = handle(&h.deps, &json!({"job": "notion"}), budget()).await.unwrap_err().to_string();
    assert_eq!(notion, "job notion is not configured in this deployment");
    assert_eq!(h.faults.count(), 0);
}
