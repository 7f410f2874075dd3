//! One scheduled invocation: which job, then per scope (a Matomo site, a Notion query target) a
//! lease, a sync run record, the pull, the run's outcome.

use crate::config::PullerConfig;
use crate::fetch::RetryPolicy;
use crate::matomo::api::MatomoApi;
use crate::matomo::pull::{MatomoJob, MatomoSettings};
use crate::matomo::visit::Anonymiser;
use crate::notion::api::{NotionApi, QueryTarget};
use crate::notion::mapping::PropertyMap;
use crate::notion::pull::NotionJob;
use crate::{Budget, PullError};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use tributary_domain::config::ConfigError;
use tributary_domain::metrics::Metrics;
use tributary_domain::ports::{EventPublisher, SyncStore};
use tributary_domain::sync::{FailureReason, Lease, SyncOutcome, SyncRun};
use tributary_lake::schema::MATOMO_VISITS;
use tributary_lake::{LakeLocation, LakeTable};

/// What a schedule asks for: `{"job": "matomo", "sites": [1]}`, `{"job": "notion",
/// "databases": ["…"]}`; without a subset, every configured site or database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "job", rename_all = "lowercase", deny_unknown_fields)]
pub enum JobRequest {
    Matomo {
        #[serde(default)]
        sites: Option<Vec<u32>>,
    },
    Notion {
        #[serde(default)]
        databases: Option<Vec<String>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the event is not a job request ({0}); expected {{\"job\": \"matomo\"}} or {{\"job\": \"notion\"}}")]
    Invalid(String),
    #[error("job {0} is not configured in this deployment")]
    NotConfigured(&'static str),
    #[error("{0} is not configured for this deployment")]
    UnknownScope(String),
}

impl JobRequest {
    /// The schedule's input as delivered: the bare JSON (`Input` of a schedule target) or an
    /// EventBridge event whose `detail` is the request (`sam local invoke` with `events/`).
    pub fn parse(event: &Value) -> Result<Self, RequestError> {
        let request = match event.get("detail-type") {
            Some(_) => event.get("detail").unwrap_or(&Value::Null),
            None => event,
        };
        serde_json::from_value(request.clone()).map_err(|e| RequestError::Invalid(e.to_string()))
    }
}

pub struct MatomoDeps {
    pub api: MatomoApi,
    pub anonymiser: Anonymiser,
    pub settings: MatomoSettings,
    pub sites: Vec<u32>,
}

pub struct NotionDeps {
    pub api: NotionApi,
    pub properties: PropertyMap,
    pub databases: Vec<String>,
}

pub struct Deps<S, P> {
    pub store: S,
    pub publisher: P,
    pub lake: LakeLocation,
    pub matomo: Option<MatomoDeps>,
    pub notion: Option<NotionDeps>,
}

impl<S, P> Deps<S, P> {
    /// The dependencies a configuration describes, with its secrets (read at cold start).
    pub fn from_config(
        config: &PullerConfig,
        secrets: &HashMap<String, String>,
        http: reqwest::Client,
        store: S,
        publisher: P,
    ) -> Result<Self, ConfigError> {
        let secret = |name: &str| {
            // A value pasted with a trailing newline would make every request fail obscurely.
            secrets
                .get(name)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
                .ok_or_else(|| ConfigError::invalid(name, "the secret parameter is missing or empty"))
        };
        let matomo = match &config.matomo {
            None => None,
            Some(m) => Some(MatomoDeps {
                api: MatomoApi::new(http.clone(), &m.base_url, secret(&m.token_param)?, RetryPolicy::default())
                    .map_err(|e| ConfigError::invalid("MATOMO_URL", e))?,
                anonymiser: Anonymiser::new(secret(&m.hmac_key_param)?.as_bytes(), &m.anonymise),
                settings: m.settings.clone(),
                sites: m.sites.clone(),
            }),
        };
        let notion = match &config.notion {
            None => None,
            Some(n) => Some(NotionDeps {
                api: NotionApi::new(
                    http.clone(),
                    n.base_url.clone(),
                    secret(&n.token_param)?,
                    n.version.clone(),
                    RetryPolicy::default(),
                ),
                properties: n.properties.clone(),
                databases: n.databases.clone(),
            }),
        };
        Ok(Self { store, publisher, lake: config.lake.clone(), matomo, notion })
    }
}

/// A lease outlives the invocation's deadline by this much, so that a run killed without
/// releasing it blocks the next one briefly and never overlaps a live one.
pub const LEASE_SLACK: SignedDuration = SignedDuration::from_secs(60);

/// The invocation's answer: every scope's run.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job: &'static str,
    pub runs: Vec<SyncRun>,
    /// Some scope stopped for the deadline; the next scheduled run continues.
    pub more_to_do: bool,
}

impl JobReport {
    /// The invocation's metrics line (EMF), over every scope's run.
    pub fn metrics(&self) -> Metrics {
        let sum = |field: fn(&SyncRun) -> u64| self.runs.iter().map(field).sum::<u64>();
        Metrics::new("puller")
            .count("pages_pulled", sum(|run| run.pages))
            .count("records_pulled", sum(|run| run.records))
            .count("records_rejected", sum(|run| run.rejected))
            .count("runs_with_more_to_do", u64::from(self.more_to_do))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("{failed} of {total} {job} run(s) failed: {first}")]
    RunsFailed { job: &'static str, failed: usize, total: usize, first: String },
    #[error("the ingestion table failed: {0}")]
    Store(tributary_domain::ports::PortError),
}

/// Lambda's error report: a stable type to filter on in CloudWatch, and the message.
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::Request(_) => "BadJobRequest",
            HandlerError::RunsFailed { .. } => "PullFailed",
            HandlerError::Store(_) => "BackingServiceFailed",
        };
        Self { error_type: error_type.into(), error_message: error.to_string() }
    }
}

