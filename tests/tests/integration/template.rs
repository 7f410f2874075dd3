//! `template.yaml` is checked by the same tools a deployment uses, and agrees with the code.

use std::process::Command;
use tributary_aws::{CUSTOMER_KEY_ATTRIBUTES, DEDUP_KEY_ATTRIBUTE, DEDUP_TTL_ATTRIBUTE};
use tributary_testing::{Template, workspace_root};

fn venv_tool(name: &str) -> std::path::PathBuf {
    let path = workspace_root().join(".venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run `make setup` (scripts/setup.sh)", path.display());
    path
}

fn run(tool: &str, args: &[&str]) {
    let output = Command::new(venv_tool(tool))
        .args(args)
        .current_dir(workspace_root())
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        output.status.success(),
        "{tool} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn cfn_lint_is_clean() {
    run("cfn-lint", &["template.yaml"]);
}

#[test]
fn sam_validate_lint_is_clean() {
    run("sam", &["validate", "--lint", "--region", "us-east-1", "--template-file", "template.yaml"]);
}

#[test]
fn dedup_table_matches_the_adapter() {
    let template = Template::workspace().unwrap();
    let table = &template.resource("DedupTable").unwrap()["Properties"];
    assert_eq!(table["KeySchema"][0]["AttributeName"], DEDUP_KEY_ATTRIBUTE);
    assert_eq!(table["KeySchema"].as_array().unwrap().len(), 1, "the adapter writes a hash key only");
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"], DEDUP_TTL_ATTRIBUTE);
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
}

#[test]
fn customer_table_matches_the_adapter() {
    let template = Template::workspace().unwrap();
    let table = &template.resource("CustomerTable").unwrap()["Properties"];
    let (partition, sort) = CUSTOMER_KEY_ATTRIBUTES;
    assert_eq!(table["KeySchema"][0], serde_json::json!({"AttributeName": partition, "KeyType": "HASH"}));
    assert_eq!(table["KeySchema"][1], serde_json::json!({"AttributeName": sort, "KeyType": "RANGE"}));
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"], DEDUP_TTL_ATTRIBUTE,
        "markers expire by `expires_at`"
    );
}

#[test]
fn event_driven_functions_have_a_retry_budget_and_an_on_failure_queue() {
    let template = Template::workspace().unwrap();
    for (logical_id, topic) in [("ProcessorFunction", "EventsTopic"), ("IntegratorFunction", "UpdatesTopic")] {
        let properties = &template.resource(logical_id).unwrap()["Properties"];
        let config = &properties["EventInvokeConfig"];
        assert!(
            config["MaximumRetryAttempts"].is_object() || config["MaximumRetryAttempts"].is_number(),
            "{logical_id}"
        );
        assert_eq!(config["DestinationConfig"]["OnFailure"]["Type"], "SQS", "{logical_id}");
        let subscribed =
            properties["Events"].as_object().unwrap().values().any(|event| {
                event["Type"] == "SNS" && event["Properties"]["Topic"] == serde_json::json!({"Ref": topic})
            });
        assert!(subscribed, "{logical_id} is subscribed to {topic}");
    }
}

#[test]
fn function_timeouts_match_what_the_code_assumes() {
    let template = Template::workspace().unwrap();
    let timeout = |id: &str| template.resource(id).unwrap()["Properties"]["Timeout"].as_u64().unwrap();
    // A pending notification older than the timeout was left by a dead attempt.
    assert_eq!(timeout("ProcessorFunction"), processor::process::NOTIFY_GRACE.as_secs() as u64);
    // Every push fits in its budget, and the budget in the timeout with room for the audit write.
    assert!(timeout("IntegratorFunction") >= integrator::config::PUSH_BUDGET.as_secs() + 5);
    // A re-drive's scan and its margin fit in the API's timeout, and the timeout in API Gateway's 30 s.
    let redrive = api::failures::REDRIVE_BUDGET + api::failures::REDRIVE_MARGIN;
    assert!(timeout("ApiFunction") >= redrive.as_secs() && timeout("ApiFunction") < 30);
    // One re-driven push per invocation: a push may take most of the integrator's timeout.
    let batch = |id: &str, source: &str| {
        template.resource(id).unwrap()["Properties"]["Events"][source]["Properties"]["BatchSize"].as_u64().unwrap()
    };
    assert_eq!(batch("IntegratorFunction", "RedrivenPushes"), 1);
}

