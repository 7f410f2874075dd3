//! The Notion delta sync of one query target: pages edited since the watermark (minus an overlap,
//! since Notion rounds `last_edited_time` down to the minute), oldest first, each valid page
//! published as a `lead.upserted` event, the watermark moved after each published page of results.

use super::api::{NotionApi, QueryTarget};
use super::mapping::PropertyMap;
use crate::{Budget, PullError};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tributary_domain::ports::{BusMessage, EventPublisher, PortError, SNS_MAX_MESSAGE_BYTES, SyncStore};
use tributary_domain::sync::SyncRun;

/// Re-read this much before the watermark: edits in the watermark's minute made after the last
/// read carry the same rounded time.
pub const WATERMARK_OVERLAP: SignedDuration = SignedDuration::from_secs(120);

pub struct NotionJob<'a, P, S> {
    pub api: &'a NotionApi,
    pub publisher: &'a P,
    pub store: &'a S,
    pub properties: &'a PropertyMap,
}

pub fn watermark_key(target: &QueryTarget) -> String {
    format!("notion#{}", target.scope())
}

impl<P: EventPublisher, S: SyncStore> NotionJob<'_, P, S> {
    /// `Ok(true)`: every edited page is published; `Ok(false)`: stopped for the deadline.
    pub async fn pull_target(
        &self,
        target: &QueryTarget,
        budget: &Budget,
        run: &mut SyncRun,
    ) -> Result<bool, PullError> {
        let key = watermark_key(target);
        let mut watermark: Option<Timestamp> = match self.store.watermark(&key).await.map_err(PullError::Store)? {
            Some(text) => Some(text.parse().map_err(|e| PullError::Config(format!("watermark {key} {text:?}: {e}")))?),
            None => None,
        };
        run.watermark_before = watermark.map(|w| w.to_string());
        run.watermark_after = run.watermark_before.clone();
        let since = watermark.map(|w| (w - WATERMARK_OVERLAP).to_string());
        let mut cursor: Option<String> = None;
        loop {
            if budget.exhausted() {
                return Ok(false);
            }
            let page = self.api.query(target, since.as_deref(), cursor.as_deref(), budget).await?;
            run.pages += 1;
            let now = Timestamp::now();
            let mut messages: Vec<BusMessage> = Vec::with_capacity(page.results.len());
            let mut newest = watermark;
            for result in &page.results {
                let page_id = result.get("id").and_then(Value::as_str).unwrap_or("(no id)");
                let edited =
                    result.get("last_edited_time").and_then(Value::as_str).and_then(|t| t.parse::<Timestamp>().ok());
                let Some(edited) = edited else {
                    run.rejected += 1;
                    tracing::warn!(page_id, "Notion page without a readable last_edited_time skipped");
                    continue;
                };
                newest = newest.max(Some(edited));
                match self.properties.validated_lead(result) {
                    Ok(lead) => {
                        let build = |e: &dyn std::fmt::Display| {
                            PullError::Publish(PortError::new("build lead.upserted event", e.to_string()))
                        };
                        let event = lead
                            .upserted_event(lead.version_id_edited_at(edited), "notion", edited, now)
                            .map_err(|e| build(&e))?;
                        let message = BusMessage::from_event(&event).map_err(|e| build(&e))?;
                        // Bounded by the lead's field limits; checked all the same, so that one page
                        // can never stall the pull on a batch the bus refuses.
                        if message.size() > SNS_MAX_MESSAGE_BYTES {
                            run.rejected += 1;
                            tracing::warn!(page_id, size = message.size(), "Notion lead too large for the bus");
                            continue;
                        }
                        messages.push(message);
                    }
                    Err(rejected) => {
                        run.rejected += 1;
                        tracing::warn!(page_id, reason = %rejected, "Notion page is not a valid lead");
                    }
                }
            }
            self.publisher.publish_all(&messages).await.map_err(PullError::Publish)?;
            run.records += messages.len() as u64;
            if newest > watermark
                && let Some(newest) = newest
            {
                self.store.set_watermark(&key, &newest.to_string()).await.map_err(PullError::Store)?;
                watermark = Some(newest);
                run.watermark_after = Some(newest.to_string());
            }
            if !page.has_more {
                return Ok(true);
            }
            cursor = match page.next_cursor {
                Some(next) => Some(next),
                None => return Err(PullError::Source(format!("{}: has_more without next_cursor", target.scope()))),
            };
        }
    }
}
