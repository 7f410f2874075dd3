//! Structured JSON logs for every function.
//!
//! One JSON object per line; the Lambda runtime's invocation span (request id, X-Ray trace id) is
//! attached to every line logged while handling an invocation. The level comes from `RUST_LOG`, else
//! from `AWS_LAMBDA_LOG_LEVEL` (set by the function's `LoggingConfig`), else `info`.
//!
//! The filter is tracing-subscriber's `Targets` (`level` and `target=level`, comma-separated), not
//! its `EnvFilter`: the span and field filters of the latter need a regex engine, linked into every
//! bootstrap for a syntax the functions' operators do not use (docs/performance.md#bootstrap-sizes).

use std::str::FromStr;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init() {
    let filter =
        filter(std::env::var("RUST_LOG").ok().as_deref(), std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .with_ansi(false);
    // `try_init`: a second call (tests, benches) keeps the first subscriber instead of panicking.
    let _ = tracing_subscriber::registry().with(json).with(filter).try_init();
}

/// `RUST_LOG` when it parses (`info`, `warn,tributary=debug`), else Lambda's level (one of `TRACE`,
/// `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`: the last is tracing's `error`), else `info`.
pub fn filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> Targets {
    // Empty directives are skipped (`debug,`): `Targets` would read one as `error`, for every target.
    let from_rust_log = rust_log
        .map(|text| text.split(',').map(str::trim).filter(|directive| !directive.is_empty()).collect::<Vec<_>>())
        .filter(|directives| !directives.is_empty())
        .and_then(|directives| Targets::from_str(&directives.join(",")).ok());
    let from_lambda = || {
        let level = lambda_level?.trim();
        let level = if level.eq_ignore_ascii_case("fatal") { "error" } else { level };
        LevelFilter::from_str(level).ok().map(|level| Targets::new().with_default(level))
    };
    from_rust_log.or_else(from_lambda).unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled(filter: &Targets, target: &str, level: Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn rust_log_wins_with_its_per_target_levels() {
        let filter = filter(Some("warn,processor=debug"), Some("ERROR"));
        assert!(enabled(&filter, "processor::handler", Level::DEBUG));
        assert!(!enabled(&filter, "processor::handler", Level::TRACE));
        assert!(enabled(&filter, "aws_smithy_runtime", Level::WARN));
        assert!(!enabled(&filter, "aws_smithy_runtime", Level::INFO));
    }

    #[test]
    fn empty_directives_and_spaces_are_skipped() {
        let filter = filter(Some(" debug, ,"), None);
        assert!(enabled(&filter, "webhook", Level::DEBUG));
        assert!(!enabled(&filter, "webhook", Level::TRACE));
    }

    #[test]
    fn lambdas_level_applies_when_rust_log_is_absent_empty_or_unreadable() {
        for rust_log in [None, Some(""), Some(" , "), Some("processor=loud")] {
            let filter = filter(rust_log, Some("DEBUG"));
            assert!(enabled(&filter, "webhook", Level::DEBUG), "{rust_log:?}");
            assert!(!enabled(&filter, "webhook", Level::TRACE), "{rust_log:?}");
        }
    }

    #[test]
    fn lambdas_fatal_is_error_and_anything_else_unknown_is_info() {
        let fatal = filter(None, Some("FATAL"));
        assert!(enabled(&fatal, "webhook", Level::ERROR));
        assert!(!enabled(&fatal, "webhook", Level::WARN));
        for lambda_level in [None, Some("LOUD")] {
            let filter = filter(None, lambda_level);
            assert!(enabled(&filter, "webhook", Level::INFO), "{lambda_level:?}");
            assert!(!enabled(&filter, "webhook", Level::DEBUG), "{lambda_level:?}");
        }
    }
}
