//! Fake Matomo and Notion servers (wiremock responders) serving data built from the fixtures in
//! `tests/fixtures/`, with LIMIT/OFFSET and cursor paging, and failures on demand.
#![allow(dead_code)]

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tributary_domain::event::CanonicalEvent;
use tributary_domain::ports::BusMessage;
use tributary_testing::memory::{InMemoryPublisher, InMemorySyncStore};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const MATOMO_TOKEN: &str = "matomo-token-0123456789abcdef";
pub const NOTION_TOKEN: &str = "ntn_test_token_0123456789";

/// The first day a Matomo pull (sites in UTC) leaves for later: today, or yesterday during the hour
/// after midnight in which the day that just ended is not pulled yet ([`SETTLE`]). Data dated from
/// it gives the same pull at any hour (unless that hour ends during the test).
///
/// [`SETTLE`]: puller::matomo::pull::SETTLE
pub fn first_unpulled_day() -> Date {
    (Timestamp::now() - puller::matomo::pull::SETTLE).to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// The events on the bus, one per event id. A run that dies between publishing and committing
/// republishes under the same ids (consumers deduplicate by id), so an id may appear more than once,
/// but every copy must be the same event (source, type, subject, time, payload; only `received_at`
/// differs): anything else would be counted twice downstream. Panics, naming the id, otherwise.
pub fn events_by_id(messages: &[BusMessage]) -> BTreeMap<String, CanonicalEvent> {
    let mut events: BTreeMap<String, CanonicalEvent> = BTreeMap::new();
    for message in messages {
        let event = CanonicalEvent::from_message(&message.body).unwrap();
        match events.get(event.id.as_str()) {
            Some(first) => assert!(
                (&first.source, &first.event_type, &first.subject, first.occurred_at, first.payload.get())
                    == (&event.source, &event.event_type, &event.subject, event.occurred_at, event.payload.get()),
                "event {} published twice with different content:\n{}\n{}",
                event.id.as_str(),
                first.payload.get(),
                event.payload.get()
            ),
            None => {
                events.insert(event.id.as_str().to_string(), event);
            }
        }
    }
    events
}

/// The record ids the bus announces, sorted, each announced under exactly one event id (two event
/// ids for one record would be two records downstream). `record_id` reads it from an event.
pub fn announced_once<K: Ord + Clone + std::fmt::Debug>(
    messages: &[BusMessage],
    record_id: impl Fn(&CanonicalEvent) -> K,
) -> Vec<K> {
    let mut owners: BTreeMap<K, String> = BTreeMap::new();
    for (id, event) in events_by_id(messages) {
        let record = record_id(&event);
        if let Some(other) = owners.insert(record.clone(), id.clone()) {
            panic!("{record:?} announced under two event ids: {other} and {id}");
        }
    }
    owners.into_keys().collect()
}

/// A crash a crash/resume test inflicts on one run.
pub enum Crash {
    /// The source answers 500 from this request (1-based) on: the run fails.
    SourceDiesAt(usize),
    /// The bus accepts this many messages, then fails: the run fails inside a page.
    BusFailsAfter(usize),
    /// The run's future is dropped after this long, wherever it was.
    KilledAfter(std::time::Duration),
}

impl Crash {
    /// Runs `run` under this crash and says what happened, or `None` when the kill came after the
    /// run had already ended (no crash: the caller draws another instant). Then heals the source
    /// and the bus and expires the killed run's lease, ready for the resume.
    pub async fn inflict<T, E>(
        &self,
        faults: &Faults,
        deps: &puller::handler::Deps<InMemorySyncStore, InMemoryPublisher>,
        run: impl std::future::Future<Output = Result<T, E>>,
    ) -> Option<String> {
        let label = match *self {
            Crash::SourceDiesAt(request) => {
                faults.fail_from(Some(request));
                assert!(run.await.is_err(), "the source died at request {request}: the run fails");
                format!("source dead from request {request}")
            }
            Crash::BusFailsAfter(count) => {
                deps.publisher.fail_after(Some(count));
                assert!(run.await.is_err(), "the bus failed after {count} messages: the run fails");
                format!("bus failing after {count} messages")
            }
            Crash::KilledAfter(after) => {
                if tokio::time::timeout(after, run).await.is_ok() {
                    return None;
                }
                deps.store.expire_leases();
                format!("killed after {after:?}")
            }
        };
        faults.heal();
        deps.publisher.fail_after(None);
        Some(label)
    }
}

pub fn fixture(name: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A visit shaped like the fixture: `id` as idVisit, in `day` (UTC), a known visitor (`userId`
/// an e-mail address) when `user` is set, its own IP and visitor id.
pub fn visit(template: &Value, site: u32, day: Date, id: i64, user: Option<String>) -> Value {
    let mut visit = template.clone();
    let start = day.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp().as_second()).unwrap_or(0) + (id % 80_000);
    visit["idSite"] = json!(site);
    visit["idVisit"] = json!(id);
    visit["visitIp"] = json!(format!("198.51.{}.{}", (id / 256) % 256, id % 256));
    visit["visitorId"] = json!(format!("{:016x}", id.wrapping_mul(0x9e37_79b9)));
    visit["userId"] = user.map(Value::String).unwrap_or(Value::Null);
    visit["firstActionTimestamp"] = json!(start);
    visit["lastActionTimestamp"] = json!(start + 100);
    visit["serverTimestamp"] = json!(start + 100);
    visit["serverDate"] = json!(day.to_string());
    if let Some(actions) = visit["actionDetails"].as_array_mut() {
        for (i, action) in actions.iter_mut().enumerate() {
            action["timestamp"] = json!(start + i as i64 * 20);
        }
    }
    visit
}

/// Visits per (site, day), with the metadata answers.
pub struct MatomoData {
    pub visits: BTreeMap<(u32, Date), Vec<Value>>,
    pub dimensions: Value,
    pub goals: Value,
}

impl MatomoData {
    /// `days[i]` visits on day `first + i` for `site`; every third visitor is known by e-mail.
    pub fn generate(site: u32, first: Date, days: &[usize]) -> Self {
        let template = fixture("matomo/live-getlastvisitsdetails-page.json")[0].clone();
        let mut visits = BTreeMap::new();
        let mut id = i64::from(site) * 1_000_000;
        for (offset, &count) in days.iter().enumerate() {
            let day = first.checked_add(jiff::Span::new().days(offset as i64)).unwrap();
            let list: Vec<Value> = (0..count)
                .map(|_| {
                    id += 1;
                    let user = (id % 3 == 0).then(|| format!("visitor{id}@example.com"));
                    visit(&template, site, day, id, user)
                })
                .collect();
            visits.insert((site, day), list);
        }
        Self {
            visits,
            dimensions: fixture("matomo/customdimensions-getconfiguredcustomdimensions.json"),
            goals: fixture("matomo/goals-getgoals.json"),
        }
    }

    pub fn all_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.visits.values().flatten().map(|v| v["idVisit"].as_i64().unwrap()).collect();
        ids.sort();
        ids
    }

    pub fn known_visitor_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .visits
            .values()
            .flatten()
            .filter(|v| v["userId"].is_string())
            .map(|v| v["idVisit"].as_i64().unwrap())
            .collect();
        ids.sort();
        ids
    }
}

