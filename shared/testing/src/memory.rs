//! In-memory adapters of the ports, for unit tests, benchmarks and examples.
//!
//! They follow the same rules as the AWS adapters (conditional claims, tokens), so a handler test
//! against them says something about the handler; the moto tests say the rest.

use jiff::Timestamp;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tributary_domain::customer::store::{AppliedMarker, AuditEntry, AuditPage, Commit, CommitOutcome};
use tributary_domain::customer::{CustomerId, CustomerRecord};
use tributary_domain::event::Subject;
use tributary_domain::failures::FailureHistory;
use tributary_domain::ports::{
    ArchiveListing, ArchivedDelivery, BusMessage, ClaimOutcome, CustomerStore, DeadLetterSink, DedupClaim, DedupStore,
    EventPublisher, MessageQueues, PortError, QueueDepth, QueuedMessage, RawArchive, SecretSource, SyncStore,
};
use tributary_domain::sync::{Lease, SyncRun, Tally, TallyKind};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not hide the state from the assertions of the others.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerStatus {
    InProgress { token: String, until: Timestamp },
    Completed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub status: MarkerStatus,
    pub digest: String,
    pub expires_at: Timestamp,
}

#[derive(Default)]
pub struct InMemoryDedup {
    markers: Mutex<HashMap<String, Marker>>,
}

impl InMemoryDedup {
    pub fn marker(&self, key: &str) -> Option<Marker> {
        lock(&self.markers).get(key).cloned()
    }
}

impl DedupStore for InMemoryDedup {
    async fn claim(&self, claim: &DedupClaim) -> Result<ClaimOutcome, PortError> {
        let mut markers = lock(&self.markers);
        let outcome = match markers.get(&claim.key) {
            Some(marker) if marker.expires_at > claim.now && marker.digest != claim.digest => {
                Some(ClaimOutcome::Reused)
            }
            Some(marker) if marker.expires_at > claim.now => match &marker.status {
                MarkerStatus::Completed => Some(ClaimOutcome::AlreadyCompleted),
                MarkerStatus::InProgress { until, .. } if *until > claim.now => Some(ClaimOutcome::InProgress),
                MarkerStatus::InProgress { .. } => None,
            },
            _ => None,
        };
        if let Some(outcome) = outcome {
            return Ok(outcome);
        }
        markers.insert(
            claim.key.clone(),
            Marker {
                status: MarkerStatus::InProgress { token: claim.token.clone(), until: claim.in_progress_until },
                digest: claim.digest.clone(),
                expires_at: claim.expires_at,
            },
        );
        Ok(ClaimOutcome::Claimed)
    }

    async fn complete(&self, claim: &DedupClaim) -> Result<(), PortError> {
        let mut markers = lock(&self.markers);
        match markers.get_mut(&claim.key) {
            Some(marker) if matches!(&marker.status, MarkerStatus::InProgress { token, .. } if *token == claim.token) =>
            {
                marker.status = MarkerStatus::Completed;
                Ok(())
            }
            _ => Err(PortError::new("complete dedup marker", "the claim is not held by this attempt")),
        }
    }

    async fn release(&self, claim: &DedupClaim) -> Result<(), PortError> {
        let mut markers = lock(&self.markers);
        if matches!(markers.get(&claim.key), Some(Marker { status: MarkerStatus::InProgress { token, .. }, .. }) if *token == claim.token)
        {
            markers.remove(&claim.key);
        }
        Ok(())
    }
}

/// Stores deliveries; can be told to fail, to test what a failed side effect leaves behind.
#[derive(Default)]
pub struct InMemoryArchive {
    objects: Mutex<HashMap<String, ArchivedDelivery>>,
    fail: AtomicBool,
}

impl InMemoryArchive {
    pub fn objects(&self) -> Vec<ArchivedDelivery> {
        lock(&self.objects).values().cloned().collect()
    }
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }
}

