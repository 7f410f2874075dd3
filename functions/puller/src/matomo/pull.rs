//! The Matomo pull of one site: day by day, page by page, from the committed position to
//! yesterday, each group of pages appended to `matomo_visits` in one commit that also records
//! the new position.
//!
//! Order of effects per page: fetch → publish the page's `matomo.visit` events → (every
//! `commit_pages` pages) commit rows + position. A run that dies after publishing and before the
//! commit refetches those pages and republishes the same event ids, which consumers recognise as
//! duplicates; the lake never gets a page twice, because the position moves in the same commit.

use super::api::MatomoApi;
use super::batch::visits_batch;
use super::position::{MAX_OFFSET, Position};
use super::visit::{Anonymiser, VisitContext, VisitRow};
use crate::{Budget, PullError};
use jiff::Timestamp;
use jiff::civil::Date;
use tributary_domain::customer::rules::VisitSummary;
use tributary_domain::event::{CanonicalEvent, Subject, types};
use tributary_domain::ports::{BusMessage, EventPublisher, PortError};
use tributary_domain::sync::SyncRun;
use tributary_lake::{AppPosition, LakeTable};

/// How long after a site-local midnight the day before is pulled.
pub const SETTLE: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// What the Matomo job needs beyond the API client.
#[derive(Debug, Clone)]
pub struct MatomoSettings {
    pub start_date: Date,
    /// `filter_limit`.
    pub page_size: u64,
    /// Pages per lake commit.
    pub commit_pages: u32,
    /// The sites' time zone: Matomo files visits under site-local days, and a day is pulled once
    /// it is over there.
    pub timezone: jiff::tz::TimeZone,
}

pub struct MatomoJob<'a, P> {
    pub api: &'a MatomoApi,
    pub publisher: &'a P,
    pub anonymiser: &'a Anonymiser,
    pub settings: &'a MatomoSettings,
}

/// The `matomo.visit` event of a known visitor's visit; its id follows the visit, so a republished
/// page gives the same ids.
pub fn visit_message(row: &VisitRow, summary: &VisitSummary, now: Timestamp) -> Result<BusMessage, PortError> {
    let build = |e: &dyn std::fmt::Display| PortError::new("build matomo.visit event", e.to_string());
    // Matomo's own id, whatever it looks like: whether an address-shaped userId is also the
    // visitor's e-mail identity is the processor's configured decision (`MATOMO_USER_ID_AS_EMAIL`).
    let subject = summary.user_id.as_deref().map(|user| Subject::external("matomo", user));
    let id = format!("matomo-{}-{}", row.site_id, row.id_visit);
    let event = CanonicalEvent::produced(id, "matomo", types::MATOMO_VISIT, subject, summary.time, now, summary)
        .map_err(|e| build(&e))?;
    BusMessage::from_event(&event).map_err(|e| build(&e))
}

