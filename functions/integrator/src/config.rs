//! The integrator's configuration: a few environment variables and the integrations document
//! (JSON or YAML), read from SSM at cold start with the secrets it names.

use crate::handler::{Deps, http_client};
use crate::push::Backoff;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tributary_aws::{self as aws, DynamoDbCustomers, DynamoDbSyncStore, SdkConfig, SqsDeadLetters};
use tributary_domain::config::{ConfigError, Env};
use tributary_domain::customer::record::field_policy;
use tributary_domain::ports::{PortError, SecretSource};
use tributary_domain::secrets::Refreshing;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegratorConfig {
    pub customer_table: String,
    /// Where pushes are counted by integration, outcome and hour.
    pub ingestion_table: String,
    pub dead_letter_queue_url: String,
    /// SSM parameter holding the integrations document; none configured when unset.
    pub integrations_param: Option<String>,
    /// Plain `http` and loopback addresses allowed: for tests and the local stack only.
    pub allow_loopback: bool,
    /// The SSM path every integration's `auth.secret_param` lies under: the function's role may
    /// read the parameters under it and the integrations document, nothing else.
    pub secrets_path: String,
    /// How long the integrations and their secrets are used before they are read again.
    pub secrets_max_age: jiff::SignedDuration,
}

/// Where the integrations' secrets live unless `INTEGRATION_SECRETS_PATH` says.
pub const DEFAULT_SECRETS_PATH: &str = "/tributary/integrations/";

/// Every environment variable [`IntegratorConfig::from_env`] reads (the README's table).
pub const ENVIRONMENT: [&str; 7] = [
    "CUSTOMER_TABLE",
    "INGESTION_TABLE",
    "DEAD_LETTER_QUEUE_URL",
    "INTEGRATIONS_PARAM",
    "INTEGRATIONS_ALLOW_LOOPBACK",
    "INTEGRATION_SECRETS_PATH",
    "SECRETS_MAX_AGE_SECONDS",
];

/// The integrator over AWS: what `main.rs` runs, and what the cross-function tests run over moto.
pub type AwsDeps = Deps<DynamoDbCustomers, SqsDeadLetters, DynamoDbSyncStore>;

impl IntegratorConfig {
    /// The integrator's adapters, each client built once from `sdk`, pushing to `integrations`.
    pub fn aws_deps(&self, sdk: &SdkConfig, integrations: Refreshing<LoadedIntegrations>) -> reqwest::Result<AwsDeps> {
        Ok(Deps {
            integrations,
            client: http_client(self.allow_loopback)?,
            store: DynamoDbCustomers::new(aws::dynamodb_client(sdk), &self.customer_table),
            dead_letters: SqsDeadLetters::new(aws::sqs_client(sdk), &self.dead_letter_queue_url),
            tallies: DynamoDbSyncStore::new(aws::dynamodb_client(sdk), &self.ingestion_table),
            allow_loopback: self.allow_loopback,
            backoff: Backoff::default(),
        })
    }

    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let secrets_path = env.optional("INTEGRATION_SECRETS_PATH").unwrap_or_else(|| DEFAULT_SECRETS_PATH.into());
        if !(secrets_path.starts_with('/') && secrets_path.ends_with('/')) {
            return Err(ConfigError::invalid("INTEGRATION_SECRETS_PATH", "must start and end with /"));
        }
        Ok(Self {
            customer_table: env.required("CUSTOMER_TABLE")?,
            ingestion_table: env.required("INGESTION_TABLE")?,
            dead_letter_queue_url: env.required("DEAD_LETTER_QUEUE_URL")?,
            integrations_param: env.optional("INTEGRATIONS_PARAM"),
            allow_loopback: env.parsed_or("INTEGRATIONS_ALLOW_LOOPBACK", false)?,
            secrets_path,
            secrets_max_age: tributary_domain::secrets::max_age_from_env(env)?,
        })
    }
}

/// The integrations document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IntegrationsDocument {
    /// Hosts pushes may go to (exact names, case-insensitive); every integration's host must be one.
    pub allowed_hosts: Vec<String>,
    #[serde(default)]
    pub integrations: Vec<Integration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Post,
    Put,
    Patch,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// Names the integration in idempotency keys and audit entries: 1-40 of a-z 0-9 - _.
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub method: Method,
    /// Record fields whose change triggers a push: exact paths, or prefixes ending in `*`
    /// (`identity.*`).
    pub on_fields: Vec<String>,
    /// Request body: output key → record field path, or `$customer_id` / `$version`.
    pub body: BTreeMap<String, String>,
    #[serde(default)]
    pub auth: Option<AuthHeader>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_max_attempts() -> u32 {
    4
}

