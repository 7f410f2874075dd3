//! Stripe payments, each counted once in `billing.totals.<currency>` with the amount Stripe
//! captured, less what was refunded, whichever events report it and in whatever order.
//!
//! One payment is reported by several events, each knowing some of its ids:
//!
//! | event (`data.object`) | ids it carries | what it says |
//! |---|---|---|
//! | `checkout.session.completed`, `checkout.session.async_payment_succeeded` (Session) | `id` (`cs_`), `payment_intent` (payment mode), `invoice` (subscription mode) | `amount_total` when `payment_status` is `paid`: provisional, replaced by any capture or invoice |
//! | `invoice.paid`, `invoice.payment_succeeded` (Invoice) | `id` (`in_`); before API version 2025-03-31 also `payment_intent`, `charge` | `amount_paid` |
//! | `invoice_payment.paid` (InvoicePayment, from 2025-03-31) | `id`, `invoice`, `payment.payment_intent`, `payment.charge` | `amount_paid` of that payment |
//! | `charge.succeeded`, `charge.captured`, `charge.refunded` (Charge) | `id` (`ch_`), `payment_intent`, `invoice` (older versions) | `amount_captured` (0 until a manual capture), `amount_refunded` (cumulative) |
//! | `payment_intent.succeeded` (PaymentIntent) | `id` (`pi_`), `invoice` (older versions), `latest_charge` | `amount_received` |
//! | `refund.created`, `refund.updated`, `refund.failed`, `charge.refund.updated` (Refund) | `id` (`re_`), `charge`, `payment_intent` | `amount`, `status` |
//!
//! A payment is a ledger entry (its own item under the customer, see [`LedgerRule`]) stored under
//! every id it is known by. An event reads the entries of its ids: entries that share an id with it
//! are the same payment and merge into one. Each entry keeps what it was told as maxima per object
//! (amounts only grow as a payment progresses, so a redelivery or an older event changes nothing)
//! and the amount it currently adds to the totals; applying an event adds the difference. The result
//! does not depend on the order of delivery.
//!
//! Captured amount of an entry: the larger of the sum of its captures (per PaymentIntent, or per
//! charge without one) and the sum of its invoices' `amount_paid`; the Checkout amount only while
//! neither is known. Refunded: the sum of the refunds seen one by one (`refund.*` events; a failed
//! or cancelled refund counts 0; the latest event about a refund wins), or, when no refund was seen
//! one by one, the charges' cumulative `amount_refunded` as of their latest event (net of the part
//! of an authorisation released by a partial capture, which Stripe reports as refunded). An endpoint
//! subscribed to `refund.*` thus follows failed refunds; one subscribed to `charge.refunded` only
//! counts what the charges say.
//!
//! Known limit: on API versions from 2025-03-31 a subscription's invoice no longer names its
//! PaymentIntent; only `invoice_payment.paid` links the two. Without that event in the endpoint's
//! subscriptions, a subscription Checkout or `invoice.paid` and the `payment_intent.succeeded` of the
//! same payment are two payments (subscribe the endpoint to `invoice_payment.paid`, or to only one of
//! the two families).

use super::{Ledger, LedgerOutcome, LedgerRule, RuleError, non_blank};
use crate::customer::record::{Change, CustomerRecord, Stamp};
use crate::event::CanonicalEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub const LEDGER: LedgerRule = LedgerRule { keys, apply };

/// Ledger keys of payments: `PAYMENT#<Stripe object id>`.
const KEY_PREFIX: &str = "PAYMENT#";

/// The payment of an InvoicePayment.
#[derive(Deserialize, Default)]
#[serde(default)]
struct InvoicePaymentTarget {
    payment_intent: Option<Value>,
    charge: Option<Value>,
}

/// The fields of the Stripe objects that report money; each object type has a subset.
#[derive(Deserialize, Default)]
#[serde(default)]
struct StripeObject {
    id: Option<String>,
    currency: Option<String>,
    payment_intent: Option<Value>,
    invoice: Option<Value>,
    charge: Option<Value>,
    latest_charge: Option<Value>,
    payment: Option<InvoicePaymentTarget>,
    amount: Option<i64>,
    amount_paid: Option<i64>,
    amount_received: Option<i64>,
    amount_captured: Option<i64>,
    amount_refunded: Option<i64>,
    amount_total: Option<i64>,
    captured: Option<bool>,
    payment_status: Option<String>,
    status: Option<String>,
}

