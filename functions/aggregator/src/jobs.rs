//! The scheduled jobs.
//!
//! - `monthly-report`: on the 1st of the month, last month's report and the current alerts as xlsx
//!   files in the reports bucket, and a notification with their download links on the `reports`
//!   topic (its e-mail subscribers receive it). A rerun (Lambda retry) writes the same keys again
//!   and notifies again: the files are the same, the second e-mail is harmless.
//! - `latest-dates`: every hour (at :50, after the daily compaction), each lead's latest dates kept beside the `leads` table, so that a
//!   cold aggregator reads one row per lead instead of grouping every version
//!   ([`crate::snapshot::KeptLatestDates`]). A rerun finds them up to date, or writes the same file.

use crate::AggregatorError;
use crate::alerts::{AlertRules, alerts};
use crate::reader::{KeptOutcome, LakeReader};
use crate::report::{Month, monthly_report};
use crate::xlsx::{XLSX_CONTENT_TYPE, alerts_workbook, report_workbook};
use jiff::civil::Date;
use serde::Deserialize;
use tributary_domain::ports::{ReportSink, SyncStore};
use tributary_domain::sync::{FailureReason, LATEST_DATES_JOB, MONTHLY_REPORT_JOB, SyncOutcome, SyncRun, ended_at};

/// The schedule's input: `{"job": "monthly-report"}`, optionally with `"month": "YYYY-MM"` to
/// produce a given month again (default: the month before today's); or `{"job": "latest-dates"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub job: String,
    #[serde(default)]
    pub month: Option<String>,
}

