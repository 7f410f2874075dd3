//! `make demo`: the whole pipeline on this machine. moto with every resource of `template.yaml`,
//! local Matomo, Notion and CRM servers over the demo data of `tests/demo/`, every function as its
//! real Lambda binary behind a local Runtime API (built beside the demo's own binary), the event sources played by [`Dispatcher`]; then
//! sample deliveries, both pulls, a summary, and a repair (the CRM down, its failed pushes listed and
//! re-driven). `--check` compares the summary with `tests/demo/expected.json` and checks the repair,
//! then stops; otherwise the stack stays up until Ctrl-C.

mod check;
mod console;
mod deliveries;
mod pulls;
mod repair;
mod start;
mod summary;

pub use check::fresh_samples;
pub use deliveries::post;
pub use repair::Repair;
pub use summary::{Run, Summary};

use crate::dispatch::Dispatcher;
use crate::functions::{FunctionClient, FunctionProcess, FunctionSpec, child_pids, function_env};
use crate::gateway::Gateway;
use crate::local_lambda::binary_dir;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tributary_testing::senders::{standard_webhooks_signature, stripe_signature_header};
use tributary_testing::{
    Moto, Stack, Template, project_python, put_demo_secrets, put_secrets, sdk_config_for, workspace_root,
};

/// The Standard Webhooks sender the demo configures (its secret is in `events/local-secrets.json`).
pub const DEMO_SOURCES: &str =
    r#"[{"name":"acme","secret_param":"/tributary/webhook-sources/acme","subject_field":"data.email"}]"#;
const INTEGRATIONS_PARAM: &str = "/tributary/integrations";
/// The month of the demo data, for the monthly report.
const REPORT_MONTH: &str = "2026-10";

/// Where the demo listens. `check` takes free ports so that it never collides with a running demo.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub moto: u16,
    /// The first function's port; the others follow.
    pub functions: u16,
    pub sources: u16,
    /// The HTTP API: every route of the template on one origin (the console's).
    pub gateway: u16,
}

impl Ports {
    fn from_env(name: &str, default: u16) -> Result<u16, String> {
        match std::env::var(name) {
            Ok(value) => value.parse().map_err(|_| format!("{name}={value} is not a port number")),
            Err(_) => Ok(default),
        }
    }

    /// The ports a person types: moto 5000, functions from 9001, sources 8900, the HTTP API 3000.
    pub fn well_known() -> Result<Self, String> {
        Ok(Self {
            moto: Self::from_env("MOTO_PORT", 5000)?,
            functions: Self::from_env("LAMBDA_PORT", 9001)?,
            sources: Self::from_env("SOURCES_PORT", 8900)?,
            gateway: Self::from_env("API_PORT", 3000)?,
        })
    }

    /// Any free ports (0: each server binds one and says which): a port picked free ahead could be
    /// taken before it is bound, by the tests run beside the demo check.
    pub fn free() -> Self {
        Self { moto: 0, functions: 0, sources: 0, gateway: 0 }
    }
}

pub fn state_dir() -> PathBuf {
    workspace_root().join(".local")
}

/// A value of `events/local-secrets.json`: a secret (`/tributary/…`) or the demo API key (`_api_key`).
pub fn secret(key: &str) -> Result<String, String> {
    let secrets = read_json(workspace_root().join("events/local-secrets.json"))?;
    secrets[key].as_str().map(str::to_string).ok_or(format!("events/local-secrets.json has no {key}"))
}

/// Elapsed time for progress lines.
struct Clock(Instant);

impl Clock {
    fn say(&self, message: impl AsRef<str>) {
        println!("[{:>5.1}s] {}", self.0.elapsed().as_secs_f64(), message.as_ref());
    }
}

/// Everything the demo started, stopped in reverse order.
pub struct Demo {
    moto: Option<Moto>,
    sources: Option<Child>,
    functions: Vec<FunctionProcess>,
    dispatcher: Option<Dispatcher>,
    gateway: Option<Gateway>,
    ports: Vec<u16>,
    sdk: aws_config::SdkConfig,
    stack: Stack,
    sources_url: String,
    expected: Value,
    api_key: String,
    clock: Clock,
}

/// GETs `url` (unauthenticated: the demo's own sources) and reads its JSON answer.
async fn get_json(http: &reqwest::Client, url: &str, what: &str) -> Result<Value, String> {
    let response = http.get(url).send().await.map_err(|e| format!("{what}: {e}"))?;
    response.json().await.map_err(|e| format!("{what}: {e}"))
}