fn subset<T: Clone + PartialEq + std::fmt::Display>(
    configured: &[T],
    asked: Option<Vec<T>>,
    what: &str,
) -> Result<Vec<T>, RequestError> {
    match asked {
        None => Ok(configured.to_vec()),
        Some(asked) => {
            if let Some(unknown) = asked.iter().find(|item| !configured.contains(item)) {
                return Err(RequestError::UnknownScope(format!("{what} {unknown}")));
            }
            Ok(asked)
        }
    }
}

/// A scope's run: started under its lease, or not started (the lease is held elsewhere, or could
/// not be taken), each recorded as a sync run.
enum Begun {
    Started(Lease, SyncRun),
    NotStarted(SyncRun),
}

async fn begin<S: SyncStore>(
    store: &S,
    job: &str,
    scope: &str,
    run_id: &str,
    budget: &Budget,
) -> Result<Begun, HandlerError> {
    let now = Timestamp::now();
    let lease = Lease {
        key: Lease::key_for(job, scope),
        owner: run_id.to_string(),
        now,
        until: budget.deadline_plus(LEASE_SLACK),
    };
    let mut run = SyncRun::start(job, scope, run_id, now, None);
    let not_started = match store.acquire_lease(&lease).await {
        Ok(true) => None,
        Ok(false) => {
            tracing::info!(job, scope, "another run holds the lease; skipped");
            Some(SyncOutcome::SkippedLeased)
        }
        Err(e) => {
            tracing::error!(job, scope, error = %e, "acquiring the lease failed");
            Some(SyncOutcome::Failed {
                reason: FailureReason::StoreFailed,
                message: "acquiring the lease failed".into(),
            })
        }
    };
    if let Some(outcome) = not_started {
        run.finish(outcome, Timestamp::now());
        store.put_run(&run).await.map_err(HandlerError::Store)?;
        return Ok(Begun::NotStarted(run));
    }
    if let Err(e) = store.put_run(&run).await {
        // Not even recorded: give the lease back so that Lambda's retry is not skipped.
        if let Err(release) = store.release_lease(&lease).await {
            tracing::warn!(error = %release, "releasing the lease failed");
        }
        return Err(HandlerError::Store(e));
    }
    Ok(Begun::Started(lease, run))
}

