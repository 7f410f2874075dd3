//! The one-scan reader of a page of `Live.getLastVisitsDetails`: the visit's fields the row needs
//! and the edits (anonymisation, names) collected while scanning, applied to the original text.

use super::anonymiser::*;
use super::row::*;
use jiff::civil::Date;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

/// Names Matomo gives out per site: custom dimensions by id (a visit carries `dimension<id>`) and
/// goals by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteMetadata {
    pub dimensions: HashMap<String, String>,
    pub goals: HashMap<String, String>,
}

/// What the visits of one page are prepared with.
#[derive(Clone, Copy)]
pub struct VisitContext<'c> {
    pub site_id: i32,
    /// The day the page was pulled for.
    pub day: Date,
    pub metadata: &'c SiteMetadata,
    pub anonymiser: &'c Anonymiser,
}

/// A page of Matomo's answer, prepared.
#[derive(Debug, Default)]
pub struct PreparedPage {
    /// Visits in the answer, prepared or not (a page shorter than `filter_limit` is the day's last).
    pub fetched: usize,
    pub rows: Vec<VisitRow>,
    /// Visits that could not be prepared, in page order.
    pub rejected: Vec<VisitError>,
}

/// Prepares a page of `Live.getLastVisitsDetails` (a JSON list of visits) in one scan. Invalid
/// JSON anywhere fails the whole page; a visit that is valid JSON but not a visit is rejected
/// alone.
pub fn prepare_page(text: &str, context: VisitContext<'_>) -> Result<PreparedPage, serde_json::Error> {
    let dimensions = DimensionNames::new(context.metadata);
    let mut reader = serde_json::Deserializer::from_str(text);
    let scans = reader.deserialize_seq(PageVisitor { text, context, dimensions: &dimensions })?;
    reader.end()?;
    let mut page = PreparedPage { fetched: scans.len(), ..PreparedPage::default() };
    let mut split: Option<Vec<&RawValue>> = None;
    for (index, scan) in scans.into_iter().enumerate() {
        // Visits whose bounds the scan could not tell (see `Scan::span`) are found by splitting
        // the page, once, in a second scan (it parsed above, so it splits).
        let row = scan.row(|scan| {
            let visits = split.get_or_insert_with(|| serde_json::from_str(text).unwrap_or_default());
            visits.get(index).and_then(|raw| scan.range_of(raw.get()))
        });
        match row {
            Ok(row) => page.rows.push(row),
            Err(e) => page.rejected.push(e),
        }
    }
    Ok(page)
}

pub(super) struct PageVisitor<'a, 'c> {
    text: &'a str,
    context: VisitContext<'c>,
    dimensions: &'c DimensionNames,
}

/// The site's dimension names by id, each with its JSON text (written once, not at every key).
pub(super) struct DimensionNames(HashMap<String, (String, String)>);

impl DimensionNames {
    fn new(metadata: &SiteMetadata) -> Self {
        Self(
            metadata
                .dimensions
                .iter()
                .map(|(id, name)| (id.clone(), (name.clone(), Value::String(name.clone()).to_string())))
                .collect(),
        )
    }

    fn get(&self, id: &str) -> Option<(&str, &str)> {
        self.0.get(id).map(|(name, json)| (name.as_str(), json.as_str()))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a, 'c> Visitor<'a> for PageVisitor<'a, 'c> {
    type Value = Vec<Scan<'a, 'c>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of visits")
    }

    fn visit_seq<S: SeqAccess<'a>>(self, mut visits: S) -> Result<Self::Value, S::Error> {
        let mut scans = Vec::with_capacity(visits.size_hint().unwrap_or(0));
        loop {
            let mut scan = Scan::new(self.text, self.context, self.dimensions);
            let seed = ValueSeed { scan: &mut scan, role: Role::Visit, paths: Some(&self.context.anonymiser.paths) };
            if visits.next_element_seed(seed)?.is_none() {
                return Ok(scans);
            }
            scans.push(scan);
        }
    }
}

/// A change to the page's text: the bytes `range` replaced by `text` (an empty range inserts).
#[derive(Debug)]
pub(super) struct Edit<'c> {
    range: Range<usize>,
    text: Cow<'c, str>,
}

