//! The persistent local stack behind `make local`: moto provisioned from `template.yaml`, the demo
//! secrets, and the webhook function under `cargo lambda watch`.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tributary_shared::testing::{
    Moto, Probe, Stack, Template, demo_secrets, free_port, put_demo_secrets, sdk_config_for, workspace_root,
};

/// The Standard Webhooks sender the demo configures (its secret is in `events/local-secrets.json`).
pub const DEMO_SOURCES: &str =
    r#"[{"name":"acme","secret_param":"/tributary/acme-secret","subject_field":"data.email"}]"#;

/// Where the stack listens: `MOTO_PORT` and `LAMBDA_PORT` when set, else the given defaults.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub moto: u16,
    pub lambda: u16,
}

impl Ports {
    fn from_env(name: &str, default: u16) -> Result<u16, String> {
        match std::env::var(name) {
            Ok(value) => value.parse().map_err(|_| format!("{name}={value} is not a port number")),
            Err(_) => Ok(default),
        }
    }

    /// The well-known ports a person types (moto's 5000, cargo lambda's 9000).
    pub fn well_known() -> Result<Self, String> {
        Ok(Self { moto: Self::from_env("MOTO_PORT", 5000)?, lambda: Self::from_env("LAMBDA_PORT", 9000)? })
    }

    /// Free ports, for the unattended check, so that it never collides with a running stack.
    pub fn free() -> Result<Self, String> {
        let free = || free_port().map_err(|e| e.to_string());
        Ok(Self { moto: Self::from_env("MOTO_PORT", free()?)?, lambda: Self::from_env("LAMBDA_PORT", free()?)? })
    }
}

fn state_dir() -> PathBuf {
    workspace_root().join(".local")
}

pub struct LocalStack {
    moto: Moto,
    watch: Child,
    /// Base URL of the webhook function behind `cargo lambda watch`'s function-URL emulation.
    pub webhook_url: String,
    state: Value,
}

impl LocalStack {
    pub async fn start(ports: Ports) -> Result<Self, String> {
        let root = workspace_root();
        let cargo_lambda = root.join(".venv/bin/cargo-lambda");
        if !cargo_lambda.exists() {
            return Err("cargo-lambda is not installed: run `make setup` first".into());
        }
        let invoke_port = ports.lambda;
        let moto = Moto::start_on(ports.moto).await.map_err(|e| e.to_string())?;
        let sdk = sdk_config_for(&moto.endpoint()).await;
        let template = Template::workspace().map_err(|e| e.to_string())?;
        let stack = Stack::provision(&sdk, template, "tributary-local", &[("WebhookSources", DEMO_SOURCES)])
            .await
            .map_err(|e| e.to_string())?;
        put_demo_secrets(&sdk).await.map_err(|e| e.to_string())?;

        let mut env = stack.function_env("WebhookFunction").map_err(|e| e.to_string())?;
        let topic = env.get("EVENTS_TOPIC_ARN").cloned().unwrap_or_default();
        let probe = Probe::subscribe(&sdk, &topic, "local-probe-events").await.map_err(|e| e.to_string())?;
        env.extend(local_aws_env(&moto.endpoint()));
        let dir = state_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let env_file = dir.join("webhook.env");
        write_env_file(&env_file, &env)?;

        let webhook_url = format!("http://127.0.0.1:{invoke_port}/lambda-url/webhook");
        let state = json!({
            "moto": moto.endpoint(),
            "webhook_url": webhook_url,
            "archive_bucket": env.get("ARCHIVE_BUCKET"),
            "dedup_table": env.get("DEDUP_TABLE"),
            "events_topic_arn": topic,
            "probe_queue_url": probe.queue_url,
        });
        let state_path = dir.join("stack.json");
        std::fs::write(&state_path, serde_json::to_string_pretty(&state).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", state_path.display()))?;

        let log_path = dir.join("cargo-lambda-watch.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let watch = Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--package", "webhook", "--bin", "webhook", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &invoke_port.to_string(), "--ignore-changes", "--env-file"])
            .arg(&env_file)
            // LOCAL_RELEASE=1 runs the optimised build, e.g. to measure its memory.
            .args(if std::env::var_os("LOCAL_RELEASE").is_some() { &["--release"][..] } else { &[][..] })
            .current_dir(&root)
            .env("PATH", path_with_venv())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group, so that stopping it also stops the function it started.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting cargo lambda watch: {e}"))?;
        let mut stack = Self { moto, watch, webhook_url, state };
        if let Err(error) = stack.wait_until_ready(&log_path).await {
            stack.stop();
            return Err(error);
        }
        Ok(stack)
    }

