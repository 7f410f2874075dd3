//! Every function of `template.yaml` as its real Lambda binary behind a local Runtime API
//! ([`LocalFunction`]): one process per function (each has its own environment, as in AWS), on its
//! own port.

use crate::local_lambda::{FunctionConfig, LocalFunction};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
                Ok(Self { logical_id: logical_id.to_string(), package, binary, timeout_seconds, memory_mb })
            })
            .collect()
    }
}

/// One function of the template running locally: its bootstrap behind a local Runtime API.
pub struct FunctionProcess {
    pub spec: FunctionSpec,
    /// The local Lambda's settings for it (binary, environment, timeout, memory, log).
    pub config: FunctionConfig,
    pub log_path: PathBuf,
    pub client: FunctionClient,
    local: LocalFunction,
}

/// How to reach a running function: its invoke endpoint and its function URL.
#[derive(Debug, Clone)]
pub struct FunctionClient {
    pub binary: String,
    pub port: u16,
    http: reqwest::Client,
}

impl FunctionClient {
    /// Base URL of the function's URL (a function URL's HTTP request becomes its payload 2.0 event).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/lambda-url/{}", self.port, self.binary)
    }

    /// Invokes the function with `event` the way Lambda's Invoke API does (RequestResponse).
    pub async fn invoke(&self, event: &Value) -> Result<Invocation, String> {
        let url = format!("http://127.0.0.1:{}/2015-03-31/functions/{}/invocations", self.port, self.binary);
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
    /// Starts `spec`'s binary from `binary_dir` with `env`, its APIs on `port` (0: a free one);
    /// `state_dir` keeps its log.
    pub async fn start(
        spec: &FunctionSpec,
        port: u16,
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
        let local = LocalFunction::start(config.clone(), port).await?;
        let client = FunctionClient { binary: spec.binary.clone(), port: local.port, http: reqwest::Client::new() };
        Ok(Self { spec: spec.clone(), config, log_path, client, local })
    }

    /// Waits until the bootstrap has finished its init and asks for an event.
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), String> {
        self.local.wait_until_ready(timeout).await
    }

    /// Pid of the function's current process.
    pub fn pid(&self) -> u32 {
        self.local.pid()
    }

    /// Peak resident memory (`VmHWM`, KiB) of the function's current process.
    pub fn peak_memory_kib(&self) -> Option<u64> {
        peak_memory_kib(self.local.pid())
    }

    /// Stops the function's process and its local APIs.
    pub fn stop(self) {
        self.local.stop();
    }
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

/// `VmHWM` (KiB, the peak) of process `pid`.
pub fn peak_memory_kib(pid: u32) -> Option<u64> {
    memory_kib(pid, "VmHWM:")
}

/// `VmRSS` (KiB, now) of process `pid`.
pub fn resident_memory_kib(pid: u32) -> Option<u64> {
    memory_kib(pid, "VmRSS:")
}

fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
}
