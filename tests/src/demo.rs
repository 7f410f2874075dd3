//! `make demo`: the whole pipeline on this machine. moto with every resource of `template.yaml`,
//! local Matomo, Notion and CRM servers over the demo data of `tests/demo/`, every function as its
//! real Lambda binary behind a local Runtime API (built beside the demo's own binary), the event sources played by [`Dispatcher`]; then
//! sample deliveries, both pulls, and a summary. `--check` compares the summary with
//! `tests/demo/expected.json` and stops; otherwise the stack stays up until Ctrl-C.

use crate::dispatch::Dispatcher;
use crate::functions::{FunctionClient, FunctionProcess, FunctionSpec, function_env};
use crate::local_lambda::binary_dir;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tributary_testing::senders::{standard_webhooks_signature, stripe_signature_header};
use tributary_testing::{
    Moto, Stack, Template, free_port, put_demo_secrets, put_secrets, sdk_config_for, workspace_root,
};

/// The Standard Webhooks sender the demo configures (its secret is in `events/local-secrets.json`).
pub const DEMO_SOURCES: &str =
    r#"[{"name":"acme","secret_param":"/tributary/webhook-sources/acme","subject_field":"data.email"}]"#;
const INTEGRATIONS_PARAM: &str = "/tributary/integrations";
/// The month of the demo data, for the monthly report.
const REPORT_MONTH: &str = "2026-10";

/// Where the demo listens. `check` takes free ports so that it never collides with a running demo.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub moto: u16,
    /// The first function's port; the others follow.
    pub functions: u16,
    pub sources: u16,
}

impl Ports {
    fn from_env(name: &str, default: u16) -> Result<u16, String> {
        match std::env::var(name) {
            Ok(value) => value.parse().map_err(|_| format!("{name}={value} is not a port number")),
            Err(_) => Ok(default),
        }
    }

    /// The ports a person types: moto 5000, functions from 9001, sources 8900.
    pub fn well_known() -> Result<Self, String> {
        Ok(Self {
            moto: Self::from_env("MOTO_PORT", 5000)?,
            functions: Self::from_env("LAMBDA_PORT", 9001)?,
            sources: Self::from_env("SOURCES_PORT", 8900)?,
        })
    }

    pub fn free() -> Result<Self, String> {
        let free = || free_port().map_err(|e| e.to_string());
        Ok(Self { moto: free()?, functions: 0, sources: free()? })
    }
}

pub fn state_dir() -> PathBuf {
    workspace_root().join(".local")
}

/// A value of `events/local-secrets.json`: a secret (`/tributary/…`) or the demo API key (`_api_key`).
pub fn secret(key: &str) -> Result<String, String> {
    let secrets = read_json(workspace_root().join("events/local-secrets.json"))?;
    secrets[key].as_str().map(str::to_string).ok_or(format!("events/local-secrets.json has no {key}"))
}

/// Elapsed time for progress lines.
struct Clock(Instant);

impl Clock {
    fn say(&self, message: impl AsRef<str>) {
        println!("[{:>5.1}s] {}", self.0.elapsed().as_secs_f64(), message.as_ref());
    }
}

/// Everything the demo started, stopped in reverse order.
pub struct Demo {
    moto: Option<Moto>,
    sources: Option<Child>,
    functions: Vec<FunctionProcess>,
    dispatcher: Option<Dispatcher>,
    ports: Vec<u16>,
    sdk: aws_config::SdkConfig,
    stack: Stack,
    sources_url: String,
    expected: Value,
    api_key: String,
    clock: Clock,
}

