//! `stripe.*`: who the customer is (Stripe customer id, e-mail, name) and what they paid.
//!
//! The payload is Stripe's event as delivered (`data.object` holds the invoice, charge, …).

use super::{Rule, RuleError, non_blank, subjects};
use crate::customer::record::{Change, CustomerRecord, SubSchema};
use crate::event::{CanonicalEvent, Subject};
use serde::Deserialize;
use serde_json::json;

pub const RULE: Rule = Rule { name: "stripe", owns: &[SubSchema::Identity, SubSchema::Billing], identities, changes };

#[derive(Deserialize)]
struct Envelope {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: StripeObject,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Details {
    email: Option<String>,
    name: Option<String>,
}

/// The fields of the Stripe objects we read (invoice, charge, payment intent, checkout session,
/// customer); everything is optional because each object type has a different subset.
#[derive(Deserialize, Default)]
#[serde(default)]
struct StripeObject {
    id: Option<String>,
    object: Option<String>,
    customer: Option<serde_json::Value>,
    email: Option<String>,
    name: Option<String>,
    customer_email: Option<String>,
    customer_name: Option<String>,
    receipt_email: Option<String>,
    billing_details: Option<Details>,
    customer_details: Option<Details>,
    currency: Option<String>,
    amount_paid: Option<i64>,
    amount_received: Option<i64>,
    amount_captured: Option<i64>,
    amount_total: Option<i64>,
}

impl StripeObject {
    fn customer_id(&self) -> Option<&str> {
        if self.object.as_deref() == Some("customer") {
            return non_blank(self.id.as_deref());
        }
        match &self.customer {
            Some(serde_json::Value::String(id)) => non_blank(Some(id)),
            // An expanded customer object.
            Some(serde_json::Value::Object(customer)) => non_blank(customer.get("id").and_then(|v| v.as_str())),
            _ => None,
        }
    }

    fn email(&self) -> Option<&str> {
        [
            self.customer_email.as_deref(),
            self.receipt_email.as_deref(),
            self.customer_details.as_ref().and_then(|d| d.email.as_deref()),
            self.billing_details.as_ref().and_then(|d| d.email.as_deref()),
            self.email.as_deref(),
        ]
        .into_iter()
        .find_map(non_blank)
        .filter(|address| address.contains('@'))
    }

    fn name(&self) -> Option<&str> {
        [
            self.customer_name.as_deref(),
            self.customer_details.as_ref().and_then(|d| d.name.as_deref()),
            self.billing_details.as_ref().and_then(|d| d.name.as_deref()),
            if self.object.as_deref() == Some("customer") { self.name.as_deref() } else { None },
        ]
        .into_iter()
        .find_map(non_blank)
    }
}

/// The amount a successful payment event moved, by event type (one type per payment, so that a
/// payment reported as invoice, charge and payment intent is not counted three times).
fn paid_amount(event_type: &str, object: &StripeObject) -> Option<i64> {
    match event_type {
        "stripe.invoice.paid" => object.amount_paid,
        "stripe.checkout.session.completed" => object.amount_total,
        "stripe.charge.succeeded" => object.amount_captured,
        "stripe.payment_intent.succeeded" => object.amount_received,
        _ => None,
    }
}

fn object_of(event: &CanonicalEvent) -> Result<StripeObject, RuleError> {
    event
        .payload_as::<Envelope>()
        .map(|envelope| envelope.data.object)
        .map_err(|e| RuleError::payload("Stripe event", e))
}

fn identities(event: &CanonicalEvent) -> Result<Vec<Subject>, RuleError> {
    let object = object_of(event)?;
    let customer = object.customer_id().map(|id| Subject::external("stripe", id));
    let email = object.email().map(Subject::email);
    subjects(event, customer.into_iter().chain(email))
}

fn changes(_record: &CustomerRecord, event: &CanonicalEvent) -> Result<Vec<Change>, RuleError> {
    let object = object_of(event)?;
    let mut changes = Vec::new();
    if let Some(id) = object.customer_id() {
        changes.push(Change::new("billing.stripe_customer", id));
    }
    if let Some(email) = object.email() {
        changes.push(Change::new("identity.email", crate::event::normalise_email(email)));
    }
    if let Some(name) = object.name() {
        changes.push(Change::new("identity.nom", name));
    }
    if let Some(amount) = paid_amount(&event.event_type, &object) {
        let currency = non_blank(object.currency.as_deref())
            .filter(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()))
            .ok_or_else(|| RuleError::payload("Stripe payment", "data.object.currency must be a 3-letter code"))?
            .to_ascii_lowercase();
        changes.push(Change::new(
            "billing.last_payment",
            json!({"amount": amount, "currency": currency, "at": event.occurred_at.to_string(), "event_type": event.event_type}),
        ));
        changes.push(Change::new(format!("billing.totals.{currency}"), amount));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::rules::test_support::event;

    #[test]
    fn an_invoice_names_customer_email_and_amount() {
        let e = event(
            "stripe.invoice.paid",
            Some("stripe:cus_1"),
            "2025-01-01T00:00:00Z",
            json!({"id": "evt_1", "type": "invoice.paid", "data": {"object": {
                "object": "invoice", "customer": "cus_1", "customer_email": "Ada@X.io", "customer_name": "Ada",
                "amount_paid": 2000, "currency": "EUR"}}}),
        );
        let ids: Vec<_> = identities(&e).unwrap().iter().map(|s| s.as_str().to_string()).collect();
        assert_eq!(ids, ["stripe:cus_1", "email:ada@x.io"]);
        let changes = changes(&CustomerRecord::new(Default::default()), &e).unwrap();
        let fields: Vec<_> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["billing.stripe_customer", "identity.email", "identity.nom", "billing.last_payment", "billing.totals.eur"]
        );
        assert_eq!(changes[4].value, json!(2000));
    }

    #[test]
    fn a_payment_without_currency_is_rejected_and_other_types_move_no_money() {
        let payload = json!({"data": {"object": {"customer": "cus_1", "amount_paid": 5}}});
        let e = event("stripe.invoice.paid", Some("stripe:cus_1"), "2025-01-01T00:00:00Z", payload.clone());
        assert!(changes(&CustomerRecord::new(Default::default()), &e).is_err());
        let e = event("stripe.invoice.created", Some("stripe:cus_1"), "2025-01-01T00:00:00Z", payload);
        assert_eq!(changes(&CustomerRecord::new(Default::default()), &e).unwrap().len(), 1);
        let e = event("stripe.invoice.paid", None, "2025-01-01T00:00:00Z", json!({"nope": 1}));
        assert!(matches!(identities(&e), Err(RuleError::Payload { .. })));
    }
}
