//! `make load`: the demo's stack under volume. Signed Stripe deliveries (one new customer each) and
//! lead batches through the ingestion API, then everything they cause (processor, integrator, lake
//! writer) until the stack is idle; reports events/s end to end and the memory of every process,
//! sampled while it runs, so that growth with the number of customers shows.

use crate::demo::{Demo, Ports, post, secret};
use crate::dispatch::FunctionStats;
use crate::functions::{cpu_seconds, resident_memory_kib};
use futures::{FutureExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tributary_testing::senders::stripe_signature_header;

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct LoadPlan {
    /// Stripe `customer.created` deliveries, each a new customer.
    pub deliveries: usize,
    /// Leads posted to the ingestion API, each a new customer, in requests of `batch` leads.
    pub leads: usize,
    pub batch: usize,
    /// Deliveries in flight at once (a sender's retry workers).
    pub senders: usize,
    /// Processes of each function Lambda invokes per event or request (webhook, processor,
    /// integrator, API, aggregator): Lambda would run that many execution environments at once.
    pub instances: usize,
}

impl LoadPlan {
    /// `--deliveries N --leads N --batch N --senders N --instances N`, each optional.
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let mut plan = Self { deliveries: 2_000, leads: 2_000, batch: 1_000, senders: 4, instances: 2 };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a number"))?;
            let number: usize = value.parse().map_err(|_| format!("{flag} {value}: not a number"))?;
            match flag.as_str() {
                "--deliveries" => plan.deliveries = number,
                "--leads" => plan.leads = number,
                "--batch" if (1..=1_000).contains(&number) => plan.batch = number,
                "--batch" => return Err("--batch takes 1 to 1000 leads (the ingestion API's limit)".into()),
                "--senders" if number > 0 => plan.senders = number,
                "--senders" => return Err("--senders takes at least 1".into()),
                "--instances" if (1..=16).contains(&number) => plan.instances = number,
                "--instances" => return Err("--instances takes 1 to 16 processes per function".into()),
                other => {
                    return Err(format!(
                        "unknown argument {other}: use --deliveries, --leads, --batch, --senders, --instances"
                    ));
                }
            }
        }
        Ok(plan)
    }

    pub fn events(&self) -> usize {
        self.deliveries + self.leads
    }
}

/// Memory of every process over the run (KiB): first sample, peak, last sample.
#[derive(Debug, Default, Clone)]
struct MemoryTrack {
    first: u64,
    peak: u64,
    last: u64,
    /// (events processed, RSS) every sample, to show growth against customers.
    curve: Vec<(u64, u64)>,
    /// CPU seconds used, at the first sample and the last.
    cpu_first: f64,
    cpu_last: f64,
}

/// Runs `plan` against a fresh demo stack (free ports) and returns the report.
pub async fn run(plan: LoadPlan) -> Result<String, String> {
    let started = Instant::now();
    let mut demo = Demo::start(Ports::free(), plan.instances).await?;
    let outcome = drive(&demo, plan).await;
    let still_bound = demo.stop();
    let report = outcome?;
    if !still_bound.is_empty() {
        return Err(format!("ports still bound after stopping: {still_bound:?}"));
    }
    Ok(format!("{report}\n(whole run, stack start and stop included: {:.0} s)", started.elapsed().as_secs_f64()))
}

