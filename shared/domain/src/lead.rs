//! A lead as the product contract names its fields: the payload of `lead.upserted` events (from the
//! ingestion API and the Notion pull) and a row of the lake's `leads` table.

use serde::{Deserialize, Serialize};

/// The ten lead fields. Dates are ISO 8601 text as the source gave them (a date or a date-time);
/// absent optional fields are absent, not empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lead {
    pub id: String,
    pub nom: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_prise_contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_appel_booke: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_appel_propose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_relance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_reponse_prospect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statut: Option<String>,
}

impl Lead {
    /// The five lead dates by field name, in funnel order: contact, answer, call proposed, call
    /// booked, follow-up (the order of their changes in the audit trail). The names are
    /// [`LEAD_DATE_FIELDS`]; a test keeps the two the same set.
    pub fn dates(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("date_prise_contact", self.date_prise_contact.as_deref()),
            ("date_reponse_prospect", self.date_reponse_prospect.as_deref()),
            ("date_appel_propose", self.date_appel_propose.as_deref()),
            ("date_appel_booke", self.date_appel_booke.as_deref()),
            ("date_relance", self.date_relance.as_deref()),
        ]
    }
}

/// The `statut` values a lead may have, in funnel order (the README documents them).
pub const STATUTS: [&str; 8] =
    ["nouveau", "contacte", "reponse_recue", "appel_propose", "appel_booke", "relance", "gagne", "perdu"];

/// Longest lead id accepted.
pub const MAX_LEAD_ID_LEN: usize = 200;
/// Longest `nom` accepted, in characters (a person's or company's name; the personnage route's
/// limit too).
pub const MAX_NOM_CHARS: usize = 200;
/// Longest raw text accepted in any other lead field, in characters, before it is checked: far
/// more than a valid phone number, date or statut needs, so only abuse is refused.
pub const MAX_OTHER_FIELD_CHARS: usize = 254;

/// One reason a lead is refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeadProblem {
    pub field: String,
    pub reason: String,
}

impl LeadProblem {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self { field: field.to_string(), reason: reason.into() }
    }
}

/// A plausible address: one `@`, a non-empty local part, a dotted domain of letters, digits and
/// hyphens, no spaces; at most 254 characters. Deliverability is not this function's business.
pub fn valid_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else { return false };
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    address.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(|c| c.is_whitespace() || c == '@' || c.is_control())
        && domain_ok
}

/// A phone number in E.164 form (`+` and 8 to 15 digits). Spaces, dots, hyphens and parentheses
/// are dropped; `00` becomes `+`; a 10-digit national number starting with 0 is read as French
/// (`+33`), the product's home market. Anything else is refused rather than guessed.
pub fn normalise_phone(text: &str) -> Option<String> {
    let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '\u{a0}')).collect();
    let international = if let Some(rest) = compact.strip_prefix('+') {
        rest.to_string()
    } else if let Some(rest) = compact.strip_prefix("00") {
        rest.to_string()
    } else if compact.len() == 10 && compact.starts_with('0') {
        format!("33{}", &compact[1..])
    } else {
        return None;
    };
    let digits_ok = (8..=15).contains(&international.len())
        && international.chars().all(|c| c.is_ascii_digit())
        && !international.starts_with('0');
    digits_ok.then(|| format!("+{international}"))
}

/// An ISO 8601 calendar date (`2025-01-31`) or an RFC 3339 date-time (`2025-01-31T09:30:00Z`).
pub fn valid_lead_date(text: &str) -> bool {
    text.parse::<jiff::civil::Date>().is_ok() || text.parse::<jiff::Timestamp>().is_ok()
}

