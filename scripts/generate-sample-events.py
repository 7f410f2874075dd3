#!/usr/bin/env python3
"""Writes the sample events into events/: API Gateway HTTP API (payload 2.0) requests for the
webhook receiver, and SNS deliveries of canonical events for the processor and the integrator.

The deliveries are signed with the local demo secrets of events/local-secrets.json, at a fixed
time (`requestContext.timeEpoch`), so tests replay them with the clock pinned to that time.
Run again after changing a body or a secret: `python3 scripts/generate-sample-events.py`.

It also writes events/answers.json: each sample, the function that takes it and the answer it gets
on the local stack, in the order the smoke test (`make smoke`) sends them. That test needs the signed
deliveries signed now: `--now --out DIR` writes the same samples, signed at the current time, to DIR.
"""

import argparse

import base64
import datetime
import hashlib
import hmac
import json
import pathlib
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
SECRETS = {k: v for k, v in json.loads((EVENTS / "local-secrets.json").read_text()).items() if k.startswith("/")}

# 2026-11-23T09:00:00Z: the instant every sample is "received" at.
NOW = 1_795_424_400


def stripe_signature(secret: str, timestamp: int, body: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def standard_signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def api_request(method: str, path: str, headers: dict, body: str | None, request_id: str, query: str = "") -> dict:
    """An API Gateway HTTP API (payload 2.0) request, as the $default stage sends it to Lambda."""
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "abc123.execute-api.eu-west-3.amazonaws.com", **headers},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-3.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": headers.get("user-agent", "curl/8.5.0"),
            },
            "requestId": request_id,
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "23/Nov/2026:09:00:00 +0000",
            "timeEpoch": NOW * 1000,
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(pair.split("=", 1) for pair in query.split("&"))
    if body is not None:
        event["body"] = body
        event["headers"]["content-length"] = str(len(body.encode()))
    return event


def stripe_invoice_paid(event_id: str) -> str:
    """A Stripe `invoice.paid` event in Stripe's own layout (pretty-printed, 2-space indent)."""
    invoice = {
        "id": "in_1QxTributaryDemo0001",
        "object": "invoice",
        "account_country": "FR",
        "account_name": "Tributary Demo SAS",
        "amount_due": 4900,
        "amount_paid": 4900,
        "amount_remaining": 0,
        "attempt_count": 1,
        "attempted": True,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": NOW - 130,
        "currency": "eur",
        "customer": "cus_TributaryDemo01",
        "customer_email": "ada.lovelace@example.com",
        "customer_name": "Ada Lovelace",
        "customer_phone": None,
        "description": None,
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1Demo/test_YWNjdF8xRGVtbw",
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": "il_1QxTributaryDemo0001",
                    "object": "line_item",
                    "amount": 4900,
                    "currency": "eur",
                    "description": "1 × Tributary Pro (at €49.00 / month)",
                    "period": {"end": NOW + 2_592_000, "start": NOW},
                    "price": {"id": "price_1Demo", "object": "price", "unit_amount": 4900, "recurring": {"interval": "month"}},
                    "quantity": 1,
                    "type": "subscription",
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": "/v1/invoices/in_1QxTributaryDemo0001/lines",
        },
        "livemode": False,
        "number": "TRIB-0001",
        "paid": True,
        "period_end": NOW - 130,
        "period_start": NOW - 2_592_130,
        "status": "paid",
        "subscription": "sub_1TributaryDemo",
        "subtotal": 4900,
        "tax": None,
        "total": 4900,
    }
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": NOW - 120,
        "data": {"object": invoice},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "invoice.paid",
    }
    return json.dumps(event, indent=2, ensure_ascii=False)


def iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(event_id: str, source: str, event_type: str, subject, occurred_at: int, payload) -> dict:
    """A canonical event as the producers publish it (see shared/domain/src/event.rs)."""
    event = {"id": event_id, "source": source, "type": event_type, "occurred_at": iso(occurred_at),
             "received_at": iso(NOW), "payload": payload}
    if subject is not None:
        event["subject"] = subject
    return event


def sns_delivery(topic: str, message: str, attributes: dict, message_id: str) -> dict:
    """What SNS hands a subscribed Lambda function (one record per invocation)."""
    topic_arn = f"arn:aws:sns:eu-west-3:123456789012:{topic}"
    return {"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{topic_arn}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
        "Sns": {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": topic_arn,
            "Subject": None,
            "Message": message,
            "Timestamp": "2026-11-23T09:00:01.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.eu-west-3.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
            "UnsubscribeUrl": f"https://sns.eu-west-3.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:2bcfbf39",
            "MessageAttributes": {name: {"Type": "String", "Value": value} for name, value in attributes.items()},
        },
    }]}


