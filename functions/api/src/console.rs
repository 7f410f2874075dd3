//! `GET /console`: the operators' web console, and `GET /api/v1/openapi.json`, served from the binary (no CDN, no font, nothing
//! fetched elsewhere). The page and its script hold no data: every figure comes from `/api/v1` on
//! the same origin, called with the API key the person enters (kept in the tab's session storage).

use lambda_http::{Body, Response};
use tributary_aws::problem::Problem;

/// The console's files: path, media type, content.
const ASSETS: [(&str, &str, &str); 3] = [
    ("/console", "text/html; charset=utf-8", include_str!("../console/index.html")),
    ("/console/console.js", "text/javascript; charset=utf-8", include_str!("../console/console.js")),
    ("/console/console.css", "text/css; charset=utf-8", include_str!("../console/console.css")),
];

/// Only this origin's script, style and API; no form is ever sent by the browser itself (the
/// script handles every one: a key typed before it loads never lands in a URL); no frame may hold
/// the console (a key typed into a framed page could be phished); the key never leaves in a referrer.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
     connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The OpenAPI 3.1 document of every HTTP route of the stack: a client can be generated from it,
/// and the tests hold every route's answers to it.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
const OPENAPI: &str = include_str!("../openapi.json");

/// The document at [`OPENAPI_PATH`], served without a key (it holds no data).
pub fn openapi() -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-content-type-options", "nosniff")
        .body(Body::Text(OPENAPI.to_string()))
        .unwrap_or_else(|_| Problem::new(500, "Internal Server Error").into_response())
}

/// Whether `path` is the console's.
pub fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// The file at `path` (`/console/` is the page), or 404.
pub fn serve(path: &str) -> Response<Body> {
    let path = if path == "/console/" { "/console" } else { path };
    let Some((_, content_type, content)) = ASSETS.iter().find(|(asset, _, _)| *asset == path) else {
        return Problem::new(404, "Not Found").into_response();
    };
    Response::builder()
        .status(200)
        .header("content-type", *content_type)
        .header("content-security-policy", CONTENT_SECURITY_POLICY)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-cache")
        .body(Body::Text((*content).to_string()))
        .unwrap_or_else(|_| Problem::new(500, "Internal Server Error").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_its_own_files_and_every_file_is_served() {
        let page = ASSETS[0].2;
        for (path, _, _) in &ASSETS[1..] {
            assert!(page.contains(&format!("\"{path}\"")), "{path} is not linked from the page");
        }
        // Nothing from elsewhere: no absolute URL in any file.
        for (path, _, content) in &ASSETS {
            assert!(!content.contains("http://") && !content.contains("https://"), "{path} names another origin");
        }
        for (path, content_type, _) in &ASSETS {
            let response = serve(path);
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["content-type"], *content_type);
            assert!(response.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        }
        assert_eq!(serve("/console/").status(), 200);
        assert_eq!(serve("/console/secrets.json").status(), 404);
        assert!(is_console("/console") && is_console("/console/console.js") && !is_console("/consoles"));
    }
}
