//! The webhook receiver's configuration, parsed once at cold start, and the secrets it names.

use crate::sources::make::MakeFields;
use crate::sources::standard_webhooks::StandardVerifier;
use crate::sources::stripe::StripeVerifier;
use crate::sources::{TokenVerifier, Tolerance, split_secret_list};
use jiff::SignedDuration;
use serde::Deserialize;
use std::collections::HashMap;
use tributary_domain::config::{ConfigError, Env};
use tributary_domain::event::RESERVED_SOURCE_NAMES;
use tributary_domain::ports::{PortError, SNS_MAX_MESSAGE_BYTES, SecretSource};

/// A Standard Webhooks sender, as configured in `WEBHOOK_SOURCES`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Route segment: `POST /webhooks/{name}`; also the event's `source`.
    pub name: String,
    /// SSM parameter holding the `whsec_…` secret(s).
    pub secret_param: String,
    /// Dotted path of the payload field that names the customer (an e-mail or an id).
    #[serde(default)]
    pub subject_field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub dedup_table: String,
    /// Where deliveries are counted by source, outcome and hour.
    pub ingestion_table: String,
    pub archive_bucket: String,
    pub events_topic_arn: String,
    pub stripe_secret_param: Option<String>,
    pub make_token_param: Option<String>,
    pub make_token_header: String,
    pub make_fields: MakeFields,
    pub personnage_token_param: Option<String>,
    pub sources: Vec<SourceConfig>,
    /// The SSM path every source's `secret_param` lies under: the function's role may read the
    /// parameters under it and the three it names, nothing else.
    pub source_secrets_path: String,
    /// How long secrets are used before they are read again.
    pub secrets_max_age: SignedDuration,
    pub limits: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub tolerance: Tolerance,
    pub max_body_bytes: usize,
    pub dedup_ttl: SignedDuration,
    pub in_progress_timeout: SignedDuration,
}

/// Every environment variable [`WebhookConfig::from_env`] reads (the README's configuration table).
pub const ENVIRONMENT: [&str; 18] = [
    "DEDUP_TABLE",
    "INGESTION_TABLE",
    "ARCHIVE_BUCKET",
    "EVENTS_TOPIC_ARN",
    "STRIPE_SECRET_PARAM",
    "MAKE_TOKEN_PARAM",
    "MAKE_TOKEN_HEADER",
    "MAKE_ID_FIELD",
    "MAKE_SUBJECT_FIELD",
    "PERSONNAGE_TOKEN_PARAM",
    "WEBHOOK_SOURCES",
    "WEBHOOK_SOURCE_SECRETS_PATH",
    "SECRETS_MAX_AGE_SECONDS",
    "SIGNATURE_TOLERANCE_SECONDS",
    "MAX_BODY_BYTES",
    "DEDUP_TTL_HOURS",
    "IN_PROGRESS_TIMEOUT_SECONDS",
    // Read by the telemetry set-up rather than here; listed so the template may set it.
    "RUST_LOG",
];

/// Where the Standard Webhooks sources' secrets live unless `WEBHOOK_SOURCE_SECRETS_PATH` says.
pub const DEFAULT_SOURCE_SECRETS_PATH: &str = "/tributary/webhook-sources/";

/// Dedup markers must outlive every sender's retry window: Stripe retries for up to 3 days.
pub const MIN_DEDUP_TTL_HOURS: i64 = 96;

fn valid_source_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !RESERVED_SOURCE_NAMES.contains(&name)
}

/// The Standard Webhooks senders of `WEBHOOK_SOURCES`, their names checked.
pub fn sources_from_env(env: &impl Env) -> Result<Vec<SourceConfig>, ConfigError> {
    let sources: Vec<SourceConfig> = match env.optional("WEBHOOK_SOURCES") {
        None => Vec::new(),
        Some(json) => serde_json::from_str(&json).map_err(|e| ConfigError::invalid("WEBHOOK_SOURCES", e))?,
    };
    for (index, source) in sources.iter().enumerate() {
        if !valid_source_name(&source.name) {
            return Err(ConfigError::invalid(
                "WEBHOOK_SOURCES",
                format!(
                    "source {index} (`{}`): a name is 1-40 of a-z 0-9 - and not one of the product's own \
                     event families ({})",
                    source.name,
                    RESERVED_SOURCE_NAMES.join(", ")
                ),
            ));
        }
        if sources[..index].iter().any(|other| other.name == source.name) {
            return Err(ConfigError::invalid("WEBHOOK_SOURCES", format!("source `{}` is listed twice", source.name)));
        }
    }

    Ok(sources)
}

