//! One function run locally the way Lambda runs it: its real `bootstrap` process polling a Runtime
//! API, with the Invoke API and a function URL in front of that API, on one port per process (a
//! function run as several processes is several of these, `crate::functions::FunctionProcess`).
//!
//! The bootstrap is the binary cargo built for the workspace (the one `cargo test --workspace`
//! tested); nothing is compiled here. Lambda's three Runtime API routes are served as AWS documents
//! them (`invocation/next`, `…/response`, `…/error`, plus `init/error`), so the process cannot tell
//! this from the service: it gets the request id, the deadline (the template's `Timeout`) and the
//! function ARN as headers, and its environment is only the template's, Lambda's own variables and
//! what reaches moto instead of AWS (endpoint, region, dummy credentials, `RUST_LOG`).
//!
//! As in Lambda, one invocation runs at a time per process and a process that exits is started
//! again; an invocation it was running fails with `Runtime.ExitError`, and one that was waiting for
//! a process that failed its init fails with `Runtime.InitError`, so that a misconfigured function
//! answers an error instead of hanging; an init longer than [`INIT_TIMEOUT`] is killed. The
//! invocation deadline is not enforced: a debug build on moto may overrun a 10 s `Timeout` that the
//! release build in AWS keeps.
//!
//! The binaries are taken as they are ([`binary_dir`]): `make demo` and `make test` build the
//! workspace first; a `cargo run --bin demo` after editing a function would run its old binary.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::functions::{exited_unreaped, signal_group};

/// The Runtime API's version prefix, as the runtime client calls it.
const RUNTIME_PREFIX: &str = "/2018-06-01/runtime/";
/// Lambda's account in the ARNs handed to the function.
const LOCAL_ACCOUNT: &str = "123456789012";
/// Pause before starting a process again after one that failed its init, so that a function that
/// cannot start does not spin.
const INIT_FAILURE_BACKOFF: Duration = Duration::from_secs(1);
/// Lambda gives an init 10 s; a debug build on a busy 2-core machine gets more.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run and how: the binary, its environment, and the template's settings for it.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The function's name (the binary's name): routes, ARN, log group.
    pub name: String,
    pub binary: PathBuf,
    /// The template's environment, resolved, plus what reaches moto instead of AWS.
    pub env: HashMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// stdout and stderr of every process started, appended.
    pub log_path: PathBuf,
}

/// How an invocation ended, as the Invoke API reports it.
#[derive(Debug)]
enum Outcome {
    Response(Bytes),
    /// `{"errorType", "errorMessage"}`: the function's own error, or the runtime's.
    Error(Bytes),
}

struct Queued {
    request_id: String,
    event: Bytes,
    reply: oneshot::Sender<Outcome>,
}

/// Timings of the current process, for the cold-start benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartTimings {
    /// From exec to its first `GET invocation/next`.
    pub init: Option<Duration>,
    /// Processes started (1 unless one exited).
    pub starts: u64,
}

/// The process side, changed only under its lock, so that a stop, an exit and a start never
/// interleave and a signal never goes to a pid that was already reaped.
#[derive(Debug, Default)]
struct ProcessState {
    /// The running process, 0 between an exit and the next start.
    pid: u32,
    /// Which process is current: connections accepted while generation N runs belong to process
    /// N, and a waiter of another generation never takes an event (it would go to a dead socket).
    generation: u64,
    /// Whether the current process has asked for its first event (its init is done).
    polled: bool,
    spawned_at: Option<Instant>,
    timings: StartTimings,
    /// Why no process can be started any more; invocations then fail at once.
    gave_up: Option<String>,
}

/// State shared by the HTTP side (async) and the supervisor thread (blocking).
struct Shared {
    config: FunctionConfig,
    process: Mutex<ProcessState>,
    queue: Mutex<VecDeque<Queued>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Wakes `invocation/next` waiters: a new event, or another process (stale waiters then leave).
    wake: Notify,
    stopping: AtomicBool,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(json!({"errorType": error_type, "errorMessage": message}).to_string())
}

impl Shared {
    fn fail(reply: oneshot::Sender<Outcome>, error_type: &str, message: &str) {
        // The invoker may have gone (a client timeout): nobody is left to tell.
        let _ = reply.send(Outcome::Error(error_body(error_type, message)));
    }

