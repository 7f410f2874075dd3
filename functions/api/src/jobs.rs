//! The routes that queue a job's request and answer 202 with it (the job records each run, read by
//! `GET /api/v1/runs`):
//! - `POST /api/v1/customers/{id}/rebuild` and `POST /api/v1/rebuilds`: for the rebuild job, which
//!   writes each changed record as a new version with an audit entry of kind `rebuild`;
//! - `POST /api/v1/replays`: for the replay job, which publishes archived deliveries again (or
//!   counts them, `"dry_run": true`); the answer names the run to look for.

use crate::failures::Repair;
use crate::handler::{bad_request, not_found, unavailable};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tributary_aws::problem::{Problem, json_response};
use tributary_domain::archive::{ReplayRequest, ReplayTotals};
use tributary_domain::customer::CustomerId;
use tributary_domain::customer::rebuild::RebuildRequest;
use tributary_domain::ports::{CustomerStore, MessageQueues};
use tributary_domain::sync::SyncRun;

/// Sends `request` to the job's queue at `url`; 202 with the request as queued.
async fn queue<Q: MessageQueues, R>(
    repair: &Repair<Q, R>,
    url: &str,
    request: &impl Serialize,
    scope: &str,
) -> Response<Body> {
    let body = match serde_json::to_string(request) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "encoding a job request failed");
            return Problem::new(500, "Internal Server Error").into_response();
        }
    };
    match repair.queues.send(url, &body, &[]).await {
        Ok(()) => {
            tracing::info!(scope, "job request queued");
            json_response(202, "application/json", &serde_json::json!({"queued": request}))
        }
        Err(e) => unavailable("job queue", &e),
    }
}

/// One customer, which must exist.
pub async fn customer<S: CustomerStore, Q: MessageQueues, R>(
    store: &S,
    repair: &Repair<Q, R>,
    id: &str,
    caller: &str,
) -> Response<Body> {
    let Ok(id) = CustomerId::parse(id) else { return not_found() };
    match store.load(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(),
        Err(e) => return unavailable("customer table", &e),
    }
    let request =
        RebuildRequest { customer_id: Some(id), requested_by: Some(caller.to_string()), ..RebuildRequest::default() };
    queue(repair, &repair.urls.rebuild, &request, &request.scope()).await
}

/// Every customer a selection of events touched: `{"event_type": "stripe.", "from": …, "to": …}`.
pub async fn selection<Q: MessageQueues, R>(repair: &Repair<Q, R>, request: &Request, caller: &str) -> Response<Body> {
    let mut asked: RebuildRequest = match serde_json::from_slice(request.body().as_ref()) {
        Ok(asked) => asked,
        Err(e) => return bad_request(&format!("the body is not a rebuild selection: {e}"), "body"),
    };
    if asked.customer_id.is_some() || asked.after.is_some() || asked.run_id.is_some() || asked.requested_by.is_some() {
        return bad_request(
            "name event_type and/or from, to (one customer: POST /api/v1/customers/{id}/rebuild)",
            "body",
        );
    }
    if let Err(e) = asked.validate() {
        return bad_request(&e.to_string(), "body");
    }
    asked.requested_by = Some(caller.to_string());
    queue(repair, &repair.urls.rebuild, &asked, &asked.scope()).await
}

/// A replay of archived deliveries: `{"source": "stripe", "event_type": "stripe.invoice.", "from":
/// …, "to": …, "dry_run": true}` (`source` and `event_type` optional). The run id is chosen here,
/// so that the answer names the run `GET /api/v1/runs?kind=replay` shows.
pub async fn replay<Q: MessageQueues, R>(repair: &Repair<Q, R>, request: &Request, caller: &str) -> Response<Body> {
    let mut asked: ReplayRequest = match serde_json::from_slice(request.body().as_ref()) {
        Ok(asked) => asked,
        Err(e) => return bad_request(&format!("the body is not a replay selection: {e}"), "body"),
    };
    if asked.after.is_some()
        || asked.run_id.is_some()
        || asked.started_at.is_some()
        || asked.requested_by.is_some()
        || asked.totals != ReplayTotals::default()
    {
        return bad_request("name source, event_type, from, to and dry_run only", "body");
    }
    if let Err(e) = asked.validate() {
        return bad_request(&e.to_string(), "body");
    }
    asked.run_id = Some(SyncRun::new_id());
    asked.requested_by = Some(caller.to_string());
    queue(repair, &repair.urls.replay, &asked, &asked.scope()).await
}