/// Failure switches shared by the fake servers.
#[derive(Default)]
pub struct Faults {
    pub requests: AtomicUsize,
    /// From this request number (1-based) on, answer 500: the source "dies" mid-run.
    pub fail_from: Mutex<Option<usize>>,
    /// Request numbers answered with the source's error body (Matomo) or 429 (Notion).
    pub soft_errors: Mutex<Vec<usize>>,
    pub log: Mutex<Vec<(Timestamp, String)>>,
    /// Added to every answer (deadline tests).
    pub delay: Mutex<std::time::Duration>,
    /// `Retry-After` of the Notion fake's 429s, in seconds (1 when unset).
    pub retry_after: Mutex<Option<u64>>,
    /// Request numbers the Matomo fake answers only after [`SLOW_ANSWER`] (client timeouts).
    pub slow: Mutex<Vec<usize>>,
    /// Request numbers the Matomo fake answers with a 200 that is not JSON (a proxy's page).
    pub garbled: Mutex<Vec<usize>>,
}

/// How long a request listed in `Faults::slow` waits for its answer.
pub const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(3);

impl Faults {
    fn next(&self, request: &Request) -> (usize, bool, bool) {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.lock().unwrap().push((Timestamp::now(), format!("{} {}", request.method, request.url)));
        let dead = self.fail_from.lock().unwrap().is_some_and(|k| n >= k);
        let soft = self.soft_errors.lock().unwrap().contains(&n);
        (n, dead, soft)
    }
    pub fn heal(&self) {
        *self.fail_from.lock().unwrap() = None;
        self.soft_errors.lock().unwrap().clear();
    }
    pub fn fail_from(&self, request: Option<usize>) {
        *self.fail_from.lock().unwrap() = request;
    }
    pub fn set_delay(&self, delay: std::time::Duration) {
        *self.delay.lock().unwrap() = delay;
    }
    fn delayed(&self, template: ResponseTemplate) -> ResponseTemplate {
        template.set_delay(*self.delay.lock().unwrap())
    }
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    pub fn urls(&self) -> Vec<String> {
        self.log.lock().unwrap().iter().map(|(_, u)| u.clone()).collect()
    }
}