    /// Called by the supervisor once the current process is reaped (and forgotten, before that:
    /// [`Shared::forget_process`]): it is no longer current, what it was running fails, and if it
    /// never finished its init, so does the next live invocation.
    fn process_exited(&self, status: &str) {
        let passed_init = {
            let mut process = locked(&self.process);
            process.generation += 1;
            process.polled
        };
        // Its waiters leave before the in-flight map is emptied: no event can reach it any more.
        self.wake.notify_waiters();
        let message = format!("Runtime exited with error: {status}");
        let in_flight: Vec<_> = locked(&self.in_flight).drain().collect();
        for (request_id, reply) in in_flight {
            Self::fail(reply, "Runtime.ExitError", &format!("RequestId: {request_id} Error: {message}"));
        }
        if !passed_init {
            // As Lambda fails the invocation whose cold start failed.
            let mut queue = locked(&self.queue);
            while let Some(queued) = queue.pop_front() {
                if !queued.reply.is_closed() {
                    let text = format!("RequestId: {} Error: {message}", queued.request_id);
                    Self::fail(queued.reply, "Runtime.InitError", &text);
                    break;
                }
            }
        }
    }

    /// No process will run again: everything waiting fails now, and every later invocation at once.
    fn give_up(&self, error_type: &str, reason: &str) {
        locked(&self.process).gave_up = Some(reason.to_string());
        for queued in locked(&self.queue).drain(..) {
            Self::fail(queued.reply, error_type, reason);
        }
    }

    /// Queues `event` and waits for the function's answer.
    async fn invoke(&self, event: Bytes) -> Outcome {
        if self.stopping.load(Ordering::SeqCst) {
            return Outcome::Error(error_body("Local.Stopped", "the local function stopped"));
        }
        if let Some(reason) = locked(&self.process).gave_up.clone() {
            return Outcome::Error(error_body("Local.Unavailable", &reason));
        }
        let (reply, answer) = oneshot::channel();
        let request_id = uuid::Uuid::new_v4().to_string();
        locked(&self.queue).push_back(Queued { request_id, event, reply });
        self.wake.notify_waiters();
        answer.await.unwrap_or_else(|_| Outcome::Error(error_body("Local.Stopped", "the local function stopped")))
    }

    /// `GET invocation/next` of a connection accepted under `generation`.
    async fn next_invocation(&self, generation: u64) -> Response<Full<Bytes>> {
        {
            let mut process = locked(&self.process);
            if process.generation == generation && !process.polled {
                process.polled = true;
                process.timings.init = process.spawned_at.map(|at| at.elapsed());
            }
        }
        loop {
            let notified = self.wake.notified();
            if self.stopping.load(Ordering::SeqCst) {
                // Lambda never answers `next` while shutting a sandbox down: the process ends on
                // its SIGTERM with no answer to misread.
                std::future::pending::<()>().await;
            }
            let taken = {
                // The generation check, the take and the in-flight entry under the process lock:
                // an exit either comes first (this waiter leaves) or finds the entry to fail.
                let process = locked(&self.process);
                if process.generation != generation {
                    return plain(StatusCode::GONE, "this process was replaced");
                }
                let mut queue = locked(&self.queue);
                let mut taken = None;
                while let Some(queued) = queue.pop_front() {
                    if !queued.reply.is_closed() {
                        locked(&self.in_flight).insert(queued.request_id.clone(), queued.reply);
                        taken = Some((queued.request_id, queued.event));
                        break;
                    }
                }
                taken
            };
            if let Some((request_id, event)) = taken {
                return self.event_response(request_id, event);
            }
            notified.await;
        }
    }

    /// The event with the headers the runtime client reads.
    fn event_response(&self, request_id: String, event: Bytes) -> Response<Full<Bytes>> {
        let deadline = SystemTime::now()
            .checked_add(self.config.timeout)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis());
        let name = &self.config.name;
        let arn = format!("arn:aws:lambda:us-east-1:{LOCAL_ACCOUNT}:function:{name}");
        let trace = format!("Root=1-{:08x}-{};Sampled=0", deadline / 1000, &request_id.replace('-', "")[..24]);
        let mut response = Response::new(Full::new(event));
        let headers = response.headers_mut();
        for (name, value) in [
            ("lambda-runtime-aws-request-id", request_id.as_str()),
            ("lambda-runtime-deadline-ms", &deadline.to_string()),
            ("lambda-runtime-invoked-function-arn", &arn),
            ("lambda-runtime-trace-id", &trace),
            ("content-type", "application/json"),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        response
    }