async fn drive(demo: &Demo, plan: LoadPlan) -> Result<String, String> {
    let dispatcher = demo.dispatcher()?;
    let stats = |id: &str| dispatcher.stats.get(id).cloned().ok_or(format!("no dispatcher stats for {id}"));
    let (processor, lake_writer) = (stats("ProcessorFunction")?, stats("LakeWriterFunction")?);
    let mut processes = demo.processes();
    // This process too: it sends, and its dispatcher polls the queues and invokes, as Lambda would.
    processes.push(("load (dispatcher)".to_string(), std::process::id()));
    let http = reqwest::Client::new();
    // moto's request times from here on, not the stack's provisioning.
    if let Some(endpoint) = demo.moto_endpoint() {
        let url = format!("{endpoint}/_tributary/request-times");
        if let Err(error) = http.delete(&url).send().await {
            eprintln!("  ! {url}: {error}");
        }
    }
    let memory: Arc<Mutex<BTreeMap<String, MemoryTrack>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let sampler = tokio::spawn(sample(
        processes,
        Arc::clone(&memory),
        Arc::clone(&processor),
        Arc::clone(&lake_writer),
        Arc::clone(&sent),
        began,
    ));

    let webhook = demo.client("WebhookFunction")?;
    let api = demo.client("ApiFunction")?.url();
    let stripe_secret = secret("/tributary/stripe-signing-secret")?;
    let bearer = format!("Bearer {}", demo.api_key());
    let run_id = jiff::Timestamp::now().as_second();

    // Deliveries and lead batches are sent at the same time, as a day's traffic mixes them: the
    // stack is offered more than it takes, so the rate end to end is the stack's, not the senders'
    // (sent one after the other, the deliveries alone came slower than the stack processed them).
    // Deliveries: `senders` at a time, each answer checked (202 for a new event).
    let refused = AtomicU64::new(0);
    let deliveries = futures::stream::iter(0..plan.deliveries)
        .for_each_concurrent(plan.senders, |index| {
            let (http, webhook, stripe_secret, sent, refused) = (&http, &webhook, &stripe_secret, &sent, &refused);
            async move {
                let now = jiff::Timestamp::now().as_second();
                let body = json!({"id": format!("evt_load_{run_id}_{index}"), "object": "event",
                    "type": "customer.created", "created": now,
                    "data": {"object": {"object": "customer", "id": format!("cus_load_{run_id}_{index}"),
                    "email": format!("load.{run_id}.{index}@example.com"), "name": format!("Load Customer {index}")}}})
                .to_string();
                let signature = stripe_signature_header(stripe_secret, now, body.as_bytes());
                let answer = post(
                    http,
                    &format!("{}/webhooks/stripe", webhook.url()),
                    &body,
                    &[("stripe-signature", &signature)],
                )
                .await;
                match answer {
                    Ok((202, _)) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, body)) => {
                        eprintln!("  ! delivery {index}: {status} {body}");
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        eprintln!("  ! delivery {index}: {error}");
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .map(|()| began.elapsed());

    // Lead batches: one request after another, as a nightly export would send them.
    let lead_batches = async {
        let mut ingestion_times = Vec::new();
        for (number, first) in (0..plan.leads).step_by(plan.batch).enumerate() {
            let leads: Vec<Value> = (first..(first + plan.batch).min(plan.leads))
                .map(|index| {
                    json!({"id": format!("load-{run_id}-{index}"), "nom": format!("Load Lead {index}"),
                        "email": format!("lead.{run_id}.{index}@example.com"), "statut": "nouveau",
                        "date_prise_contact": "2026-10-05"})
                })
                .collect();
            let key = format!("load-{run_id}-{number}");
            let request = Instant::now();
            let count = leads.len() as u64;
            let (status, body) = post(
                &http,
                &format!("{api}/api/v1/ingestion/leads"),
                &Value::Array(leads).to_string(),
                &[("authorization", &bearer), ("idempotency-key", &key)],
            )
            .await?;
            if status != 202 {
                return Err(format!("lead batch {number}: {status} {body}"));
            }
            ingestion_times.push(request.elapsed());
            sent.fetch_add(count, Ordering::Relaxed);
        }
        Ok::<_, String>(ingestion_times)
    };
    let (deliveries_sent, ingestion_times) = tokio::join!(deliveries, lead_batches);
    let ingestion_times = ingestion_times?;
    let all_sent = began.elapsed();

    dispatcher.wait_until_idle(Duration::from_secs(3_600)).await?;
    let idle = began.elapsed();
    sampler.abort();
    // A figure of the report only: without it (a MOTO_SERVER that does not time its requests)
    // the run still reports the rest.
    let moto_times = match demo.moto_endpoint() {
        Some(endpoint) => Some(moto_request_times(&http, &endpoint).await.unwrap_or_else(|e| format!("  ({e})\n"))),
        None => None,
    };

    let sent = sent.load(Ordering::Relaxed);
    let (_, processed, processor_failures) = processor.snapshot();
    let (_, lake_records, lake_failures) = lake_writer.snapshot();
    let failures: u64 = dispatcher.stats.values().map(|s| s.snapshot().2).sum();
    let mut report = String::new();
    let rate = |count: u64, time: Duration| count as f64 / time.as_secs_f64().max(0.001);
    let _ = writeln!(
        report,
        "load: {} deliveries ({} senders), {} leads in requests of {}, {} process(es) per function invoked per event",
        plan.deliveries, plan.senders, plan.leads, plan.batch, plan.instances
    );
    let _ =
        writeln!(report, "  accepted {sent} of {} events; refused {}", plan.events(), refused.load(Ordering::Relaxed));
    let accepted_deliveries = (plan.deliveries as u64).saturating_sub(refused.load(Ordering::Relaxed));
    let _ = writeln!(
        report,
        "  webhook: {accepted_deliveries} deliveries accepted in {:.1} s = {:.1} deliveries/s",
        deliveries_sent.as_secs_f64(),
        rate(accepted_deliveries, deliveries_sent)
    );
    if !ingestion_times.is_empty() {
        let total: Duration = ingestion_times.iter().sum();
        let slowest = ingestion_times.iter().max().copied().unwrap_or_default();
        let _ = writeln!(
            report,
            "  ingestion API: {} requests, {:.2} s each on average, slowest {:.2} s",
            ingestion_times.len(),
            total.as_secs_f64() / ingestion_times.len() as f64,
            slowest.as_secs_f64()
        );
    }
    let _ = writeln!(
        report,
        "  end to end (first send → every event processed and in the lake): {} events in {:.1} s = {:.1} events/s",
        sent,
        idle.as_secs_f64(),
        rate(sent, idle)
    );
    let _ = writeln!(
        report,
        "  processor: {processed} records ({processor_failures} failed); lake writer: {lake_records} records ({lake_failures} failed); all sent by {:.1} s",
        all_sent.as_secs_f64()
    );
    let _ = writeln!(report, "  failed invocations after retries, all functions: {failures}");
    let _ = writeln!(
        report,
        "  memory (RSS, MiB): first sample → peak → last, the RSS at each quarter of the events processed; CPU used during the run, per event"
    );
    let memory = memory.lock().map_err(|_| "memory samples poisoned")?.clone();
    let mib = |kib: u64| kib as f64 / 1024.0;
    for (name, track) in &memory {
        let quarters: Vec<String> = (1..=4)
            .map(|quarter| {
                let mark = sent * quarter / 4;
                track
                    .curve
                    .iter()
                    .find(|(done, _)| *done >= mark)
                    .or(track.curve.last())
                    .map_or("-".into(), |(_, rss)| format!("{:.0}", mib(*rss)))
            })
            .collect();
        let cpu = (track.cpu_last - track.cpu_first).max(0.0);
        let _ = writeln!(
            report,
            "    {name:<17} {:>7.1} → {:>7.1} → {:>7.1}   quarters {:<19}  CPU {cpu:>6.1} s = {:>5.1} ms/event",
            mib(track.first),
            mib(track.peak),
            mib(track.last),
            quarters.join(" / "),
            1000.0 * cpu / sent.max(1) as f64
        );
    }
    if let Some(times) = moto_times {
        let _ = write!(report, "{times}");
    }
    if sent < plan.events() as u64 {
        return Err(format!("{report}not every delivery was accepted (see the lines above)"));
    }
    if processed < sent || lake_records < sent || failures > 0 {
        return Err(format!("{report}not every event was processed and written to the lake"));
    }
    Ok(report)
}

/// Every second: the RSS of every process against the events processed so far; every 10 s a line.
async fn sample(
    processes: Vec<(String, u32)>,
    memory: Arc<Mutex<BTreeMap<String, MemoryTrack>>>,
    processor: Arc<FunctionStats>,
    lake_writer: Arc<FunctionStats>,
    sent: Arc<AtomicU64>,
    began: Instant,
) {
    let mut tick = 0u64;
    loop {
        let processed = processor.snapshot().1;
        if let Ok(mut memory) = memory.lock() {
            for (name, pid) in &processes {
                let (Some(rss), Some(cpu)) = (resident_memory_kib(*pid), cpu_seconds(*pid)) else { continue };
                let track = memory.entry(name.clone()).or_default();
                if track.curve.is_empty() {
                    track.first = rss;
                    track.cpu_first = cpu;
                }
                track.cpu_last = cpu;
                track.peak = track.peak.max(rss);
                track.last = rss;
                track.curve.push((processed, rss));
            }
            if tick.is_multiple_of(10) {
                let rss = |name: &str| memory.get(name).map_or(0, |t| t.last) / 1024;
                let (moto, dynamodb) = (rss("moto"), rss("moto-dynamodb"));
                println!(
                    "[{:>5.0}s] sent {:>6}  processed {:>6}  in the lake {:>6}  moto {moto} + {dynamodb} MiB (its DynamoDB)",
                    began.elapsed().as_secs_f64(),
                    sent.load(Ordering::Relaxed),
                    processed,
                    lake_writer.snapshot().1,
                );
            }
        }
        tick += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// moto's busiest actions over the run (`GET /_tributary/request-times` of `scripts/moto-server.py`):
/// requests, the mean time to answer one, and of that the mean time waiting for the lock that
/// serialises conditional S3 writes (DynamoDB's requests queue for moto's DynamoDB process instead,
/// within their time to answer).
async fn moto_request_times(http: &reqwest::Client, endpoint: &str) -> Result<String, String> {
    let url = format!("{endpoint}/_tributary/request-times");
    let times: BTreeMap<String, Value> = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut rows: Vec<(String, u64, f64, f64)> = times
        .into_iter()
        .map(|(action, time)| {
            let count = time["count"].as_u64().unwrap_or(0);
            let seconds = time["seconds"].as_f64().unwrap_or(0.0);
            let waiting = time["waiting_for_lock_seconds"].as_f64().unwrap_or(0.0);
            (action, count, seconds, waiting)
        })
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut text = String::from(
        "  moto's busiest actions: requests, mean time to answer (of which waiting for its lock); \
                      ReceiveMessage's include its long polls' waits for a message\n",
    );
    for (action, count, seconds, waiting) in rows.iter().take(10) {
        let per = |total: f64| 1000.0 * total / (*count).max(1) as f64;
        let _ = writeln!(text, "    {action:<28} {count:>7}  {:>7.1} ms  ({:.1} ms)", per(*seconds), per(*waiting));
    }
    Ok(text)
}