async fn end<S: SyncStore>(store: &S, lease: &Lease, run: &mut SyncRun, result: Result<bool, PullError>) {
    let outcome = match result {
        Ok(true) => SyncOutcome::Completed,
        Ok(false) => SyncOutcome::MoreToDo,
        Err(e) => {
            tracing::error!(job = run.job, scope = run.scope, error = %e, "pull failed");
            let (reason, message) = e.public();
            SyncOutcome::Failed { reason, message }
        }
    };
    run.finish(outcome, Timestamp::now());
    tracing::info!(job = run.job, scope = run.scope, pages = run.pages, records = run.records, rejected = run.rejected,
        watermark = run.watermark_after.as_deref().unwrap_or("-"), outcome = ?run.outcome, "sync run");
    if let Err(e) = store.put_run(run).await {
        tracing::error!(error = %e, "recording the sync run failed");
    }
    if let Err(e) = store.release_lease(lease).await {
        // It expires on its own shortly after the deadline.
        tracing::warn!(error = %e, "releasing the lease failed");
    }
}

pub async fn handle<S: SyncStore, P: EventPublisher>(
    deps: &Deps<S, P>,
    event: &Value,
    budget: Budget,
) -> Result<JobReport, HandlerError> {
    let request = JobRequest::parse(event)?;
    let run_id = SyncRun::new_id();
    let (job, runs) = match request {
        JobRequest::Matomo { sites } => {
            let matomo = deps.matomo.as_ref().ok_or(RequestError::NotConfigured("matomo"))?;
            let sites = subset(&matomo.sites, sites, "Matomo site")?;
            ("matomo", run_matomo(deps, matomo, &sites, &run_id, &budget).await?)
        }
        JobRequest::Notion { databases } => {
            let notion = deps.notion.as_ref().ok_or(RequestError::NotConfigured("notion"))?;
            let databases = subset(&notion.databases, databases, "Notion database")?;
            ("notion", run_notion(deps, notion, &databases, &run_id, &budget).await?)
        }
    };
    let failed: Vec<&SyncRun> = runs.iter().filter(|r| matches!(r.outcome, SyncOutcome::Failed { .. })).collect();
    if let Some(first) = failed.first() {
        // A failed invocation shows in the function's error metrics and alarms.
        return Err(HandlerError::RunsFailed {
            job,
            failed: failed.len(),
            total: runs.len(),
            first: match &first.outcome {
                SyncOutcome::Failed { message, .. } => format!("{}: {message}", first.scope),
                other => format!("{}: {other:?}", first.scope),
            },
        });
    }
    let more_to_do = runs.iter().any(|r| r.outcome == SyncOutcome::MoreToDo);
    Ok(JobReport { job, runs, more_to_do })
}

async fn run_matomo<S: SyncStore, P: EventPublisher>(
    deps: &Deps<S, P>,
    matomo: &MatomoDeps,
    sites: &[u32],
    run_id: &str,
    budget: &Budget,
) -> Result<Vec<SyncRun>, HandlerError> {
    let job = MatomoJob {
        api: &matomo.api,
        publisher: &deps.publisher,
        anonymiser: &matomo.anonymiser,
        settings: &matomo.settings,
    };
    let mut lake = LakeTable::open_or_create(&deps.lake, &MATOMO_VISITS).await;
    let mut runs = Vec::new();
    for &site in sites {
        let (lease, mut run) = match begin(&deps.store, "matomo", &format!("site-{site}"), run_id, budget).await? {
            Begun::Started(lease, run) => (lease, run),
            Begun::NotStarted(run) => {
                runs.push(run);
                continue;
            }
        };
        let result = match lake.as_mut() {
            Ok(lake) => job.pull_site(lake, site, budget, &mut run).await,
            Err(e) => Err(PullError::Config(format!("opening the lake table: {e}"))),
        };
        end(&deps.store, &lease, &mut run, result).await;
        runs.push(run);
    }
    Ok(runs)
}

