//! Every function of `template.yaml` as its real Lambda binary under `cargo lambda watch`: one
//! watch process per function (each has its own environment, as in AWS), on its own port.

use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tributary_shared::testing::{Stack, Template, workspace_root};

/// A function of the template: its logical id and the binary `BuildProperties.Binary` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub binary: String,
    /// The workspace package holding the binary (a package may ship more than one function).
    pub package: String,
}

impl FunctionSpec {
    /// Every `AWS::Serverless::Function` of the template (in the order of their logical ids). The
    /// package is the crate `CodeUri` names (`functions/<package>`), which builds the binary (the
    /// template test checks that).
    pub fn all(template: &Template) -> Result<Vec<Self>, String> {
        template
            .resources_of_type("AWS::Serverless::Function")
            .map(|(logical_id, resource)| {
                let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .ok_or(format!("{logical_id}: no Metadata.BuildProperties.Binary"))?
                    .to_string();
                let package = resource["Properties"]["CodeUri"]
                    .as_str()
                    .and_then(|uri| uri.strip_prefix("functions/"))
                    .ok_or(format!("{logical_id}: CodeUri is not functions/<package>"))?
                    .to_string();
                Ok(Self { logical_id: logical_id.to_string(), package, binary })
            })
            .collect()
    }
}

/// `cargo build` of every function binary, one package at a time as `cargo lambda watch` builds it
/// (each package resolves its own features, so a single build of all of them would produce other
/// artifacts), so that every function starts at once on its first invocation.
pub fn build_all(specs: &[FunctionSpec], release: bool) -> Result<(), String> {
    for spec in specs {
        let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        command.args(["build", "--locked", "--quiet", "--package", &spec.package, "--bin", &spec.binary]);
        if release {
            command.arg("--release");
        }
        let status = command.current_dir(workspace_root()).status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build of {} failed ({status})", spec.binary));
        }
    }
    Ok(())
}

/// One function running under `cargo lambda watch`.
pub struct FunctionProcess {
    pub spec: FunctionSpec,
    pub log_path: PathBuf,
    pub client: FunctionClient,
    watch: Child,
}

/// How to reach a running function: its invoke endpoint and its function URL.
#[derive(Debug, Clone)]
pub struct FunctionClient {
    pub binary: String,
    pub port: u16,
    http: reqwest::Client,
}

impl FunctionClient {
    /// Base URL of the function behind `cargo lambda watch`'s function-URL emulation.
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
    /// Starts `cargo lambda watch` for `spec` with `env` on `port`; `state_dir` keeps its env file
    /// and log. `release` runs the optimised build.
    pub fn start(
        spec: &FunctionSpec,
        port: u16,
        env: &HashMap<String, String>,
        state_dir: &Path,
        release: bool,
    ) -> Result<Self, String> {
        let root = workspace_root();
        let cargo_lambda = root.join(".venv/bin/cargo-lambda");
        if !cargo_lambda.exists() {
            return Err("cargo-lambda is not installed: run `make setup` first".into());
        }
        std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
        let env_file = state_dir.join(format!("{}.env", spec.binary));
        write_env_file(&env_file, env)?;
        let log_path = state_dir.join(format!("{}.log", spec.binary));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let watch = Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--package", &spec.package, "--bin", &spec.binary])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
            .args(["--ignore-changes", "--quiet", "--env-file"])
            .arg(&env_file)
            .args(if release { &["--release"][..] } else { &[][..] })
            .current_dir(&root)
            .env("PATH", path_with_venv())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group, so that stopping it also stops the function it started.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting cargo lambda watch for {}: {e}", spec.binary))?;
        let client = FunctionClient { binary: spec.binary.clone(), port, http: reqwest::Client::new() };
        Ok(Self { spec: spec.clone(), log_path, client, watch })
    }

    /// Waits until `cargo lambda watch` accepts connections (a TCP connection only: any HTTP
    /// request to it would invoke the function). The function itself starts on its first invocation.
    pub async fn wait_until_listening(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.client.port));
        loop {
            if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if matches!(self.watch.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
                return Err(format!("cargo lambda watch for {} did not come up\n{log}", self.spec.binary));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Peak resident memory (`VmHWM`, KiB) of the function process started by this watch.
    pub fn peak_memory_kib(&self) -> Option<u64> {
        peak_memory_of(&self.spec.binary, self.watch.id())
    }

    /// Stops the watch and the function it runs (the whole process group).
    pub fn stop(mut self) {
        let group = self.watch.id();
        signal_group(group, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watch.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group(group, libc::SIGKILL);
        let _ = self.watch.wait();
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

fn write_env_file(path: &Path, env: &HashMap<String, String>) -> Result<(), String> {
    let mut names: Vec<&String> = env.keys().collect();
    names.sort();
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for name in names {
        // dotenv syntax: single quotes keep JSON values (quotes, braces) literal.
        let value = &env[name];
        if value.contains('\'') || value.contains('\n') {
            return Err(format!("{name}: a local environment value may not contain a single quote or a newline"));
        }
        writeln!(file, "{name}='{value}'").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

pub fn path_with_venv() -> String {
    let venv_bin = workspace_root().join(".venv/bin");
    format!("{}:{}", venv_bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// Signals the process group `group` (a child started with `process_group(0)`, so the group id is
/// its pid). Never called with 0 or 1, which would reach our own group or every process.
pub fn signal_group(group: u32, signal: libc::c_int) {
    let Ok(group) = libc::pid_t::try_from(group) else { return };
    if group > 1 {
        // SAFETY: kill(2) has no memory effects; a negative pid names a process group.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// `VmHWM` of the process named `command` that descends from `ancestor`.
fn peak_memory_of(command: &str, ancestor: u32) -> Option<u64> {
    // (command, parent pid) of a process, from /proc/<pid>/stat.
    fn stat(pid: u32) -> Option<(String, u32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, rest) = stat.rsplit_once(") ")?;
        let command = head.split_once(" (")?.1.to_string();
        let parent = rest.split_whitespace().nth(1)?.parse().ok()?;
        Some((command, parent))
    }
    let descends = |mut pid: u32| {
        while pid > 1 {
            if pid == ancestor {
                return true;
            }
            pid = match stat(pid) {
                Some((_, parent)) => parent,
                None => return false,
            };
        }
        false
    };
    // /proc/<pid>/stat truncates the command to 15 characters.
    let short: String = command.chars().take(15).collect();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let (name, _) = stat(pid)?;
        if name != short || !descends(pid) {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|line| line.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
    })
}