def event_delivery(event: dict, message_id: str) -> dict:
    return sns_delivery("tributary-events", json.dumps(event, ensure_ascii=False),
                        {"source": event["source"], "type": event["type"]}, message_id)


OUT = EVENTS


def write(name: str, event: dict) -> None:
    (OUT / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")


# What each sample gets on the local stack, in the order the smoke test sends them: the processor's
# deliveries before the webhook's (so each is applied, not a duplicate of a webhook delivery), a
# Stripe delivery before its retry. HTTP samples are checked by status code, the others by the
# fields given (a subset of the answer).
ANSWERS = [
    ("processor-stripe-invoice-paid.json", "ProcessorFunction", {"applied": 1, "dead_lettered": 0}),
    ("processor-lead-upserted.json", "ProcessorFunction", {"applied": 1}),
    ("processor-personnage.json", "ProcessorFunction", {"applied": 1}),
    ("processor-matomo-visit.json", "ProcessorFunction", {"applied": 1}),
    ("processor-malformed.json", "ProcessorFunction", {"applied": 0, "dead_lettered": 1}),
    ("integrator-customer-updated.json", "IntegratorFunction", {"pushed": 0, "failed": 0}),
    ("webhook-health.json", "WebhookFunction", {"statusCode": 200}),
    ("webhook-stripe-valid.json", "WebhookFunction", {"statusCode": 202}),
    ("webhook-stripe-duplicate.json", "WebhookFunction", {"statusCode": 200}),
    ("webhook-stripe-bad-signature.json", "WebhookFunction", {"statusCode": 401}),
    ("webhook-stripe-expired.json", "WebhookFunction", {"statusCode": 401}),
    ("webhook-stripe-malformed.json", "WebhookFunction", {"statusCode": 422}),
    ("webhook-personnage.json", "WebhookFunction", {"statusCode": 202}),
    ("webhook-standard-acme.json", "WebhookFunction", {"statusCode": 202}),
    ("webhook-make.json", "WebhookFunction", {"statusCode": 202}),
    ("api-find-customer-by-email.json", "ApiFunction", {"statusCode": 200}),
    # The sample's customer id is not one this stack created.
    ("api-get-customer.json", "ApiFunction", {"statusCode": 404}),
    ("api-get-customer-audit.json", "ApiFunction", {"statusCode": 404}),
    ("api-get-customer-unauthorized.json", "ApiFunction", {"statusCode": 401}),
    ("api-ingest-leads.json", "ApiFunction", {"statusCode": 202}),
    ("api-ingest-leads-invalid.json", "ApiFunction", {"statusCode": 422}),
    ("puller-scheduled-matomo.json", "PullerFunction", {"job": "matomo", "more_to_do": False}),
    ("puller-scheduled-notion.json", "PullerFunction", {"job": "notion", "more_to_do": False}),
    ("lake-writer-sqs-batch.json", "LakeWriterFunction",
     {"batchItemFailures": [{"itemIdentifier": "7c2d9e10-0000-4a8b-9c1d-000000000002"}]}),
    ("lake-maintenance-scheduled.json", "LakeMaintenanceFunction", {}),
    ("aggregator-count-by-week.json", "AggregatorFunction", {"statusCode": 200}),
    ("aggregator-count-by-month.json", "AggregatorFunction", {"statusCode": 200}),
    ("aggregator-monthly-report.json", "AggregatorFunction", {"statusCode": 200}),
    ("aggregator-monthly-report-xlsx.json", "AggregatorFunction", {"statusCode": 200, "isBase64Encoded": True}),
    ("aggregator-alerts.json", "AggregatorFunction", {"statusCode": 200}),
    ("aggregator-ingestion-status.json", "AggregatorFunction", {"statusCode": 200}),
    ("aggregator-count-bad-date.json", "AggregatorFunction", {"statusCode": 400}),
    ("aggregator-jobs-monthly.json", "AggregatorJobsFunction", {}),
    # The demo's leads have no kept latest dates yet: the first run writes them.
    ("aggregator-jobs-latest-dates.json", "AggregatorJobsFunction", {"latest_dates": "written"}),
    # The same rules rebuild the same records: nothing is written.
    ("rebuild-stripe-customers.json", "RebuildFunction", {"rebuilt": 0}),
    # A dry run counts the archived deliveries of the day around NOW and publishes none.
    ("replay-dry-run.json", "ReplayFunction", {"dry_run": True, "totals": {"published": 0, "refused": 0}}),
]


def main() -> None:
    global NOW, OUT
    parser = argparse.ArgumentParser(description="Writes the sample events of events/.")
    parser.add_argument("--now", action="store_true", help="sign at the current time instead of the fixed instant")
    parser.add_argument("--out", type=pathlib.Path, default=EVENTS, help="where to write them (default: events/)")
    args = parser.parse_args()
    if args.now:
        NOW = int(time.time())
    OUT = args.out
    OUT.mkdir(parents=True, exist_ok=True)
    stripe_secret = SECRETS["/tributary/stripe-signing-secret"]
    stripe_headers = {"content-type": "application/json; charset=utf-8", "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
    body = stripe_invoice_paid("evt_1QxTributaryDemo0001")

    write("webhook-stripe-valid.json", api_request(
        "POST", "/webhooks/stripe", {**stripe_headers, "stripe-signature": stripe_signature(stripe_secret, NOW, body)}, body, "stripe-valid"))
    # Stripe's retry of the same event a minute later: new signature time, same event id.
    write("webhook-stripe-duplicate.json", api_request(
        "POST", "/webhooks/stripe", {**stripe_headers, "stripe-signature": stripe_signature(stripe_secret, NOW - 60, body)}, body, "stripe-duplicate"))
    write("webhook-stripe-bad-signature.json", api_request(
        "POST", "/webhooks/stripe", {**stripe_headers, "stripe-signature": stripe_signature("whsec_not_the_secret", NOW, body)}, body, "stripe-bad-signature"))
    write("webhook-stripe-expired.json", api_request(
        "POST", "/webhooks/stripe", {**stripe_headers, "stripe-signature": stripe_signature(stripe_secret, NOW - 301, body)}, body, "stripe-expired"))
    malformed = '{"id": "evt_1QxTributaryDemo0002", "type": "invoice.paid", "created": '
    write("webhook-stripe-malformed.json", api_request(
        "POST", "/webhooks/stripe", {**stripe_headers, "stripe-signature": stripe_signature(stripe_secret, NOW, malformed)}, malformed, "stripe-malformed"))

    personnage = '{"nom": "Naruto", "score": 85}'
    write("webhook-personnage.json", api_request(
        "POST", "/webhook/personnage",
        {"content-type": "application/json", "authorization": "Bearer " + SECRETS["/tributary/personnage-token"], "idempotency-key": "personnage-naruto-0001"},
        personnage, "personnage"))

    standard = json.dumps({"type": "contact.created", "timestamp": "2026-11-23T08:59:58Z",
                           "data": {"id": "c_42", "email": "Grace.Hopper@example.com", "plan": "pro"}})
    msg_id = "msg_2TributaryDemoAcme0001"
    write("webhook-standard-acme.json", api_request(
        "POST", "/webhooks/acme",
        {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(NOW),
         "webhook-signature": standard_signature(SECRETS["/tributary/webhook-sources/acme"], msg_id, NOW, standard)},
        standard, "standard-acme"))

    make = json.dumps({"id": "make-exec-7f3a9c", "type": "lead.created", "email": "linus@example.com", "nom": "Linus", "source": "landing"})
    write("webhook-make.json", api_request(
        "POST", "/webhooks/make",
        {"content-type": "application/json", "user-agent": "Make/production", "x-make-token": SECRETS["/tributary/make-token"]},
        make, "make"))

    write("webhook-health.json", api_request("GET", "/health", {}, None, "health"))

    # What the processor receives from the events topic: one delivery per event family.
    stripe_event = json.loads(body)
    write("processor-stripe-invoice-paid.json", event_delivery(canonical(
        stripe_event["id"], "stripe", "stripe.invoice.paid", "stripe:cus_TributaryDemo01", stripe_event["created"],
        stripe_event), "5f0a1c2e-0001-4b7e-9a51-6c1d2e3f4a01"))
    lead = {"id": "lead-0001", "nom": "Ada Lovelace", "email": "ada.lovelace@example.com", "telephone": "+33612345678",
            "date_prise_contact": "2026-11-02", "date_reponse_prospect": "2026-11-04", "date_appel_propose": "2026-11-05",
            "statut": "appel_propose"}
    write("processor-lead-upserted.json", event_delivery(canonical(
        "ingestion:lead-0001:3f9a2c1b", "ingestion", "lead.upserted", None, NOW - 3600, lead),
        "5f0a1c2e-0002-4b7e-9a51-6c1d2e3f4a02"))
    write("processor-personnage.json", event_delivery(canonical(
        "personnage-naruto-0001", "personnage", "personnage.submitted", None, NOW,
        {"nom": "Naruto", "score": 85, "niveau": "expert"}), "5f0a1c2e-0003-4b7e-9a51-6c1d2e3f4a03"))
    visit = {"visit_id": "48213", "site_id": 1, "time": iso(NOW - 86_400), "user_id": "ada.lovelace@example.com",
             "goals": ["Demo booked"], "actions": 7}
    write("processor-matomo-visit.json", event_delivery(canonical(
        "matomo-1-48213", "matomo", "matomo.visit", None, NOW - 86_400, visit), "5f0a1c2e-0004-4b7e-9a51-6c1d2e3f4a04"))
    write("processor-malformed.json", sns_delivery(
        "tributary-events", "{not a canonical event", {"source": "stripe", "type": "stripe.invoice.paid"},
        "5f0a1c2e-0005-4b7e-9a51-6c1d2e3f4a05"))

    # The read API, with the demo API key (events/local-secrets.json, `_api_key`).
    api_key = json.loads((EVENTS / "local-secrets.json").read_text())["_api_key"]
    bearer = {"authorization": f"Bearer {api_key}", "accept": "application/json"}
    customer = "6b1f9c52-3c1e-4f7e-8a9d-2e5b7c1d0a11"
    write("api-get-customer.json", api_request("GET", f"/api/v1/customers/{customer}", bearer, None, "api-customer"))
    write("api-get-customer-audit.json", api_request(
        "GET", f"/api/v1/customers/{customer}/audit", bearer, None, "api-audit", "limit=20"))
    write("api-find-customer-by-email.json", api_request(
        "GET", "/api/v1/customers", bearer, None, "api-find", "email=ada.lovelace@example.com"))
    leads = [
        {"id": "lead-0001", "nom": "Ada Lovelace", "email": "ada.lovelace@example.com", "telephone": "06 12 34 56 78",
         "date_prise_contact": "2026-11-02", "date_reponse_prospect": "2026-11-04", "date_appel_propose": "2026-11-05",
         "statut": "appel_propose"},
        {"id": "lead-0002", "nom": "Grace Hopper", "email": "grace@example.com", "date_prise_contact": "2026-11-10",
         "statut": "contacte"},
    ]
    write("api-ingest-leads.json", api_request(
        "POST", "/api/v1/ingestion/leads", {**bearer, "content-type": "application/json"}, json.dumps(leads, ensure_ascii=False),
        "api-ingest"))
    bad_leads = [leads[0], {"id": "", "nom": "Nobody", "email": "not-an-address", "date_relance": "31/12/2026", "statut": "hot"}]
    write("api-ingest-leads-invalid.json", api_request(
        "POST", "/api/v1/ingestion/leads", {**bearer, "content-type": "application/json"}, json.dumps(bad_leads, ensure_ascii=False),
        "api-ingest-invalid"))
    write("api-get-customer-unauthorized.json", api_request(
        "GET", f"/api/v1/customers/{customer}", {"accept": "application/json"}, None, "api-unauthorized"))

    # What the integrator receives from the updates topic.
    update = canonical("6b1f9c52-3c1e-4f7e-8a9d-2e5b7c1d0a11:1", "processor", "customer.updated",
                       "customer:6b1f9c52-3c1e-4f7e-8a9d-2e5b7c1d0a11", NOW,
                       {"customer_id": "6b1f9c52-3c1e-4f7e-8a9d-2e5b7c1d0a11", "version": 1,
                        "changed_fields": ["billing.stripe_customer", "identity.email", "identity.nom",
                                           "billing.last_payment", "billing.totals.eur"],
                        "event_id": stripe_event["id"]})
    write("integrator-customer-updated.json", sns_delivery(
        "tributary-updates", json.dumps(update), {"source": "processor", "type": "customer.updated"},
        "5f0a1c2e-0006-4b7e-9a51-6c1d2e3f4a06"))

    # What the puller receives from its EventBridge schedules (the template passes the bare
    # `Input`; an EventBridge envelope with the request as `detail` is accepted too).
    for job, extra in (("matomo", {"sites": [1]}), ("notion", {})):
        write(f"puller-scheduled-{job}.json", {
            "version": "0", "id": f"d1f8c6a2-7b3e-4c51-9a0d-{'1' if job == 'matomo' else '2'}2e4f6a8b0c1d",
            "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
            "time": iso(NOW), "region": "us-east-1",
            "resources": [f"arn:aws:events:us-east-1:123456789012:rule/tributary-Puller{job.title()}Pull"],
            "detail": {"job": job, **extra},
        })

    # The aggregator's routes (same API key).
    for name, path, query in (
        ("aggregator-count-by-week.json", "/api/v1/transformation/count_date_by_week", "tz=Europe/Paris&from=2026-01-01"),
        ("aggregator-count-by-month.json", "/api/v1/transformation/count_date_by_month", ""),
        ("aggregator-monthly-report.json", "/api/v1/reports/monthly", "month=2026-11"),
        ("aggregator-monthly-report-xlsx.json", "/api/v1/reports/monthly", "month=2026-11&format=xlsx"),
        ("aggregator-alerts.json", "/api/v1/alerts", ""),
        ("aggregator-ingestion-status.json", "/api/v1/ingestion/status", ""),
        ("aggregator-count-bad-date.json", "/api/v1/transformation/count_date_by_week", "from=01/02/2026"),
    ):
        write(name, api_request("GET", path, bearer, None, name.removesuffix(".json"), query))
    # The aggregator's monthly schedule (an EventBridge envelope; the bare input is accepted too).
    write("aggregator-jobs-monthly.json", {
        "version": "0", "id": "d1f8c6a2-7b3e-4c51-9a0d-32e4f6a8b0c1d", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": iso(NOW), "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tributary-AggregatorJobsMonthly"],
        "detail": {"job": "monthly-report"},
    })
    # The hourly schedule that keeps each lead's latest dates beside the leads table.
    write("aggregator-jobs-latest-dates.json", {
        "version": "0", "id": "5b0e2c7d-94a1-4f6e-8d3b-7a1c9e2f4b60", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": iso(NOW), "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tributary-AggregatorJobsLatestDates"],
        "detail": {"job": "latest-dates"},
    })

    # A rebuild request, as invoked by hand: every customer a Stripe event touched.
    write("rebuild-stripe-customers.json", {"event_type": "stripe."})

    # A replay's dry run, as invoked by hand: how many deliveries of the day around NOW would be
    # published again, by type.
    write("replay-dry-run.json", {"from": iso(NOW - 86_400), "to": iso(NOW + 86_400), "dry_run": True})

    # The daily lake maintenance (the schedule passes no input: every run maintains every table).
    write("lake-maintenance-scheduled.json", {
        "version": "0", "id": "d1f8c6a2-7b3e-4c51-9a0d-42e4f6a8b0c1d", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": iso(NOW), "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tributary-LakeMaintenanceDaily"],
        "detail": {},
    })

    # An SQS batch for the lake writer (raw delivery: each body is a canonical event); the third
    # record is not an event and comes back in batchItemFailures.
    lake_bodies = [
        json.dumps(canonical("ingestion:lead-0001:3f9a2c1b", "ingestion", "lead.upserted", "lead:lead-0001", NOW - 3600, leads[0])),
        json.dumps(canonical(stripe_event["id"], "stripe", "stripe.invoice.paid", "email:ada.lovelace@example.com",
                             NOW - 7200, {"id": "in_demo", "amount_paid": 4200})),
        "{not a canonical event",
    ]
    write("lake-writer-sqs-batch.json", {"Records": [
        {"messageId": f"7c2d9e10-0000-4a8b-9c1d-00000000000{i}", "receiptHandle": f"AQEB-demo-{i}", "body": body,
         "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str((NOW - 60) * 1000),
                        "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": str((NOW - 59) * 1000)},
         "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(), "eventSource": "aws:sqs",
         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tributary-LakeWriterQueue", "awsRegion": "us-east-1"}
        for i, body in enumerate(lake_bodies)
    ]})
    written = sorted(p.name for p in OUT.glob("*.json") if p.name not in ("local-secrets.json", "answers.json"))
    listed = sorted(name for name, _, _ in ANSWERS)
    if written != listed:
        raise SystemExit(f"answers.json must list every sample: missing {set(written) - set(listed)}, "
                         f"unknown {set(listed) - set(written)}")
    (EVENTS / "answers.json").write_text(json.dumps(
        [{"sample": name, "function": function, "expect": expect} for name, function, expect in ANSWERS],
        indent=1) + "\n")


if __name__ == "__main__":
    main()