/// An id given as a string or as an expanded object.
fn id_of(value: Option<&Value>) -> Option<String> {
    let id = match value? {
        Value::String(id) => id.as_str(),
        Value::Object(object) => object.get("id")?.as_str()?,
        _ => return None,
    };
    non_blank(Some(id)).filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).map(str::to_string)
}

/// One fact an event states about a payment.
#[derive(Debug, Clone, PartialEq)]
enum Evidence {
    /// Captured by a PaymentIntent or a charge (keyed by the PaymentIntent when there is one).
    Captured { key: String, amount: i64 },
    /// An invoice's `amount_paid`.
    Invoiced { key: String, amount: i64 },
    /// A paid Checkout Session's `amount_total`.
    Checkout { key: String, amount: i64 },
    /// A charge's cumulative refunds, net of a released authorisation.
    ChargeRefunds { key: String, amount: i64 },
    /// One refund as of this event: the amount it takes back (0 if it failed or was cancelled).
    Refund { id: String, amount: i64 },
}

/// What a payment event says: the payment's ids it knows, its currency and the facts.
#[derive(Debug, Clone, PartialEq)]
struct Report {
    ids: BTreeSet<String>,
    currency: Option<String>,
    evidence: Vec<Evidence>,
}

/// The event types that report money, by the object they carry.
fn report(event: &CanonicalEvent) -> Result<Option<Report>, RuleError> {
    let kind = match event.event_type.as_str() {
        "stripe.checkout.session.completed" | "stripe.checkout.session.async_payment_succeeded" => "session",
        "stripe.invoice.paid" | "stripe.invoice.payment_succeeded" => "invoice",
        "stripe.invoice_payment.paid" => "invoice_payment",
        "stripe.charge.succeeded" | "stripe.charge.captured" | "stripe.charge.refunded" => "charge",
        "stripe.payment_intent.succeeded" => "payment_intent",
        "stripe.refund.created" | "stripe.refund.updated" | "stripe.refund.failed" | "stripe.charge.refund.updated" => {
            "refund"
        }
        _ => return Ok(None),
    };
    let object: StripeObject = super::stripe::data_object(event)?;
    // An object without an id (a hand-made event) stands for a payment of its own, named by the event.
    let own = id_of(object.id.as_ref().map(|id| Value::String(id.clone())).as_ref())
        .or_else(|| Some(event.id.as_str().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()));
    let intent = id_of(object.payment_intent.as_ref());
    let mut ids: BTreeSet<String> = own.iter().chain(intent.iter()).cloned().collect();
    let mut evidence = Vec::new();
    let money = |amount: Option<i64>| amount.filter(|a| *a >= 0);
    match kind {
        "session" => {
            ids.extend(id_of(object.invoice.as_ref()));
            if object.payment_status.as_deref() == Some("paid")
                && let (Some(key), Some(amount)) = (own.clone(), money(object.amount_total))
            {
                evidence.push(Evidence::Checkout { key, amount });
            }
        }
        "invoice" => {
            ids.extend(id_of(object.charge.as_ref()));
            if let (Some(key), Some(amount)) = (own.clone(), money(object.amount_paid)) {
                evidence.push(Evidence::Invoiced { key, amount });
            }
        }
        "invoice_payment" => {
            ids.extend(id_of(object.invoice.as_ref()));
            let payment = object.payment.unwrap_or_default();
            let paid_by = id_of(payment.payment_intent.as_ref()).or_else(|| id_of(payment.charge.as_ref()));
            ids.extend(paid_by.clone());
            if let (Some(key), Some(amount)) = (paid_by.or(own.clone()), money(object.amount_paid)) {
                evidence.push(Evidence::Captured { key, amount });
            }
        }
        "charge" => {
            ids.extend(id_of(object.invoice.as_ref()));
            if let Some(key) = intent.clone().or(own.clone()) {
                let captured = if object.captured == Some(false) { Some(0) } else { money(object.amount_captured) };
                if let Some(amount) = captured {
                    evidence.push(Evidence::Captured { key: key.clone(), amount });
                }
                if let Some(refunded) = money(object.amount_refunded) {
                    // A partial capture releases the rest of the authorisation, and Stripe counts
                    // the release as refunded; an uncaptured authorisation released is all release.
                    let released = match (object.captured, money(object.amount), captured) {
                        (Some(false), Some(amount), _) => amount,
                        (_, Some(amount), Some(captured)) => (amount - captured).max(0),
                        _ => 0,
                    };
                    evidence.push(Evidence::ChargeRefunds { key, amount: (refunded - released).max(0) });
                }
            }
        }
        "payment_intent" => {
            ids.extend(id_of(object.invoice.as_ref()));
            ids.extend(id_of(object.latest_charge.as_ref()));
            if let (Some(key), Some(amount)) = (own.clone(), money(object.amount_received)) {
                evidence.push(Evidence::Captured { key, amount });
            }
        }
        _ => {
            ids.extend(id_of(object.charge.as_ref()));
            if let (Some(id), Some(amount)) = (own.clone(), money(object.amount)) {
                let counts = !matches!(object.status.as_deref(), Some("failed" | "canceled"));
                evidence.push(Evidence::Refund { id, amount: if counts { amount } else { 0 } });
            }
        }
    }
    let currency = non_blank(object.currency.as_deref())
        .filter(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()))
        .map(str::to_ascii_lowercase);
    if currency.is_none() && !evidence.is_empty() {
        return Err(RuleError::payload("Stripe payment", "data.object.currency must be a 3-letter code"));
    }
    Ok(Some(Report { ids, currency, evidence }))
}

