//! Dead-letter queues written by the functions themselves (messages that can never be processed).

use super::describe;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use tributary_domain::ports::{DeadLetterSink, PortError};

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

impl DeadLetterSink for SqsDeadLetters {
    async fn send(&self, body: &str, reason: &str) -> Result<(), PortError> {
        let reason_attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(truncated(reason, 1_000))
            .build()
            .map_err(|e| PortError::new("build dead letter", e))?;
        // SQS refuses an empty body.
        let body = if body.is_empty() { "(empty message)" } else { truncated(body, MAX_BODY_BYTES) };
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("reason", reason_attribute)
            .send()
            .await
            .map_err(|e| PortError::new("send dead letter", describe(&e)))?;
        Ok(())
    }
}
