//! The `events` topic (and any other topic carrying canonical events).

use super::describe;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use futures::TryStreamExt as _;
use tributary_domain::ports::{BusMessage, EventPublisher, PortError, batches};

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

    async fn publish_all(&self, messages: &[BusMessage]) -> Result<(), PortError> {
        // Planned whole before the first call: a message that fits in no batch is refused up
        // front, never after half of the messages were published.
        let planned = batches(messages).map_err(|e| PortError::new("publish batch", e))?;
        // A few batches in flight at once: a request of 1 000 leads is 100 batches, one after
        // another a round trip each. The first failure stops the rest (the caller retries all).
        futures::stream::iter(planned.into_iter().map(Ok::<_, PortError>))
            .try_for_each_concurrent(PUBLISH_BATCHES_IN_FLIGHT, |chunk| self.publish_batch(chunk))
            .await
    }
}

/// `PublishBatch` calls in flight at once in [`SnsPublisher::publish_all`].
pub const PUBLISH_BATCHES_IN_FLIGHT: usize = 8;

impl SnsPublisher {
    async fn publish_batch(&self, chunk: &[BusMessage]) -> Result<(), PortError> {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(index, message)| {
                PublishBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message(&message.body)
                    .message_attributes("source", string_attribute(&message.source)?)
                    .message_attributes("type", string_attribute(&message.event_type)?)
                    .build()
                    .map_err(|e| PortError::new("build batch entry", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| PortError::new("publish batch", describe(&e)))?;
        if let Some(failed) = output.failed.filter(|f| !f.is_empty()) {
            let reasons: Vec<String> =
                failed.iter().map(|f| format!("entry {}: {}", f.id, f.message.as_deref().unwrap_or(&f.code))).collect();
            return Err(PortError::new("publish batch", reasons.join("; ")));
        }
        Ok(())
    }
}