impl RawArchive for InMemoryArchive {
    async fn put(&self, delivery: &ArchivedDelivery) -> Result<(), PortError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new("archive put", "injected failure"));
        }
        lock(&self.objects).insert(delivery.key.clone(), delivery.clone());
        Ok(())
    }

    async fn list(&self, prefix: &str, start_after: &str, max: usize) -> Result<ArchiveListing, PortError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new("archive list", "injected failure"));
        }
        let objects = lock(&self.objects);
        let mut keys: Vec<String> =
            objects.keys().filter(|k| k.starts_with(prefix) && k.as_str() > start_after).cloned().collect();
        keys.sort();
        let more = keys.len() > max;
        keys.truncate(max);
        Ok(ArchiveListing { keys, more })
    }

    async fn get(&self, key: &str) -> Result<Option<ArchivedDelivery>, PortError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new("archive get", "injected failure"));
        }
        Ok(lock(&self.objects).get(key).cloned())
    }
}

#[derive(Default)]
pub struct InMemoryPublisher {
    messages: Mutex<Vec<BusMessage>>,
    fail: AtomicBool,
    /// How many more messages are accepted before every publish fails (crash tests).
    remaining_before_failure: Mutex<Option<usize>>,
}

impl InMemoryPublisher {
    pub fn messages(&self) -> Vec<BusMessage> {
        lock(&self.messages).clone()
    }
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }
    /// Accepts `count` more messages, then fails every publish; `None` lifts the failure.
    pub fn fail_after(&self, count: Option<usize>) {
        *lock(&self.remaining_before_failure) = count;
    }
}

impl EventPublisher for InMemoryPublisher {
    async fn publish(&self, message: &BusMessage) -> Result<String, PortError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new("publish", "injected failure"));
        }
        if let Some(remaining) = lock(&self.remaining_before_failure).as_mut() {
            if *remaining == 0 {
                return Err(PortError::new("publish", "injected failure"));
            }
            *remaining -= 1;
        }
        let mut messages = lock(&self.messages);
        messages.push(message.clone());
        Ok(format!("memory-{}", messages.len()))
    }
}

#[derive(Default, Clone)]
pub struct InMemorySecrets {
    pub values: HashMap<String, String>,
}

impl SecretSource for InMemorySecrets {
    async fn get_secrets(&self, names: &[String]) -> Result<HashMap<String, String>, PortError> {
        names
            .iter()
            .map(|name| match self.values.get(name) {
                Some(value) => Ok((name.clone(), value.clone())),
                None => Err(PortError::new("get secrets", format!("parameter {name} not found"))),
            })
            .collect()
    }
}

/// The customer table in memory, with the same all-or-nothing commit as the DynamoDB adapter.
#[derive(Default)]
pub struct InMemoryCustomers {
    state: Mutex<CustomerTables>,
    fail: AtomicBool,
}

#[derive(Default)]
struct CustomerTables {
    records: HashMap<CustomerId, CustomerRecord>,
    lookups: HashMap<Subject, CustomerId>,
    markers: HashMap<String, AppliedMarker>,
    /// Per customer, by sort key.
    audit: HashMap<CustomerId, BTreeMap<String, AuditEntry>>,
    /// Per customer, by ledger key.
    ledger: HashMap<CustomerId, BTreeMap<String, serde_json::Value>>,
}

impl InMemoryCustomers {
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    fn check(&self, operation: &'static str) -> Result<(), PortError> {
        if self.fail.load(Ordering::SeqCst) { Err(PortError::new(operation, "injected failure")) } else { Ok(()) }
    }

    /// Seeds a record (and its identity lookups), as if earlier events had built it.
    pub fn insert(&self, record: CustomerRecord) {
        let mut state = lock(&self.state);
        for identity in &record.identities {
            if let Some((system, id)) = identity.split_once(':') {
                state.lookups.insert(Subject::external(system, id), record.id.clone());
            }
        }
        state.records.insert(record.id.clone(), record);
    }

