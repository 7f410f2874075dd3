//! A Notion page as a lead: which property holds which lead field, read by property type.

use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use tributary_domain::lead::{Lead, LeadProblem};

/// Notion property names for the lead fields (`NOTION_PROPERTY_MAP`, JSON). `nom` is required;
/// the others may be left out when the database has no such column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyMap {
    pub nom: String,
    pub email: Option<String>,
    pub telephone: Option<String>,
    pub date_prise_contact: Option<String>,
    pub date_appel_booke: Option<String>,
    pub date_appel_propose: Option<String>,
    pub date_relance: Option<String>,
    pub date_reponse_prospect: Option<String>,
    pub statut: Option<String>,
    /// Notion option names to `statut` values (`{"Contacté": "contacte"}`); options not listed are
    /// lower-cased, stripped of accents and joined with `_` (`Appel booké` → `appel_booke`).
    #[serde(default)]
    pub statut_values: HashMap<String, String>,
}

/// What a page yields: the lead to validate, or why the page cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|p| format!("{}: {}", p.field, p.reason)).collect::<Vec<_>>().join("; "))]
pub struct PageRejected(pub Vec<LeadProblem>);

/// The property types each lead field can be read from.
#[derive(Clone, Copy)]
enum Expect {
    Text,
    Email,
    Phone,
    Date,
    Choice,
}

impl Expect {
    fn types(self) -> &'static [&'static str] {
        match self {
            Expect::Text => &["title", "rich_text"],
            Expect::Email => &["email", "rich_text"],
            Expect::Phone => &["phone_number", "rich_text"],
            Expect::Date => &["date"],
            Expect::Choice => &["status", "select"],
        }
    }
}

