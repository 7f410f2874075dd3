//! Shared by the processor's tests: sample deliveries, events built in code, and the processor
//! wired to in-memory adapters or to moto exactly as `main.rs` wires it to AWS.
#![allow(dead_code)] // Each test binary uses a different part.

use aws_lambda_events::event::sns::SnsEvent;
use jiff::Timestamp;
use processor::config::ProcessorConfig;
use processor::handler::Deps;
use processor::process::Processor;
use tributary_aws::{self as aws, DynamoDbCustomers, SnsPublisher, SqsDeadLetters};
use tributary_domain::customer::rules::Registry;
use tributary_domain::event::{CanonicalEvent, EventId, Subject};
use tributary_testing::memory::{InMemoryCustomers, InMemoryDeadLetters, InMemoryPublisher};
use tributary_testing::{LocalAws, Probe, sample_event};

/// The instant the samples were received (`events/`): tests run with the clock pinned there.
pub fn now() -> Timestamp {
    "2026-11-23T09:00:05Z".parse().unwrap()
}

pub fn sample(name: &str) -> SnsEvent {
    serde_json::from_str(&sample_event(name).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// An SNS delivery (shaped like the samples) carrying `message`.
pub fn delivery(message: &str) -> SnsEvent {
    let mut event = sample("processor-stripe-invoice-paid.json");
    event.records[0].sns.message = message.to_string();
    event
}

pub fn delivery_of(event: &CanonicalEvent) -> SnsEvent {
    delivery(&event.to_message().unwrap())
}

pub fn message_of(sample_name: &str) -> CanonicalEvent {
    CanonicalEvent::from_message(&sample(sample_name).records[0].sns.message).unwrap()
}

/// A canonical event built in a test.
pub fn event(
    id: &str,
    event_type: &str,
    subject: Option<Subject>,
    at: &str,
    payload: serde_json::Value,
) -> CanonicalEvent {
    CanonicalEvent {
        id: EventId::parse(id).unwrap(),
        source: event_type.split('.').next().unwrap().to_string(),
        event_type: event_type.to_string(),
        subject,
        occurred_at: at.parse().unwrap(),
        received_at: at.parse().unwrap(),
        payload: serde_json::value::to_raw_value(&payload).unwrap(),
    }
}

pub type MemoryDeps = Deps<InMemoryCustomers, InMemoryPublisher, InMemoryDeadLetters>;

pub fn memory_deps() -> MemoryDeps {
    Deps {
        processor: Processor {
            // The samples' visitor signs in with her e-mail address as Matomo userId.
            registry: Registry::configured(&["make".to_string(), "acme".to_string()], true),
            store: InMemoryCustomers::default(),
            updates: InMemoryPublisher::default(),
            commit_attempts: 8,
        },
        dead_letters: InMemoryDeadLetters::default(),
    }
}

pub type AwsDeps = Deps<DynamoDbCustomers, SnsPublisher, SqsDeadLetters>;

/// moto with `template.yaml` provisioned, probes on the updates topic, and the processor built
/// from its environment as the template declares it.
pub struct MotoProcessor {
    pub aws: LocalAws,
    pub config: ProcessorConfig,
    pub deps: AwsDeps,
    pub updates: Probe,
}

impl MotoProcessor {
    pub async fn start() -> Self {
        // The samples' visitor signs in with her e-mail address as Matomo userId.
        let aws = LocalAws::start(&[("MatomoUserIdAsEmail", "true")]).await.unwrap();
        let env = aws.stack.function_env("ProcessorFunction").unwrap();
        let config = ProcessorConfig::from_env(&env).unwrap();
        let sdk = &aws.sdk;
        let deps = config.aws_deps(sdk);
        let updates = Probe::subscribe(sdk, &config.updates_topic_arn, "updates-probe").await.unwrap();
        Self { aws, config, deps, updates }
    }

    /// A processor on this moto's customer table with `registry`, its notifications and dead
    /// letters kept in memory (for tests about the table, not the bus).
    pub fn table_only(&self, registry: Registry) -> Deps<DynamoDbCustomers, InMemoryPublisher, InMemoryDeadLetters> {
        Deps {
            processor: Processor {
                registry,
                store: DynamoDbCustomers::new(aws::dynamodb_client(&self.aws.sdk), &self.config.customer_table),
                updates: InMemoryPublisher::default(),
                commit_attempts: self.config.commit_attempts,
            },
            dead_letters: InMemoryDeadLetters::default(),
        }
    }

    /// A new table with the customer table's keys, as the template declares them.
    pub async fn table_like_customers(&self, name: &str) -> String {
        use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement};
        let client = aws::dynamodb_client(&self.aws.sdk);
        let described = client.describe_table().table_name(&self.config.customer_table).send().await.unwrap();
        let table = described.table.unwrap();
        let mut create = client.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
        for key in table.key_schema() {
            create = create.key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key.attribute_name())
                    .key_type(key.key_type().clone())
                    .build()
                    .unwrap(),
            );
        }
        for attribute in table.attribute_definitions() {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute.attribute_name())
                    .attribute_type(attribute.attribute_type().clone())
                    .build()
                    .unwrap(),
            );
        }
        create.send().await.unwrap();
        name.to_string()
    }

    /// The processor over `table` instead of the template's customer table.
    pub fn processor_on(&self, table: &str) -> Processor<DynamoDbCustomers, SnsPublisher> {
        let sdk = &self.aws.sdk;
        Processor {
            registry: self.config.registry(),
            store: DynamoDbCustomers::new(aws::dynamodb_client(sdk), table),
            updates: SnsPublisher::new(aws::sns_client(sdk), &self.config.updates_topic_arn),
            commit_attempts: self.config.commit_attempts,
        }
    }

    /// Every item of the customer table, by `(pk, sk)`.
    pub async fn items(&self) -> Vec<(String, String)> {
        let client = aws::dynamodb_client(&self.aws.sdk);
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let output = client
                .scan()
                .table_name(&self.config.customer_table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in output.items.unwrap_or_default() {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                keys.push((text("pk"), text("sk")));
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }
}

/// Six events about one person from four sources, exercising every merge policy; `tag` makes
/// their ids and identities unique so that many runs can share one table.
pub fn six_events(tag: &str) -> Vec<CanonicalEvent> {
    use serde_json::json;
    let email = format!("ada{tag}@example.com");
    let invoice = |amount: i64| {
        json!({"type": "invoice.paid", "data": {"object": {"object": "invoice", "customer": format!("cus{tag}"),
            "customer_email": email, "customer_name": "Ada Lovelace", "amount_paid": amount, "currency": "eur"}}})
    };
    let visit = |id: &str, time: &str, goal: &str| json!({"visit_id": id, "site_id": 1, "time": time, "user_id": email, "goals": [goal], "actions": 3});
    let stripe = Some(Subject::external("stripe", &format!("cus{tag}")));
    vec![
        event(
            &format!("lead1{tag}"),
            "lead.upserted",
            None,
            "2025-01-01T10:00:00Z",
            json!({"id": format!("L{tag}"), "nom": "Ada", "email": email, "date_prise_contact": "2025-01-01", "statut": "contacte"}),
        ),
        event(
            &format!("lead2{tag}"),
            "lead.upserted",
            None,
            "2025-01-05T10:00:00Z",
            // A lead version is the whole lead: the first one's contact date is still there.
            json!({"id": format!("L{tag}"), "nom": "Ada L.", "email": email, "date_prise_contact": "2025-01-01",
                "date_appel_booke": "2025-01-05", "statut": "appel_booke"}),
        ),
        event(&format!("pay1{tag}"), "stripe.invoice.paid", stripe.clone(), "2025-01-02T10:00:00Z", invoice(2000)),
        event(&format!("pay2{tag}"), "stripe.invoice.paid", stripe, "2025-01-04T10:00:00Z", invoice(500)),
        event(
            &format!("visit1{tag}"),
            "matomo.visit",
            None,
            "2024-12-30T10:00:00Z",
            visit("1", "2024-12-30T10:00:00Z", "Newsletter"),
        ),
        event(
            &format!("visit2{tag}"),
            "matomo.visit",
            None,
            "2025-01-06T10:00:00Z",
            visit("2", "2025-01-06T10:00:00Z", "Demo booked"),
        ),
    ]
}

/// Every order of `items` (Heap's algorithm).
pub fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    fn heap<T: Clone>(k: usize, items: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
        if k <= 1 {
            out.push(items.clone());
            return;
        }
        heap(k - 1, items, out);
        for i in 0..k - 1 {
            if k.is_multiple_of(2) {
                items.swap(i, k - 1)
            } else {
                items.swap(0, k - 1)
            }
            heap(k - 1, items, out);
        }
    }
    let mut out = Vec::new();
    heap(items.len(), &mut items.to_vec(), &mut out);
    out
}
