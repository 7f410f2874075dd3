//! One invocation of the rebuild job: which customers, their events from the lake, the rebuild of
//! each in customer-id order, and where to resume when the deadline comes first.
//!
//! A rebuild never loses an applied event: a customer whose audit trail names an event the lake
//! does not hold (yet: the lake writer batches) is left as it is and reported, never rebuilt
//! without it. A live event applied meanwhile moves the record's version, the rebuild's commit
//! fails its version check and the customer is rebuilt again from the record as it is now.

use jiff::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tributary_domain::customer::announce::announce;
use tributary_domain::customer::rebuild::{
    InvalidRequest, REBUILD_SOURCE, RebuildRequest, rebuild, rebuild_commit, rebuild_event_id,
};
use tributary_domain::customer::rules::Ledger;
use tributary_domain::customer::rules::Registry;
use tributary_domain::customer::store::{AppliedMarker, applied_key};
use tributary_domain::customer::store::{AuditKind, CommitOutcome};
use tributary_domain::customer::{CustomerId, CustomerRecord};
use tributary_domain::event::CanonicalEvent;
use tributary_domain::ports::{CustomerStore, EventPublisher, PortError, SyncStore};
use tributary_domain::sync::{FailureReason, Lease, REBUILD_JOB, SyncOutcome, SyncRun, ended_at};
use tributary_lake::events::scan_events;
use tributary_lake::schema::EVENTS;
use tributary_lake::{LakeError, LakeLocation, LakeTable};

