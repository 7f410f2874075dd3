//! RFC 9457 problem details (`application/problem+json`) for HTTP answers.
//!
//! A problem says what the client did wrong in terms of its own request, never our internals:
//! handlers log the details and answer with a short problem.

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request field at fault, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: u16, title: &'static str) -> Self {
        Self { problem_type: "about:blank", title, status, detail: None, field: None }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn into_response(self) -> Response<Body> {
        json_response(self.status, "application/problem+json", &self)
    }
}

/// A JSON answer. Serialising our own plain structs cannot fail; if it ever did, the client still
/// gets a well-formed 500 instead of a panic.
pub fn json_response(status: u16, content_type: &str, body: &impl Serialize) -> Response<Body> {
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(_) => (500, r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#.to_string()),
    };
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() =
        lambda_http::http::StatusCode::from_u16(status).unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = lambda_http::http::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(lambda_http::http::header::CONTENT_TYPE, value);
    }
    response
}

/// The Lambda request id of an HTTP request, for the metrics line ("-" outside Lambda, in tests).
pub fn request_id(request: &Request) -> String {
    request.lambda_context_ref().map(|context| context.request_id.clone()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_response_has_status_type_and_field() {
        let response = Problem::new(422, "Unprocessable Content")
            .with_detail("score: out of range")
            .with_field("score")
            .into_response();
        assert_eq!(response.status().as_u16(), 422);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["field"], "score");
        assert_eq!(body["status"], 422);
    }
}