/// What the scan of one visit collects. Positions are byte offsets in the page's text.
pub(super) struct Scan<'a, 'c> {
    page: &'a str,
    context: VisitContext<'c>,
    dimensions: &'c DimensionNames,
    edits: Vec<Edit<'c>>,
    /// The row's fields as JSON text, after anonymisation (a hashed `userId` is the hash).
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    goals: Vec<String>,
    /// The visit's opening brace and the end of its closing one, when the scan could tell.
    start: Option<usize>,
    end: Option<usize>,
    not_an_object: bool,
}

impl<'a, 'c> Scan<'a, 'c> {
    fn new(page: &'a str, context: VisitContext<'c>, dimensions: &'c DimensionNames) -> Self {
        Self {
            page,
            context,
            dimensions,
            edits: Vec::new(),
            fields: Vec::with_capacity(12),
            goals: Vec::new(),
            start: None,
            end: None,
            not_an_object: false,
        }
    }

    /// Where `part`, a slice the parser borrowed from the page, lies in it.
    fn range_of(&self, part: &str) -> Option<Range<usize>> {
        let start = (part.as_ptr() as usize).checked_sub(self.page.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        (end <= self.page.len()).then_some(start..end)
    }

    /// The place of a borrowed key, quotes included.
    #[allow(clippy::ptr_arg, reason = "whether the key is borrowed is the answer")]
    fn key_range(&self, key: &Cow<'a, str>) -> Option<Range<usize>> {
        match key {
            Cow::Borrowed(key) => self.range_of(key).and_then(|r| Some(r.start.checked_sub(1)?..r.end + 1)),
            Cow::Owned(_) => None,
        }
    }

    /// The end of the bracket `closer` that follows `after` past white space.
    fn closed(&self, after: Option<usize>, closer: u8) -> Option<usize> {
        let rest = self.page.as_bytes().get(after?..)?;
        let at = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        (rest[at] == closer).then_some(after? + at + 1)
    }

    /// The visit's opening brace, before its first key.
    fn opened(&self, first_key: &Range<usize>) -> Option<usize> {
        let before = self.page.as_bytes().get(..first_key.start)?;
        let at = before.iter().rposition(|b| !b.is_ascii_whitespace())?;
        (before[at] == b'{').then_some(at)
    }

    /// The visit's text in the page. The scan knows it from the first key and the end of the
    /// last value; it cannot when the first key holds escapes or the last value is an empty list
    /// or object it walked through (Matomo sends neither), and then the page is split instead.
    fn span(&self) -> Option<Range<usize>> {
        Some(self.start?..self.end?)
    }

    /// Replaces `raw` by its hash, and gives the hash's JSON text (`None`: nothing to hide).
    fn anonymise<E: de::Error>(&mut self, raw: &'a RawValue) -> Result<Option<&str>, E> {
        let Some(replacement) = self.context.anonymiser.replacement(raw) else { return Ok(None) };
        // The parser hands out slices of the page; a value it could not place would be left in
        // clear, so the page is refused instead.
        let range = self.range_of(raw.get()).ok_or_else(|| E::custom("a value outside the page"))?;
        self.edits.push(Edit { range, text: Cow::Owned(replacement) });
        Ok(self.edits.last().map(|edit| &*edit.text))
    }

    /// The JSON text of a field the row reads (the last, should Matomo repeat a key).
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().rev().find(|(key, _)| key == name).map(|(_, text)| &**text)
    }

    /// The row: the visit's text with every edit applied, and its fields. `split` places the
    /// visit in the page when the scan could not.
    fn row(mut self, split: impl FnOnce(&Self) -> Option<Range<usize>>) -> Result<VisitRow, VisitError> {
        if self.not_an_object {
            return Err(VisitError::NotAnObject);
        }
        let id_visit = json_integer(self.field("idVisit")).ok_or(VisitError::NoId)?;
        let span = match self.span() {
            Some(span) => span,
            None => split(&self).ok_or(VisitError::Unplaced)?,
        };
        self.edits.sort_by_key(|edit| edit.range.start);
        let added: usize = self.edits.iter().map(|edit| edit.text.len()).sum();
        let mut visit = String::with_capacity(span.len() + added);
        let mut at = span.start;
        for edit in &self.edits {
            visit.push_str(self.page.get(at..edit.range.start).ok_or(VisitError::Unplaced)?);
            visit.push_str(&edit.text);
            at = edit.range.end;
        }
        visit.push_str(self.page.get(at..span.end).ok_or(VisitError::Unplaced)?);
        let last_action = self.field("lastActionTimestamp").or_else(|| self.field("serverTimestamp"));
        Ok(VisitRow {
            site_id: self.context.site_id,
            day: self.context.day,
            id_visit,
            visitor_id: json_text(self.field("visitorId")),
            user_id: json_text(self.field("userId")),
            first_action_at: epoch_seconds(self.field("firstActionTimestamp")),
            last_action_at: epoch_seconds(last_action),
            actions: json_small(self.field("actions")),
            visit_duration_s: json_small(self.field("visitDuration")),
            goal_conversions: json_small(self.field("goalConversions")),
            visit,
            goals: std::mem::take(&mut self.goals),
        })
    }
}

