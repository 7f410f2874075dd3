//! The Lambda handler: `customer.updated` deliveries from the `updates` topic.

use crate::config::{CUSTOMER_ID_SOURCE, Integration, LoadedIntegrations, Method, VERSION_SOURCE};
use crate::guard::{GuardedResolver, check_url};
use crate::push::{Backoff, PushRequest, push};
use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tributary_domain::customer::CustomerRecord;
use tributary_domain::customer::store::{AuditEntry, AuditKind, CustomerUpdated, IntegrationResult, PushOutcome};
use tributary_domain::event::CanonicalEvent;
use tributary_domain::failures::{FailedPush, FailureHistory};
use tributary_domain::metrics::Metrics;
use tributary_domain::ports::{CustomerStore, DeadLetterSink, PortError, SyncStore};
use tributary_domain::secrets::Refreshing;
use tributary_domain::sync::{Tally, TallyKind, count};

pub struct Deps<S, D, T> {
    /// Re-read with their secrets once older than the maximum age (a rotated token is used within it).
    pub integrations: Refreshing<LoadedIntegrations>,
    pub client: reqwest::Client,
    pub store: S,
    pub dead_letters: D,
    /// Where pushes are counted by integration, outcome and hour (the ingestion table).
    pub tallies: T,
    pub allow_loopback: bool,
    pub backoff: Backoff,
}

/// The HTTP client every push uses: guarded resolver, no redirects, short connect timeout.
pub fn http_client(allow_loopback: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the host itself, out of the guard's sight.
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .user_agent(concat!("tributary-integrator/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pushed: u32,
    pub failed: u32,
    /// Updates that no integration is interested in.
    pub not_triggered: u32,
    pub dead_lettered: u32,
}

impl Summary {
    /// The invocation's metrics line (EMF).
    pub fn metrics(&self) -> Metrics {
        Metrics::new("integrator")
            .count("pushed", self.pushed)
            .count("push_failures", self.failed)
            .count("dead_lettered", self.dead_lettered)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("update {update_id}: {source}")]
    Store { update_id: String, source: PortError },
    #[error("dead-lettering failed: {0}")]
    DeadLetter(PortError),
    /// The payload is neither an SNS delivery nor an SQS batch (Lambda never sends one), or the
    /// answer could not be written as JSON.
    #[error("the invocation's payload or answer is not what Lambda exchanges: {0}")]
    Payload(serde_json::Error),
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Store { .. } => "BackingServiceFailed",
            HandlerError::DeadLetter(_) => "DeadLetterFailed",
            HandlerError::Payload(_) => "InvalidPayload",
        };
        Self { error_type: error_type.into(), error_message: error.to_string() }
    }
}

/// One update to push: from the topic (every integration it triggers), or a failed push an
/// operator re-drove (that integration alone, with the same `Idempotency-Key`).
struct Delivery {
    update: CustomerUpdated,
    event_type: String,
    occurred_at: Option<Timestamp>,
    only: Option<String>,
}

/// Why a message can never be handled.
fn parse_delivery(message: &str) -> Result<Delivery, String> {
    if let Ok(push) = serde_json::from_str::<FailedPush>(message) {
        return Ok(Delivery {
            update: push.update,
            event_type: tributary_domain::event::types::CUSTOMER_UPDATED.into(),
            occurred_at: push.occurred_at,
            only: Some(push.result.integration),
        });
    }
    let event = CanonicalEvent::from_message(message).map_err(|e| format!("not a canonical event: {e}"))?;
    if event.event_type != tributary_domain::event::types::CUSTOMER_UPDATED {
        return Err(format!("not a customer.updated event but {}", event.event_type));
    }
    let update = event.payload_as().map_err(|e| format!("not a customer.updated payload: {e}"))?;
    Ok(Delivery { update, event_type: event.event_type, occurred_at: Some(event.occurred_at), only: None })
}