/// A refunded amount as last reported (one refund, or a charge's cumulative refunds): the latest
/// event about it wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundState {
    pub amount: i64,
    #[serde(flatten)]
    pub stamp: Stamp,
}

/// A payment as the ledger remembers it (one item per id it is known by).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PaymentEntry {
    /// Every Stripe id the payment is known by (`cs_`, `in_`, `pi_`, `ch_`, `re_`, …).
    pub aliases: BTreeSet<String>,
    pub currency: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub captured: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub invoiced: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checkout: BTreeMap<String, i64>,
    /// Cumulative refunds per charge (or its PaymentIntent), as of the latest event about it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub charge_refunds: BTreeMap<String, RefundState>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refunds: BTreeMap<String, RefundState>,
    /// What the payment adds to `billing.totals.<currency>` now.
    pub counted: i64,
}

fn keep_max(map: &mut BTreeMap<String, i64>, key: &str, amount: i64) {
    let entry = map.entry(key.to_string()).or_insert(amount);
    *entry = (*entry).max(amount);
}

/// The state of the latest event (by [`Stamp`]) wins: the same in every delivery order.
fn keep_latest(map: &mut BTreeMap<String, RefundState>, key: &str, state: RefundState) {
    if map.get(key).is_none_or(|known| known.stamp < state.stamp) {
        map.insert(key.to_string(), state);
    }
}

/// A charge's cumulative refunds: the latest event wins; two events of the same second (Stripe's
/// `created` has one-second resolution) keep the larger amount, since the amount only grows but for
/// a failed refund, which the refund's own events report.
fn keep_latest_cumulative(map: &mut BTreeMap<String, RefundState>, key: &str, state: RefundState) {
    let newer = |known: &RefundState| {
        (state.stamp.at, state.amount, state.stamp.event_id.as_str())
            > (known.stamp.at, known.amount, known.stamp.event_id.as_str())
    };
    if map.get(key).is_none_or(newer) {
        map.insert(key.to_string(), state);
    }
}

impl PaymentEntry {
    /// Captured less refunded, by the rules of the module documentation.
    pub fn net(&self) -> i64 {
        let captures: i64 = self.captured.values().sum();
        let invoices: i64 = self.invoiced.values().sum();
        let captured = if self.captured.is_empty() && self.invoiced.is_empty() {
            self.checkout.values().sum()
        } else {
            captures.max(invoices)
        };
        let refunded: i64 = if self.refunds.is_empty() {
            self.charge_refunds.values().map(|snapshot| snapshot.amount).sum()
        } else {
            self.refunds.values().map(|refund| refund.amount).sum()
        };
        captured - refunded
    }

    /// Everything `other` knows, added to what this entry knows.
    fn absorb(&mut self, other: &PaymentEntry) {
        self.aliases.extend(other.aliases.iter().cloned());
        if self.currency.is_empty() {
            self.currency.clone_from(&other.currency);
        }
        for (map, from) in [
            (&mut self.captured, &other.captured),
            (&mut self.invoiced, &other.invoiced),
            (&mut self.checkout, &other.checkout),
        ] {
            for (key, amount) in from {
                keep_max(map, key, *amount);
            }
        }
        for (id, refund) in &other.refunds {
            keep_latest(&mut self.refunds, id, refund.clone());
        }
        for (key, snapshot) in &other.charge_refunds {
            keep_latest_cumulative(&mut self.charge_refunds, key, snapshot.clone());
        }
    }

