//! `stripe.*`: who the customer is (Stripe customer id, e-mail, name) and what they paid.
//!
//! The payload is Stripe's event as delivered (`data.object` holds the invoice, charge, …).

use super::{Rule, RuleError, non_blank, subjects};
use crate::customer::record::{Change, CustomerRecord, SubSchema};
use crate::event::{CanonicalEvent, Subject};
use serde::Deserialize;
use serde_json::json;

pub const RULE: Rule = Rule {
    name: "stripe",
    owns: &[SubSchema::Identity, SubSchema::Billing],
    identities,
    changes,
    ledger: Some(&super::stripe_payments::LEDGER),
};

/// A Stripe event's `data.object`, read as `T` (each rule reads the fields it needs).
#[derive(Deserialize)]
struct Envelope<T> {
    data: Data<T>,
}

#[derive(Deserialize)]
struct Data<T> {
    object: T,
}

/// The event's `data.object` as `T`.
pub(super) fn data_object<T: for<'de> Deserialize<'de>>(event: &CanonicalEvent) -> Result<T, RuleError> {
    event
        .payload_as::<Envelope<T>>()
        .map(|envelope| envelope.data.object)
        .map_err(|e| RuleError::payload("Stripe event", e))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Details {
    email: Option<String>,
    name: Option<String>,
}

/// The fields of the Stripe objects that name the customer (invoice, charge, payment intent,
/// checkout session, customer); each object type has a subset. Money is `stripe_payments`' part.
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

fn object_of(event: &CanonicalEvent) -> Result<StripeObject, RuleError> {
    data_object(event)
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
    // The totals are the payments ledger's (`stripe_payments`): each payment counted once.
    if let Some((amount, currency)) = super::stripe_payments::paid_amount(event)? {
        changes.push(Change::new(
            "billing.last_payment",
            json!({"amount": amount, "currency": currency, "at": event.occurred_at.to_string(), "event_type": event.event_type}),
        ));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::rules::test_support::event;

    #[test]
    fn an_invoice_names_customer_email_and_last_payment() {
        let e = event(
            "stripe.invoice.paid",
            Some("stripe:cus_1"),
            "2025-01-01T00:00:00Z",
            json!({"id": "evt_1", "type": "invoice.paid", "data": {"object": {
                "object": "invoice", "id": "in_1", "customer": "cus_1", "customer_email": "Ada@X.io", "customer_name": "Ada",
                "amount_paid": 2000, "currency": "EUR"}}}),
        );
        let ids: Vec<_> = identities(&e).unwrap().iter().map(|s| s.as_str().to_string()).collect();
        assert_eq!(ids, ["stripe:cus_1", "email:ada@x.io"]);
        let changes = changes(&CustomerRecord::new(Default::default()), &e).unwrap();
        let fields: Vec<_> = changes.iter().map(|c| c.field.as_str()).collect();
        // The totals are the ledger's (`stripe_payments`), never a per-payment field of the record.
        assert_eq!(fields, ["billing.stripe_customer", "identity.email", "identity.nom", "billing.last_payment"]);
        assert_eq!(changes[3].value["amount"], json!(2000));
        assert_eq!(changes[3].value["currency"], json!("eur"));
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
