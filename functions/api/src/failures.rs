//! `/api/v1/failures`: the failure queues as an operator reads them, and their re-drive.
//!
//! - `GET /api/v1/failures[?queue=…][&limit=…]`: each queue's depth, the age of its oldest message
//!   and its first messages (read without deleting them).
//! - `POST /api/v1/failures/{queue}/redrive` with `{"ids": [...]}` or `{"all": true}`: sends those
//!   messages back to where they failed; recorded as a `redrive` run.

use crate::handler::{bad_request, limit_param, unavailable};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tributary_aws::problem::{Problem, json_response};
use tributary_domain::failures::{self, FailureQueue, QueueUrls, Selection};
use tributary_domain::ports::{MessageQueues, PortError, SyncStore};
use tributary_domain::sync::{REDRIVE_JOB, SyncOutcome, SyncRun, ended_at};

/// Messages listed per queue when the request does not say.
pub const DEFAULT_LISTED: usize = 20;
/// A re-drive stops scanning after this long, or earlier when the invocation's deadline is nearer
/// than [`REDRIVE_MARGIN`] (API Gateway answers 504 at 30 s; the function's timeout is 29 s); the
/// answer says `more` and a second call goes on.
pub const REDRIVE_BUDGET: Duration = Duration::from_secs(20);
/// Kept before the deadline for making the unselected messages visible again and recording the run.
pub const REDRIVE_MARGIN: Duration = Duration::from_secs(5);

/// The repair routes' ports and configuration.
pub struct Repair<Q, R> {
    pub queues: Q,
    pub urls: QueueUrls,
    /// Where re-drives are recorded (the ingestion table's runs).
    pub runs: R,
}

pub async fn list<Q: MessageQueues, R>(
    repair: &Repair<Q, R>,
    queue: Option<&str>,
    limit: Option<&str>,
    now: jiff::Timestamp,
) -> Response<Body> {
    let queues: Vec<FailureQueue> = match queue {
        None => FailureQueue::ALL.to_vec(),
        Some(name) => match FailureQueue::parse(name) {
            Some(queue) => vec![queue],
            None => return bad_request(&format!("queue must be one of {}", names()), "queue"),
        },
    };
    let limit = match limit_param(limit, DEFAULT_LISTED, 0..=failures::MAX_LISTED) {
        Ok(limit) => limit,
        Err(refused) => return refused,
    };
    // The queues are read together: each one's empty receive waits up to a second.
    let listed = futures::future::join_all(
        queues.into_iter().map(|queue| failures::list(&repair.queues, queue, repair.urls.failures(queue), limit, now)),
    )
    .await;
    match listed.into_iter().collect::<Result<Vec<_>, PortError>>() {
        Ok(views) => json_response(200, "application/json", &serde_json::json!({ "queues": views })),
        Err(e) => unavailable("failure queues", &e),
    }
}

fn names() -> String {
    FailureQueue::ALL.map(FailureQueue::name).join(", ")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveRequest {
    #[serde(default)]
    ids: Option<Vec<String>>,
    #[serde(default)]
    all: bool,
}

/// Most ids one re-drive names.
const MAX_IDS: usize = 500;

pub async fn redrive<Q: MessageQueues, R: SyncStore>(
    repair: &Repair<Q, R>,
    queue: &str,
    request: &Request,
    request_id: &str,
    caller: &str,
    now: jiff::Timestamp,
) -> Response<Body> {
    let Some(queue) = FailureQueue::parse(queue) else {
        return Problem::new(404, "Not Found").with_detail(format!("queues are {}", names())).into_response();
    };
    let selection = match serde_json::from_slice::<RedriveRequest>(request.body().as_ref()) {
        Ok(RedriveRequest { ids: None, all: true }) => Selection::All,
        Ok(RedriveRequest { ids: Some(ids), all: false }) if !ids.is_empty() && ids.len() <= MAX_IDS => {
            Selection::Ids(ids)
        }
        _ => {
            return bad_request(
                &format!("send {{\"ids\": [1 to {MAX_IDS} message ids]}} or {{\"all\": true}}"),
                "body",
            );
        }
    };
    let started = Instant::now();
    let budget = match request.lambda_context_ref() {
        Some(context) => {
            let real_now = jiff::Timestamp::now();
            let deadline = tributary_domain::runtime::invocation_deadline(context.deadline, real_now);
            let left = Duration::try_from(deadline.duration_since(real_now)).unwrap_or_default();
            left.saturating_sub(REDRIVE_MARGIN).min(REDRIVE_BUDGET)
        }
        None => REDRIVE_BUDGET,
    };
    let mut run = SyncRun::start(REDRIVE_JOB, queue.name(), &SyncRun::new_id(), now, None);
    run.requested_by = Some(caller.to_string());
    // The queue's clock, not the request's: only what it received before now is taken.
    let scan_start = jiff::Timestamp::now();
    let outcome = match failures::redrive(&repair.queues, queue, &repair.urls, &selection, scan_start, || {
        started.elapsed() > budget
    })
    .await
    {
        Ok(outcome) => outcome,
        Err(e) => return unavailable("failure queues", &e),
    };
    run.records = u64::from(outcome.redriven);
    run.rejected = (outcome.left.len() + outcome.failed.len() + outcome.not_found.len()) as u64;
    let finished_at = ended_at(now, started);
    run.finish(if outcome.more { SyncOutcome::MoreToDo } else { SyncOutcome::Completed }, finished_at);
    tracing::info!(
        queue = queue.name(),
        requested_by = caller,
        redriven = outcome.redriven,
        sent = outcome.sent,
        left = outcome.left.len(),
        failed = outcome.failed.len(),
        not_found = outcome.not_found.len(),
        not_reached = outcome.not_reached.len(),
        more = outcome.more,
        run_id = run.run_id,
        request_id,
        "re-drive"
    );
    if let Err(e) = repair.runs.put_run(&run).await {
        // The messages are re-driven: answering 5xx would make the operator do it again.
        tracing::error!(error = %e, "the re-drive run could not be recorded");
    }
    json_response(200, "application/json", &outcome)
}