    /// `POST invocation/<id>/response` and `…/error`.
    fn complete(&self, request_id: &str, outcome: Outcome) -> Response<Full<Bytes>> {
        match locked(&self.in_flight).remove(request_id) {
            Some(reply) => {
                let _ = reply.send(outcome);
                accepted()
            }
            None => plain(StatusCode::BAD_REQUEST, "unknown or completed request id"),
        }
    }

    /// Called by the supervisor once the current process has exited, before it is reaped: no
    /// signal is sent to its pid from here on.
    fn forget_process(&self) {
        locked(&self.process).pid = 0;
    }

    /// Sends `signal` to the current process's group, under the lock (so never to a reaped pid:
    /// the supervisor forgets a process under the same lock before reaping it).
    fn signal(&self, signal: libc::c_int) {
        let process = locked(&self.process);
        signal_group(process.pid, signal);
    }
}

/// A running function: its server and the thread that keeps its process running. Dropping it
/// stops both.
pub struct LocalFunction {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    supervisor: Option<std::thread::JoinHandle<()>>,
    pub port: u16,
}

impl LocalFunction {
    /// Serves the function's APIs on `port` (0: a free one) and starts its process.
    pub async fn start(config: FunctionConfig, port: u16) -> Result<Self, String> {
        if !config.binary.is_file() {
            return Err(format!(
                "{} is not built: run `make demo` or `cargo build --workspace --bins --tests` first",
                config.binary.display()
            ));
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("{}: port {port}: {e}", config.name))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let shared = Arc::new(Shared {
            config,
            process: Mutex::default(),
            queue: Mutex::default(),
            in_flight: Mutex::default(),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        // From here on, an error drops `function`, which stops what was started.
        let mut function = Self { shared: Arc::clone(&shared), server, supervisor: None, port };
        let first = spawn_process(&shared, port)?.ok_or("stopped while starting")?;
        let supervisor = std::thread::Builder::new()
            .name(format!("lambda-{}", shared.config.name))
            .spawn(move || supervise(&shared, port, first))
            .map_err(|e| e.to_string())?;
        function.supervisor = Some(supervisor);
        Ok(function)
    }

    /// Waits until the process has asked for its first event (its init is done).
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while !locked(&self.shared.process).polled {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.shared.config.log_path).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                return Err(format!(
                    "{} did not ask for an event within {timeout:?}; its log ends with:\n{tail}",
                    self.shared.config.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Invokes the function directly (what `POST …/invocations` does).
    pub async fn invoke(&self, event: &Value) -> Result<Value, Value> {
        match self.shared.invoke(Bytes::from(event.to_string())).await {
            Outcome::Response(body) => Ok(serde_json::from_slice(&body).unwrap_or(Value::Null)),
            Outcome::Error(body) => Err(serde_json::from_slice(&body).unwrap_or(Value::Null)),
        }
    }

    pub fn timings(&self) -> StartTimings {
        locked(&self.shared.process).timings
    }

    /// Pid of the current process (0 between an exit and the next start).
    pub fn pid(&self) -> u32 {
        locked(&self.shared.process).pid
    }

    /// Stops the process and the server (what dropping does).
    pub fn stop(self) {}

    /// SIGTERM to the process, SIGKILL after 5 s; then the server; then fails what is queued.
    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake.notify_waiters();
        if let Some(supervisor) = self.supervisor.take() {
            self.shared.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !supervisor.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !supervisor.is_finished() {
                self.shared.signal(libc::SIGKILL);
            }
            let _ = supervisor.join();
        }
        self.server.abort();
        self.shared.give_up("Local.Stopped", "the local function stopped");
    }
}

impl Drop for LocalFunction {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the function's process, unless stopping; its environment is the template's and
/// Lambda's, nothing of ours.
fn spawn_process(shared: &Shared, port: u16) -> Result<Option<Child>, String> {
    let config = &shared.config;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.log_path)
        .map_err(|e| format!("{}: {e}", config.log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let mut process = locked(&shared.process);
    if shared.stopping.load(Ordering::SeqCst) {
        return Ok(None);
    }
    process.generation += 1;
    process.polled = false;
    process.timings.init = None;
    process.timings.starts += 1;
    let region = config.env.get("AWS_REGION").cloned().unwrap_or_else(|| "us-east-1".into());
    let mut command = Command::new(&config.binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TZ", ":UTC")
        .env("AWS_DEFAULT_REGION", &region)
        .envs(&config.env)
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", config.memory_mb.to_string())
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", config.name))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/{}", process.generation))
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Its own process group, so that stopping it reaches anything it started.
        .process_group(0);
    // Before the exec: its first poll may come before `spawn` returns.
    process.spawned_at = Some(Instant::now());
    let child = command.spawn().map_err(|e| format!("starting {}: {e}", config.binary.display()))?;
    process.pid = child.id();
    drop(process);
    // Waiters of the previous process leave; the new one's connections are of this generation.
    shared.wake.notify_waiters();
    Ok(Some(child))
}

/// Waits for the process; when it exits, fails what it was running and starts another (until stop).
/// A process still in its init after [`INIT_TIMEOUT`] is killed, as Lambda does. The process is
/// watched every 10 ms during its init only; past it, this thread just waits for its exit (polling
/// each of a stack's twenty-odd processes every 10 ms all the time was some 2 000 wake-ups a second).
fn supervise(shared: &Shared, port: u16, mut child: Child) {
    loop {
        // Waits for the exit without reaping the process: until `forget_process` below, `signal`
        // may still send to its pid, which the zombie keeps from being given to another process.
        let exited = loop {
            match exited_unreaped(child.id(), false) {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                Err(error) => break Err(error),
            }
            let (initialised, init_overdue) = {
                let process = locked(&shared.process);
                let overdue = process.spawned_at.is_some_and(|at| at.elapsed() > INIT_TIMEOUT);
                (process.polled, !process.polled && overdue)
            };
            if initialised {
                break exited_unreaped(child.id(), true).map(|_| ());
            }
            if init_overdue && !shared.stopping.load(Ordering::SeqCst) {
                eprintln!("{}: init took longer than {INIT_TIMEOUT:?}; killed", shared.config.name);
                shared.signal(libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        shared.forget_process();
        let status = match exited.and_then(|()| child.wait()) {
            Ok(status) => status.to_string(),
            Err(error) => error.to_string(),
        };
        let passed_init = locked(&shared.process).polled;
        shared.process_exited(&status);
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        if !passed_init {
            std::thread::sleep(INIT_FAILURE_BACKOFF);
        }
        child = match spawn_process(shared, port) {
            Ok(Some(child)) => child,
            Ok(None) => return,
            Err(error) => {
                eprintln!("{}: {error}", shared.config.name);
                shared.give_up("Local.Unavailable", &error);
                return;
            }
        };
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, most likely: let connections close before accepting again.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let generation = locked(&shared.process).generation;
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(route(&shared, generation, request).await) }
            });
            // A client that goes away mid-request is not this server's error.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn route(shared: &Shared, generation: u64, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let name = shared.config.name.as_str();
    if let Some(runtime) = path.strip_prefix(RUNTIME_PREFIX) {
        return runtime_route(shared, generation, request, runtime).await;
    }
    if request.method() == Method::POST && path == format!("/2015-03-31/functions/{name}/invocations") {
        let Some(body) = read_body(request).await else { return plain(StatusCode::BAD_REQUEST, "unreadable body") };
        return match shared.invoke(body).await {
            Outcome::Response(body) => json_response(StatusCode::OK, body),
            Outcome::Error(body) => {
                let mut response = json_response(StatusCode::OK, body);
                response.headers_mut().insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
                response
            }
        };
    }
    let url_prefix = format!("/lambda-url/{name}");
    if let Some(rest) = path.strip_prefix(&url_prefix).filter(|rest| rest.is_empty() || rest.starts_with('/')) {
        let rest = if rest.is_empty() { "/".to_string() } else { rest.to_string() };
        return function_url(shared, request, &rest).await;
    }
    plain(StatusCode::NOT_FOUND, "no such route on this local function")
}

async fn runtime_route(
    shared: &Shared,
    generation: u64,
    request: Request<Incoming>,
    route: &str,
) -> Response<Full<Bytes>> {
    if request.method() == Method::GET && route == "invocation/next" {
        return shared.next_invocation(generation).await;
    }
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "the Runtime API takes GET next and POST results");
    }
    let route = route.to_string();
    let Some(body) = read_body(request).await else { return plain(StatusCode::BAD_REQUEST, "unreadable body") };
    if route == "init/error" {
        eprintln!("{}: init error: {}", shared.config.name, String::from_utf8_lossy(&body));
        return accepted();
    }
    let Some((request_id, kind)) = route.strip_prefix("invocation/").and_then(|r| r.rsplit_once('/')) else {
        return plain(StatusCode::NOT_FOUND, "no such Runtime API route");
    };
    match kind {
        "response" => shared.complete(request_id, Outcome::Response(body)),
        "error" => shared.complete(request_id, Outcome::Error(body)),
        _ => plain(StatusCode::NOT_FOUND, "no such Runtime API route"),
    }
}

/// A function URL: the HTTP request as a payload 2.0 event, the function's answer as HTTP.
async fn function_url(shared: &Shared, request: Request<Incoming>, raw_path: &str) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return plain(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let event = function_url_event(&parts, raw_path, &body);
    match shared.invoke(Bytes::from(event.to_string())).await {
        Outcome::Response(answer) => http_answer(&answer),
        Outcome::Error(error) => {
            eprintln!("{}: function URL invocation failed: {}", shared.config.name, String::from_utf8_lossy(&error));
            json_response(StatusCode::BAD_GATEWAY, Bytes::from_static(br#"{"message":"Internal Server Error"}"#))
        }
    }
}

/// The event a function URL sends (payload format 2.0, as API Gateway's HTTP API).
pub fn function_url_event(parts: &hyper::http::request::Parts, raw_path: &str, body: &[u8]) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == hyper::header::COOKIE {
            cookies.extend(value.split(';').map(str::trim).filter(|c| !c.is_empty()).map(|c| Value::String(c.into())));
            continue;
        }
        // Repeated headers are joined with commas, as the service does.
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    let raw_query = parts.uri.query().unwrap_or_default();
    let mut query = Map::new();
    for (key, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(key.as_ref()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                query.insert(key.into_owned(), Value::String(value.into_owned()));
            }
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (BASE64.encode(body), true),
    };
    let user_agent = headers.get("user-agent").cloned().unwrap_or(Value::String(String::new()));
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": parts.method.as_str(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": user_agent,
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.as_millis() as u64,
        },
        "isBase64Encoded": base64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if !body.is_empty() {
        event["body"] = Value::String(body);
    }
    event
}

/// The function's payload 2.0 answer as an HTTP response.
fn http_answer(answer: &[u8]) -> Response<Full<Bytes>> {
    let Ok(answer) = serde_json::from_slice::<Value>(answer) else {
        return json_response(StatusCode::BAD_GATEWAY, Bytes::from_static(br#"{"message":"Internal Server Error"}"#));
    };
    if answer.get("statusCode").is_none() {
        // Not a payload 2.0 answer: the service answers 200 with the function's JSON as the body.
        return json_response(StatusCode::OK, Bytes::from(answer.to_string()));
    }
    let status = answer["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(200);
    let body = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"].as_bool() == Some(true) {
        BASE64.decode(body).unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    let single = answer["headers"].as_object().into_iter().flatten().map(|(k, v)| (k, v.as_str().map(str::to_string)));
    let multi = answer["multiValueHeaders"].as_object().into_iter().flatten().flat_map(|(k, values)| {
        values.as_array().into_iter().flatten().map(move |v| (k, v.as_str().map(str::to_string)))
    });
    for (name, value) in single.chain(multi) {
        if let (Ok(name), Some(Ok(value))) = (HeaderName::try_from(name.as_str()), value.map(HeaderValue::try_from)) {
            headers.append(name, value);
        }
    }
    for cookie in answer["cookies"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if let Ok(value) = HeaderValue::try_from(cookie) {
            headers.append(hyper::header::SET_COOKIE, value);
        }
    }
    response
}

async fn read_body(request: Request<Incoming>) -> Option<Bytes> {
    request.into_body().collect().await.ok().map(|b| b.to_bytes())
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn plain(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *response.status_mut() = status;
    response
}

fn accepted() -> Response<Full<Bytes>> {
    json_response(StatusCode::ACCEPTED, Bytes::from_static(br#"{"status":"OK"}"#))
}

/// Where cargo put the workspace's binaries: beside the running executable (the demo, a test, a
/// bench), so that it and the functions come from one build of one profile.
pub fn binary_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating the running executable: {e}"))?;
    let dir = exe.parent().ok_or("the running executable has no directory")?;
    // Tests and benches run from `<profile>/deps`; the binaries are in `<profile>`.
    Ok(if dir.ends_with("deps") {
        dir.parent().map_or_else(|| dir.to_path_buf(), Path::to_path_buf)
    } else {
        dir.to_path_buf()
    })
}
