//! What the Lambda runtime hands a function, read once in one place.

use jiff::{SignedDuration, Timestamp};

/// The invocation's deadline from the runtime's `Lambda-Runtime-Deadline-Ms`. Lambda sends epoch
/// milliseconds; cargo-lambda's emulator sends the milliseconds left (600000) instead, so a value
/// too small to be an instant of this century is read as relative to `now`.
pub fn invocation_deadline(deadline_ms: u64, now: Timestamp) -> Timestamp {
    // 2001-09-09T01:46:40Z in epoch milliseconds: no real deadline is earlier.
    const EARLIEST_EPOCH_MS: u64 = 1_000_000_000_000;
    let Ok(millis) = i64::try_from(deadline_ms) else { return Timestamp::MAX };
    if deadline_ms < EARLIEST_EPOCH_MS {
        return now.checked_add(SignedDuration::from_millis(millis)).unwrap_or(Timestamp::MAX);
    }
    Timestamp::from_millisecond(millis).unwrap_or(Timestamp::MAX)
}

/// Whether an invocation's payload is an SQS batch (records whose `eventSource` is `aws:sqs`)
/// rather than an SNS delivery: the processor and the integrator take both, their topic's
/// deliveries and their re-drive queue's batches.
pub fn is_sqs_batch(payload: &serde_json::Value) -> bool {
    payload["Records"][0]["eventSource"].as_str() == Some("aws:sqs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_batches_are_told_from_sns_deliveries() {
        assert!(is_sqs_batch(&serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})));
        assert!(!is_sqs_batch(&serde_json::json!({"Records": [{"EventSource": "aws:sns", "Sns": {}}]})));
        assert!(!is_sqs_batch(&serde_json::json!({})));
    }

    #[test]
    fn epoch_deadlines_are_instants_and_small_ones_are_time_left() {
        let now: Timestamp = "2026-11-23T09:00:00Z".parse().unwrap();
        assert_eq!(invocation_deadline(1_795_424_700_000, now), "2026-11-23T09:05:00Z".parse().unwrap());
        assert_eq!(invocation_deadline(600_000, now), "2026-11-23T09:10:00Z".parse().unwrap());
        assert_eq!(invocation_deadline(u64::MAX, now), Timestamp::MAX);
    }
}
