//! The local Lambda the demo runs its functions on (`src/local_lambda.rs`), against a real
//! `lambda_runtime` process (`src/bin/lambda-probe.rs`): each Runtime API route, a function URL
//! both ways, and a process that exits or fails its init.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use tributary_tests::functions::{FunctionProcess, FunctionSpec};
use tributary_tests::local_lambda::{FunctionConfig, LocalFunction};

fn probe(env: &[(&str, &str)]) -> FunctionConfig {
    let dir = std::env::temp_dir().join("tributary-local-lambda-tests");
    std::fs::create_dir_all(&dir).unwrap();
    FunctionConfig {
        name: "probe".into(),
        binary: PathBuf::from(env!("CARGO_BIN_EXE_lambda-probe")),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
        timeout: Duration::from_secs(42),
        memory_mb: 256,
        log_path: dir.join(format!("probe-{}.log", uuid::Uuid::new_v4())),
    }
}

async fn started(env: &[(&str, &str)]) -> LocalFunction {
    let function = LocalFunction::start(probe(env), 0).await.unwrap();
    function.wait_until_ready(Duration::from_secs(30)).await.unwrap();
    function
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_carries_lambdas_context_and_only_the_functions_environment() {
    // cargo sets this for the test process; the function must not inherit it.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let function = started(&[("SETTING", "from the template")]).await;
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let answer = function.invoke(&json!({"hello": "world"})).await.unwrap();
    assert_eq!(answer["event"], json!({"hello": "world"}));
    assert_eq!(answer["function_arn"], "arn:aws:lambda:us-east-1:123456789012:function:probe");
    assert_eq!(answer["request_id"].as_str().unwrap().len(), 36);
    let deadline = answer["deadline_ms"].as_u64().unwrap();
    assert!(deadline >= before + 41_000 && deadline <= before + 43_000, "deadline {deadline} vs now {before}");
    let environment = &answer["environment"];
    assert_eq!(environment["SETTING"], "from the template");
    assert_eq!(environment["AWS_LAMBDA_FUNCTION_NAME"], "probe");
    assert_eq!(environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(environment["AWS_LAMBDA_RUNTIME_API"], format!("127.0.0.1:{}", function.port));
    assert!(environment.get("CARGO_MANIFEST_DIR").is_none(), "the parent's environment leaked");
    // Invocations run one after another on the same process.
    let second = function.invoke(&json!({"n": 2})).await.unwrap();
    assert_eq!(second["event"], json!({"n": 2}));
    assert_ne!(second["request_id"], answer["request_id"]);
    let timings = function.timings();
    assert_eq!(timings.starts, 1);
    assert!(timings.init.is_some());
    function.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_invoke_api_reports_a_handler_error_as_lambda_does() {
    let function = started(&[]).await;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/2015-03-31/functions/probe/invocations", function.port);
    let response = http.post(&url).json(&json!({"fail": "no luck"})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-amz-function-error"], "Unhandled");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorMessage"], "no luck");
    assert!(body["errorType"].is_string());
    // The process is still the same one, and still answers.
    let response = http.post(&url).json(&json!({"ok": true})).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["event"], json!({"ok": true}));
    assert_eq!(function.timings().starts, 1);
    // Another function's name is not this one's route.
    let other = format!("http://127.0.0.1:{}/2015-03-31/functions/other/invocations", function.port);
    assert_eq!(http.post(&other).json(&json!({})).send().await.unwrap().status(), 404);
    function.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_that_exits_fails_its_invocation_and_is_started_again() {
    let function = started(&[]).await;
    let pid = function.pid();
    let error = function.invoke(&json!({"exit": 7})).await.unwrap_err();
    assert_eq!(error["errorType"], "Runtime.ExitError");
    assert!(error["errorMessage"].as_str().unwrap().contains("exit status: 7"), "{error}");
    let answer = function.invoke(&json!({"after": "restart"})).await.unwrap();
    assert_eq!(answer["event"], json!({"after": "restart"}));
    assert_ne!(function.pid(), pid);
    assert_eq!(function.timings().starts, 2);
    function.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_that_fails_its_init_fails_the_invocation_instead_of_hanging() {
    let function = LocalFunction::start(probe(&[("PROBE_FAIL_INIT", "1")]), 0).await.unwrap();
    let not_ready = function.wait_until_ready(Duration::from_millis(500)).await.unwrap_err();
    assert!(not_ready.contains("failing its init on purpose"), "{not_ready}");
    let error = tokio::time::timeout(Duration::from_secs(30), function.invoke(&json!({})))
        .await
        .expect("an init failure must answer, not hang")
        .unwrap_err();
    assert_eq!(error["errorType"], "Runtime.InitError");
    function.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_url_request_becomes_a_payload_2_event_and_its_answer_http() {
    let function = started(&[]).await;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/lambda-url/probe/webhook/stripe?a=1&a=2&b=x%20y", function.port);
    let response = http
        .post(&url)
        .header("x-custom", "one")
        .header("cookie", "session=abc; theme=dark")
        .body("{\"signed\": \"body\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-probe"], "yes");
    assert_eq!(response.headers()["set-cookie"], "probe=1; Path=/");
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], "/webhook/stripe");
    assert_eq!(event["rawQueryString"], "a=1&a=2&b=x%20y");
    assert_eq!(event["queryStringParameters"], json!({"a": "1,2", "b": "x y"}));
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["headers"]["x-custom"], "one");
    assert_eq!(event["cookies"], json!(["session=abc", "theme=dark"]));
    assert_eq!(event["body"], "{\"signed\": \"body\"}");
    assert_eq!(event["isBase64Encoded"], false);
    // A body that is not UTF-8 travels base64-encoded, as the service sends it.
    let response = http.put(&url).body(vec![0xff, 0x00, 0xfe]).send().await.unwrap();
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "/wD+");
    // Another function's URL is not served here.
    let answer = http.get(format!("http://127.0.0.1:{}/lambda-url/other", function.port)).send().await.unwrap();
    assert_eq!(answer.status(), 404);
    function.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_ends_the_process_quietly_and_dropping_stops_too() {
    let config = probe(&[]);
    let log_path = config.log_path.clone();
    let function = LocalFunction::start(config, 0).await.unwrap();
    function.wait_until_ready(Duration::from_secs(30)).await.unwrap();
    let pid = function.pid();
    function.stop();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the process outlived stop()");
    // Its pending `next` was never answered: nothing for the runtime client to misread.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains("panicked"), "{log}");

    let function = started(&[]).await;
    let pid = function.pid();
    drop(function);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the process outlived its LocalFunction");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_run_as_several_processes_sends_each_invocation_to_an_idle_one() {
    let config = probe(&[]);
    let binary_dir = config.binary.parent().unwrap().to_path_buf();
    let spec = FunctionSpec {
        logical_id: "ProbeFunction".into(),
        binary: "lambda-probe".into(),
        package: "tributary-tests".into(),
        timeout_seconds: 42,
        memory_mb: 256,
        invoked_per_event: true,
        reserved_concurrency: None,
    };
    let state_dir = config.log_path.parent().unwrap().join(uuid::Uuid::new_v4().to_string());
    let function = FunctionProcess::start(&spec, 0, 2, HashMap::new(), &state_dir, &binary_dir).await.unwrap();
    function.wait_until_ready(Duration::from_secs(30)).await.unwrap();
    assert_eq!(function.client.instances(), 2);
    assert_eq!(function.pids().len(), 2);

    // The first stays in flight while the second is sent: the second goes to the other process.
    let (slow, quick) = (json!({"sleep_ms": 1_000}), json!({"quick": true}));
    let (first, second) = tokio::join!(function.client.invoke(&slow), function.client.invoke(&quick));
    let pid = |answer: &tributary_tests::functions::Invocation| answer.body["pid"].as_u64().unwrap();
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(!first.failed() && !second.failed(), "{first:?} {second:?}");
    assert_ne!(pid(&first), pid(&second), "both invocations went to one process");
    let mut pids: Vec<u64> = function.pids().into_iter().map(u64::from).collect();
    pids.sort_unstable();
    let mut answered = vec![pid(&first), pid(&second)];
    answered.sort_unstable();
    assert_eq!(answered, pids);

    // Function URL requests take the processes in turn.
    let urls: Vec<String> = (0..4).map(|_| function.client.url()).collect();
    assert_ne!(urls[0], urls[1]);
    assert_eq!(urls[0], urls[2]);
    function.stop();
}

#[test]
fn an_exited_process_is_seen_without_being_reaped() {
    use tributary_tests::functions::exited_unreaped;
    // `cat` runs until its input ends: it cannot exit before the test lets it.
    let mut child = std::process::Command::new("cat").stdin(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    assert!(!exited_unreaped(pid, false).unwrap(), "still running");
    drop(child.stdin.take());
    assert!(exited_unreaped(pid, true).unwrap());
    // Seen exited, and still there as a zombie: its pid cannot go to another process yet.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = stat.rsplit_once(')').unwrap().1.split_whitespace().next().unwrap().to_string();
    assert_eq!(state, "Z", "{stat}");
    assert!(exited_unreaped(pid, false).unwrap(), "asked again");
    // Reaped only by the wait that owns it, with its status.
    assert!(child.wait().unwrap().success());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