pub fn read_json(path: PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn demo_data_dir() -> PathBuf {
    workspace_root().join("tests/demo")
}

impl Demo {
    /// Starts everything; on failure, stops what was started.
    pub async fn start(ports: Ports) -> Result<Self, String> {
        let clock = Clock(Instant::now());
        let expected = read_json(demo_data_dir().join("expected.json"))?;
        let api_key = secret("_api_key")?;

        clock.say(format!("starting moto on 127.0.0.1:{}", ports.moto));
        let moto = Moto::start_on(ports.moto).await.map_err(|e| e.to_string())?;
        let sdk = sdk_config_for(&moto.endpoint()).await;

        let (sources, sources_port) = start_sources(ports.sources)?;
        let sources_url = format!("http://127.0.0.1:{sources_port}");
        clock.say(format!("Matomo, Notion and CRM servers over tests/demo/ on {sources_url}"));

        let text = |key: &str| expected[key].as_str().map(str::to_string).ok_or(format!("expected.json: no {key}"));
        let page_size = expected["page_size"].to_string();
        let parameters = [
            ("WebhookSources", DEMO_SOURCES.to_string()),
            ("AttributeSources", "make,acme".to_string()),
            // The demo site sets userId only for signed-in visitors: their visits meet their record.
            ("MatomoUserIdAsEmail", "true".to_string()),
            ("IntegrationsParameter", INTEGRATIONS_PARAM.to_string()),
            ("MatomoUrl", format!("{sources_url}/matomo/")),
            ("MatomoSiteIds", "1,2".to_string()),
            ("MatomoStartDate", text("first_day")?),
            ("MatomoPageSize", page_size),
            ("NotionDatabaseIds", text("notion_database")?),
        ];
        let parameters: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let template = Template::workspace().map_err(|e| e.to_string())?;
        let stack =
            Stack::provision(&sdk, template, "tributary-local", &parameters).await.map_err(|e| e.to_string())?;
        put_demo_secrets(&sdk).await.map_err(|e| e.to_string())?;
        let integrations = json!({
            "allowed_hosts": ["127.0.0.1"],
            "integrations": [{
                "name": "demo-crm",
                "url": format!("{sources_url}/crm/contacts"),
                "on_fields": ["identity.", "lead.statut", "billing.last_payment"],
                "body": {"id": "$customer_id", "version": "$version", "email": "identity.email",
                         "nom": "identity.nom", "statut": "lead.statut"},
                "auth": {"header": "Authorization", "secret_param": "/tributary/integrations/crm-token", "prefix": "Bearer "}
            }]
        })
        .to_string();
        put_secrets(&sdk, &[(INTEGRATIONS_PARAM, &integrations)]).await.map_err(|e| e.to_string())?;
        let resources = stack.template.resources().count();
        clock.say(format!("provisioned the {resources} resources of template.yaml in moto, demo secrets in SSM"));

        let mut demo = Self {
            moto: Some(moto),
            sources: Some(sources),
            functions: Vec::new(),
            dispatcher: None,
            ports: vec![ports.moto, sources_port],
            sdk,
            stack,
            sources_url,
            expected,
            api_key,
            clock,
        };
        if let Err(error) = demo.start_functions(ports).await {
            demo.stop();
            return Err(error);
        }
        Ok(demo)
    }

    async fn start_functions(&mut self, ports: Ports) -> Result<(), String> {
        let specs = FunctionSpec::all(&self.stack.template)?;
        let binaries = binary_dir()?;
        let moto = self.moto.as_ref().map(Moto::endpoint).unwrap_or_default();
        let mut clients = HashMap::new();
        for (index, spec) in specs.iter().enumerate() {
            let port = if ports.functions == 0 { 0 } else { ports.functions + index as u16 };
            let mut env = function_env(&self.stack, &spec.logical_id, &moto)?;
            // The template points the puller at api.notion.com; the demo's Notion is local.
            if env.contains_key("NOTION_URL") {
                env.insert("NOTION_URL".into(), format!("{}/notion/", self.sources_url));
            }
            // The integrator refuses loopback targets unless told (SSRF guard); the CRM is local.
            if spec.logical_id == "IntegratorFunction" {
                env.insert("INTEGRATIONS_ALLOW_LOOPBACK".into(), "true".into());
            }
            let process = FunctionProcess::start(spec, port, env, &state_dir(), &binaries).await?;
            clients.insert(spec.logical_id.clone(), process.client.clone());
            self.ports.push(process.client.port);
            self.functions.push(process);
        }
        // Every bootstrap runs its init at once (as a cold start does); a function that cannot
        // start fails the demo here, with its log, rather than at its first invocation.
        for function in &self.functions {
            function.wait_until_ready(Duration::from_secs(60)).await?;
        }
        self.clock.say(format!(
            "{} functions started from {} (each its bootstrap behind a local Runtime API): {}",
            self.functions.len(),
            binaries.display(),
            self.functions.iter().map(|f| format!("{}:{}", f.spec.binary, f.client.port)).collect::<Vec<_>>().join(" ")
        ));
        let dispatcher = Dispatcher::start(&self.sdk, &self.stack, clients, Duration::from_secs(1)).await?;
        self.clock.say("dispatcher: SNS → processor, integrator; SNS → SQS → lake-writer; schedules on demand");
        self.dispatcher = Some(dispatcher);
        Ok(())
    }

    pub fn client(&self, logical_id: &str) -> Result<&FunctionClient, String> {
        self.functions
            .iter()
            .find(|f| f.spec.logical_id == logical_id)
            .map(|f| &f.client)
            .ok_or(format!("{logical_id} is not running"))
    }

    pub fn dispatcher(&self) -> Result<&Dispatcher, String> {
        self.dispatcher.as_ref().ok_or("the dispatcher is not running".to_string())
    }

    /// The sample deliveries, the lead batch, both pulls; returns what the run produced.
    pub async fn play(&self) -> Result<Run, String> {
        let mut run = Run::default();
        self.send_deliveries(&mut run).await?;
        for (schedule, job) in [("MatomoPull", "matomo"), ("NotionPull", "notion")] {
            self.pull(schedule, job, &mut run).await?;
        }
        self.clock.say("waiting for the events to reach the processor, the integrator and the lake");
        let progress = self.progress_ticker();
        let idle = self.dispatcher()?.wait_until_idle(Duration::from_secs(900)).await;
        progress.abort();
        idle?;
        self.say_progress();
        // The integrator's pushes follow the processor's updates: one more quiet period.
        self.dispatcher()?.wait_until_idle(Duration::from_secs(300)).await?;
        let report = self
            .client("AggregatorJobsFunction")?
            .invoke(&json!({"job": "monthly-report", "month": REPORT_MONTH}))
            .await?;
        if report.failed() {
            return Err(format!("the monthly report job failed: {}", report.body));
        }
        run.report = report.body;
        self.clock.say("monthly report and alerts written as xlsx (aggregator-jobs)");
        Ok(run)
    }

    async fn send_deliveries(&self, run: &mut Run) -> Result<(), String> {
        let webhook = self.client("WebhookFunction")?.url();
        let http = reqwest::Client::new();
        let star = self.expected["star_customer"].as_str().unwrap_or_default().to_string();
        let now = jiff::Timestamp::now().as_second();

        let stripe_secret = secret("/tributary/stripe-signing-secret")?;
        let customer_created = json!({"id": "evt_demo_customer", "object": "event", "type": "customer.created",
            "created": now - 60, "data": {"object": {"object": "customer", "id": "cus_demo_camille",
            "email": star, "name": "Camille Martin"}}})
        .to_string();
        let invoice_paid = json!({"id": "evt_demo_invoice", "object": "event", "type": "invoice.paid",
            "created": now - 30, "data": {"object": {"object": "invoice", "id": "in_demo_0001",
            "customer": "cus_demo_camille", "customer_email": star, "amount_paid": 4900, "currency": "eur"}}})
        .to_string();
        for (label, body) in [("Stripe customer.created", &customer_created), ("Stripe invoice.paid", &invoice_paid)] {
            let signature = stripe_signature_header(&stripe_secret, now, body.as_bytes());
            let answer =
                post(&http, &format!("{webhook}/webhooks/stripe"), body, &[("stripe-signature", &signature)]).await?;
            run.deliveries.push((label.to_string(), answer));
        }
        // Stripe retries a delivery it thinks failed: same event, accepted once.
        let signature = stripe_signature_header(&stripe_secret, now, invoice_paid.as_bytes());
        let answer =
            post(&http, &format!("{webhook}/webhooks/stripe"), &invoice_paid, &[("stripe-signature", &signature)])
                .await?;
        run.deliveries.push(("Stripe invoice.paid, delivered again".to_string(), answer));

        let acme = json!({"type": "subscription.activated", "timestamp": "2026-10-15T09:00:00Z",
            "data": {"email": star, "plan": "team", "seats": 5}})
        .to_string();
        let acme_signature = standard_webhooks_signature(
            &secret("/tributary/webhook-sources/acme")?,
            "msg_demo_0001",
            now,
            acme.as_bytes(),
        )
        .map_err(|_| "the demo acme secret is not a Standard Webhooks secret".to_string())?;
        let timestamp = now.to_string();
        let answer = post(
            &http,
            &format!("{webhook}/webhooks/acme"),
            &acme,
            &[
                ("webhook-id", "msg_demo_0001"),
                ("webhook-timestamp", &timestamp),
                ("webhook-signature", &acme_signature),
            ],
        )
        .await?;
        run.deliveries.push(("Standard Webhooks (acme) subscription.activated".to_string(), answer));

        let make = json!({"id": "exec-demo-0001", "type": "lead.enriched", "email": star,
            "company": "Martin & Fils", "employees": 12})
        .to_string();
        let answer = post(
            &http,
            &format!("{webhook}/webhooks/make"),
            &make,
            &[("x-make-token", &secret("/tributary/make-token")?)],
        )
        .await?;
        run.deliveries.push(("Make lead.enriched".to_string(), answer));

        let bearer = format!("Bearer {}", secret("/tributary/personnage-token")?);
        let answer = post(
            &http,
            &format!("{webhook}/webhook/personnage"),
            r#"{"nom":"Naruto","score":85}"#,
            &[("authorization", &bearer), ("idempotency-key", "demo-personnage-0001")],
        )
        .await?;
        run.deliveries.push(("personnage".to_string(), answer));
        let answer =
            post(&http, &format!("{webhook}/webhook/personnage"), r#"{"nom":"Naruto","score":85}"#, &[]).await?;
        run.deliveries.push(("personnage without its token".to_string(), answer));

        let leads = std::fs::read_to_string(demo_data_dir().join("api-leads.json")).map_err(|e| e.to_string())?;
        let api = self.client("ApiFunction")?.url();
        let bearer = format!("Bearer {}", self.api_key);
        let answer =
            post(&http, &format!("{api}/api/v1/ingestion/leads"), &leads, &[("authorization", &bearer)]).await?;
        run.deliveries.push(("lead batch, POST /api/v1/ingestion/leads".to_string(), answer));

        for (label, (status, body)) in &run.deliveries {
            self.clock.say(format!("delivery: {label} → {status} {body}"));
        }
        Ok(())
    }

    /// Runs a pull until it has nothing more to do, as its schedule would over several runs.
    async fn pull(&self, schedule: &str, job: &str, run: &mut Run) -> Result<(), String> {
        for _ in 0..20 {
            let report = self.dispatcher()?.trigger("PullerFunction", schedule).await?;
            for sync in report["runs"].as_array().into_iter().flatten() {
                self.clock.say(format!(
                    "pull {job} {}: {} pages, {} records, {} rejected, {} → {} ({})",
                    sync["scope"].as_str().unwrap_or("?"),
                    sync["pages"],
                    sync["records"],
                    sync["rejected"],
                    sync["watermark_before"].as_str().unwrap_or("start"),
                    sync["watermark_after"].as_str().unwrap_or("-"),
                    sync["outcome"]["status"].as_str().unwrap_or("?"),
                ));
                let totals = run.pulled.entry(job.to_string()).or_default();
                totals.0 += sync["pages"].as_u64().unwrap_or(0);
                totals.1 += sync["records"].as_u64().unwrap_or(0);
            }
            if report["more_to_do"] != true {
                return Ok(());
            }
        }
        Err(format!("the {job} pull still had more to do after 20 runs"))
    }

    fn progress_ticker(&self) -> tokio::task::JoinHandle<()> {
        let stats: Vec<(String, std::sync::Arc<crate::dispatch::FunctionStats>)> =
            self.dispatcher.iter().flat_map(|d| d.stats.iter().map(|(k, v)| (k.clone(), v.clone()))).collect();
        let started = self.clock.0;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                println!("[{:>5.1}s] {}", started.elapsed().as_secs_f64(), progress_line(&stats));
            }
        })
    }

    fn say_progress(&self) {
        let stats: Vec<_> =
            self.dispatcher.iter().flat_map(|d| d.stats.iter().map(|(k, v)| (k.clone(), v.clone()))).collect();
        self.clock.say(progress_line(&stats));
    }

    /// What a person wants to see after the run, read back through the functions' own APIs.
    pub async fn summary(&self, run: &Run) -> Result<Summary, String> {
        let http = reqwest::Client::new();
        let bearer = format!("Bearer {}", self.api_key);
        let aggregator = self.client("AggregatorFunction")?.url();
        let api = self.client("ApiFunction")?.url();
        let get = |url: String| {
            let http = http.clone();
            let bearer = bearer.clone();
            async move {
                let response = http
                    .get(&url)
                    .header("authorization", bearer)
                    .timeout(Duration::from_secs(120))
                    .send()
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                let status = response.status().as_u16();
                let body: Value = response.json().await.map_err(|e| format!("GET {url}: {e}"))?;
                if status != 200 {
                    return Err(format!("GET {url}: {status} {body}"));
                }
                Ok::<Value, String>(body)
            }
        };
        let by_week = get(format!("{aggregator}/api/v1/transformation/count_date_by_week")).await?;
        let by_month = get(format!("{aggregator}/api/v1/transformation/count_date_by_month")).await?;
        let alerts = get(format!("{aggregator}/api/v1/alerts")).await?;
        let status = get(format!("{aggregator}/api/v1/ingestion/status")).await?;
        let star = self.expected["star_customer"].as_str().unwrap_or_default();
        let customer = get(format!("{api}/api/v1/customers?email={star}")).await?;
        let customer_id = customer["id"].as_str().ok_or("the customer view has no id")?;
        let audit = get(format!("{api}/api/v1/customers/{customer_id}/audit?limit=50")).await?;
        let crm: Value = http
            .get(format!("{}/crm/contacts", self.sources_url))
            .send()
            .await
            .map_err(|e| format!("CRM: {e}"))?
            .json()
            .await
            .map_err(|e| format!("CRM: {e}"))?;
        let report_path = self.download_report(&run.report).await?;
        let stats = self
            .dispatcher()?
            .stats
            .iter()
            .map(|(name, stats)| (name.clone(), stats.snapshot()))
            .collect::<BTreeMap<_, _>>();
        Ok(Summary { by_week, by_month, alerts, status, customer, audit, crm, report_path, stats })
    }

    /// Copies the report's xlsx (its key in the reports bucket) out of moto's S3 into `.local/`,
    /// where a person can open it.
    async fn download_report(&self, report: &Value) -> Result<String, String> {
        let key = report["report"].as_str().ok_or(format!("the report job named no file: {report}"))?;
        let bucket = self.stack.physical("ReportsBucket").map_err(|e| e.to_string())?.name.clone();
        let s3 = tributary_aws::s3_client(&self.sdk);
        let object = s3.get_object().bucket(&bucket).key(key).send().await.map_err(|e| format!("{key}: {e:?}"))?;
        let bytes = object.body.collect().await.map_err(|e| format!("{key}: {e}"))?.into_bytes();
        let path = state_dir().join(key.rsplit('/').next().unwrap_or("monthly-report.xlsx"));
        std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(format!("s3://{bucket}/{key} (copied to {})", path.display()))
    }

    /// The URLs to try next, with the demo API key.
    pub fn next_steps(&self) -> String {
        let url = |id: &str| self.client(id).map(FunctionClient::url).unwrap_or_default();
        let moto = self.moto.as_ref().map(Moto::endpoint).unwrap_or_default();
        format!(
            "Try next (API key {key}):\n\
             \x20 curl -s -H 'authorization: Bearer {key}' '{agg}/api/v1/transformation/count_date_by_week?tz=Europe/Paris'\n\
             \x20 curl -s -H 'authorization: Bearer {key}' '{agg}/api/v1/reports/monthly?month={REPORT_MONTH}'\n\
             \x20 curl -s -H 'authorization: Bearer {key}' '{agg}/api/v1/alerts'\n\
             \x20 curl -s -H 'authorization: Bearer {key}' '{agg}/api/v1/ingestion/status'\n\
             \x20 curl -s -H 'authorization: Bearer {key}' '{api}/api/v1/customers?email={star}'\n\
             \x20 curl -i '{webhook}/webhook/personnage' -H 'content-type: application/json' \\\n\
             \x20      -H 'authorization: Bearer local-demo-personnage-token' -d '{{\"nom\":\"Sakura\",\"score\":91}}'\n\
             \x20 AWS (moto): export AWS_ENDPOINT_URL={moto} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\n\
             \x20 function logs (JSON lines): .local/<function>.log; the CRM's pushes: curl -s {sources}/crm/contacts\n",
            key = self.api_key,
            agg = url("AggregatorFunction"),
            api = url("ApiFunction"),
            webhook = url("WebhookFunction"),
            star = self.expected["star_customer"].as_str().unwrap_or_default(),
            sources = self.sources_url,
        )
    }

    /// Compares the run with `tests/demo/expected.json`; every difference is listed.
    pub fn check(&self, run: &Run, summary: &Summary) -> Result<String, String> {
        let expected = &self.expected;
        let mut problems = Vec::new();
        let mut expect = |what: &str, ok: bool, detail: String| {
            if !ok {
                problems.push(format!("{what}: {detail}"));
            }
        };
        let statuses: Vec<u16> = run.deliveries.iter().map(|(_, (status, _))| *status).collect();
        expect("delivery answers", statuses == [202, 202, 200, 202, 202, 202, 401, 202], format!("{statuses:?}"));
        expect(
            "weekly counts",
            summary.by_week == expected["count_by_week"],
            format!("got {} expected {}", summary.by_week, expected["count_by_week"]),
        );
        expect(
            "monthly counts",
            summary.by_month == expected["count_by_month"],
            format!("got {} expected {}", summary.by_month, expected["count_by_month"]),
        );
        let alerts: Vec<Value> = summary.alerts["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| json!({"rule": a["rule"], "lead_id": a["lead_id"]}))
            .collect();
        let mut want: Vec<Value> = expected["alerts"].as_array().cloned().unwrap_or_default();
        let mut got = alerts.clone();
        let key = |v: &Value| format!("{}|{}", v["rule"], v["lead_id"]);
        want.sort_by_key(key);
        got.sort_by_key(key);
        expect("alerts", got == want, format!("{} alerts, expected {}", got.len(), want.len()));
        let visits: u64 =
            expected["visits_by_site"].as_object().into_iter().flatten().filter_map(|(_, v)| v.as_u64()).sum();
        let table_rows = |name: &str| {
            summary.status["tables"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["table"] == name)
                .and_then(|t| t["rows"].as_u64())
                .unwrap_or(0)
        };
        expect(
            "visits in the lake",
            table_rows("matomo_visits") == visits,
            format!("{} of {visits}", table_rows("matomo_visits")),
        );
        let pulled_visits = run.pulled.get("matomo").map(|t| t.1).unwrap_or(0);
        expect("visits pulled", pulled_visits == visits, format!("{pulled_visits} of {visits}"));
        let notion = expected["notion_pages"].as_u64().unwrap_or(0);
        let pulled_leads = run.pulled.get("notion").map(|t| t.1).unwrap_or(0);
        expect("Notion leads pulled", pulled_leads == notion, format!("{pulled_leads} of {notion}"));
        let leads = expected["leads"].as_u64().unwrap_or(0);
        expect(
            "lead versions in the lake",
            table_rows("leads") == leads,
            format!("{} of {leads}", table_rows("leads")),
        );
        let fields = &summary.customer["fields"];
        let visit_count = fields["web.visit_count"]["value"].as_u64();
        expect(
            "the star customer's visits",
            visit_count == expected["star_visits"].as_u64(),
            format!("{visit_count:?}, expected {}", expected["star_visits"]),
        );
        for field in ["billing.stripe_customer", "billing.last_payment", "identity.telephone", "lead.statut"] {
            expect("the star customer's record", !fields[field].is_null(), format!("no {field}"));
        }
        let attributes = ["attributes.make.company", "attributes.acme.plan"];
        for field in attributes {
            expect("the star customer's attributes", !fields[field].is_null(), format!("no {field}"));
        }
        let pushes = summary.crm["pushes"].as_array().map(Vec::len).unwrap_or(0);
        expect("CRM pushes", pushes > 0, "none".into());
        for (function, (_, _, failures)) in &summary.stats {
            expect("failed invocations", *failures == 0, format!("{function}: {failures}"));
        }
        if problems.is_empty() {
            Ok(format!(
                "demo check passed: {} deliveries, {visits} visits and {notion} Notion leads pulled, {leads} leads \
                 in the lake, counts and {} alerts as expected, {pushes} CRM pushes",
                run.deliveries.len(),
                got.len()
            ))
        } else {
            Err(format!("demo check failed:\n  {}", problems.join("\n  ")))
        }
    }

    /// The smoke test of every sample in `events/`: each is sent to its function (the signed ones
    /// signed now) in the order of `events/answers.json`, and each answer must hold the fields
    /// that file gives (HTTP samples: the status code).
    pub async fn smoke(&self) -> Result<String, String> {
        let started = Instant::now();
        let dir = fresh_samples()?;
        let root = workspace_root();
        let answers = read_json(root.join("events/answers.json"))?;
        let answers = answers.as_array().ok_or("events/answers.json is not a list")?;
        let mut problems = Vec::new();
        for answer in answers {
            let (Some(sample), Some(function)) = (answer["sample"].as_str(), answer["function"].as_str()) else {
                return Err(format!("events/answers.json: bad entry {answer}"));
            };
            let event = read_json(dir.join(sample))?;
            let invocation = self.client(function)?.invoke(&event).await?;
            if invocation.failed() || !contains(&invocation.body, &answer["expect"]) {
                let mut got = invocation.body.to_string();
                got.truncate(300);
                problems.push(format!(
                    "{sample} → {function}: expected {}, got {} {got}",
                    answer["expect"], invocation.status
                ));
            }
        }
        // What the webhook samples published reaches the processor and the lake before the stop.
        self.dispatcher()?.wait_until_idle(Duration::from_secs(300)).await?;
        if problems.is_empty() {
            Ok(format!(
                "smoke test passed: the {} samples of events/ answered as events/answers.json says ({:.1} s)",
                answers.len(),
                started.elapsed().as_secs_f64()
            ))
        } else {
            Err(format!("smoke test failed:\n  {}", problems.join("\n  ")))
        }
    }

    /// Every process the demo started, by name: moto, the sources, each function's current one.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let mut processes = Vec::new();
        if let Some(moto) = &self.moto {
            processes.push(("moto".to_string(), moto.pid()));
        }
        if let Some(sources) = &self.sources {
            processes.push(("sources".to_string(), sources.id()));
        }
        processes.extend(self.functions.iter().map(|f| (f.spec.binary.clone(), f.pid())));
        processes
    }

    /// The demo's API key (`events/local-secrets.json`).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Stops the event sources (the stack stays up): nothing is delivered or polled any more.
    pub fn stop_dispatcher(&mut self) {
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.stop();
        }
    }

    /// The running functions.
    pub fn functions(&self) -> &[FunctionProcess] {
        &self.functions
    }

    /// moto's endpoint.
    pub fn moto_endpoint(&self) -> Option<String> {
        self.moto.as_ref().map(Moto::endpoint)
    }

    /// Peak resident memory (`VmHWM`) of each function process so far.
    pub fn peak_memory(&self) -> String {
        let peaks: Vec<String> = self
            .functions
            .iter()
            .filter_map(|f| f.peak_memory_kib().map(|kib| format!("{} {:.1} MiB", f.spec.binary, kib as f64 / 1024.0)))
            .collect();
        format!("peak RSS (VmHWM) per function process: {}", peaks.join(", "))
    }

    /// Stops every process the demo started and checks that no port it used is still bound.
    pub fn stop(&mut self) -> Vec<u16> {
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.stop();
        }
        for function in self.functions.drain(..) {
            function.stop();
        }
        if let Some(mut sources) = self.sources.take() {
            let _ = sources.kill();
            let _ = sources.wait();
        }
        drop(self.moto.take());
        std::thread::sleep(Duration::from_millis(300));
        self.ports.iter().copied().filter(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_err()).collect()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The samples of `events/` signed at the current time (`.local/events/`), as senders would send them now.
