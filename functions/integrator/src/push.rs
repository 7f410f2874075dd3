//! One push of a record to an integration's endpoint: timeouts, retries of 5xx, 429 and timeouts
//! with exponential backoff and full jitter (honouring `Retry-After`), no retry of other 4xx.

use crate::guard::Refused;
use jiff::Timestamp;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, Method, StatusCode, Url};
use std::time::Duration;
use tributary_domain::customer::store::{IntegrationResult, PushOutcome};
use tributary_domain::retry::parse_retry_after;
pub use tributary_domain::retry::{Backoff, MAX_RETRY_DELAY};

#[derive(Debug, Clone)]
pub struct PushRequest {
    pub integration: String,
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    pub idempotency_key: String,
    pub timeout: Duration,
    pub max_attempts: u32,
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
}

enum Attempt {
    Done(PushOutcome, Option<u16>, Option<String>),
    Retry(Option<u16>, String, Option<Duration>),
}

fn refusal(error: &reqwest::Error) -> Option<&Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = current.source();
    }
    None
}

async fn attempt(client: &Client, request: &PushRequest) -> Attempt {
    let result = client
        .request(request.method.clone(), request.url.clone())
        .headers(request.headers.clone())
        .header("Idempotency-Key", &request.idempotency_key)
        .json(&request.body)
        .timeout(request.timeout)
        .send()
        .await;
    match result {
        Ok(response) => {
            let status = response.status();
            let code = Some(status.as_u16());
            if status.is_success() {
                Attempt::Done(PushOutcome::Success, code, None)
            } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                Attempt::Retry(code, format!("HTTP {status}"), retry_after(response.headers(), Timestamp::now()))
            } else {
                Attempt::Done(PushOutcome::PermanentFailure, code, Some(format!("HTTP {status}")))
            }
        }
        Err(error) => match refusal(&error) {
            Some(refused) => {
                tracing::warn!(integration = request.integration, reason = %refused, "push refused by the SSRF guard");
                Attempt::Done(PushOutcome::PermanentFailure, None, Some(refused.public_reason().into()))
            }
            None if error.is_builder() => {
                // The builder's message names the URL: logged, not kept in the audit entry.
                tracing::error!(integration = request.integration, error = %error, "building the push request failed");
                Attempt::Done(PushOutcome::PermanentFailure, None, Some("the request could not be built".into()))
            }
            None => {
                let kind = if error.is_timeout() { "timed out" } else { "connection failed" };
                Attempt::Retry(None, kind.to_string(), None)
            }
        },
    }
}

/// Pushes until success, a permanent failure, or `max_attempts` attempts.
pub async fn push(client: &Client, request: &PushRequest, backoff: &Backoff) -> IntegrationResult {
    let mut attempts = 0;
    let (outcome, status, detail) = loop {
        attempts += 1;
        match attempt(client, request).await {
            Attempt::Done(outcome, status, detail) => break (outcome, status, detail),
            Attempt::Retry(status, detail, _) if attempts >= request.max_attempts => {
                break (PushOutcome::GaveUp, status, Some(format!("{detail} after {attempts} attempts")));
            }
            // Retrying sooner than the server asked would not honour it; waiting longer would
            // outlive the invocation. The push is dead-lettered for a later replay instead.
            Attempt::Retry(status, detail, Some(asked)) if asked > backoff.max_retry_after => {
                let detail = format!("{detail}, asked to retry after {} s", asked.as_secs());
                break (PushOutcome::GaveUp, status, Some(detail));
            }
            Attempt::Retry(status, detail, asked) => {
                let delay = backoff.delay(attempts, asked);
                tracing::warn!(
                    integration = request.integration,
                    attempt = attempts,
                    ?status,
                    detail,
                    ?delay,
                    "retrying push"
                );
                tokio::time::sleep(delay).await;
            }
        }
    };
    IntegrationResult {
        integration: request.integration.clone(),
        outcome,
        idempotency_key: request.idempotency_key.clone(),
        attempts,
        status,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_the_header() {
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(3)));
    }
}
