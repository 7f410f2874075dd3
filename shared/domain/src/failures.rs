//! The stack's failure queues as an operator sees them: what each message is (event, customer,
//! reason, when it first failed, how often it was re-driven), and how it is sent back to where it
//! failed. The queues are reached through [`MessageQueues`]; nothing here knows SQS.
//!
//! Re-driving goes through the functions' ordinary code, never around it: the processor's messages
//! go to its re-drive queue (an event source of the processor, as its topic is), the integrator's
//! to its own (one failed push is pushed again alone, with the same `Idempotency-Key`), the lake
//! writer's back to its queue. A message that fails again comes back to its failure queue with
//! its re-drive count, so nothing is lost and nothing loops unseen.

use crate::customer::store::{CustomerUpdated, IntegrationResult};
use crate::event::CanonicalEvent;
use crate::ports::{MessageQueues, PortError, QueuedMessage};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The message attribute holding why a message failed (written by the functions).
pub const REASON_ATTRIBUTE: &str = "reason";
/// The message attribute counting the re-drives a message went through.
pub const REDRIVES_ATTRIBUTE: &str = "redrives";
/// The message attribute naming the failure queue a re-driven message came from.
pub const REDRIVEN_FROM_ATTRIBUTE: &str = "redriven_from";
/// The first failure time of a message, kept across re-drives (RFC 3339).
pub const FIRST_FAILED_AT_ATTRIBUTE: &str = "first_failed_at";

/// What a message carries of its past failures when it is re-driven, and keeps if it fails again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureHistory {
    pub redrives: u32,
    pub first_failed_at: Option<Timestamp>,
}

impl FailureHistory {
    /// Read from a message's attributes (absent: a first failure).
    pub fn from_attributes(attribute: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            redrives: attribute(REDRIVES_ATTRIBUTE).and_then(|n| n.parse().ok()).unwrap_or(0),
            first_failed_at: attribute(FIRST_FAILED_AT_ATTRIBUTE).and_then(|t| t.parse().ok()),
        }
    }

    /// The attributes a message carries it with (none for a first failure).
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut attributes = Vec::new();
        if self.redrives > 0 {
            attributes.push((REDRIVES_ATTRIBUTE, self.redrives.to_string()));
        }
        if let Some(at) = self.first_failed_at {
            attributes.push((FIRST_FAILED_AT_ATTRIBUTE, at.to_string()));
        }
        attributes
    }
}

/// Every queue where a message that could not be handled waits for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureQueue {
    /// Events the processor can never apply as they are (not an event, a payload no rule reads).
    ProcessorDeadLetters,
    /// Processor invocations that still failed after Lambda's retries (a backing service down).
    ProcessorFailures,
    /// Pushes that failed for good or gave up, and messages that are not `customer.updated`.
    IntegratorDeadLetters,
    /// Integrator invocations that still failed after Lambda's retries.
    IntegratorFailures,
    /// Records the lake writer refused five times.
    LakeWriterDeadLetters,
    /// Rebuild requests that failed five times.
    RebuildDeadLetters,
    /// Replay requests that failed five times.
    ReplayDeadLetters,
}

/// Where a queue's messages are re-driven to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedriveTarget {
    /// The processor's re-drive queue (an event source of the processor).
    Processor,
    /// The integrator's re-drive queue (an event source of the integrator).
    Integrator,
    /// The lake writer's own queue.
    LakeWriter,
    /// The rebuild queue.
    Rebuild,
    /// The replay queue.
    Replay,
}

impl FailureQueue {
    pub const ALL: [FailureQueue; 7] = [
        Self::ProcessorDeadLetters,
        Self::ProcessorFailures,
        Self::IntegratorDeadLetters,
        Self::IntegratorFailures,
        Self::LakeWriterDeadLetters,
        Self::RebuildDeadLetters,
        Self::ReplayDeadLetters,
    ];