/// The request body: each key from its source (a record field, `$customer_id` or `$version`);
/// a field the record does not have is `null`. The record is read when the push is made, so it may
/// be newer than the update that triggered the push: a push never sends stale values, and
/// `$version` is the version whose values it sends.
pub fn request_body(integration: &Integration, record: &CustomerRecord) -> Value {
    let body: Map<String, Value> = integration
        .body
        .iter()
        .map(|(key, source)| {
            let value = match source.as_str() {
                CUSTOMER_ID_SOURCE => Value::from(record.id.as_str()),
                VERSION_SOURCE => Value::from(record.version),
                field => record.value(field).cloned().unwrap_or(Value::Null),
            };
            (key.clone(), value)
        })
        .collect();
    Value::Object(body)
}

fn failed(integration: &str, key: &str, detail: String) -> IntegrationResult {
    IntegrationResult {
        integration: integration.to_string(),
        outcome: PushOutcome::PermanentFailure,
        idempotency_key: key.to_string(),
        attempts: 0,
        status: None,
        detail: Some(detail),
    }
}

async fn push_one<S, D, T>(
    deps: &Deps<S, D, T>,
    integrations: &LoadedIntegrations,
    integration: &Integration,
    record: &CustomerRecord,
    update: &CustomerUpdated,
) -> IntegrationResult {
    let key = format!("{}:{}:{}", update.customer_id, update.version, integration.name);
    // The audit entry (served by the read API) says what kind of failure it was; the specifics
    // (the URL, the host, the address) go to the log only.
    let url = match reqwest::Url::parse(&integration.url) {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(integration = integration.name, error = %e, "the integration's URL is not valid");
            return failed(&integration.name, &key, "the integration's URL is not valid".into());
        }
    };
    if let Err(refused) = check_url(&url, &integrations.document.allowed_hosts, deps.allow_loopback) {
        tracing::warn!(integration = integration.name, reason = %refused, "push refused by the SSRF guard");
        return failed(&integration.name, &key, refused.public_reason().into());
    }
    let mut headers = HeaderMap::new();
    if let Some(auth) = &integration.auth {
        let secret = integrations.secrets.get(&auth.secret_param).map(String::as_str).unwrap_or_default();
        match (
            HeaderName::from_bytes(auth.header.as_bytes()),
            HeaderValue::from_str(&format!("{}{secret}", auth.prefix)),
        ) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                headers.insert(name, value);
            }
            _ => return failed(&integration.name, &key, "auth header cannot be built".into()),
        }
    }
    let request = PushRequest {
        integration: integration.name.clone(),
        method: match integration.method {
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
        },
        url,
        headers,
        body: request_body(integration, record),
        idempotency_key: key,
        timeout: integration.timeout(),
        max_attempts: integration.max_attempts,
    };
    push(&deps.client, &request, &deps.backoff).await
}

pub async fn handle<S, D, T>(deps: &Deps<S, D, T>, event: SnsEvent, now: Timestamp) -> Result<Summary, HandlerError>
where
    S: CustomerStore,
    D: DeadLetterSink,
    T: SyncStore,
{
    let mut summary = Summary::default();
    let integrations = deps.integrations.current(now).await;
    for record in event.records {
        tracing::debug!(sns_message_id = record.sns.message_id, "message");
        let history = FailureHistory::default();
        handle_message(deps, &integrations, &record.sns.message, &history, &mut summary, now).await?;
    }
    Ok(summary)
}

