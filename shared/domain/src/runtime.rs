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

/// The requests a job's invocation carries, and how it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequests<T> {
    pub requests: Vec<T>,
    /// Invoked directly with one request (answered with its summary), not by its queue.
    pub direct: bool,
}

/// A job's requests (the rebuild's, the replay's): the bodies of an SQS batch (the API's requests,
/// the job's own continuations), or the payload itself when the function is invoked directly.
pub fn job_requests<T: serde::de::DeserializeOwned>(
    payload: serde_json::Value,
) -> Result<JobRequests<T>, serde_json::Error> {
    if !is_sqs_batch(&payload) {
        return Ok(JobRequests { requests: vec![serde_json::from_value(payload)?], direct: true });
    }
    let records = payload["Records"].as_array().map(Vec::as_slice).unwrap_or_default();
    let requests = records
        .iter()
        .map(|record| serde_json::from_str(record["body"].as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    Ok(JobRequests { requests, direct: false })
}

/// Why a job's invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum JobInvocationError<E> {
    #[error("the invocation is neither a request nor an SQS batch of them: {0}")]
    Payload(serde_json::Error),
    #[error(transparent)]
    Job(E),
    #[error("sending the continuation (or the deferred request) failed: {0}")]
    Continuation(crate::ports::PortError),
}

impl<E> JobInvocationError<E> {
    /// The `errorType` Lambda reports: a request that can never run (`invalid` says which job
    /// errors are that) is told from a backing service that failed and may work on the retry.
    pub fn error_type(&self, invalid: impl Fn(&E) -> bool) -> &'static str {
        match self {
            Self::Payload(_) => "InvalidRequest",
            Self::Job(error) if invalid(error) => "InvalidRequest",
            Self::Job(_) => "BackingServiceFailed",
            Self::Continuation(_) => "ContinuationFailed",
        }
    }
}

/// What one request of a job came to: its summary, the continuation to send at once when the
/// deadline came first, and a request to send again after a delay (another run held the job).
pub struct JobStep<R, S> {
    pub summary: S,
    pub resume: Option<R>,
    pub later: Option<(R, std::time::Duration)>,
}

/// One invocation of a resumable job (the rebuild's, the replay's): runs each request it carries
/// ([`job_requests`]), sends each continuation and deferred request to the job's own queue, and
/// answers a direct invocation with its summary, a batch with the list of them.
pub async fn run_job_invocation<R, S, E, F, Fut>(
    payload: serde_json::Value,
    queues: &impl crate::ports::MessageQueues,
    queue_url: &str,
    mut run: F,
) -> Result<serde_json::Value, JobInvocationError<E>>
where
    R: serde::de::DeserializeOwned + serde::Serialize,
    S: serde::Serialize,
    F: FnMut(R) -> Fut,
    Fut: std::future::Future<Output = Result<JobStep<R, S>, E>>,
{
    let invocation = job_requests::<R>(payload).map_err(JobInvocationError::Payload)?;
    let mut summaries = Vec::new();
    for request in invocation.requests {
        let step = run(request).await.map_err(JobInvocationError::Job)?;
        if let Some((request, delay)) = &step.later {
            let body = serde_json::to_string(request).map_err(JobInvocationError::Payload)?;
            queues.send_later(queue_url, &body, *delay).await.map_err(JobInvocationError::Continuation)?;
        }
        if let Some(resume) = &step.resume {
            let body = serde_json::to_string(resume).map_err(JobInvocationError::Payload)?;
            queues.send(queue_url, &body, &[]).await.map_err(JobInvocationError::Continuation)?;
        }
        summaries.push(step.summary);
    }
    match (invocation.direct, summaries.pop()) {
        (true, Some(summary)) => serde_json::to_value(summary).map_err(JobInvocationError::Payload),
        (_, last) => serde_json::to_value(summaries.into_iter().chain(last).collect::<Vec<_>>())
            .map_err(JobInvocationError::Payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_requests_come_from_a_batch_or_directly() {
        let batch = serde_json::json!({"Records": [
            {"eventSource": "aws:sqs", "body": "{\"n\": 1}"},
            {"eventSource": "aws:sqs", "body": "{\"n\": 2}"}
        ]});
        let from_queue: JobRequests<serde_json::Value> = job_requests(batch).unwrap();
        assert_eq!(from_queue.requests, [serde_json::json!({"n": 1}), serde_json::json!({"n": 2})]);
        assert!(!from_queue.direct);
        let direct: JobRequests<serde_json::Value> = job_requests(serde_json::json!({"n": 3})).unwrap();
        assert!(direct.direct && direct.requests.len() == 1);
        let broken = serde_json::json!({"Records": [{"eventSource": "aws:sqs", "body": "not json"}]});
        assert!(job_requests::<serde_json::Value>(broken).is_err());
    }

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