    /// The name routes and logs use.
    pub fn name(self) -> &'static str {
        match self {
            Self::ProcessorDeadLetters => "processor-dead-letters",
            Self::ProcessorFailures => "processor-failures",
            Self::IntegratorDeadLetters => "integrator-dead-letters",
            Self::IntegratorFailures => "integrator-failures",
            Self::LakeWriterDeadLetters => "lake-writer-dead-letters",
            Self::RebuildDeadLetters => "rebuild-dead-letters",
            Self::ReplayDeadLetters => "replay-dead-letters",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|queue| queue.name() == name)
    }

    pub fn target(self) -> RedriveTarget {
        match self {
            Self::ProcessorDeadLetters | Self::ProcessorFailures => RedriveTarget::Processor,
            Self::IntegratorDeadLetters | Self::IntegratorFailures => RedriveTarget::Integrator,
            Self::LakeWriterDeadLetters => RedriveTarget::LakeWriter,
            Self::RebuildDeadLetters => RedriveTarget::Rebuild,
            Self::ReplayDeadLetters => RedriveTarget::Replay,
        }
    }
}

/// The URLs of every failure queue and re-drive target, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub processor_dead_letters: String,
    pub processor_failures: String,
    pub processor_redrive: String,
    pub integrator_dead_letters: String,
    pub integrator_failures: String,
    pub integrator_redrive: String,
    pub lake_writer: String,
    pub lake_writer_dead_letters: String,
    pub rebuild: String,
    pub rebuild_dead_letters: String,
    pub replay: String,
    pub replay_dead_letters: String,
}

/// Every environment variable [`QueueUrls::from_env`] reads.
pub const QUEUE_URL_VARIABLES: [&str; 12] = [
    "PROCESSOR_DEAD_LETTER_QUEUE_URL",
    "PROCESSOR_FAILURE_QUEUE_URL",
    "PROCESSOR_REDRIVE_QUEUE_URL",
    "INTEGRATOR_DEAD_LETTER_QUEUE_URL",
    "INTEGRATOR_FAILURE_QUEUE_URL",
    "INTEGRATOR_REDRIVE_QUEUE_URL",
    "LAKE_WRITER_QUEUE_URL",
    "LAKE_WRITER_DEAD_LETTER_QUEUE_URL",
    "REBUILD_QUEUE_URL",
    "REBUILD_DEAD_LETTER_QUEUE_URL",
    "REPLAY_QUEUE_URL",
    "REPLAY_DEAD_LETTER_QUEUE_URL",
];

impl QueueUrls {
    pub fn from_env(env: &impl crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        let [a, b, c, d, e, f, g, h, i, j, k, l] = QUEUE_URL_VARIABLES;
        Ok(Self {
            processor_dead_letters: env.required(a)?,
            processor_failures: env.required(b)?,
            processor_redrive: env.required(c)?,
            integrator_dead_letters: env.required(d)?,
            integrator_failures: env.required(e)?,
            integrator_redrive: env.required(f)?,
            lake_writer: env.required(g)?,
            lake_writer_dead_letters: env.required(h)?,
            rebuild: env.required(i)?,
            rebuild_dead_letters: env.required(j)?,
            replay: env.required(k)?,
            replay_dead_letters: env.required(l)?,
        })
    }

    pub fn failures(&self, queue: FailureQueue) -> &str {
        match queue {
            FailureQueue::ProcessorDeadLetters => &self.processor_dead_letters,
            FailureQueue::ProcessorFailures => &self.processor_failures,
            FailureQueue::IntegratorDeadLetters => &self.integrator_dead_letters,
            FailureQueue::IntegratorFailures => &self.integrator_failures,
            FailureQueue::LakeWriterDeadLetters => &self.lake_writer_dead_letters,
            FailureQueue::RebuildDeadLetters => &self.rebuild_dead_letters,
            FailureQueue::ReplayDeadLetters => &self.replay_dead_letters,
        }
    }

