//! Update rules, one module per event family. A rule names the customer(s) an event is about and
//! proposes changes; [`CustomerRecord::apply`](super::CustomerRecord::apply) merges them.
//!
//! Adding a rule: write a module with a `pub const RULE: Rule`, and add one line to
//! [`Registry::standard`].

mod attributes;
mod lead;
mod matomo;
mod personnage;
mod stripe;
pub mod stripe_payments;

pub use matomo::VisitSummary;

use super::record::{Change, CustomerRecord, SubSchema};
use crate::event::{CanonicalEvent, Subject};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("payload is not a valid {expected}: {reason}")]
    Payload { expected: &'static str, reason: String },
    #[error("the event names no customer (no subject and no identifying field)")]
    NoSubject,
}

impl RuleError {
    pub fn payload(expected: &'static str, reason: impl ToString) -> Self {
        Self::Payload { expected, reason: reason.to_string() }
    }
}

/// An update rule: plain functions of the event (and the current record).
#[derive(Debug)]
pub struct Rule {
    /// Recorded in every audit entry the rule produces.
    pub name: &'static str,
    /// The sub-schemas this rule may write.
    pub owns: &'static [SubSchema],
    /// Every subject the event is about, most specific first; the first one already known
    /// chooses the customer, the others are linked to it.
    pub identities: fn(&CanonicalEvent) -> Result<Vec<Subject>, RuleError>,
    /// The changes the event proposes to `record`.
    pub changes: fn(&CustomerRecord, &CanonicalEvent) -> Result<Vec<Change>, RuleError>,
    /// What the rule remembers outside the record, when it must remember something per event
    /// family member that would grow the record without bound (every payment of a customer).
    pub ledger: Option<&'static LedgerRule>,
}

/// The entries of a customer's ledger an event reads, by key (as stored; absent keys are absent).
pub type Ledger = BTreeMap<String, serde_json::Value>;

/// A rule's ledger: entries kept as their own items under the customer (never in the record item,
/// so a customer's record stays the same size whatever the number of its payments), read before
/// the event is applied and written in the same transaction as the record, under its version check.
#[derive(Debug)]
pub struct LedgerRule {
    /// The keys of the entries the event may touch.
    pub keys: fn(&CanonicalEvent) -> Result<Vec<String>, RuleError>,
    /// The record changes and the entries to write, given the entries read under [`LedgerRule::keys`]
    /// and the record.
    pub apply: fn(&CustomerRecord, &Ledger, &CanonicalEvent) -> Result<LedgerOutcome, RuleError>,
}

/// What a ledger rule decided for one event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LedgerOutcome {
    pub changes: Vec<Change>,
    /// Entries to write (key, value): each replaces the entry of that key.
    pub writes: Vec<(String, serde_json::Value)>,
}

/// How the rules are configured, read from the environment by every function that applies them
/// (the processor, the rebuild): one reading, so that a rebuild applies the processor's rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RulesConfig {
    /// Sources whose events feed the free `attributes` map (the `attributes` rule).
    pub attribute_sources: Vec<String>,
    /// Whether an address-shaped Matomo `userId` is the visitor's e-mail identity (off by default:
    /// Matomo's tracker is public, anyone can send any `userId`).
    pub matomo_user_id_as_email: bool,
}

/// The environment variables [`RulesConfig::from_env`] reads.
pub const RULES_ENVIRONMENT: [&str; 2] = ["ATTRIBUTE_SOURCES", "MATOMO_USER_ID_AS_EMAIL"];

impl RulesConfig {
    pub fn from_env(env: &impl crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        let attribute_sources = env.list("ATTRIBUTE_SOURCES");
        if let Some(bad) = attribute_sources
            .iter()
            .find(|s| !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(crate::config::ConfigError::invalid(
                "ATTRIBUTE_SOURCES",
                format!("`{bad}` is not a source name (a-z 0-9 -)"),
            ));
        }
        Ok(Self { attribute_sources, matomo_user_id_as_email: env.parsed_or("MATOMO_USER_ID_AS_EMAIL", false)? })
    }

