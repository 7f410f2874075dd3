//! A function for testing the local Lambda (`src/local_lambda.rs`), not deployed: it answers what
//! it received and what Lambda told it, and misbehaves on request, so that the tests can check each
//! route of the Runtime API without AWS.
//!
//! - `{"fail": "message"}` returns a handler error;
//! - `{"exit": code}` exits the process in the middle of the invocation;
//! - `{"sleep_ms": n}` waits that long before answering (an invocation that stays in flight);
//! - an event with `rawPath` (a function URL's) gets a payload 2.0 answer, status 201, echoing it;
//! - any other event is echoed with the context (request id, deadline, ARN), the environment and
//!   the process id.
//!
//! `PROBE_FAIL_INIT=1` makes the process exit before it asks for its first event.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if let Some(message) = payload.get("fail").and_then(Value::as_str) {
        return Err(message.into());
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(i32::try_from(code).unwrap_or(1));
    }
    if let Some(wait) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
    if payload.get("rawPath").is_some() {
        return Ok(json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-probe": "yes"},
            "cookies": ["probe=1; Path=/"],
            "body": payload.to_string(),
            "isBase64Encoded": false,
        }));
    }
    let environment: serde_json::Map<String, Value> = std::env::vars().map(|(k, v)| (k, Value::String(v))).collect();
    Ok(json!({
        "event": payload,
        "request_id": context.request_id,
        "deadline_ms": context.deadline,
        "function_arn": context.invoked_function_arn,
        "environment": environment,
        "pid": std::process::id(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    if std::env::var("PROBE_FAIL_INIT").as_deref() == Ok("1") {
        eprintln!("probe: failing its init on purpose");
        std::process::exit(3);
    }
    run(service_fn(handle)).await
}