    fn record(&mut self, evidence: &Evidence, stamp: &Stamp) {
        match evidence {
            Evidence::Captured { key, amount } => keep_max(&mut self.captured, key, *amount),
            Evidence::Invoiced { key, amount } => keep_max(&mut self.invoiced, key, *amount),
            Evidence::Checkout { key, amount } => keep_max(&mut self.checkout, key, *amount),
            Evidence::ChargeRefunds { key, amount } => keep_latest_cumulative(
                &mut self.charge_refunds,
                key,
                RefundState { amount: *amount, stamp: stamp.clone() },
            ),
            Evidence::Refund { id, amount } => {
                keep_latest(&mut self.refunds, id, RefundState { amount: *amount, stamp: stamp.clone() })
            }
        }
    }
}

fn keys(event: &CanonicalEvent) -> Result<Vec<String>, RuleError> {
    Ok(report(event)?
        .map(|report| report.ids.iter().map(|id| format!("{KEY_PREFIX}{id}")).collect())
        .unwrap_or_default())
}

/// A payment counted before the ledger existed: the record's `billing.payments.<id>` field. Its
/// amount stands as provisional (like a Checkout's): the first capture or invoice known for the
/// payment replaces it instead of adding to it.
fn legacy_entry(record: &CustomerRecord, id: &str) -> Option<PaymentEntry> {
    let value = record.value(&format!("billing.payments.{id}"))?;
    let amount = value.get("amount")?.as_i64()?;
    let currency = value.get("currency")?.as_str()?.to_string();
    Some(PaymentEntry {
        aliases: BTreeSet::from([id.to_string()]),
        currency,
        checkout: BTreeMap::from([(id.to_string(), amount)]),
        counted: amount,
        ..PaymentEntry::default()
    })
}

/// Most ids one payment may be known by (its Checkout, invoice, PaymentIntent, charge, refunds…):
/// each is an item written with every event of the payment, and a transaction holds 100 items.
pub const MAX_PAYMENT_IDS: usize = 60;

fn apply(record: &CustomerRecord, ledger: &Ledger, event: &CanonicalEvent) -> Result<LedgerOutcome, RuleError> {
    let Some(report) = report(event)? else { return Ok(LedgerOutcome::default()) };
    // The entries this event meets; one entry is stored under each of its ids, so read once each.
    let mut known: Vec<PaymentEntry> = Vec::new();
    for id in &report.ids {
        let entry = match ledger.get(&format!("{KEY_PREFIX}{id}")) {
            Some(value) => Some(
                serde_json::from_value::<PaymentEntry>(value.clone())
                    .map_err(|e| RuleError::payload("payment ledger entry", e))?,
            ),
            None => legacy_entry(record, id),
        };
        if let Some(entry) = entry
            && !known.iter().any(|seen| seen.aliases == entry.aliases)
        {
            known.push(entry);
        }
    }
    let mut merged = PaymentEntry {
        aliases: report.ids.clone(),
        currency: report.currency.clone().unwrap_or_default(),
        ..PaymentEntry::default()
    };
    for entry in &known {
        merged.absorb(entry);
    }
    let stamp = Stamp::of(event);
    for evidence in &report.evidence {
        merged.record(evidence, &stamp);
    }
    merged.counted = merged.net();
    if merged.aliases.len() > MAX_PAYMENT_IDS {
        return Err(RuleError::payload(
            "Stripe payment",
            format!("one payment known by more than {MAX_PAYMENT_IDS} ids (refunds included) cannot be tracked"),
        ));
    }

    let mut deltas: BTreeMap<String, i64> = BTreeMap::new();
    for entry in &known {
        *deltas.entry(entry.currency.clone()).or_default() -= entry.counted;
    }
    *deltas.entry(merged.currency.clone()).or_default() += merged.counted;
    let changes = deltas
        .into_iter()
        .filter(|(currency, delta)| *delta != 0 && !currency.is_empty())
        .map(|(currency, delta)| Change::new(format!("billing.totals.{currency}"), delta))
        .collect();
    let value = serde_json::to_value(&merged).map_err(|e| RuleError::payload("payment ledger entry", e))?;
    let writes = merged.aliases.iter().map(|alias| (format!("{KEY_PREFIX}{alias}"), value.clone())).collect();
    Ok(LedgerOutcome { changes, writes })
}