    pub fn target(&self, target: RedriveTarget) -> &str {
        match target {
            RedriveTarget::Processor => &self.processor_redrive,
            RedriveTarget::Integrator => &self.integrator_redrive,
            RedriveTarget::LakeWriter => &self.lake_writer,
            RedriveTarget::Rebuild => &self.rebuild,
            RedriveTarget::Replay => &self.replay,
        }
    }
}

/// One failed message as the failures route shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureView {
    /// The queue's id of the message: what a re-drive of a selection names.
    pub id: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The customer id when the message names one (a push), else the event's subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// The integration of a failed push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<Timestamp>,
    /// How many times it was re-driven and failed again.
    pub redrives: u32,
    /// The message itself (JSON when it is JSON, else its text).
    pub message: Value,
}

/// What Lambda writes to an `OnFailure` destination of an asynchronous invocation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DestinationRecord {
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(default)]
    request_context: Value,
    #[serde(default)]
    request_payload: Value,
    #[serde(default)]
    response_payload: Value,
}

impl DestinationRecord {
    fn parse(body: &str) -> Option<Self> {
        let record: Self = serde_json::from_str(body).ok()?;
        record.request_payload.get("Records").is_some().then_some(record)
    }

    /// The SNS messages of the failed invocation: the events to handle again.
    fn messages(&self) -> Vec<String> {
        self.request_payload["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|record| record["Sns"]["Message"].as_str().map(str::to_string))
            .collect()
    }

    fn reason(&self) -> String {
        let error = &self.response_payload;
        match (error["errorType"].as_str(), error["errorMessage"].as_str()) {
            (Some(kind), Some(message)) => format!("{kind}: {message}"),
            (None, Some(message)) => message.to_string(),
            _ => self.request_context["condition"].as_str().unwrap_or("the invocation failed").to_string(),
        }
    }
}

/// A push the integrator gave up on, as it dead-letters it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailedPush {
    pub update: CustomerUpdated,
    pub result: IntegrationResult,
    /// When the update happened (absent in letters written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<Timestamp>,
}

/// Reads a failed message, whatever its shape: a canonical event, a failed push, a Lambda
/// destination record, or something unreadable (shown as it is).
pub fn describe(message: &QueuedMessage) -> FailureView {
    let history = FailureHistory::from_attributes(|name| message.attribute(name).map(str::to_string));
    let mut view = FailureView {
        id: message.id.clone(),
        reason: message.attribute(REASON_ATTRIBUTE).unwrap_or_default().to_string(),
        event_id: None,
        event_type: None,
        customer: None,
        integration: None,
        first_failed_at: history.first_failed_at.or(message.sent_at),
        redrives: history.redrives,
        message: serde_json::from_str(&message.body).unwrap_or_else(|_| Value::from(message.body.as_str())),
    };
    if let Ok(push) = serde_json::from_str::<FailedPush>(&message.body) {
        view.event_id = Some(push.update.event_id.to_string());
        view.event_type = Some(crate::event::types::CUSTOMER_UPDATED.to_string());
        view.customer = Some(push.update.customer_id.to_string());
        view.integration = Some(push.result.integration);
    } else if let Some(record) = DestinationRecord::parse(&message.body) {
        if view.reason.is_empty() {
            view.reason = record.reason();
        }
        // Lambda's request context names the function's ARN (the account): not for the listing.
        if let Some(shown) = view.message.as_object_mut() {
            shown.remove("requestContext");
        }
        view.first_failed_at = history.first_failed_at.or(record.timestamp).or(message.sent_at);
        if let Some(event) = record.messages().first().and_then(|m| CanonicalEvent::from_message(m).ok()) {
            describe_event(&mut view, &event);
        }
    } else if let Ok(event) = CanonicalEvent::from_message(&message.body) {
        describe_event(&mut view, &event);
    }
    if view.reason.is_empty() {
        view.reason = match message.attribute(REDRIVEN_FROM_ATTRIBUTE) {
            // SQS moved it here after its re-drive queue's last receive (a backing service down).
            Some(from) => format!("re-driven from {from}, then failed on a backing service until its receives ran out"),
            // Moved by its queue's redrive policy after its receives ran out: the function's log says why.
            None => {
                "no reason recorded: its queue moved it here after repeated failures (see the function's log)".into()
            }
        };
    }
    view
}

