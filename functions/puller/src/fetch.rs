//! Calls to the source APIs with retries: 5xx, 429, timeouts and answers the caller's check calls
//! retryable are retried with backoff (honouring `Retry-After`); anything else fails at once.

use crate::Budget;
use jiff::Timestamp;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use std::time::Duration;
use tributary_domain::retry::{Backoff, parse_retry_after};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Up to 30 s of waiting per call with the default backoff caps; Notion's `Retry-After` may
        // ask for up to 60 s, which is honoured up to `max_retry_after`.
        Self {
            attempts: 5,
            backoff: Backoff {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(10),
                max_retry_after: Duration::from_secs(60),
            },
        }
    }
}

/// Why a call's answer is not usable.
#[derive(Debug)]
pub enum Failure {
    /// Worth another attempt (server error, rate limit, Matomo's `{"result":"error"}`).
    Retryable { detail: String, retry_after: Option<Duration> },
    /// Another attempt would get the same answer (bad token, unknown database, malformed body).
    Permanent { detail: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail} (after {attempts} attempt(s))")]
pub struct FetchError {
    pub what: String,
    /// For the logs only: it may quote the source's answer.
    pub detail: String,
    pub attempts: u32,
    /// The HTTP status of the last answer, if there was one.
    pub status: Option<u16>,
}

/// The usual classification of an HTTP status: 429, 5xx (and Notion's 529) retry, other non-2xx
/// fail. `Ok(())` for a success.
pub fn check_status(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<(), Failure> {
    if status.is_success() {
        return Ok(());
    }
    let excerpt: String = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    let detail = format!("HTTP {status}: {excerpt}");
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let retry_after =
            headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, Timestamp::now()));
        Err(Failure::Retryable { detail, retry_after })
    } else {
        Err(Failure::Permanent { detail })
    }
}

/// Spaces requests (every attempt, retries included) at least `interval` apart.
pub struct Pacer {
    interval: Duration,
    last: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pacer {
    pub fn new(interval: Duration) -> Self {
        Self { interval, last: tokio::sync::Mutex::new(None) }
    }

    pub async fn wait(&self) {
        let mut last = self.last.lock().await;
        if let Some(previous) = *last {
            tokio::time::sleep_until(previous + self.interval).await;
        }
        *last = Some(tokio::time::Instant::now());
    }
}

/// Sends the request built by `request` until `check` accepts the answer, a permanent failure
/// occurs, the attempts are spent, the server asks to wait longer than `max_retry_after` or the
/// next wait would eat into the budget's margin; each attempt first waits for the `pacer`, if any.
pub async fn fetch_with_retries<T>(
    what: &str,
    policy: &RetryPolicy,
    pacer: Option<&Pacer>,
    budget: &Budget,
    request: impl Fn() -> RequestBuilder,
    check: impl Fn(StatusCode, &HeaderMap, &[u8]) -> Result<T, Failure>,
) -> Result<T, FetchError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(pacer) = pacer {
            pacer.wait().await;
        }
        // The status of this attempt's answer (none when there was no answer).
        let mut last_status = None;
        let failure = match request().send().await {
            Ok(response) => {
                let status = response.status();
                last_status = Some(status.as_u16());
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => match check(status, &headers, &body) {
                        Ok(value) => return Ok(value),
                        Err(failure) => failure,
                    },
                    Err(e) => Failure::Retryable { detail: format!("reading the answer: {e}"), retry_after: None },
                }
            }
            // Timeouts and connection errors: the request may not have reached the server.
            Err(e) => Failure::Retryable { detail: e.without_url().to_string(), retry_after: None },
        };
        let error = |detail: String| FetchError { what: what.into(), detail, attempts: attempt, status: last_status };
        match failure {
            Failure::Permanent { detail } => return Err(error(detail)),
            Failure::Retryable { detail, .. } if attempt >= policy.attempts => return Err(error(detail)),
            Failure::Retryable { detail, retry_after: Some(asked) } if asked > policy.backoff.max_retry_after => {
                let detail =
                    format!("{detail}; the server asks to wait {} s, longer than this run waits", asked.as_secs());
                return Err(error(detail));
            }
            Failure::Retryable { detail, retry_after } => {
                let delay = policy.backoff.delay(attempt, retry_after);
                if budget.exhausted_after(delay) {
                    let detail = format!("{detail}; no time left to retry before the invocation's deadline");
                    return Err(error(detail));
                }
                tracing::warn!(what, attempt, detail, delay_ms = delay.as_millis() as u64, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pacer;
    use std::time::Duration;

    #[tokio::test]
    async fn each_wait_ends_at_least_one_interval_after_the_last() {
        // Measured where the requests start, so a loaded machine can only lengthen the gaps: the
        // server side of the Notion test sees them shortened by its own scheduling delays.
        let interval = Duration::from_millis(40);
        let pacer = Pacer::new(interval);
        let mut starts = Vec::new();
        for _ in 0..4 {
            pacer.wait().await;
            starts.push(tokio::time::Instant::now());
        }
        for pair in starts.windows(2) {
            assert!(pair[1] - pair[0] >= interval, "{:?} after the last", pair[1] - pair[0]);
        }
    }
}
