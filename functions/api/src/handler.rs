//! Routing, authentication and the answers of `/api/v1`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::http::{Method, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use tributary_shared::api_key::ApiKeys;
use tributary_shared::customer::store::{AuditEntry, is_audit_sort_key};
use tributary_shared::customer::{CustomerId, CustomerRecord, FieldState};
use tributary_shared::event::Subject;
use tributary_shared::ports::{CustomerStore, PortError};
use tributary_shared::problem::{Problem, json_response};

pub struct Deps<S> {
    pub keys: ApiKeys,
    pub store: S,
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
}

fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.trim_end_matches('/').strip_prefix("/api/v1/customers")?;
    if rest.is_empty() {
        return Some(Route::FindByEmail);
    }
    let rest = rest.strip_prefix('/')?;
    match rest.split_once('/') {
        None => Some(Route::Customer(rest)),
        Some((id, "audit")) => Some(Route::Audit(id)),
        Some(_) => None,
    }
}

fn not_found() -> Response<Body> {
    Problem::new(404, "Not Found").into_response()
}

fn bad_request(detail: &str, field: &str) -> Response<Body> {
    Problem::new(400, "Bad Request").with_detail(detail).with_field(field).into_response()
}

fn unavailable(error: &PortError) -> Response<Body> {
    tracing::error!(error = %error, "customer table unavailable");
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

pub async fn handle<S: CustomerStore>(deps: &Deps<S>, request: Request) -> Response<Body> {
    let path = request.uri().path().to_string();
    let response = respond(deps, &request, &path).await;
    tracing::info!(method = %request.method(), path, status = response.status().as_u16(), "request");
    response
}

async fn respond<S: CustomerStore>(deps: &Deps<S>, request: &Request, path: &str) -> Response<Body> {
    let Some(route) = route(path) else { return not_found() };
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !deps.keys.authorizes(authorization) {
        let mut response =
            Problem::new(401, "Unauthorized").with_detail("send a valid API key as a bearer token").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return response;
    }
    if request.method() != Method::GET {
        let mut response = Problem::new(405, "Method Not Allowed").into_response();
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return response;
    }
    let query = request.query_string_parameters();
    match route {
        Route::Customer(id) => {
            let Ok(id) = CustomerId::parse(id) else { return not_found() };
            match deps.store.load(&id).await {
                Ok(Some(record)) => ok(&CustomerView::from(&record)),
                Ok(None) => not_found(),
                Err(e) => unavailable(&e),
            }
        }
        Route::Audit(id) => {
            let limit = match query.first("limit") {
                None => DEFAULT_AUDIT_LIMIT,
                Some(text) => match text.parse::<usize>() {
                    Ok(n) if (1..=MAX_AUDIT_LIMIT).contains(&n) => n,
                    _ => return bad_request(&format!("limit must be an integer from 1 to {MAX_AUDIT_LIMIT}"), "limit"),
                },
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
                Err(e) => return unavailable(&e),
            }
            match deps.store.audit(&id, limit, after.as_deref()).await {
                Ok(page) => {
                    ok(&AuditView { items: page.entries, next_cursor: page.next.as_deref().map(encode_cursor) })
                }
                Err(e) => unavailable(&e),
            }
        }
        Route::FindByEmail => {
            let Some(email) = query.first("email").filter(|e| e.contains('@') && e.len() <= 320) else {
                return bad_request("email is required: an e-mail address", "email");
            };
            let found = match deps.store.find(&Subject::email(email)).await {
                Ok(found) => found,
                Err(e) => return unavailable(&e),
            };
            let Some(id) = found else { return not_found() };
            match deps.store.load(&id).await {
                Ok(Some(record)) => ok(&CustomerView::from(&record)),
                Ok(None) => not_found(),
                Err(e) => unavailable(&e),
            }
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
