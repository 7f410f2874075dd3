#!/usr/bin/env python3
"""Our hot paths next to the Python way, on the same input bytes, with the ratios (`make bench-compare`).

    .venv/bin/python scripts/bench-compare.py --criterion TARGET/criterion --pages DIR [--lake DIR]

Run by `make bench-compare` after the criterion benches it reads (each path's median from
`<criterion>/<group>/<bench>/new/estimates.json`); the Python side is timed here, pinned to the
same core when the caller pins the process (`taskset -c 0`), with the packages pinned in
requirements-tools.txt:

- webhook: `events/webhook-stripe-valid.json` (the 2 KB `invoice.paid` the Rust bench reads) through
  (a) a lean path: HMAC-SHA256 of the signed payload as Stripe's scheme says, a Pydantic model of the
  event, the canonical event built and serialised; (b) Stripe's SDK `Webhook.construct_event`, then the
  same canonical event;
- puller: the page of 1 000 varied visits the Rust bench wrote (`--pages`, `matomo-page.json`) through
  the seeds' way: `json`, `hmac` on the same twelve values per visit, dimension and goal names,
  a pyarrow table of the `matomo_visits` columns and Parquet (Snappy) in memory;
- aggregator: not here: `make bench-compare` then runs `scripts/bench-lake-counts.sh 1000000`, which
  times the aggregator's count statements and the same statements in Python DuckDB over the same
  Delta files, in one run.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent


def best_median(function, runs: int, repeat: int = 7) -> float:
    """Median over `repeat` rounds of the mean seconds per call over `runs` calls."""
    function()  # warm-up (imports, caches)
    rounds = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(runs):
            function()
        rounds.append((time.perf_counter() - started) / runs)
    return statistics.median(rounds)


def criterion_median(criterion: Path, group: str, bench: str) -> float:
    """Seconds per iteration: criterion's median estimate of the last run of that bench."""
    path = criterion / group / bench / "new" / "estimates.json"
    try:
        estimates = json.loads(path.read_text())
    except FileNotFoundError:
        sys.exit(f"bench-compare: {path} is missing: run the criterion bench first (make bench-compare does)")
    return estimates["median"]["point_estimate"] / 1e9


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Webhook


def webhook_paths():
    from pydantic import BaseModel, ConfigDict
    import stripe

    sample = json.loads((ROOT / "events/webhook-stripe-valid.json").read_text())
    body: bytes = sample["body"].encode()
    header: str = sample["headers"]["stripe-signature"]
    now = sample["requestContext"]["timeEpoch"] // 1000
    secrets = json.loads((ROOT / "events/local-secrets.json").read_text())
    secret: str = secrets["/tributary/stripe-signing-secret"]

    class StripeData(BaseModel):
        model_config = ConfigDict(extra="allow")
        object: dict[str, Any]

    class StripeEvent(BaseModel):
        model_config = ConfigDict(extra="allow")
        id: str
        object: Literal["event"]
        type: str
        created: int
        livemode: bool = False
        api_version: str | None = None
        data: StripeData

    def canonical(event_id: str, event_type: str, created: int, payload: Any) -> str:
        return json.dumps({
            "id": event_id, "source": "stripe", "type": f"stripe.{event_type}",
            "occurred_at": iso(created), "received_at": iso(now), "payload": payload,
        })

    def lean() -> str:
        parts = [part.split("=", 1) for part in header.split(",")]
        timestamp = int(next(value for key, value in parts if key == "t"))
        signatures = [value for key, value in parts if key == "v1"]
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected, signature) for signature in signatures):
            raise ValueError("bad signature")
        if abs(now - timestamp) > 300:
            raise ValueError("too old")
        payload = json.loads(body)
        event = StripeEvent.model_validate(payload)
        return canonical(event.id, event.type, event.created, payload)

    def sdk() -> str:
        # The sample is signed at a fixed instant: a tolerance wide enough that the SDK's clock
        # check passes (the signature is still verified).
        event = stripe.Webhook.construct_event(body, header, secret, tolerance=10**10)
        return canonical(event.id, event.type, event.created, event.to_dict())

    assert json.loads(lean())["id"] == json.loads(sdk())["id"] == "evt_1QxTributaryDemo0001"
    return lean, sdk


# ---------------------------------------------------------------------------------------------
# Puller

KEY = b"bench-key"  # the Rust bench's anonymisation key
DIMENSIONS = {"1": "plan", "2": "cohort", "3": "page_kind"}
GOALS = {"2": "Trial started"}


