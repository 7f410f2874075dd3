//! `personnage.*`: a character submitted to `POST /webhook/personnage`, known by its name.

use super::{Rule, RuleError, non_blank, subjects};
use crate::customer::record::{Change, CustomerRecord, SubSchema};
use crate::event::{CanonicalEvent, Subject};
use serde::Deserialize;

pub const RULE: Rule =
    Rule { name: "personnage", owns: &[SubSchema::Identity, SubSchema::Attributes], identities, changes, ledger: None };

#[derive(Deserialize)]
struct Personnage {
    nom: String,
    score: u8,
    niveau: String,
}

fn personnage_of(event: &CanonicalEvent) -> Result<Personnage, RuleError> {
    event.payload_as::<Personnage>().map_err(|e| RuleError::payload("personnage", e))
}

fn identities(event: &CanonicalEvent) -> Result<Vec<Subject>, RuleError> {
    let personnage = personnage_of(event)?;
    let name = non_blank(Some(&personnage.nom)).map(|nom| Subject::external("personnage", &nom.to_lowercase()));
    subjects(event, name)
}

fn changes(_record: &CustomerRecord, event: &CanonicalEvent) -> Result<Vec<Change>, RuleError> {
    let personnage = personnage_of(event)?;
    Ok(vec![
        Change::new("identity.nom", personnage.nom.trim()),
        Change::new("attributes.personnage.score", personnage.score),
        Change::new("attributes.personnage.niveau", personnage.niveau),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::rules::test_support::event;
    use serde_json::json;

    #[test]
    fn a_personnage_is_known_by_its_lower_cased_name() {
        let e = event(
            "personnage.submitted",
            None,
            "2025-01-01T00:00:00Z",
            json!({"nom": "Naruto", "score": 85, "niveau": "expert"}),
        );
        assert_eq!(identities(&e).unwrap()[0].as_str(), "personnage:naruto");
        assert_eq!(changes(&CustomerRecord::new(Default::default()), &e).unwrap().len(), 3);
    }
}
