//! Structured JSON logs for every function.
//!
//! One JSON object per line; the Lambda runtime's invocation span (request id, X-Ray trace id) is
//! attached to every line logged while handling an invocation. The level comes from `RUST_LOG`, else
//! from `AWS_LAMBDA_LOG_LEVEL` (set by the function's `LoggingConfig`), else `info`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_from_env("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init`: a second call (tests, benches) keeps the first subscriber instead of panicking.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