fn describe_event(view: &mut FailureView, event: &CanonicalEvent) {
    view.event_id = Some(event.id.to_string());
    view.event_type = Some(event.event_type.clone());
    view.customer = match event.payload_as::<CustomerUpdated>() {
        Ok(update) if event.event_type == crate::event::types::CUSTOMER_UPDATED => Some(update.customer_id.to_string()),
        _ => event.subject.as_ref().map(|s| s.as_str().to_string()),
    };
}

/// The messages to send to the target for one failed message: the event itself, the failed push
/// itself, or the events of a failed invocation. Empty when there is nothing to send again.
pub fn redrive_bodies(message: &QueuedMessage) -> Vec<String> {
    match DestinationRecord::parse(&message.body) {
        Some(record) => record.messages(),
        None => vec![message.body.clone()],
    }
}

/// What a re-drive asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Ids(Vec<String>),
}

impl Selection {
    fn takes(&self, id: &str) -> bool {
        match self {
            Self::All => true,
            Self::Ids(ids) => ids.iter().any(|wanted| wanted == id),
        }
    }
}

/// A selected message that could not be re-driven this time (it stays in its queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotRedriven {
    pub id: String,
    pub reason: String,
}

/// What one re-drive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveOutcome {
    /// Messages taken off the failure queue and sent back.
    pub redriven: u32,
    /// Messages sent to the target (a failed invocation may hold several events).
    pub sent: u32,
    /// Selected messages with nothing to send again (left in place).
    pub left: Vec<String>,
    /// Selected messages a backing service failed on (left in place, or, when only their delete
    /// failed, back in the queue after the scan's visibility timeout and re-driven again by the
    /// next call: the consumers recognise the repeat).
    pub failed: Vec<NotRedriven>,
    /// Selected ids not visible in the queue now (already re-driven, expired, or being read by
    /// another listing or re-drive); only said when the scan reached the end of the queue.
    pub not_found: Vec<String>,
    /// Selected ids the scan did not reach before its deadline.
    pub not_reached: Vec<String>,
    /// True when the deadline (or a failing queue) stopped the scan: call again for the rest.
    pub more: bool,
}

/// How long a message scanned by a listing or a re-drive stays hidden from other readers.
pub const SCAN_VISIBILITY: Duration = Duration::from_secs(60);
/// Most messages read in one listing.
pub const MAX_LISTED: usize = 100;

/// Makes the scanned messages visible again; a failure only leaves them hidden until their
/// visibility timeout.
async fn release_all<Q: MessageQueues>(queues: &Q, url: &str, receipts: &[String]) {
    if receipts.is_empty() {
        return;
    }
    if let Err(e) = queues.release(url, receipts).await {
        tracing::warn!(error = %e, "scanned messages stay hidden until their visibility timeout");
    }
}