pub fn fresh_samples() -> Result<PathBuf, String> {
    let dir = state_dir().join("events");
    let status = Command::new("python3")
        .arg(workspace_root().join("scripts/generate-sample-events.py"))
        .args(["--now", "--out"])
        .arg(&dir)
        .status()
        .map_err(|e| format!("scripts/generate-sample-events.py: {e}"))?;
    if !status.success() {
        return Err(format!("scripts/generate-sample-events.py --now failed ({status})"));
    }
    Ok(dir)
}

/// Starts `scripts/demo-sources.py`; returns it and the port it listens on.
fn start_sources(port: u16) -> Result<(Child, u16), String> {
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    let python = if python.exists() { python } else { PathBuf::from("python3") };
    let mut child = Command::new(python)
        .arg(root.join("scripts/demo-sources.py"))
        .args(["--data", &demo_data_dir().to_string_lossy(), "--port", &port.to_string()])
        .args(["--matomo-token", &secret("/tributary/matomo-token")?])
        .args(["--notion-token", &secret("/tributary/notion-token")?])
        .args(["--crm-token", &secret("/tributary/integrations/crm-token")?])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting scripts/demo-sources.py: {e}"))?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    match line.trim().strip_prefix("listening on ").and_then(|p| p.parse().ok()) {
        Some(port) => Ok((child, port)),
        None => {
            let _ = child.kill();
            Err(format!("scripts/demo-sources.py did not start: {line}"))
        }
    }
}