def matomo_path(page_file: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    body = page_file.read_bytes()
    schema = pa.schema([
        pa.field("site_id", pa.int32(), False), pa.field("day", pa.date32(), False),
        pa.field("id_visit", pa.int64(), False), pa.field("visitor_id", pa.string()),
        pa.field("user_id", pa.string()), pa.field("first_action_at", pa.timestamp("us", "UTC")),
        pa.field("last_action_at", pa.timestamp("us", "UTC")), pa.field("actions", pa.int32()),
        pa.field("visit_duration_s", pa.int32()), pa.field("goal_conversions", pa.int32()),
        pa.field("visit", pa.string(), False), pa.field("pulled_at", pa.timestamp("us", "UTC"), False),
    ])
    day = datetime(2025, 3, 3).date()
    pulled_at = datetime(2025, 3, 4, tzinfo=timezone.utc)

    def anonymise(value: Any) -> Any:
        if value is None:
            return None
        return hmac.new(KEY, str(value).encode(), hashlib.sha256).hexdigest()

    def rename_dimensions(scope: dict) -> None:
        """`dimensionN` to its configured name, in a visit and in each of its actions."""
        for key in [k for k in scope if k.startswith("dimension") and k[9:] in DIMENSIONS]:
            scope[DIMENSIONS[key[9:]]] = scope.pop(key)

    def to_int(value: Any) -> int | None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    def process() -> int:
        visits = json.loads(body)
        columns: dict[str, list] = {field.name: [] for field in schema}
        for visit in visits:
            rename_dimensions(visit)
            visit["userId"] = anonymise(visit.get("userId"))
            visit["visitIp"] = anonymise(visit.get("visitIp"))
            actions = visit.get("actionDetails") or []
            for action in actions:
                rename_dimensions(action)
                for field in ("url", "subtitle"):
                    if field in action:
                        action[field] = anonymise(action[field])
                goal = action.get("goalId")
                if goal is not None and str(goal) in GOALS:
                    action["goalName"] = GOALS[str(goal)]
            first = to_int(visit.get("firstActionTimestamp"))
            last = to_int(visit.get("lastActionTimestamp"))
            columns["site_id"].append(1)
            columns["day"].append(day)
            columns["id_visit"].append(int(visit["idVisit"]))
            columns["visitor_id"].append(visit.get("visitorId"))
            columns["user_id"].append(visit["userId"])
            columns["first_action_at"].append(datetime.fromtimestamp(first, timezone.utc) if first else None)
            columns["last_action_at"].append(datetime.fromtimestamp(last, timezone.utc) if last else None)
            columns["actions"].append(len(actions))
            columns["visit_duration_s"].append(to_int(visit.get("visitDuration")))
            columns["goal_conversions"].append(to_int(visit.get("goalConversions")))
            columns["visit"].append(json.dumps(visit, ensure_ascii=False))
            columns["pulled_at"].append(pulled_at)
        table = pa.Table.from_pydict(columns, schema=schema)
        sink = io.BytesIO()
        # As the table's writer properties: no dictionary for the `visit` document column.
        dictionary = [field.name for field in schema if field.name != "visit"]
        pq.write_table(table, sink, compression="snappy", use_dictionary=dictionary)
        return table.num_rows

    return process, len(json.loads(body))


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--criterion", type=Path, required=True, help="criterion's output folder (TARGET/criterion)")
    parser.add_argument("--pages", type=Path, required=True, help="where the puller bench wrote matomo-page.json")
    args = parser.parse_args()

    rows = []
    lean, sdk = webhook_paths()
    ours = criterion_median(args.criterion, "stripe_2kb", "verify+parse+validate+normalise+serialise")
    for name, function, runs in (("lean: hmac + Pydantic", lean, 20_000), ("Stripe SDK construct_event", sdk, 2_000)):
        theirs = best_median(function, runs)
        rows.append(("webhook, 2 KB Stripe event, per event", f"{ours * 1e6:.2f} µs", name, f"{theirs * 1e6:.2f} µs", theirs / ours))

    process, visits = matomo_path(args.pages / "matomo-page.json")
    ours = criterion_median(args.criterion, "matomo_visits", "parse_name_anonymise_arrow_parquet")
    theirs = best_median(process, 3, repeat=5)
    rows.append((
        f"puller, page of {visits} visits to Parquet", f"{visits / ours:,.0f} visits/s",
        "json + hmac + pyarrow", f"{visits / theirs:,.0f} visits/s", theirs / ours,
    ))

    print()
    print("| path | ours | Python way | Python | ratio (Python time / ours) |")
    print("|---|---|---|---|---|")
    for path, our, way, their, ratio in rows:
        print(f"| {path} | {our} | {way} | {their} | {ratio:.1f}× |")


if __name__ == "__main__":
    main()