/// Attempts at one customer's commit when live events keep moving its version.
pub const COMMIT_ATTEMPTS: u32 = 5;
/// How long a rebuild holds the one-at-a-time lease: longer than the function's 300 s timeout.
pub const LEASE: jiff::SignedDuration = jiff::SignedDuration::from_secs(330);
/// Audit entries read per page while gathering a customer's applied events.
const AUDIT_PAGE: usize = 200;

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildSummary {
    /// Customers looked at.
    pub customers: u32,
    /// Customers written as a new version.
    pub rebuilt: u32,
    pub unchanged: u32,
    /// Customers left as they are, each with why (an applied event the lake lacks, a record too
    /// large, live events that kept moving it).
    pub left: Vec<(CustomerId, String)>,
    /// Events no rule could apply (as the processor would have dead-lettered them).
    pub skipped_events: u32,
    /// The continuation, when the deadline came first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<RebuildRequest>,
    /// Another rebuild was running: nothing done, the request is to be sent again later.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deferred: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the request: {0}")]
    Request(#[from] InvalidRequest),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Port(#[from] PortError),
}

pub struct Deps<S, P, R> {
    pub registry: Registry,
    pub store: S,
    /// The `updates` topic: a rebuild that changed fields announces them as any change.
    pub updates: P,
    /// Where runs are recorded (the ingestion table).
    pub runs: R,
    pub lake: LakeLocation,
}

/// The customer an event is about, as the processor resolves it: the first of its subjects known
/// (its rule's subjects, or its own subject when today's rules have none for it: an event a rule
/// no longer reads still touched its customer).
async fn customer_of<S: CustomerStore>(
    registry: &Registry,
    store: &S,
    event: &CanonicalEvent,
) -> Result<Option<CustomerId>, PortError> {
    // A rule that cannot name the event's customers falls back on its subject too.
    let from_rule = registry.rule_for(&event.event_type).and_then(|rule| (rule.identities)(event).ok());
    let subjects = from_rule.unwrap_or_else(|| event.subject.iter().cloned().collect());
    for subject in subjects {
        if let Some(id) = store.find(&subject).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The events applied to the customer (source, id), from its audit trail.
async fn applied_events<S: CustomerStore>(store: &S, id: &CustomerId) -> Result<BTreeSet<(String, String)>, PortError> {
    let mut applied = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.audit(id, AUDIT_PAGE, after.as_deref()).await?;
        applied.extend(
            page.entries
                .iter()
                .filter(|e| e.kind == AuditKind::Event)
                .map(|e| (e.source.clone(), e.event_id.to_string())),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(applied),
        }
    }
}

/// Runs `request` until done or until `deadline()` says stop; records the invocation as a run.
pub async fn run<S, P, R>(
    deps: &Deps<S, P, R>,
    request: &RebuildRequest,
    deadline: impl Fn() -> bool,
    now: Timestamp,
) -> Result<RebuildSummary, JobError>
where
    S: CustomerStore,
    P: EventPublisher,
    R: SyncStore,
{
    request.validate()?;
    let run_id = request.run_id.clone().unwrap_or_else(SyncRun::new_id);
    // One rebuild at a time (two would scan the lake together and race on the same customers); the
    // lease outlives the function's timeout, so a run that died holds it only a little longer.
    let lease = Lease {
        key: Lease::key_for(REBUILD_JOB, "all"),
        owner: run_id.clone(),
        now,
        until: now.checked_add(LEASE).unwrap_or(now),
    };
    if !deps.runs.acquire_lease(&lease).await? {
        tracing::info!(scope = request.scope(), "another rebuild is running; deferred");
        let mut skipped = SyncRun::start(REBUILD_JOB, &request.scope(), &run_id, now, None);
        skipped.requested_by = request.requested_by.clone();
        skipped.finish(SyncOutcome::SkippedLeased, now);
        if let Err(e) = deps.runs.put_run(&skipped).await {
            tracing::error!(error = %e, "the deferred rebuild could not be recorded");
        }
        return Ok(RebuildSummary { deferred: true, ..RebuildSummary::default() });
    }
    let mut run =
        SyncRun::start(REBUILD_JOB, &request.scope(), &run_id, now, request.after.as_ref().map(|a| a.to_string()));
    run.requested_by = request.requested_by.clone();
    let started = std::time::Instant::now();
    let result = rebuild_customers(deps, request, &run_id, deadline, now).await;
    let ended = ended_at(now, started);
    match &result {
        Ok(summary) => {
            run.records = u64::from(summary.rebuilt);
            run.rejected = summary.left.len() as u64;
            run.watermark_after = summary.resume.as_ref().and_then(|r| r.after.as_ref()).map(|a| a.to_string());
            run.finish(if summary.resume.is_some() { SyncOutcome::MoreToDo } else { SyncOutcome::Completed }, ended);
        }
        Err(error) => {
            let reason = match error {
                JobError::Lake(_) => FailureReason::LakeFailed,
                JobError::Port(_) => FailureReason::StoreFailed,
                JobError::Request(_) => FailureReason::Configuration,
            };
            run.finish(
                SyncOutcome::Failed { reason, message: "the rebuild failed; see the function's log".into() },
                ended,
            );
        }
    }
    if let Err(e) = deps.runs.put_run(&run).await {
        tracing::error!(error = %e, "the rebuild run could not be recorded");
    }
    if let Err(e) = deps.runs.release_lease(&lease).await {
        tracing::warn!(error = %e, "the rebuild lease stays until it expires");
    }
    result
}

async fn rebuild_customers<S, P, R>(
    deps: &Deps<S, P, R>,
    request: &RebuildRequest,
    run_id: &str,
    deadline: impl Fn() -> bool,
    now: Timestamp,
) -> Result<RebuildSummary, JobError>
where
    S: CustomerStore,
    P: EventPublisher,
{
    let mut summary = RebuildSummary::default();
    // Opened per invocation: the snapshot is the lake as it is now.
    let Some(table) = LakeTable::open_existing(&deps.lake, &EVENTS).await? else {
        tracing::info!("no events table yet: nothing to rebuild from");
        return Ok(summary);
    };
    let customers: BTreeSet<CustomerId> = match &request.customer_id {
        Some(id) => BTreeSet::from([id.clone()]),
        None => {
            let selected = scan_events(&table, |key| request.selects(key.event_type, key.occurred_at)).await?;
            let mut touched = BTreeSet::new();
            for event in &selected {
                if let Some(id) = customer_of(&deps.registry, &deps.store, event).await? {
                    touched.insert(id);
                }
            }
            touched
        }
    };
    let todo: Vec<CustomerId> =
        customers.into_iter().filter(|id| request.after.as_ref().is_none_or(|after| id > after)).collect();

    // Each customer's identities and applied events, then one scan for all their events.
    // (A customer without a record is reported when its turn comes, once per run.)
    let mut wanted = BTreeMap::new();
    for id in &todo {
        let gathered = match deps.store.load(id).await? {
            Some(record) => Some((record.identities.clone(), applied_events(&deps.store, id).await?)),
            None => None,
        };
        wanted.insert(id.clone(), gathered);
    }
    let subjects: BTreeSet<&str> =
        wanted.values().flatten().flat_map(|(identities, _)| identities.iter().map(String::as_str)).collect();
    let ids: BTreeSet<&str> =
        wanted.values().flatten().flat_map(|(_, applied)| applied.iter().map(|(_, id)| id.as_str())).collect();
    let events = if subjects.is_empty() && ids.is_empty() {
        Vec::new()
    } else {
        scan_events(&table, |key| key.subject.is_some_and(|s| subjects.contains(s)) || ids.contains(key.id)).await?
    };

    let mut done: Option<&CustomerId> = None;
    for (id, gathered) in &wanted {
        // At least one customer per invocation, so that a continuation always moves on.
        if done.is_some() && deadline() {
            let mut resume = request.clone();
            resume.after = done.cloned().or_else(|| request.after.clone());
            resume.run_id = Some(run_id.to_string());
            summary.resume = Some(resume);
            break;
        }
        let Some((identities, applied)) = gathered else {
            summary.left.push((id.clone(), "no such customer".into()));
            done = Some(id);
            continue;
        };
        summary.customers += 1;
        let theirs: Vec<CanonicalEvent> = events
            .iter()
            .filter(|e| {
                e.subject.as_ref().is_some_and(|s| identities.contains(s.as_str()))
                    || applied.contains(&(e.source.clone(), e.id.to_string()))
            })
            .cloned()
            .collect();
        match rebuild_one(deps, id, &theirs, request.requested_by.as_deref(), now).await? {
            One::Rebuilt { skipped } => {
                summary.rebuilt += 1;
                summary.skipped_events += skipped;
            }
            One::Unchanged { skipped } => {
                summary.unchanged += 1;
                summary.skipped_events += skipped;
            }
            One::Left(reason) => {
                tracing::warn!(customer = %id, reason, "customer left as it is");
                summary.left.push((id.clone(), reason));
            }
        }
        done = Some(id);
    }
    Ok(summary)
}

enum One {
    Rebuilt { skipped: u32 },
    Unchanged { skipped: u32 },
    Left(String),
}

/// One customer: read the record and its applied events, check that the lake holds every one of
/// them, rebuild, commit under the version check (again from the record as it is now if a live
/// event got there first), announce.
async fn rebuild_one<S, P, R>(
    deps: &Deps<S, P, R>,
    id: &CustomerId,
    events: &[CanonicalEvent],
    requested_by: Option<&str>,
    now: Timestamp,
) -> Result<One, PortError>
where
    S: CustomerStore,
    P: EventPublisher,
{
    let in_lake: BTreeSet<(&str, &str)> = events.iter().map(|e| (e.source.as_str(), e.id.as_str())).collect();
    for attempt in 1..=COMMIT_ATTEMPTS {
        let Some(stored) = deps.store.load(id).await? else { return Ok(One::Left("no such customer".into())) };
        // Read after the record: an event applied in between is in the trail, one applied later
        // moves the version and fails the commit.
        let applied = applied_events(&deps.store, id).await?;
        if let Some((source, missing)) = applied.iter().find(|(s, e)| !in_lake.contains(&(s.as_str(), e.as_str()))) {
            return Ok(One::Left(format!("applied event {source}/{missing} is not in the lake (yet)")));
        }
        let rebuilt = rebuild(&deps.registry, &stored, events);
        let skipped = rebuilt.skipped.len() as u32;
        for skip in &rebuilt.skipped {
            tracing::warn!(customer = %id, event_id = %skip.event_id, reason = skip.reason, "event skipped by the rebuild");
        }
        let keys: Vec<String> = rebuilt.ledger.keys().cloned().collect();
        let stored_ledger = if keys.is_empty() { Ledger::new() } else { deps.store.ledger(id, &keys).await? };
        let commit = match rebuild_commit(&stored, &stored_ledger, rebuilt, now) {
            Ok(Some(mut commit)) => {
                // The audit entry names who asked, as the run does.
                commit.audit.requested_by = requested_by.map(str::to_string);
                commit
            }
            Ok(None) => {
                republish_pending(deps, &stored, now).await?;
                return Ok(One::Unchanged { skipped });
            }
            Err(refused) => return Ok(One::Left(refused.to_string())),
        };
        let outcome = match deps.store.commit(&commit).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(customer = %id, error = %e, "the rebuild's commit failed");
                return Ok(One::Left("writing the rebuilt record failed (see the log)".into()));
            }
        };
        match outcome {
            CommitOutcome::Committed => {
                // Fields whose value stayed but whose event changed are written too: say which.
                let restamped: Vec<&str> = commit
                    .record
                    .fields
                    .iter()
                    .filter(|(field, state)| stored.fields.get(*field).is_some_and(|old| old.stamp != state.stamp))
                    .map(|(field, _)| field.as_str())
                    .collect();
                tracing::info!(
                    customer = %id,
                    version = commit.record.version,
                    changed = commit.audit.changes.len(),
                    ledger_entries = commit.ledger.len(),
                    ?restamped,
                    "rebuilt"
                );
                if let Some(update) = &commit.marker.pending {
                    // A failure fails the run: its retry finds the record rebuilt and publishes
                    // the pending notification then (`republish_pending`).
                    announce(&deps.store, &deps.updates, update, &commit.marker.key(), now).await?;
                }
                return Ok(One::Rebuilt { skipped });
            }
            CommitOutcome::Conflict | CommitOutcome::AlreadyApplied => {
                tracing::info!(customer = %id, attempt, "the record moved meanwhile; rebuilding again");
            }
            CommitOutcome::TooLarge => return Ok(One::Left("the rebuilt record would be too large".into())),
        }
    }
    Ok(One::Left(format!("live events kept moving the record ({COMMIT_ATTEMPTS} attempts)")))
}

/// When the stored version was written by a rebuild whose notification is still pending (the run
/// died between commit and publish), publishes it.
async fn republish_pending<S, P, R>(
    deps: &Deps<S, P, R>,
    stored: &CustomerRecord,
    now: Timestamp,
) -> Result<(), PortError>
where
    S: CustomerStore,
    P: EventPublisher,
{
    let Some(event_id) = rebuild_event_id(&stored.id, stored.version) else { return Ok(()) };
    let key = applied_key(REBUILD_SOURCE, &event_id);
    if let Some(AppliedMarker { pending: Some(update), .. }) = deps.store.applied(&key).await? {
        tracing::info!(customer = %stored.id, version = stored.version, "publishing a rebuild's pending notification");
        announce(&deps.store, &deps.updates, &update, &key, now).await?;
    }
    Ok(())
}
