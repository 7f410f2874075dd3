use jiff::Timestamp;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use puller::Budget;
use puller::config::PullerConfig;
use puller::fetch::RetryPolicy;
use puller::handler::{Deps, MatomoDeps, NotionDeps, handle};
use puller::matomo::api::MatomoApi;
use puller::matomo::visit::Anonymiser;
use puller::notion::api::NotionApi;
use serde_json::Value;
use std::time::Duration;
use tributary_shared::aws::{self, DynamoDbIngestion, SnsPublisher, SsmSecrets};
use tributary_shared::config::ProcessEnv;
use tributary_shared::ports::SecretSource;
use tributary_shared::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        PullerConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let secrets = SsmSecrets::new(aws::ssm_client(&sdk))
        .get_secrets(&config.secret_names())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "loading secrets failed"))?;
    let secret = |name: &str| secrets.get(name).cloned().ok_or_else(|| format!("secret parameter {name} is missing"));
    // One client for both sources: rustls, a per-request timeout, no redirects to follow silently.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tributary-puller/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let matomo = match &config.matomo {
        None => None,
        Some(m) => Some(MatomoDeps {
            api: MatomoApi::new(http.clone(), &m.base_url, secret(&m.token_param)?, RetryPolicy::default())?,
            anonymiser: Anonymiser::new(secret(&m.hmac_key_param)?.as_bytes(), &m.anonymise),
            settings: m.settings.clone(),
            sites: m.sites.clone(),
        }),
    };
    let notion = match &config.notion {
        None => None,
        Some(n) => Some(NotionDeps {
            api: NotionApi::new(
                http.clone(),
                n.base_url.clone(),
                secret(&n.token_param)?,
                n.version.clone(),
                RetryPolicy::default(),
            ),
            properties: n.properties.clone(),
            databases: n.databases.clone(),
        }),
    };
    let deps = Deps {
        store: DynamoDbIngestion::new(aws::dynamodb_client(&sdk), &config.ingestion_table),
        publisher: SnsPublisher::new(aws::sns_client(&sdk), &config.events_topic_arn),
        lake: config.lake.clone(),
        matomo,
        notion,
    };
    let (deps, margin) = (&deps, config.deadline_margin);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Timestamp::from_millisecond(i64::try_from(event.context.deadline).unwrap_or(i64::MAX))
            .unwrap_or(Timestamp::MAX);
        handle(deps, &event.payload, Budget { deadline, margin }).await
    }))
    .await
}