/// Sends the selected messages of a failure queue back to their target, each with its re-drive
/// count raised, then deletes them from the failure queue. A message is deleted only after its
/// events were sent (a crash in between re-drives it twice: every consumer deduplicates by event
/// id or idempotency key). Only messages the queue received before `started` are taken, so that
/// one failing again during the scan is not re-driven again by the same call. Messages not taken
/// are made visible again at the end.
pub async fn redrive<Q: MessageQueues>(
    queues: &Q,
    queue: FailureQueue,
    urls: &QueueUrls,
    selection: &Selection,
    started: Timestamp,
    deadline: impl Fn() -> bool,
) -> Result<RedriveOutcome, PortError> {
    let failures = urls.failures(queue);
    let target = urls.target(queue.target());
    let mut outcome = RedriveOutcome::default();
    let mut seen = Vec::new();
    let mut hidden = Vec::new();
    loop {
        if deadline() {
            outcome.more = true;
            break;
        }
        let batch = match queues.receive(failures, 10, SCAN_VISIBILITY).await {
            Ok(batch) => batch,
            // Nothing done yet: the call fails as a whole.
            Err(e) if seen.is_empty() => {
                release_all(queues, failures, &hidden).await;
                return Err(e);
            }
            Err(e) => {
                tracing::error!(error = %e, "the failure queue failed mid-scan; stopping");
                outcome.more = true;
                break;
            }
        };
        if batch.is_empty() {
            break;
        }
        for message in batch {
            seen.push(message.id.clone());
            let newer = message.sent_at.is_some_and(|sent| sent > started);
            if newer || !selection.takes(&message.id) {
                hidden.push(message.receipt.clone());
                continue;
            }
            let bodies = redrive_bodies(&message);
            if bodies.is_empty() {
                outcome.left.push(message.id.clone());
                hidden.push(message.receipt.clone());
                continue;
            }
            let seen_as = describe(&message);
            let history = FailureHistory {
                redrives: seen_as.redrives.saturating_add(1),
                first_failed_at: seen_as.first_failed_at,
            };
            let mut attributes = history.attributes();
            attributes.push((REDRIVEN_FROM_ATTRIBUTE, queue.name().to_string()));
            let mut sent = Ok(());
            for body in &bodies {
                sent = queues.send(target, body, &attributes).await;
                if sent.is_err() {
                    break;
                }
                outcome.sent += 1;
            }
            if let Err(e) = sent {
                tracing::error!(error = %e, message_id = message.id, "re-drive failed; left in its queue");
                outcome.failed.push(NotRedriven { id: message.id.clone(), reason: "sending it back failed".into() });
                hidden.push(message.receipt.clone());
                continue;
            }
            if let Err(e) = queues.delete(failures, &message.receipt).await {
                tracing::error!(error = %e, message_id = message.id, "re-driven but not deleted; it will come back");
                outcome.failed.push(NotRedriven {
                    id: message.id.clone(),
                    reason: "re-driven, but still in its queue: the next re-drive sends it again".into(),
                });
                continue;
            }
            outcome.redriven += 1;
            tracing::info!(queue = queue.name(), message_id = message.id, redrives = history.redrives, "re-driven");
        }
        if let Selection::Ids(ids) = selection
            && ids.iter().all(|id| seen.contains(id))
        {
            break;
        }
    }
    release_all(queues, failures, &hidden).await;
    if let Selection::Ids(ids) = selection {
        let missing = ids.iter().filter(|id| !seen.contains(id)).cloned().collect();
        if outcome.more { outcome.not_reached = missing } else { outcome.not_found = missing }
    }
    Ok(outcome)
}

/// A failure queue's state: its depth and its first messages, read without deleting them (each
/// is hidden while the listing reads, then made visible again; reading counts as a receive).
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub queue: FailureQueue,
    /// Messages waiting (visible) and being handled (in flight), as the queue counts them.
    pub depth: u64,
    pub in_flight: u64,
    /// Age of the oldest message listed (not necessarily of the queue's oldest), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_age_seconds: Option<i64>,
    pub messages: Vec<FailureView>,
}