/// A header whose value is a secret, e.g. `Authorization: Bearer <token>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthHeader {
    pub header: String,
    /// SSM parameter holding the secret.
    pub secret_param: String,
    #[serde(default)]
    pub prefix: String,
}

/// What all attempts of one push may take together, waits included: the function's timeout
/// (60 s in `template.yaml`, a test checks) less a margin to write the audit entry.
pub const PUSH_BUDGET: Duration = Duration::from_secs(55);

/// The special body sources besides record fields.
pub const CUSTOMER_ID_SOURCE: &str = "$customer_id";
pub const VERSION_SOURCE: &str = "$version";

#[derive(Debug, thiserror::Error)]
pub enum IntegrationsError {
    #[error("the integrations document is not valid JSON or YAML: {0}")]
    Syntax(String),
    #[error("integration {index}: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("reading the integrations document or its secrets failed: {0}")]
    Secrets(#[from] PortError),
}

impl Integration {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Whether a change of `fields` concerns this integration.
    pub fn triggered_by(&self, fields: &[String]) -> bool {
        fields.iter().any(|field| {
            self.on_fields.iter().any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => field.starts_with(prefix),
                None => field == pattern,
            })
        })
    }

    fn validate(&self, allowed_hosts: &[String]) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 40
            && self.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!("name `{}` must be 1-40 of a-z 0-9 - _", self.name));
        }
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        let host = url.host_str().unwrap_or_default();
        if !allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
            return Err(format!("host `{host}` is not in allowed_hosts"));
        }
        if self.on_fields.is_empty() {
            return Err("on_fields must name at least one field".into());
        }
        for (key, source) in &self.body {
            let known = source == CUSTOMER_ID_SOURCE || source == VERSION_SOURCE || field_policy(source).is_some();
            if !known {
                return Err(format!("body.{key}: `{source}` is not a record field"));
            }
        }
        if !(100..=30_000).contains(&self.timeout_ms) {
            return Err("timeout_ms must be 100 to 30000".into());
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err("max_attempts must be 1 to 10".into());
        }
        let worst = self.timeout() * self.max_attempts + crate::push::MAX_RETRY_DELAY * (self.max_attempts - 1);
        if worst > PUSH_BUDGET {
            return Err(format!(
                "max_attempts × timeout_ms plus the waits between attempts ({} s) exceeds the {} s a push may take",
                worst.as_secs(),
                PUSH_BUDGET.as_secs()
            ));
        }
        if let Some(auth) = &self.auth {
            reqwest::header::HeaderName::from_bytes(auth.header.as_bytes())
                .map_err(|_| format!("auth.header `{}` is not a header name", auth.header))?;
        }
        Ok(())
    }
}

impl IntegrationsDocument {
    /// Parses and checks a document (YAML, of which JSON is a subset).
    pub fn parse(text: &str) -> Result<Self, IntegrationsError> {
        let document: Self = serde_yaml_ng::from_str(text).map_err(|e| IntegrationsError::Syntax(e.to_string()))?;
        for (index, integration) in document.integrations.iter().enumerate() {
            integration
                .validate(&document.allowed_hosts)
                .map_err(|reason| IntegrationsError::Invalid { index, reason })?;
            if document.integrations[..index].iter().any(|other| other.name == integration.name) {
                return Err(IntegrationsError::Invalid {
                    index,
                    reason: format!("name `{}` is used twice", integration.name),
                });
            }
        }
        Ok(document)
    }
}

/// The integrations and the secret values of their auth headers (loaded at cold start, and again
/// once older than `SECRETS_MAX_AGE_SECONDS`).
#[derive(Debug, Clone, Default)]
pub struct LoadedIntegrations {
    pub document: IntegrationsDocument,
    /// Secret value by SSM parameter name.
    pub secrets: HashMap<String, String>,
}

