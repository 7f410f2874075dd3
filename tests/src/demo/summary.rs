//! What came out: the summary the demo prints, and what to try next.

use super::*;

impl Demo {
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
        let crm = get_json(&http, &format!("{}/crm/contacts", self.sources_url), "CRM").await?;
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
    pub(super) async fn download_report(&self, report: &Value) -> Result<String, String> {
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
             \x20 curl -s -H 'authorization: Bearer {key}' '{api}/api/v1/failures'\n\
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
pub(super) fn counts_table(rows: &Value, bucket: &str) -> String {
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
