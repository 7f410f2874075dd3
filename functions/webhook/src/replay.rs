//! Replaying archived deliveries: each delivery of the selection is read from the archive,
//! normalised again with today's code and published again under its original event id (consumers
//! deduplicate by id: the processor skips what it applied, the lake's readers keep one row per id).
//! The main use is a backfill: a table missed events while its writer was broken.
//!
//! Listing runs in key order, so a run that meets its deadline returns the last key it finished
//! and the next invocation goes on after it, with the totals so far.

use crate::sources::make::MakeFields;
use crate::sources::{Invalid, make, personnage, standard_webhooks, stripe};
use jiff::Timestamp;
use serde::Serialize;
use std::collections::HashMap;
use tributary_domain::archive::{ArchiveKey, KeyPlace, ReplayRequest, after_source, metadata};
use tributary_domain::event::{CanonicalEvent, EventId, type_selected};
use tributary_domain::ports::{
    ArchivedDelivery, BusMessage, EventPublisher, PortError, RawArchive, SNS_MAX_MESSAGE_BYTES, SyncStore,
};
use tributary_domain::sync::{FailureReason, REPLAY_JOB, SyncOutcome, SyncRun, ended_at};

/// Keys listed per archive request.
const LIST_PAGE: usize = 200;
/// Deliveries read at once (their order is kept); the deadline is checked between groups.
const READ_GROUP: usize = 16;

/// How today's receiver normalises each source's deliveries, without the secrets: an archived
/// delivery was authenticated when it arrived.
#[derive(Debug, Clone)]
pub struct Normaliser {
    /// The Standard Webhooks senders by name, with their subject field.
    pub standard: HashMap<String, Option<String>>,
    /// Make's fields when Make authenticates by token (`make` is then not a Standard Webhooks sender).
    pub make_fields: MakeFields,
}