struct MatomoResponder {
    data: Arc<MatomoData>,
    faults: Arc<Faults>,
}

fn server_error() -> ResponseTemplate {
    ResponseTemplate::new(500).set_body_string("<html><body>Internal Server Error</body></html>")
}

impl Respond for MatomoResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let (n, dead, soft) = self.faults.next(request);
        if self.faults.garbled.lock().unwrap().contains(&n) {
            return ResponseTemplate::new(200).set_body_string("<html><body>Down for maintenance</body></html>");
        }
        let answer = self.faults.delayed(self.answer(request, dead, soft));
        if self.faults.slow.lock().unwrap().contains(&n) { answer.set_delay(SLOW_ANSWER) } else { answer }
    }
}

impl MatomoResponder {
    fn answer(&self, request: &Request, dead: bool, soft: bool) -> ResponseTemplate {
        if dead {
            return server_error();
        }
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body).into_owned().collect();
        let error =
            |message: &str| ResponseTemplate::new(200).set_body_json(json!({"result": "error", "message": message}));
        if query.contains_key("token_auth") || form.get("token_auth").map(String::as_str) != Some(MATOMO_TOKEN) {
            return error("You can't access this resource as it requires 'view' access.");
        }
        if soft {
            return ResponseTemplate::new(200).set_body_json(fixture("matomo/error-no-access.json"));
        }
        let site: u32 = query.get("idSite").and_then(|s| s.parse().ok()).unwrap_or(0);
        match query.get("method").map(String::as_str) {
            Some("CustomDimensions.getConfiguredCustomDimensions") => ResponseTemplate::new(200)
                .set_body_json(if site == 1 { self.data.dimensions.clone() } else { json!([]) }),
            Some("Goals.getGoals") => {
                ResponseTemplate::new(200).set_body_json(if site == 1 { self.data.goals.clone() } else { json!([]) })
            }
            Some("Live.getLastVisitsDetails") => {
                let day: Date = match query.get("date").and_then(|d| d.parse().ok()) {
                    Some(day) => day,
                    None => return error("date is required"),
                };
                let limit: usize = query.get("filter_limit").and_then(|v| v.parse().ok()).unwrap_or(100);
                let offset: usize = query.get("filter_offset").and_then(|v| v.parse().ok()).unwrap_or(0);
                let visits = self.data.visits.get(&(site, day)).map(Vec::as_slice).unwrap_or(&[]);
                let page: Vec<&Value> = visits.iter().skip(offset).take(limit).collect();
                ResponseTemplate::new(200).set_body_json(page)
            }
            _ => error("unknown method"),
        }
    }
}