    /// Waits until the function answers `GET /health` (the first call compiles and starts it).
    async fn wait_until_ready(&mut self, log_path: &std::path::Path) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(600);
        let url = format!("{}/health", self.webhook_url);
        loop {
            let response = client.get(&url).timeout(Duration::from_secs(120)).send().await;
            if response.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            let exited = matches!(self.watch.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                let why = if exited { "cargo lambda watch exited" } else { "no answer within 10 minutes" };
                return Err(format!("the webhook function did not answer {url}: {why}\n{log}"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub fn banner(&self) -> String {
        let moto = self.moto.endpoint();
        let url = &self.webhook_url;
        format!(
            "Tributary local stack is up (Ctrl-C stops it).\n\
             \n  AWS (moto)        {moto}\n  webhook function  {url}\n\
             \nSend a delivery:\n  curl -i {url}/webhook/personnage -H 'content-type: application/json' \\\n    \
             -H 'authorization: Bearer local-demo-personnage-token' -d '{{\"nom\":\"Naruto\",\"score\":85}}'\n\
             \nThen see the archived object, the dedup marker and the published message:\n  make local-inspect\n\
             \nAWS clients reach moto with:\n  export AWS_ENDPOINT_URL={moto} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\n"
        )
    }

    pub async fn watch_exited(&self) -> String {
        let pid = self.watch.id();
        loop {
            // `kill -0`: is the process still there?
            if process_running(pid) {
                tokio::time::sleep(Duration::from_millis(500)).await;
            } else {
                return format!("pid {pid} gone");
            }
        }
    }

    /// Sends a personnage delivery over HTTP and checks every effect in moto.
    pub async fn smoke_test(&self) -> Result<String, String> {
        let client = reqwest::Client::new();
        let token = demo_secrets()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|(name, _)| name == "/tributary/personnage-token")
            .map(|(_, value)| value)
            .ok_or("no personnage token in events/local-secrets.json")?;
        let response = client
            .post(format!("{}/webhook/personnage", self.webhook_url))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .header("idempotency-key", "local-check-0001")
            .body(r#"{"nom":"Naruto","score":85}"#)
            .send()
            .await
            .map_err(|e| format!("POST personnage: {e}"))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| format!("answer is not JSON: {e}"))?;
        if status != 202 || body["event_id"] != "local-check-0001" {
            return Err(format!("expected 202 with the event id, got {status} {body}"));
        }
        let unauthorised = client
            .post(format!("{}/webhook/personnage", self.webhook_url))
            .header("content-type", "application/json")
            .body(r#"{"nom":"Naruto","score":85}"#)
            .send()
            .await
            .map_err(|e| format!("POST personnage: {e}"))?
            .status()
            .as_u16();
        if unauthorised != 401 {
            return Err(format!("a delivery without a token got {unauthorised}, expected 401"));
        }
        let contents = Contents::read(&self.state).await?;
        let archived = contents.archived.iter().any(|key| key.ends_with("/local-check-0001.json"));
        let marked = contents
            .dedup
            .iter()
            .any(|item| item["pk"] == "personnage#local-check-0001" && item["status"] == "COMPLETED");
        let published = contents.events.iter().filter(|event| event["id"] == "local-check-0001").count();
        if !archived || !marked || published != 1 {
            return Err(format!(
                "missing effects: archived={archived} marked={marked} published={published}\n{contents}"
            ));
        }
        let memory = match self.function_peak_memory_kib() {
            Some(kib) => format!("webhook function peak RSS (VmHWM) after these requests: {kib} KiB\n"),
            None => String::new(),
        };
        Ok(format!(
            "local stack check passed: 202 then 401 over HTTP; archived, marked COMPLETED, published once\n{memory}{contents}"
        ))
    }

    /// Peak resident memory of the function process (`VmHWM`): the `webhook` process descending
    /// from `cargo lambda watch` (which starts it through `cargo run`, in a process group of its own).
    pub fn function_peak_memory_kib(&self) -> Option<u64> {
        // (command, parent pid) of a process, from /proc/<pid>/stat.
        fn stat(pid: u32) -> Option<(String, u32)> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(") ")?;
            let command = head.split_once(" (")?.1.to_string();
            let parent = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((command, parent))
        }
        let watch = self.watch.id();
        let descends_from_watch = |mut pid: u32| {
            while pid > 1 {
                if pid == watch {
                    return true;
                }
                pid = match stat(pid) {
                    Some((_, parent)) => parent,
                    None => return false,
                };
            }
            false
        };
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let (command, _) = stat(pid)?;
            if command != "webhook" || !descends_from_watch(pid) {
                return None;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status.lines().find_map(|line| line.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        })
    }

    pub fn stop(self) {
        // The whole process group: cargo lambda watch and the function it runs.
        let group = self.watch.id();
        signal_group(group, libc::SIGTERM);
        let mut watch = self.watch;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = watch.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group(group, libc::SIGKILL);
        let _ = watch.wait();
        drop(self.moto);
        let _ = std::fs::remove_file(state_dir().join("stack.json"));
    }
}

/// Signals the process group `group` (a child started with `process_group(0)`, so the group id is
/// its pid). Never called with 0 or 1, which would reach our own group or every process.
fn signal_group(group: u32, signal: libc::c_int) {
    let Ok(group) = libc::pid_t::try_from(group) else { return };
    if group > 1 {
        // SAFETY: kill(2) has no memory effects; a negative pid names a process group.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

fn process_running(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.contains(") Z "))
}

fn path_with_venv() -> String {
    let venv_bin = workspace_root().join(".venv/bin");
    format!("{}:{}", venv_bin.display(), std::env::var("PATH").unwrap_or_default())
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

fn write_env_file(path: &std::path::Path, env: &HashMap<String, String>) -> Result<(), String> {
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

/// What the local stack holds right now.
pub struct Contents {
    pub archived: Vec<String>,
    pub dedup: Vec<Value>,
    pub events: Vec<Value>,
}

impl Contents {
    async fn read(state: &Value) -> Result<Self, String> {
        let text =
            |key: &str| state[key].as_str().map(str::to_string).ok_or(format!("{key} missing in .local/stack.json"));
        let sdk = sdk_config_for(&text("moto")?).await;
        let s3 = tributary_shared::aws::s3_client(&sdk);
        let listing = s3
            .list_objects_v2()
            .bucket(text("archive_bucket")?)
            .send()
            .await
            .map_err(|e| format!("list archive: {e:?}"))?;
        let archived = listing.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
        let dynamodb = tributary_shared::aws::dynamodb_client(&sdk);
        let scan =
            dynamodb.scan().table_name(text("dedup_table")?).send().await.map_err(|e| format!("scan dedup: {e:?}"))?;
        let dedup = scan
            .items()
            .iter()
            .map(|item| {
                let fields: serde_json::Map<String, Value> = item
                    .iter()
                    .map(|(k, v)| {
                        let value = v.as_s().or_else(|_| v.as_n()).cloned().unwrap_or_else(|_| format!("{v:?}"));
                        (k.clone(), Value::String(value))
                    })
                    .collect();
                Value::Object(fields)
            })
            .collect();
        let probe = Probe::attach(&sdk, &text("probe_queue_url")?);
        let events = probe
            .drain()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|message| serde_json::from_str(&message.message).unwrap_or(Value::String(message.message)))
            .collect();
        Ok(Self { archived, dedup, events })
    }
}

impl std::fmt::Display for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "archived deliveries ({}):", self.archived.len())?;
        for key in &self.archived {
            writeln!(f, "  s3://…/{key}")?;
        }
        writeln!(f, "dedup markers ({}):", self.dedup.len())?;
        for item in &self.dedup {
            writeln!(
                f,
                "  {} {} expires_at={}",
                item["pk"].as_str().unwrap_or("?"),
                item["status"].as_str().unwrap_or("?"),
                item["expires_at"].as_str().unwrap_or("?")
            )?;
        }
        writeln!(f, "events published since the last look ({}):", self.events.len())?;
        for event in &self.events {
            writeln!(f, "  {event}")?;
        }
        Ok(())
    }
}

/// `local-stack inspect`: prints what the running stack holds (the events are consumed from the
/// stack's probe queue, so each look shows what was published since the previous one).
pub async fn inspect() -> Result<(), String> {
    let path = state_dir().join("stack.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| "no local stack is running: start it with `make local`".to_string())?;
    let state: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let contents = Contents::read(&state).await.map_err(|e| format!("{e} (is `make local` still running?)"))?;
    print!("{contents}");
    Ok(())
}
