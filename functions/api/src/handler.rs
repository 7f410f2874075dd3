//! Routing, authentication and the answers of `/api/v1`.

use crate::failures::{self, Repair};
use crate::{console, jobs, runs};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use lambda_http::http::{Method, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use std::time::Instant;
use tributary_aws::problem::{Problem, json_response, request_id};
use tributary_domain::api_key::ApiKeys;
use tributary_domain::customer::store::{AuditEntry, is_audit_sort_key};
use tributary_domain::customer::{CustomerId, CustomerRecord, FieldState};
use tributary_domain::event::Subject;
use tributary_domain::lead::{ItemProblem, validate_batch};
use tributary_domain::metrics::Metrics;
use tributary_domain::ports::{
    BusMessage, ClaimOutcome, CustomerStore, DedupClaim, DedupStore, EventPublisher, MessageQueues, PortError,
    SyncStore,
};
use tributary_domain::secrets::Refreshing;

pub struct Deps<S, P, D, Q, R> {
    pub keys: Refreshing<ApiKeys>,
    pub store: S,
    /// The `events` topic, for ingested leads.
    pub events: P,
    /// The dedup table: one marker per ingestion `Idempotency-Key`, so that a retried request is
    /// answered without publishing again.
    pub dedup: D,
    /// The failure queues and their re-drive (`/api/v1/failures`).
    pub repair: Repair<Q, R>,
}

/// How long an ingestion `Idempotency-Key` is remembered (as the webhook's event ids).
pub const IDEMPOTENCY_KEY_TTL: jiff::SignedDuration = jiff::SignedDuration::from_hours(168);
/// After this long, an unfinished claim of a key is taken as abandoned (the function's timeout is
/// shorter).
pub const IDEMPOTENCY_IN_PROGRESS: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Most leads accepted in one request (the body stays well under API Gateway's 10 MB).
pub const MAX_LEADS_PER_REQUEST: usize = 1000;

/// The 422 answer of the ingestion API: every refused item, by index and field.
#[derive(Debug, Serialize)]
pub struct ValidationProblem {
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub errors: Vec<ItemProblem>,
}

#[derive(Debug, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    /// A retry of a request already handled (same `Idempotency-Key`, same batch): nothing published.
    pub duplicate: bool,
}

pub const DEFAULT_AUDIT_LIMIT: usize = 50;
pub const MAX_AUDIT_LIMIT: usize = 200;

/// A customer as the API shows it: the nested profile for reading, the stamped fields for
/// knowing which event set what.
#[derive(Debug, Serialize)]
pub struct CustomerView<'a> {
    pub id: &'a CustomerId,
    pub version: u64,
    pub identities: &'a std::collections::BTreeSet<String>,
    pub profile: serde_json::Value,
    pub fields: &'a std::collections::BTreeMap<String, FieldState>,
}

