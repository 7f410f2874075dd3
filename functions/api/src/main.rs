use api::config::ApiConfig;
use api::handler::handle;
use jiff::Timestamp;
use lambda_http::{Error, run, service_fn};
use std::convert::Infallible;
use tributary_aws::{self as aws, SsmSecrets};
use tributary_domain::api_key::refreshing_api_keys;
use tributary_domain::config::ProcessEnv;
use tributary_domain::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = ApiConfig::from_env(&ProcessEnv).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws::load_sdk_config().await;
    let secrets = SsmSecrets::new(aws::ssm_client(&sdk));
    let keys = refreshing_api_keys(&config.api_key_hashes_param, secrets, config.secrets_max_age, Timestamp::now())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "loading API keys failed"))?;
    let deps = config.aws_deps(&sdk, keys);
    let deps = &deps;
    run(service_fn(move |request| async move { Ok::<_, Infallible>(handle(deps, request, Timestamp::now()).await) }))
        .await
}
