//! Metrics in CloudWatch Embedded Metric Format (EMF): one JSON object per invocation on stdout,
//! which CloudWatch Logs turns into metrics of the `Tributary` namespace, by function. No
//! `PutMetricData` call: nothing is added to an invocation's latency or bill, and a metric line is
//! also a log line that carries the request id, to search with Logs Insights.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "Tributary";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// The metrics of one invocation of `function` (the `function` dimension).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    function: &'static str,
    values: Vec<(&'static str, f64, Unit)>,
}

impl Metrics {
    pub fn new(function: &'static str) -> Self {
        Self { function, values: Vec::new() }
    }

    pub fn count(mut self, name: &'static str, value: impl Into<u64>) -> Self {
        // Metric values are doubles in EMF; counts stay far below 2^53.
        self.values.push((name, value.into() as f64, Unit::Count));
        self
    }

    pub fn milliseconds(mut self, name: &'static str, value: f64) -> Self {
        self.values.push((name, value, Unit::Milliseconds));
        self
    }

    /// The EMF document: `_aws` metadata naming each metric and its unit, the dimension, the
    /// values, and the request id as a plain property.
    pub fn document(&self, request_id: &str, at: Timestamp) -> Value {
        let definitions: Vec<Value> =
            self.values.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.name()})).collect();
        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": at.as_millisecond(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["function"]],
                    "Metrics": definitions,
                }]
            }),
        );
        document.insert("function".into(), Value::from(self.function));
        document.insert("request_id".into(), Value::from(request_id));
        for (name, value, _) in &self.values {
            document.insert((*name).into(), json!(value));
        }
        Value::Object(document)
    }

    /// Writes the document as one line on stdout, where Lambda's log agent picks it up (a JSON
    /// line is passed through as it is by the JSON log format).
    pub fn emit(&self, request_id: &str) {
        if !self.values.is_empty() {
            println!("{}", self.document(request_id, Timestamp::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_declares_every_value_it_carries() {
        let at: Timestamp = "2026-11-23T09:00:00Z".parse().unwrap();
        let document = Metrics::new("webhook")
            .count("events_received", 1u32)
            .count("duplicates", 0u32)
            .milliseconds("duration", 12.5)
            .document("req-1", at);
        assert_eq!(document["_aws"]["Timestamp"], 1_795_424_400_000i64);
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Tributary");
        assert_eq!(directive["Dimensions"], json!([["function"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "events_received", "Unit": "Count"},
                {"Name": "duplicates", "Unit": "Count"},
                {"Name": "duration", "Unit": "Milliseconds"}
            ])
        );
        // Every declared metric and dimension has its value at the top level (the EMF rule).
        assert_eq!(document["function"], "webhook");
        assert_eq!(document["events_received"], 1.0);
        assert_eq!(document["duplicates"], 0.0);
        assert_eq!(document["duration"], 12.5);
        assert_eq!(document["request_id"], "req-1");
    }
}