impl<P: EventPublisher> MatomoJob<'_, P> {
    /// The last day whose visits are complete: yesterday in the sites' time zone, once
    /// [`SETTLE`] has passed since midnight there (a visit still active at midnight moves to the
    /// next day with its last action; Matomo closes a visit after 30 minutes without one).
    pub fn last_complete_day(&self, now: Timestamp) -> Result<Date, PullError> {
        (now - SETTLE)
            .to_zoned(self.settings.timezone.clone())
            .date()
            .yesterday()
            .map_err(|e| PullError::Config(format!("no day before today: {e}")))
    }

    /// Pulls `site` until yesterday or the budget runs out. `Ok(true)`: up to date; `Ok(false)`:
    /// stopped for the deadline with more to do. `run` follows the progress (pages, records,
    /// committed position).
    pub async fn pull_site(
        &self,
        lake: &mut LakeTable,
        site: u32,
        budget: &Budget,
        run: &mut SyncRun,
    ) -> Result<bool, PullError> {
        let app_id = Position::app_id(site);
        let committed = lake.committed_position(&app_id).await?.map(Position::from_version).transpose()?;
        let mut position = committed.unwrap_or(Position::start_of(self.settings.start_date));
        run.watermark_before = Some(position.to_string());
        run.watermark_after = Some(position.to_string());
        let last_day = self.last_complete_day(Timestamp::now())?;
        if position.day > last_day {
            return Ok(true);
        }
        let metadata = self.api.metadata(site, budget).await?;
        let schema = lake.arrow_schema()?;
        let site_id = i32::try_from(site).map_err(|_| PullError::Config(format!("site id {site} is too large")))?;
        let limit = self.settings.page_size;

        let mut pending: Vec<VisitRow> = Vec::new();
        let mut pending_pages = 0u32;
        let outcome: Result<bool, PullError> = loop {
            if position.day > last_day {
                break Ok(true);
            }
            if budget.exhausted() {
                break Ok(false);
            }
            let context = VisitContext { site_id, day: position.day, metadata: &metadata, anonymiser: self.anonymiser };
            let page = match self.api.visits(context, position.offset, limit, budget).await {
                Ok(page) => page,
                Err(e) => break Err(e.into()),
            };
            run.pages += 1;
            let fetched = page.fetched as u64;
            for e in &page.rejected {
                run.rejected += 1;
                tracing::warn!(site, day = %position.day, error = %e, "visit skipped");
            }
            let mut rows = page.rows;
            let now = Timestamp::now();
            let messages: Result<Vec<BusMessage>, PortError> =
                rows.iter().filter_map(|row| row.summary().map(|s| visit_message(row, &s, now))).collect();
            let published = match messages {
                Ok(messages) => self.publisher.publish_all(&messages).await,
                Err(e) => Err(e),
            };
            if let Err(e) = published {
                break Err(PullError::Publish(e));
            }
            // A short page is the day's last (Matomo pages with LIMIT/OFFSET over the finished
            // day); an empty one too, including after a page of exactly `limit` visits.
            position = if fetched < limit {
                match position.day.tomorrow() {
                    Ok(next) => Position::start_of(next),
                    Err(e) => break Err(PullError::Config(format!("no day after {}: {e}", position.day))),
                }
            } else if position.offset + fetched >= MAX_OFFSET {
                break Err(PullError::Config(format!(
                    "more than {MAX_OFFSET} visits on {} for site {site}",
                    position.day
                )));
            } else {
                Position { day: position.day, offset: position.offset + fetched }
            };
            pending.append(&mut rows);
            pending_pages += 1;
            if pending_pages >= self.settings.commit_pages {
                if let Err(e) = commit(lake, &schema, &app_id, &mut pending, position, run).await {
                    break Err(e);
                }
                pending_pages = 0;
            }
        };
        // What was fetched and published is committed even when the run stops on an error.
        if pending_pages > 0 {
            let committed = commit(lake, &schema, &app_id, &mut pending, position, run).await;
            if let (Ok(_), Err(e)) = (&outcome, committed) {
                return Err(e);
            }
        }
        outcome
    }
}

async fn commit(
    lake: &mut LakeTable,
    schema: &tributary_lake::deltalake::arrow::datatypes::SchemaRef,
    app_id: &str,
    rows: &mut Vec<VisitRow>,
    position: Position,
    run: &mut SyncRun,
) -> Result<(), PullError> {
    let batches = if rows.is_empty() { Vec::new() } else { vec![visits_batch(schema, rows, Timestamp::now())?] };
    let outcome =
        lake.append(batches, Some(AppPosition { app_id: app_id.to_string(), version: position.version() })).await?;
    tracing::info!(table = lake.name(), rows = rows.len(), position = %position, ?outcome, "committed");
    run.records += rows.len() as u64;
    run.watermark_after = Some(position.to_string());
    rows.clear();
    Ok(())
}

impl From<super::position::BadPosition> for PullError {
    fn from(e: super::position::BadPosition) -> Self {
        PullError::Config(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visit_events_are_keyed_by_site_and_visit() {
        let row = VisitRow {
            site_id: 3,
            day: Date::constant(2025, 1, 1),
            id_visit: 77,
            visitor_id: None,
            user_id: Some("ada@example.com".into()),
            first_action_at: Some("2025-01-01T10:00:00Z".parse().unwrap()),
            last_action_at: None,
            actions: Some(2),
            visit_duration_s: None,
            goal_conversions: None,
            visit: "{}".into(),
            goals: vec![],
        };
        let summary = row.summary().unwrap();
        let message = visit_message(&row, &summary, Timestamp::now()).unwrap();
        let event = CanonicalEvent::from_message(&message.body).unwrap();
        assert_eq!(event.id.as_str(), "matomo-3-77");
        assert_eq!(
            event.subject.unwrap().as_str(),
            "matomo:ada@example.com",
            "Matomo's id, never an e-mail identity here"
        );
        assert_eq!((message.source.as_str(), message.event_type.as_str()), ("matomo", "matomo.visit"));
    }
}