    /// The update rules as configured.
    pub fn registry(&self) -> Registry {
        Registry::configured(&self.attribute_sources, self.matomo_user_id_as_email)
    }
}

/// Rules by event type: exact types first, then families (`stripe.` matches `stripe.invoice.paid`).
#[derive(Debug, Default)]
pub struct Registry {
    exact: HashMap<String, &'static Rule>,
    families: Vec<(String, &'static Rule)>,
}

impl Registry {
    /// The rules Tributary ships, plus the free-attributes rule for each configured source;
    /// Matomo `userId`s stay Matomo ids.
    pub fn standard(attribute_sources: &[String]) -> Self {
        Self::configured(attribute_sources, false)
    }

    /// [`Registry::standard`], with address-shaped Matomo `userId`s taken as e-mail identities when
    /// `matomo_user_id_as_email` (see [`matomo`]'s module documentation for why it is off by default).
    pub fn configured(attribute_sources: &[String], matomo_user_id_as_email: bool) -> Self {
        let matomo = if matomo_user_id_as_email { &matomo::RULE_EMAIL_USER_IDS } else { &matomo::RULE };
        let mut registry = Self::default()
            .family("stripe.", &stripe::RULE)
            .exact(crate::event::types::LEAD_UPSERTED, &lead::RULE)
            .exact(crate::event::types::MATOMO_VISIT, matomo)
            .family("personnage.", &personnage::RULE);
        for source in attribute_sources {
            registry = registry.family(&format!("{source}."), &attributes::RULE);
        }
        registry
    }

    pub fn exact(mut self, event_type: &str, rule: &'static Rule) -> Self {
        self.exact.insert(event_type.to_string(), rule);
        self
    }

    pub fn family(mut self, prefix: &str, rule: &'static Rule) -> Self {
        self.families.push((prefix.to_string(), rule));
        // Longest prefix first, so a more specific family wins.
        self.families.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }

    pub fn rule_for(&self, event_type: &str) -> Option<&'static Rule> {
        self.exact.get(event_type).copied().or_else(|| {
            self.families.iter().find(|(prefix, _)| event_type.starts_with(prefix.as_str())).map(|(_, rule)| *rule)
        })
    }
}

/// The event's own subject followed by `more`, without repeats; an error when there is none.
pub(crate) fn subjects(
    event: &CanonicalEvent,
    more: impl IntoIterator<Item = Subject>,
) -> Result<Vec<Subject>, RuleError> {
    let mut all: Vec<Subject> = event.subject.iter().cloned().collect();
    for subject in more {
        if !all.contains(&subject) {
            all.push(subject);
        }
    }
    if all.is_empty() { Err(RuleError::NoSubject) } else { Ok(all) }
}

/// A text field worth recording: trimmed and not empty.
pub(crate) fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::event::{CanonicalEvent, EventId, Subject};

    pub fn event(event_type: &str, subject: Option<&str>, at: &str, payload: serde_json::Value) -> CanonicalEvent {
        CanonicalEvent {
            id: EventId::parse(format!("evt_{}", at.replace([':', '-'], ""))).unwrap(),
            source: event_type.split('.').next().unwrap_or_default().to_string(),
            event_type: event_type.to_string(),
            subject: subject.map(|s| match s.split_once(':') {
                Some(("email", address)) => Subject::email(address),
                Some((system, id)) => Subject::external(system, id),
                None => Subject::external("test", s),
            }),
            occurred_at: at.parse().unwrap(),
            received_at: at.parse().unwrap(),
            payload: serde_json::value::to_raw_value(&payload).unwrap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_finds_exact_types_then_the_longest_family() {
        let registry = Registry::standard(&["acme".to_string()]);
        assert_eq!(registry.rule_for("stripe.invoice.paid").map(|r| r.name), Some("stripe"));
        assert_eq!(registry.rule_for("lead.upserted").map(|r| r.name), Some("lead"));
        assert_eq!(registry.rule_for("acme.contact.created").map(|r| r.name), Some("attributes"));
        assert!(registry.rule_for("lead.deleted").is_none());
        assert!(registry.rule_for("make.row.added").is_none(), "make is not a configured attribute source");
    }
}