async fn run_notion<S: SyncStore, P: EventPublisher>(
    deps: &Deps<S, P>,
    notion: &NotionDeps,
    databases: &[String],
    run_id: &str,
    budget: &Budget,
) -> Result<Vec<SyncRun>, HandlerError> {
    let job =
        NotionJob { api: &notion.api, publisher: &deps.publisher, store: &deps.store, properties: &notion.properties };
    let mut runs = Vec::new();
    for database in databases {
        // Leases are per database: its data sources are discovered, then pulled one by one.
        let scope = format!("database-{database}");
        let (lease, mut run) = match begin(&deps.store, "notion", &scope, run_id, budget).await? {
            Begun::Started(lease, run) => (lease, run),
            Begun::NotStarted(run) => {
                runs.push(run);
                continue;
            }
        };
        let result = pull_database(&job, database, budget, &mut run).await;
        end(&deps.store, &lease, &mut run, result).await;
        runs.push(run);
    }
    Ok(runs)
}

/// Every query target of a database in turn; the run's watermark fields show each target's
/// (`data-source-<id>=<watermark>, …` when the database has several data sources).
async fn pull_database<P: EventPublisher, S: SyncStore>(
    job: &NotionJob<'_, P, S>,
    database: &str,
    budget: &Budget,
    run: &mut SyncRun,
) -> Result<bool, PullError> {
    let targets: Vec<QueryTarget> = job.api.targets(database, budget).await?;
    if targets.is_empty() {
        tracing::warn!(database, "the Notion database has no data source: nothing to pull");
    }
    // Each data source has its own watermark; the run, one per database, lists those it reached.
    // (data source, watermark before, watermark after)
    type Reached = (String, Option<String>, Option<String>);
    let mut reached: Vec<Reached> = Vec::new();
    let mut outcome = Ok(true);
    for target in &targets {
        let pulled = job.pull_target(target, budget, run).await;
        reached.push((target.scope(), run.watermark_before.take(), run.watermark_after.take()));
        if !matches!(pulled, Ok(true)) {
            outcome = pulled;
            break;
        }
    }
    (run.watermark_before, run.watermark_after) = match reached.as_slice() {
        [] => (None, None),
        [(_, before, after)] => (before.clone(), after.clone()),
        several => {
            let list = |pick: fn(&Reached) -> &Option<String>| {
                let marks: Vec<String> =
                    several.iter().map(|r| format!("{}={}", r.0, pick(r).as_deref().unwrap_or("start"))).collect();
                Some(marks.join(", "))
            };
            (list(|r| &r.1), list(|r| &r.2))
        }
    };
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_come_bare_or_in_an_eventbridge_envelope() {
        assert_eq!(JobRequest::parse(&json!({"job": "matomo"})).unwrap(), JobRequest::Matomo { sites: None });
        let envelope = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {"job": "notion", "databases": ["abc"]}});
        assert_eq!(JobRequest::parse(&envelope).unwrap(), JobRequest::Notion { databases: Some(vec!["abc".into()]) });
        let unknown = JobRequest::parse(&json!({"job": "salesforce"})).unwrap_err().to_string();
        assert!(unknown.contains("unknown variant `salesforce`"), "{unknown}");
        assert!(JobRequest::parse(&json!({})).is_err());
    }

    #[test]
    fn a_subset_must_be_configured() {
        assert_eq!(subset(&[1, 2], Some(vec![2]), "site").unwrap(), vec![2]);
        assert_eq!(
            subset(&[1, 2], Some(vec![3]), "Matomo site").unwrap_err().to_string(),
            "Matomo site 3 is not configured for this deployment"
        );
    }
}