pub async fn start_matomo(data: Arc<MatomoData>) -> (MockServer, Arc<Faults>) {
    let server = MockServer::start().await;
    let faults = Arc::new(Faults::default());
    Mock::given(method("POST"))
        .and(path("/index.php"))
        .respond_with(MatomoResponder { data, faults: faults.clone() })
        .mount(&server)
        .await;
    (server, faults)
}

/// A lead page shaped like the fixture: valid, or (when `valid` is false) with an e-mail that
/// is not one.
pub fn lead_page(template: &Value, index: usize, edited: Timestamp, valid: bool) -> Value {
    let mut page = template.clone();
    page["id"] = json!(format!("00000000-0000-4000-8000-{index:012}"));
    page["last_edited_time"] = json!(edited.strftime("%Y-%m-%dT%H:%M:00.000Z").to_string());
    let name = format!("Lead {index}");
    page["properties"]["Nom"]["title"][0]["plain_text"] = json!(name);
    page["properties"]["Nom"]["title"][0]["text"]["content"] = json!(name);
    page["properties"]["Email"]["email"] =
        json!(if valid { format!("lead{index}@example.fr") } else { "not an address".to_string() });
    page
}

/// Pages per query target (the database id for `2022-06-28`, each data source for `2025-09-03`).
pub struct NotionData {
    pub database: String,
    pub sources: BTreeMap<String, Vec<Value>>,
}

impl NotionData {
    /// `counts[i]` pages in data source i, edited a minute apart (several per minute when
    /// `per_minute` > 1), every `invalid_every`-th page invalid (0: none).
    pub fn generate(counts: &[usize], per_minute: usize, invalid_every: usize) -> Self {
        let template = fixture("notion/query-data-source-2025-09-03.json")["results"][0].clone();
        let start: Timestamp = "2025-03-01T08:00:00Z".parse().unwrap();
        let mut sources = BTreeMap::new();
        let mut index = 0;
        for (s, &count) in counts.iter().enumerate() {
            let pages: Vec<Value> = (0..count)
                .map(|i| {
                    index += 1;
                    let edited = start + jiff::SignedDuration::from_mins((i / per_minute.max(1)) as i64);
                    lead_page(&template, index, edited, invalid_every == 0 || index % invalid_every != 0)
                })
                .collect();
            sources.insert(format!("00000000-0000-4000-9000-{s:012}"), pages);
        }
        Self { database: "5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c".into(), sources }
    }

    pub fn valid_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .sources
            .values()
            .flatten()
            .filter(|p| p["properties"]["Email"]["email"].as_str().is_some_and(|e| e.contains('@')))
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    pub fn max_edited(&self) -> Timestamp {
        self.sources.values().flatten().map(|p| p["last_edited_time"].as_str().unwrap().parse().unwrap()).max().unwrap()
    }

    /// The pages of a target: the one data source, or (old API) all of them.
    fn pages(&self, target: &str) -> Vec<Value> {
        match self.sources.get(target) {
            Some(pages) => pages.clone(),
            None if target == self.database => self.sources.values().flatten().cloned().collect(),
            None => Vec::new(),
        }
    }
}

struct NotionResponder {
    data: Arc<Mutex<NotionData>>,
    faults: Arc<Faults>,
}

impl Respond for NotionResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.faults.delayed(self.answer(request))
    }
}

