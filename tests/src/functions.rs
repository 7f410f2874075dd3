//! Every function of `template.yaml` as its real Lambda binary behind a local Runtime API
//! ([`LocalFunction`]): one process per function by default (each has its own environment, as in
//! AWS), on its own port; or several, as Lambda runs an execution environment per concurrent
//! invocation ([`FunctionSpec::instances`]), each process behind its own Runtime API and port, and
//! every invocation going to the least busy one.

use crate::local_lambda::{FunctionConfig, LocalFunction};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tributary_testing::{Stack, Template};

/// A function of the template: its logical id, the binary `BuildProperties.Binary` names, and the
/// settings Lambda hands its runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub binary: String,
    /// The workspace package holding the binary (a package may ship more than one function).
    pub package: String,
    /// `Timeout`, the function's own or `Globals.Function`'s (the deadline of each invocation).
    pub timeout_seconds: u64,
    /// `MemorySize`, the function's own or `Globals.Function`'s.
    pub memory_mb: u32,
    /// Whether Lambda runs it once per event or request (an `SNS` or `HttpApi` event source), so
    /// that several invocations run at once under load.
    pub invoked_per_event: bool,
    /// `ReservedConcurrentExecutions`, when the template caps it.
    pub reserved_concurrency: Option<u64>,
}

impl FunctionSpec {
    /// Every `AWS::Serverless::Function` of the template (in the order of their logical ids). The
    /// package is the crate `CodeUri` names (`functions/<package>`), which builds the binary (the
    /// template test checks that).
    pub fn all(template: &Template) -> Result<Vec<Self>, String> {
        let globals = &template.document["Globals"]["Function"];
        template
            .resources_of_type("AWS::Serverless::Function")
            .map(|(logical_id, resource)| {
                let properties = &resource["Properties"];
                let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .ok_or(format!("{logical_id}: no Metadata.BuildProperties.Binary"))?
                    .to_string();
                let package = properties["CodeUri"]
                    .as_str()
                    .and_then(|uri| uri.strip_prefix("functions/"))
                    .ok_or(format!("{logical_id}: CodeUri is not functions/<package>"))?
                    .to_string();
                let setting = |key: &str| {
                    properties[key]
                        .as_u64()
                        .or_else(|| globals[key].as_u64())
                        .ok_or(format!("{logical_id}: no {key}, neither its own nor in Globals.Function"))
                };
                let timeout_seconds = setting("Timeout")?;
                let memory_mb =
                    u32::try_from(setting("MemorySize")?).map_err(|e| format!("{logical_id}: MemorySize: {e}"))?;
                let invoked_per_event = properties["Events"].as_object().is_some_and(|events| {
                    events.values().any(|e| matches!(e["Type"].as_str(), Some("SNS" | "HttpApi")))
                });
                let reserved_concurrency = properties["ReservedConcurrentExecutions"].as_u64();
                Ok(Self {
                    logical_id: logical_id.to_string(),
                    package,
                    binary,
                    timeout_seconds,
                    memory_mb,
                    invoked_per_event,
                    reserved_concurrency,
                })
            })
            .collect()
    }

    /// How many processes to run for it locally when `wanted` are asked for each function invoked
    /// per event: one for the others (scheduled or batch functions), never more than the
    /// template's `ReservedConcurrentExecutions`.
    pub fn instances(&self, wanted: usize) -> usize {
        let wanted = if self.invoked_per_event { wanted.max(1) } else { 1 };
        match self.reserved_concurrency {
            Some(cap) => wanted.min(usize::try_from(cap).unwrap_or(usize::MAX)).max(1),
            None => wanted,
        }
    }
}

/// One function of the template running locally: its bootstrap behind a local Runtime API, once
/// or more.
pub struct FunctionProcess {
    pub spec: FunctionSpec,
    /// The local Lambda's settings for it (binary, environment, timeout, memory, log).
    pub config: FunctionConfig,
    pub log_path: PathBuf,
    pub client: FunctionClient,
    instances: Vec<LocalFunction>,
}

/// How to reach a running function: its invoke endpoint and its function URL, on each of its
/// processes.
#[derive(Debug, Clone)]
pub struct FunctionClient {
    pub binary: String,
    /// The port of each process's APIs; the first is the function's own (the demo's fixed port).
    pub ports: Arc<[u16]>,
    /// Invocations in flight on each process, to send the next one to the least busy (picked and
    /// counted under the lock, so that two callers at once never both take the same idle one).
    busy: Arc<Mutex<Vec<usize>>>,
    /// Function URL requests are spread in turn (their end is not seen here).
    next_url: Arc<AtomicUsize>,
    http: reqwest::Client,
}