    pub fn records(&self) -> Vec<CustomerRecord> {
        lock(&self.state).records.values().cloned().collect()
    }

    /// Every ledger entry of a customer, by key.
    pub fn ledger_entries(&self, id: &CustomerId) -> BTreeMap<String, serde_json::Value> {
        lock(&self.state).ledger.get(id).cloned().unwrap_or_default()
    }

    pub fn audit_entries(&self, id: &CustomerId) -> Vec<AuditEntry> {
        lock(&self.state).audit.get(id).map(|entries| entries.values().cloned().collect()).unwrap_or_default()
    }
}

impl CustomerStore for InMemoryCustomers {
    async fn find(&self, subject: &Subject) -> Result<Option<CustomerId>, PortError> {
        self.check("find customer")?;
        Ok(lock(&self.state).lookups.get(subject).cloned())
    }

    async fn find_each(&self, subjects: &[Subject]) -> Result<Vec<Option<CustomerId>>, PortError> {
        self.check("find customers")?;
        let state = lock(&self.state);
        Ok(subjects.iter().map(|subject| state.lookups.get(subject).cloned()).collect())
    }

    async fn load(&self, id: &CustomerId) -> Result<Option<CustomerRecord>, PortError> {
        self.check("load customer")?;
        Ok(lock(&self.state).records.get(id).cloned())
    }

    async fn commit(&self, commit: &Commit) -> Result<CommitOutcome, PortError> {
        self.check("commit customer")?;
        let mut state = lock(&self.state);
        if state.markers.contains_key(&commit.marker.key()) {
            return Ok(CommitOutcome::AlreadyApplied);
        }
        let current_version = state.records.get(&commit.record.id).map_or(0, |record| record.version);
        if current_version != commit.expected_version || commit.new_links.iter().any(|s| state.lookups.contains_key(s))
        {
            return Ok(CommitOutcome::Conflict);
        }
        let id = commit.record.id.clone();
        state.records.insert(id.clone(), commit.record.clone());
        for subject in &commit.new_links {
            state.lookups.insert(subject.clone(), id.clone());
        }
        state.markers.insert(commit.marker.key(), commit.marker.clone());
        state.ledger.entry(id.clone()).or_default().extend(commit.ledger.iter().cloned());
        state.audit.entry(id).or_default().insert(commit.audit.sort_key(), commit.audit.clone());
        Ok(CommitOutcome::Committed)
    }

    async fn ledger(
        &self,
        id: &CustomerId,
        keys: &[String],
    ) -> Result<tributary_domain::customer::rules::Ledger, PortError> {
        self.check("read ledger")?;
        let state = lock(&self.state);
        let Some(entries) = state.ledger.get(id) else { return Ok(Default::default()) };
        Ok(keys.iter().filter_map(|key| entries.get(key).map(|value| (key.clone(), value.clone()))).collect())
    }

    async fn applied(&self, key: &str) -> Result<Option<AppliedMarker>, PortError> {
        self.check("read applied marker")?;
        Ok(lock(&self.state).markers.get(key).cloned())
    }

    async fn mark_notified(&self, key: &str) -> Result<(), PortError> {
        self.check("mark notified")?;
        if let Some(marker) = lock(&self.state).markers.get_mut(key) {
            marker.pending = None;
        }
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), PortError> {
        self.check("append audit")?;
        lock(&self.state).audit.entry(entry.customer_id.clone()).or_default().insert(entry.sort_key(), entry.clone());
        Ok(())
    }

