//! `matomo.visit`: a visit of a known visitor (Matomo `userId`) counts towards web analytics.
//!
//! Matomo's tracker is public: anyone can send a visit with any `userId`. So by default a `userId`
//! is only ever Matomo's own id (`matomo:<userId>`), even when it looks like an e-mail address;
//! [`RULE_EMAIL_USER_IDS`] (the processor's `MATOMO_USER_ID_AS_EMAIL`) makes an address-shaped
//! `userId` an e-mail identity, for sites that set it only for signed-in visitors.

use super::{Rule, RuleError, non_blank};
use crate::customer::record::{Change, CustomerRecord, SubSchema};
use crate::event::{CanonicalEvent, Subject};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub const RULE: Rule = Rule { name: "matomo", owns: &[SubSchema::Web], identities, changes, ledger: None };
/// [`RULE`], with an address-shaped `userId` taken as the visitor's e-mail address.
pub const RULE_EMAIL_USER_IDS: Rule =
    Rule { name: "matomo", owns: &[SubSchema::Web], identities: identities_with_emails, changes, ledger: None };

/// The payload of a `matomo.visit` event: the compact summary the puller publishes per visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitSummary {
    pub visit_id: String,
    pub site_id: u32,
    /// When the visit started.
    pub time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Names of the goals converted during the visit.
    #[serde(default)]
    pub goals: Vec<String>,
    pub actions: u32,
}

fn visit_of(event: &CanonicalEvent) -> Result<VisitSummary, RuleError> {
    event.payload_as::<VisitSummary>().map_err(|e| RuleError::payload("Matomo visit summary", e))
}

/// The visitor from the visit's `userId` only: the event's subject is not consulted, so that no
/// producer can turn a userId into an e-mail identity behind the configuration's back.
fn identities(event: &CanonicalEvent) -> Result<Vec<Subject>, RuleError> {
    let visit = visit_of(event)?;
    non_blank(visit.user_id.as_deref()).map(|user| vec![Subject::external("matomo", user)]).ok_or(RuleError::NoSubject)
}

fn identities_with_emails(event: &CanonicalEvent) -> Result<Vec<Subject>, RuleError> {
    let visit = visit_of(event)?;
    // Sites often set the userId to the visitor's e-mail address: then it meets the other sources.
    non_blank(visit.user_id.as_deref())
        .map(|user| vec![Subject::from_field_value("matomo", user)])
        .ok_or(RuleError::NoSubject)
}

fn changes(_record: &CustomerRecord, event: &CanonicalEvent) -> Result<Vec<Change>, RuleError> {
    let visit = visit_of(event)?;
    let time = visit.time.to_string();
    let mut changes = vec![
        Change::new("web.visit_count", 1),
        Change::new("web.first_visit", time.clone()),
        Change::new("web.last_visit", time),
    ];
    if !visit.goals.is_empty() {
        changes.push(Change::new("web.goals", visit.goals));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::rules::test_support::event;
    use serde_json::json;

    #[test]
    fn a_visit_counts_and_names_its_goals() {
        let e = event(
            "matomo.visit",
            None,
            "2025-01-01T10:00:00Z",
            json!({"visit_id": "9", "site_id": 1, "time": "2025-01-01T10:00:00Z", "user_id": "u-7", "goals": ["Signup"], "actions": 4}),
        );
        assert_eq!(identities(&e).unwrap()[0].as_str(), "matomo:u-7");
        assert_eq!(changes(&CustomerRecord::new(Default::default()), &e).unwrap().len(), 4);
        let anonymous = event(
            "matomo.visit",
            None,
            "2025-01-01T10:00:00Z",
            json!({"visit_id": "9", "site_id": 1, "time": "2025-01-01T10:00:00Z", "actions": 1}),
        );
        assert_eq!(identities(&anonymous), Err(RuleError::NoSubject));
    }

    #[test]
    fn an_address_shaped_user_id_is_an_email_identity_only_when_configured() {
        let e = event(
            "matomo.visit",
            None,
            "2025-01-01T10:00:00Z",
            json!({"visit_id": "9", "site_id": 1, "time": "2025-01-01T10:00:00Z", "user_id": "Ada@X.io", "actions": 1}),
        );
        assert_eq!(identities(&e).unwrap(), [Subject::external("matomo", "Ada@X.io")]);
        assert_eq!(identities_with_emails(&e).unwrap(), [Subject::email("ada@x.io")]);
        // An e-mail subject on the event changes nothing unless configured.
        let claimed = CanonicalEvent { subject: Some(Subject::email("victim@x.io")), ..e.clone() };
        assert_eq!(identities(&claimed).unwrap(), [Subject::external("matomo", "Ada@X.io")]);
    }
}
