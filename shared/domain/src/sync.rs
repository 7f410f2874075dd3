//! Runs of what runs on its own: the scheduled pulls' sync runs (what `GET /api/v1/ingestion/status`
//! shows), re-drives, rebuilds and replays (what `GET /api/v1/runs` shows); the pulls' leases (one run at a
//! time per job and scope) and watermarks (where a delta sync resumes).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The pull jobs.
pub const JOBS: [&str; 2] = ["matomo", "notion"];
/// The job of the failure queues' re-drives (`POST /api/v1/failures/{queue}/redrive`).
pub const REDRIVE_JOB: &str = "redrive";
/// The job of the record rebuilds (`functions/rebuild`).
pub const REBUILD_JOB: &str = "rebuild";
/// The job of the monthly report and alerts (`aggregator-jobs`).
pub const MONTHLY_REPORT_JOB: &str = "monthly-report";
/// The job of the archive replays (`webhook-replay`).
pub const REPLAY_JOB: &str = "replay";
/// The job of the daily compaction, log expiry and vacuum (`lake-maintenance`), one run per table.
pub const LAKE_MAINTENANCE_JOB: &str = "lake-maintenance";
/// The job that keeps each lead's latest dates beside the `leads` table (`aggregator-jobs`, hourly).
pub const LATEST_DATES_JOB: &str = "latest-dates";
/// Every job whose runs are recorded: what `GET /api/v1/runs` reads.
pub const RUN_JOBS: [&str; 8] = [
    JOBS[0],
    JOBS[1],
    REDRIVE_JOB,
    REBUILD_JOB,
    REPLAY_JOB,
    MONTHLY_REPORT_JOB,
    LAKE_MAINTENANCE_JOB,
    LATEST_DATES_JOB,
];

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum SyncOutcome {
    /// Still running (or died without a word: its lease expires and the next run takes over).
    Running,
    /// Everything up to the target (yesterday, or now) is pulled.
    Completed,
    /// Stopped before the Lambda deadline with work left; the next run continues.
    MoreToDo,
    /// Another run holds the lease of this job and scope.
    SkippedLeased,
    /// Failed after retries; the checkpoint is where the last commit left it. The run says what
    /// kind of failure it was in words safe to show (the status route serves them); the details
    /// (the source's answer, the AWS error) are in the function's log.
    Failed {
        reason: FailureReason,
        #[serde(default)]
        message: String,
    },
}

/// What kind of failure ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The source could not be reached, or kept answering 5xx or 429, until the retries ran out.
    SourceUnavailable,
    /// The source refused the request (4xx: a revoked token, an unknown site or database).
    SourceRefused,
    /// The source answered something unusable (an error body, not JSON, not the expected shape).
    SourceAnswer,
    /// Writing to the lake failed.
    LakeFailed,
    /// Publishing to the events topic failed.
    BusFailed,
    /// The ingestion table (leases, runs, watermarks) failed.
    StoreFailed,
    /// The job's configuration is not usable.
    Configuration,
    /// A run recorded before failures were classified.
    #[serde(other)]
    Unclassified,
}

/// One run of one job over one scope (a Matomo site, a Notion database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRun {
    pub job: String,
    pub scope: String,
    pub run_id: String,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_after: Option<String>,
    /// Pages fetched from the source API.
    pub pages: u64,
    /// Records taken (visits appended, leads published).
    pub records: u64,
    /// Records refused (invalid leads), each logged with its id and reason.
    pub rejected: u64,
    /// What the run counted by kind (a replay: deliveries by event type), when it says more than
    /// `records`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub counts: std::collections::BTreeMap<String, u64>,
    /// The name of the API key that asked for the run (re-drives, rebuilds and replays asked
    /// through the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    pub outcome: SyncOutcome,
}

impl SyncRun {
    /// A fresh run id.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    pub fn start(job: &str, scope: &str, run_id: &str, now: Timestamp, watermark: Option<String>) -> Self {
        Self {
            job: job.to_string(),
            scope: scope.to_string(),
            run_id: run_id.to_string(),
            started_at: now,
            ended_at: None,
            watermark_after: watermark.clone(),
            watermark_before: watermark,
            pages: 0,
            records: 0,
            rejected: 0,
            counts: std::collections::BTreeMap::new(),
            requested_by: None,
            outcome: SyncOutcome::Running,
        }
    }

    pub fn finish(&mut self, outcome: SyncOutcome, now: Timestamp) {
        self.outcome = outcome;
        self.ended_at = Some(now);
    }
}

