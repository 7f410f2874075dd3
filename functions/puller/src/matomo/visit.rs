//! One Matomo visit on its way to the lake: anonymised, custom dimensions and goals named, turned
//! into a `matomo_visits` row and, when the visitor is known, a `matomo.visit` summary.

use super::lazy::Node;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Sha256;
use std::borrow::Cow;
use std::collections::HashMap;
use tributary_shared::customer::rules::VisitSummary;

type HmacSha256 = Hmac<Sha256>;

/// Names Matomo gives out per site: custom dimensions by id (a visit carries `dimension<id>`) and
/// goals by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteMetadata {
    pub dimensions: HashMap<String, String>,
    pub goals: HashMap<String, String>,
}

/// Replaces configured values by their keyed hash (HMAC-SHA256, hex): the same value always gives
/// the same hash, so visits still join on it, but the value cannot be read back without the key.
#[derive(Clone)]
pub struct Anonymiser {
    keyed: HmacSha256,
    /// Dotted paths split once; a path that crosses an array applies to every item.
    paths: Vec<Vec<String>>,
}

/// Always anonymised, whatever the configuration says.
pub const ALWAYS_ANONYMISED: [&str; 1] = ["visitIp"];

impl Anonymiser {
    pub fn new(key: &[u8], columns: &[String]) -> Self {
        // An HMAC accepts keys of any length; `new_from_slice` only fails for fixed-size MACs.
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
        let mut paths: Vec<Vec<String>> = ALWAYS_ANONYMISED
            .iter()
            .map(|c| c.to_string())
            .chain(columns.iter().cloned())
            .map(|column| column.split('.').map(str::to_string).collect())
            .collect();
        paths.sort();
        paths.dedup();
        Self { keyed, paths }
    }

    pub fn hash(&self, text: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Anonymises every configured path of the visit in place.
    pub fn apply(&self, visit: &mut Node<'_>) {
        for path in &self.paths {
            self.apply_path(visit, path);
        }
    }

    fn apply_path(&self, node: &mut Node<'_>, path: &[String]) {
        node.expand();
        match node {
            Node::Array(items) => {
                for item in items {
                    self.apply_path(item, path);
                }
            }
            Node::Object(_) => {
                let Some((first, rest)) = path.split_first() else { return };
                let Some(child) = node.get_mut(first) else { return };
                if rest.is_empty() {
                    if let Some(replaced) = child.value().and_then(|value| self.replaced(value)) {
                        *child = Node::Json(replaced.to_string());
                    }
                } else {
                    self.apply_path(child, rest);
                }
            }
            _ => {}
        }
    }

    /// The hashed form of a value; `None` when there is nothing to hide.
    fn replaced(&self, value: Value) -> Option<Value> {
        match value {
            // Matomo's anonymous tokens also answer `false` for hidden fields.
            Value::Null | Value::Bool(false) => None,
            Value::String(text) if text.is_empty() => None,
            Value::String(text) => Some(Value::String(self.hash(&text))),
            Value::Array(items) => {
                Some(Value::Array(items.into_iter().map(|item| self.replaced(item.clone()).unwrap_or(item)).collect()))
            }
            other => Some(Value::String(self.hash(&other.to_string()))),
        }
    }
}

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
}