/// The amount this event reports as paid (for `billing.last_payment`), if it reports a payment.
pub fn paid_amount(event: &CanonicalEvent) -> Result<Option<(i64, String)>, RuleError> {
    // A refund is not a payment, even when the charge it comes with repeats what was captured.
    if event.event_type.starts_with("stripe.refund.") || event.event_type.contains(".refund") {
        return Ok(None);
    }
    let Some(report) = report(event)? else { return Ok(None) };
    let amount = report.evidence.iter().find_map(|evidence| match evidence {
        Evidence::Captured { amount, .. } | Evidence::Invoiced { amount, .. } | Evidence::Checkout { amount, .. } => {
            Some(*amount).filter(|a| *a > 0)
        }
        _ => None,
    });
    Ok(amount.zip(report.currency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::record::SubSchema;
    use crate::customer::rules::test_support::event;
    use serde_json::json;

    /// A Stripe event of `kind` at second `second` of the day, `object` its `data.object`.
    fn stripe(kind: &str, second: u32, object: Value) -> CanonicalEvent {
        let mut object = object;
        object.as_object_mut().unwrap().entry("currency").or_insert(json!("usd"));
        event(
            &format!("stripe.{kind}"),
            Some("stripe:cus_1"),
            &format!("2026-03-01T10:00:{second:02}Z"),
            json!({
            "type": kind, "data": {"object": object}}),
        )
    }

    /// The events applied in this order as the processor does (ledger read by the event's keys,
    /// changes merged into the record, entries written back); the customer's USD total.
    fn total_after(events: &[&CanonicalEvent]) -> i64 {
        let mut record = CustomerRecord::new(Default::default());
        let mut store: Ledger = Ledger::new();
        for event in events {
            let wanted = keys(event).unwrap();
            let read: Ledger = wanted.iter().filter_map(|k| store.get(k).map(|v| (k.clone(), v.clone()))).collect();
            let outcome = apply(&record, &read, event).unwrap();
            record.apply("stripe", &[SubSchema::Billing], &Stamp::of(event), &outcome.changes).unwrap();
            store.extend(outcome.writes);
        }
        record.value("billing.totals.usd").and_then(Value::as_i64).unwrap_or(0)
    }

    /// Every order of `events` gives `expected` (what Stripe's dashboard shows for the customer).
    fn every_order(events: &[CanonicalEvent], expected: i64) {
        fn permute<'a>(
            rest: Vec<&'a CanonicalEvent>,
            done: Vec<&'a CanonicalEvent>,
            out: &mut Vec<Vec<&'a CanonicalEvent>>,
        ) {
            if rest.is_empty() {
                out.push(done);
                return;
            }
            for i in 0..rest.len() {
                let mut rest = rest.clone();
                let mut done = done.clone();
                done.push(rest.remove(i));
                permute(rest, done, out);
            }
        }
        let mut orders = Vec::new();
        permute(events.iter().collect(), Vec::new(), &mut orders);
        for order in orders {
            let ids: Vec<&str> = order.iter().map(|e| e.event_type.as_str()).collect();
            assert_eq!(total_after(&order), expected, "{ids:?}");
            // A redelivery of every event changes nothing either.
            let twice: Vec<&CanonicalEvent> = order.iter().chain(order.iter()).copied().collect();
            assert_eq!(total_after(&twice), expected, "{ids:?} delivered twice");
        }
    }

    fn charge(second: u32, fields: Value) -> CanonicalEvent {
        let mut object = json!({"object": "charge", "id": "ch_1", "payment_intent": "pi_1", "amount": 1000,
            "amount_captured": 1000, "captured": true, "amount_refunded": 0});
        object.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        let kind =
            if object["amount_refunded"].as_i64().unwrap_or(0) > 0 { "charge.refunded" } else { "charge.succeeded" };
        stripe(kind, second, object)
    }

    fn intent(second: u32, received: i64) -> CanonicalEvent {
        stripe(
            "payment_intent.succeeded",
            second,
            json!({"object": "payment_intent", "id": "pi_1", "amount": 1000,
            "amount_received": received, "latest_charge": "ch_1"}),
        )
    }

    fn refund(second: u32, id: &str, amount: i64, status: &str) -> CanonicalEvent {
        let kind = if status == "failed" { "refund.failed" } else { "refund.created" };
        stripe(
            kind,
            second,
            json!({"object": "refund", "id": id, "amount": amount, "charge": "ch_1",
            "payment_intent": "pi_1", "status": status}),
        )
    }

    #[test]
    fn a_checkout_in_payment_mode_its_charge_and_its_intent_are_one_payment() {
        let checkout = stripe(
            "checkout.session.completed",
            1,
            json!({"object": "checkout.session", "id": "cs_1",
            "mode": "payment", "payment_intent": "pi_1", "payment_status": "paid", "amount_total": 1000}),
        );
        every_order(&[checkout, charge(2, json!({})), intent(3, 1000)], 1000);
    }

    #[test]
    fn manual_capture_counts_what_was_captured_when_it_was() {
        let authorised = charge(1, json!({"captured": false, "amount_captured": 0}));
        every_order(std::slice::from_ref(&authorised), 0);
        let captured = stripe(
            "charge.captured",
            2,
            json!({"object": "charge", "id": "ch_1", "payment_intent": "pi_1",
            "amount": 1000, "amount_captured": 1000, "captured": true, "amount_refunded": 0}),
        );
        every_order(&[authorised.clone(), captured], 1000);
        // The case: the uncaptured charge must not hide the PaymentIntent's amount.
        every_order(&[authorised.clone(), intent(3, 1000)], 1000);
        // A partial capture of 750 releases 250, which Stripe reports as refunded on the charge.
        let partial = stripe(
            "charge.captured",
            2,
            json!({"object": "charge", "id": "ch_1", "payment_intent": "pi_1",
            "amount": 1000, "amount_captured": 750, "captured": true, "amount_refunded": 250}),
        );
        every_order(&[authorised.clone(), partial, intent(3, 750)], 750);
        // An authorisation released without capture: nothing was paid.
        let released = charge(4, json!({"captured": false, "amount_captured": 0, "amount_refunded": 1000}));
        every_order(&[authorised, released], 0);
    }

    #[test]
    fn a_subscription_checkout_and_its_invoice_are_one_payment_on_every_api_version() {
        let checkout = stripe(
            "checkout.session.completed",
            1,
            json!({"object": "checkout.session", "id": "cs_2",
            "mode": "subscription", "payment_intent": null, "invoice": "in_2", "subscription": "sub_1",
            "payment_status": "paid", "amount_total": 1000}),
        );
        // Before 2025-03-31: the invoice names its PaymentIntent and charge.
        let invoice = stripe(
            "invoice.paid",
            2,
            json!({"object": "invoice", "id": "in_2", "payment_intent": "pi_1",
            "charge": "ch_1", "amount_paid": 1000}),
        );
        let charge = charge(3, json!({"invoice": "in_2"}));
        every_order(&[checkout.clone(), invoice, charge.clone(), intent(4, 1000)], 1000);
        // From 2025-03-31: the invoice names neither; invoice_payment.paid links it to its payment.
        let invoice = stripe(
            "invoice.paid",
            2,
            json!({"object": "invoice", "id": "in_2", "amount_paid": 1000,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}}}),
        );
        every_order(&[checkout.clone(), invoice.clone()], 1000);
        let link = stripe(
            "invoice_payment.paid",
            5,
            json!({"object": "invoice_payment", "id": "inpay_1",
            "invoice": "in_2", "amount_paid": 1000, "status": "paid",
            "payment": {"type": "payment_intent", "payment_intent": "pi_1"}}),
        );
        every_order(&[checkout, invoice, link, intent(4, 1000), charge], 1000);
    }

    #[test]
    fn refunds_subtract_once_and_a_failed_refund_gives_the_money_back() {
        let paid = [charge(1, json!({})), intent(2, 1000)];
        let snapshot_300 = charge(5, json!({"amount_refunded": 300}));
        let one = [&paid[..], &[refund(4, "re_1", 300, "succeeded"), snapshot_300.clone()]].concat();
        every_order(&one, 700);
        // Two refunds; the charge's snapshot after the first only arrives last.
        let two = [
            &paid[..],
            &[refund(4, "re_1", 300, "succeeded"), refund(6, "re_2", 200, "succeeded"), snapshot_300.clone()],
        ]
        .concat();
        every_order(&two, 500);
        // The refund fails after it was created.
        let failed = [&paid[..], &[refund(4, "re_1", 300, "pending"), refund(7, "re_1", 300, "failed")]].concat();
        every_order(&failed, 1000);
        // An endpoint subscribed to charge.refunded only: the latest snapshot counts.
        let snapshots = [&paid[..], &[snapshot_300, charge(8, json!({"amount_refunded": 450}))]].concat();
        every_order(&snapshots, 550);
    }

    #[test]
    fn trials_balances_and_renewals() {
        let trial = stripe(
            "checkout.session.completed",
            1,
            json!({"object": "checkout.session", "id": "cs_3",
            "invoice": "in_3", "payment_status": "no_payment_required", "amount_total": 0}),
        );
        every_order(&[trial], 0);
        // The customer balance paid 400 of 1000: the invoice's amount_paid replaces the Checkout's.
        let checkout = stripe(
            "checkout.session.completed",
            1,
            json!({"object": "checkout.session", "id": "cs_4",
            "invoice": "in_4", "payment_status": "paid", "amount_total": 1000}),
        );
        let invoice = stripe("invoice.paid", 2, json!({"object": "invoice", "id": "in_4", "amount_paid": 600}));
        every_order(&[checkout, invoice.clone()], 600);
        // A renewal of the same subscription is another payment.
        let renewal = stripe(
            "invoice.paid",
            3,
            json!({"object": "invoice", "id": "in_5", "amount_paid": 600,
            "subscription": "sub_1"}),
        );
        every_order(&[invoice, renewal], 1200);
    }

    #[test]
    fn a_payment_counted_in_the_record_before_the_ledger_is_not_counted_again() {
        use crate::customer::record::FieldState;
        let mut record = CustomerRecord::new(Default::default());
        let old = Stamp::of(&event("stripe.invoice.paid", None, "2025-01-01T00:00:00Z", json!({})));
        for (field, value) in
            [("billing.totals.usd", json!(1000)), ("billing.payments.pi_1", json!({"amount": 1000, "currency": "usd"}))]
        {
            record.fields.insert(field.into(), FieldState { value, stamp: old.clone() });
        }
        let outcome = apply(&record, &Ledger::new(), &intent(1, 1000)).unwrap();
        assert!(outcome.changes.is_empty(), "{:?}", outcome.changes);
        assert_eq!(outcome.writes.len(), 2, "the payment is now in the ledger under pi_1 and ch_1");
        // A pre-ledger invoice, then its payment through another id: the capture replaces it.
        let mut record = CustomerRecord::new(Default::default());
        for (field, value) in
            [("billing.totals.usd", json!(1000)), ("billing.payments.in_9", json!({"amount": 1000, "currency": "usd"}))]
        {
            record.fields.insert(field.into(), FieldState { value, stamp: old.clone() });
        }
        let link = stripe(
            "invoice_payment.paid",
            5,
            json!({"object": "invoice_payment", "id": "inpay_9",
            "invoice": "in_9", "amount_paid": 1000, "payment": {"type": "payment_intent", "payment_intent": "pi_9"}}),
        );
        assert!(apply(&record, &Ledger::new(), &link).unwrap().changes.is_empty());
    }

    #[test]
    fn other_events_have_no_ledger_keys_and_a_payment_needs_its_currency() {
        let created = stripe("customer.created", 1, json!({"object": "customer", "id": "cus_1"}));
        assert!(keys(&created).unwrap().is_empty());
        let mut no_currency = intent(1, 1000);
        no_currency.payload =
            serde_json::value::to_raw_value(&json!({"data": {"object": {"id": "pi_1", "amount_received": 5}}}))
                .unwrap();
        assert!(matches!(keys(&no_currency), Err(RuleError::Payload { .. })));
        assert_eq!(paid_amount(&intent(1, 1000)).unwrap(), Some((1000, "usd".to_string())));
        assert_eq!(paid_amount(&charge(1, json!({"captured": false, "amount_captured": 0}))).unwrap(), None);
        assert_eq!(paid_amount(&charge(2, json!({"amount_refunded": 300}))).unwrap(), None, "a refund is no payment");
        assert_eq!(paid_amount(&refund(3, "re_1", 300, "succeeded")).unwrap(), None);
        // Events without an object id still count, each as its own payment.
        let anonymous = |second: u32| stripe("invoice.paid", second, json!({"object": "invoice", "amount_paid": 500}));
        every_order(&[anonymous(1), anonymous(2)], 1000);
    }
}