impl JobRequest {
    /// The schedule's bare input, or an EventBridge event whose `detail` is that input.
    pub fn from_event(event: serde_json::Value) -> Result<Self, JobError> {
        let request = match event {
            serde_json::Value::Object(mut envelope) if envelope.contains_key("detail-type") => {
                envelope.remove("detail").unwrap_or_default()
            }
            bare => bare,
        };
        serde_json::from_value(request).map_err(|e| JobError::BadRequest(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("bad job request: {0}")]
    BadRequest(String),
    #[error("unknown job {0:?} (known: monthly-report, latest-dates)")]
    UnknownJob(String),
    #[error("month {0:?} is not YYYY-MM")]
    BadMonth(String),
    #[error(transparent)]
    Failed(#[from] AggregatorError),
}

impl JobError {
    /// The Lambda error type (what CloudWatch and the async-invoke destination show).
    pub fn kind(&self) -> &'static str {
        match self {
            JobError::BadRequest(_) | JobError::UnknownJob(_) | JobError::BadMonth(_) => "BadJobRequest",
            JobError::Failed(_) => "JobFailed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyOutput {
    pub month: String,
    pub report_key: String,
    pub alerts_key: String,
    pub alerts: usize,
}

pub struct MonthlySettings<'a> {
    pub zone: &'a str,
    pub rules: AlertRules,
}

/// [`run_job`], recorded as a run of job `monthly-report` (scope: the month; `records`: the alerts
/// written; a failure with a reason and words safe to show). A request for another job is refused
/// without a run. A run that cannot be recorded is logged: the report is written all the same.
pub async fn run_recorded_job(
    request: JobRequest,
    reader: &mut LakeReader,
    sink: &impl ReportSink,
    runs: &impl SyncStore,
    settings: &MonthlySettings<'_>,
    now: jiff::Timestamp,
) -> Result<MonthlyOutput, JobError> {
    if request.job != MONTHLY_REPORT_JOB {
        return Err(JobError::UnknownJob(request.job));
    }
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let scope = match &request.month {
        None => Month::containing(today).previous().to_string(),
        Some(text) => text.clone(),
    };
    let mut run = SyncRun::start(MONTHLY_REPORT_JOB, &scope, &SyncRun::new_id(), now, None);
    let started = std::time::Instant::now();
    let outcome = run_job(request, reader, sink, settings, today).await;
    let ended = ended_at(now, started);
    match &outcome {
        Ok(output) => {
            run.records = output.alerts as u64;
            run.finish(SyncOutcome::Completed, ended);
        }
        Err(error) => {
            let (reason, message) = match error {
                JobError::Failed(AggregatorError::Store(_)) => {
                    (FailureReason::StoreFailed, "writing the workbooks or sending their links failed; see the log")
                }
                JobError::Failed(AggregatorError::Xlsx(_)) => {
                    (FailureReason::Unclassified, "building a workbook failed; see the log")
                }
                JobError::Failed(_) => (FailureReason::LakeFailed, "reading the lake failed; see the log"),
                JobError::BadMonth(_) => (FailureReason::Configuration, "the month is not YYYY-MM"),
                JobError::BadRequest(_) | JobError::UnknownJob(_) => {
                    (FailureReason::Configuration, "the job request is not one this job takes")
                }
            };
            run.finish(SyncOutcome::Failed { reason, message: message.into() }, ended);
        }
    }
    if let Err(e) = runs.put_run(&run).await {
        tracing::error!(error = %e, "the monthly job's run could not be recorded");
    }
    outcome
}

/// The `latest-dates` job ([`LakeReader::keep_latest_dates`]), recorded as a run of job
/// `latest-dates` (scope `leads`; `records`: the leads kept, 0 when they were up to date).
pub async fn run_latest_dates_job(
    request: JobRequest,
    reader: &mut LakeReader,
    runs: &impl SyncStore,
    now: jiff::Timestamp,
) -> Result<KeptOutcome, JobError> {
    if request.job != LATEST_DATES_JOB {
        return Err(JobError::UnknownJob(request.job));
    }
    if request.month.is_some() {
        return Err(JobError::BadRequest("latest-dates takes no month".into()));
    }
    let mut run = SyncRun::start(LATEST_DATES_JOB, "leads", &SyncRun::new_id(), now, None);
    let started = std::time::Instant::now();
    let outcome = reader.keep_latest_dates().await;
    let ended = ended_at(now, started);
    match &outcome {
        Ok(kept) => {
            if let KeptOutcome::Written { leads, .. } = kept {
                run.records = *leads;
            }
            tracing::info!(?kept, "latest dates job done");
            run.finish(SyncOutcome::Completed, ended);
        }
        // The error itself is logged once, by the handler ("job failed").
        Err(_) => {
            let message = "computing or writing the latest dates failed; see the log";
            run.finish(SyncOutcome::Failed { reason: FailureReason::LakeFailed, message: message.into() }, ended);
        }
    }
    if let Err(e) = runs.put_run(&run).await {
        tracing::error!(error = %e, "the latest dates job's run could not be recorded");
    }
    Ok(outcome?)
}

pub async fn run_job(
    request: JobRequest,
    reader: &mut LakeReader,
    sink: &impl ReportSink,
    settings: &MonthlySettings<'_>,
    today: Date,
) -> Result<MonthlyOutput, JobError> {
    if request.job != "monthly-report" {
        return Err(JobError::UnknownJob(request.job));
    }
    let month = match &request.month {
        None => Month::containing(today).previous(),
        Some(text) => Month::parse(text).ok_or_else(|| JobError::BadMonth(text.clone()))?,
    };
    Ok(monthly(reader, sink, settings, month, today).await?)
}

async fn monthly(
    reader: &mut LakeReader,
    sink: &impl ReportSink,
    settings: &MonthlySettings<'_>,
    month: Month,
    today: Date,
) -> Result<MonthlyOutput, AggregatorError> {
    let engine = reader.latest().await?;
    let report = monthly_report(engine, month, settings.zone)?;
    let found = alerts(engine, settings.rules, today)?;
    let report_bytes = report_workbook(&report, month.first_day)?;
    let alerts_bytes = alerts_workbook(&found)?;

    let report_key = format!("reports/{month}/monthly-report-{month}.xlsx");
    let alerts_key = format!("alerts/{today}/alerts-{today}.xlsx");
    let report_link = sink.put(&report_key, report_bytes, XLSX_CONTENT_TYPE).await?;
    let alerts_link = sink.put(&alerts_key, alerts_bytes, XLSX_CONTENT_TYPE).await?;
    let contacted = report.funnel.first().map(|step| step.leads).unwrap_or(0);
    let message = format!(
        "Tributary monthly report for {month}\n\n\
         Leads first contacted in {month}: {contacted}\n\
         Stuck-lead alerts as of {today}: {alerts}\n\n\
         Report: {report_link}\n\
         Alerts: {alerts_link}\n\n\
         (Links expire; the files stay in the reports bucket under {report_key} and {alerts_key}.)\n",
        alerts = found.len(),
    );
    sink.notify(&format!("Tributary report {month}"), &message).await?;
    tracing::info!(%month, alerts = found.len(), %report_key, %alerts_key, "monthly report written");
    Ok(MonthlyOutput { month: month.to_string(), report_key, alerts_key, alerts: found.len() })
}
