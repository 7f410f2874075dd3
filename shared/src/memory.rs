//! In-memory adapters of the ports, for unit tests, benchmarks and examples.
//!
//! They follow the same rules as the AWS adapters (conditional claims, tokens), so a handler test
//! against them says something about the handler; the moto tests say the rest.

use crate::ports::{
    ArchivedDelivery, BusMessage, ClaimOutcome, DedupClaim, DedupStore, EventPublisher, PortError, RawArchive,
    SecretSource,
};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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
}

#[derive(Default)]
pub struct InMemoryPublisher {
    messages: Mutex<Vec<BusMessage>>,
    fail: AtomicBool,
}

impl InMemoryPublisher {
    pub fn messages(&self) -> Vec<BusMessage> {
        lock(&self.messages).clone()
    }
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }
}

impl EventPublisher for InMemoryPublisher {
    async fn publish(&self, message: &BusMessage) -> Result<String, PortError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PortError::new("publish", "injected failure"));
        }
        let mut messages = lock(&self.messages);
        messages.push(message.clone());
        Ok(format!("memory-{}", messages.len()))
    }
}

#[derive(Default)]
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
