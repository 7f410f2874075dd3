//! Retry timing: exponential backoff with full jitter, and the server's `Retry-After` when it asks
//! for longer. Used by the outbound HTTP calls (the integrator's pushes, the puller's pulls) and by
//! the processor between conflicting writes.

use jiff::Timestamp;
use std::time::Duration;

/// Delays between attempts: attempt n waits a random time in [0, min(cap, base·2ⁿ⁻¹)), or what
/// the server asked in `Retry-After` (capped at `max_retry_after`) when that is longer.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_retry_after: Duration,
}

/// The longest wait between two attempts with the default [`Backoff`] (what a `Retry-After` may
/// ask for at most): with it, an integration's worst case is checked against the function's timeout.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_millis(200), cap: Duration::from_secs(5), max_retry_after: MAX_RETRY_DELAY }
    }
}

impl Backoff {
    /// How long to wait before attempt `attempt + 1` (attempts count from 1).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.base.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.cap);
        let jittered = ceiling.mul_f64(fastrand::f64());
        match retry_after {
            Some(asked) => asked.min(self.max_retry_after).max(jittered),
            None => jittered,
        }
    }
}

/// A `Retry-After` header value, as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_backoff_honours_it() {
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 01 Jan 2025 00:00:07 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon", now), None);

        let backoff = Backoff::default();
        for attempt in 1..8 {
            assert!(backoff.delay(attempt, None) <= backoff.cap);
        }
        assert_eq!(backoff.delay(1, Some(Duration::from_secs(3))), Duration::from_secs(3));
    }
}