/// Counts an invocation on a process until it ends, however it ends.
struct Busy<'a> {
    busy: &'a Mutex<Vec<usize>>,
    index: usize,
}

impl<'a> Busy<'a> {
    /// The least busy process, counted busy from now on.
    fn least_busy(busy: &'a Mutex<Vec<usize>>) -> Self {
        let mut counts = busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = (0..counts.len()).min_by_key(|&i| counts[i]).unwrap_or(0);
        if let Some(count) = counts.get_mut(index) {
            *count += 1;
        }
        Self { busy, index }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut counts = self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(self.index) {
            *count = count.saturating_sub(1);
        }
    }
}

impl FunctionClient {
    fn new(binary: &str, ports: Vec<u16>) -> Self {
        let busy = Arc::new(Mutex::new(vec![0; ports.len()]));
        Self {
            binary: binary.to_string(),
            ports: ports.into(),
            busy,
            next_url: Arc::default(),
            http: reqwest::Client::new(),
        }
    }

    /// The function's own port (its first process).
    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    /// How many processes serve the function.
    pub fn instances(&self) -> usize {
        self.ports.len()
    }

    /// Base URL of the function's URL (a function URL's HTTP request becomes its payload 2.0
    /// event), on each of its processes in turn: take it for each request.
    pub fn url(&self) -> String {
        let index = self.next_url.fetch_add(1, Ordering::Relaxed) % self.ports.len();
        format!("http://127.0.0.1:{}/lambda-url/{}", self.ports[index], self.binary)
    }

    /// Invokes the function with `event` the way Lambda's Invoke API does (RequestResponse), on
    /// its least busy process.
    pub async fn invoke(&self, event: &Value) -> Result<Invocation, String> {
        let busy = Busy::least_busy(&self.busy);
        let port = self.ports.get(busy.index).copied().unwrap_or_else(|| self.port());
        let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/{}/invocations", self.binary);
        let response = self
            .http
            .post(&url)
            .json(event)
            .timeout(Duration::from_secs(900))
            .send()
            .await
            .map_err(|e| format!("invoking {}: {e}", self.binary))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| format!("reading {}'s answer: {e}", self.binary))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Invocation { status, body })
    }
}

/// What an invocation answered.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub status: u16,
    pub body: Value,
}

impl Invocation {
    /// The Lambda runtime's error shape (`errorType`, `errorMessage`), or a non-2xx answer.
    pub fn failed(&self) -> bool {
        !(200..300).contains(&self.status) || self.body.get("errorType").is_some()
    }
}

impl FunctionProcess {
    /// Starts `instances` processes of `spec`'s binary from `binary_dir` with `env`, the first one's
    /// APIs on `port` (0: a free one), the others' on free ones; `state_dir` keeps their log.
    pub async fn start(
        spec: &FunctionSpec,
        port: u16,
        instances: usize,
        env: HashMap<String, String>,
        state_dir: &Path,
        binary_dir: &Path,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
        let log_path = state_dir.join(format!("{}.log", spec.binary));
        // A fresh log per run; the processes of this run append to it.
        std::fs::write(&log_path, b"").map_err(|e| format!("{}: {e}", log_path.display()))?;
        let config = FunctionConfig {
            name: spec.binary.clone(),
            binary: binary_dir.join(&spec.binary),
            env,
            timeout: Duration::from_secs(spec.timeout_seconds),
            memory_mb: spec.memory_mb,
            log_path: log_path.clone(),
        };
        let mut started = Vec::new();
        for instance in 1..=instances.max(1) {
            // Each execution environment has its own /tmp in Lambda (the aggregator caches lake
            // files there and deletes what it does not list): here its own TMPDIR.
            let tmp = empty_tmp_dir(&state_dir.join(format!("{}-{instance}", spec.binary)))?;
            let mut instance_config = config.clone();
            instance_config.env.insert("TMPDIR".into(), tmp.to_string_lossy().into_owned());
            // Dropping what was started stops it, should a later one fail.
            started.push(LocalFunction::start(instance_config, if instance == 1 { port } else { 0 }).await?);
        }
        let client = FunctionClient::new(&spec.binary, started.iter().map(|local| local.port).collect());
        Ok(Self { spec: spec.clone(), config, log_path, client, instances: started })
    }