impl Lead {
    /// The lead checked and normalised (trimmed text, lower-cased e-mail, E.164 phone), or every
    /// problem found. Used by the ingestion API and the Notion pull alike.
    pub fn validated(self) -> Result<Lead, Vec<LeadProblem>> {
        let mut problems = Vec::new();
        let trim = |value: Option<String>| value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let id = self.id.trim().to_string();
        if id.is_empty() {
            problems.push(LeadProblem::new("id", "must not be empty"));
        } else if id.len() > MAX_LEAD_ID_LEN {
            problems.push(LeadProblem::new("id", format!("must be at most {MAX_LEAD_ID_LEN} characters")));
        }
        let nom = self.nom.trim().to_string();
        if nom.is_empty() {
            problems.push(LeadProblem::new("nom", "must not be empty"));
        } else if nom.chars().count() > MAX_NOM_CHARS {
            problems.push(LeadProblem::new("nom", format!("must be at most {MAX_NOM_CHARS} characters")));
        }
        let optional_texts = [
            ("email", &self.email),
            ("telephone", &self.telephone),
            ("date_prise_contact", &self.date_prise_contact),
            ("date_appel_booke", &self.date_appel_booke),
            ("date_appel_propose", &self.date_appel_propose),
            ("date_relance", &self.date_relance),
            ("date_reponse_prospect", &self.date_reponse_prospect),
            ("statut", &self.statut),
        ];
        let too_long: Vec<&str> = optional_texts
            .iter()
            .filter(|(_, value)| value.as_ref().is_some_and(|v| v.trim().chars().count() > MAX_OTHER_FIELD_CHARS))
            .map(|(field, _)| *field)
            .collect();
        if !too_long.is_empty() {
            // The other checks would only repeat the problem in other words.
            problems.extend(
                too_long.into_iter().map(|field| {
                    LeadProblem::new(field, format!("must be at most {MAX_OTHER_FIELD_CHARS} characters"))
                }),
            );
            return Err(problems);
        }
        let email = trim(self.email).map(|e| crate::event::normalise_email(&e));
        if let Some(address) = &email
            && !valid_email(address)
        {
            problems.push(LeadProblem::new("email", "is not an e-mail address"));
        }
        let telephone = match trim(self.telephone) {
            None => None,
            Some(raw) => match normalise_phone(&raw) {
                Some(phone) => Some(phone),
                None => {
                    problems.push(LeadProblem::new(
                        "telephone",
                        "is not a phone number (international +… or a French 0X XX XX XX XX)",
                    ));
                    None
                }
            },
        };
        let statut = trim(self.statut);
        if let Some(statut) = &statut
            && !STATUTS.contains(&statut.as_str())
        {
            problems.push(LeadProblem::new("statut", format!("must be one of {}", STATUTS.join(", "))));
        }
        let lead = Lead {
            id,
            nom,
            email,
            telephone,
            date_prise_contact: trim(self.date_prise_contact),
            date_appel_booke: trim(self.date_appel_booke),
            date_appel_propose: trim(self.date_appel_propose),
            date_relance: trim(self.date_relance),
            date_reponse_prospect: trim(self.date_reponse_prospect),
            statut,
        };
        for (field, value) in lead.dates() {
            if let Some(value) = value
                && !valid_lead_date(value)
            {
                problems.push(LeadProblem::new(field, "is not an ISO 8601 date (YYYY-MM-DD) or date-time"));
            }
        }
        if problems.is_empty() { Ok(lead) } else { Err(problems) }
    }

    /// The id of this lead version as received in one ingestion request. With the request's
    /// `Idempotency-Key`, a retry of that request gives the same ids (duplicates downstream);
    /// without one, each request is a new version, even of content sent before: a lead posted as
    /// A, then B, then A again ends on A everywhere (the record and the lake), which an id derived
    /// from the content alone could not give (the second A was a duplicate of the first).
    pub fn version_id_in_request(&self, idempotency_key: Option<&str>, received_at: jiff::Timestamp) -> String {
        match idempotency_key {
            Some(key) => self.digest_id(&format!("key:{key}")),
            None => self.digest_id(&format!("at:{}", received_at.as_nanosecond())),
        }
    }

    /// The id of this content as edited at `edited` (Notion's minute-rounded `last_edited_time`):
    /// a re-read of an unchanged page gives the same id, two edits within a minute give two, and
    /// an edit back to earlier content is still a new event.
    pub fn version_id_edited_at(&self, edited: jiff::Timestamp) -> String {
        self.digest_id(&edited.to_string())
    }

    /// `lead-` and 32 hex digits of SHA-256 over the lead's content and `version` (what tells
    /// versions of the same content apart).
    fn digest_id(&self, version: &str) -> String {
        use sha2::{Digest, Sha256};
        // Serialising a plain struct of strings cannot fail; an empty digest input would still
        // give a stable id.
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(self).unwrap_or_default());
        hasher.update(format!("@{version}"));
        format!("lead-{}", hex::encode(&hasher.finalize()[..16]))
    }
}

