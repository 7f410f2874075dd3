//! What Lambda's event sources do in AWS, done locally against moto, read from the functions'
//! `Events` in `template.yaml`:
//! - `SNS`: the topic delivers to a dispatch queue subscribed with the same filter policy; each
//!   message becomes an `SnsEvent` of one record, invoked asynchronously with the function's
//!   `MaximumRetryAttempts`;
//! - `SQS`: the queue is polled and its messages invoked as an `SqsEvent` of up to `BatchSize`
//!   records; records named in `batchItemFailures` stay on the queue, the others are deleted;
//! - `Schedule`: invoked on demand with the rule's `Input`, or the EventBridge scheduled event.
//!
//! The events are `aws_lambda_events` values, so the functions see AWS's shapes.

use crate::functions::FunctionClient;
use aws_config::SdkConfig;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::{SnsEvent, SnsMessage};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tributary_aws::describe;
use tributary_testing::{ACCOUNT_ID, REGION, Stack, create_queue, lambda_sqs_record};

/// Counters of one function's invocations by the dispatcher.
#[derive(Debug, Default)]
pub struct FunctionStats {
    pub invocations: AtomicU64,
    pub records: AtomicU64,
    /// Invocations that still failed after their retries, and SQS records reported failed.
    pub failures: AtomicU64,
    in_flight: AtomicI64,
}

impl FunctionStats {
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.invocations.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// A `Schedule` event of a function.
#[derive(Debug, Clone)]
pub struct ScheduleSource {
    pub function: String,
    pub name: String,
    pub expression: String,
    pub input: Option<Value>,
}

pub struct Dispatcher {
    sqs: aws_sdk_sqs::Client,
    /// Queues whose emptiness means "nothing more to deliver".
    queues: Vec<String>,
    pub stats: HashMap<String, Arc<FunctionStats>>,
    pub schedules: Vec<ScheduleSource>,
    functions: HashMap<String, FunctionClient>,
    retries: HashMap<String, u32>,
    tasks: Vec<JoinHandle<()>>,
}

fn resolved_text(stack: &Stack, value: &Value) -> Result<String, String> {
    match stack.resolve(value).map_err(|e| e.to_string())? {
        Value::String(text) => Ok(text),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("expected a scalar, got {other}")),
    }
}

/// The logical id inside `!GetAtt X.Arn`.
fn get_att_target(value: &Value) -> Option<&str> {
    value.get("Fn::GetAtt")?.as_array()?.first()?.as_str()
}

