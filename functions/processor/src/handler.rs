//! The Lambda handler: an SNS delivery of canonical events from the `events` topic, or an SQS
//! batch of events an operator re-drove from the processor's failure queues.

use crate::process::{ProcessError, Processed, Processor};
use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use jiff::Timestamp;
use serde::Serialize;
use tributary_domain::event::CanonicalEvent;
use tributary_domain::failures::FailureHistory;
use tributary_domain::metrics::Metrics;
use tributary_domain::ports::{CustomerStore, DeadLetterSink, EventPublisher, PortError};

pub struct Deps<S, P, D> {
    pub processor: Processor<S, P>,
    pub dead_letters: D,
}

/// What one invocation did, returned as the invocation's result (visible with `cargo lambda invoke`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub applied: u32,
    pub duplicates: u32,
    pub without_rule: u32,
    pub without_subject: u32,
    /// Every event dead-lettered, whatever the reason (the two below included).
    pub dead_lettered: u32,
    /// Dead-lettered because their id was applied before with other content.
    pub ids_reused: u32,
    /// Dead-lettered because the record would pass the table's item limit.
    pub records_too_large: u32,
}

impl Summary {
    /// The invocation's metrics line (EMF).
    pub fn metrics(&self) -> Metrics {
        Metrics::new("processor")
            .count("events_processed", self.applied)
            .count("duplicates", self.duplicates)
            .count("without_rule", self.without_rule + self.without_subject)
            .count("dead_lettered", self.dead_lettered)
            .count("ids_reused", self.ids_reused)
            .count("records_too_large", self.records_too_large)
    }
}

/// Fails the invocation so that Lambda retries it (and, after the retries, sends it to the
/// `OnFailure` destination).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("event {event_id}: {source}")]
    Event { event_id: String, source: ProcessError },
    #[error("dead-lettering a message failed: {0}")]
    DeadLetter(PortError),
    /// The payload is neither an SNS delivery nor an SQS batch (Lambda never sends one), or the
    /// answer could not be written as JSON.
    #[error("the invocation's payload or answer is not what Lambda exchanges: {0}")]
    Payload(serde_json::Error),
}

pub async fn handle<S, P, D>(deps: &Deps<S, P, D>, event: SnsEvent, now: Timestamp) -> Result<Summary, HandlerError>
where
    S: CustomerStore,
    P: EventPublisher,
    D: DeadLetterSink,
{
    let mut summary = Summary::default();
    for record in event.records {
        tracing::debug!(sns_message_id = record.sns.message_id, "message");
        handle_message(deps, &record.sns.message, &FailureHistory::default(), &mut summary, now).await?;
    }
    Ok(summary)
}

/// Events re-driven from the failure queues: each handled as a delivery from the topic. One that
/// fails for a backing service stays on the re-drive queue (SQS retries it, then moves it to the
/// failure queue); one that cannot be applied is dead-lettered again with its re-drive count.
pub async fn handle_redriven<S, P, D>(
    deps: &Deps<S, P, D>,
    event: SqsEvent,
    now: Timestamp,
) -> (Summary, SqsBatchResponse)
where
    S: CustomerStore,
    P: EventPublisher,
    D: DeadLetterSink,
{
    let mut summary = Summary::default();
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let history = FailureHistory::from_attributes(|name| {
            record.message_attributes.get(name).and_then(|attribute| attribute.string_value.clone())
        });
        let message = record.body.unwrap_or_default();
        if let Err(error) = handle_message(deps, &message, &history, &mut summary, now).await {
            tracing::error!(error = %error, message_id = record.message_id, "re-driven event failed; left on its queue");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    (summary, response)
}

async fn handle_message<S, P, D>(
    deps: &Deps<S, P, D>,
    message: &str,
    history: &FailureHistory,
    summary: &mut Summary,
    now: Timestamp,
) -> Result<(), HandlerError>
where
    S: CustomerStore,
    P: EventPublisher,
    D: DeadLetterSink,
{
    let event = match CanonicalEvent::from_message(message) {
        Ok(event) => event,
        Err(e) => {
            let reason = format!("not a canonical event: {e}");
            tracing::error!(reason, "dead-lettering message");
            deps.dead_letters.send(message, &reason, history).await.map_err(HandlerError::DeadLetter)?;
            summary.dead_lettered += 1;
            return Ok(());
        }
    };
    let span = tracing::info_span!("event", event_id = %event.id, event_type = event.event_type);
    let _entered = span.enter();
    match deps.processor.process(&event, now).await {
        Ok(Processed::Applied { customer_id, version, changed_fields, attempts }) => {
            tracing::info!(customer = %customer_id, version, ?changed_fields, attempts, "applied");
            summary.applied += 1;
        }
        Ok(Processed::Duplicate { republished }) => {
            tracing::info!(republished, "duplicate");
            summary.duplicates += 1;
        }
        Ok(Processed::NoRule) => {
            tracing::info!("no rule for this event type; acknowledged");
            summary.without_rule += 1;
        }
        Ok(Processed::NoSubject) => {
            tracing::info!("the event names no customer; acknowledged");
            summary.without_subject += 1;
        }
        Err(error @ (ProcessError::Rejected(_) | ProcessError::IdReused | ProcessError::TooLarge(_))) => {
            let reason = error.to_string();
            tracing::error!(reason, "dead-lettering event");
            deps.dead_letters.send(message, &reason, history).await.map_err(HandlerError::DeadLetter)?;
            summary.dead_lettered += 1;
            summary.ids_reused += u32::from(matches!(error, ProcessError::IdReused));
            summary.records_too_large += u32::from(matches!(error, ProcessError::TooLarge(_)));
        }
        Err(source) => {
            tracing::error!(error = %source, "processing failed; the invocation will be retried");
            return Err(HandlerError::Event { event_id: event.id.to_string(), source });
        }
    }
    Ok(())
}

/// Lambda's error report: a stable type to filter on in CloudWatch, and the message.
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Event { source: ProcessError::Contention(_), .. } => "Contention",
            HandlerError::Event { .. } => "BackingServiceFailed",
            HandlerError::DeadLetter(_) => "DeadLetterFailed",
            HandlerError::Payload(_) => "InvalidPayload",
        };
        Self { error_type: error_type.into(), error_message: error.to_string() }
    }
}
