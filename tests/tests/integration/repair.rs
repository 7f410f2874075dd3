//! Repair against moto provisioned from `template.yaml`: failures listed through the API without
//! being taken, re-driven back to where they failed, handled there by the function's own code,
//! and back in their queue with their count when they fail again.

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use jiff::Timestamp;
use serde_json::{Value, json};
use tributary_aws::{self as aws, SsmSecrets};
use tributary_domain::secrets::Refreshing;
use tributary_testing::{LocalAws, Probe, lambda_sqs_record, put_demo_secrets, put_secrets, sample_event};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const INTEGRATIONS_PARAM: &str = "/tributary/integrations";

fn sample(name: &str) -> Value {
    serde_json::from_str(&sample_event(name).unwrap()).unwrap()
}

fn sns(name: &str) -> SnsEvent {
    serde_json::from_value(sample(name)).unwrap()
}

/// An API request with the demo key.
fn api_call(method: &str, path: &str, query: &str, body: Option<Value>) -> lambda_http::Request {
    let mut value = sample("api-get-customer.json");
    value["requestContext"]["http"]["method"] = json!(method);
    value["rawPath"] = json!(path);
    value["requestContext"]["http"]["path"] = json!(path);
    value["rawQueryString"] = json!(query);
    let pairs: serde_json::Map<String, Value> =
        query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), json!(v))).collect();
    value["queryStringParameters"] = Value::Object(pairs);
    if let Some(body) = body {
        value["body"] = json!(body.to_string());
        value["isBase64Encoded"] = json!(false);
    }
    lambda_http::request::from_str(&value.to_string()).unwrap()
}

