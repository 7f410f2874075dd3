//! Shared by the webhook's integration tests: the sample events of `events/` and a receiver wired
//! to moto exactly as `main.rs` wires it to AWS.
#![allow(dead_code)] // Each test binary uses a different part.

use jiff::Timestamp;
use lambda_http::Request;
use std::collections::HashMap;
use tributary_aws::{self as aws, DynamoDbDedup, DynamoDbSyncStore, S3Archive, SnsPublisher, SsmSecrets};
use tributary_domain::config::Env;
use tributary_domain::secrets::Refreshing;
use tributary_testing::memory::{
    InMemoryArchive, InMemoryDedup, InMemoryPublisher, InMemorySecrets, InMemorySyncStore,
};
use tributary_testing::{LocalAws, Probe, demo_secrets, put_demo_secrets, sample_event};
use webhook::config::{Receiver, WebhookConfig};
use webhook::handler::Deps;

/// The Standard Webhooks source the samples use (`events/webhook-standard-acme.json`).
pub const ACME_SOURCES: &str =
    r#"[{"name":"acme","secret_param":"/tributary/webhook-sources/acme","subject_field":"data.email"}]"#;

pub fn sample_text(name: &str) -> String {
    sample_event(name).unwrap()
}

/// A sample request and the instant it was received (`requestContext.timeEpoch`).
pub fn sample(name: &str) -> (Request, Timestamp) {
    let text = sample_text(name);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let millis = value["requestContext"]["timeEpoch"].as_i64().expect("timeEpoch");
    let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    (request, Timestamp::from_millisecond(millis).unwrap())
}

pub fn local_secrets() -> Vec<(String, String)> {
    demo_secrets().unwrap()
}

/// The receiver's environment as the samples expect it (every route configured).
pub fn base_env() -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("DEDUP_TABLE", "dedup"),
        ("INGESTION_TABLE", "ingestion"),
        ("ARCHIVE_BUCKET", "archive"),
        ("EVENTS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:events"),
        ("STRIPE_SECRET_PARAM", "/tributary/stripe-signing-secret"),
        ("MAKE_TOKEN_PARAM", "/tributary/make-token"),
        ("PERSONNAGE_TOKEN_PARAM", "/tributary/personnage-token"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("WEBHOOK_SOURCES".into(), ACME_SOURCES.into());
    env
}

pub type MemoryDeps = Deps<InMemoryDedup, InMemoryArchive, InMemoryPublisher, InMemorySyncStore>;

/// The receiver over in-memory adapters, configured like the samples expect.
pub async fn memory_deps() -> MemoryDeps {
    memory_deps_with(base_env()).await
}

pub async fn memory_deps_with(env: HashMap<String, String>) -> MemoryDeps {
    let config = WebhookConfig::from_env(&env).unwrap();
    let secrets = InMemorySecrets { values: local_secrets().into_iter().collect() };
    Deps {
        receiver: Refreshing::fixed(Receiver::load(&config, &secrets).await.unwrap()),
        dedup: InMemoryDedup::default(),
        archive: InMemoryArchive::default(),
        publisher: InMemoryPublisher::default(),
        tallies: InMemorySyncStore::default(),
    }
}

pub type AwsDeps = Deps<DynamoDbDedup, S3Archive, SnsPublisher, DynamoDbSyncStore>;

/// moto with `template.yaml` provisioned, the demo secrets stored, a probe on the events topic,
/// and the receiver built from the function's environment as the template declares it.
pub struct MotoReceiver {
    pub aws: LocalAws,
    pub config: WebhookConfig,
    pub deps: AwsDeps,
    pub probe: Probe,
}

impl MotoReceiver {
    pub async fn start() -> Self {
        let aws = LocalAws::start(&[("WebhookSources", ACME_SOURCES)]).await.unwrap();
        put_demo_secrets(&aws.sdk).await.unwrap();
        let env = aws.stack.function_env("WebhookFunction").unwrap();
        let config = WebhookConfig::from_env(&env).unwrap();
        assert_eq!(env.required("DEDUP_TABLE").unwrap(), aws.stack.physical("DedupTable").unwrap().name);
        let deps = Self::deps_for(&aws, &config, &config.events_topic_arn).await;
        let probe = Probe::subscribe(&aws.sdk, &config.events_topic_arn, "probe-events").await.unwrap();
        Self { aws, config, deps, probe }
    }

    /// The receiver wired to moto as `main.rs` wires it, publishing to `topic_arn`.
    pub async fn deps_for(aws: &LocalAws, config: &WebhookConfig, topic_arn: &str) -> AwsDeps {
        let receiver = Receiver::load(config, &SsmSecrets::new(aws::ssm_client(&aws.sdk))).await.unwrap();
        Deps {
            receiver: Refreshing::fixed(receiver),
            dedup: DynamoDbDedup::new(aws::dynamodb_client(&aws.sdk), &config.dedup_table),
            archive: S3Archive::new(aws::s3_client(&aws.sdk), &config.archive_bucket),
            publisher: SnsPublisher::new(aws::sns_client(&aws.sdk), topic_arn),
            tallies: DynamoDbSyncStore::new(aws::dynamodb_client(&aws.sdk), &config.ingestion_table),
        }
    }

    pub async fn archived_keys(&self) -> Vec<String> {
        let output =
            aws::s3_client(&self.aws.sdk).list_objects_v2().bucket(&self.config.archive_bucket).send().await.unwrap();
        output.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
    }

    pub async fn dedup_items(&self) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let output = aws::dynamodb_client(&self.aws.sdk)
            .scan()
            .table_name(&self.config.dedup_table)
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        output.items.unwrap_or_default()
    }
}

pub async fn body_json(response: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).unwrap_or(serde_json::Value::Null)
}