#[test]
fn every_function_is_a_cargo_lambda_build_of_a_workspace_binary() {
    let template = Template::workspace().unwrap();
    let globals = &template.document["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    let functions: Vec<_> = template.resources_of_type("AWS::Serverless::Function").collect();
    assert!(!functions.is_empty());
    for (logical_id, function) in functions {
        assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda", "{logical_id}");
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        // CodeUri is the crate that builds the binary (its main.rs, or a `[[bin]]` it declares), so
        // that `sam build` resolves that crate's features alone, as `cargo lambda build` does there.
        let code_uri = function["Properties"]["CodeUri"].as_str().unwrap();
        let crate_dir = workspace_root().join(code_uri);
        let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap_or_default();
        let own_main = manifest.contains(&format!("name = \"{binary}\"")) && crate_dir.join("src/main.rs").exists();
        let declared =
            manifest.split("[[bin]]").skip(1).any(|section| section.contains(&format!("name = \"{binary}\"")));
        assert!(own_main || declared, "{logical_id}: CodeUri {code_uri} does not build the binary {binary}");
    }
}

#[test]
fn secrets_are_never_literal_environment_values() {
    let template = Template::workspace().unwrap();
    for (logical_id, _) in template.resources_of_type("AWS::Serverless::Function") {
        for (name, value) in template.function_environment(logical_id).unwrap() {
            // `*_HEADER` names the header a token travels in, `*_SECRETS_PATH` where secrets live and
            // `SECRETS_MAX_AGE_SECONDS` how long they are kept: none is a secret.
            let looks_secret = ["SECRET", "TOKEN", "PASSWORD", "KEY"].iter().any(|word| name.contains(word))
                && !name.ends_with("_HEADER")
                && !name.ends_with("_SECRETS_PATH")
                && name != tributary_domain::secrets::MAX_AGE_VARIABLE;
            if looks_secret {
                assert!(
                    name.ends_with("_PARAM"),
                    "{logical_id}.{name}: secrets are passed as SSM parameter names (*_PARAM)"
                );
            }
            if let Some(text) = value.as_str() {
                assert!(!text.starts_with("whsec_"), "{logical_id}.{name} holds a signing secret in clear");
            }
        }
    }
}

/// Each function's role reads exactly the SSM parameters its environment names (`*_PARAM`) and the
/// paths it names (`*_SECRETS_PATH`, for secrets listed inside a document), nothing else: the
/// anonymisation key only by the puller, the integrations' tokens only by the integrator, …
#[test]
fn every_role_reads_only_the_parameters_its_environment_names() {
    use serde_json::{Value, json};
    let template = Template::workspace().unwrap();
    let arn = |parameter: &str, suffix: &str| json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{{parameter}}}{suffix}")});
    let mut functions_with_secrets = 0;
    for (logical_id, function) in template.resources_of_type("AWS::Serverless::Function") {
        let mut expected: Vec<Value> = Vec::new();
        for (name, value) in template.function_environment(logical_id).unwrap() {
            let suffix = if name.ends_with("_PARAM") {
                ""
            } else if name.ends_with("_SECRETS_PATH") {
                "*"
            } else {
                continue;
            };
            let parameter = value["Ref"].as_str().unwrap_or_else(|| panic!("{logical_id}.{name} is not a parameter"));
            expected.push(arn(parameter, suffix));
        }
        let mut granted: Vec<Value> = Vec::new();
        for policy in function["Properties"]["Policies"].as_array().into_iter().flatten() {
            for statement in policy["Statement"].as_array().into_iter().flatten() {
                let actions: Vec<&str> = match &statement["Action"] {
                    Value::String(action) => vec![action.as_str()],
                    Value::Array(actions) => actions.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                if actions.iter().any(|action| action.starts_with("ssm:") || *action == "*") {
                    match &statement["Resource"] {
                        Value::Array(resources) => granted.extend(resources.iter().cloned()),
                        resource => granted.push(resource.clone()),
                    }
                }
            }
        }
        let key = |v: &Value| v.to_string();
        expected.sort_by_key(key);
        granted.sort_by_key(key);
        assert_eq!(granted, expected, "{logical_id}: the SSM parameters its role may read");
        functions_with_secrets += usize::from(!expected.is_empty());
    }
    assert_eq!(functions_with_secrets, 5, "webhook, api, integrator, puller, aggregator");
}

/// What moto cannot check (it enforces no IAM, keeps no logs, encrypts nothing): every function
/// logs to its own group with the retention parameter, the HTTP API is throttled by the parameters,
/// every topic is encrypted, every bucket refuses requests without TLS, and the processor may read
/// the payments ledger in one request.
#[test]
fn logs_throttling_encryption_and_tls_are_declared_for_every_resource() {
    use serde_json::json;
    let template = Template::workspace().unwrap();
    let mut functions = 0;
    for (logical_id, function) in template.resources_of_type("AWS::Serverless::Function") {
        let group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{logical_id} has no log group of its own"));
        let group = template.resource(group).unwrap_or_else(|| panic!("{logical_id}: {group} is not declared"));
        assert_eq!(group["Type"], "AWS::Logs::LogGroup", "{logical_id}");
        assert_eq!(group["Properties"]["RetentionInDays"], json!({"Ref": "LogRetentionDays"}), "{logical_id}");
        functions += 1;
    }
    assert_eq!(functions, 11);
    let routes = &template.resource("HttpApi").unwrap()["Properties"]["DefaultRouteSettings"];
    assert_eq!(routes["ThrottlingRateLimit"], json!({"Ref": "ApiThrottlingRateLimit"}));
    assert_eq!(routes["ThrottlingBurstLimit"], json!({"Ref": "ApiThrottlingBurstLimit"}));
    // CORS: none by default; the origins of the parameter when it names some, without credentials.
    let parameters = &template.document["Parameters"]["CorsAllowedOrigins"];
    assert_eq!(parameters["Default"], "");
    assert_eq!(
        template.document["Conditions"]["HasCorsOrigins"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "CorsAllowedOrigins"}, ""]}]})
    );
    let cors = &template.resource("HttpApi").unwrap()["Properties"]["CorsConfiguration"]["Fn::If"];
    assert_eq!(cors[0], "HasCorsOrigins");
    assert_eq!(cors[1]["AllowOrigins"], json!({"Fn::Split": [",", {"Ref": "CorsAllowedOrigins"}]}));
    assert!(cors[1].get("AllowCredentials").is_none(), "the key travels in a header, never a cookie");
    assert_eq!(cors[2], json!({"Ref": "AWS::NoValue"}));
    let topics: Vec<_> = template.resources_of_type("AWS::SNS::Topic").collect();
    assert_eq!(topics.len(), 4, "events, updates, reports, alarms");
    for (logical_id, topic) in topics {
        assert_eq!(topic["Properties"]["KmsMasterKeyId"], "alias/aws/sns", "{logical_id} is not encrypted");
    }
    let policies: Vec<&serde_json::Value> =
        template.resources_of_type("AWS::S3::BucketPolicy").map(|(_, policy)| &policy["Properties"]).collect();
    for (bucket, _) in template.resources_of_type("AWS::S3::Bucket") {
        let tls_only = policies.iter().any(|policy| {
            policy["Bucket"] == json!({"Ref": bucket})
                && policy["PolicyDocument"]["Statement"].as_array().into_iter().flatten().any(|statement| {
                    statement["Effect"] == "Deny" && statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"
                })
        });
        assert!(tls_only, "{bucket} accepts requests without TLS");
    }
    let processor = template.resource("ProcessorFunction").unwrap();
    let actions: Vec<&str> = processor["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|policy| policy["Statement"].as_array().into_iter().flatten())
        .filter(|statement| statement["Resource"] == json!({"Fn::GetAtt": ["CustomerTable", "Arn"]}))
        .flat_map(|statement| statement["Action"].as_array().into_iter().flatten().filter_map(|a| a.as_str()))
        .collect();
    for needed in ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"] {
        assert!(actions.contains(&needed), "the processor may not {needed}: {actions:?}");
    }
}

