//! The puller's configuration, from the environment at cold start. A job is configured when its
//! base URL is set; its secrets (API tokens, the anonymisation key) are SSM parameter names.

use crate::matomo::pull::MatomoSettings;
use crate::notion::api::DATA_SOURCES_VERSION;
use crate::notion::mapping::PropertyMap;
use jiff::SignedDuration;
use jiff::civil::Date;
use reqwest::Url;
use tributary_domain::config::{ConfigError, Env};
use tributary_lake::LakeLocation;

#[derive(Debug, Clone)]
pub struct PullerConfig {
    pub ingestion_table: String,
    pub events_topic_arn: String,
    pub lake: LakeLocation,
    /// Stop this long before the Lambda deadline.
    pub deadline_margin: SignedDuration,
    /// How long the tokens and the anonymisation key are used before they are read again (at the
    /// start of an invocation, never during a run: one run hashes with one key).
    pub secrets_max_age: SignedDuration,
    pub matomo: Option<MatomoConfig>,
    pub notion: Option<NotionConfig>,
}

#[derive(Debug, Clone)]
pub struct MatomoConfig {
    pub base_url: Url,
    pub sites: Vec<u32>,
    pub settings: MatomoSettings,
    /// Dotted paths anonymised in every visit, on top of `visitIp`.
    pub anonymise: Vec<String>,
    pub token_param: String,
    pub hmac_key_param: String,
}

#[derive(Debug, Clone)]
pub struct NotionConfig {
    pub base_url: Url,
    pub databases: Vec<String>,
    pub version: String,
    pub token_param: String,
    pub properties: PropertyMap,
}

/// Every environment variable [`PullerConfig::from_env`] reads (the README's table).
pub const ENVIRONMENT: [&str; 20] = [
    "INGESTION_TABLE",
    "EVENTS_TOPIC_ARN",
    "LAKE_BUCKET",
    "LAKE_PREFIX",
    "DEADLINE_MARGIN_SECONDS",
    "SECRETS_MAX_AGE_SECONDS",
    "MATOMO_URL",
    "MATOMO_SITE_IDS",
    "MATOMO_START_DATE",
    "MATOMO_PAGE_SIZE",
    "MATOMO_COMMIT_PAGES",
    "MATOMO_TIMEZONE",
    "MATOMO_ANONYMISE",
    "MATOMO_TOKEN_PARAM",
    "MATOMO_HMAC_KEY_PARAM",
    "NOTION_URL",
    "NOTION_DATABASE_IDS",
    "NOTION_VERSION",
    "NOTION_TOKEN_PARAM",
    "NOTION_PROPERTY_MAP",
];

fn url(env: &impl Env, name: &str) -> Result<Option<Url>, ConfigError> {
    env.optional(name)
        .map(|text| {
            let url = Url::parse(&text).map_err(|e| ConfigError::invalid(name, e))?;
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            match url.scheme() {
                "https" => Ok(url),
                // Tokens travel with every request: plain HTTP only to a local fake or proxy.
                "http" if loopback => Ok(url),
                other => Err(ConfigError::invalid(name, format!("must be https (http only to loopback), not {other}"))),
            }
        })
        .transpose()
}

impl PullerConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let margin: i64 = env.parsed_or("DEADLINE_MARGIN_SECONDS", 60)?;
        if !(5..=600).contains(&margin) {
            return Err(ConfigError::invalid("DEADLINE_MARGIN_SECONDS", "must be 5 to 600"));
        }
        Ok(Self {
            ingestion_table: env.required("INGESTION_TABLE")?,
            events_topic_arn: env.required("EVENTS_TOPIC_ARN")?,
            lake: LakeLocation::from_env(env)?,
            deadline_margin: SignedDuration::from_secs(margin),
            secrets_max_age: tributary_domain::secrets::max_age_from_env(env)?,
            matomo: MatomoConfig::from_env(env)?,
            notion: NotionConfig::from_env(env)?,
        })
    }

    /// SSM parameters to read at cold start.
    pub fn secret_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(matomo) = &self.matomo {
            names.extend([matomo.token_param.clone(), matomo.hmac_key_param.clone()]);
        }
        if let Some(notion) = &self.notion {
            names.push(notion.token_param.clone());
        }
        names
    }
}