impl<'a> From<&'a CustomerRecord> for CustomerView<'a> {
    fn from(record: &'a CustomerRecord) -> Self {
        Self {
            id: &record.id,
            version: record.version,
            identities: &record.identities,
            profile: record.profile(),
            fields: &record.fields,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AuditView {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` to read the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

enum Route<'a> {
    Customer(&'a str),
    Audit(&'a str),
    FindByEmail,
    IngestLeads,
    Failures,
    Redrive(&'a str),
    RebuildCustomer(&'a str),
    Rebuilds,
    Replays,
    Runs,
}

fn route(path: &str) -> Option<Route<'_>> {
    let path = path.trim_end_matches('/');
    if path == "/api/v1/ingestion/leads" {
        return Some(Route::IngestLeads);
    }
    if path == "/api/v1/rebuilds" {
        return Some(Route::Rebuilds);
    }
    if path == "/api/v1/replays" {
        return Some(Route::Replays);
    }
    if path == "/api/v1/runs" {
        return Some(Route::Runs);
    }
    if let Some(rest) = path.strip_prefix("/api/v1/failures") {
        return match rest.strip_prefix('/').map(|r| r.split_once('/')) {
            None if rest.is_empty() => Some(Route::Failures),
            Some(Some((queue, "redrive"))) => Some(Route::Redrive(queue)),
            _ => None,
        };
    }
    let rest = path.strip_prefix("/api/v1/customers")?;
    if rest.is_empty() {
        return Some(Route::FindByEmail);
    }
    let rest = rest.strip_prefix('/')?;
    match rest.split_once('/') {
        None => Some(Route::Customer(rest)),
        Some((id, "audit")) => Some(Route::Audit(id)),
        Some((id, "rebuild")) => Some(Route::RebuildCustomer(id)),
        Some(_) => None,
    }
}

/// The `limit` query parameter of a listing: `default` when absent, else an integer in `range`;
/// a 400 naming it otherwise.
pub(crate) fn limit_param(
    text: Option<&str>,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, Response<Body>> {
    match text.map(str::parse::<usize>) {
        None => Ok(default),
        Some(Ok(n)) if range.contains(&n) => Ok(n),
        Some(_) => {
            Err(bad_request(&format!("limit must be an integer from {} to {}", range.start(), range.end()), "limit"))
        }
    }
}

pub(crate) fn not_found() -> Response<Body> {
    Problem::new(404, "Not Found").into_response()
}

pub(crate) fn bad_request(detail: &str, field: &str) -> Response<Body> {
    Problem::new(400, "Bad Request").with_detail(detail).with_field(field).into_response()
}

/// 503 for a backing service that failed (`what` names it in the log only).
pub(crate) fn unavailable(what: &str, error: &PortError) -> Response<Body> {
    tracing::error!(error = %error, "{what} unavailable");
    Problem::new(503, "Service Unavailable").into_response()
}

fn ok(body: &impl Serialize) -> Response<Body> {
    json_response(200, "application/json", body)
}

/// An opaque cursor: the sort key of the last entry returned, base64url.
pub fn encode_cursor(sort_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(sort_key)
}

pub fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok().filter(|key| is_audit_sort_key(key))
}

pub async fn handle<S: CustomerStore, P: EventPublisher, D: DedupStore, Q: MessageQueues, R: SyncStore>(
    deps: &Deps<S, P, D, Q, R>,
    request: Request,
    now: Timestamp,
) -> Response<Body> {
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let response = respond(deps, &request, &path, now).await;
    let status = response.status().as_u16();
    tracing::info!(method = %request.method(), path, status, "request");
    Metrics::new("api")
        .count("requests", 1u32)
        .count("client_errors", u64::from((400..500).contains(&status)))
        .count("server_errors", u64::from(status >= 500))
        .milliseconds("duration", started.elapsed().as_secs_f64() * 1000.0)
        .emit(&request_id(&request));
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = Problem::new(405, "Method Not Allowed").into_response();
    response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

async fn respond<S: CustomerStore, P: EventPublisher, D: DedupStore, Q: MessageQueues, R: SyncStore>(
    deps: &Deps<S, P, D, Q, R>,
    request: &Request,
    path: &str,
    now: Timestamp,
) -> Response<Body> {
    // The console's page and files hold no data: served to anyone, as a sign-in page is.
    if console::is_console(path) {
        return if request.method() == Method::GET { console::serve(path) } else { method_not_allowed("GET") };
    }
    if path == console::OPENAPI_PATH {
        return if request.method() == Method::GET { console::openapi() } else { method_not_allowed("GET") };
    }
    let Some(route) = route(path) else { return not_found() };
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let keys = deps.keys.current(now).await;
    let Some(caller) = keys.identify(authorization) else {
        let mut response =
            Problem::new(401, "Unauthorized").with_detail("send a valid API key as a bearer token").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return response;
    };
    if let Route::IngestLeads = route {
        return if request.method() == Method::POST {
            ingest_leads(deps, request, caller, now).await
        } else {
            method_not_allowed("POST")
        };
    }
    let posted = request.method() == Method::POST;
    match route {
        Route::Redrive(queue) if posted => {
            return failures::redrive(&deps.repair, queue, request, &request_id(request), caller, now).await;
        }
        Route::RebuildCustomer(id) if posted => return jobs::customer(&deps.store, &deps.repair, id, caller).await,
        Route::Rebuilds if posted => return jobs::selection(&deps.repair, request, caller).await,
        Route::Replays if posted => return jobs::replay(&deps.repair, request, caller).await,
        Route::Redrive(_) | Route::RebuildCustomer(_) | Route::Rebuilds | Route::Replays => {
            return method_not_allowed("POST");
        }
        _ => {}
    }
    if request.method() != Method::GET {
        return method_not_allowed("GET");
    }
    let query = request.query_string_parameters();
    match route {
        Route::Customer(id) => {
            let Ok(id) = CustomerId::parse(id) else { return not_found() };
            match deps.store.load(&id).await {
                Ok(Some(record)) => ok(&CustomerView::from(&record)),
                Ok(None) => not_found(),
                Err(e) => unavailable("customer table", &e),
            }
        }
        Route::Audit(id) => {
            let limit = match limit_param(query.first("limit"), DEFAULT_AUDIT_LIMIT, 1..=MAX_AUDIT_LIMIT) {
                Ok(limit) => limit,
                Err(refused) => return refused,
            };
            let after = match query.first("cursor") {
                None => None,
                Some(cursor) => match decode_cursor(cursor) {
                    Some(key) => Some(key),
                    None => return bad_request("cursor is not one this API returned", "cursor"),
                },
            };
            let Ok(id) = CustomerId::parse(id) else { return not_found() };
            match deps.store.load(&id).await {
                Ok(Some(_)) => {}
                Ok(None) => return not_found(),
                Err(e) => return unavailable("customer table", &e),
            }
            match deps.store.audit(&id, limit, after.as_deref()).await {
                Ok(page) => {
                    ok(&AuditView { items: page.entries, next_cursor: page.next.as_deref().map(encode_cursor) })
                }
                Err(e) => unavailable("customer table", &e),
            }
        }
        Route::IngestLeads | Route::Redrive(_) | Route::RebuildCustomer(_) | Route::Rebuilds | Route::Replays => {
            method_not_allowed("POST")
        }
        Route::Failures => failures::list(&deps.repair, query.first("queue"), query.first("limit"), now).await,
        Route::Runs => {
            if query.first("job").is_some() {
                return bad_request("the parameter is named kind (a job or a tally kind)", "job");
            }
            runs::list(&deps.repair.runs, query.first("kind"), query.first("since"), query.first("limit"), now).await
        }
        Route::FindByEmail => {
            let Some(email) = query.first("email").filter(|e| e.contains('@') && e.len() <= 320) else {
                return bad_request("email is required: an e-mail address", "email");
            };
            let found = match deps.store.find(&Subject::email(email)).await {
                Ok(found) => found,
                Err(e) => return unavailable("customer table", &e),
            };
            let Some(id) = found else { return not_found() };
            match deps.store.load(&id).await {
                Ok(Some(record)) => ok(&CustomerView::from(&record)),
                Ok(None) => not_found(),
                Err(e) => unavailable("customer table", &e),
            }
        }
    }
}

/// Longest `Idempotency-Key` accepted on the ingestion route.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// `POST /api/v1/ingestion/leads`: a JSON list of leads, all valid or none taken; each becomes a
/// `lead.upserted` event, a new version of its lead ([`tributary_domain::lead::Lead::version_id_in_request`]): a retry of
/// the request with the same `Idempotency-Key` header gives the same event ids (duplicates
/// downstream), any other request new versions.
async fn ingest_leads<S, P: EventPublisher, D: DedupStore, Q, R>(
    deps: &Deps<S, P, D, Q, R>,
    request: &Request,
    caller: &str,
    now: Timestamp,
) -> Response<Body> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.trim_start().to_ascii_lowercase().starts_with("application/json") {
        return Problem::new(415, "Unsupported Media Type").with_detail("send application/json").into_response();
    }
    let idempotency_key = match request.headers().get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key))
            if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(key)
        }
        Some(_) => {
            return bad_request(
                &format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
                "idempotency-key",
            );
        }
    };
    let items: Vec<serde_json::Value> = match serde_json::from_slice(request.body().as_ref()) {
        Ok(items) => items,
        Err(_) => return bad_request("the body must be a JSON array of leads", "body"),
    };
    if items.len() > MAX_LEADS_PER_REQUEST {
        return Problem::new(413, "Content Too Large")
            .with_detail(format!("at most {MAX_LEADS_PER_REQUEST} leads per request"))
            .into_response();
    }
    let leads = match validate_batch(&items) {
        Ok(leads) => leads,
        Err(errors) => {
            let problem = ValidationProblem {
                problem_type: "about:blank",
                title: "Unprocessable Content",
                status: 422,
                detail: format!("{} problem(s) in the batch; nothing was accepted", errors.len()),
                errors,
            };
            return json_response(422, "application/problem+json", &problem);
        }
    };
    let messages = match leads
        .iter()
        .map(|lead| {
            let event = lead
                .upserted_event(lead.version_id_in_request(idempotency_key, now), "ingestion", now, now)
                .map_err(|e| PortError::new("build lead.upserted event", e))?;
            BusMessage::from_event(&event).map_err(|e| PortError::new("build lead.upserted event", e))
        })
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(messages) => messages,
        Err(e) => return unavailable("building lead events", &e),
    };
    // A request with a key is claimed first: its retry after a success is answered as a duplicate
    // and publishes nothing (a late copy would be a newer row in the lake than a later request's);
    // the same key with another batch is a conflict.
    let claim = idempotency_key.map(|key| DedupClaim {
        key: format!("ingestion#{key}"),
        token: DedupClaim::new_token(),
        event_type: tributary_domain::event::types::LEAD_UPSERTED.into(),
        digest: tributary_domain::lead::batch_digest(&leads),
        now,
        in_progress_until: now.saturating_add(IDEMPOTENCY_IN_PROGRESS).unwrap_or(now),
        expires_at: now.saturating_add(IDEMPOTENCY_KEY_TTL).unwrap_or(now),
    });
    if let Some(claim) = &claim {
        match deps.dedup.claim(claim).await {
            Ok(ClaimOutcome::Claimed) => {}
            Ok(ClaimOutcome::AlreadyCompleted) => {
                return json_response(200, "application/json", &Accepted { accepted: messages.len(), duplicate: true });
            }
            Ok(ClaimOutcome::InProgress) => {
                let mut response = Problem::new(409, "Conflict")
                    .with_detail("a request with this Idempotency-Key is being processed; retry later")
                    .into_response();
                response.headers_mut().insert("retry-after", header::HeaderValue::from_static("5"));
                return response;
            }
            Ok(ClaimOutcome::Reused) => {
                tracing::warn!("Idempotency-Key reused for another batch; refused");
                return Problem::new(409, "Conflict")
                    .with_detail("this Idempotency-Key was already used for a different batch; send it under a new key")
                    .into_response();
            }
            Err(e) => return unavailable("dedup table", &e),
        }
    }
    match deps.events.publish_all(&messages).await {
        Ok(()) => {
            if let Some(claim) = &claim
                && let Err(e) = deps.dedup.complete(claim).await
            {
                // Published: a 5xx would make the client send it again. The claim expires on its own.
                tracing::warn!(error = %e, "leads published but their idempotency marker was not completed");
            }
            tracing::info!(requested_by = caller, leads = messages.len(), "leads ingested");
            json_response(202, "application/json", &Accepted { accepted: messages.len(), duplicate: false })
        }
        Err(e) => {
            // Some may be published already: the client's retry republishes them with the same
            // ids, which consumers recognise as duplicates.
            tracing::error!(error = %e, "publishing ingested leads failed");
            if let Some(claim) = &claim
                && let Err(e) = deps.dedup.release(claim).await
            {
                tracing::error!(error = %e, "releasing the idempotency claim failed; it expires on its own");
            }
            Problem::new(503, "Service Unavailable").with_detail("retry the whole request").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let key = "AUDIT#00000000000000000007";
        assert_eq!(decode_cursor(&encode_cursor(key)).as_deref(), Some(key));
        assert_eq!(decode_cursor("not base64!"), None);
        assert_eq!(decode_cursor(&encode_cursor("RECORD")), None);
    }
}