/// Where a Make delivery keeps its id and subject (`MAKE_ID_FIELD`, `MAKE_SUBJECT_FIELD`).
pub fn make_fields_from_env(env: &impl Env) -> MakeFields {
    MakeFields {
        id_field: env.optional("MAKE_ID_FIELD").unwrap_or_else(|| "id".into()),
        subject_field: env.optional("MAKE_SUBJECT_FIELD").unwrap_or_else(|| "email".into()),
    }
}

impl WebhookConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let sources = sources_from_env(env)?;
        let source_secrets_path =
            env.optional("WEBHOOK_SOURCE_SECRETS_PATH").unwrap_or_else(|| DEFAULT_SOURCE_SECRETS_PATH.into());
        if !(source_secrets_path.starts_with('/') && source_secrets_path.ends_with('/')) {
            return Err(ConfigError::invalid("WEBHOOK_SOURCE_SECRETS_PATH", "must start and end with /"));
        }
        if let Some(source) = sources.iter().find(|s| !s.secret_param.starts_with(&source_secrets_path)) {
            return Err(ConfigError::invalid(
                "WEBHOOK_SOURCES",
                format!(
                    "source `{}`: its secret_param `{}` must be under WEBHOOK_SOURCE_SECRETS_PATH `{source_secrets_path}` \
                     (the function may read no other parameter for its sources)",
                    source.name, source.secret_param
                ),
            ));
        }
        let dedup_ttl_hours: i64 = env.parsed_or("DEDUP_TTL_HOURS", 168)?;
        if dedup_ttl_hours < MIN_DEDUP_TTL_HOURS {
            return Err(ConfigError::invalid("DEDUP_TTL_HOURS", format!("must be at least {MIN_DEDUP_TTL_HOURS}")));
        }
        let max_body_bytes: usize = env.parsed_or("MAX_BODY_BYTES", SNS_MAX_MESSAGE_BYTES)?;
        if max_body_bytes == 0 || max_body_bytes > SNS_MAX_MESSAGE_BYTES {
            return Err(ConfigError::invalid("MAX_BODY_BYTES", format!("must be 1 to {SNS_MAX_MESSAGE_BYTES}")));
        }
        let tolerance_seconds: i64 = env.parsed_or("SIGNATURE_TOLERANCE_SECONDS", 300)?;
        if !(1..=86_400).contains(&tolerance_seconds) {
            return Err(ConfigError::invalid("SIGNATURE_TOLERANCE_SECONDS", "must be 1 to 86400"));
        }
        let in_progress_seconds: i64 = env.parsed_or("IN_PROGRESS_TIMEOUT_SECONDS", 60)?;
        if !(1..=900).contains(&in_progress_seconds) {
            return Err(ConfigError::invalid("IN_PROGRESS_TIMEOUT_SECONDS", "must be 1 to 900"));
        }

        Ok(Self {
            dedup_table: env.required("DEDUP_TABLE")?,
            archive_bucket: env.required("ARCHIVE_BUCKET")?,
            events_topic_arn: env.required("EVENTS_TOPIC_ARN")?,
            ingestion_table: env.required("INGESTION_TABLE")?,
            stripe_secret_param: env.optional("STRIPE_SECRET_PARAM"),
            make_token_param: env.optional("MAKE_TOKEN_PARAM"),
            make_token_header: env.optional("MAKE_TOKEN_HEADER").unwrap_or_else(|| "x-make-token".into()),
            make_fields: make_fields_from_env(env),
            personnage_token_param: env.optional("PERSONNAGE_TOKEN_PARAM"),
            sources,
            source_secrets_path,
            secrets_max_age: tributary_domain::secrets::max_age_from_env(env)?,
            limits: Limits {
                tolerance: Tolerance { seconds: tolerance_seconds },
                max_body_bytes,
                dedup_ttl: SignedDuration::from_hours(dedup_ttl_hours),
                in_progress_timeout: SignedDuration::from_secs(in_progress_seconds),
            },
        })
    }

    /// Every SSM parameter the receiver reads at cold start.
    pub fn secret_params(&self) -> Vec<String> {
        let mut names: Vec<String> = [&self.stripe_secret_param, &self.make_token_param, &self.personnage_token_param]
            .into_iter()
            .flatten()
            .cloned()
            .chain(self.sources.iter().map(|s| s.secret_param.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The replay job's configuration (`webhook-replay`): the receiver's normalisation settings, not
/// its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayConfig {
    pub archive_bucket: String,
    pub events_topic_arn: String,
    /// Where runs are recorded.
    pub ingestion_table: String,
    /// Where the job sends its own continuation when the deadline comes first.
    pub replay_queue_url: String,
    pub sources: Vec<SourceConfig>,
    pub make_fields: MakeFields,
}

/// Every environment variable [`ReplayConfig::from_env`] reads.
pub const REPLAY_ENVIRONMENT: [&str; 7] = [
    "ARCHIVE_BUCKET",
    "EVENTS_TOPIC_ARN",
    "INGESTION_TABLE",
    "REPLAY_QUEUE_URL",
    "WEBHOOK_SOURCES",
    "MAKE_ID_FIELD",
    "MAKE_SUBJECT_FIELD",
];

impl ReplayConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            archive_bucket: env.required("ARCHIVE_BUCKET")?,
            events_topic_arn: env.required("EVENTS_TOPIC_ARN")?,
            ingestion_table: env.required("INGESTION_TABLE")?,
            replay_queue_url: env.required("REPLAY_QUEUE_URL")?,
            sources: sources_from_env(env)?,
            make_fields: make_fields_from_env(env),
        })
    }

    /// How deliveries are normalised, as the receiver configured alike does.
    pub fn normaliser(&self) -> crate::replay::Normaliser {
        crate::replay::Normaliser {
            standard: self.sources.iter().map(|s| (s.name.clone(), s.subject_field.clone())).collect(),
            make_fields: self.make_fields.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading secrets: {0}")]
    Secrets(#[from] PortError),
    #[error("secret parameter {0} is empty or not in the expected format")]
    BadSecret(String),
}

/// A configured Standard Webhooks sender with its verifier.
#[derive(Debug, Clone)]
pub struct StandardSource {
    pub verifier: StandardVerifier,
    pub subject_field: Option<String>,
}

/// How `POST /webhooks/make` is authenticated.
#[derive(Debug, Clone)]
pub enum MakeAuth {
    Token {
        verifier: TokenVerifier,
        fields: MakeFields,
    },
    /// `make` is also a Standard Webhooks source: its signature is checked instead of a token.
    Standard,
}

/// Everything a delivery is checked against: verifiers built from the secrets, and the limits.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub stripe: Option<StripeVerifier>,
    pub make: Option<MakeAuth>,
    pub personnage: Option<TokenVerifier>,
    pub sources: HashMap<String, StandardSource>,
    /// A verifier with a random key, for deliveries to senders that are not configured: they are
    /// checked like the others and fail alike, so answers and timing do not reveal configured names.
    pub decoy: StandardVerifier,
    pub limits: Limits,
}

/// A Standard Webhooks verifier whose key nobody holds (two random UUIDs' worth of bytes).
fn decoy_verifier(tolerance: Tolerance) -> StandardVerifier {
    let key = [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat();
    StandardVerifier::with_key(&key, tolerance)
}

impl Receiver {
    /// Reads the named secrets once and builds the verifiers; any missing or malformed secret stops
    /// the cold start with a message naming the parameter.
    pub async fn load(config: &WebhookConfig, secrets: &impl SecretSource) -> Result<Self, StartupError> {
        let values = secrets.get_secrets(&config.secret_params()).await?;
        let secret_list = |param: &String| -> Result<Vec<String>, StartupError> {
            let list = values.get(param).map(|v| split_secret_list(v)).unwrap_or_default();
            if list.is_empty() { Err(StartupError::BadSecret(param.clone())) } else { Ok(list) }
        };
        let tolerance = config.limits.tolerance;

        let mut sources = HashMap::new();
        for source in &config.sources {
            let verifier = StandardVerifier::new(&secret_list(&source.secret_param)?, tolerance)
                .map_err(|_| StartupError::BadSecret(source.secret_param.clone()))?;
            sources
                .insert(source.name.clone(), StandardSource { verifier, subject_field: source.subject_field.clone() });
        }
        let make = if sources.contains_key("make") {
            Some(MakeAuth::Standard)
        } else {
            match &config.make_token_param {
                Some(param) => Some(MakeAuth::Token {
                    verifier: TokenVerifier::new(&config.make_token_header, "", &secret_list(param)?),
                    fields: config.make_fields.clone(),
                }),
                None => None,
            }
        };
        Ok(Self {
            stripe: match &config.stripe_secret_param {
                Some(param) => Some(StripeVerifier::new(secret_list(param)?, tolerance)),
                None => None,
            },
            make,
            personnage: match &config.personnage_token_param {
                Some(param) => Some(TokenVerifier::new("authorization", "Bearer ", &secret_list(param)?)),
                None => None,
            },
            sources,
            decoy: decoy_verifier(tolerance),
            limits: config.limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_testing::memory::InMemorySecrets;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("DEDUP_TABLE", "t"),
            ("ARCHIVE_BUCKET", "b"),
            ("EVENTS_TOPIC_ARN", "arn:aws:sns:us-east-1:1:events"),
            ("INGESTION_TABLE", "i"),
        ]
    }

    #[test]
    fn defaults_and_missing_variables() {
        let config = WebhookConfig::from_env(&env(&base())).unwrap();
        assert_eq!(config.limits.max_body_bytes, 262_144);
        assert_eq!(config.limits.tolerance.seconds, 300);
        assert_eq!(config.limits.dedup_ttl, SignedDuration::from_hours(168));
        assert_eq!(config.make_token_header, "x-make-token");
        let missing = WebhookConfig::from_env(&env(&base()[..2])).unwrap_err();
        assert_eq!(missing.to_string(), "missing environment variable EVENTS_TOPIC_ARN");
    }

    /// Every variable `from_env` reads is in [`ENVIRONMENT`]: a recording `Env` sees each lookup.
    #[test]
    fn environment_lists_every_variable_read() {
        struct Recording(std::sync::Mutex<Vec<String>>, HashMap<String, String>);
        impl Env for Recording {
            fn get(&self, name: &str) -> Option<String> {
                self.0.lock().unwrap().push(name.to_string());
                self.1.get(name).cloned()
            }
        }
        let recording = Recording(Default::default(), env(&base()));
        WebhookConfig::from_env(&recording).unwrap();
        let read = recording.0.into_inner().unwrap();
        for name in &read {
            assert!(ENVIRONMENT.contains(&name.as_str()), "{name} is read but not listed");
        }
        for name in ENVIRONMENT.iter().filter(|n| **n != "RUST_LOG") {
            assert!(read.iter().any(|r| r == name), "{name} is listed but never read");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let with = |k: &'static str, v: &'static str| {
            let mut pairs = base();
            pairs.push((k, v));
            WebhookConfig::from_env(&env(&pairs)).unwrap_err().to_string()
        };
        assert!(with("DEDUP_TTL_HOURS", "95").contains("DEDUP_TTL_HOURS"));
        assert!(with("MAX_BODY_BYTES", "300000").contains("MAX_BODY_BYTES"));
        assert!(with("WEBHOOK_SOURCES", "{").contains("WEBHOOK_SOURCES"));
        assert!(with("WEBHOOK_SOURCES", r#"[{"name":"stripe","secret_param":"/p"}]"#).contains("WEBHOOK_SOURCES"));
        // A source's secret outside the sources' path: the role could not read it.
        let outside = with("WEBHOOK_SOURCES", r#"[{"name":"acme","secret_param":"/tributary/api-key-hashes"}]"#);
        assert!(outside.contains("must be under WEBHOOK_SOURCE_SECRETS_PATH"), "{outside}");
        // A sender named after one of the product's own families could forge its events.
        for reserved in RESERVED_SOURCE_NAMES {
            let sources = format!(r#"[{{"name":"{reserved}","secret_param":"/tributary/webhook-sources/p"}}]"#);
            let mut pairs = base();
            pairs.push(("WEBHOOK_SOURCES", &sources));
            let error = WebhookConfig::from_env(&env(&pairs)).unwrap_err().to_string();
            assert!(error.contains(&format!("`{reserved}`")) && error.contains("own event families"), "{error}");
        }
        assert!(
            with(
                "WEBHOOK_SOURCES",
                r#"[{"name":"a","secret_param":"/tributary/webhook-sources/p"},{"name":"a","secret_param":"/tributary/webhook-sources/q"}]"#
            )
                .contains("twice")
        );
        assert!(with("SIGNATURE_TOLERANCE_SECONDS", "0").contains("SIGNATURE_TOLERANCE_SECONDS"));
    }

    #[tokio::test]
    async fn receiver_loads_every_named_secret_once() {
        let mut pairs = base();
        pairs.extend([
            ("STRIPE_SECRET_PARAM", "/s"),
            ("MAKE_TOKEN_PARAM", "/m"),
            ("PERSONNAGE_TOKEN_PARAM", "/p"),
            ("WEBHOOK_SOURCES", r#"[{"name":"acme","secret_param":"/w/a","subject_field":"data.email"}]"#),
            ("WEBHOOK_SOURCE_SECRETS_PATH", "/w/"),
        ]);
        let config = WebhookConfig::from_env(&env(&pairs)).unwrap();
        assert_eq!(config.secret_params(), vec!["/m", "/p", "/s", "/w/a"]);
        let secrets = InMemorySecrets {
            values: [("/s", "whsec_x"), ("/m", "tok"), ("/p", "ptok"), ("/w/a", "whsec_YWJj")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let receiver = Receiver::load(&config, &secrets).await.unwrap();
        assert!(receiver.stripe.is_some() && receiver.personnage.is_some());
        assert!(matches!(receiver.make, Some(MakeAuth::Token { .. })));
        assert!(receiver.sources.contains_key("acme"));

        let mut bad = secrets.values.clone();
        bad.insert("/w/a".into(), "not base64 !!".into());
        let error = Receiver::load(&config, &InMemorySecrets { values: bad }).await.unwrap_err();
        assert_eq!(error.to_string(), "secret parameter /w/a is empty or not in the expected format");
        let mut missing = secrets.values.clone();
        missing.remove("/m");
        assert!(Receiver::load(&config, &InMemorySecrets { values: missing }).await.is_err());
    }
}
