//! The raw-delivery archive as a replay reads it: where each delivery is kept
//! (`raw/source=<source>/date=<YYYY-MM-DD>/<event id>.json`), what a replay selects from it, and
//! where a replay that ran out of time goes on.

use crate::event::{CanonicalEvent, type_selected};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every archived delivery lies under this prefix.
pub const ARCHIVE_PREFIX: &str = "raw/";

/// The object metadata a replay reads back (written by the webhook receiver beside the body).
pub mod metadata {
    pub const EVENT_ID: &str = "event-id";
    /// The event's type as it was normalised on receipt.
    pub const EVENT_TYPE: &str = "event-type";
    pub const RECEIVED_AT: &str = "received-at";
    pub const WEBHOOK_ID: &str = "webhook-id";
    pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
}

/// `raw/source=<source>/date=<YYYY-MM-DD of occurred_at, UTC>/<event id>.json`: the date of the
/// event, not of the attempt, so that a sender's retry on another day overwrites the same object.
pub fn archive_key(event: &CanonicalEvent) -> String {
    format!("{ARCHIVE_PREFIX}source={}/date={}/{}.json", event.source, event.occurred_at.strftime("%Y-%m-%d"), event.id)
}

/// The parts of an archive key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveKey<'a> {
    pub source: &'a str,
    pub date: Date,
    /// The event id as the key spells it (the object's `event-id` metadata is the authority).
    pub id: &'a str,
}

impl<'a> ArchiveKey<'a> {
    /// `None` for a key that is not an archived delivery's exactly as [`archive_key`] writes it
    /// (listing jumps between keys by their text: a date written otherwise would sort elsewhere).
    pub fn parse(key: &'a str) -> Option<Self> {
        let rest = key.strip_prefix(ARCHIVE_PREFIX)?.strip_prefix("source=")?;
        let (source, rest) = rest.split_once("/date=")?;
        let (date_text, file) = rest.split_once('/')?;
        let id = file.strip_suffix(".json")?;
        if source.is_empty() || source.contains('/') || id.is_empty() || id.contains('/') {
            return None;
        }
        let date: Date = date_text.parse().ok()?;
        (date.to_string() == date_text).then_some(Self { source, date, id })
    }
}

/// What a replay found and did, summed over every invocation of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayTotals {
    /// Selected deliveries by event type as today's code names it (`stripe.customer.created`:
    /// the type begins with its source).
    #[serde(default)]
    pub by_type: BTreeMap<String, u64>,
    /// Deliveries published again (none in a dry run).
    #[serde(default)]
    pub published: u64,
    /// Archived deliveries of the selection today's code refuses (or the bus cannot carry), each
    /// logged with its key and why.
    #[serde(default)]
    pub refused: u64,
    /// Archive listing pages read.
    #[serde(default)]
    pub pages: u64,
}

impl ReplayTotals {
    pub fn selected(&self) -> u64 {
        self.by_type.values().sum()
    }
}

/// What to replay: the archived deliveries of a source (or every source), of a type or family (a
/// prefix ending in `.`) or every type, whose event occurred in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Count what would be replayed, publish nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Checkpoint of a continuation: archive keys up to this one are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// When the run's first invocation started: every invocation records the run under it, so
    /// that the history holds one run with its totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// The run a continuation belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The name of the API key that asked (set by the API, never by the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// What the run's earlier invocations counted.
    #[serde(default, skip_serializing_if = "is_default")]
    pub totals: ReplayTotals,
}

