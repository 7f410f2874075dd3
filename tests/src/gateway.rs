//! API Gateway's HTTP API, locally: one port for every `HttpApi` route of `template.yaml`, each
//! request sent to the URL of the function whose route it matches, as the deployed stack has one
//! origin for the webhooks, `/api/v1` and the console. A route's `{name}` matches one path segment,
//! `{name+}` the rest; a literal segment is preferred over a parameter, as the service does.

use crate::functions::FunctionClient;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tributary_testing::Template;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
    Rest,
}

/// One `HttpApi` event of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
    segments: Vec<Segment>,
}

impl Route {
    fn new(method: &str, path: &str, function: &str) -> Self {
        let segments = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if name.ends_with('+') => Segment::Rest,
                Some(_) => Segment::Parameter,
                None => Segment::Literal(segment.to_string()),
            })
            .collect();
        Self { method: method.to_ascii_uppercase(), path: path.to_string(), function: function.to_string(), segments }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if self.method != "ANY" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let mut index = 0;
        for segment in &self.segments {
            match segment {
                Segment::Rest => return index < parts.len(),
                Segment::Parameter if index < parts.len() => index += 1,
                Segment::Literal(literal) if parts.get(index) == Some(&literal.as_str()) => index += 1,
                _ => return false,
            }
        }
        index == parts.len()
    }

    /// Literal segments first: `/webhooks/stripe` before `/webhooks/{source}`.
    fn specificity(&self) -> usize {
        self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count()
    }
}

/// Every `HttpApi` event of the template's functions, most specific first.
pub fn routes(template: &Template) -> Result<Vec<Route>, String> {
    let mut routes = Vec::new();
    for (logical_id, function) in template.resources_of_type("AWS::Serverless::Function") {
        let events = function["Properties"]["Events"].as_object().into_iter().flatten();
        for (name, event) in events.filter(|(_, event)| event["Type"] == "HttpApi") {
            let properties = &event["Properties"];
            let (Some(path), Some(method)) = (properties["Path"].as_str(), properties["Method"].as_str()) else {
                return Err(format!("{logical_id}.{name}: an HttpApi event without Path or Method"));
            };
            routes.push(Route::new(method, path, logical_id));
        }
    }
    routes.sort_by_key(|route| std::cmp::Reverse(route.specificity()));
    Ok(routes)
}

/// The route `method path` goes to.
pub fn route_for<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<&'a Route> {
    routes.iter().find(|route| route.matches(method, path))
}

/// The gateway, serving until dropped.
pub struct Gateway {
    pub port: u16,
    task: JoinHandle<()>,
}

struct Shared {
    routes: Vec<Route>,
    /// Each function by logical id (its URL is taken per request: it may run as several processes).
    targets: HashMap<String, FunctionClient>,
    http: reqwest::Client,
}

impl Gateway {
    /// Listens on `port` (0: a free one) and sends each request to `targets[function]`.
    pub async fn start(
        routes: Vec<Route>,
        targets: HashMap<String, FunctionClient>,
        port: u16,
    ) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("gateway: binding 127.0.0.1:{port}: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        // A redirect goes back to the browser, as API Gateway passes it.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("gateway: {e}"))?;
        let shared = Arc::new(Shared { routes, targets, http });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, std::convert::Infallible>(forward(&shared, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { port, task })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn forward(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // What API Gateway answers for a route the API does not have.
    let Some(route) = route_for(&shared.routes, parts.method.as_str(), parts.uri.path()) else {
        return answer(StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#);
    };
    let Some(target) = shared.targets.get(&route.function) else {
        return answer(StatusCode::BAD_GATEWAY, r#"{"message":"the route's function is not running"}"#);
    };
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, r#"{"message":"unreadable body"}"#);
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing =
        shared.http.request(parts.method.clone(), format!("{}{path_and_query}", target.url())).body(body);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(reply) = outgoing.send().await else {
        return answer(StatusCode::BAD_GATEWAY, r#"{"message":"the function did not answer"}"#);
    };
    let status = reply.status();
    let headers = reply.headers().clone();
    let Ok(bytes) = reply.bytes().await else {
        return answer(StatusCode::BAD_GATEWAY, r#"{"message":"the function's answer was cut"}"#);
    };
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != hyper::header::CONTENT_LENGTH && name != hyper::header::TRANSFER_ENCODING {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_route_is_found_and_literals_win() {
        let template = Template::workspace().unwrap();
        let routes = routes(&template).unwrap();
        let to = |method: &str, path: &str| route_for(&routes, method, path).map(|r| r.function.as_str());
        assert_eq!(to("POST", "/webhooks/stripe"), Some("WebhookFunction"));
        assert_eq!(to("POST", "/webhooks/acme"), Some("WebhookFunction"));
        assert_eq!(to("GET", "/api/v1/customers/c-1/audit"), Some("ApiFunction"));
        assert_eq!(to("GET", "/api/v1/transformation/count_date_by_week"), Some("AggregatorFunction"));
        assert_eq!(to("GET", "/console"), Some("ApiFunction"));
        assert_eq!(to("GET", "/console/console.js"), Some("ApiFunction"));
        assert_eq!(to("DELETE", "/api/v1/customers/c-1"), None);
        assert_eq!(to("GET", "/api/v1/customers/c-1/audit/more"), None);
        for route in &routes {
            let path = route.path.replace('{', "x").replace('}', "");
            assert_eq!(to(&route.method, &path).map(str::to_string), Some(route.function.clone()), "{}", route.path);
        }
    }
}