fn body(response: &lambda_http::Response<lambda_http::Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

/// What Lambda's SQS event source would hand the function from `queue_url` now, taken off the
/// queue (as Lambda does once the function succeeds).
async fn take_batch(local: &LocalAws, queue_url: &str) -> SqsEvent {
    let sqs = aws::sqs_client(&local.sdk);
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages = received.messages.unwrap_or_default();
    let records: Vec<Value> =
        messages.iter().map(|m| lambda_sqs_record(m, "arn:aws:sqs:us-east-1:1:redrive")).collect();
    for message in &messages {
        sqs.delete_message()
            .queue_url(queue_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn failures_of(listing: &Value) -> &Vec<Value> {
    listing["queues"][0]["messages"].as_array().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pushes_are_listed_and_redriven_until_the_crm_takes_each_once() {
    let local = LocalAws::start(&[("IntegrationsParameter", INTEGRATIONS_PARAM)]).await.unwrap();
    put_demo_secrets(&local.sdk).await.unwrap();
    // The CRM is down for four requests (two pushes of two attempts), then up.
    let crm = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).up_to_n_times(4).mount(&crm).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&crm).await;
    let document = format!(
        "allowed_hosts: [\"127.0.0.1\"]\nintegrations:\n  - name: crm\n    url: {}/contacts\n    max_attempts: 2\n    on_fields: [billing.totals.eur]\n    body: {{email: identity.email, paid: billing.totals.eur}}\n",
        crm.uri()
    );
    put_secrets(&local.sdk, &[(INTEGRATIONS_PARAM, &document)]).await.unwrap();
    let now: Timestamp = "2026-11-23T09:00:05Z".parse().unwrap();

    // A payment changes the customer's totals: one update for the integrator.
    let processor_config =
        processor::config::ProcessorConfig::from_env(&local.stack.function_env("ProcessorFunction").unwrap()).unwrap();
    let updates = Probe::subscribe(&local.sdk, &processor_config.updates_topic_arn, "repair-updates").await.unwrap();
    let processor = processor_config.aws_deps(&local.sdk);
    let applied = processor::handler::handle(&processor, sns("processor-stripe-invoice-paid.json"), now).await.unwrap();
    assert_eq!(applied.applied, 1);
    let mut config =
        integrator::config::IntegratorConfig::from_env(&local.stack.function_env("IntegratorFunction").unwrap())
            .unwrap();
    config.allow_loopback = true; // the local CRM listens on 127.0.0.1 over http
    let integrations =
        integrator::config::LoadedIntegrations::load(&config, &SsmSecrets::new(aws::ssm_client(&local.sdk)))
            .await
            .unwrap();
    let integrator = config.aws_deps(&local.sdk, Refreshing::fixed(integrations)).unwrap();
    let published = updates.drain().await.unwrap();
    assert_eq!(published.len(), 1);
    let mut delivery = sns("integrator-customer-updated.json");
    delivery.records[0].sns.message = published[0].message.clone();
    let summary = integrator::handler::handle(&integrator, delivery, now).await.unwrap();
    assert_eq!((summary.pushed, summary.failed), (0, 1), "the CRM is down");

    // The API lists the failed push without taking it.
    let api_config = api::config::ApiConfig::from_env(&local.stack.function_env("ApiFunction").unwrap()).unwrap();
    let keys = api::config::load_api_keys(&api_config, &SsmSecrets::new(aws::ssm_client(&local.sdk))).await.unwrap();
    let api = api_config.aws_deps(&local.sdk, Refreshing::fixed(keys));
    let list = || api_call("GET", "/api/v1/failures", "queue=integrator-dead-letters", None);
    let listing = body(&api::handler::handle(&api, list(), now).await);
    let failures = failures_of(&listing);
    assert_eq!(failures.len(), 1, "{listing}");
    assert_eq!(failures[0]["integration"], "crm");
    assert_eq!(failures[0]["redrives"], 0);
    assert!(failures[0]["reason"].as_str().unwrap().contains("GaveUp"), "{}", failures[0]["reason"]);
    let customer = failures[0]["customer"].as_str().unwrap().to_string();
    assert_eq!(failures_of(&body(&api::handler::handle(&api, list(), now).await)).len(), 1, "still there");

    // Re-driven while the CRM is still down: it fails again and comes back with its count.
    let redrive =
        |selection: Value| api_call("POST", "/api/v1/failures/integrator-dead-letters/redrive", "", Some(selection));
    let outcome = body(&api::handler::handle(&api, redrive(json!({"all": true})), now).await);
    assert_eq!(outcome["redriven"], 1, "{outcome}");
    assert!(failures_of(&body(&api::handler::handle(&api, list(), now).await)).is_empty());
    // (Each push later than the one before: the audit keys pushes by time.)
    let later = |seconds: i64| now.checked_add(jiff::SignedDuration::from_secs(seconds)).unwrap();
    let batch = take_batch(&local, &api_config.queues.integrator_redrive).await;
    assert_eq!(batch.records.len(), 1);
    let (summary, response) = integrator::handler::handle_redriven(&integrator, batch, later(60)).await;
    assert_eq!((summary.pushed, summary.failed), (0, 1));
    assert!(response.batch_item_failures.is_empty(), "a failed push is dead-lettered, not retried by SQS");
    let listing = body(&api::handler::handle(&api, list(), now).await);
    let failures = failures_of(&listing);
    assert_eq!(failures.len(), 1, "{listing}");
    assert_eq!(failures[0]["redrives"], 1);

    // The CRM is back: one re-drive of that message pushes it once.
    let id = failures[0]["id"].clone();
    let outcome = body(&api::handler::handle(&api, redrive(json!({"ids": [id]})), now).await);
    assert_eq!((outcome["redriven"].clone(), outcome["not_found"].clone()), (json!(1), json!([])));
    let batch = take_batch(&local, &api_config.queues.integrator_redrive).await;
    let (summary, _) = integrator::handler::handle_redriven(&integrator, batch, later(120)).await;
    assert_eq!((summary.pushed, summary.failed), (1, 0));
    let listing = body(&api::handler::handle(&api, api_call("GET", "/api/v1/failures", "", None), now).await);
    assert!(listing["queues"].as_array().unwrap().iter().all(|q| q["depth"] == 0), "{listing}");

    // Five requests, one key: the CRM took the push once.
    let requests = crm.received_requests().await.unwrap();
    assert_eq!(requests.len(), 5);
    let keys: std::collections::BTreeSet<_> =
        requests.iter().map(|r| r.headers.get("idempotency-key").unwrap().to_str().unwrap().to_string()).collect();
    assert_eq!(keys.len(), 1, "every attempt with the same Idempotency-Key");

    // The audit shows the failures and the success; the history shows both re-drives.
    let audit = body(
        &api::handler::handle(&api, api_call("GET", &format!("/api/v1/customers/{customer}/audit"), "", None), now)
            .await,
    );
    let pushes: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "integration")
        .map(|e| e["integration"]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(pushes, ["success", "gave_up", "gave_up"], "newest first");
    let history = body(&api::handler::handle(&api, api_call("GET", "/api/v1/runs", "kind=redrive", None), now).await);
    let runs = history["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{history}");
    assert!(runs.iter().all(|run| run["scope"] == "integrator-dead-letters" && run["records"] == 1), "{history}");
    assert!(runs.iter().all(|run| run["requested_by"] == "demo"), "each re-drive names the key that asked: {history}");
    // The pushes of the hour, by integration and outcome, from the integrator's tallies.
    let pushes = body(&api::handler::handle(&api, api_call("GET", "/api/v1/runs", "kind=pushes", None), now).await);
    let tallied: Vec<(&str, &str, u64)> = pushes["tallies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["outcome"].as_str().unwrap(), t["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(tallied, [("crm", "gave_up", 2), ("crm", "success", 1)], "{pushes}");

    // A replay request is queued for the replay job under the run id the answer names.
    let replay = json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-24T00:00:00Z", "dry_run": true});
    let queued = api::handler::handle(&api, api_call("POST", "/api/v1/replays", "", Some(replay)), now).await;
    assert_eq!(queued.status(), 202);
    let run_id = body(&queued)["queued"]["run_id"].as_str().unwrap().to_string();
    let batch = take_batch(&local, &api_config.queues.replay).await;
    let request: Value = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!((request["run_id"].as_str(), request["dry_run"].as_bool()), (Some(run_id.as_str()), Some(true)));
    let refused = api::handler::handle(&api, api_call("POST", "/api/v1/replays", "", Some(json!({}))), now).await;
    assert_eq!(
        (refused.status().as_u16(), refused.headers()["content-type"].to_str().unwrap()),
        (400, "application/problem+json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_invocations_and_dead_letters_go_back_to_the_processor_and_the_lake_writer() {
    let local = LocalAws::start(&[]).await.unwrap();
    put_demo_secrets(&local.sdk).await.unwrap();
    let now: Timestamp = "2026-11-23T09:00:05Z".parse().unwrap();
    let api_config = api::config::ApiConfig::from_env(&local.stack.function_env("ApiFunction").unwrap()).unwrap();
    let keys = api::config::load_api_keys(&api_config, &SsmSecrets::new(aws::ssm_client(&local.sdk))).await.unwrap();
    let api = api_config.aws_deps(&local.sdk, Refreshing::fixed(keys));
    let urls = &api_config.queues;
    let sqs = aws::sqs_client(&local.sdk);

    // What Lambda writes to the processor's OnFailure destination after the retries, and a
    // message that is no event at all.
    let event = sample("processor-stripe-invoice-paid.json");
    let destination = json!({
        "version": "1.0", "timestamp": "2026-11-23T08:00:00.000Z",
        "requestContext": {"requestId": "r-1", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "responsePayload": {"errorType": "BackingServiceFailed", "errorMessage": "event evt: the customer table failed"}
    });
    sqs.send_message().queue_url(&urls.processor_failures).message_body(destination.to_string()).send().await.unwrap();
    let reason = aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value("not a canonical event: expected value")
        .build()
        .unwrap();
    sqs.send_message()
        .queue_url(&urls.processor_dead_letters)
        .message_body("garbage")
        .message_attributes("reason", reason)
        .send()
        .await
        .unwrap();
    sqs.send_message().queue_url(&urls.lake_writer_dead_letters).message_body("{\"refused\": 5}").send().await.unwrap();

    let listing = body(&api::handler::handle(&api, api_call("GET", "/api/v1/failures", "", None), now).await);
    let by_queue =
        |name: &str| listing["queues"].as_array().unwrap().iter().find(|q| q["queue"] == name).unwrap().clone();
    let failed = by_queue("processor-failures");
    assert_eq!(failed["depth"], 1);
    assert_eq!(failed["messages"][0]["reason"], "BackingServiceFailed: event evt: the customer table failed");
    assert_eq!(failed["messages"][0]["event_type"], "stripe.invoice.paid");
    assert_eq!(failed["messages"][0]["first_failed_at"], "2026-11-23T08:00:00Z");
    assert_eq!(by_queue("processor-dead-letters")["messages"][0]["message"], "garbage");
    assert_eq!(by_queue("lake-writer-dead-letters")["depth"], 1);

    for queue in ["processor-failures", "processor-dead-letters", "lake-writer-dead-letters"] {
        let path = format!("/api/v1/failures/{queue}/redrive");
        let outcome =
            body(&api::handler::handle(&api, api_call("POST", &path, "", Some(json!({"all": true}))), now).await);
        assert_eq!(outcome["redriven"], 1, "{queue}: {outcome}");
    }

    // The processor applies the event of the failed invocation, and dead-letters the garbage
    // again with its count.
    let processor_config =
        processor::config::ProcessorConfig::from_env(&local.stack.function_env("ProcessorFunction").unwrap()).unwrap();
    let processor = processor_config.aws_deps(&local.sdk);
    let batch = take_batch(&local, &urls.processor_redrive).await;
    assert_eq!(batch.records.len(), 2);
    let (summary, response) = processor::handler::handle_redriven(&processor, batch, now).await;
    assert_eq!((summary.applied, summary.dead_lettered), (1, 1));
    assert!(response.batch_item_failures.is_empty());
    let found =
        api::handler::handle(&api, api_call("GET", "/api/v1/customers", "email=ada.lovelace@example.com", None), now)
            .await;
    assert_eq!(body(&found)["profile"]["billing"]["totals"]["eur"], 4900);
    let listing = body(
        &api::handler::handle(&api, api_call("GET", "/api/v1/failures", "queue=processor-dead-letters", None), now)
            .await,
    );
    let again = &failures_of(&listing)[0];
    assert_eq!((again["message"].clone(), again["redrives"].clone()), (json!("garbage"), json!(1)));

    // The lake writer's refused record is back on the lake writer's queue.
    let back = take_batch(&local, &urls.lake_writer).await;
    assert_eq!(back.records[0].body.as_deref(), Some("{\"refused\": 5}"));
}
