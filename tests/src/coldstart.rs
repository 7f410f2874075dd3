//! `make bench-coldstart`: each function's cold start, measured the way Lambda's `Init Duration`
//! is. Every bootstrap is started `starts` times against the demo's stack (moto, the local
//! sources): time from exec to its first `GET invocation/next` (init), its first invocation (the
//! first sample of `events/answers.json` for it), its peak memory, and the AWS calls it made in
//! each phase, counted by moto's server (`scripts/moto-server.py`, `/_tributary/requests`).

use crate::demo::{Demo, Ports, fresh_samples, read_json};
use crate::functions::{empty_tmp_dir, peak_memory_kib};
use crate::local_lambda::LocalFunction;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tributary_testing::workspace_root;

/// One function's figures over its starts.
#[derive(Debug, Default)]
struct Measured {
    init_ms: Vec<f64>,
    /// The first start's invocation: the only one that finds the event new.
    first_start_ms: Option<f64>,
    first_invocation_ms: Vec<f64>,
    peak_kib: Vec<u64>,
    init_calls: BTreeMap<String, u64>,
    invocation_calls: BTreeMap<String, u64>,
    failures: Vec<String>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Nearest rank: the smallest value at or above 90 % of them.
fn percentile_90(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (values.len() * 9).div_ceil(10).max(1);
    values.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// moto's request counts, reset with `reset`.
async fn moto_requests(http: &reqwest::Client, endpoint: &str, reset: bool) -> Result<BTreeMap<String, u64>, String> {
    let url = format!("{endpoint}/_tributary/requests");
    let request = if reset { http.delete(&url) } else { http.get(&url) };
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    response.json().await.map_err(|e| format!("{url}: {e}"))
}

/// Starts each function `starts` times and returns the report.
pub async fn run(starts: usize, only: Option<String>) -> Result<String, String> {
    let mut demo = Demo::start(Ports::free(), 1).await?;
    // Only the function under measurement talks to moto: no event source polls meanwhile.
    demo.stop_dispatcher();
    let outcome = measure(&demo, starts, only).await;
    demo.stop();
    outcome
}

async fn measure(demo: &Demo, starts: usize, only: Option<String>) -> Result<String, String> {
    if let Some(only) = &only
        && !demo.functions().iter().any(|f| f.spec.binary == *only)
    {
        return Err(format!("no function named {only}"));
    }
    let samples = fresh_samples()?;
    let answers = read_json(workspace_root().join("events/answers.json"))?;
    let endpoint = demo.moto_endpoint().ok_or("moto is not running")?;
    let http = reqwest::Client::new();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "cold starts: {starts} per function; init = exec → first GET invocation/next; first invocation = its first events/ sample"
    );
    let _ = writeln!(
        report,
        "{:<17} {:>10} {:>10} {:>11} {:>12} {:>9}  AWS calls at init | in the first invocation (per start)",
        "function", "init p50", "init p90", "1st inv #1", "1st inv p50*", "peak MiB"
    );
    for function in demo.functions() {
        let name = function.spec.binary.clone();
        if only.as_ref().is_some_and(|only| *only != name) {
            continue;
        }
        // The first sample for the function that does its work (the webhook's health check does not).
        let sample = answers
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["function"] == function.spec.logical_id.as_str())
            .filter_map(|a| a["sample"].as_str())
            .find(|sample| !sample.contains("health"))
            .ok_or(format!("events/answers.json has no sample for {}", function.spec.logical_id))?;
        let event = read_json(samples.join(sample))?;
        let mut measured = Measured::default();
        for _ in 0..starts {
            moto_requests(&http, &endpoint, true).await?;
            // Each start is a new execution environment: its /tmp is empty (the aggregator's lake
            // cache would otherwise make every start after the first a warm one).
            let tmp = empty_tmp_dir(&crate::demo::state_dir().join(format!("coldstart-{name}")))?;
            let mut config = function.config.clone();
            config.env.insert("TMPDIR".into(), tmp.to_string_lossy().into_owned());
            let local = LocalFunction::start(config, 0).await?;
            local.wait_until_ready(Duration::from_secs(60)).await?;
            let init = local.timings().init.ok_or(format!("{name}: no init time measured"))?;
            let at_init = moto_requests(&http, &endpoint, true).await?;
            let invoked = Instant::now();
            let limit = function.config.timeout + Duration::from_secs(30);
            let outcome = tokio::time::timeout(limit, local.invoke(&event)).await;
            let first_invocation = invoked.elapsed().as_secs_f64() * 1000.0;
            let in_invocation = moto_requests(&http, &endpoint, false).await?;
            let peak = peak_memory_kib(local.pid());
            local.stop();
            match outcome {
                Err(_) => return Err(format!("{name}: its first invocation took more than {limit:?}")),
                Ok(Err(error)) => measured.failures.push(error.to_string()),
                Ok(Ok(_)) => {}
            }
            measured.init_ms.push(init.as_secs_f64() * 1000.0);
            if measured.first_start_ms.is_none() {
                measured.first_start_ms = Some(first_invocation);
            } else {
                measured.first_invocation_ms.push(first_invocation);
            }
            measured.peak_kib.extend(peak);
            for (calls, counts) in
                [(&mut measured.init_calls, at_init), (&mut measured.invocation_calls, in_invocation)]
            {
                for (call, count) in counts {
                    *calls.entry(call).or_default() += count;
                }
            }
        }
        let per_start = |calls: &BTreeMap<String, u64>| {
            let listed: Vec<String> =
                calls.iter().map(|(call, count)| format!("{call} ×{:.1}", *count as f64 / starts as f64)).collect();
            if listed.is_empty() { "none".to_string() } else { listed.join(", ") }
        };
        let mut peaks: Vec<f64> = measured.peak_kib.iter().map(|kib| *kib as f64 / 1024.0).collect();
        let _ = writeln!(
            report,
            "{name:<17} {:>8.1}ms {:>8.1}ms {:>9.1}ms {:>10.1}ms {:>9.1}  {} | {}",
            median(&mut measured.init_ms),
            percentile_90(&mut measured.init_ms),
            measured.first_start_ms.unwrap_or(f64::NAN),
            median(&mut measured.first_invocation_ms),
            median(&mut peaks),
            per_start(&measured.init_calls),
            per_start(&measured.invocation_calls),
        );
        if let Some(failure) = measured.failures.first() {
            let _ = writeln!(
                report,
                "  ! {} of {starts} first invocations failed, e.g. {failure}",
                measured.failures.len()
            );
        }
    }
    let _ = writeln!(
        report,
        "#1: the first start's invocation, the only one that finds its event new; * the later starts get the same event again"
    );
    Ok(report)
}

/// The arguments: `--starts N` (default 20), `--function NAME` (default every function).
pub fn parse_args(args: &[String]) -> Result<(usize, Option<String>), String> {
    let (mut starts, mut only) = (20, None);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--starts" => starts = value.parse().ok().filter(|n| *n > 0).ok_or("--starts takes a positive number")?,
            "--function" => only = Some(value.clone()),
            other => return Err(format!("unknown argument {other}: use --starts N, --function NAME")),
        }
    }
    Ok((starts, only))
}
