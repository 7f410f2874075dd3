//! Typed configuration read once at start-up.
//!
//! Every function parses its configuration from an [`Env`]: the process environment in `main`,
//! a map in tests (so tests never mutate the process environment, which is shared by parallel
//! tests). Errors name the variable, so a bad deployment fails at cold start with a clear message.

use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(String),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: String, reason: String },
}

impl ConfigError {
    pub fn invalid(name: &str, reason: impl ToString) -> Self {
        Self::Invalid { name: name.to_string(), reason: reason.to_string() }
    }
}

/// Where configuration values come from.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;

    /// The value, required and not blank.
    fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name).ok_or_else(|| ConfigError::Missing(name.to_string()))
    }

    /// The value if set and not blank.
    fn optional(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// A comma- or space-separated list; empty when unset.
    fn list(&self, name: &str) -> Vec<String> {
        self.optional(name)
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The value parsed with `FromStr`, or `default` when unset.
    fn parsed_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| ConfigError::invalid(name, e)),
        }
    }
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn errors_name_the_variable() {
        let e = env(&[("BLANK", "  "), ("NUM", "x")]);
        assert_eq!(e.required("NOPE").unwrap_err().to_string(), "missing environment variable NOPE");
        assert_eq!(e.required("BLANK").unwrap_err(), ConfigError::Missing("BLANK".into()));
        let invalid = e.parsed_or::<u64>("NUM", 1).unwrap_err().to_string();
        assert!(invalid.starts_with("environment variable NUM is invalid"), "{invalid}");
        assert_eq!(e.parsed_or::<u64>("UNSET", 7).unwrap(), 7);
    }
}
