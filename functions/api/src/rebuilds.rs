//! `POST /api/v1/customers/{id}/rebuild` and `POST /api/v1/rebuilds`: rebuild requests queued for
//! the rebuild job, which records each run (job `rebuild`) and writes each changed record as a new
//! version with an audit entry of kind `rebuild`.

use crate::failures::Repair;
use crate::handler::{bad_request, not_found, unavailable};
use lambda_http::{Body, Request, Response};
use tributary_aws::problem::{Problem, json_response};
use tributary_domain::customer::CustomerId;
use tributary_domain::customer::rebuild::RebuildRequest;
use tributary_domain::ports::{CustomerStore, MessageQueues};

async fn queue<Q: MessageQueues, R>(repair: &Repair<Q, R>, request: &RebuildRequest) -> Response<Body> {
    let body = match serde_json::to_string(request) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "encoding a rebuild request failed");
            return Problem::new(500, "Internal Server Error").into_response();
        }
    };
    match repair.queues.send(&repair.urls.rebuild, &body, &[]).await {
        Ok(()) => {
            tracing::info!(scope = request.scope(), "rebuild queued");
            json_response(202, "application/json", &serde_json::json!({"queued": request}))
        }
        Err(e) => unavailable("rebuild queue", &e),
    }
}

/// One customer, which must exist.
pub async fn customer<S: CustomerStore, Q: MessageQueues, R>(
    store: &S,
    repair: &Repair<Q, R>,
    id: &str,
) -> Response<Body> {
    let Ok(id) = CustomerId::parse(id) else { return not_found() };
    match store.load(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(),
        Err(e) => return unavailable("customer table", &e),
    }
    queue(repair, &RebuildRequest { customer_id: Some(id), ..RebuildRequest::default() }).await
}

/// Every customer a selection of events touched: `{"event_type": "stripe.", "from": …, "to": …}`.
pub async fn selection<Q: MessageQueues, R>(repair: &Repair<Q, R>, request: &Request) -> Response<Body> {
    let asked: RebuildRequest = match serde_json::from_slice(request.body().as_ref()) {
        Ok(asked) => asked,
        Err(e) => return bad_request(&format!("the body is not a rebuild selection: {e}"), "body"),
    };
    if asked.customer_id.is_some() || asked.after.is_some() || asked.run_id.is_some() {
        return bad_request(
            "name event_type and/or from, to (one customer: POST /api/v1/customers/{id}/rebuild)",
            "body",
        );
    }
    if let Err(e) = asked.validate() {
        return bad_request(&e.to_string(), "body");
    }
    queue(repair, &asked).await
}
