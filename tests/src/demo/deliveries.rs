//! The sample deliveries: Stripe-signed, Standard Webhooks, Make and personnage, and a lead batch.

use super::*;

impl Demo {
    pub(super) async fn send_deliveries(&self, run: &mut Run) -> Result<(), String> {
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