impl Lead {
    /// The `lead.upserted` event of this lead version, from `source` (`ingestion`, `notion`),
    /// as of `occurred_at` (when the lead was last edited at the source, if it says).
    /// `id` is [`Lead::version_id_in_request`] or [`Lead::version_id_edited_at`].
    pub fn upserted_event(
        &self,
        id: String,
        source: &str,
        occurred_at: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> Result<crate::event::CanonicalEvent, crate::event::EventBuildError> {
        use crate::event::{CanonicalEvent, Subject, types};
        let subject = Some(Subject::external("lead", &self.id));
        CanonicalEvent::produced(id, source, types::LEAD_UPSERTED, subject, occurred_at, now, self)
    }
}

/// What a batch of leads says, for an idempotency marker: SHA-256 (128 bits, hex) of the validated
/// leads in order.
pub fn batch_digest(leads: &[Lead]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for lead in leads {
        // A plain struct of strings always serialises.
        hasher.update(serde_json::to_vec(lead).unwrap_or_default());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..16])
}

/// One refused item of a batch: its index and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ItemProblem {
    pub index: usize,
    pub field: String,
    pub reason: String,
}

/// Validates every item of a batch (JSON values, so that a wrong type is reported per item and
/// field); all valid → the leads, else every problem of every item.
pub fn validate_batch(items: &[serde_json::Value]) -> Result<Vec<Lead>, Vec<ItemProblem>> {
    let mut leads = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let parsed = match item {
            serde_json::Value::Object(object) => {
                if let Some(unknown) = object.keys().find(|k| !LEAD_FIELDS.contains(&k.as_str())) {
                    problems.push(ItemProblem { index, field: unknown.clone(), reason: "is not a lead field".into() });
                    continue;
                }
                if let Some((field, _)) = object.iter().find(|(_, v)| !(v.is_string() || v.is_null())) {
                    problems.push(ItemProblem { index, field: field.clone(), reason: "must be a string".into() });
                    continue;
                }
                let missing: Vec<&str> =
                    ["id", "nom"].into_iter().filter(|f| object.get(*f).is_none_or(|v| v.is_null())).collect();
                if !missing.is_empty() {
                    problems.extend(missing.into_iter().map(|field| ItemProblem {
                        index,
                        field: field.to_string(),
                        reason: "is required".into(),
                    }));
                    continue;
                }
                serde_json::from_value::<Lead>(item.clone())
            }
            _ => {
                problems.push(ItemProblem { index, field: String::new(), reason: "must be an object".into() });
                continue;
            }
        };
        match parsed.map_err(|e| vec![LeadProblem::new("", e.to_string())]).and_then(Lead::validated) {
            Ok(lead) => leads.push(lead),
            Err(found) => {
                problems.extend(found.into_iter().map(|p| ItemProblem { index, field: p.field, reason: p.reason }))
            }
        }
    }
    if problems.is_empty() { Ok(leads) } else { Err(problems) }
}

