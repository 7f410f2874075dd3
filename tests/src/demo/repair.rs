//! The repair the demo shows: the CRM goes down, the pushes of three new customers fail into the
//! integrator's dead-letter queue, the failures route lists them, the CRM comes back, and one
//! re-drive call pushes each of them once.

use super::*;

/// Customers created while the CRM is down.
const REPAIR_CUSTOMERS: usize = 3;
pub(super) const QUEUE: &str = "integrator-dead-letters";

/// What the repair stage saw.
pub struct Repair {
    /// The failed pushes the failures route listed while the CRM was down.
    pub listed: Vec<Value>,
    /// The re-drive call's answer.
    pub redriven: Value,
    /// Messages left in the queue after the re-drive was handled.
    pub left: usize,
    /// Per idempotency key of a listed push: how many pushes the CRM took with it.
    pub taken: BTreeMap<String, usize>,
    /// Pushes the CRM answered 503 while down.
    pub refused: u64,
}

impl Demo {
    pub(super) async fn api_call(
        &self,
        http: &reqwest::Client,
        method: &str,
        path_and_query: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{path_and_query}", self.client("ApiFunction")?.url());
        let request = match method {
            "POST" => http.post(&url).json(&body.unwrap_or(Value::Null)),
            _ => http.get(&url),
        };
        let response = request
            .bearer_auth(&self.api_key)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| format!("{method} {path_and_query}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{method} {path_and_query}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{method} {path_and_query}: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{method} {path_and_query}: {e}"))
    }

    pub(super) async fn crm_outage(&self, http: &reqwest::Client, down: bool) -> Result<(), String> {
        let (status, answer) =
            post(http, &format!("{}/crm/_outage", self.sources_url), &json!({"down": down}).to_string(), &[]).await?;
        if status != 200 {
            return Err(format!("the CRM's outage switch answered {status} {answer}"));
        }
        Ok(())
    }

    pub(super) async fn failed_pushes(&self, http: &reqwest::Client) -> Result<Vec<Value>, String> {
        let listing = self.api_call(http, "GET", &format!("/api/v1/failures?queue={QUEUE}&limit=100"), None).await?;
        Ok(listing["queues"][0]["messages"].as_array().cloned().unwrap_or_default())
    }

    /// `count` new Stripe customers (`cus_demo_<tag>_<n>`), delivered and handled by every function.
    pub(super) async fn new_customers(&self, http: &reqwest::Client, tag: &str, count: usize) -> Result<(), String> {
        let webhook = self.client("WebhookFunction")?.url();
        let stripe_secret = secret("/tributary/stripe-signing-secret")?;
        let now = jiff::Timestamp::now().as_second();
        for n in 1..=count {
            let created = json!({"id": format!("evt_demo_{tag}_{n}"), "object": "event", "type": "customer.created",
                "created": now, "data": {"object": {"object": "customer", "id": format!("cus_demo_{tag}_{n}"),
                "email": format!("{tag}{n}@example.com"), "name": format!("{tag} customer {n}")}}})
            .to_string();
            let signature = stripe_signature_header(&stripe_secret, now, created.as_bytes());
            let (status, answer) =
                post(http, &format!("{webhook}/webhooks/stripe"), &created, &[("stripe-signature", &signature)])
                    .await?;
            if status != 202 {
                return Err(format!("{tag}: the Stripe delivery answered {status} {answer}"));
            }
        }
        self.dispatcher()?.wait_until_idle(Duration::from_secs(300)).await
    }

    /// Plays the repair and says what it sees.
    pub async fn repair(&self) -> Result<Repair, String> {
        let http = reqwest::Client::new();
        self.crm_outage(&http, true).await?;
        self.clock.say(format!("repair: the CRM is down; {REPAIR_CUSTOMERS} new Stripe customers to push"));
        self.new_customers(&http, "repair", REPAIR_CUSTOMERS).await?;
        let listed = self.failed_pushes(&http).await?;
        let reason = listed.first().and_then(|m| m["reason"].as_str()).unwrap_or("-").to_string();
        self.clock
            .say(format!("repair: GET /api/v1/failures lists {} failed pushes in {QUEUE} ({reason})", listed.len()));

        self.crm_outage(&http, false).await?;
        let path = format!("/api/v1/failures/{QUEUE}/redrive");
        let redriven = self.api_call(&http, "POST", &path, Some(json!({"all": true}))).await?;
        self.clock.say(format!("repair: the CRM is back; POST {path} {{\"all\": true}} → {redriven}"));
        self.dispatcher()?.wait_until_idle(Duration::from_secs(300)).await?;
        let left = self.failed_pushes(&http).await?.len();

        let crm = get_json(&http, &format!("{}/crm/contacts", self.sources_url), "CRM").await?;
        let stats = get_json(&http, &format!("{}/_stats", self.sources_url), "sources").await?;
        let mut taken = BTreeMap::new();
        for message in &listed {
            let key = message["message"]["result"]["idempotency_key"].as_str().unwrap_or_default().to_string();
            let count = crm["pushes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|push| push["idempotency_key"].as_str() == Some(key.as_str()))
                .count();
            taken.insert(key, count);
        }
        self.clock.say(format!(
            "repair: {left} left in {QUEUE}; the CRM took each re-driven push {:?} time(s)",
            taken.values().collect::<Vec<_>>()
        ));
        Ok(Repair { listed, redriven, left, taken, refused: stats["crm_refused"].as_u64().unwrap_or(0) })
    }

    /// `--check` of the repair: every failed push listed, re-driven, and taken once.
    pub fn check_repair(&self, repair: &Repair) -> Result<String, String> {
        let mut problems = Vec::new();
        if repair.listed.len() != REPAIR_CUSTOMERS {
            problems.push(format!("{} failed pushes listed, expected {REPAIR_CUSTOMERS}", repair.listed.len()));
        }
        if repair.redriven["redriven"].as_u64() != Some(REPAIR_CUSTOMERS as u64) {
            problems.push(format!("re-drive answered {}", repair.redriven));
        }
        if repair.left != 0 {
            problems.push(format!("{} failed pushes left after the re-drive", repair.left));
        }
        if repair.taken.len() != REPAIR_CUSTOMERS || repair.taken.values().any(|count| *count != 1) {
            problems.push(format!("pushes taken per idempotency key: {:?}", repair.taken));
        }
        if repair.refused == 0 {
            problems.push("the CRM refused nothing while down".into());
        }
        if problems.is_empty() {
            Ok(format!(
                "repair check passed: {REPAIR_CUSTOMERS} pushes failed while the CRM was down ({} attempts refused), \
                 listed, re-driven by one call and taken once each",
                repair.refused
            ))
        } else {
            Err(format!("repair check failed:\n  {}", problems.join("\n  ")))
        }
    }
}
