//! Dead-letter queues written by the functions themselves (messages that can never be processed),
//! and the failure queues as the repair routes read and re-drive them.

use super::describe;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use std::time::Duration;
use tributary_domain::failures::{FailureHistory, REASON_ATTRIBUTE};
use tributary_domain::ports::{DeadLetterSink, MessageQueues, PortError, QueueDepth, QueuedMessage};

/// SQS takes at most 256 KiB per message; a reason is short, the body is cut if it must be.
const MAX_BODY_BYTES: usize = 250_000;

pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }
}

fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PortError::new("build message attribute", e))
}

impl DeadLetterSink for SqsDeadLetters {
    async fn send(&self, body: &str, reason: &str, history: &FailureHistory) -> Result<(), PortError> {
        // SQS refuses an empty body.
        let body = if body.is_empty() { "(empty message)" } else { truncated(body, MAX_BODY_BYTES) };
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes(REASON_ATTRIBUTE, string_attribute(truncated(reason, 1_000))?);
        for (name, value) in history.attributes() {
            request = request.message_attributes(name, string_attribute(&value)?);
        }
        request.send().await.map_err(|e| PortError::new("send dead letter", describe(&e)))?;
        Ok(())
    }
}

/// Any of the stack's queues, named by URL (the repair routes' port).
pub struct SqsQueues {
    client: Client,
}

impl SqsQueues {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn count(attributes: &std::collections::HashMap<QueueAttributeName, String>, name: QueueAttributeName) -> u64 {
    attributes.get(&name).and_then(|n| n.parse().ok()).unwrap_or(0)
}

impl MessageQueues for SqsQueues {
    async fn depth(&self, queue: &str) -> Result<QueueDepth, PortError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| PortError::new("read queue depth", describe(&e)))?;
        let attributes = output.attributes.unwrap_or_default();
        Ok(QueueDepth {
            visible: count(&attributes, QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(&attributes, QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    async fn receive(&self, queue: &str, max: usize, hide_for: Duration) -> Result<Vec<QueuedMessage>, PortError> {
        let output = self
            .client
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(i32::try_from(hide_for.as_secs()).unwrap_or(i32::MAX))
            // Long polling, shortly: a short poll samples a few servers and may answer nothing
            // while messages wait.
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| PortError::new("receive messages", describe(&e)))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|message| {
                let sent_at = message
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|millis| millis.parse::<i64>().ok())
                    .and_then(|millis| jiff::Timestamp::from_millisecond(millis).ok());
                let attributes = message
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(name, value)| Some((name, value.string_value?)))
                    .collect();
                Some(QueuedMessage {
                    id: message.message_id?,
                    receipt: message.receipt_handle?,
                    body: message.body.unwrap_or_default(),
                    attributes,
                    sent_at,
                })
            })
            .collect())
    }

    async fn send(&self, queue: &str, body: &str, attributes: &[(&str, String)]) -> Result<(), PortError> {
        let mut request = self.client.send_message().queue_url(queue).message_body(body);
        for (name, value) in attributes {
            request = request.message_attributes(*name, string_attribute(value)?);
        }
        request.send().await.map_err(|e| PortError::new("send message", describe(&e)))?;
        Ok(())
    }

    async fn send_later(&self, queue: &str, body: &str, delay: Duration) -> Result<(), PortError> {
        // SQS delays a message by at most 900 s.
        let seconds = i32::try_from(delay.as_secs().min(900)).unwrap_or(900);
        self.client
            .send_message()
            .queue_url(queue)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| PortError::new("send message", describe(&e)))?;
        Ok(())
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), PortError> {
        self.client
            .delete_message()
            .queue_url(queue)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| PortError::new("delete message", describe(&e)))?;
        Ok(())
    }

    async fn release(&self, queue: &str, receipts: &[String]) -> Result<(), PortError> {
        // SQS takes at most 10 entries per batch call.
        for chunk in receipts.chunks(10) {
            let mut request = self.client.change_message_visibility_batch().queue_url(queue);
            for (index, receipt) in chunk.iter().enumerate() {
                let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| PortError::new("release messages", e))?;
                request = request.entries(entry);
            }
            let output = request.send().await.map_err(|e| PortError::new("release messages", describe(&e)))?;
            if !output.failed.is_empty() {
                return Err(PortError::new("release messages", format!("{} not released", output.failed.len())));
            }
        }
        Ok(())
    }
}