fn is_default(totals: &ReplayTotals) -> bool {
    *totals == ReplayTotals::default()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidReplay(String);

/// Longest range one request may name: a year of deliveries (a longer backfill is several).
pub const MAX_REPLAY_DAYS: i64 = 366;

impl ReplayRequest {
    /// Every delivery of every source whose event occurred in `[from, to)`, published again.
    pub fn between(from: Timestamp, to: Timestamp) -> Self {
        Self {
            source: None,
            event_type: None,
            from,
            to,
            dry_run: false,
            after: None,
            started_at: None,
            run_id: None,
            requested_by: None,
            totals: ReplayTotals::default(),
        }
    }

    pub fn validate(&self) -> Result<(), InvalidReplay> {
        let invalid = |message: &str| Err(InvalidReplay(message.into()));
        if self.from >= self.to {
            return invalid("from must be before to");
        }
        if self.to.duration_since(self.from).as_hours() > MAX_REPLAY_DAYS * 24 {
            return invalid("a replay covers at most 366 days");
        }
        if let Some(source) = &self.source {
            let valid = !source.is_empty()
                && source.len() <= 40
                && source.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                return invalid("source is a sender's name: 1-40 of a-z 0-9 -");
            }
        }
        if self.event_type.as_deref().is_some_and(|t| t.is_empty() || t.len() > 200) {
            return invalid("event_type is 1 to 200 characters");
        }
        Ok(())
    }

    /// What the run history names it by.
    pub fn scope(&self) -> String {
        format!(
            "{}{} {} from {} to {}",
            if self.dry_run { "dry run: " } else { "" },
            self.source.as_deref().unwrap_or("every source"),
            self.event_type.as_deref().unwrap_or("every type"),
            self.from,
            self.to
        )
    }

    /// Where listing starts: the request's checkpoint, else the first key the range can hold.
    pub fn start_after(&self) -> String {
        match (&self.after, &self.source) {
            (Some(after), _) => after.clone(),
            (None, Some(source)) => format!("{ARCHIVE_PREFIX}source={source}/date={}", self.first_date()),
            (None, None) => ARCHIVE_PREFIX.to_string(),
        }
    }

    /// The prefix listed: one source's deliveries, or all.
    pub fn prefix(&self) -> String {
        match &self.source {
            Some(source) => format!("{ARCHIVE_PREFIX}source={source}/"),
            None => ARCHIVE_PREFIX.to_string(),
        }
    }

    fn first_date(&self) -> Date {
        self.from.to_zoned(jiff::tz::TimeZone::UTC).date()
    }

    /// The last date an event of the range can have (`to` is excluded).
    fn last_date(&self) -> Date {
        let last = self.to.checked_sub(jiff::SignedDuration::from_nanos(1)).unwrap_or(self.to);
        last.to_zoned(jiff::tz::TimeZone::UTC).date()
    }

    /// Where a listed key stands against the range, by its date alone (the event's own time and
    /// type are checked once the delivery is normalised: [`ReplayRequest::selects`]).
    pub fn place(&self, key: &ArchiveKey<'_>) -> KeyPlace {
        if self.source.as_deref().is_some_and(|source| source != key.source) {
            KeyPlace::Outside
        } else if key.date < self.first_date() {
            KeyPlace::Before(format!("{ARCHIVE_PREFIX}source={}/date={}", key.source, self.first_date()))
        } else if key.date > self.last_date() {
            KeyPlace::PastSource
        } else {
            KeyPlace::Within
        }
    }

    /// Whether the normalised event is in the selection.
    pub fn selects(&self, event: &CanonicalEvent) -> bool {
        type_selected(self.event_type.as_deref(), &event.event_type)
            && event.occurred_at >= self.from
            && event.occurred_at < self.to
    }
}

/// A listed key against a replay's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlace {
    /// Earlier than the range: listing goes on after this key.
    Before(String),
    Within,
    /// Not of the source asked: passed over.
    Outside,
    /// Later than the range for its source: the source is done.
    PastSource,
}

/// The key after which listing finds the next source's deliveries (`~` sorts after `date=`).
pub fn after_source(source: &str) -> String {
    format!("{ARCHIVE_PREFIX}source={source}/~")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(source: Option<&str>) -> ReplayRequest {
        let between =
            ReplayRequest::between("2026-11-02T10:00:00Z".parse().unwrap(), "2026-11-04T00:00:00Z".parse().unwrap());
        ReplayRequest { source: source.map(str::to_string), ..between }
    }

    #[test]
    fn keys_round_trip_and_strangers_are_refused() {
        let key = ArchiveKey::parse("raw/source=stripe/date=2026-11-03/evt_1.json").unwrap();
        assert_eq!((key.source, key.date.to_string().as_str(), key.id), ("stripe", "2026-11-03", "evt_1"));
        let strangers = [
            "raw/x.json",
            "raw/source=s/date=2026-13-01/e.json",
            "other/source=s/date=2026-11-03/e.json",
            // Dates that parse but are not written so: they sort elsewhere than their day.
            "raw/source=s/date=20261103/e.json",
            "raw/source=s/date=+002026-11-03/e.json",
            "raw/source=s/a/date=2026-11-03/e.json",
        ];
        for stranger in strangers {
            assert_eq!(ArchiveKey::parse(stranger), None, "{stranger}");
        }
    }

    #[test]
    fn a_range_places_keys_by_date_and_source() {
        let one = request(Some("stripe"));
        assert_eq!(one.start_after(), "raw/source=stripe/date=2026-11-02");
        assert_eq!(one.prefix(), "raw/source=stripe/");
        let place = |r: &ReplayRequest, key: &str| r.place(&ArchiveKey::parse(key).unwrap());
        assert_eq!(place(&one, "raw/source=stripe/date=2026-11-03/e.json"), KeyPlace::Within);
        // `to` is excluded: midnight of the 4th ends the range on the 3rd.
        assert_eq!(place(&one, "raw/source=stripe/date=2026-11-04/e.json"), KeyPlace::PastSource);
        let all = request(None);
        assert_eq!(
            place(&all, "raw/source=make/date=2026-10-01/e.json"),
            KeyPlace::Before("raw/source=make/date=2026-11-02".into())
        );
        // Past every key of its source, before every key of the sources listed after it.
        assert!(after_source("make").as_str() > "raw/source=make/date=9999-12-31/zzz.json");
        assert!(after_source("make").as_str() < "raw/source=make0/date=2026-01-01/a.json");
    }

    #[test]
    fn requests_are_bounded() {
        let mut bad = request(Some("Stripe"));
        assert!(bad.validate().is_err());
        bad.source = None;
        assert!(bad.validate().is_ok());
        bad.to = bad.from;
        assert_eq!(bad.validate().unwrap_err().to_string(), "from must be before to");
        bad.to = "2030-01-01T00:00:00Z".parse().unwrap();
        assert!(bad.validate().is_err());
        let text = r#"{"from":"2026-11-02T00:00:00Z","to":"2026-11-03T00:00:00Z","everything":true}"#;
        assert!(serde_json::from_str::<ReplayRequest>(text).is_err());
    }
}