    async fn audit(&self, id: &CustomerId, limit: usize, after: Option<&str>) -> Result<AuditPage, PortError> {
        self.check("read audit")?;
        let state = lock(&self.state);
        let Some(entries) = state.audit.get(id) else { return Ok(AuditPage { entries: vec![], next: None }) };
        let mut page: Vec<(String, AuditEntry)> = entries
            .iter()
            .rev()
            .filter(|(key, _)| after.is_none_or(|after| key.as_str() < after))
            .take(limit + 1)
            .map(|(key, entry)| (key.clone(), entry.clone()))
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more { page.last().map(|(key, _)| key.clone()) } else { None };
        Ok(AuditPage { entries: page.into_iter().map(|(_, entry)| entry).collect(), next })
    }
}

/// Dead letters kept in memory.
#[derive(Default)]
pub struct InMemoryDeadLetters {
    letters: Mutex<Vec<(String, String, FailureHistory)>>,
}

impl InMemoryDeadLetters {
    /// `(body, reason)` of each letter.
    pub fn letters(&self) -> Vec<(String, String)> {
        lock(&self.letters).iter().map(|(body, reason, _)| (body.clone(), reason.clone())).collect()
    }

    /// The history each letter carries (its re-drives).
    pub fn histories(&self) -> Vec<FailureHistory> {
        lock(&self.letters).iter().map(|(_, _, history)| history.clone()).collect()
    }
}

impl DeadLetterSink for InMemoryDeadLetters {
    async fn send(&self, body: &str, reason: &str, history: &FailureHistory) -> Result<(), PortError> {
        lock(&self.letters).push((body.to_string(), reason.to_string(), history.clone()));
        Ok(())
    }
}

/// The ingestion table in memory: leases with the same take-over-after-expiry rule.
#[derive(Default)]
pub struct InMemorySyncStore {
    leases: Mutex<HashMap<String, (String, Timestamp)>>,
    runs: Mutex<Vec<SyncRun>>,
    watermarks: Mutex<HashMap<String, String>>,
    tallies: Mutex<Vec<Tally>>,
}

impl InMemorySyncStore {
    pub fn runs(&self) -> Vec<SyncRun> {
        lock(&self.runs).clone()
    }
    pub fn watermarks(&self) -> HashMap<String, String> {
        lock(&self.watermarks).clone()
    }
    pub fn all_tallies(&self) -> Vec<Tally> {
        lock(&self.tallies).clone()
    }
    /// Forgets every lease, as their expiry would (crash tests: the killed run never released).
    pub fn expire_leases(&self) {
        lock(&self.leases).clear();
    }
}