/// Matomo sends most numbers as JSON numbers and some as strings (`"visitServerHour":"7"`), and
/// which ones varies between versions and plugins.
fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn small(value: Option<&Value>) -> Option<i32> {
    integer(value).and_then(|n| i32::try_from(n).ok())
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn epoch_seconds(value: Option<&Value>) -> Option<Timestamp> {
    integer(value).and_then(|s| Timestamp::from_second(s).ok())
}

/// Renames `dimension<id>` keys of an expanded object to the configured dimension names.
fn name_dimensions(node: &mut Node<'_>, names: &HashMap<String, String>) {
    let Node::Object(fields) = node else { return };
    if names.is_empty() {
        return;
    }
    for index in 0..fields.len() {
        let Some(name) = fields[index].0.strip_prefix("dimension").and_then(|id| names.get(id)) else { continue };
        // A name that collides with a field Matomo already sends keeps the numbered key.
        if !fields.iter().any(|(key, _)| key == name) {
            fields[index].0 = Cow::Owned(name.clone());
        }
    }
}

fn field(node: &Node<'_>, key: &str) -> Option<Value> {
    node.get(key).and_then(Node::value)
}

/// Prepares one visit of `site_id` pulled for `day` (a raw slice of Matomo's answer).
pub fn prepare_visit(
    raw: &RawValue,
    site_id: i32,
    day: Date,
    metadata: &SiteMetadata,
    anonymiser: &Anonymiser,
) -> Result<VisitRow, VisitError> {
    let mut visit = Node::Raw(raw);
    visit.expand();
    if !matches!(visit, Node::Object(_)) {
        return Err(VisitError::NotAnObject);
    }
    // Configured paths name Matomo's own fields (`dimension3`, not the dimension's name), so
    // anonymise before renaming: nothing configured can slip through under its new name.
    anonymiser.apply(&mut visit);
    let id_visit = integer(field(&visit, "idVisit").as_ref()).ok_or(VisitError::NoId)?;
    name_dimensions(&mut visit, &metadata.dimensions);
    let mut goals = Vec::new();
    if let Some(actions) = visit.get_mut("actionDetails") {
        actions.expand();
        if let Node::Array(items) = actions {
            for action in items.iter_mut() {
                action.expand();
                name_dimensions(action, &metadata.dimensions);
                if field(action, "type").as_ref().and_then(Value::as_str) == Some("goal") {
                    let id = text(field(action, "goalId").as_ref()).unwrap_or_default();
                    let name = metadata
                        .goals
                        .get(&id)
                        .cloned()
                        .or_else(|| text(field(action, "goalName").as_ref()))
                        .unwrap_or_else(|| format!("goal {id}"));
                    action.set("goalName", Node::string(&name));
                    if !goals.contains(&name) {
                        goals.push(name);
                    }
                }
            }
        }
    }
    let last_action = field(&visit, "lastActionTimestamp").or_else(|| field(&visit, "serverTimestamp"));
    let mut text_form = String::with_capacity(raw.get().len() + 256);
    visit.write(&mut text_form);
    Ok(VisitRow {
        site_id,
        day,
        id_visit,
        visitor_id: text(field(&visit, "visitorId").as_ref()),
        user_id: text(field(&visit, "userId").as_ref()),
        first_action_at: epoch_seconds(field(&visit, "firstActionTimestamp").as_ref()),
        last_action_at: epoch_seconds(last_action.as_ref()),
        actions: small(field(&visit, "actions").as_ref()),
        visit_duration_s: small(field(&visit, "visitDuration").as_ref()),
        goal_conversions: small(field(&visit, "goalConversions").as_ref()),
        visit: text_form,
        goals,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day() -> Date {
        "2025-03-01".parse().unwrap()
    }

    fn raw(value: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&value).unwrap()
    }

    #[test]
    fn configured_paths_are_hashed_everywhere_they_occur() {
        let anonymiser = Anonymiser::new(b"key", &["userId".into(), "actionDetails.url".into()]);
        let visit = json!({
            "idVisit": "42", "visitIp": "203.0.113.9", "userId": "ada@example.com",
            "actionDetails": [{"type": "action", "url": "https://x.test/?email=ada@example.com"}, {"type": "event"}]
        });
        let row = prepare_visit(&raw(visit), 1, day(), &SiteMetadata::default(), &anonymiser).unwrap();
        for clear in ["203.0.113.9", "ada@example.com"] {
            assert!(!row.visit.contains(clear), "{clear} in {}", row.visit);
        }
        assert_eq!(row.user_id.as_deref(), Some(anonymiser.hash("ada@example.com").as_str()));
        assert_eq!(row.id_visit, 42);
        assert_eq!(anonymiser.hash("x").len(), 64);
        assert_ne!(Anonymiser::new(b"other", &[]).hash("x"), anonymiser.hash("x"));
    }

    #[test]
    fn dimensions_are_anonymised_by_their_matomo_name_before_renaming() {
        let metadata =
            SiteMetadata { dimensions: HashMap::from([("3".into(), "email_domain".into())]), ..Default::default() };
        let anonymiser = Anonymiser::new(b"k", &["dimension3".into(), "actionDetails.dimension3".into()]);
        let visit = json!({"idVisit": 1, "dimension3": "ada@example.com", "actionDetails": [{"dimension3": "ada@example.com"}]});
        let row = prepare_visit(&raw(visit), 1, day(), &metadata, &anonymiser).unwrap();
        let parsed: Value = serde_json::from_str(&row.visit).unwrap();
        assert_eq!(parsed["email_domain"], anonymiser.hash("ada@example.com"));
        assert_eq!(parsed["actionDetails"][0]["email_domain"], anonymiser.hash("ada@example.com"));
        assert!(!row.visit.contains("ada@example.com"));
    }

    #[test]
    fn dimensions_and_goals_get_their_names() {
        let metadata = SiteMetadata {
            dimensions: HashMap::from([("1".into(), "plan".into()), ("3".into(), "page_kind".into())]),
            goals: HashMap::from([("2".into(), "Signup".into())]),
        };
        let visit = json!({
            "idVisit": 7, "userId": "u-1", "firstActionTimestamp": 1740819600, "actions": "3", "dimension1": "pro",
            "actionDetails": [{"type": "action", "dimension3": "pricing"}, {"type": "goal", "goalId": "2"}, {"type": "goal", "goalId": 9}]
        });
        let row = prepare_visit(&raw(visit), 1, day(), &metadata, &Anonymiser::new(b"k", &[])).unwrap();
        let parsed: Value = serde_json::from_str(&row.visit).unwrap();
        assert_eq!(parsed["plan"], "pro");
        assert_eq!(parsed["actionDetails"][0]["page_kind"], "pricing");
        assert_eq!(parsed["actionDetails"][1]["goalName"], "Signup");
        assert_eq!(row.goals, vec!["Signup".to_string(), "goal 9".to_string()]);
        let summary = row.summary().unwrap();
        assert_eq!((summary.actions, summary.user_id.as_deref()), (3, Some("u-1")));
        assert_eq!(summary.time.to_string(), "2025-03-01T09:00:00Z");
    }

    #[test]
    fn anonymous_visits_have_no_summary_and_bad_ones_a_clear_error() {
        let anonymiser = Anonymiser::new(b"k", &[]);
        let row =
            prepare_visit(&raw(json!({"idVisit": 1, "userId": null})), 1, day(), &SiteMetadata::default(), &anonymiser)
                .unwrap();
        assert_eq!(row.summary(), None);
        assert_eq!(
            prepare_visit(&raw(json!([])), 1, day(), &SiteMetadata::default(), &anonymiser),
            Err(VisitError::NotAnObject)
        );
        assert_eq!(
            prepare_visit(&raw(json!({})), 1, day(), &SiteMetadata::default(), &anonymiser),
            Err(VisitError::NoId)
        );
    }
}
