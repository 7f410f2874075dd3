//! The `matomo_visits` row a visit becomes, and its `matomo.visit` summary.

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::Value;
use tributary_domain::customer::rules::VisitSummary;

/// A visit ready for the lake, plus its bus summary when the visitor is known.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitRow {
    pub site_id: i32,
    pub day: Date,
    pub id_visit: i64,
    pub visitor_id: Option<String>,
    pub user_id: Option<String>,
    pub first_action_at: Option<Timestamp>,
    pub last_action_at: Option<Timestamp>,
    pub actions: Option<i32>,
    pub visit_duration_s: Option<i32>,
    pub goal_conversions: Option<i32>,
    /// The visit as JSON text, anonymised and named.
    pub visit: String,
    pub goals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VisitError {
    #[error("a visit is not a JSON object")]
    NotAnObject,
    #[error("a visit has no idVisit")]
    NoId,
    #[error("a visit's text could not be placed in the page")]
    Unplaced,
}

/// Matomo sends most numbers as JSON numbers and some as strings (`"visitServerHour":"7"`), and
/// which ones varies between versions and plugins.
pub(super) fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The inside of a JSON string written without escapes (most of Matomo's), read without decoding.
pub(super) fn plain_string(json: &str) -> Option<&str> {
    json.strip_prefix('"')?.strip_suffix('"').filter(|inside| !inside.contains('\\'))
}

/// [`integer`] of a value's JSON text; a plain integer is read without building a `Value`.
pub(super) fn json_integer(json: Option<&str>) -> Option<i64> {
    let json = json?;
    json.parse().ok().or_else(|| integer(serde_json::from_str(json).ok().as_ref()))
}

pub(super) fn json_small(json: Option<&str>) -> Option<i32> {
    json_integer(json).and_then(|n| i32::try_from(n).ok())
}

/// [`text_of`] of a value's JSON text; a string without escapes is read without building a `Value`.
pub(super) fn json_text(json: Option<&str>) -> Option<String> {
    let json = json?;
    match plain_string(json) {
        Some(inside) => (!inside.is_empty()).then(|| inside.to_string()),
        None => text_of(serde_json::from_str(json).ok().as_ref()),
    }
}

pub(super) fn epoch_seconds(json: Option<&str>) -> Option<Timestamp> {
    json_integer(json).and_then(|s| Timestamp::from_second(s).ok())
}

/// The visit fields a row is made of.
pub(super) fn is_row_field(key: &str) -> bool {
    matches!(
        key,
        "idVisit"
            | "visitorId"
            | "userId"
            | "firstActionTimestamp"
            | "lastActionTimestamp"
            | "serverTimestamp"
            | "actions"
            | "visitDuration"
            | "goalConversions"
    )
}

impl VisitRow {
    /// The `matomo.visit` payload, for visits of a known visitor only.
    pub fn summary(&self) -> Option<VisitSummary> {
        let user_id = self.user_id.clone()?;
        Some(VisitSummary {
            visit_id: self.id_visit.to_string(),
            site_id: u32::try_from(self.site_id).ok()?,
            time: self.first_action_at.or(self.last_action_at)?,
            user_id: Some(user_id),
            goals: self.goals.clone(),
            actions: self.actions.and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
        })
    }
}