/// Failed pushes and updates re-driven from the integrator's failure queues. One whose customer
/// cannot be read stays on the re-drive queue (SQS retries it, then moves it to the failure
/// queue); a push that fails again is dead-lettered again with its re-drive count.
pub async fn handle_redriven<S, D, T>(
    deps: &Deps<S, D, T>,
    event: SqsEvent,
    now: Timestamp,
) -> (Summary, SqsBatchResponse)
where
    S: CustomerStore,
    D: DeadLetterSink,
    T: SyncStore,
{
    let mut summary = Summary::default();
    let mut response = SqsBatchResponse::default();
    let integrations = deps.integrations.current(now).await;
    for record in event.records {
        let history = FailureHistory::from_attributes(|name| {
            record.message_attributes.get(name).and_then(|attribute| attribute.string_value.clone())
        });
        let message = record.body.unwrap_or_default();
        if let Err(error) = handle_message(deps, &integrations, &message, &history, &mut summary, now).await {
            tracing::error!(error = %error, message_id = record.message_id, "re-driven update failed; left on its queue");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    (summary, response)
}

async fn handle_message<S, D, T>(
    deps: &Deps<S, D, T>,
    integrations: &LoadedIntegrations,
    message: &str,
    history: &FailureHistory,
    summary: &mut Summary,
    now: Timestamp,
) -> Result<(), HandlerError>
where
    S: CustomerStore,
    D: DeadLetterSink,
    T: SyncStore,
{
    let delivery = match parse_delivery(message) {
        Ok(parsed) => parsed,
        Err(reason) => {
            tracing::error!(reason, "dead-lettering message");
            deps.dead_letters.send(message, &reason, history).await.map_err(HandlerError::DeadLetter)?;
            summary.dead_lettered += 1;
            return Ok(());
        }
    };
    let update = &delivery.update;
    let span = tracing::info_span!("update", update_id = %update.event_id, customer = %update.customer_id);
    let _entered = span.enter();
    let triggered: Vec<&Integration> = match &delivery.only {
        Some(name) => integrations.document.integrations.iter().filter(|i| &i.name == name).collect(),
        None => integrations
            .document
            .integrations
            .iter()
            .filter(|integration| integration.triggered_by(&update.changed_fields))
            .collect(),
    };
    if let (Some(name), true) = (&delivery.only, triggered.is_empty()) {
        let reason = format!("integration {name} is no longer configured");
        tracing::error!(reason, "dead-lettering re-driven push");
        deps.dead_letters.send(message, &reason, history).await.map_err(HandlerError::DeadLetter)?;
        summary.dead_lettered += 1;
        return Ok(());
    }
    if triggered.is_empty() {
        summary.not_triggered += 1;
        return Ok(());
    }
    let store_error = |source| HandlerError::Store { update_id: update.event_id.to_string(), source };
    let Some(customer) = deps.store.load(&update.customer_id).await.map_err(store_error)? else {
        let reason = format!("customer {} does not exist", update.customer_id);
        tracing::error!(reason, "dead-lettering update");
        deps.dead_letters.send(message, &reason, history).await.map_err(HandlerError::DeadLetter)?;
        summary.dead_lettered += 1;
        return Ok(());
    };
    // One slow or failing target does not hold the others back.
    let results = futures::future::join_all(
        triggered.iter().map(|integration| push_one(deps, integrations, integration, &customer, update)),
    )
    .await;
    for result in results {
        tracing::info!(
            integration = result.integration,
            outcome = ?result.outcome,
            attempts = result.attempts,
            status = result.status,
            detail = result.detail,
            redrives = history.redrives,
            "push finished"
        );
        let audit = AuditEntry {
            customer_id: update.customer_id.clone(),
            kind: AuditKind::Integration,
            version: update.version,
            event_id: update.event_id.clone(),
            source: "integrator".into(),
            event_type: delivery.event_type.clone(),
            rule: None,
            changes: Vec::new(),
            occurred_at: delivery.occurred_at.unwrap_or(now),
            processed_at: now,
            integration: Some(result.clone()),
            requested_by: None,
        };
        deps.store.append_audit(&audit).await.map_err(store_error)?;
        count(&deps.tallies, &Tally::one(TallyKind::Pushes, &result.integration, result.outcome.name(), now)).await;
        if result.outcome == PushOutcome::Success {
            summary.pushed += 1;
            continue;
        }
        summary.failed += 1;
        // Kept for re-drive: what was to be pushed and why it was not.
        let reason = format!(
            "push to {} {:?}: {}",
            result.integration,
            result.outcome,
            result.detail.clone().unwrap_or_default()
        );
        let failed = FailedPush { update: update.clone(), result, occurred_at: delivery.occurred_at };
        let letter = serde_json::to_string(&failed)
            .map_err(|e| HandlerError::DeadLetter(PortError::new("encode failed push", e)))?;
        deps.dead_letters.send(&letter, &reason, history).await.map_err(HandlerError::DeadLetter)?;
    }
    Ok(())
}
