//! Test support, a dev-dependency only: moto on loopback, the template-driven provisioner, helpers
//! to seed secrets and watch what a topic publishes, and ([`memory`]) an in-memory adapter of every
//! port, and ([`senders`]) the headers webhook senders sign their deliveries with.

pub mod memory;
mod moto;
pub mod openapi;
pub mod senders;
mod stack;
mod template;

pub use moto::{ACCOUNT_ID, Moto, REGION, free_port, sdk_config_for};
pub use stack::{Physical, Stack};
pub use template::{Template, external_fixture, project_python, workspace_root};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HarnessError(String);

impl HarnessError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A running moto with the template provisioned: what most integration tests start with.
pub struct LocalAws {
    pub moto: Moto,
    pub sdk: SdkConfig,
    pub stack: Stack,
}

impl LocalAws {
    /// Starts moto, provisions `template.yaml` with `parameters` overriding its defaults.
    pub async fn start(parameters: &[(&str, &str)]) -> Result<Self, HarnessError> {
        let moto = Moto::start().await?;
        let sdk = moto.sdk_config().await;
        let stack = Stack::provision(&sdk, Template::workspace()?, "tributary-test", parameters).await?;
        Ok(Self { moto, sdk, stack })
    }
}

/// Stores secrets as `SecureString` parameters, as an operator would before deploying.
pub async fn put_secrets(sdk: &SdkConfig, secrets: &[(&str, &str)]) -> Result<(), HarnessError> {
    let client = aws_sdk_ssm::Client::new(sdk);
    for (name, value) in secrets {
        client
            .put_parameter()
            .name(*name)
            .value(*value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| HarnessError::new(format!("put parameter {name}: {}", tributary_aws::describe(&e))))?;
    }
    Ok(())
}

/// An SQS batch as Lambda hands it to a function, one message per body (ids `m0`, `m1`, …).
pub fn sqs_event<B: Into<String>>(bodies: impl IntoIterator<Item = B>) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let mut message = aws_lambda_events::sqs::SqsMessage::default();
            message.message_id = Some(format!("m{i}"));
            message.event_source = Some("aws:sqs".into());
            message.body = Some(body.into());
            message
        })
        .collect();
    event
}

/// A message received from SQS as Lambda's SQS event source hands it to a function: its system
/// attributes, and its string message attributes (the failure queues' `reason`, `redrives`, …).
pub fn lambda_sqs_record(message: &aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_string(), Value::String(value.clone())))
        .collect();
    let message_attributes: serde_json::Map<String, Value> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let text = value.string_value()?;
            Some((name.clone(), serde_json::json!({"stringValue": text, "dataType": value.data_type()})))
        })
        .collect();
    serde_json::json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "md5OfBody": message.md5_of_body(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    })
}

/// The text of a sample event of `events/` (the fixtures of the handler tests).
pub fn sample_event(name: &str) -> Result<String, HarnessError> {
    let path = workspace_root().join("events").join(name);
    std::fs::read_to_string(&path).map_err(|e| HarnessError::new(format!("{}: {e}", path.display())))
}

/// The demo secrets of `events/local-secrets.json` (parameter name, value), used by the sample
/// events, the tests and the local stack. Never meant for AWS.
pub fn demo_secrets() -> Result<Vec<(String, String)>, HarnessError> {
    let path = workspace_root().join("events/local-secrets.json");
    let text = std::fs::read_to_string(&path).map_err(|e| HarnessError::new(format!("{}: {e}", path.display())))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| HarnessError::new(format!("{}: {e}", path.display())))?;
    Ok(value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.starts_with('/'))
        .filter_map(|(name, secret)| Some((name.clone(), secret.as_str()?.to_string())))
        .collect())
}

/// Stores the demo secrets in the SSM of `sdk`.
pub async fn put_demo_secrets(sdk: &SdkConfig) -> Result<(), HarnessError> {
    let secrets = demo_secrets()?;
    let pairs: Vec<(&str, &str)> = secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    put_secrets(sdk, &pairs).await
}

/// Creates (or finds) the queue `name`; returns its URL and ARN.
pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> Result<(String, String), HarnessError> {
    let created = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| HarnessError::new(format!("create queue {name}: {}", tributary_aws::describe(&e))))?;
    let url = created.queue_url.unwrap_or_default();
    let attributes = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| HarnessError::new(format!("queue {name}: {}", tributary_aws::describe(&e))))?;
    let arn = attributes
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| HarnessError::new(format!("queue {name} has no ARN")))?;
    Ok((url, arn))
}

/// A message a topic delivered to a probe queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeMessage {
    pub message: String,
    pub attributes: HashMap<String, String>,
}

/// An SQS queue subscribed (not raw) to a topic, to observe exactly what the topic published.
pub struct Probe {
    client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl Probe {
    pub async fn subscribe(sdk: &SdkConfig, topic_arn: &str, name: &str) -> Result<Self, HarnessError> {
        let client = aws_sdk_sqs::Client::new(sdk);
        let (queue_url, queue_arn) = create_queue(&client, name).await?;
        aws_sdk_sns::Client::new(sdk)
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .map_err(|e| HarnessError::new(format!("subscribe probe: {}", tributary_aws::describe(&e))))?;
        Ok(Self { client, queue_url })
    }

    /// A probe queue created earlier (by another process, e.g. the local stack).
    pub fn attach(sdk: &SdkConfig, queue_url: &str) -> Self {
        Self { client: aws_sdk_sqs::Client::new(sdk), queue_url: queue_url.to_string() }
    }

    /// Every message delivered so far, removed from the queue; stops after two empty polls.
    pub async fn drain(&self) -> Result<Vec<ProbeMessage>, HarnessError> {
        let mut messages = Vec::new();
        let mut empty_polls = 0;
        while empty_polls < 2 {
            let output = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| HarnessError::new(format!("receive: {}", tributary_aws::describe(&e))))?;
            let batch = output.messages.unwrap_or_default();
            if batch.is_empty() {
                empty_polls += 1;
                tokio::time::sleep(Duration::from_millis(150)).await;
                continue;
            }
            empty_polls = 0;
            for message in batch {
                let envelope: Value = serde_json::from_str(message.body().unwrap_or_default())
                    .map_err(|e| HarnessError::new(format!("probe message is not an SNS envelope: {e}")))?;
                let attributes = envelope["MessageAttributes"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, attribute)| {
                        (name.clone(), attribute["Value"].as_str().unwrap_or_default().to_string())
                    })
                    .collect();
                messages.push(ProbeMessage {
                    message: envelope["Message"].as_str().unwrap_or_default().to_string(),
                    attributes,
                });
                if let Some(receipt) = message.receipt_handle() {
                    self.client
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(|e| HarnessError::new(format!("delete: {}", tributary_aws::describe(&e))))?;
                }
            }
        }
        Ok(messages)
    }
}