/// What a value is to the visit: the visit itself, its `actionDetails`, one action, or anything
/// else (where only anonymisation paths apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Visit,
    Actions,
    Action,
    Other,
}

/// Reads one value of a visit, recording in the scan what it needs and what changes. It yields
/// where the value ends in the page, when it can tell.
pub(super) struct ValueSeed<'s, 'a, 'c> {
    scan: &'s mut Scan<'a, 'c>,
    role: Role,
    paths: Option<&'c PathTree>,
}

/// An object key, borrowed from the text unless it holds escapes.
pub(super) struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'a> DeserializeSeed<'a> for ValueSeed<'_, 'a, '_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'a>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// The fields of an action that make it a goal conversion.
#[derive(Default)]
pub(super) struct ActionFields<'a> {
    is_goal: bool,
    /// Where the `type` value ends (a missing `goalName` is written after it).
    type_end: usize,
    goal_id: Option<Cow<'a, str>>,
    goal_name: Option<(Range<usize>, Cow<'a, str>)>,
}

impl<'a, 'c> ValueSeed<'_, 'a, 'c> {
    fn place<E: de::Error>(&self, raw: &'a RawValue) -> Result<Range<usize>, E> {
        self.scan.range_of(raw.get()).ok_or_else(|| E::custom("a value outside the page"))
    }

    /// Keeps a field the row or the goal naming reads.
    #[allow(clippy::ptr_arg, reason = "cloning a borrowed key keeps it borrowed")]
    fn record<E: de::Error>(
        &mut self,
        key: &Cow<'a, str>,
        raw: &'a RawValue,
        value: Cow<'a, str>,
        action: &mut ActionFields<'a>,
    ) -> Result<(), E> {
        if self.role == Role::Visit {
            self.scan.fields.push((key.clone(), value));
            return Ok(());
        }
        match &**key {
            "type" => {
                action.is_goal = match plain_string(&value) {
                    Some(inside) => inside == "goal",
                    None => serde_json::from_str::<Value>(&value).ok().as_ref().and_then(Value::as_str) == Some("goal"),
                };
                action.type_end = self.place::<E>(raw)?.end;
            }
            "goalId" => action.goal_id = Some(value),
            _ => action.goal_name = Some((self.place::<E>(raw)?, value)),
        }
        Ok(())
    }

    /// Renames `dimension<id>` keys to the site's dimension names. A name that collides with a
    /// key the object already has keeps the numbered key.
    fn name_dimensions<'k>(&mut self, keys: &mut [(Cow<'k, str>, Option<Range<usize>>)])
    where
        'a: 'k,
        'c: 'k,
    {
        let dimensions: &'c DimensionNames = self.scan.dimensions;
        for index in 0..keys.len() {
            let Some((name, json)) = keys[index].0.strip_prefix("dimension").and_then(|id| dimensions.get(id)) else {
                continue;
            };
            if keys.iter().any(|(key, _)| key == name) {
                continue;
            }
            // A key written with escapes has no place in the text; Matomo writes none.
            let Some(range) = keys[index].1.clone() else { continue };
            self.scan.edits.push(Edit { range, text: Cow::Borrowed(json) });
            keys[index].0 = Cow::Borrowed(name);
        }
    }

    /// Names a goal action after the site's goal (else the name it carries, else its id), and
    /// notes the goal as converted.
    fn name_goal(&mut self, action: &ActionFields<'a>) {
        let parse = |text: &Cow<'a, str>| serde_json::from_str::<Value>(text).ok();
        let id = text_of(action.goal_id.as_ref().and_then(parse).as_ref()).unwrap_or_default();
        let carried = action.goal_name.as_ref().and_then(|(_, text)| parse(text));
        let name = self
            .scan
            .context
            .metadata
            .goals
            .get(&id)
            .cloned()
            .or_else(|| text_of(carried.as_ref()))
            .unwrap_or_else(|| format!("goal {id}"));
        let json = Value::String(name.clone()).to_string();
        let edit = match &action.goal_name {
            Some((range, _)) => Edit { range: range.clone(), text: Cow::Owned(json) },
            None => Edit { range: action.type_end..action.type_end, text: Cow::Owned(format!(",\"goalName\":{json}")) },
        };
        // The site's goal name wins over a configured hash of the name the action carried.
        match self.scan.edits.iter_mut().find(|existing| existing.range == edit.range) {
            Some(existing) => *existing = edit,
            None => self.scan.edits.push(edit),
        }
        if !self.scan.goals.contains(&name) {
            self.scan.goals.push(name);
        }
    }

    /// A value nothing is done with, read for where it ends.
    fn skip<E: de::Error>(&self, raw: &'a RawValue) -> Result<Option<usize>, E> {
        Ok(Some(self.place::<E>(raw)?.end))
    }
}

