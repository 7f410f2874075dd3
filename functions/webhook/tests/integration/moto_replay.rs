//! The replay job against moto, configured as `template.yaml` configures `ReplayFunction`: what the
//! receiver archived is published again, byte for byte the message it published first.

use crate::common::{MotoReceiver, sample};
use tributary_aws::{self as aws, DynamoDbSyncStore, S3Archive, SnsPublisher};
use tributary_domain::archive::ReplayRequest;
use tributary_domain::ports::SyncStore;
use tributary_domain::sync::{REPLAY_JOB, TallyKind};
use webhook::config::ReplayConfig;
use webhook::handler::handle;
use webhook::replay::{Deps, run};

#[tokio::test]
async fn archived_deliveries_are_published_again_as_first_published() {
    let local = MotoReceiver::start().await;
    let samples =
        ["webhook-stripe-valid.json", "webhook-standard-acme.json", "webhook-make.json", "webhook-personnage.json"];
    for name in samples {
        let (request, now) = sample(name);
        assert_eq!(handle(&local.deps, request, now).await.status(), 202, "{name}");
    }
    let mut first: Vec<String> = local.probe.drain().await.unwrap().into_iter().map(|m| m.message).collect();
    first.sort();
    assert_eq!(first.len(), samples.len());

    let config = ReplayConfig::from_env(&local.aws.stack.function_env("ReplayFunction").unwrap()).unwrap();
    assert_eq!(config.archive_bucket, local.config.archive_bucket);
    let deps = Deps {
        normaliser: config.normaliser(),
        archive: S3Archive::new(aws::s3_client(&local.aws.sdk), &config.archive_bucket),
        publisher: SnsPublisher::new(aws::sns_client(&local.aws.sdk), &config.events_topic_arn),
        runs: DynamoDbSyncStore::new(aws::dynamodb_client(&local.aws.sdk), &config.ingestion_table),
    };
    let mut request =
        ReplayRequest::between("2026-11-01T00:00:00Z".parse().unwrap(), "2026-12-01T00:00:00Z".parse().unwrap());
    request.dry_run = true;
    let now = "2026-12-02T00:00:00Z".parse().unwrap();
    let dry = run(&deps, &request, || false, now).await.unwrap();
    assert_eq!(dry.totals.selected(), samples.len() as u64, "{:?}", dry.totals);
    assert_eq!(dry.totals.published, 0);
    assert!(local.probe.drain().await.unwrap().is_empty(), "a dry run publishes nothing");

    request.dry_run = false;
    let replayed = run(&deps, &request, || false, now).await.unwrap();
    assert_eq!((replayed.totals.published, replayed.totals.refused), (samples.len() as u64, 0));
    let mut again: Vec<String> = local.probe.drain().await.unwrap().into_iter().map(|m| m.message).collect();
    again.sort();
    assert_eq!(again, first, "the same events: ids, receipt times, payloads");

    // The receiver counted each delivery in the ingestion table, by source and outcome (the replay
    // is no delivery: counted once).
    let since = "2026-11-01T00:00:00Z".parse().unwrap();
    let tallies = deps.runs.tallies(TallyKind::Deliveries, since, 100).await.unwrap();
    let mut counted: Vec<(String, String, u64)> = tallies.into_iter().map(|t| (t.name, t.outcome, t.count)).collect();
    counted.sort();
    let accepted = |name: &str| (name.to_string(), "accepted".to_string(), 1);
    assert_eq!(counted, [accepted("acme"), accepted("make"), accepted("personnage"), accepted("stripe")]);

    let runs = deps.runs.recent_runs(REPLAY_JOB, 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().any(|r| r.records == samples.len() as u64 && r.scope.contains("every source")));
}
