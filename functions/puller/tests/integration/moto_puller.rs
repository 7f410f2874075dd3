//! The puller wired from `template.yaml` against moto: configuration from the function's
//! environment, secrets from SSM, sync runs and leases in DynamoDB, the lake on S3, events on SNS.

use crate::support;

use jiff::{SignedDuration, Timestamp};
use puller::Budget;
use puller::config::PullerConfig;
use puller::handler::{Deps, handle};
use puller::matomo::position::Position;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{MATOMO_TOKEN, MatomoData, NOTION_TOKEN, NotionData, start_matomo, start_notion};
use tributary_aws::{self as aws, DynamoDbSyncStore, SnsPublisher, SsmSecrets};
use tributary_domain::ports::{SecretSource, SyncStore};
use tributary_domain::sync::{Lease, SyncOutcome};
use tributary_lake::LakeTable;
use tributary_lake::deltalake::arrow::array::AsArray;
use tributary_lake::deltalake::arrow::datatypes::Int64Type;
use tributary_lake::schema::MATOMO_VISITS;
use tributary_testing::memory::InMemorySyncStore;
use tributary_testing::{LocalAws, Probe, put_secrets};

fn days_ago(n: i64) -> jiff::civil::Date {
    support::first_unpulled_day().checked_sub(jiff::Span::new().days(n)).unwrap()
}

fn budget() -> Budget {
    Budget { deadline: Timestamp::now() + SignedDuration::from_secs(600), margin: SignedDuration::from_secs(5) }
}

struct MotoPuller {
    aws: LocalAws,
    config: PullerConfig,
    deps: Deps<DynamoDbSyncStore, SnsPublisher>,
    events: Probe,
    matomo: Arc<MatomoData>,
    matomo_faults: Arc<support::Faults>,
    notion: Arc<Mutex<NotionData>>,
    _servers: Vec<wiremock::MockServer>,
}

impl MotoPuller {
    async fn start() -> Self {
        let matomo = Arc::new(MatomoData::generate(1, days_ago(3), &[7, 0, 4]));
        let (matomo_server, matomo_faults) = start_matomo(matomo.clone()).await;
        let notion = Arc::new(Mutex::new(NotionData::generate(&[120], 1, 10)));
        let database = notion.lock().unwrap().database.clone();
        let (notion_server, _) = start_notion(notion.clone()).await;
        let start_date = days_ago(3).to_string();
        let aws = LocalAws::start(&[
            ("MatomoUrl", matomo_server.uri().as_str()),
            ("MatomoSiteIds", "1"),
            ("MatomoStartDate", start_date.as_str()),
            ("MatomoPageSize", "3"),
            ("MatomoAnonymise", "userId"),
            ("NotionDatabaseIds", database.as_str()),
        ])
        .await
        .unwrap();
        put_secrets(
            &aws.sdk,
            &[
                ("/tributary/matomo-token", MATOMO_TOKEN),
                ("/tributary/matomo-hmac-key", "moto-test-hmac-key"),
                ("/tributary/notion-token", NOTION_TOKEN),
            ],
        )
        .await
        .unwrap();
        let mut env: HashMap<String, String> = aws.stack.function_env("PullerFunction").unwrap();
        // As Lambda would see it, plus the local endpoints: moto for AWS, the fake Notion.
        env.insert("AWS_ENDPOINT_URL".into(), aws.moto.endpoint());
        env.insert("AWS_REGION".into(), "us-east-1".into());
        env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
        env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
        env.insert("NOTION_URL".into(), notion_server.uri());
        let config = PullerConfig::from_env(&env).unwrap();
        let secrets = SsmSecrets::new(aws::ssm_client(&aws.sdk)).get_secrets(&config.secret_names()).await.unwrap();
        let deps = Deps::from_config(
            &config,
            &secrets,
            reqwest::Client::new(),
            DynamoDbSyncStore::new(aws::dynamodb_client(&aws.sdk), &config.ingestion_table),
            SnsPublisher::new(aws::sns_client(&aws.sdk), &config.events_topic_arn),
        )
        .unwrap();
        let deps = Deps {
            notion: deps.notion.map(|mut n| {
                n.api = n.api.with_min_interval(Duration::ZERO);
                n
            }),
            ..deps
        };
        let events = Probe::subscribe(&aws.sdk, &config.events_topic_arn, "puller-events-probe").await.unwrap();
        Self { aws, config, deps, events, matomo, matomo_faults, notion, _servers: vec![matomo_server, notion_server] }
    }