/// When a run that began at `now` (read once, when `started` was taken) ends: `now` moved on by
/// the time since `started`, or `now` itself if that cannot be represented.
pub fn ended_at(now: Timestamp, started: std::time::Instant) -> Timestamp {
    jiff::SignedDuration::try_from(started.elapsed())
        .ok()
        .and_then(|elapsed| now.checked_add(elapsed).ok())
        .unwrap_or(now)
}

/// What is counted by the hour rather than recorded as runs (there are too many of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TallyKind {
    /// Webhook deliveries by source and outcome (`accepted`, `duplicate`, `unauthorized`, …).
    Deliveries,
    /// Pushes by integration and outcome (`success`, `permanent_failure`, `gave_up`).
    Pushes,
    /// Lake commits by table (`committed`, `failed`), with the rows written.
    LakeCommits,
}

impl TallyKind {
    pub const ALL: [TallyKind; 3] = [Self::Deliveries, Self::Pushes, Self::LakeCommits];

    pub fn name(self) -> &'static str {
        match self {
            Self::Deliveries => "deliveries",
            Self::Pushes => "pushes",
            Self::LakeCommits => "lake-commits",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// One hour's count of one thing: the deliveries of a source with an outcome, the pushes of an
/// integration with an outcome, the commits to a lake table. Added to as things happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub kind: TallyKind,
    /// The start of the hour (UTC).
    pub hour: Timestamp,
    /// The source, integration or table.
    pub name: String,
    pub outcome: String,
    pub count: u64,
    /// Rows written (lake commits); 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub records: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Tally {
    /// One occurrence at `at`, counted in its hour.
    pub fn one(kind: TallyKind, name: &str, outcome: &str, at: Timestamp) -> Self {
        Self { kind, hour: hour_of(at), name: name.to_string(), outcome: outcome.to_string(), count: 1, records: 0 }
    }
}

/// The start of the UTC hour `at` falls in.
pub fn hour_of(at: Timestamp) -> Timestamp {
    let second = at.as_second();
    Timestamp::from_second(second - second.rem_euclid(3600)).unwrap_or(at)
}

/// How long a tally write may take: what it counts is already done, and a caller waiting longer
/// (a throttled table, the SDK's retries) could time out and be retried, doing it again.
pub const TALLY_WRITE_LIMIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Counts `tally` in the store, best effort: what was counted is done whatever the count does, so
/// a failure or a write slower than [`TALLY_WRITE_LIMIT`] is logged and never fails it.
pub async fn count<R: crate::ports::SyncStore>(store: &R, tally: &Tally) {
    match tokio::time::timeout(TALLY_WRITE_LIMIT, store.add_tally(tally)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, kind = tally.kind.name(), name = tally.name, "a tally was not counted")
        }
        Err(_) => {
            tracing::warn!(kind = tally.kind.name(), name = tally.name, "a tally write took too long; not counted")
        }
    }
}

/// A claim on a job and scope until `until`. A run's lease outlives its Lambda deadline, so that a
/// run that died without releasing it still blocks no one for long, and never overlaps one alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `{job}#{scope}`.
    pub key: String,
    /// The run id of the holder.
    pub owner: String,
    pub now: Timestamp,
    pub until: Timestamp,
}

impl Lease {
    pub fn key_for(job: &str, scope: &str) -> String {
        format!("{job}#{scope}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_serialise_with_a_tagged_outcome() {
        let now: Timestamp = "2025-01-02T03:00:00Z".parse().unwrap();
        let mut run = SyncRun::start("matomo", "site-1", "r1", now, Some("2025-01-01#0".into()));
        let failed = SyncOutcome::Failed {
            reason: FailureReason::SourceUnavailable,
            message: "visits site 1: the source answered HTTP 500 after 5 attempts".into(),
        };
        run.finish(failed, now);
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(
            json["outcome"],
            serde_json::json!({"status": "failed", "reason": "source_unavailable",
                "message": "visits site 1: the source answered HTTP 500 after 5 attempts"})
        );
        assert_eq!(serde_json::from_value::<SyncRun>(json.clone()).unwrap(), run);
        // A run stored before reasons were classified held free text: never shown again.
        let mut old = json;
        old["outcome"] = serde_json::json!({"status": "failed", "reason": "HTTP 500: <html>internal</html>"});
        let read = serde_json::from_value::<SyncRun>(old).unwrap();
        assert_eq!(read.outcome, SyncOutcome::Failed { reason: FailureReason::Unclassified, message: String::new() });
    }
}
