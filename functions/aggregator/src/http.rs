//! The aggregator's routes under `/api/v1` (API key as for the rest of the API):
//! `transformation/count_date_by_week|month`, `reports/monthly`, `alerts`, `ingestion/status`.

use crate::AggregatorError;
use crate::alerts::{AlertRules, alerts};
use crate::chart::counts_chart;
use crate::reader::LakeReader;
use crate::report::{Month, monthly_report};
use crate::sql::Bucket;
use crate::stats::{CountQuery, CountsJson, count_dates};
use crate::status::ingestion_status;
use crate::xlsx::{XLSX_CONTENT_TYPE, alerts_workbook, report_workbook};
use jiff::Timestamp;
use jiff::civil::Date;
use lambda_http::http::{Method, header};
use lambda_http::{Body, Request, RequestExt, Response};
use std::time::Instant;
use tokio::sync::Mutex;
use tributary_aws::problem::{Problem, json_response, request_id};
use tributary_domain::api_key::ApiKeys;
use tributary_domain::metrics::Metrics;
use tributary_domain::ports::SyncStore;
use tributary_domain::secrets::Refreshing;
use tributary_lake::{LakeError, LakeLocation};

pub struct Deps<S> {
    pub keys: Refreshing<ApiKeys>,
    /// One DuckDB connection: requests take turns (a Lambda instance serves one at a time).
    pub reader: Mutex<LakeReader>,
    pub sync: S,
    pub lake: LakeLocation,
    pub rules: AlertRules,
}

enum Route {
    Counts(Bucket),
    MonthlyReport,
    Alerts,
    IngestionStatus,
}

fn route(path: &str) -> Option<Route> {
    match path.trim_end_matches('/') {
        "/api/v1/transformation/count_date_by_week" => Some(Route::Counts(Bucket::Week)),
        "/api/v1/transformation/count_date_by_month" => Some(Route::Counts(Bucket::Month)),
        "/api/v1/reports/monthly" => Some(Route::MonthlyReport),
        "/api/v1/alerts" => Some(Route::Alerts),
        "/api/v1/ingestion/status" => Some(Route::IngestionStatus),
        _ => None,
    }
}

fn bad_request(detail: &str, field: &str) -> Response<Body> {
    Problem::new(400, "Bad Request").with_detail(detail).with_field(field).into_response()
}

/// Details go to the log; the client gets a short problem without internals.
fn failure(error: &AggregatorError) -> Response<Body> {
    tracing::error!(error = %error, "query failed");
    match error {
        AggregatorError::Lake(LakeError::Unsupported { .. }) => Problem::new(500, "Internal Server Error")
            .with_detail("the lake table cannot be read by this version")
            .into_response(),
        _ => Problem::new(503, "Service Unavailable").into_response(),
    }
}

fn xlsx(name: &str, bytes: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, XLSX_CONTENT_TYPE)
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))
        .body(Body::Binary(bytes))
        .unwrap_or_else(|_| Problem::new(500, "Internal Server Error").into_response())
}

/// The query's `format`: JSON unless `xlsx` is asked for.
fn wants_xlsx(request: &Request) -> Result<bool, Response<Body>> {
    match request.query_string_parameters_ref().and_then(|q| q.first("format")) {
        None | Some("json") => Ok(false),
        Some("xlsx") => Ok(true),
        Some(_) => Err(bad_request("format must be json or xlsx", "format")),
    }
}

fn parameter<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.query_string_parameters_ref().and_then(|q| q.first(name))
}

fn date_parameter(request: &Request, name: &str) -> Result<Option<Date>, Response<Body>> {
    match parameter(request, name) {
        None => Ok(None),
        Some(text) => text
            .parse::<Date>()
            .ok()
            .filter(|_| text.len() == 10)
            .map(Some)
            .ok_or_else(|| bad_request(&format!("{name} must be an ISO 8601 date (YYYY-MM-DD)"), name)),
    }
}

/// `tz`: an IANA zone name DuckDB knows; UTC when absent.
async fn zone_parameter(reader: &mut LakeReader, request: &Request) -> Result<String, Response<Body>> {
    let Some(zone) = parameter(request, "tz") else { return Ok("UTC".into()) };
    let known = reader.engine().time_zone_exists(zone).map_err(|e| failure(&e))?;
    if known {
        Ok(zone.to_string())
    } else {
        Err(bad_request("tz must be an IANA time zone name such as Europe/Paris", "tz"))
    }
}