#[test]
fn every_failure_queue_and_every_function_has_an_alarm_to_the_alarm_topic() {
    let template = Template::workspace().unwrap();
    let api_env = &template.resource("ApiFunction").unwrap()["Properties"]["Environment"]["Variables"];
    let alarms: Vec<&serde_json::Value> =
        template.resources_of_type("AWS::CloudWatch::Alarm").map(|(_, alarm)| &alarm["Properties"]).collect();
    for alarm in &alarms {
        assert_eq!(alarm["AlarmActions"], serde_json::json!([{"Ref": "AlarmTopic"}]), "{alarm}");
    }
    // The failure queues the API lists: each one's depth alarms.
    let failure_queues = [
        "PROCESSOR_DEAD_LETTER_QUEUE_URL",
        "PROCESSOR_FAILURE_QUEUE_URL",
        "INTEGRATOR_DEAD_LETTER_QUEUE_URL",
        "INTEGRATOR_FAILURE_QUEUE_URL",
        "LAKE_WRITER_DEAD_LETTER_QUEUE_URL",
        "REBUILD_DEAD_LETTER_QUEUE_URL",
        "REPLAY_DEAD_LETTER_QUEUE_URL",
    ];
    for variable in failure_queues {
        let queue = api_env[variable]["Ref"].as_str().unwrap_or_else(|| panic!("{variable} is not a queue"));
        let watched = alarms.iter().any(|alarm| {
            alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
                && alarm["Dimensions"][0]["Value"] == serde_json::json!({"Fn::GetAtt": [queue, "QueueName"]})
        });
        assert!(watched, "{queue} has no depth alarm");
    }
    // Every function's errors add up in one alarm.
    let errors = template.resource("FunctionErrorsAlarm").unwrap()["Properties"]["Metrics"].to_string();
    for (logical_id, _) in template.resources_of_type("AWS::Serverless::Function") {
        assert!(errors.contains(&format!("{{\"Ref\":\"{logical_id}\"}}")), "{logical_id} errors are not alarmed");
    }
}