/// Whether `answer` holds `expected`: every field of an expected object (recursively), else equal.
fn contains(answer: &Value, expected: &Value) -> bool {
    match expected {
        Value::Object(fields) => fields.iter().all(|(key, value)| contains(&answer[key], value)),
        other => answer == other,
    }
}

/// POSTs a JSON body; returns the status and the answer.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let mut request = http.post(url).header("content-type", "application/json").body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.timeout(Duration::from_secs(120)).send().await.map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| format!("POST {url}: {e}"))?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

fn progress_line(stats: &[(String, std::sync::Arc<crate::dispatch::FunctionStats>)]) -> String {
    let mut parts: Vec<String> = stats
        .iter()
        .filter_map(|(name, stats)| {
            let (invocations, records, failures) = stats.snapshot();
            (invocations > 0).then(|| {
                let name = name.trim_end_matches("Function");
                if failures > 0 {
                    format!("{name} {records} records in {invocations} invocations ({failures} failed)")
                } else {
                    format!("{name} {records} records in {invocations} invocations")
                }
            })
        })
        .collect();
    parts.sort();
    format!("progress: {}", parts.join(", "))
}

/// What `play` produced.
#[derive(Debug, Default)]
pub struct Run {
    pub deliveries: Vec<(String, (u16, Value))>,
    /// Per job: pages and records over all runs.
    pub pulled: BTreeMap<String, (u64, u64)>,
    pub report: Value,
}

