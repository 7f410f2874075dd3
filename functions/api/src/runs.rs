//! `GET /api/v1/runs[?job=…][&since=…][&limit=…]`: the recent runs of everything that runs on its
//! own and records its runs (the pulls, the re-drives, the rebuilds), newest first.

use crate::handler::{bad_request, limit_param, unavailable};
use lambda_http::{Body, Response};
use serde::Serialize;
use tributary_aws::problem::json_response;
use tributary_domain::ports::SyncStore;
use tributary_domain::sync::{RUN_JOBS, SyncRun};

/// Runs read per job when the request does not say.
pub const DEFAULT_RUNS: usize = 20;
/// Most runs read per job.
pub const MAX_RUNS: usize = 200;

#[derive(Debug, Serialize)]
struct RunsView {
    runs: Vec<SyncRun>,
}

pub async fn list<R: SyncStore>(
    runs: &R,
    job: Option<&str>,
    since: Option<&str>,
    limit: Option<&str>,
) -> Response<Body> {
    let jobs: Vec<&str> = match job {
        None => RUN_JOBS.to_vec(),
        Some(job) if RUN_JOBS.contains(&job) => vec![job],
        Some(_) => return bad_request(&format!("job must be one of {}", RUN_JOBS.join(", ")), "job"),
    };
    let since: Option<jiff::Timestamp> = match since.map(str::parse) {
        None => None,
        Some(Ok(since)) => Some(since),
        Some(Err(_)) => return bad_request("since must be an RFC 3339 instant (2026-12-01T00:00:00Z)", "since"),
    };
    let limit = match limit_param(limit, DEFAULT_RUNS, 1..=MAX_RUNS) {
        Ok(limit) => limit,
        Err(refused) => return refused,
    };
    let read = futures::future::join_all(jobs.iter().map(|job| runs.recent_runs(job, limit))).await;
    let mut all = Vec::new();
    for result in read {
        match result {
            Ok(found) => all.extend(found.into_iter().filter(|run| since.is_none_or(|since| run.started_at >= since))),
            Err(e) => return unavailable("ingestion table", &e),
        }
    }
    all.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| a.job.cmp(&b.job)));
    json_response(200, "application/json", &RunsView { runs: all })
}