impl NotionResponder {
    fn answer(&self, request: &Request) -> ResponseTemplate {
        let (_, dead, soft) = self.faults.next(request);
        let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        if header("authorization") != format!("Bearer {NOTION_TOKEN}") {
            return ResponseTemplate::new(401).set_body_json(
                json!({"object": "error", "status": 401, "code": "unauthorized", "message": "API token is invalid."}),
            );
        }
        if dead {
            return ResponseTemplate::new(502).set_body_json(
                json!({"object": "error", "status": 502, "code": "bad_gateway", "message": "upstream"}),
            );
        }
        if soft {
            let seconds = self.faults.retry_after.lock().unwrap().unwrap_or(1);
            return ResponseTemplate::new(429)
                .insert_header("retry-after", seconds.to_string().as_str())
                .set_body_json(fixture("notion/error-rate-limited.json"));
        }
        let version = header("notion-version");
        let data = self.data.lock().unwrap();
        let segments: Vec<&str> = request.url.path().trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["v1", "databases", id]) if *id == data.database => {
                let mut database = fixture("notion/retrieve-database-2025-09-03.json");
                database["id"] = json!(data.database);
                database["data_sources"] = data
                    .sources
                    .keys()
                    .enumerate()
                    .map(|(i, id)| json!({"id": id, "name": format!("Source {i}")}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(database)
            }
            ("POST", ["v1", "databases", id, "query"]) if *id == data.database && version.as_str() < "2025-09-03" => {
                self.query(&data, id, request, "query-database-2022-06-28.json")
            }
            ("POST", ["v1", "data_sources", id, "query"]) if version.as_str() >= "2025-09-03" => {
                self.query(&data, id, request, "query-data-source-2025-09-03.json")
            }
            _ => ResponseTemplate::new(400).set_body_json(fixture("notion/error-validation.json")),
        }
    }
}

impl NotionResponder {
    fn query(&self, data: &NotionData, target: &str, request: &Request, envelope: &str) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let since: Option<Timestamp> =
            body["filter"]["last_edited_time"]["on_or_after"].as_str().and_then(|s| s.parse().ok());
        let size = body["page_size"].as_u64().unwrap_or(100).min(100) as usize;
        let start: usize =
            body["start_cursor"].as_str().and_then(|c| c.strip_prefix("s:")).and_then(|n| n.parse().ok()).unwrap_or(0);
        let mut pages: Vec<Value> = data
            .pages(target)
            .into_iter()
            .filter(|p| {
                since.is_none_or(|since| p["last_edited_time"].as_str().unwrap().parse::<Timestamp>().unwrap() >= since)
            })
            .collect();
        pages.sort_by(|a, b| {
            (a["last_edited_time"].as_str(), a["id"].as_str()).cmp(&(b["last_edited_time"].as_str(), b["id"].as_str()))
        });
        let end = (start + size).min(pages.len());
        let mut answer = fixture(&format!("notion/{envelope}"));
        answer["results"] = Value::Array(pages[start.min(end)..end].to_vec());
        answer["has_more"] = json!(end < pages.len());
        answer["next_cursor"] = if end < pages.len() { json!(format!("s:{end}")) } else { Value::Null };
        ResponseTemplate::new(200).set_body_json(answer)
    }
}

pub async fn start_notion(data: Arc<Mutex<NotionData>>) -> (MockServer, Arc<Faults>) {
    let server = MockServer::start().await;
    let faults = Arc::new(Faults::default());
    Mock::given(path_regex("^/v1/.*"))
        .respond_with(NotionResponder { data, faults: faults.clone() })
        .mount(&server)
        .await;
    (server, faults)
}

/// The Notion property map the fixtures need.
pub fn notion_properties() -> puller::notion::mapping::PropertyMap {
    serde_json::from_value(json!({
        "nom": "Nom", "email": "Email", "telephone": "Téléphone",
        "date_prise_contact": "Prise de contact", "date_appel_propose": "Appel proposé",
        "date_appel_booke": "Appel booké", "date_relance": "Relance", "date_reponse_prospect": "Réponse prospect",
        "statut": "Statut"
    }))
    .unwrap()
}