impl LoadedIntegrations {
    pub async fn load(config: &IntegratorConfig, source: &impl SecretSource) -> Result<Self, IntegrationsError> {
        let Some(param) = &config.integrations_param else { return Ok(Self::default()) };
        let values = source.get_secrets(std::slice::from_ref(param)).await?;
        let text = values.get(param).map(String::as_str).unwrap_or_default();
        let document = IntegrationsDocument::parse(text)?;
        for (index, integration) in document.integrations.iter().enumerate() {
            if let Some(auth) = integration.auth.as_ref().filter(|a| !a.secret_param.starts_with(&config.secrets_path))
            {
                return Err(IntegrationsError::Invalid {
                    index,
                    reason: format!(
                        "auth.secret_param `{}` must be under INTEGRATION_SECRETS_PATH `{}` (the function may read no \
                         other parameter for its integrations)",
                        auth.secret_param, config.secrets_path
                    ),
                });
            }
        }
        Self::from_document(document, source).await
    }

    pub async fn from_document(
        document: IntegrationsDocument,
        source: &impl SecretSource,
    ) -> Result<Self, IntegrationsError> {
        let mut names: Vec<String> =
            document.integrations.iter().filter_map(|i| i.auth.as_ref().map(|a| a.secret_param.clone())).collect();
        names.sort();
        names.dedup();
        let secrets = if names.is_empty() { HashMap::new() } else { source.get_secrets(&names).await? };
        Ok(Self { document, secrets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"
allowed_hosts: [crm.example.com]
integrations:
  - name: crm
    url: https://crm.example.com/v1/contacts
    on_fields: ["identity.*", lead.statut]
    body: {email: identity.email, id: $customer_id}
    auth: {header: Authorization, secret_param: /tributary/integrations/crm-token, prefix: "Bearer "}
"#;

    #[test]
    fn a_document_is_parsed_and_checked() {
        let document = IntegrationsDocument::parse(DOCUMENT).unwrap();
        let crm = &document.integrations[0];
        assert_eq!((crm.method, crm.max_attempts, crm.timeout_ms), (Method::Post, 4, 5_000));
        assert!(crm.triggered_by(&["identity.email".into()]));
        assert!(crm.triggered_by(&["lead.statut".into()]));
        assert!(!crm.triggered_by(&["web.visit_count".into()]));

        let other_host = DOCUMENT.replace("https://crm.example.com", "https://evil.example.net");
        let error = IntegrationsDocument::parse(&other_host).unwrap_err().to_string();
        assert!(error.contains("not in allowed_hosts"), "{error}");
        let unknown_field = DOCUMENT.replace("identity.email,", "identity.age,");
        assert!(IntegrationsDocument::parse(&unknown_field).unwrap_err().to_string().contains("identity.age"));
        assert!(matches!(IntegrationsDocument::parse("[1, 2"), Err(IntegrationsError::Syntax(_))));
        let too_long = DOCUMENT.replace("body:", "max_attempts: 10\n    timeout_ms: 30000\n    body:");
        assert!(IntegrationsDocument::parse(&too_long).unwrap_err().to_string().contains("exceeds"));
        let json = r#"{"allowed_hosts": ["crm.example.com"], "integrations": []}"#;
        assert!(IntegrationsDocument::parse(json).unwrap().integrations.is_empty());
    }

    #[tokio::test]
    async fn a_secret_outside_the_integrations_path_is_refused_at_start_up() {
        use tributary_testing::memory::InMemorySecrets;
        let env: HashMap<String, String> = [
            ("CUSTOMER_TABLE", "c"),
            ("INGESTION_TABLE", "i"),
            ("DEAD_LETTER_QUEUE_URL", "http://q"),
            ("INTEGRATIONS_PARAM", "/tributary/integrations"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = IntegratorConfig::from_env(&env).unwrap();
        assert_eq!(config.secrets_path, DEFAULT_SECRETS_PATH);
        let outside = DOCUMENT.replace("/tributary/integrations/crm-token", "/tributary/matomo-hmac-key");
        let secrets = |document: &str| InMemorySecrets {
            values: [("/tributary/integrations", document), ("/tributary/integrations/crm-token", "t")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let error = LoadedIntegrations::load(&config, &secrets(&outside)).await.unwrap_err().to_string();
        assert!(error.contains("must be under INTEGRATION_SECRETS_PATH"), "{error}");
        assert!(LoadedIntegrations::load(&config, &secrets(DOCUMENT)).await.is_ok());
    }
}
