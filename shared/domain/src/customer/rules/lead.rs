//! `lead.upserted`: a lead from the ingestion API or the Notion pull sets identity and the lead
//! pipeline. A lead version is the whole lead: its absent dates and `statut` clear the record's
//! (a `null` stamped like any value, so a newer version without a date wins over an older one with
//! it in every delivery order, and the record ends as the lake's latest version). Absent identity
//! fields leave the record's value as it is: other sources (Stripe, Make) set them too.

use super::{Rule, RuleError, non_blank, subjects};
use crate::customer::record::{Change, CustomerRecord, SubSchema};
use crate::event::{CanonicalEvent, Subject};
use crate::lead::Lead;

pub const RULE: Rule =
    Rule { name: "lead", owns: &[SubSchema::Identity, SubSchema::Lead], identities, changes, ledger: None };

fn lead_of(event: &CanonicalEvent) -> Result<Lead, RuleError> {
    event.payload_as::<Lead>().map_err(|e| RuleError::payload("lead", e))
}

fn identities(event: &CanonicalEvent) -> Result<Vec<Subject>, RuleError> {
    let lead = lead_of(event)?;
    let id = non_blank(Some(&lead.id)).map(|id| Subject::external("lead", id));
    let email = non_blank(lead.email.as_deref()).map(Subject::email);
    subjects(event, id.into_iter().chain(email))
}

fn changes(_record: &CustomerRecord, event: &CanonicalEvent) -> Result<Vec<Change>, RuleError> {
    let lead = lead_of(event)?;
    let mut changes = Vec::new();
    if let Some(nom) = non_blank(Some(&lead.nom)) {
        changes.push(Change::new("identity.nom", nom));
    }
    if let Some(email) = non_blank(lead.email.as_deref()) {
        changes.push(Change::new("identity.email", crate::event::normalise_email(email)));
    }
    if let Some(telephone) = non_blank(lead.telephone.as_deref()) {
        changes.push(Change::new("identity.telephone", telephone));
    }
    let or_null = |value: Option<&str>| non_blank(value).map_or(serde_json::Value::Null, serde_json::Value::from);
    for (field, value) in lead.dates() {
        changes.push(Change::new(format!("lead.{field}"), or_null(value)));
    }
    changes.push(Change::new("lead.statut", or_null(lead.statut.as_deref())));
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::rules::test_support::event;
    use serde_json::json;

    #[test]
    fn a_lead_sets_identity_and_pipeline_and_clears_absent_lead_fields() {
        let e = event(
            "lead.upserted",
            None,
            "2025-01-01T00:00:00Z",
            json!({"id": "L1", "nom": "Ada", "email": " ADA@x.io", "date_prise_contact": "2025-01-01", "statut": "contacte"}),
        );
        let ids: Vec<_> = identities(&e).unwrap().iter().map(|s| s.as_str().to_string()).collect();
        assert_eq!(ids, ["lead:L1", "email:ada@x.io"]);
        let changes = changes(&CustomerRecord::new(Default::default()), &e).unwrap();
        let fields: Vec<_> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "identity.nom",
                "identity.email",
                "lead.date_prise_contact",
                "lead.date_reponse_prospect",
                "lead.date_appel_propose",
                "lead.date_appel_booke",
                "lead.date_relance",
                "lead.statut"
            ]
        );
        assert_eq!(changes[3].value, serde_json::Value::Null, "an absent date clears the record's");
        assert!(lead_of(&event("lead.upserted", None, "2025-01-01T00:00:00Z", json!({"nom": 1}))).is_err());
    }
}
