//! The `events` topic (and any other topic carrying canonical events).

use super::describe;
use crate::ports::{BusMessage, EventPublisher, PortError};
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsPublisher {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self { client, topic_arn: topic_arn.into() }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PortError::new("build message attribute", e))
}

impl EventPublisher for SnsPublisher {
    async fn publish(&self, message: &BusMessage) -> Result<String, PortError> {
        let output = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(&message.body)
            .message_attributes("source", string_attribute(&message.source)?)
            .message_attributes("type", string_attribute(&message.event_type)?)
            .send()
            .await
            .map_err(|e| PortError::new("publish", describe(&e)))?;
        Ok(output.message_id.unwrap_or_default())
    }
}
