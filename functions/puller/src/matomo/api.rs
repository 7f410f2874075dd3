//! Matomo's Reporting API: `Live.getLastVisitsDetails` pages, custom dimension and goal names.
//!
//! Every call is a POST to `<base>/index.php`; the method and its parameters are in the query
//! string (they show in access logs, harmless), `token_auth` only in the form body, so that the
//! token is never in a URL, a log line or an error message, and Matomo treats it as a secure
//! request (tokens restricted to POST are refused in a URL).

use super::visit::{PreparedPage, SiteMetadata, VisitContext, prepare_page};
use crate::Budget;
use crate::fetch::{Failure, FetchError, RetryPolicy, check_status, fetch_with_retries};
use reqwest::{Client, Url};
use serde_json::Value;
use std::collections::HashMap;

pub struct MatomoApi {
    http: Client,
    endpoint: Url,
    token: String,
    policy: RetryPolicy,
}

/// An answer that is JSON but not what the method returns: Matomo reports errors as
/// `{"result":"error","message":"…"}` with HTTP 200.
fn matomo_error(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    (object.get("result")?.as_str()? == "error")
        .then(|| object.get("message").and_then(Value::as_str).unwrap_or("no message").to_string())
}

fn parse_answer(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Result<Value, Failure> {
    check_status(status, headers, body)?;
    let value: Value = serde_json::from_slice(body).map_err(|e| Failure::Retryable {
        // A proxy's HTML error page or a truncated answer: worth another try.
        detail: format!("the answer is not JSON: {e}"),
        retry_after: None,
    })?;
    match matomo_error(&value) {
        Some(message) => Err(Failure::Retryable { detail: format!("Matomo error: {message}"), retry_after: None }),
        None => Ok(value),
    }
}

/// A visits answer: a JSON list, prepared as it is read, else Matomo's error object (retried) or
/// something unusable.
fn parse_visits(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    context: VisitContext<'_>,
) -> Result<PreparedPage, Failure> {
    check_status(status, headers, body)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| Failure::Retryable { detail: "the answer is not UTF-8".into(), retry_after: None })?;
    if text.trim_start().starts_with('[') {
        return prepare_page(text, context)
            .map_err(|e| Failure::Retryable { detail: format!("the answer is not JSON: {e}"), retry_after: None });
    }
    let value = parse_answer(status, headers, body)?;
    Err(Failure::Permanent { detail: format!("expected a list of visits, got {}", kind(&value)) })
}

impl MatomoApi {
    /// `base_url` is the Matomo root (`https://matomo.example.com/`); `index.php` is added.
    pub fn new(http: Client, base_url: &Url, token: String, policy: RetryPolicy) -> Result<Self, url::ParseError> {
        let mut base = base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self { http, endpoint: base.join("index.php")?, token, policy })
    }

    fn url(&self, parameters: &[(&str, String)]) -> Url {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("module", "API")
            .append_pair("format", "JSON")
            .extend_pairs(parameters.iter().map(|(k, v)| (*k, v.as_str())));
        url
    }

    async fn call(&self, what: &str, parameters: &[(&str, String)], budget: &Budget) -> Result<Value, FetchError> {
        let url = self.url(parameters);
        let form = [("token_auth", self.token.as_str())];
        fetch_with_retries(what, &self.policy, None, budget, || self.http.post(url.clone()).form(&form), parse_answer)
            .await
    }

    /// One page of the visits of `context`'s site filed under its day, prepared, oldest first (`filter_sort_order=asc`,
    /// so that visits Matomo may still file under the day land at the end, not between pages).
    pub async fn visits(
        &self,
        context: VisitContext<'_>,
        offset: u64,
        limit: u64,
        budget: &Budget,
    ) -> Result<PreparedPage, FetchError> {
        let (site, day) = (context.site_id, context.day);
        let what = format!("Live.getLastVisitsDetails site {site} day {day} offset {offset}");
        let parameters = [
            ("method", "Live.getLastVisitsDetails".to_string()),
            ("idSite", site.to_string()),
            ("period", "day".into()),
            ("date", day.to_string()),
            ("filter_limit", limit.to_string()),
            ("filter_offset", offset.to_string()),
            ("filter_sort_order", "asc".into()),
        ];
        let url = self.url(&parameters);
        let form = [("token_auth", self.token.as_str())];
        let parse = |status, headers: &_, body: &_| parse_visits(status, headers, body, context);
        fetch_with_retries(&what, &self.policy, None, budget, || self.http.post(url.clone()).form(&form), parse).await
    }

    /// Custom dimension names by id, and goal names by id, of `site`.
    pub async fn metadata(&self, site: u32, budget: &Budget) -> Result<SiteMetadata, FetchError> {
        let dimensions = self
            .call(
                &format!("CustomDimensions.getConfiguredCustomDimensions site {site}"),
                &[("method", "CustomDimensions.getConfiguredCustomDimensions".into()), ("idSite", site.to_string())],
                budget,
            )
            .await?;
        let goals = self
            .call(
                &format!("Goals.getGoals site {site}"),
                &[("method", "Goals.getGoals".into()), ("idSite", site.to_string())],
                budget,
            )
            .await?;
        Ok(SiteMetadata {
            dimensions: names_by_id(&dimensions, "idcustomdimension"),
            goals: names_by_id(&goals, "idgoal"),
        })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `{id: name}` from Matomo's metadata answers, which are a list (custom dimensions) or an object
/// keyed by id (`Goals.getGoals`), `[]` when empty, with ids as numbers or strings.
fn names_by_id(answer: &Value, id_field: &str) -> HashMap<String, String> {
    let items: Box<dyn Iterator<Item = &Value>> = match answer {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(items) => Box::new(items.values()),
        _ => Box::new(std::iter::empty()),
    };
    items
        .filter_map(|item| {
            let id = match item.get(id_field)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((id, item.get("name")?.as_str()?.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_comes_as_lists_or_keyed_objects() {
        let dimensions = json!([{"idcustomdimension": "1", "name": "plan", "scope": "visit"}, {"idcustomdimension": 3, "name": "kind"}]);
        assert_eq!(names_by_id(&dimensions, "idcustomdimension").len(), 2);
        let goals = json!({"1": {"idgoal": "1", "name": "Signup"}, "2": {"idgoal": 2, "name": "Order"}});
        assert_eq!(names_by_id(&goals, "idgoal")["2"], "Order");
        assert!(names_by_id(&json!([]), "idgoal").is_empty());
    }

    #[test]
    fn error_bodies_are_recognised() {
        assert_eq!(matomo_error(&json!({"result": "error", "message": "denied"})).as_deref(), Some("denied"));
        assert_eq!(matomo_error(&json!([])), None);
    }
}