include!(concat!(env!("OUT_DIR"), "/lead_fields.rs"));

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_lead_type_and_its_dates_are_the_one_list_of_lead_fields() {
        let full = Lead {
            id: "L1".into(),
            nom: "Ada".into(),
            email: Some("a@x.io".into()),
            telephone: Some("+33612345678".into()),
            date_prise_contact: Some("2025-01-01".into()),
            date_appel_booke: Some("2025-01-02".into()),
            date_appel_propose: Some("2025-01-03".into()),
            date_relance: Some("2025-01-04".into()),
            date_reponse_prospect: Some("2025-01-05".into()),
            statut: Some("contacte".into()),
        };
        let serialised = serde_json::to_value(&full).unwrap();
        let keys: Vec<&str> = serialised.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = LEAD_FIELDS.to_vec();
        let mut found = keys.clone();
        expected.sort_unstable();
        found.sort_unstable();
        assert_eq!(found, expected, "Lead's fields are lead-fields.txt's");
        let mut dates: Vec<&str> = full.dates().iter().map(|(name, _)| *name).collect();
        let mut date_fields = LEAD_DATE_FIELDS.to_vec();
        dates.sort_unstable();
        date_fields.sort_unstable();
        assert_eq!(dates, date_fields);
        for (name, value) in full.dates() {
            assert_eq!(serialised[name].as_str(), value, "{name} reads its own field");
        }
        for field in LEAD_FIELDS {
            let mut without = serialised.clone();
            without.as_object_mut().unwrap().remove(field);
            let parsed = serde_json::from_value::<Lead>(without);
            assert_eq!(parsed.is_err(), LEAD_REQUIRED_FIELDS.contains(&field), "{field}");
        }
    }

    #[test]
    fn phones_are_normalised_to_e164_or_refused() {
        assert_eq!(normalise_phone("06 12 34 56 78").as_deref(), Some("+33612345678"));
        assert_eq!(normalise_phone("+33 (0)6".replace("(0)", "").as_str()), None, "too short");
        assert_eq!(normalise_phone("+1 415-555-0100").as_deref(), Some("+14155550100"));
        assert_eq!(normalise_phone("0033.6.12.34.56.78").as_deref(), Some("+33612345678"));
        for bad in ["12345", "call me", "+33 6 12 34 56 78 90 12 34", "612345678"] {
            assert_eq!(normalise_phone(bad), None, "{bad}");
        }
    }

    #[test]
    fn emails_and_dates() {
        assert!(valid_email("ada@example.com"));
        for bad in ["ada", "ada@", "@x.io", "a b@x.io", "ada@localhost", "ada@x..io", "ada@-x.io"] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_lead_date("2025-01-31") && valid_lead_date("2025-01-31T09:30:00+01:00"));
        assert!(!valid_lead_date("31/01/2025") && !valid_lead_date("2025-02-30"));
    }

    #[test]
    fn a_batch_is_all_valid_or_every_problem_is_listed() {
        let good = json!({"id": "L1", "nom": " Ada ", "email": "ADA@x.io", "telephone": "06 12 34 56 78",
            "date_prise_contact": "2025-01-02", "statut": "contacte"});
        let leads = validate_batch(std::slice::from_ref(&good)).unwrap();
        assert_eq!(leads[0].nom, "Ada");
        assert_eq!(leads[0].email.as_deref(), Some("ada@x.io"));
        assert_eq!(leads[0].telephone.as_deref(), Some("+33612345678"));

        let items = vec![
            good.clone(),
            json!({"id": "", "nom": "B", "email": "nope", "date_relance": "demain", "statut": "chaud"}),
            json!({"id": "L3", "nom": "C", "age": "3"}),
            json!({"id": "L4", "nom": 4}),
            json!("L5"),
            json!({"nom": "F", "id": null}),
        ];
        let problems = validate_batch(&items).unwrap_err();
        let listed: Vec<(usize, &str)> = problems.iter().map(|p| (p.index, p.field.as_str())).collect();
        assert_eq!(
            listed,
            [(1, "id"), (1, "email"), (1, "statut"), (1, "date_relance"), (2, "age"), (3, "nom"), (4, ""), (5, "id")]
        );
    }

    #[test]
    fn every_text_field_has_a_maximum_length_named_in_the_problem() {
        let long = |n: usize| "x".repeat(n);
        let lead = Lead { id: "L1".into(), nom: long(MAX_NOM_CHARS), ..Lead::default() };
        assert!(lead.clone().validated().is_ok());
        let problems = Lead { nom: long(40_000), ..lead.clone() }.validated().unwrap_err();
        assert_eq!(problems, vec![LeadProblem::new("nom", "must be at most 200 characters")]);
        // Accented names count in characters, not bytes.
        assert!(Lead { nom: "é".repeat(MAX_NOM_CHARS), ..lead.clone() }.validated().is_ok());
        let problems =
            Lead { statut: Some(long(300)), date_relance: Some(long(255)), ..lead.clone() }.validated().unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["date_relance", "statut"]);
        let problems = Lead { id: long(MAX_LEAD_ID_LEN + 1), ..lead }.validated().unwrap_err();
        assert_eq!(problems[0].field, "id");
    }

    #[test]
    fn version_ids_follow_the_request_and_the_content() {
        let at: jiff::Timestamp = "2026-11-23T09:00:00Z".parse().unwrap();
        let later: jiff::Timestamp = "2026-11-23T09:00:01Z".parse().unwrap();
        let lead = Lead { id: "L1".into(), nom: "Ada".into(), ..Lead::default() };
        let changed = Lead { statut: Some("contacte".into()), ..lead.clone() };
        // A retried request (same key) is the same version, even received later.
        assert_eq!(lead.version_id_in_request(Some("k1"), at), lead.version_id_in_request(Some("k1"), later));
        assert_ne!(lead.version_id_in_request(Some("k1"), at), changed.version_id_in_request(Some("k1"), at));
        // The same content in another request is another version: A, B, A ends on A.
        assert_ne!(lead.version_id_in_request(Some("k1"), at), lead.version_id_in_request(Some("k2"), at));
        assert_ne!(lead.version_id_in_request(None, at), lead.version_id_in_request(None, later));
        assert_ne!(lead.version_id_edited_at(at), lead.version_id_edited_at(later));
        assert!(crate::event::EventId::parse(lead.version_id_in_request(None, at)).is_ok());
    }
}
