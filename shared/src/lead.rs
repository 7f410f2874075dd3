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
    /// The five lead dates by field name, in [`crate::customer::LEAD_DATE_FIELDS`] order.
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