pub async fn list<Q: MessageQueues>(
    queues: &Q,
    queue: FailureQueue,
    url: &str,
    limit: usize,
    now: Timestamp,
) -> Result<QueueView, PortError> {
    let depth = queues.depth(url).await?;
    let mut messages = Vec::new();
    let mut receipts = Vec::new();
    let wanted = if depth.visible == 0 { 0 } else { limit.min(MAX_LISTED) };
    let mut scanned = Ok(());
    while messages.len() < wanted {
        let batch = match queues.receive(url, 10, SCAN_VISIBILITY).await {
            Ok(batch) => batch,
            Err(e) => {
                scanned = Err(e);
                break;
            }
        };
        if batch.is_empty() {
            break;
        }
        for message in batch {
            receipts.push(message.receipt.clone());
            messages.push(describe(&message));
        }
    }
    release_all(queues, url, &receipts).await;
    scanned?;
    messages.truncate(limit);
    let oldest_age_seconds =
        // A clock behind the queue's (or a message stamped by another host) says 0, never less.
        messages.iter().filter_map(|m| m.first_failed_at).min().map(|oldest| now.duration_since(oldest).as_secs().max(0));
    Ok(QueueView { queue, depth: depth.visible, in_flight: depth.in_flight, oldest_age_seconds, messages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queued(body: &str, attributes: &[(&str, &str)]) -> QueuedMessage {
        QueuedMessage {
            id: "m-1".into(),
            receipt: "r-1".into(),
            body: body.into(),
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            sent_at: Some("2026-11-20T10:00:00Z".parse().unwrap()),
        }
    }

    fn event_message() -> String {
        json!({"id": "evt_1", "source": "stripe", "type": "stripe.invoice.paid", "subject": "email:ada@example.com",
            "occurred_at": "2026-11-20T09:00:00Z", "received_at": "2026-11-20T09:00:01Z", "payload": {"amount": 1}})
        .to_string()
    }

    #[test]
    fn a_dead_lettered_event_is_described_and_sent_back_as_it_is() {
        let message = queued(&event_message(), &[("reason", "payload unreadable"), ("redrives", "2")]);
        let view = describe(&message);
        assert_eq!(view.reason, "payload unreadable");
        assert_eq!(view.event_id.as_deref(), Some("evt_1"));
        assert_eq!(view.event_type.as_deref(), Some("stripe.invoice.paid"));
        assert_eq!(view.customer.as_deref(), Some("email:ada@example.com"));
        assert_eq!(view.redrives, 2);
        assert_eq!(view.first_failed_at, message.sent_at);
        assert_eq!(redrive_bodies(&message), vec![event_message()]);
    }

    #[test]
    fn a_failed_push_names_its_customer_and_integration() {
        let body = json!({
            "update": {"customer_id": "0192f0c4-1b7e-7a3e-9a51-3c2f1e0d9b8a", "version": 3,
                "changed_fields": ["identity.email"], "event_id": "evt_1"},
            "result": {"integration": "crm", "outcome": "gave_up", "idempotency_key": "k", "attempts": 3,
                "status": 500}
        })
        .to_string();
        let view = describe(&queued(&body, &[("reason", "push to crm RetriesExhausted: HTTP 500")]));
        assert_eq!(view.integration.as_deref(), Some("crm"));
        assert_eq!(view.customer.as_deref(), Some("0192f0c4-1b7e-7a3e-9a51-3c2f1e0d9b8a"));
        assert_eq!(view.event_type.as_deref(), Some("customer.updated"));
    }

    #[test]
    fn a_failed_invocation_is_read_from_lambdas_destination_record() {
        let body = json!({
            "version": "1.0", "timestamp": "2026-11-20T09:30:00Z",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": event_message()}}]},
            "responsePayload": {"errorType": "BackingServiceFailed", "errorMessage": "event evt_1: store unavailable"}
        })
        .to_string();
        let message = queued(&body, &[]);
        let view = describe(&message);
        assert_eq!(view.reason, "BackingServiceFailed: event evt_1: store unavailable");
        assert_eq!(view.event_id.as_deref(), Some("evt_1"));
        assert_eq!(view.first_failed_at, Some("2026-11-20T09:30:00Z".parse().unwrap()));
        assert_eq!(redrive_bodies(&message), vec![event_message()]);
    }

    #[test]
    fn anything_else_is_shown_as_it_is() {
        let view = describe(&queued("not json", &[]));
        assert_eq!(view.message, Value::from("not json"));
        assert!(view.reason.starts_with("no reason recorded"), "{}", view.reason);
        assert_eq!(view.event_id, None);
    }

    #[test]
    fn queue_names_round_trip() {
        for queue in FailureQueue::ALL {
            assert_eq!(FailureQueue::parse(queue.name()), Some(queue));
            assert_eq!(serde_json::to_value(queue).unwrap(), Value::from(queue.name()));
        }
        assert_eq!(FailureQueue::parse("nope"), None);
    }
}