fn plain_text(items: &Value) -> Option<String> {
    let text: String = items.as_array()?.iter().filter_map(|item| item.get("plain_text")?.as_str()).collect();
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The value of one property, `Ok(None)` when empty or absent, `Err` when its type cannot hold
/// the field.
fn read(properties: &Value, name: &str, field: &str, expect: Expect) -> Result<Option<String>, LeadProblem> {
    let Some(property) = properties.get(name) else { return Ok(None) };
    let kind = property.get("type").and_then(Value::as_str).unwrap_or("unknown");
    if !expect.types().contains(&kind) {
        return Err(LeadProblem {
            field: field.to_string(),
            reason: format!("Notion property '{name}' is of type {kind}, expected {}", expect.types().join(" or ")),
        });
    }
    let value = &property[kind];
    Ok(match kind {
        "title" | "rich_text" => plain_text(value),
        "email" | "phone_number" => value.as_str().map(str::to_string),
        "date" => value.get("start").and_then(Value::as_str).map(str::to_string),
        "status" | "select" => value.get("name").and_then(Value::as_str).map(str::to_string),
        _ => None,
    })
}

fn without_accents(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' => 'i',
            'ô' | 'ö' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

impl PropertyMap {
    fn statut(&self, option: String) -> String {
        match self.statut_values.get(&option) {
            Some(value) => value.clone(),
            None => without_accents(&option.trim().to_lowercase())
                .split(|c: char| c.is_whitespace() || c == '-')
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("_"),
        }
    }

    /// The lead a page describes (not yet validated): `id` is the page id.
    pub fn lead_of(&self, page: &Value) -> Result<Lead, PageRejected> {
        let properties = page.get("properties").unwrap_or(&Value::Null);
        let mut problems = Vec::new();
        let mut field = |name: Option<&String>, field: &str, expect: Expect| match name {
            None => None,
            Some(name) => read(properties, name, field, expect).unwrap_or_else(|problem| {
                problems.push(problem);
                None
            }),
        };
        let nom = field(Some(&self.nom), "nom", Expect::Text);
        let email = field(self.email.as_ref(), "email", Expect::Email);
        let telephone = field(self.telephone.as_ref(), "telephone", Expect::Phone);
        let date_prise_contact = field(self.date_prise_contact.as_ref(), "date_prise_contact", Expect::Date);
        let date_appel_booke = field(self.date_appel_booke.as_ref(), "date_appel_booke", Expect::Date);
        let date_appel_propose = field(self.date_appel_propose.as_ref(), "date_appel_propose", Expect::Date);
        let date_relance = field(self.date_relance.as_ref(), "date_relance", Expect::Date);
        let date_reponse_prospect = field(self.date_reponse_prospect.as_ref(), "date_reponse_prospect", Expect::Date);
        let statut = field(self.statut.as_ref(), "statut", Expect::Choice);
        if !problems.is_empty() {
            return Err(PageRejected(problems));
        }
        Ok(Lead {
            id: page.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
            nom: nom.unwrap_or_default(),
            email,
            telephone,
            date_prise_contact,
            date_appel_booke,
            date_appel_propose,
            date_relance,
            date_reponse_prospect,
            statut: statut.map(|s| self.statut(s)),
        })
    }

    /// The page as a validated lead, or every reason it is refused.
    pub fn validated_lead(&self, page: &Value) -> Result<Lead, PageRejected> {
        self.lead_of(page)?.validated().map_err(PageRejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map() -> PropertyMap {
        serde_json::from_value(json!({
            "nom": "Name", "email": "Email", "telephone": "Phone", "date_prise_contact": "Contacted",
            "statut": "Stage", "statut_values": {"Gagné 🎉": "gagne"}
        }))
        .unwrap()
    }

    fn page(properties: Value) -> Value {
        json!({"object": "page", "id": "1f2b80c-0000-4000-8000-000000000001", "last_edited_time": "2025-01-01T10:00:00.000Z", "properties": properties})
    }

    #[test]
    fn properties_are_read_by_type() {
        let lead = map()
            .validated_lead(&page(json!({
                "Name": {"type": "title", "title": [{"plain_text": "Ada "}, {"plain_text": "Lovelace"}]},
                "Email": {"type": "email", "email": "ADA@example.com"},
                "Phone": {"type": "phone_number", "phone_number": "06 12 34 56 78"},
                "Contacted": {"type": "date", "date": {"start": "2025-01-02", "end": null, "time_zone": null}},
                "Stage": {"type": "status", "status": {"name": "Appel booké"}}
            })))
            .unwrap();
        assert_eq!(lead.nom, "Ada Lovelace");
        assert_eq!(lead.email.as_deref(), Some("ada@example.com"));
        assert_eq!(lead.telephone.as_deref(), Some("+33612345678"));
        assert_eq!(lead.statut.as_deref(), Some("appel_booke"));
        assert_eq!(lead.date_prise_contact.as_deref(), Some("2025-01-02"));
    }

    #[test]
    fn missing_optional_properties_are_absent_and_mapped_options_win() {
        let lead = map()
            .validated_lead(&page(json!({
                "Name": {"type": "title", "title": [{"plain_text": "Bob"}]},
                "Email": {"type": "email", "email": null},
                "Stage": {"type": "select", "select": {"name": "Gagné 🎉"}}
            })))
            .unwrap();
        assert_eq!((lead.email, lead.telephone, lead.date_prise_contact), (None, None, None));
        assert_eq!(lead.statut.as_deref(), Some("gagne"));
    }

    #[test]
    fn an_unexpected_type_or_an_invalid_value_is_a_clear_rejection() {
        let rejected = map()
            .validated_lead(&page(json!({
                "Name": {"type": "title", "title": [{"plain_text": "Eve"}]},
                "Contacted": {"type": "number", "number": 3}
            })))
            .unwrap_err();
        assert_eq!(
            rejected.to_string(),
            "date_prise_contact: Notion property 'Contacted' is of type number, expected date"
        );
        let invalid = map()
            .validated_lead(&page(json!({"Name": {"type": "title", "title": []}, "Stage": {"type": "status", "status": {"name": "Unknown"}}})))
            .unwrap_err();
        assert!(invalid.to_string().contains("nom: must not be empty"), "{invalid}");
        assert!(invalid.to_string().contains("statut: must be one of"), "{invalid}");
        // A name no bus message could carry is a rejected page, not a stalled pull.
        let huge = map()
            .validated_lead(&page(json!({"Name": {"type": "title", "title": [{"plain_text": "N".repeat(300_000)}]}})))
            .unwrap_err();
        assert!(huge.to_string().contains("nom: must be at most 200 characters"), "{huge}");
    }
}
