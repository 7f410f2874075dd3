//! The stack's OpenAPI document (`functions/api/openapi.json`) as the tests hold the routes to it:
//! every route of the template is in it and back, and an answer of a route conforms to what the
//! document says of that route, status and media type (JSON bodies against their schema).

use crate::{Template, workspace_root};
use serde_json::Value;

/// The document, as served by `GET /api/v1/openapi.json`.
pub fn document() -> Result<Value, String> {
    let path = workspace_root().join("functions/api/openapi.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every `(METHOD, path)` of the template's `HttpApi` events, sorted.
pub fn template_routes(template: &Template) -> Vec<(String, String)> {
    let mut routes: Vec<(String, String)> = template
        .resources_of_type("AWS::Serverless::Function")
        .flat_map(|(_, function)| {
            function["Properties"]["Events"].as_object().into_iter().flatten().filter_map(|(_, event)| {
                let properties = &event["Properties"];
                (event["Type"] == "HttpApi").then(|| {
                    (
                        properties["Method"].as_str().unwrap_or_default().to_ascii_uppercase(),
                        properties["Path"].as_str().unwrap_or_default().to_string(),
                    )
                })
            })
        })
        .collect();
    routes.sort();
    routes
}

/// Every `(METHOD, path)` the document describes, sorted.
pub fn document_routes(document: &Value) -> Vec<(String, String)> {
    let mut routes: Vec<(String, String)> = document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| {
            item.as_object().into_iter().flatten().map(move |(method, _)| (method.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    routes.sort();
    routes
}

/// Whether an answer of `method path` (the document's path, `{id}` and all) conforms: its status
/// is listed, its media type is one the document gives for that status, and a JSON body is valid
/// against the schema given for it.
pub fn check_answer(
    document: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<(), String> {
    let what = format!("{method} {path} → {status} {content_type}");
    let operation = &document["paths"][path][method.to_ascii_lowercase()];
    if operation.is_null() {
        return Err(format!("{what}: the document has no such operation"));
    }
    let response = &operation["responses"][status.to_string()];
    if response.is_null() {
        return Err(format!("{what}: the document lists no such status"));
    }
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let Some(schema) = response["content"].get(media_type).map(|content| &content["schema"]) else {
        return Err(format!("{what}: the document gives no such media type for it"));
    };
    if !media_type.ends_with("json") {
        return Ok(());
    }
    let answer: Value = serde_json::from_slice(body).map_err(|e| format!("{what}: the body is not JSON: {e}"))?;
    // The schema with the document's components beside it, so that its `$ref`s resolve.
    let mut root = schema.clone();
    if let Value::Object(fields) = &mut root {
        fields.insert("components".into(), document["components"].clone());
    }
    // Formats (`date-time`, `date`) are checked too: jsonschema leaves them out by default.
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("{what}: the schema does not compile: {e}"))?;
    let errors: Vec<String> =
        validator.iter_errors(&answer).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(format!("{what}: {}\n  answer: {answer}", errors.join("; "))) }
}