impl<'a, 'c> Visitor<'a> for ValueSeed<'_, 'a, 'c> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<M: MapAccess<'a>>(mut self, mut map: M) -> Result<Option<usize>, M::Error> {
        let renames = matches!(self.role, Role::Visit | Role::Action) && !self.scan.dimensions.is_empty();
        // A visit has about 80 keys, an action about 20.
        let mut keys: Vec<(Cow<'_, str>, Option<Range<usize>>)> = Vec::with_capacity(if renames { 96 } else { 0 });
        let mut action = ActionFields::default();
        let mut first = true;
        let mut last_end = None;
        while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
            let place = self.scan.key_range(&key);
            if first && self.role == Role::Visit {
                self.scan.start = place.as_ref().and_then(|place| self.scan.opened(place));
            }
            first = false;
            let paths = self.paths.and_then(|paths| paths.child(&key));
            let wanted = match self.role {
                Role::Visit => is_row_field(&key),
                Role::Action => matches!(&*key, "type" | "goalId" | "goalName"),
                _ => false,
            };
            last_end = if paths.is_some_and(|p| p.hashed) {
                let raw: &'a RawValue = map.next_value()?;
                let hashed = self.scan.anonymise(raw)?.map(str::to_string);
                if wanted {
                    let value = hashed.map_or(Cow::Borrowed(raw.get()), Cow::Owned);
                    self.record(&key, raw, value, &mut action)?;
                }
                self.skip(raw)?
            } else if wanted {
                let raw: &'a RawValue = map.next_value()?;
                if paths.is_some() {
                    // A path under a field the row reads (not one Matomo sends as an object).
                    let mut nested = serde_json::Deserializer::from_str(raw.get());
                    ValueSeed { scan: &mut *self.scan, role: Role::Other, paths }
                        .deserialize(&mut nested)
                        .map_err(de::Error::custom)?;
                }
                self.record(&key, raw, Cow::Borrowed(raw.get()), &mut action)?;
                self.skip(raw)?
            } else if self.role == Role::Visit && key == "actionDetails" {
                map.next_value_seed(ValueSeed { scan: &mut *self.scan, role: Role::Actions, paths })?
            } else if paths.is_some() {
                map.next_value_seed(ValueSeed { scan: &mut *self.scan, role: Role::Other, paths })?
            } else {
                let raw: &'a RawValue = map.next_value()?;
                self.skip(raw)?
            };
            if renames {
                keys.push((key, place));
            }
        }
        if renames {
            self.name_dimensions(&mut keys);
        }
        if self.role == Role::Action && action.is_goal {
            self.name_goal(&action);
        }
        let end = self.scan.closed(last_end, b'}');
        if self.role == Role::Visit {
            self.scan.end = end;
        }
        Ok(end)
    }

    fn visit_seq<S: SeqAccess<'a>>(self, mut seq: S) -> Result<Option<usize>, S::Error> {
        if self.role == Role::Visit {
            self.scan.not_an_object = true;
        }
        // Arrays are transparent to paths; the items of `actionDetails` are the actions.
        let role = if self.role == Role::Actions { Role::Action } else { Role::Other };
        let mut last_end = None;
        loop {
            let end = if role == Role::Other && self.paths.is_none() {
                match seq.next_element::<&'a RawValue>()? {
                    Some(raw) => self.skip(raw)?,
                    None => break,
                }
            } else {
                match seq.next_element_seed(ValueSeed { scan: &mut *self.scan, role, paths: self.paths })? {
                    Some(end) => end,
                    None => break,
                }
            };
            last_end = end;
        }
        Ok(self.scan.closed(last_end, b']'))
    }

    // Scalars where a visit, or more under a path, was expected.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<usize>, E> {
        Ok(self.scalar())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<usize>, E> {
        Ok(self.scalar())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<usize>, E> {
        Ok(self.scalar())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<usize>, E> {
        Ok(self.scalar())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Option<usize>, E> {
        Ok(self.scalar())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<usize>, E> {
        Ok(self.scalar())
    }
}

impl ValueSeed<'_, '_, '_> {
    /// A scalar's end is not known from a walk through it.
    fn scalar(self) -> Option<usize> {
        if self.role == Role::Visit {
            self.scan.not_an_object = true;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day() -> Date {
        "2025-03-01".parse().unwrap()
    }

    /// One visit through `prepare_page`: its row, or why it has none.
    fn prepare(visit: Value, metadata: &SiteMetadata, anonymiser: &Anonymiser) -> Result<VisitRow, VisitError> {
        let text = Value::Array(vec![visit]).to_string();
        let mut page = prepare_page(&text, VisitContext { site_id: 1, day: day(), metadata, anonymiser }).unwrap();
        assert_eq!(page.fetched, 1);
        page.rows.pop().ok_or_else(|| page.rejected.remove(0))
    }

    #[test]
    fn configured_paths_are_hashed_everywhere_they_occur() {
        let anonymiser = Anonymiser::new(b"key", &["userId".into(), "actionDetails.url".into()]);
        let visit = json!({
            "idVisit": "42", "visitIp": "203.0.113.9", "userId": "ada@example.com",
            "actionDetails": [{"type": "action", "url": "https://x.test/?email=ada@example.com"}, {"type": "event"}]
        });
        let row = prepare(visit, &SiteMetadata::default(), &anonymiser).unwrap();
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
        let row = prepare(visit, &metadata, &anonymiser).unwrap();
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
        let row = prepare(visit, &metadata, &Anonymiser::new(b"k", &[])).unwrap();
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
        let row = prepare(json!({"idVisit": 1, "userId": null}), &SiteMetadata::default(), &anonymiser).unwrap();
        assert_eq!(row.summary(), None);
        assert_eq!(prepare(json!([]), &SiteMetadata::default(), &anonymiser), Err(VisitError::NotAnObject));
        assert_eq!(prepare(json!({}), &SiteMetadata::default(), &anonymiser), Err(VisitError::NoId));
    }

    /// The same preparation done the plain way, on `serde_json::Value` trees: what the scan must
    /// agree with.
    mod plain {
        use super::super::*;

        fn hashed(anonymiser: &Anonymiser, value: &Value) -> Option<Value> {
            match value {
                Value::Null | Value::Bool(false) => None,
                Value::String(text) if text.is_empty() => None,
                Value::String(text) => Some(Value::String(anonymiser.hash(text))),
                Value::Array(items) => Some(Value::Array(
                    items.iter().map(|item| hashed(anonymiser, item).unwrap_or_else(|| item.clone())).collect(),
                )),
                other => Some(Value::String(anonymiser.hash(&other.to_string()))),
            }
        }

        fn apply_path(anonymiser: &Anonymiser, value: &mut Value, path: &[&str]) {
            match value {
                Value::Array(items) => items.iter_mut().for_each(|item| apply_path(anonymiser, item, path)),
                Value::Object(fields) => {
                    let Some((first, rest)) = path.split_first() else { return };
                    let Some(child) = fields.get_mut(*first) else { return };
                    if rest.is_empty() {
                        if let Some(replacement) = hashed(anonymiser, child) {
                            *child = replacement;
                        }
                    } else {
                        apply_path(anonymiser, child, rest);
                    }
                }
                _ => {}
            }
        }

        fn rename(value: &mut Value, names: &HashMap<String, String>) {
            let Value::Object(fields) = value else { return };
            let mut keys: Vec<String> = fields.keys().cloned().collect();
            keys.sort_by_key(|key| key.strip_prefix("dimension").and_then(|id| id.parse::<u64>().ok()));
            for key in keys {
                let Some(name) = key.strip_prefix("dimension").and_then(|id| names.get(id)) else { continue };
                if !fields.contains_key(name)
                    && let Some(value) = fields.remove(&key)
                {
                    fields.insert(name.clone(), value);
                }
            }
        }

        /// The visit as it should reach the lake, and its goals.
        pub fn prepare(
            visit: &Value,
            paths: &[&str],
            metadata: &SiteMetadata,
            anonymiser: &Anonymiser,
        ) -> (Value, Vec<String>) {
            let mut visit = visit.clone();
            let mut sorted: Vec<&str> = ALWAYS_ANONYMISED.iter().copied().chain(paths.iter().copied()).collect();
            sorted.sort();
            for path in sorted {
                apply_path(anonymiser, &mut visit, &path.split('.').collect::<Vec<_>>());
            }
            rename(&mut visit, &metadata.dimensions);
            let mut goals = Vec::new();
            if let Some(Value::Array(actions)) = visit.get_mut("actionDetails") {
                for action in actions {
                    rename(action, &metadata.dimensions);
                    if action.get("type").and_then(Value::as_str) == Some("goal") {
                        let id = text_of(action.get("goalId")).unwrap_or_default();
                        let name = metadata
                            .goals
                            .get(&id)
                            .cloned()
                            .or_else(|| text_of(action.get("goalName")))
                            .unwrap_or_else(|| format!("goal {id}"));
                        action["goalName"] = Value::String(name.clone());
                        if !goals.contains(&name) {
                            goals.push(name);
                        }
                    }
                }
            }
            (visit, goals)
        }
    }

    fn metadata() -> SiteMetadata {
        SiteMetadata {
            dimensions: HashMap::from([
                ("1".into(), "plan".into()),
                ("2".into(), "cohort".into()),
                ("3".into(), "kind".into()),
            ]),
            goals: HashMap::from([("2".into(), "Trial started".into())]),
        }
    }

    /// Prepares `page` both ways and compares every visit.
    fn agrees_with_plain(page: &str, paths: &[&str]) -> PreparedPage {
        let anonymiser = Anonymiser::new(b"k", &paths.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        let metadata = metadata();
        let prepared =
            prepare_page(page, VisitContext { site_id: 1, day: day(), metadata: &metadata, anonymiser: &anonymiser })
                .unwrap();
        let visits: Vec<Value> = serde_json::from_str(page).unwrap();
        assert_eq!((prepared.fetched, prepared.rows.len()), (visits.len(), visits.len()));
        for (row, visit) in prepared.rows.iter().zip(&visits) {
            let (expected, goals) = plain::prepare(visit, paths, &metadata, &anonymiser);
            let written: Value = serde_json::from_str(&row.visit).unwrap_or_else(|e| panic!("{e}: {}", row.visit));
            assert_eq!(written, expected, "{}", row.visit);
            assert_eq!(row.goals, goals);
            assert_eq!(row.user_id, text_of(expected.get("userId")));
            assert_eq!(Some(row.id_visit), integer(expected.get("idVisit")));
        }
        prepared
    }

    fn fixture_page() -> String {
        let file =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/matomo/live-getlastvisitsdetails-page.json");
        std::fs::read_to_string(file).unwrap()
    }

    #[test]
    fn the_scan_agrees_with_plain_trees_on_the_fixture_pretty_or_compact() {
        let pretty = fixture_page();
        let compact = serde_json::from_str::<Value>(&pretty).unwrap().to_string();
        for page in [&pretty, &compact] {
            agrees_with_plain(page, &[]);
            agrees_with_plain(page, &["userId", "actionDetails.url", "actionDetails.subtitle", "dimension2"]);
            // Whole objects and lists, numbers, a path through an object and one that goes nowhere.
            agrees_with_plain(
                page,
                &[
                    "actionDetails.dimension3",
                    "customVariables.1",
                    "visitorId",
                    "actionDetails.timeSpent",
                    "idSite.x",
                    "actionDetails.goalName",
                    "nothing.here",
                ],
            );
            agrees_with_plain(page, &["actionDetails"]);
        }
    }

    #[test]
    fn the_scan_agrees_with_plain_trees_on_awkward_visits() {
        // Escapes in keys and values, an escaped first key (the visit is then placed by a split
        // of the page), empty and nested lists and objects last, names that collide, goals named
        // or not, a visit that is not one.
        let page = r#"[
            {"\u0069dVisit": 1, "visitIp": "198.51.100.\u0037", "userId": "ada\u0040example.com", "dimension1": "pro"},
            {"idVisit": "2", "userId": "https:\/\/x.test\/u", "plan": "kept", "dimension1": "pro", "dimension2": "a",
             "actionDetails": [{"type": "goal", "goalId": 2}, {"type": "goal", "goalId": "9", "goalName": "Own"},
                               {"type": "goal", "goalId": 7}, {"type": "action", "dimension3": "p", "url": "u"}, [], 5]},
            {"idVisit": 3, "visitIp": "", "userId": null, "tags": ["a", 1, null, ["b", {"c": true}]], "actionDetails": []},
            {"idVisit": 4, "userId": false, "actionDetails": [{}]},
            { "idVisit" : 5 , "customVariables" : { "1" : { "customVariableValue1" : "secret" } } },
            {"idVisit": 6, "actionDetails": {"url": "not a list"}, "visitIp": {"v4": "203.0.113.1"}}
        ]"#;
        let paths = ["userId", "tags", "actionDetails.url", "customVariables.1.customVariableValue1"];
        let prepared = agrees_with_plain(page, &paths);
        let written = prepared.rows.iter().map(|row| row.visit.as_str()).collect::<String>();
        for clear in ["198.51.100", "ada", "example.com", "x.test", "secret", "203.0.113.1", "\"b\""] {
            assert!(!written.contains(clear), "{clear} in {written}");
        }
        assert_eq!(prepared.rows[1].goals, ["Trial started", "Own", "goal 7"]);
    }

    #[test]
    fn a_configured_value_too_large_for_a_value_tree_is_hidden_all_the_same() {
        let anonymiser = Anonymiser::new(b"k", &["big".into()]);
        let page = r#"[{"idVisit": 1, "big": 1e400}]"#;
        let metadata = SiteMetadata::default();
        let prepared =
            prepare_page(page, VisitContext { site_id: 1, day: day(), metadata: &metadata, anonymiser: &anonymiser })
                .unwrap();
        let written: Value = serde_json::from_str(&prepared.rows[0].visit).unwrap();
        assert_eq!(written["big"], anonymiser.hash("1e400"));
    }

    #[test]
    fn untouched_text_is_copied_byte_for_byte() {
        let page = "[ {\n  \"idVisit\" : 7,\t\"url\": \"https:\\/\\/x.test\\/a\",  \"n\": 1.50e3 }\n]";
        let prepared = prepare_page(
            page,
            VisitContext {
                site_id: 1,
                day: day(),
                metadata: &SiteMetadata::default(),
                anonymiser: &Anonymiser::new(b"k", &[]),
            },
        )
        .unwrap();
        assert_eq!(prepared.rows[0].visit, page[2..page.len() - 2]);
    }

    #[test]
    fn invalid_json_fails_the_page_and_odd_visits_are_rejected_alone() {
        let context = |metadata, anonymiser| VisitContext { site_id: 1, day: day(), metadata, anonymiser };
        let (metadata, anonymiser) = (SiteMetadata::default(), Anonymiser::new(b"k", &[]));
        for broken in
            [r#"[{"idVisit": 1}, {"idVisit": 2"#, r#"[{"idVisit": 1,}]"#, r#"[{"idVisit": "a\x"}]"#, "[1] 2", "{}"]
        {
            assert!(prepare_page(broken, context(&metadata, &anonymiser)).is_err(), "{broken}");
        }
        let page =
            prepare_page(r#"[{"idVisit": 1}, 2, "x", null, [3], {}, {"idVisit": 4}]"#, context(&metadata, &anonymiser))
                .unwrap();
        assert_eq!(page.fetched, 7);
        assert_eq!(page.rows.iter().map(|row| row.id_visit).collect::<Vec<_>>(), [1, 4]);
        use VisitError::*;
        assert_eq!(page.rejected, [NotAnObject, NotAnObject, NotAnObject, NotAnObject, NoId]);
    }
}