impl SyncStore for InMemorySyncStore {
    async fn acquire_lease(&self, lease: &Lease) -> Result<bool, PortError> {
        let mut leases = lock(&self.leases);
        match leases.get(&lease.key) {
            Some((_, until)) if *until >= lease.now => Ok(false),
            _ => {
                leases.insert(lease.key.clone(), (lease.owner.clone(), lease.until));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), PortError> {
        let mut leases = lock(&self.leases);
        if leases.get(&lease.key).is_some_and(|(owner, _)| *owner == lease.owner) {
            leases.remove(&lease.key);
        }
        Ok(())
    }

    async fn put_run(&self, run: &SyncRun) -> Result<(), PortError> {
        let mut runs = lock(&self.runs);
        // Keyed as the table keys them: a run recorded again under the same start replaces itself.
        let same = |r: &&mut SyncRun| {
            r.job == run.job && r.started_at == run.started_at && r.run_id == run.run_id && r.scope == run.scope
        };
        match runs.iter_mut().find(same) {
            Some(existing) => *existing = run.clone(),
            None => runs.push(run.clone()),
        }
        Ok(())
    }

    async fn recent_runs(&self, job: &str, limit: usize) -> Result<Vec<SyncRun>, PortError> {
        let mut runs: Vec<SyncRun> = lock(&self.runs).iter().filter(|r| r.job == job).cloned().collect();
        runs.sort_by_key(|run| std::cmp::Reverse(run.started_at));
        runs.truncate(limit);
        Ok(runs)
    }

    async fn watermark(&self, key: &str) -> Result<Option<String>, PortError> {
        Ok(lock(&self.watermarks).get(key).cloned())
    }

    async fn set_watermark(&self, key: &str, value: &str) -> Result<(), PortError> {
        lock(&self.watermarks).insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn add_tally(&self, tally: &Tally) -> Result<(), PortError> {
        let mut tallies = lock(&self.tallies);
        let same = |t: &&mut Tally| {
            t.kind == tally.kind && t.hour == tally.hour && t.name == tally.name && t.outcome == tally.outcome
        };
        match tallies.iter_mut().find(same) {
            Some(existing) => {
                existing.count += tally.count;
                existing.records += tally.records;
            }
            None => tallies.push(tally.clone()),
        }
        Ok(())
    }

    async fn tallies(&self, kind: TallyKind, since: Timestamp, limit: usize) -> Result<Vec<Tally>, PortError> {
        let from = tributary_domain::sync::hour_of(since);
        let mut found: Vec<Tally> =
            lock(&self.tallies).iter().filter(|t| t.kind == kind && t.hour >= from).cloned().collect();
        found.sort_by(|a, b| (b.hour, &b.name, &b.outcome).cmp(&(a.hour, &a.name, &a.outcome)));
        found.truncate(limit);
        Ok(found)
    }
}

/// Queues in memory, named as SQS names them by URL: messages hidden by a receive come back when
/// released (not on a clock: a test releases or deletes what it received).
#[derive(Default)]
pub struct InMemoryQueues {
    queues: Mutex<HashMap<String, Vec<(QueuedMessage, bool)>>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl InMemoryQueues {
    /// Every message of `queue`, hidden or not.
    pub fn messages(&self, queue: &str) -> Vec<QueuedMessage> {
        lock(&self.queues).get(queue).into_iter().flatten().map(|(message, _)| message.clone()).collect()
    }
}

impl MessageQueues for InMemoryQueues {
    async fn depth(&self, queue: &str) -> Result<QueueDepth, PortError> {
        let queues = lock(&self.queues);
        let messages = queues.get(queue).map(Vec::as_slice).unwrap_or_default();
        let in_flight = messages.iter().filter(|(_, hidden)| *hidden).count() as u64;
        Ok(QueueDepth { visible: messages.len() as u64 - in_flight, in_flight })
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        _hide_for: std::time::Duration,
    ) -> Result<Vec<QueuedMessage>, PortError> {
        let mut queues = lock(&self.queues);
        let messages = queues.entry(queue.to_string()).or_default();
        let mut taken = Vec::new();
        for (message, hidden) in messages.iter_mut().filter(|(_, hidden)| !*hidden).take(max.min(10)) {
            *hidden = true;
            taken.push(message.clone());
        }
        Ok(taken)
    }

    async fn send(&self, queue: &str, body: &str, attributes: &[(&str, String)]) -> Result<(), PortError> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let message = QueuedMessage {
            id: format!("msg-{n}"),
            receipt: format!("receipt-{n}"),
            body: body.to_string(),
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            sent_at: Some(Timestamp::now()),
        };
        lock(&self.queues).entry(queue.to_string()).or_default().push((message, false));
        Ok(())
    }

    /// Sent at once: a test receives what it sent, delayed or not.
    async fn send_later(&self, queue: &str, body: &str, _delay: std::time::Duration) -> Result<(), PortError> {
        self.send(queue, body, &[]).await
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), PortError> {
        if let Some(messages) = lock(&self.queues).get_mut(queue) {
            messages.retain(|(message, _)| message.receipt != receipt);
        }
        Ok(())
    }

    async fn release(&self, queue: &str, receipts: &[String]) -> Result<(), PortError> {
        if let Some(messages) = lock(&self.queues).get_mut(queue) {
            for (message, hidden) in messages.iter_mut() {
                if receipts.contains(&message.receipt) {
                    *hidden = false;
                }
            }
        }
        Ok(())
    }
}
