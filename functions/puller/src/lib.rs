//! The puller: scheduled, resumable pulls.
//!
//! - [`matomo`]: visits of each site, day by day, into the lake's `matomo_visits` table exactly
//!   once (the position is a Delta application transaction committed with the rows), and a
//!   `matomo.visit` event per visit of a known visitor.
//! - [`notion`]: leads edited since the watermark, as `lead.upserted` events.
//! - [`handler`]: the scheduled event → job, leases, sync runs; [`config`]: the environment.

pub mod config;
pub mod fetch;
pub mod handler;
pub mod matomo;
pub mod notion;

use jiff::{SignedDuration, Timestamp};
use tributary_domain::sync::FailureReason;

/// The allocator of everything that links the puller (the Lambda, its tests and benchmarks). A
/// page of visits and its Parquet encoding allocate and free megabytes at a time; glibc's malloc
/// hands such blocks back to the kernel and maps them again, and the page faults cost as much as
/// the encoding itself (README, "The puller").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Time left in this invocation: work stops once less than `margin` remains before the Lambda
/// deadline, leaving time to commit and record the run.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub deadline: Timestamp,
    pub margin: SignedDuration,
}

impl Budget {
    pub fn exhausted(&self) -> bool {
        self.exhausted_after(std::time::Duration::ZERO)
    }

    /// Whether waiting `wait` would leave less than the margin.
    pub fn exhausted_after(&self, wait: std::time::Duration) -> bool {
        let wait = SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
        Timestamp::now().checked_add(self.margin.saturating_add(wait)).map_or(true, |end| end >= self.deadline)
    }

    /// The deadline plus `slack`, or the end of time.
    pub fn deadline_plus(&self, slack: SignedDuration) -> Timestamp {
        self.deadline.checked_add(slack).unwrap_or(Timestamp::MAX)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error("the source answered something unusable: {0}")]
    Source(String),
    #[error(transparent)]
    Lake(#[from] tributary_lake::LakeError),
    #[error("publishing events failed: {0}")]
    Publish(tributary_domain::ports::PortError),
    #[error("the ingestion table failed: {0}")]
    Store(tributary_domain::ports::PortError),
    #[error("{0}")]
    Config(String),
}

impl PullError {
    /// What the sync run may say of this failure: its kind and words with no upstream answer, URL,
    /// ARN or AWS message in them (those are in the log line the handler writes).
    pub fn public(&self) -> (FailureReason, String) {
        match self {
            Self::Fetch(e) => match e.status {
                Some(status) if (400..500).contains(&status) && status != 429 => (
                    FailureReason::SourceRefused,
                    format!("{}: the source refused the request (HTTP {status})", e.what),
                ),
                Some(status) if status == 429 || status >= 500 => (
                    FailureReason::SourceUnavailable,
                    format!("{}: the source answered HTTP {status} after {} attempt(s)", e.what, e.attempts),
                ),
                Some(_) => (
                    FailureReason::SourceAnswer,
                    format!("{}: the source's answer was not usable after {} attempt(s)", e.what, e.attempts),
                ),
                None => (
                    FailureReason::SourceUnavailable,
                    format!("{}: the source could not be reached after {} attempt(s)", e.what, e.attempts),
                ),
            },
            Self::Source(_) => (FailureReason::SourceAnswer, "the source's answer was not usable".into()),
            Self::Lake(_) => (FailureReason::LakeFailed, "writing to the lake failed".into()),
            Self::Publish(_) => (FailureReason::BusFailed, "publishing to the events topic failed".into()),
            Self::Store(_) => (FailureReason::StoreFailed, "the ingestion table failed".into()),
            Self::Config(_) => (FailureReason::Configuration, "the job's configuration is not usable".into()),
        }
    }
}