pub async fn handle<S: SyncStore>(deps: &Deps<S>, request: Request, now: Timestamp) -> Response<Body> {
    let Some(route) = route(request.uri().path()) else { return Problem::new(404, "Not Found").into_response() };
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !deps.keys.current(now).await.authorizes(authorization) {
        // The same 401 as the API's.
        let mut response =
            Problem::new(401, "Unauthorized").with_detail("send a valid API key as a bearer token").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return response;
    }
    if request.method() != Method::GET {
        return Problem::new(405, "Method Not Allowed").into_response();
    }
    let started = Instant::now();
    let response = match answer(deps, route, &request, now).await {
        Ok(response) | Err(response) => response,
    };
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status().as_u16();
    tracing::info!(path = request.uri().path(), status, duration_ms, "query");
    Metrics::new("aggregator")
        .count("queries", 1u32)
        .count("query_errors", u64::from(status >= 500))
        .milliseconds("query_duration", duration_ms)
        .emit(&request_id(&request));
    response
}

async fn answer<S: SyncStore>(
    deps: &Deps<S>,
    route: Route,
    request: &Request,
    now: Timestamp,
) -> Result<Response<Body>, Response<Body>> {
    match route {
        Route::IngestionStatus => {
            let status = ingestion_status(&deps.sync, &deps.lake).await.map_err(|e| failure(&e))?;
            Ok(json_response(200, "application/json", &status))
        }
        Route::Counts(bucket) => {
            let (from, to) = (date_parameter(request, "from")?, date_parameter(request, "to")?);
            if let (Some(from), Some(to)) = (from, to)
                && from > to
            {
                return Err(bad_request("from must not be after to", "from"));
            }
            let mut reader = deps.reader.lock().await;
            let zone = zone_parameter(&mut reader, request).await?;
            let engine = reader.latest_dates().await.map_err(|e| failure(&e))?;
            let as_svg = match parameter(request, "format") {
                None | Some("json") => false,
                Some("svg") => true,
                Some(_) => return Err(bad_request("format must be json or svg", "format")),
            };
            let rows = count_dates(engine, &CountQuery { bucket, zone, from, to }).map_err(|e| failure(&e))?;
            if as_svg {
                return Ok(Response::builder()
                    .status(200)
                    .header(header::CONTENT_TYPE, "image/svg+xml")
                    .body(Body::Text(counts_chart(bucket, &rows)))
                    .unwrap_or_else(|_| Problem::new(500, "Internal Server Error").into_response()));
            }
            Ok(json_response(200, "application/json", &CountsJson { bucket, rows: &rows }))
        }
        Route::MonthlyReport => {
            let month = parameter(request, "month")
                .and_then(Month::parse)
                .ok_or_else(|| bad_request("month is required, as YYYY-MM", "month"))?;
            let as_xlsx = wants_xlsx(request)?;
            let mut reader = deps.reader.lock().await;
            let zone = zone_parameter(&mut reader, request).await?;
            let engine = reader.latest().await.map_err(|e| failure(&e))?;
            let report = monthly_report(engine, month, &zone).map_err(|e| failure(&e))?;
            if as_xlsx {
                let bytes = report_workbook(&report, month.first_day).map_err(|e| failure(&e.into()))?;
                Ok(xlsx(&format!("monthly-report-{month}.xlsx"), bytes))
            } else {
                Ok(json_response(200, "application/json", &report))
            }
        }
        Route::Alerts => {
            let as_xlsx = wants_xlsx(request)?;
            let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
            let mut reader = deps.reader.lock().await;
            let engine = reader.latest().await.map_err(|e| failure(&e))?;
            let found = alerts(engine, deps.rules, today).map_err(|e| failure(&e))?;
            if as_xlsx {
                let bytes = alerts_workbook(&found).map_err(|e| failure(&e.into()))?;
                Ok(xlsx(&format!("alerts-{today}.xlsx"), bytes))
            } else {
                Ok(json_response(200, "application/json", &serde_json::json!({ "as_of": today, "alerts": found })))
            }
        }
    }
}