impl Dispatcher {
    /// Subscribes and starts polling for every SNS and SQS event source of `functions`.
    /// `batching_window_cap` shortens `MaximumBatchingWindowInSeconds` so a demo does not wait.
    pub async fn start(
        sdk: &SdkConfig,
        stack: &Stack,
        functions: HashMap<String, FunctionClient>,
        batching_window_cap: Duration,
    ) -> Result<Self, String> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let sns = aws_sdk_sns::Client::new(sdk);
        let mut dispatcher = Self {
            sqs: sqs.clone(),
            queues: Vec::new(),
            stats: HashMap::new(),
            schedules: Vec::new(),
            functions: functions.clone(),
            retries: HashMap::new(),
            tasks: Vec::new(),
        };
        for (logical_id, resource) in stack.template.resources_of_type("AWS::Serverless::Function") {
            let Some(function) = functions.get(logical_id) else { continue };
            let stats = Arc::new(FunctionStats::default());
            dispatcher.stats.insert(logical_id.to_string(), stats.clone());
            let properties = &resource["Properties"];
            let retries = match properties["EventInvokeConfig"].get("MaximumRetryAttempts") {
                Some(value) => resolved_text(stack, value)?.parse().map_err(|e| format!("{logical_id}: {e}"))?,
                None => 2, // Lambda's default for asynchronous invocations
            };
            dispatcher.retries.insert(logical_id.to_string(), retries);
            let Some(events) = properties["Events"].as_object() else { continue };
            for (name, event) in events {
                let source = &event["Properties"];
                match event["Type"].as_str() {
                    Some("SNS") => {
                        let topic_arn = resolved_text(stack, &source["Topic"])?;
                        let queue_name = format!("{}-dispatch-{logical_id}", stack.prefix);
                        let (queue_url, queue_arn) =
                            create_queue(&sqs, &queue_name).await.map_err(|e| e.to_string())?;
                        let mut subscribe = sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(&queue_arn);
                        if let Some(policy) = source.get("FilterPolicy") {
                            let policy = stack.resolve(policy).map_err(|e| e.to_string())?;
                            subscribe = subscribe.attributes("FilterPolicy", policy.to_string());
                        }
                        let subscription = subscribe
                            .send()
                            .await
                            .map_err(|e| format!("subscribing {logical_id} to {topic_arn}: {}", describe(&e)))?;
                        let subscription_arn = subscription.subscription_arn.unwrap_or_default();
                        dispatcher.queues.push(queue_url.clone());
                        let poller = SnsPoller {
                            sqs: sqs.clone(),
                            queue_url,
                            subscription_arn,
                            function: function.clone(),
                            stats: stats.clone(),
                            retries,
                        };
                        dispatcher.tasks.push(tokio::spawn(poller.run()));
                    }
                    Some("SQS") => {
                        let queue = get_att_target(&source["Queue"])
                            .ok_or(format!("{logical_id}.{name}: Queue is not !GetAtt <queue>.Arn"))?;
                        let physical = stack.physical(queue).map_err(|e| e.to_string())?;
                        let queue_url = physical.url.clone().ok_or(format!("{queue} has no URL"))?;
                        let batch_size: usize = match source.get("BatchSize") {
                            Some(value) => resolved_text(stack, value)?.parse().map_err(|e| format!("{name}: {e}"))?,
                            None => 10,
                        };
                        let window: u64 = match source.get("MaximumBatchingWindowInSeconds") {
                            Some(value) => resolved_text(stack, value)?.parse().map_err(|e| format!("{name}: {e}"))?,
                            None => 0,
                        };
                        let reports_failures = source["FunctionResponseTypes"]
                            .as_array()
                            .is_some_and(|types| types.iter().any(|t| t == "ReportBatchItemFailures"));
                        dispatcher.queues.push(queue_url.clone());
                        let poller = SqsPoller {
                            sqs: sqs.clone(),
                            queue_url,
                            queue_arn: physical.arn.clone(),
                            batch_size: batch_size.max(1),
                            window: Duration::from_secs(window).min(batching_window_cap),
                            reports_failures,
                            function: function.clone(),
                            stats: stats.clone(),
                        };
                        dispatcher.tasks.push(tokio::spawn(poller.run()));
                    }
                    Some("Schedule") => {
                        let input = match source.get("Input") {
                            Some(value) => {
                                let text = resolved_text(stack, value)?;
                                Some(serde_json::from_str(&text).map_err(|e| format!("{name}.Input: {e}"))?)
                            }
                            None => None,
                        };
                        dispatcher.schedules.push(ScheduleSource {
                            function: logical_id.to_string(),
                            name: name.clone(),
                            expression: resolved_text(stack, &source["Schedule"])?,
                            input,
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(dispatcher)
    }

    /// Invokes a schedule now, as EventBridge would when it fires; returns the function's answer.
    pub async fn trigger(&self, function: &str, schedule: &str) -> Result<Value, String> {
        let source = self
            .schedules
            .iter()
            .find(|s| s.function == function && s.name == schedule)
            .ok_or(format!("{function} has no schedule {schedule} in template.yaml"))?;
        let client = self.functions.get(function).ok_or(format!("{function} is not running"))?;
        let event = match &source.input {
            Some(input) => input.clone(),
            None => scheduled_event(&format!("{function}-{schedule}"))?,
        };
        let stats = self.stats.get(function).cloned().unwrap_or_default();
        stats.records.fetch_add(1, Ordering::Relaxed);
        let retries = self.retries.get(function).copied().unwrap_or(2);
        invoke_async(client, &event, retries, &stats).await.ok_or(format!("{function}: the {schedule} run failed"))
    }

    /// Waits until every dispatch and event-source queue is empty and nothing is being invoked
    /// (three looks in a row), or `timeout` passes.
    pub async fn wait_until_idle(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut quiet_looks = 0;
        while quiet_looks < 3 {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("deliveries still pending after {} s", timeout.as_secs()));
            }
            let mut pending = self.stats.values().map(|s| s.in_flight.load(Ordering::SeqCst)).sum::<i64>() as u64;
            // The queues are only asked once nothing is invoked, and no further than the first
            // that holds messages: moto counts a queue's messages one by one, and under load its
            // queues hold thousands.
            for queue_url in &self.queues {
                if pending > 0 {
                    break;
                }
                pending += queue_depth(&self.sqs, queue_url).await?;
            }
            quiet_looks = if pending == 0 { quiet_looks + 1 } else { 0 };
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        Ok(())
    }

    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The EventBridge "Scheduled Event" a rule without `Input` delivers.
fn scheduled_event(rule: &str) -> Result<Value, String> {
    let event: EventBridgeEvent = serde_json::from_value(json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": jiff::Timestamp::now().round(jiff::Unit::Second).map_err(|e| e.to_string())?.to_string(),
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}")],
        "detail": {}
    }))
    .map_err(|e| format!("scheduled event: {e}"))?;
    serde_json::to_value(event).map_err(|e| e.to_string())
}

/// Messages visible or in flight on the queue.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u64, String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| format!("queue attributes: {}", describe(&e)))?
        .attributes
        .unwrap_or_default();
    let count = |name: QueueAttributeName| attributes.get(&name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// An asynchronous invocation: the first try and up to `retries` more, as Lambda does for SNS and
/// EventBridge. `None` when every try failed (Lambda would then use the OnFailure destination).
async fn invoke_async(function: &FunctionClient, event: &Value, retries: u32, stats: &FunctionStats) -> Option<Value> {
    stats.in_flight.fetch_add(1, Ordering::SeqCst);
    let mut answer = None;
    for attempt in 0..=retries {
        stats.invocations.fetch_add(1, Ordering::Relaxed);
        match function.invoke(event).await {
            Ok(invocation) if !invocation.failed() => {
                answer = Some(invocation.body);
                break;
            }
            Ok(invocation) => {
                eprintln!("  ! {} failed (try {}): {}", function.binary, attempt + 1, invocation.body)
            }
            Err(error) => eprintln!("  ! {error} (try {})", attempt + 1),
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
    }
    if answer.is_none() {
        stats.failures.fetch_add(1, Ordering::Relaxed);
    }
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    answer
}

struct SnsPoller {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    subscription_arn: String,
    function: FunctionClient,
    stats: Arc<FunctionStats>,
    retries: u32,
}

impl SnsPoller {
    async fn run(self) {
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await;
            let messages = match received {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(error) => {
                    eprintln!("  ! dispatch to {}: {}", self.function.binary, describe(&error));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Counted in flight from receipt to deletion, so "idle" never misses them.
            let received = messages.len() as i64;
            self.stats.in_flight.fetch_add(received, Ordering::SeqCst);
            // As many at once as the function has processes (Lambda invokes SNS asynchronously, an
            // execution environment per concurrent event).
            let poller = &self;
            futures::stream::iter(&messages)
                .for_each_concurrent(self.function.instances(), |message| async move {
                    match poller.sns_event(message.body().unwrap_or_default()) {
                        Ok(event) => {
                            poller.stats.records.fetch_add(1, Ordering::Relaxed);
                            invoke_async(&poller.function, &event, poller.retries, &poller.stats).await;
                        }
                        Err(error) => eprintln!("  ! {error}"),
                    }
                })
                .await;
            // One request for the whole receive (at most ten), after every invocation ended.
            delete_messages(&self.sqs, &self.queue_url, &messages).await;
            self.stats.in_flight.fetch_sub(received, Ordering::SeqCst);
        }
    }

    /// The SNS notification the queue received, as the one-record `SnsEvent` Lambda would get.
    fn sns_event(&self, body: &str) -> Result<Value, String> {
        let message: SnsMessage =
            serde_json::from_str(body).map_err(|e| format!("not an SNS notification: {e}: {body}"))?;
        let event: SnsEvent = serde_json::from_value(json!({
            "Records": [{
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": self.subscription_arn,
                "Sns": message,
            }]
        }))
        .map_err(|e| format!("SnsEvent: {e}"))?;
        serde_json::to_value(event).map_err(|e| e.to_string())
    }
}

struct SqsPoller {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    batch_size: usize,
    window: Duration,
    reports_failures: bool,
    function: FunctionClient,
    stats: Arc<FunctionStats>,
}

impl SqsPoller {
    async fn run(self) {
        loop {
            let batch = self.gather().await;
            if batch.is_empty() {
                continue;
            }
            self.stats.in_flight.fetch_add(1, Ordering::SeqCst);
            self.deliver(batch).await;
            self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Up to `batch_size` messages, waiting at most the batching window once one has arrived.
    async fn gather(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let mut batch = Vec::new();
        let mut window_ends = None;
        while batch.len() < self.batch_size {
            let wait = if batch.is_empty() { 1 } else { 0 };
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages((self.batch_size - batch.len()).min(10) as i32)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .wait_time_seconds(wait)
                .send()
                .await;
            let messages = match received {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(error) => {
                    eprintln!("  ! poll {}: {}", self.function.binary, describe(&error));
                    break;
                }
            };
            let got = messages.len();
            batch.extend(messages);
            if batch.is_empty() {
                break;
            }
            let ends = *window_ends.get_or_insert_with(|| tokio::time::Instant::now() + self.window);
            if got == 0 {
                if tokio::time::Instant::now() >= ends {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        batch
    }

    async fn deliver(&self, batch: Vec<aws_sdk_sqs::types::Message>) {
        let records: Vec<Value> = batch.iter().map(|message| lambda_sqs_record(message, &self.queue_arn)).collect();
        let event =
            match serde_json::from_value::<SqsEvent>(json!({ "Records": records })).and_then(serde_json::to_value) {
                Ok(event) => event,
                Err(error) => {
                    eprintln!("  ! SqsEvent: {error}");
                    return;
                }
            };
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        self.stats.records.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let failed_ids: Vec<String> = match self.function.invoke(&event).await {
            Ok(invocation) if !invocation.failed() => match serde_json::from_value::<SqsBatchResponse>(invocation.body)
            {
                Ok(response) if self.reports_failures => {
                    response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
                }
                _ => Vec::new(),
            },
            // The whole batch failed: every message returns to the queue.
            Ok(invocation) => {
                eprintln!("  ! {} failed: {}", self.function.binary, invocation.body);
                batch.iter().filter_map(|m| m.message_id().map(str::to_string)).collect()
            }
            Err(error) => {
                eprintln!("  ! {error}");
                batch.iter().filter_map(|m| m.message_id().map(str::to_string)).collect()
            }
        };
        self.stats.failures.fetch_add(failed_ids.len() as u64, Ordering::Relaxed);
        let (failed, done): (Vec<_>, Vec<_>) =
            batch.iter().partition(|m| m.message_id().is_some_and(|id| failed_ids.iter().any(|f| f == id)));
        for message in failed {
            let Some(receipt) = message.receipt_handle() else { continue };
            // Lambda would leave it invisible for the queue's visibility timeout (720 s); the
            // demo makes it visible again at once, so retries and the redrive happen now.
            let request = self
                .sqs
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await;
            if let Err(error) = request {
                eprintln!("  ! settling a message of {}: {}", self.function.binary, describe(&error));
            }
        }
        // As Lambda's poller does, the handled ones in batches of ten (SQS's limit).
        for chunk in done.chunks(10) {
            delete_messages(&self.sqs, &self.queue_url, chunk).await;
        }
    }
}

/// Deletes `messages` (at most ten: one `DeleteMessageBatch`). One that is not deleted comes back
/// after the visibility timeout and is handled again: said, not fatal.
async fn delete_messages<M: std::borrow::Borrow<aws_sdk_sqs::types::Message>>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[M],
) {
    let entries: Vec<_> = messages
        .iter()
        .enumerate()
        .filter_map(|(index, message)| {
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .set_receipt_handle(message.borrow().receipt_handle().map(str::to_string))
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    match sqs.delete_message_batch().queue_url(queue_url).set_entries(Some(entries)).send().await {
        Ok(output) => {
            for failed in output.failed() {
                eprintln!("  ! deleting message {} from {queue_url}: {}", failed.id(), failed.code());
            }
        }
        Err(error) => eprintln!("  ! deleting from {queue_url}: {}", describe(&error)),
    }
}