    async fn lake_ids(&self) -> Vec<i64> {
        let table = LakeTable::open_or_create(&self.config.lake, &MATOMO_VISITS).await.unwrap();
        let mut ids = Vec::new();
        for (_, batches) in table.read_all().await.unwrap() {
            for batch in batches {
                ids.extend(
                    batch.column_by_name("id_visit").unwrap().as_primitive::<Int64Type>().values().iter().copied(),
                );
            }
        }
        ids.sort();
        ids
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_pulls_run_against_aws_services_as_deployed() {
    let moto = MotoPuller::start().await;
    let matomo = handle(&moto.deps, &json!({"job": "matomo"}), budget()).await.unwrap();
    assert_eq!(matomo.runs[0].outcome, SyncOutcome::Completed);
    assert_eq!(moto.lake_ids().await, moto.matomo.all_ids());
    let table = LakeTable::open_or_create(&moto.config.lake, &MATOMO_VISITS).await.unwrap();
    assert!(table.delta_table().table_url().as_str().starts_with("s3://"), "{}", table.delta_table().table_url());
    let mut table = table;
    assert_eq!(
        table.committed_position(&Position::app_id(1)).await.unwrap(),
        Some(Position::start_of(days_ago(0)).version())
    );

    let notion = handle(&moto.deps, &json!({"job": "notion"}), budget()).await.unwrap();
    assert_eq!(notion.runs[0].outcome, SyncOutcome::Completed);
    assert_eq!(notion.runs[0].rejected, 12);

    let messages = moto.events.drain().await.unwrap();
    let visits =
        messages.iter().filter(|m| m.attributes.get("type").map(String::as_str) == Some("matomo.visit")).count();
    let leads =
        messages.iter().filter(|m| m.attributes.get("type").map(String::as_str) == Some("lead.upserted")).count();
    assert_eq!(visits, moto.matomo.known_visitor_ids().len());
    assert_eq!(leads, moto.notion.lock().unwrap().valid_ids().len());

    // The status endpoint's data: runs newest first, per job.
    let runs = moto.deps.store.recent_runs("matomo", 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].records, 11);
    let ended = runs[0].ended_at.expect("a finished run has its end");
    assert!(runs[0].started_at <= ended && ended <= Timestamp::now(), "{:?}", runs[0]);
    assert_eq!(runs[0].watermark_before.as_deref(), Some(format!("{}+0", days_ago(3)).as_str()));
    assert_eq!(runs[0].watermark_after.as_deref(), Some(format!("{}+0", days_ago(0)).as_str()));
    let notion_runs = moto.deps.store.recent_runs("notion", 10).await.unwrap();
    assert_eq!(notion_runs[0].outcome, SyncOutcome::Completed);
    assert!(
        moto.deps
            .store
            .watermark(&format!("notion#data-source-{}", moto.notion.lock().unwrap().sources.keys().next().unwrap()))
            .await
            .unwrap()
            .is_some()
    );

    // Nothing new: a second Matomo run appends nothing.
    handle(&moto.deps, &json!({"job": "matomo"}), budget()).await.unwrap();
    assert_eq!(moto.lake_ids().await, moto.matomo.all_ids());
    assert_eq!(moto.deps.store.recent_runs("matomo", 10).await.unwrap().len(), 2);
    drop(moto.aws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runs_at_once_never_overlap_on_a_site() {
    let moto = MotoPuller::start().await;
    moto.matomo_faults.set_delay(Duration::from_millis(150));
    let request = json!({"job": "matomo"});
    let (a, b) = tokio::join!(handle(&moto.deps, &request, budget()), handle(&moto.deps, &request, budget()));
    let mut outcomes = vec![a.unwrap().runs[0].outcome.clone(), b.unwrap().runs[0].outcome.clone()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, vec![SyncOutcome::Completed, SyncOutcome::SkippedLeased]);
    assert_eq!(moto.lake_ids().await, moto.matomo.all_ids());
    // The lease was released: the next run is not skipped.
    let next = handle(&moto.deps, &json!({"job": "matomo"}), budget()).await.unwrap();
    assert_eq!(next.runs[0].outcome, SyncOutcome::Completed);
}

/// The lease rules, as the DynamoDB table applies them and as the in-memory store copies them: a
/// held lease refuses another owner until its expiry, an expired one is taken over, and the former
/// holder giving it back afterwards does not free the new holder's.
async fn lease_expiry_rules(store: &impl SyncStore) {
    let t0 = Timestamp::now();
    let lease = |owner: &str, now: Timestamp| Lease {
        key: Lease::key_for("matomo", "site-1"),
        owner: owner.into(),
        now,
        until: now + SignedDuration::from_mins(16),
    };
    let crashed = lease("run-that-died", t0);
    assert!(store.acquire_lease(&crashed).await.unwrap());
    let retry = lease("retry", t0 + SignedDuration::from_mins(2));
    assert!(!store.acquire_lease(&retry).await.unwrap(), "held until its expiry");
    let next = lease("next-run", t0 + SignedDuration::from_mins(17));
    assert!(store.acquire_lease(&next).await.unwrap(), "an expired lease is taken over");
    store.release_lease(&crashed).await.unwrap();
    let another = lease("another", t0 + SignedDuration::from_mins(18));
    assert!(!store.acquire_lease(&another).await.unwrap(), "the former holder cannot free the new holder's lease");
    store.release_lease(&next).await.unwrap();
    assert!(store.acquire_lease(&another).await.unwrap(), "released by its holder: free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_is_taken_over_and_only_its_holder_releases_it() {
    let moto = MotoPuller::start().await;
    lease_expiry_rules(&moto.deps.store).await;
    lease_expiry_rules(&InMemorySyncStore::default()).await;
}