impl MatomoConfig {
    fn from_env(env: &impl Env) -> Result<Option<Self>, ConfigError> {
        let Some(base_url) = url(env, "MATOMO_URL")? else { return Ok(None) };
        let sites = env
            .list("MATOMO_SITE_IDS")
            .iter()
            .map(|id| match id.parse::<u32>() {
                Ok(site) if site > 0 && i32::try_from(site).is_ok() => Ok(site),
                _ => Err(ConfigError::invalid("MATOMO_SITE_IDS", format!("`{id}` is not a site id"))),
            })
            .collect::<Result<Vec<u32>, _>>()?;
        if sites.is_empty() {
            return Err(ConfigError::Missing("MATOMO_SITE_IDS".into()));
        }
        let start_date: Date = env
            .required("MATOMO_START_DATE")?
            .parse()
            .map_err(|e| ConfigError::invalid("MATOMO_START_DATE", format!("not a YYYY-MM-DD date: {e}")))?;
        let page_size: u64 = env.parsed_or("MATOMO_PAGE_SIZE", 1000)?;
        if !(1..=10_000).contains(&page_size) {
            return Err(ConfigError::invalid("MATOMO_PAGE_SIZE", "must be 1 to 10000"));
        }
        let commit_pages: u32 = env.parsed_or("MATOMO_COMMIT_PAGES", 5)?;
        if !(1..=100).contains(&commit_pages) {
            return Err(ConfigError::invalid("MATOMO_COMMIT_PAGES", "must be 1 to 100"));
        }
        let zone = env.optional("MATOMO_TIMEZONE").unwrap_or_else(|| "UTC".into());
        let timezone = jiff::tz::TimeZone::get(&zone)
            .map_err(|e| ConfigError::invalid("MATOMO_TIMEZONE", format!("not an IANA time zone: {e}")))?;
        let anonymise = env.list("MATOMO_ANONYMISE");
        if let Some(bad) = anonymise.iter().find(|path| path.split('.').any(str::is_empty)) {
            return Err(ConfigError::invalid("MATOMO_ANONYMISE", format!("`{bad}` is not a dotted path")));
        }
        Ok(Some(Self {
            base_url,
            sites,
            settings: MatomoSettings { start_date, page_size, commit_pages, timezone },
            anonymise,
            token_param: env.required("MATOMO_TOKEN_PARAM")?,
            hmac_key_param: env.required("MATOMO_HMAC_KEY_PARAM")?,
        }))
    }
}

impl NotionConfig {
    fn from_env(env: &impl Env) -> Result<Option<Self>, ConfigError> {
        let Some(base_url) = url(env, "NOTION_URL")? else { return Ok(None) };
        let databases = env.list("NOTION_DATABASE_IDS");
        if databases.is_empty() {
            return Err(ConfigError::Missing("NOTION_DATABASE_IDS".into()));
        }
        if let Some(bad) = databases.iter().find(|id| !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')) {
            return Err(ConfigError::invalid("NOTION_DATABASE_IDS", format!("`{bad}` is not a Notion id")));
        }
        let version = env.optional("NOTION_VERSION").unwrap_or_else(|| DATA_SOURCES_VERSION.into());
        if version.parse::<Date>().is_err() {
            return Err(ConfigError::invalid("NOTION_VERSION", "must be a date such as 2022-06-28 or 2025-09-03"));
        }
        let properties: PropertyMap = serde_json::from_str(&env.required("NOTION_PROPERTY_MAP")?)
            .map_err(|e| ConfigError::invalid("NOTION_PROPERTY_MAP", e))?;
        Ok(Some(Self { base_url, databases, version, token_param: env.required("NOTION_TOKEN_PARAM")?, properties }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let base = [("INGESTION_TABLE", "t"), ("EVENTS_TOPIC_ARN", "arn"), ("LAKE_BUCKET", "lake")];
        base.iter().chain(pairs).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn jobs_are_configured_by_their_url() {
        let config = PullerConfig::from_env(&env(&[])).unwrap();
        assert!(config.matomo.is_none() && config.notion.is_none());
        let config = PullerConfig::from_env(&env(&[
            ("MATOMO_URL", "https://matomo.example.com"),
            ("MATOMO_SITE_IDS", "1, 3"),
            ("MATOMO_START_DATE", "2025-01-01"),
            ("MATOMO_TOKEN_PARAM", "/tributary/matomo-token"),
            ("MATOMO_HMAC_KEY_PARAM", "/tributary/matomo-hmac-key"),
            ("MATOMO_ANONYMISE", "userId actionDetails.url"),
        ]))
        .unwrap();
        let matomo = config.matomo.unwrap();
        assert_eq!(matomo.sites, vec![1, 3]);
        assert_eq!(matomo.settings.page_size, 1000);
        assert_eq!(matomo.anonymise, vec!["userId".to_string(), "actionDetails.url".to_string()]);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            (vec![("MATOMO_URL", "ftp://x")], "MATOMO_URL"),
            (vec![("MATOMO_URL", "http://matomo.example.com")], "MATOMO_URL"),
            (vec![("MATOMO_URL", "https://m"), ("MATOMO_SITE_IDS", "one")], "MATOMO_SITE_IDS"),
            (
                vec![("MATOMO_URL", "https://m"), ("MATOMO_SITE_IDS", "1"), ("MATOMO_START_DATE", "yesterday")],
                "MATOMO_START_DATE",
            ),
            (
                vec![
                    ("NOTION_URL", "https://api.notion.com"),
                    ("NOTION_DATABASE_IDS", "abc"),
                    ("NOTION_PROPERTY_MAP", "{}"),
                ],
                "NOTION_PROPERTY_MAP",
            ),
            (vec![("DEADLINE_MARGIN_SECONDS", "1")], "DEADLINE_MARGIN_SECONDS"),
        ];
        for (pairs, variable) in cases {
            let error = PullerConfig::from_env(&env(&pairs)).unwrap_err().to_string();
            assert!(error.contains(variable), "{variable}: {error}");
        }
    }
}