    /// Waits until every bootstrap has finished its init and asks for an event.
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), String> {
        for local in &self.instances {
            local.wait_until_ready(timeout).await?;
        }
        Ok(())
    }

    /// Pid of each of the function's current processes.
    pub fn pids(&self) -> Vec<u32> {
        self.instances.iter().map(LocalFunction::pid).collect()
    }

    /// Peak resident memory (`VmHWM`, KiB) of the function's current processes, the highest.
    pub fn peak_memory_kib(&self) -> Option<u64> {
        self.instances.iter().filter_map(|local| peak_memory_kib(local.pid())).max()
    }

    /// Stops the function's processes and their local APIs.
    pub fn stop(self) {
        for local in self.instances {
            local.stop();
        }
    }
}

/// `<dir>/tmp`, emptied: a new execution environment's /tmp (what a local process gets as TMPDIR).
pub fn empty_tmp_dir(dir: &Path) -> Result<PathBuf, String> {
    let tmp = dir.join("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    Ok(tmp)
}

/// The environment of `logical_id` as the template declares it, resolved against the stack, plus
/// what reaches moto instead of AWS.
pub fn function_env(stack: &Stack, logical_id: &str, moto_endpoint: &str) -> Result<HashMap<String, String>, String> {
    let mut env = stack.function_env(logical_id).map_err(|e| e.to_string())?;
    env.extend(local_aws_env(moto_endpoint));
    Ok(env)
}

/// What the functions need to reach moto instead of AWS.
pub fn local_aws_env(endpoint: &str) -> HashMap<String, String> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Signals the process group `group` (a child started with `process_group(0)`, so the group id is
/// its pid). Never called with 0 or 1, which would reach our own group or every process.
#[allow(unsafe_code, reason = "kill(2) on a process group has no safe std equivalent")]
pub fn signal_group(group: u32, signal: libc::c_int) {
    let Ok(group) = libc::pid_t::try_from(group) else { return };
    if group > 1 {
        // SAFETY: kill(2) has no memory effects; a negative pid names a process group.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// Whether child `pid` has exited, without reaping it (`waitid` with `WNOWAIT`): until it is reaped
/// its pid, and the process group named after it, cannot be given to another process, so a signal
/// sent meanwhile reaches no stranger. `block` waits for the exit; otherwise the answer is at once.
#[allow(unsafe_code, reason = "waitid(2) with WNOWAIT has no safe std equivalent")]
pub fn exited_unreaped(pid: u32, block: bool) -> std::io::Result<bool> {
    let id = libc::id_t::from(pid);
    let options = libc::WEXITED | libc::WNOWAIT | if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: `info` is a plain C struct that waitid(2) fills in (all zeroes is a valid value
        // of it); the call has no other memory effects.
        let (result, info) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let result = libc::waitid(libc::P_PID, id, &mut info, options);
            (result, info)
        };
        if result == 0 {
            // With WNOHANG, a child that has not exited leaves `si_pid` at 0.
            // SAFETY: reading the pid of a siginfo_t that waitid(2) filled in for SIGCHLD.
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// `VmHWM` (KiB, the peak) of process `pid`.
pub fn peak_memory_kib(pid: u32) -> Option<u64> {
    memory_kib(pid, "VmHWM:")
}

/// CPU time (user and system, seconds) process `pid` has used so far.
#[allow(unsafe_code, reason = "sysconf(3) has no safe std equivalent")]
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields 14 and 15 (utime, stime), counted after the command name's closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a system constant and has no memory effects.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// The processes `pid` started that still run (`/proc/<pid>/task/<pid>/children`; none when the
/// kernel does not list them).
pub fn child_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|children| children.split_whitespace().filter_map(|child| child.parse().ok()).collect())
        .unwrap_or_default()
}

/// `VmRSS` (KiB, now) of process `pid`.
pub fn resident_memory_kib(pid: u32) -> Option<u64> {
    memory_kib(pid, "VmRSS:")
}

fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_functions_invoked_per_event_run_as_many_processes_as_asked_the_others_once() {
        let template = Template::workspace().unwrap();
        let specs = FunctionSpec::all(&template).unwrap();
        let instances = |logical_id: &str| specs.iter().find(|s| s.logical_id == logical_id).unwrap().instances(3);
        for per_event in ["WebhookFunction", "ProcessorFunction", "IntegratorFunction", "ApiFunction"] {
            assert_eq!(instances(per_event), 3, "{per_event}");
        }
        // Scheduled, batch, or capped by ReservedConcurrentExecutions: 1.
        for once in ["PullerFunction", "LakeWriterFunction", "LakeMaintenanceFunction", "AggregatorJobsFunction"] {
            assert_eq!(instances(once), 1, "{once}");
        }
        assert!(specs.iter().all(|s| s.instances(1) == 1 && s.instances(0) == 1));
    }
}