/// Why an archived delivery is not replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("today's code refuses it: {0}")]
    Invalid(#[from] Invalid),
    #[error("its object lacks the `{0}` metadata the receiver writes")]
    MissingMetadata(&'static str),
    #[error("its `{0}` metadata is malformed")]
    BadMetadata(&'static str),
    #[error("source `{0}` is not configured any more")]
    UnknownSource(String),
}

impl Normaliser {
    /// The delivery's canonical event as today's code makes it, under the id and receipt time it
    /// was first published with.
    pub fn normalise(&self, source: &str, delivery: &ArchivedDelivery) -> Result<CanonicalEvent, Refused> {
        let value = |name: &'static str| delivery.metadata_value(name).ok_or(Refused::MissingMetadata(name));
        let event_id =
            EventId::parse(value(metadata::EVENT_ID)?).map_err(|_| Refused::BadMetadata(metadata::EVENT_ID))?;
        let received_at: Timestamp =
            value(metadata::RECEIVED_AT)?.parse().map_err(|_| Refused::BadMetadata(metadata::RECEIVED_AT))?;
        let body = delivery.body.as_slice();
        let mut event = match (source, self.standard.get(source)) {
            (_, Some(subject_field)) => {
                let sent_at = value(metadata::WEBHOOK_TIMESTAMP)?
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .and_then(|seconds| Timestamp::from_second(seconds).ok())
                    .ok_or(Refused::BadMetadata(metadata::WEBHOOK_TIMESTAMP))?;
                standard_webhooks::standard_event(
                    source,
                    event_id.as_str(),
                    sent_at,
                    subject_field.as_deref(),
                    body,
                    received_at,
                )?
            }
            ("stripe", None) => stripe::stripe_event(body, received_at)?,
            ("make", None) => make::make_event(&self.make_fields, body, received_at)?,
            ("personnage", None) => personnage::personnage_event(body, Some(event_id.as_str()), received_at)?,
            (other, None) => return Err(Refused::UnknownSource(other.to_string())),
        };
        event.id = event_id;
        Ok(event)
    }
}

pub struct Deps<A, P, R> {
    pub normaliser: Normaliser,
    pub archive: A,
    /// The `events` topic, as the receiver publishes to it.
    pub publisher: P,
    /// Where runs are recorded (the ingestion table).
    pub runs: R,
}

/// What one invocation did, with the run's totals so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    pub run_id: String,
    pub dry_run: bool,
    pub totals: tributary_domain::archive::ReplayTotals,
    /// The continuation, when the deadline came first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<ReplayRequest>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the request: {0}")]
    Request(#[from] tributary_domain::archive::InvalidReplay),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Runs `request` until done or until `deadline()` says stop; records the invocation as a run
/// (job `replay`) carrying the run's totals.
pub async fn run<A, P, R>(
    deps: &Deps<A, P, R>,
    request: &ReplayRequest,
    deadline: impl Fn() -> bool,
    now: Timestamp,
) -> Result<ReplaySummary, JobError>
where
    A: RawArchive,
    P: EventPublisher,
    R: SyncStore,
{
    request.validate()?;
    let run_id = request.run_id.clone().unwrap_or_else(SyncRun::new_id);
    // Every invocation of the run records it under its first start: one run in the history, its
    // totals growing, `more_to_do` until the last.
    let started_at = request.started_at.unwrap_or(now);
    let mut run = SyncRun::start(REPLAY_JOB, &request.scope(), &run_id, started_at, request.after.clone());
    run.requested_by = request.requested_by.clone();
    let started = std::time::Instant::now();
    let mut summary = ReplaySummary {
        run_id: run_id.clone(),
        dry_run: request.dry_run,
        totals: request.totals.clone(),
        resume: None,
    };
    let result = replay(deps, request, &mut summary, started_at, deadline).await;
    let ended = ended_at(now, started);
    run.pages = summary.totals.pages;
    run.records = summary.totals.published;
    run.rejected = summary.totals.refused;
    run.counts = summary.totals.by_type.clone();
    match &result {
        Ok(()) => {
            run.watermark_after = summary.resume.as_ref().and_then(|r| r.after.clone());
            run.finish(if summary.resume.is_some() { SyncOutcome::MoreToDo } else { SyncOutcome::Completed }, ended);
        }
        Err(error) => {
            let reason = match error {
                JobError::Request(_) => FailureReason::Configuration,
                JobError::Port(_) => FailureReason::StoreFailed,
            };
            run.finish(
                SyncOutcome::Failed { reason, message: "the replay failed; see the function's log".into() },
                ended,
            );
        }
    }
    if let Err(e) = deps.runs.put_run(&run).await {
        tracing::error!(error = %e, "the replay run could not be recorded");
    }
    result.map(|()| summary)
}

async fn replay<A, P, R>(
    deps: &Deps<A, P, R>,
    request: &ReplayRequest,
    summary: &mut ReplaySummary,
    started_at: Timestamp,
    deadline: impl Fn() -> bool,
) -> Result<(), JobError>
where
    A: RawArchive,
    P: EventPublisher,
{
    let prefix = request.prefix();
    let mut start_after = request.start_after();
    // The last key whose delivery is fully handled: where a continuation goes on.
    let mut done: Option<String> = None;
    loop {
        let listing = deps.archive.list(&prefix, &start_after, LIST_PAGE).await?;
        summary.totals.pages += 1;
        // The keys of this page in the range, up to the first that moves listing elsewhere.
        let mut within = Vec::new();
        let mut next_start = listing.keys.last().cloned();
        let mut finished = !listing.more;
        for key in &listing.keys {
            let Some(parsed) = ArchiveKey::parse(key) else { continue };
            match request.place(&parsed) {
                KeyPlace::Within => within.push(key.clone()),
                KeyPlace::Outside => {}
                KeyPlace::Before(first) => {
                    // Listing only moves forward, whatever a key sends it to.
                    next_start = Some(first.max(key.clone()));
                    finished = false;
                    break;
                }
                KeyPlace::PastSource if request.source.is_some() => {
                    finished = true;
                    break;
                }
                KeyPlace::PastSource => {
                    next_start = Some(after_source(parsed.source));
                    finished = false;
                    break;
                }
            }
        }
        for group in within.chunks(READ_GROUP) {
            // At least one group per invocation, so that a continuation always moves on.
            if done.is_some() && deadline() {
                summary.resume = Some(ReplayRequest {
                    after: done,
                    started_at: Some(started_at),
                    run_id: Some(summary.run_id.clone()),
                    totals: summary.totals.clone(),
                    ..request.clone()
                });
                return Ok(());
            }
            replay_group(deps, request, group, summary).await?;
            done = group.last().cloned();
        }
        match next_start {
            Some(next) if !finished => start_after = next,
            _ => return Ok(()),
        }
    }
}

/// Reads a group of deliveries at once, normalises each, and publishes those selected (or counts
/// them, in a dry run).
async fn replay_group<A, P, R>(
    deps: &Deps<A, P, R>,
    request: &ReplayRequest,
    keys: &[String],
    summary: &mut ReplaySummary,
) -> Result<(), PortError>
where
    A: RawArchive,
    P: EventPublisher,
{
    let read = futures::future::join_all(keys.iter().map(|key| deps.archive.get(key))).await;
    let mut messages = Vec::new();
    for (key, delivery) in keys.iter().zip(read) {
        // Removed since it was listed (a lifecycle rule): nothing to replay.
        let Some(delivery) = delivery? else { continue };
        let Some(source) = ArchiveKey::parse(key).map(|k| k.source) else { continue };
        let event = match deps.normaliser.normalise(source, &delivery) {
            Ok(event) => event,
            Err(refused) => {
                // Counted when it is of the selection as it was received (its archived type).
                let archived_type = delivery.metadata_value(metadata::EVENT_TYPE);
                if archived_type.is_none_or(|t| type_selected(request.event_type.as_deref(), t)) {
                    tracing::warn!(key, reason = %refused, "archived delivery not replayed");
                    summary.totals.refused += 1;
                }
                continue;
            }
        };
        if !request.selects(&event) {
            continue;
        }
        // What a dry run counts is what a replay would publish: the bus must carry it too.
        let message = match BusMessage::from_event(&event) {
            Ok(message) if message.size() <= SNS_MAX_MESSAGE_BYTES => message,
            Ok(message) => {
                tracing::warn!(key, size = message.size(), "archived delivery not replayed: too large for the bus");
                summary.totals.refused += 1;
                continue;
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "archived delivery not replayed: its event does not serialise");
                summary.totals.refused += 1;
                continue;
            }
        };
        *summary.totals.by_type.entry(event.event_type.clone()).or_default() += 1;
        if !request.dry_run {
            messages.push(message);
        }
    }
    if !messages.is_empty() {
        deps.publisher.publish_all(&messages).await?;
        summary.totals.published += messages.len() as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::archive_metadata;
    use tributary_domain::archive::archive_key;
    use tributary_testing::memory::{InMemoryArchive, InMemoryPublisher, InMemorySyncStore};

    fn normaliser() -> Normaliser {
        Normaliser {
            standard: HashMap::from([
                ("acme".to_string(), Some("customer.email".to_string())),
                // Sorts before `acme/` in the archive: listing one source must not stop at it.
                ("acme-2".to_string(), None),
            ]),
            make_fields: MakeFields { id_field: "id".into(), subject_field: "email".into() },
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// Archives `event` as the receiver does, with `headers`.
    async fn keep(archive: &InMemoryArchive, event: &CanonicalEvent, body: &[u8], headers: &[(&str, &str)]) {
        let delivery = ArchivedDelivery {
            key: archive_key(event),
            body: body.to_vec(),
            content_type: "application/json".into(),
            metadata: archive_metadata(event, headers),
        };
        archive.put(&delivery).await.unwrap();
    }

    fn request(from: &str, to: &str) -> ReplayRequest {
        ReplayRequest::between(at(from), at(to))
    }

    /// Three sources over three days, as the receiver archived them.
    async fn archived() -> (InMemoryArchive, Vec<CanonicalEvent>) {
        let store = InMemoryArchive::default();
        let mut events = Vec::new();
        for day in 1..=3 {
            let received = at(&format!("2026-11-0{day}T12:00:00Z"));
            let stripe_body = format!(
                r#"{{"id":"evt_{day}","type":"customer.created","created":{},"data":{{"object":{{"object":"customer","id":"cus_{day}","email":"c{day}@example.com"}}}}}}"#,
                received.as_second()
            );
            let event = stripe::stripe_event(stripe_body.as_bytes(), received).unwrap();
            keep(&store, &event, stripe_body.as_bytes(), &[("stripe-signature", "t=1,v1=00")]).await;
            events.push(event);
            // A personnage submission without an idempotency key: its id was random.
            let body = format!(r#"{{"nom":"N{day}","score":{}}}"#, day * 30);
            let event = personnage::personnage_event(body.as_bytes(), None, received).unwrap();
            keep(&store, &event, body.as_bytes(), &[]).await;
            events.push(event);
            let body = format!(r#"{{"type":"order.paid","customer":{{"email":"a{day}@example.com"}}}}"#);
            let sent = received.as_second().to_string();
            let id = format!("msg_{day}");
            let event = standard_webhooks::standard_event(
                "acme",
                &id,
                received,
                Some("customer.email"),
                body.as_bytes(),
                received,
            )
            .unwrap();
            keep(&store, &event, body.as_bytes(), &[("webhook-id", &id), ("webhook-timestamp", &sent)]).await;
            events.push(event);
            let other =
                standard_webhooks::standard_event("acme-2", &id, received, None, body.as_bytes(), received).unwrap();
            keep(&store, &other, body.as_bytes(), &[("webhook-id", &id), ("webhook-timestamp", &sent)]).await;
            events.push(other);
        }
        (store, events)
    }

    fn deps(archive: InMemoryArchive) -> Deps<InMemoryArchive, InMemoryPublisher, InMemorySyncStore> {
        Deps {
            normaliser: normaliser(),
            archive,
            publisher: InMemoryPublisher::default(),
            runs: InMemorySyncStore::default(),
        }
    }

    #[tokio::test]
    async fn a_replay_publishes_each_selected_delivery_as_it_was_first_published() {
        let (archive, events) = archived().await;
        let deps = deps(archive);
        let asked = request("2026-11-02T00:00:00Z", "2026-11-04T00:00:00Z");
        let summary = run(&deps, &asked, || false, at("2026-12-01T00:00:00Z")).await.unwrap();
        assert_eq!(summary.totals.published, 8);
        assert_eq!(summary.totals.refused, 0);
        let expected: Vec<BusMessage> = events[4..].iter().map(|e| BusMessage::from_event(e).unwrap()).collect();
        let mut published = deps.publisher.messages();
        published.sort_by(|a, b| a.body.cmp(&b.body));
        let mut expected = expected;
        expected.sort_by(|a, b| a.body.cmp(&b.body));
        // The same message byte for byte: the same id (even the random one), receipt time, payload.
        assert_eq!(published, expected);
        let runs = deps.runs.runs();
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].job.as_str(), runs[0].records), (REPLAY_JOB, 8));
        assert_eq!(runs[0].counts.get("personnage.submitted"), Some(&2));
    }

    #[tokio::test]
    async fn a_dry_run_counts_by_type_and_publishes_nothing() {
        let (archive, _) = archived().await;
        let deps = deps(archive);
        let mut asked = request("2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z");
        asked.dry_run = true;
        asked.source = Some("acme".into());
        let summary = run(&deps, &asked, || false, at("2026-12-01T00:00:00Z")).await.unwrap();
        assert!(deps.publisher.messages().is_empty());
        assert_eq!(summary.totals.by_type, [("acme.order.paid".to_string(), 2)].into(), "acme-2 is another source");
        asked.source = None;
        asked.event_type = Some("stripe.".into());
        let summary = run(&deps, &asked, || false, at("2026-12-01T00:00:00Z")).await.unwrap();
        assert_eq!(summary.totals.by_type, [("stripe.customer.created".to_string(), 2)].into());
    }

    #[tokio::test]
    async fn a_replay_cut_by_its_deadline_resumes_where_it_stopped_with_its_totals() {
        let (archive, _) = archived().await;
        // More than a listing page (200 keys): the page boundary and `more` on the way.
        for n in 0..230 {
            let received = at("2026-11-02T13:00:00Z");
            let body = format!(
                r#"{{"id":"evt_more_{n}","type":"invoice.paid","created":{},"data":{{"object":{{"object":"invoice","id":"in_{n}","customer":"cus_2"}}}}}}"#,
                received.as_second()
            );
            let event = stripe::stripe_event(body.as_bytes(), received).unwrap();
            keep(&archive, &event, body.as_bytes(), &[]).await;
        }
        let deps = deps(archive);
        let asked = request("2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z");
        // The deadline has always passed: each invocation does its one group and stops.
        let mut next = Some(asked);
        let mut invocations = 0;
        let mut last = None;
        while let Some(asked) = next.take() {
            // Each invocation a minute after the last, as SQS would hand them over.
            let now =
                at("2026-12-01T00:00:00Z").checked_add(jiff::SignedDuration::from_mins(invocations as i64)).unwrap();
            let summary = run(&deps, &asked, || true, now).await.unwrap();
            invocations += 1;
            assert!(invocations < 20, "the replay does not move on");
            next = summary.resume.clone();
            last = Some(summary);
        }
        let last = last.unwrap();
        assert_eq!(last.totals.published, 242);
        assert_eq!(last.totals.by_type.get("stripe.invoice.paid"), Some(&230));
        let mut published: Vec<String> = deps.publisher.messages().into_iter().map(|m| m.body).collect();
        published.sort();
        published.dedup();
        assert_eq!(published.len(), 242, "each delivery published once");
        // 242 deliveries in groups of 16, a group an invocation: one run, recorded once with its totals.
        assert_eq!(invocations, 242usize.div_ceil(16));
        let runs = deps.runs.runs();
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!((runs[0].run_id.as_str(), runs[0].records), (last.run_id.as_str(), 242));
        assert_eq!(runs[0].outcome, SyncOutcome::Completed);
    }

    #[tokio::test]
    async fn deliveries_todays_code_refuses_are_counted_and_the_rest_replayed() {
        let (archive, _) = archived().await;
        // A delivery whose metadata was lost, and one of a source no longer configured.
        let broken = ArchivedDelivery {
            key: "raw/source=stripe/date=2026-11-02/evt_x.json".into(),
            body: b"{}".to_vec(),
            content_type: "application/json".into(),
            metadata: Vec::new(),
        };
        archive.put(&broken).await.unwrap();
        // A sender no longer configured: its delivery whole, as the receiver archived it then.
        let gone = ArchivedDelivery {
            key: "raw/source=gone/date=2026-11-02/m.json".into(),
            metadata: vec![
                ("event-id".into(), "m".into()),
                ("received-at".into(), "2026-11-02T12:00:00Z".into()),
                ("webhook-timestamp".into(), "1793620800".into()),
            ],
            ..broken.clone()
        };
        assert_eq!(
            deps(InMemoryArchive::default()).normaliser.normalise("gone", &gone),
            Err(Refused::UnknownSource("gone".into()))
        );
        archive.put(&gone).await.unwrap();
        let deps = deps(archive);
        let summary =
            run(&deps, &request("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"), || false, at("2026-12-01T00:00:00Z"))
                .await
                .unwrap();
        assert_eq!((summary.totals.published, summary.totals.refused), (4, 2));
    }

    /// The Lambda side of the job: an SQS batch of requests, each continuation sent to the queue
    /// until none is left, and a direct invocation answered with its summary.
    #[tokio::test]
    async fn invocations_send_their_continuations_until_the_replay_is_done() {
        use tributary_domain::ports::MessageQueues;
        use tributary_domain::runtime::{JobInvocationError, JobStep, run_job_invocation};
        use tributary_testing::memory::InMemoryQueues;
        let (archive, _) = archived().await;
        let deps = deps(archive);
        let queues = InMemoryQueues::default();
        let first = serde_json::to_string(&request("2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z")).unwrap();
        let mut payload =
            serde_json::json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m-0", "body": first}]});
        let mut invocations = 0;
        loop {
            invocations += 1;
            let answer = run_job_invocation(payload, &queues, "replay-queue", |asked: ReplayRequest| {
                let deps = &deps;
                async move {
                    // A deadline already passed: one group an invocation.
                    let summary = run(deps, &asked, || true, at("2026-12-01T00:00:00Z")).await?;
                    Ok::<_, JobError>(JobStep { resume: summary.resume.clone(), later: None, summary })
                }
            })
            .await
            .unwrap();
            assert!(answer.is_array(), "a batch is answered with its summaries");
            let sent = queues.receive("replay-queue", 10, std::time::Duration::from_secs(30)).await.unwrap();
            let Some(next) = sent.first() else { break };
            queues.delete("replay-queue", &next.receipt).await.unwrap();
            payload = serde_json::json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m", "body": next.body}]});
            assert!(invocations < 10);
        }
        assert_eq!(deps.publisher.messages().len(), 12, "each delivery once over {invocations} invocations");
        // A request no job can run is told from a failure that may pass on the retry.
        let invalid = run_job_invocation(serde_json::json!({"from": "x"}), &queues, "q", |_: ReplayRequest| async {
            Err::<JobStep<ReplayRequest, ()>, JobError>(JobError::Port(PortError::new("never", "called")))
        })
        .await
        .unwrap_err();
        assert!(matches!(invalid, JobInvocationError::Payload(_)));
        assert_eq!(invalid.error_type(|_| false), "InvalidRequest");
    }

    #[tokio::test]
    async fn a_failing_bus_fails_the_run_and_records_it() {
        let (archive, _) = archived().await;
        let deps = deps(archive);
        deps.publisher.set_failing(true);
        let asked = request("2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z");
        assert!(run(&deps, &asked, || false, at("2026-12-01T00:00:00Z")).await.is_err());
        assert!(matches!(deps.runs.runs()[0].outcome, SyncOutcome::Failed { .. }));
    }
}
