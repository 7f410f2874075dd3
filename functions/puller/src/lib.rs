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
    Lake(#[from] tributary_shared::lake::LakeError),
    #[error("publishing events failed: {0}")]
    Publish(tributary_shared::ports::PortError),
    #[error("the ingestion table failed: {0}")]
    Store(tributary_shared::ports::PortError),
    #[error("{0}")]
    Config(String),
}