pub struct Summary {
    pub by_week: Value,
    pub by_month: Value,
    pub alerts: Value,
    pub status: Value,
    pub customer: Value,
    pub audit: Value,
    pub crm: Value,
    pub report_path: String,
    pub stats: BTreeMap<String, (u64, u64, u64)>,
}

/// A table of counts: one row per bucket, a column per date.
fn counts_table(rows: &Value, bucket: &str) -> String {
    const COLUMNS: [(&str, &str); 5] = [
        ("date_prise_contact", "contact"),
        ("date_reponse_prospect", "answer"),
        ("date_appel_propose", "call proposed"),
        ("date_appel_booke", "call booked"),
        ("date_relance", "follow-up"),
    ];
    let mut out = format!("  {bucket:<9}");
    for (_, label) in COLUMNS {
        let _ = write!(out, " {label:>13}");
    }
    out.push('\n');
    for row in rows.as_array().into_iter().flatten() {
        let _ = write!(out, "  {:<9}", row[bucket].as_str().unwrap_or("?"));
        for (column, _) in COLUMNS {
            let _ = write!(out, " {:>13}", row[column].as_u64().unwrap_or(0));
        }
        out.push('\n');
    }
    out
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "\n=== Leads per week (UTC), GET /api/v1/transformation/count_date_by_week")?;
        write!(f, "{}", counts_table(&self.by_week, "semaine"))?;
        writeln!(f, "\n=== Leads per month (UTC), GET /api/v1/transformation/count_date_by_month")?;
        write!(f, "{}", counts_table(&self.by_month, "mois"))?;

        let customer = &self.customer;
        writeln!(f, "\n=== One customer, GET /api/v1/customers?email=… (version {})", customer["version"])?;
        writeln!(f, "  id {}", customer["id"].as_str().unwrap_or("?"))?;
        writeln!(f, "  identities {}", customer["identities"])?;
        for (field, value) in customer["fields"].as_object().into_iter().flatten() {
            writeln!(f, "  {field:<28} {}", value["value"])?;
        }
        writeln!(f, "  audit trail (newest first):")?;
        for entry in self.audit["items"].as_array().into_iter().flatten() {
            let changed: Vec<&str> =
                entry["changes"].as_array().into_iter().flatten().filter_map(|c| c["field"].as_str()).collect();
            let what = match entry["kind"].as_str() {
                Some("integration") => format!(
                    "push to {} → {}",
                    entry["integration"]["integration"].as_str().unwrap_or("?"),
                    entry["integration"]["outcome"].as_str().unwrap_or("?")
                ),
                _ => format!(
                    "{} from {}: {}",
                    entry["event_type"].as_str().unwrap_or("?"),
                    entry["source"].as_str().unwrap_or("?"),
                    changed.join(", ")
                ),
            };
            writeln!(f, "    v{:<3} {what}", entry["version"])?;
        }

        let alerts = self.alerts["alerts"].as_array().cloned().unwrap_or_default();
        let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
        for alert in &alerts {
            *by_rule.entry(alert["rule"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        }
        writeln!(
            f,
            "\n=== Alerts as of {}, GET /api/v1/alerts: {}",
            self.alerts["as_of"].as_str().unwrap_or("?"),
            alerts.len()
        )?;
        for (rule, count) in &by_rule {
            writeln!(f, "  {rule:<32} {count}")?;
        }
        for alert in alerts.iter().take(3) {
            writeln!(
                f,
                "  e.g. {} ({}): {}",
                alert["nom"].as_str().unwrap_or("?"),
                alert["rule"].as_str().unwrap_or("?"),
                alert["detail"].as_str().unwrap_or("")
            )?;
        }

        writeln!(f, "\n=== Lake tables, GET /api/v1/ingestion/status")?;
        for table in self.status["tables"].as_array().into_iter().flatten() {
            writeln!(
                f,
                "  {:<14} version {:<4} {:>6} rows in {} files",
                table["table"].as_str().unwrap_or("?"),
                table["version"],
                table["rows"],
                table["files"]
            )?;
        }
        writeln!(f, "\n=== Monthly report {REPORT_MONTH} (xlsx): {}", self.report_path)?;
        writeln!(
            f,
            "=== CRM pushes received from the integrator: {}",
            self.crm["pushes"].as_array().map(Vec::len).unwrap_or(0)
        )?;
        writeln!(f, "=== Invocations by the dispatcher (records, invocations, failed):")?;
        for (function, (invocations, records, failures)) in &self.stats {
            if *invocations > 0 {
                writeln!(f, "  {function:<24} {records:>5} {invocations:>5} {failures:>3}")?;
            }
        }
        Ok(())
    }
}