pub fn read_json(path: PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn demo_data_dir() -> PathBuf {
    workspace_root().join("tests/demo")
}

impl Demo {
    pub fn client(&self, logical_id: &str) -> Result<&FunctionClient, String> {
        self.functions
            .iter()
            .find(|f| f.spec.logical_id == logical_id)
            .map(|f| &f.client)
            .ok_or(format!("{logical_id} is not running"))
    }

    pub fn dispatcher(&self) -> Result<&Dispatcher, String> {
        self.dispatcher.as_ref().ok_or("the dispatcher is not running".to_string())
    }

    /// The sample deliveries, the lead batch, both pulls; returns what the run produced.
    pub async fn play(&self) -> Result<Run, String> {
        let mut run = Run::default();
        self.send_deliveries(&mut run).await?;
        for (schedule, job) in [("MatomoPull", "matomo"), ("NotionPull", "notion")] {
            self.pull(schedule, job, &mut run).await?;
        }
        self.clock.say("waiting for the events to reach the processor, the integrator and the lake");
        let progress = self.progress_ticker();
        let idle = self.dispatcher()?.wait_until_idle(Duration::from_secs(900)).await;
        progress.abort();
        idle?;
        self.say_progress();
        // The integrator's pushes follow the processor's updates: one more quiet period.
        self.dispatcher()?.wait_until_idle(Duration::from_secs(300)).await?;
        let report = self
            .client("AggregatorJobsFunction")?
            .invoke(&json!({"job": "monthly-report", "month": REPORT_MONTH}))
            .await?;
        if report.failed() {
            return Err(format!("the monthly report job failed: {}", report.body));
        }
        run.report = report.body;
        self.clock.say("monthly report and alerts written as xlsx (aggregator-jobs)");
        Ok(run)
    }

    fn progress_ticker(&self) -> tokio::task::JoinHandle<()> {
        let stats: Vec<(String, std::sync::Arc<crate::dispatch::FunctionStats>)> =
            self.dispatcher.iter().flat_map(|d| d.stats.iter().map(|(k, v)| (k.clone(), v.clone()))).collect();
        let started = self.clock.0;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                println!("[{:>5.1}s] {}", started.elapsed().as_secs_f64(), progress_line(&stats));
            }
        })
    }

    fn say_progress(&self) {
        let stats: Vec<_> =
            self.dispatcher.iter().flat_map(|d| d.stats.iter().map(|(k, v)| (k.clone(), v.clone()))).collect();
        self.clock.say(progress_line(&stats));
    }

    /// Every process the demo started, by name: moto, the sources, each function's current ones
    /// (`processor`, then `processor#2`… when it runs as several).
    pub fn processes(&self) -> Vec<(String, u32)> {
        let mut processes = Vec::new();
        if let Some(moto) = &self.moto {
            processes.push(("moto".to_string(), moto.pid()));
            // Its DynamoDB answers in a process of its own (`scripts/moto-server.py`, `DynamoDbProcess`).
            for child in child_pids(moto.pid()) {
                processes.push(("moto-dynamodb".to_string(), child));
            }
        }
        if let Some(sources) = &self.sources {
            processes.push(("sources".to_string(), sources.id()));
        }
        for function in &self.functions {
            for (index, pid) in function.pids().into_iter().enumerate() {
                let name = if index == 0 {
                    function.spec.binary.clone()
                } else {
                    format!("{}#{}", function.spec.binary, index + 1)
                };
                processes.push((name, pid));
            }
        }
        processes
    }

    /// The demo's API key (`events/local-secrets.json`).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Stops the event sources (the stack stays up): nothing is delivered or polled any more.
    pub fn stop_dispatcher(&mut self) {
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.stop();
        }
    }

    /// The running functions.
    pub fn functions(&self) -> &[FunctionProcess] {
        &self.functions
    }

    /// moto's endpoint.
    pub fn moto_endpoint(&self) -> Option<String> {
        self.moto.as_ref().map(Moto::endpoint)
    }

    /// Peak resident memory (`VmHWM`) of each function process so far.
    pub fn peak_memory(&self) -> String {
        let peaks: Vec<String> = self
            .functions
            .iter()
            .filter_map(|f| f.peak_memory_kib().map(|kib| format!("{} {:.1} MiB", f.spec.binary, kib as f64 / 1024.0)))
            .collect();
        format!("peak RSS (VmHWM) per function process: {}", peaks.join(", "))
    }
}

fn progress_line(stats: &[(String, std::sync::Arc<crate::dispatch::FunctionStats>)]) -> String {
    let mut parts: Vec<String> = stats
        .iter()
        .filter_map(|(name, stats)| {
            let (invocations, records, failures) = stats.snapshot();
            (invocations > 0).then(|| {
                let name = name.trim_end_matches("Function");
                if failures > 0 {
                    format!("{name} {records} records in {invocations} invocations ({failures} failed)")
                } else {
                    format!("{name} {records} records in {invocations} invocations")
                }
            })
        })
        .collect();
    parts.sort();
    format!("progress: {}", parts.join(", "))
}
