//! `GET /api/v1/runs[?kind=…][&since=…][&limit=…]`: the recent history of everything that runs,
//! newest first: the runs of what runs on its own and records its runs (the pulls, the re-drives,
//! the rebuilds, the replays, the monthly job, the lake maintenance), and the hourly tallies of
//! what happens too often to record one by one (webhook deliveries by source and outcome, pushes by
//! integration and outcome, lake commits by table).

use crate::handler::{bad_request, limit_param, unavailable};
use jiff::{SignedDuration, Timestamp};
use lambda_http::{Body, Response};
use serde::Serialize;
use tributary_aws::problem::json_response;
use tributary_domain::ports::SyncStore;
use tributary_domain::sync::{RUN_JOBS, SyncRun, Tally, TallyKind};

/// Runs read per job when the request does not say.
pub const DEFAULT_RUNS: usize = 20;
/// Most runs read per job.
pub const MAX_RUNS: usize = 200;
/// Tallies read per kind: three days of a dozen senders with a few outcomes each. When a kind has
/// more since `since`, its oldest hour (read in part) is left out and the answer says `truncated`.
pub const MAX_TALLIES: usize = 3000;
/// How far back tallies go when the request names no `since`.
pub const DEFAULT_TALLY_WINDOW: SignedDuration = SignedDuration::from_hours(24);

#[derive(Debug, Serialize)]
struct HistoryView {
    runs: Vec<SyncRun>,
    tallies: Vec<Tally>,
    /// Some kind had more tallies than [`MAX_TALLIES`]: ask again with a later `since`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// Every kind the route answers: the jobs, then the tallies.
fn kinds() -> String {
    RUN_JOBS.iter().copied().chain(TallyKind::ALL.map(TallyKind::name)).collect::<Vec<_>>().join(", ")
}

pub async fn list<R: SyncStore>(
    runs: &R,
    kind: Option<&str>,
    since: Option<&str>,
    limit: Option<&str>,
    now: Timestamp,
) -> Response<Body> {
    let (jobs, tally_kinds): (Vec<&str>, Vec<TallyKind>) = match kind {
        None => (RUN_JOBS.to_vec(), TallyKind::ALL.to_vec()),
        Some(job) if RUN_JOBS.contains(&job) => (vec![job], Vec::new()),
        Some(kind) => match TallyKind::parse(kind) {
            Some(tally) => (Vec::new(), vec![tally]),
            None => return bad_request(&format!("kind must be one of {}", kinds()), "kind"),
        },
    };
    let since: Option<Timestamp> = match since.map(str::parse) {
        None => None,
        Some(Ok(since)) => Some(since),
        Some(Err(_)) => return bad_request("since must be an RFC 3339 instant (2026-12-01T00:00:00Z)", "since"),
    };
    let limit = match limit_param(limit, DEFAULT_RUNS, 1..=MAX_RUNS) {
        Ok(limit) => limit,
        Err(refused) => return refused,
    };
    let tallies_since = since.unwrap_or_else(|| now.checked_sub(DEFAULT_TALLY_WINDOW).unwrap_or(now));
    let (read_runs, read_tallies) = futures::future::join(
        futures::future::join_all(jobs.iter().map(|job| runs.recent_runs(job, limit))),
        futures::future::join_all(tally_kinds.iter().map(|kind| runs.tallies(*kind, tallies_since, MAX_TALLIES + 1))),
    )
    .await;
    let mut view = HistoryView { runs: Vec::new(), tallies: Vec::new(), truncated: false };
    for result in read_runs {
        match result {
            Ok(found) => {
                view.runs.extend(found.into_iter().filter(|run| since.is_none_or(|since| run.started_at >= since)))
            }
            Err(e) => return unavailable("ingestion table", &e),
        }
    }
    for result in read_tallies {
        match result {
            Ok(mut found) => {
                if found.len() > MAX_TALLIES {
                    // Newest first: the last hour read may be partial; none is shown rather than part.
                    let oldest = found.iter().map(|t| t.hour).min();
                    found.retain(|t| Some(t.hour) != oldest);
                    view.truncated = true;
                }
                view.tallies.extend(found)
            }
            Err(e) => return unavailable("ingestion table", &e),
        }
    }
    view.runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| a.job.cmp(&b.job)));
    view.tallies.sort_by(|a, b| {
        (b.hour, a.kind.name(), &a.name, &a.outcome).cmp(&(a.hour, b.kind.name(), &b.name, &b.outcome))
    });
    json_response(200, "application/json", &view)
}
