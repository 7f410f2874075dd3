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
    payment_intent: Option<serde_json::Value>,
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

/// The amount a successful payment event reports, by event type. One payment is reported by
/// several events (an invoice paid by card: `invoice.paid`, `charge.succeeded`,
/// `payment_intent.succeeded`); [`payment_key`] recognises them as one.
fn paid_amount(event_type: &str, object: &StripeObject) -> Option<i64> {
    match event_type {
        "stripe.invoice.paid" => object.amount_paid,
        "stripe.checkout.session.completed" => object.amount_total,
        "stripe.charge.succeeded" => object.amount_captured,
        "stripe.payment_intent.succeeded" => object.amount_received,
        _ => None,
    }
}

/// What identifies a payment across the events that report it: its PaymentIntent, else the
/// object's id, else the event's; made safe as a field path segment.
fn payment_key(object: &StripeObject, event: &CanonicalEvent) -> String {
    let intent = match &object.payment_intent {
        Some(serde_json::Value::String(id)) => non_blank(Some(id)),
        Some(serde_json::Value::Object(intent)) => non_blank(intent.get("id").and_then(|v| v.as_str())),
        _ => None,
    };
    let key = intent.or(non_blank(object.id.as_deref())).unwrap_or(event.id.as_str());
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
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

fn changes(record: &CustomerRecord, event: &CanonicalEvent) -> Result<Vec<Change>, RuleError> {
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
        // The first event of a payment adds it to the totals; the others only confirm it. Each
        // event is applied once and a customer's events one at a time, so exactly one adds it.
        let seen = format!("billing.payments.{}", payment_key(&object, event));
        if record.value(&seen).is_none() {
            changes.push(Change::new(format!("billing.totals.{currency}"), amount));
        }
        changes.push(Change::new(seen, json!({"amount": amount, "currency": currency})));
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
            [
                "billing.stripe_customer",
                "identity.email",
                "identity.nom",
                "billing.last_payment",
                "billing.totals.eur",
                "billing.payments.evt_20250101T000000Z"
            ]
        );
        assert_eq!(changes[4].value, json!(2000));
    }

    #[test]
    fn a_payment_reported_by_three_events_is_counted_once() {
        use crate::customer::record::Stamp;
        let object = |extra: serde_json::Value| {
            let mut object = json!({"customer": "cus_1", "currency": "eur", "payment_intent": "pi_1"});
            object.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            json!({"data": {"object": object}})
        };
        let events = [
            event(
                "stripe.invoice.paid",
                Some("stripe:cus_1"),
                "2025-01-01T00:00:01Z",
                object(json!({"id": "in_1", "amount_paid": 900})),
            ),
            event(
                "stripe.charge.succeeded",
                Some("stripe:cus_1"),
                "2025-01-01T00:00:02Z",
                object(json!({"id": "ch_1", "amount_captured": 900})),
            ),
            event(
                "stripe.payment_intent.succeeded",
                Some("stripe:cus_1"),
                "2025-01-01T00:00:03Z",
                json!({"data": {"object": {"id": "pi_1", "customer": "cus_1", "currency": "eur", "amount_received": 900}}}),
            ),
        ];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut record = CustomerRecord::new(Default::default());
            for index in order {
                let proposed = changes(&record, &events[index]).unwrap();
                record.apply(RULE.name, RULE.owns, &Stamp::of(&events[index]), &proposed).unwrap();
            }
            assert_eq!(record.value("billing.totals.eur"), Some(&json!(900)), "{order:?}");
        }
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
