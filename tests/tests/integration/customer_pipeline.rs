//! Processor → updates topic → integrator, and the read API, against moto provisioned from
//! `template.yaml`, each function built from its environment as the template declares it.

use aws_lambda_events::event::sns::SnsEvent;
use jiff::Timestamp;
use serde_json::{Value, json};
use tributary_aws::{self as aws, SnsPublisher, SsmSecrets};
use tributary_testing::{LocalAws, Probe, put_demo_secrets, put_secrets, sample_event};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const INTEGRATIONS_PARAM: &str = "/tributary/integrations";

fn sample(name: &str) -> Value {
    serde_json::from_str(&sample_event(name).unwrap()).unwrap()
}

fn sns(name: &str) -> SnsEvent {
    serde_json::from_value(sample(name)).unwrap()
}

fn api_get(path: &str, query: &str) -> lambda_http::Request {
    let mut value = sample("api-get-customer.json");
    value["rawPath"] = json!(path);
    value["requestContext"]["http"]["path"] = json!(path);
    value["rawQueryString"] = json!(query);
    let pairs: serde_json::Map<String, Value> =
        query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), json!(v))).collect();
    value["queryStringParameters"] = Value::Object(pairs);
    lambda_http::request::from_str(&value.to_string()).unwrap()
}

fn body(response: &lambda_http::Response<lambda_http::Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_one_customer_pushed_to_an_integration_and_readable_through_the_api() {
    // The samples' visitor signs in with her e-mail address as Matomo userId.
    let local = LocalAws::start(&[("IntegrationsParameter", INTEGRATIONS_PARAM), ("MatomoUserIdAsEmail", "true")])
        .await
        .unwrap();
    put_demo_secrets(&local.sdk).await.unwrap();
    let crm = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&crm).await;
    let document = format!(
        "allowed_hosts: [\"127.0.0.1\"]\nintegrations:\n  - name: crm\n    url: {}/contacts\n    on_fields: [billing.totals.eur]\n    body: {{email: identity.email, paid: billing.totals.eur}}\n",
        crm.uri()
    );
    put_secrets(&local.sdk, &[(INTEGRATIONS_PARAM, &document)]).await.unwrap();
    let now: Timestamp = "2026-11-23T09:00:05Z".parse().unwrap();

    // The processor, as main.rs builds it from the template's environment.
    let config =
        processor::config::ProcessorConfig::from_env(&local.stack.function_env("ProcessorFunction").unwrap()).unwrap();
    let updates = Probe::subscribe(&local.sdk, &config.updates_topic_arn, "pipeline-updates").await.unwrap();
    let processor = config.aws_deps(&local.sdk);
    for name in ["processor-lead-upserted.json", "processor-stripe-invoice-paid.json", "processor-matomo-visit.json"] {
        let summary = processor::handler::handle(&processor, sns(name), now).await.unwrap();
        assert_eq!(summary.applied, 1, "{name}");
    }

    // The integrator receives what the updates topic published.
    let env = local.stack.function_env("IntegratorFunction").unwrap();
    let mut config = integrator::config::IntegratorConfig::from_env(&env).unwrap();
    assert_eq!(config.integrations_param.as_deref(), Some(INTEGRATIONS_PARAM));
    config.allow_loopback = true; // the local CRM listens on 127.0.0.1 over http
    let integrations =
        integrator::config::LoadedIntegrations::load(&config, &SsmSecrets::new(aws::ssm_client(&local.sdk)))
            .await
            .unwrap();
    let integrator = config.aws_deps(&local.sdk, tributary_domain::secrets::Refreshing::fixed(integrations)).unwrap();
    let published = updates.drain().await.unwrap();
    assert_eq!(published.len(), 3);
    let mut pushed = 0;
    for message in published {
        assert_eq!(message.attributes["type"], "customer.updated");
        let mut delivery = sns("integrator-customer-updated.json");
        delivery.records[0].sns.message = message.message;
        pushed += integrator::handler::handle(&integrator, delivery, now).await.unwrap().pushed;
    }
    assert_eq!(pushed, 1, "only the Stripe payment changed billing.totals.eur");
    let request = &crm.received_requests().await.unwrap()[0];
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({"email": "ada.lovelace@example.com", "paid": 4900})
    );

    // The read API, with the demo key, sees one customer and its four audit entries.
    let config = api::config::ApiConfig::from_env(&local.stack.function_env("ApiFunction").unwrap()).unwrap();
    let keys = api::config::load_api_keys(&config, &SsmSecrets::new(aws::ssm_client(&local.sdk))).await.unwrap();
    let api = config.aws_deps(&local.sdk, tributary_domain::secrets::Refreshing::fixed(keys));
    let found = api::handler::handle(&api, api_get("/api/v1/customers", "email=Ada.Lovelace@example.com"), now).await;
    assert_eq!(found.status(), 200);
    let customer = body(&found);
    assert_eq!(customer["version"], 3);
    assert_eq!(customer["profile"]["billing"]["totals"]["eur"], 4900);
    assert_eq!(customer["profile"]["web"]["visit_count"], 1);
    let id = customer["id"].as_str().unwrap().to_string();

    let audit_path = format!("/api/v1/customers/{id}/audit");
    let mut kinds = Vec::new();
    let mut query = "limit=3".to_string();
    loop {
        let page = body(&api::handler::handle(&api, api_get(&audit_path, &query), now).await);
        kinds.extend(page["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(kinds, ["event", "integration", "event", "event"], "newest first, the push after its version");
    let bad_cursor = api::handler::handle(&api, api_get(&audit_path, "cursor=QVVESVQjMQ"), now).await;
    assert_eq!(bad_cursor.status(), 400);

    // Leads posted to the ingestion API reach the events topic, and the processor applies them.
    let events = Probe::subscribe(&local.sdk, &config.events_topic_arn, "pipeline-events").await.unwrap();
    let request = lambda_http::request::from_str(&sample("api-ingest-leads.json").to_string()).unwrap();
    assert_eq!(api::handler::handle(&api, request, now).await.status(), 202);
    let published = events.drain().await.unwrap();
    assert_eq!(published.len(), 2);
    for message in published {
        assert_eq!(message.attributes["type"], "lead.upserted");
        let mut delivery = sns("processor-lead-upserted.json");
        delivery.records[0].sns.message = message.message;
        assert_eq!(processor::handler::handle(&processor, delivery, now).await.unwrap().applied, 1);
    }
    let grace = api::handler::handle(&api, api_get("/api/v1/customers", "email=grace@example.com"), now).await;
    assert_eq!(body(&grace)["profile"]["lead"]["statut"], "contacte");
    let ada = body(&api::handler::handle(&api, api_get(&format!("/api/v1/customers/{id}"), ""), now).await);
    assert_eq!(ada["profile"]["identity"]["telephone"], "+33612345678", "the ingested lead met Ada's record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_are_published_each_once_with_batches_in_flight_together() {
    use tributary_domain::ports::{BusMessage, EventPublisher, MAX_BATCH_ENTRIES, SNS_MAX_MESSAGE_BYTES};
    let local = LocalAws::start(&[]).await.unwrap();
    let topic = local.stack.function_env("ApiFunction").unwrap()["EVENTS_TOPIC_ARN"].clone();
    let probe = Probe::subscribe(&local.sdk, &topic, "publish-all").await.unwrap();
    let publisher = SnsPublisher::new(aws::sns_client(&local.sdk), &topic);
    // More batches than are in flight at once, and the last one short.
    let count = aws::PUBLISH_BATCHES_IN_FLIGHT * MAX_BATCH_ENTRIES * 2 + 7;
    let messages: Vec<BusMessage> = (0..count)
        .map(|index| BusMessage {
            body: json!({"n": index}).to_string(),
            source: "test".into(),
            event_type: "test.published".into(),
        })
        .collect();
    publisher.publish_all(&messages).await.unwrap();
    let mut received: Vec<u64> = probe
        .drain()
        .await
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str::<Value>(&m.message).unwrap()["n"].as_u64().unwrap())
        .collect();
    received.sort_unstable();
    assert_eq!(received, (0..count as u64).collect::<Vec<_>>(), "each message exactly once");

    // A message no batch can carry is refused before anything is published.
    let mut with_oversized = messages[..30].to_vec();
    with_oversized[25].body = "x".repeat(SNS_MAX_MESSAGE_BYTES);
    assert!(publisher.publish_all(&with_oversized).await.is_err());
    assert!(probe.drain().await.unwrap().is_empty());
}
