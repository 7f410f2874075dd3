#!/usr/bin/env python3
"""Writes the demo data of `make demo` into tests/demo/ (deterministic: same files every run).

- matomo-site-1.json, matomo-site-2.json: 30 days of visits (October 2026) in the shape of Matomo's
  Live.getLastVisitsDetails, with actions, events, goal conversions and custom dimensions; site 1
  has custom dimensions, site 2 has none; one day of site 2 has no visit at all, one has exactly
  the demo's page size (10).
- notion-leads.json: 200 pages of a Notion data source (API 2025-09-03 shapes): realistic date
  sequences, some leads stuck, some with inverted dates, some without optional properties.
- api-leads.json: a batch of 5 leads for POST /api/v1/ingestion/leads.
- expected.json: what the demo must show, computed here in plain Python from the same data: weekly
  and monthly counts of each date column (UTC), the alerts (rule and lead), visit totals.

Usage: python3 scripts/generate-demo-data.py
"""

import datetime as dt
import hashlib
import json
import pathlib
import random
import uuid

from lead_fields import LEAD_DATE_FIELDS

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "demo"
FIRST_DAY = dt.date(2026, 10, 1)
DAYS = 30
PAGE_SIZE = 10  # the demo's MatomoPageSize
# The day the expected alerts are computed for. Every date a threshold applies to (first contact,
# proposed and booked call) is more than 7 days before it, so the alerts are the same on any later day.
AS_OF = dt.date(2026, 11, 23)
STAR = "camille.martin@example.com"

rng = random.Random(20261123)

FIRST_NAMES = ["Camille", "Lucas", "Léa", "Hugo", "Chloé", "Louis", "Manon", "Gabriel", "Inès", "Arthur",
               "Jade", "Jules", "Louise", "Adam", "Alice", "Raphaël", "Emma", "Paul", "Lina", "Nathan"]
LAST_NAMES = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
              "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux"]


def ascii_slug(text):
    table = str.maketrans("éèêëàâäîïôöùûüç", "eeeeaaaiioouuuc")
    return text.lower().translate(table).replace(" ", "")


def stable_uuid(*parts):
    return str(uuid.UUID(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:32]))


# ---------------------------------------------------------------- people (leads and visitors)

people = []
for i in range(200):
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{ascii_slug(first)}.{ascii_slug(last)}{i}@example.com"
    people.append((f"{first} {last}", email))
people[0] = ("Camille Martin", STAR)

# ---------------------------------------------------------------- Matomo

PAGES = ["/", "/pricing", "/features", "/blog/delta-lake", "/docs/quickstart", "/signup", "/contact"]
GOALS = {"1": "Newsletter signup", "2": "Trial started", "3": "Demo requested"}


def visit(site, id_visit, day, user):
    start = dt.datetime.combine(day, dt.time(rng.randint(7, 21), rng.randint(0, 59), rng.randint(0, 59)),
                                tzinfo=dt.timezone.utc)
    t = int(start.timestamp())
    details = []
    for position in range(1, rng.randint(2, 5) + 1):
        path = rng.choice(PAGES)
        action = {
            "type": "action", "url": f"https://shop.example.com{path}", "pageTitle": path.strip("/") or "home",
            "pageIdAction": 1200 + PAGES.index(path), "idpageview": f"pv{id_visit}{position}",
            "serverTimePretty": (start + dt.timedelta(seconds=t % 60)).strftime("%b %-d, %Y %H:%M:%S"),
            "timeSpent": rng.randint(3, 180), "pageviewPosition": position, "timestamp": t,
            "title": path.strip("/") or "home", "subtitle": f"https://shop.example.com{path}",
            "pageLoadTimeMilliseconds": rng.randint(120, 900),
        }
        if site == 1:
            action["dimension3"] = (path.strip("/").split("/") or ["home"])[0] or "home"
        details.append(action)
        t += rng.randint(5, 120)
    goals = 0
    if rng.random() < 0.35:
        goal_id = rng.choice(list(GOALS))
        details.append({"type": "event", "url": details[-1]["url"], "eventCategory": "cta", "eventAction": "click",
                        "eventName": GOALS[goal_id].lower().replace(" ", "-"), "timestamp": t,
                        "title": "Event", "subtitle": 'Category: "cta", Action: "click"'})
        details.append({"type": "goal", "goalName": GOALS[goal_id], "goalId": int(goal_id), "revenue": 0,
                        "url": details[-1]["url"], "timestamp": t, "title": "Goal conversion",
                        "subtitle": GOALS[goal_id]})
        goals = 1
    last = t
    row = {
        "idSite": site, "idVisit": id_visit,
        "visitIp": f"198.51.100.{rng.randint(1, 254)}",
        "visitorId": hashlib.sha256(f"visitor{user or id_visit}".encode()).hexdigest()[:16],
        "fingerprint": hashlib.sha256(f"fp{id_visit}".encode()).hexdigest()[:16],
        "actionDetails": details,
        "goalConversions": goals,
        "serverDate": day.isoformat(),
        # Matomo sends some numbers as strings.
        "visitServerHour": str(start.hour),
        "lastActionTimestamp": last,
        "lastActionDateTime": dt.datetime.fromtimestamp(last, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "serverTimestamp": last,
        "firstActionTimestamp": int(start.timestamp()),
        "userId": user,
        "visitorType": rng.choice(["new", "returning"]),
        "visitDuration": last - int(start.timestamp()),
        "actions": len([d for d in details if d["type"] == "action"]),
        "referrerType": rng.choice(["direct", "search", "campaign", "website"]),
        "deviceType": rng.choice(["Desktop", "Smartphone", "Tablet"]),
        "browserName": rng.choice(["Chrome", "Firefox", "Safari"]),
        "country": rng.choice(["France", "Belgium", "Switzerland", "Canada"]),
        "city": rng.choice(["Paris", "Lyon", "Bruxelles", "Genève", "Montréal"]),
        "totalEcommerceItems": "0",
    }
    if site == 1:
        row["dimension1"] = rng.choice(["free", "pro", "team"])
        row["dimension2"] = rng.choice(["autumn-2026", "newsletter", ""])
    return row


def site_data(site):
    id_visit = site * 100000
    visits = {}
    for offset in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=offset)
        if site == 2 and offset == 6:
            count = 0  # a day with no visit at all
        elif site == 2 and offset == 13:
            count = PAGE_SIZE  # exactly one full page: the next, empty page ends the day
        else:
            count = rng.randint(5, 24)
        rows = []
        for _ in range(count):
            id_visit += 1
            known = rng.random() < 0.3
            user = rng.choice(people[:60])[1] if known else None
            rows.append(visit(site, id_visit, day, user))
        # The star customer visits site 1 on a few days.
        if site == 1 and offset in (2, 9, 20):
            id_visit += 1
            rows.append(visit(site, id_visit, day, STAR))
        rows.sort(key=lambda r: r["firstActionTimestamp"])
        visits[day.isoformat()] = rows
    dimensions = [] if site == 2 else [
        {"idcustomdimension": "1", "idsite": "1", "name": "plan", "index": "1", "scope": "visit", "active": True,
         "extractions": [], "case_sensitive": True},
        {"idcustomdimension": "2", "idsite": "1", "name": "campaign_cohort", "index": "2", "scope": "visit",
         "active": True, "extractions": [], "case_sensitive": True},
        {"idcustomdimension": "3", "idsite": "1", "name": "page_kind", "index": "1", "scope": "action",
         "active": True, "extractions": [{"dimension": "url", "pattern": "/(\\w+)"}], "case_sensitive": False},
    ]
    goals = {gid: {"idsite": str(site), "idgoal": gid, "name": name, "description": "", "match_attribute": "manually",
                   "pattern": "", "pattern_type": "", "case_sensitive": "0", "allow_multiple": "0", "revenue": "0",
                   "deleted": "0"} for gid, name in GOALS.items()}
    return {"site": site, "custom_dimensions": dimensions, "goals": goals, "visits": visits}


# ---------------------------------------------------------------- leads

STATUT_LABEL = {"nouveau": "Nouveau", "contacte": "Contacté", "reponse_recue": "Réponse reçue",
                "appel_propose": "Appel proposé", "appel_booke": "Appel booké", "relance": "Relance",
                "gagne": "Gagné", "perdu": "Perdu"}


def lead_dates(kind):
    """The five dates (date objects or None) and the statut of a lead of `kind`."""
    contact = FIRST_DAY + dt.timedelta(days=rng.randint(-20, 24))
    d = {"date_prise_contact": contact, "date_reponse_prospect": None, "date_appel_propose": None,
         "date_appel_booke": None, "date_relance": None}
    if kind == "stuck_no_answer":
        return d, "contacte"
    d["date_reponse_prospect"] = contact + dt.timedelta(days=rng.randint(0, 4))
    if kind == "answered":
        return d, rng.choice(["reponse_recue", "perdu"])
    d["date_appel_propose"] = d["date_reponse_prospect"] + dt.timedelta(days=rng.randint(0, 3))
    if kind == "stuck_unbooked":
        return d, "appel_propose"
    d["date_appel_booke"] = d["date_appel_propose"] + dt.timedelta(days=rng.randint(1, 5))
    if kind == "stuck_no_follow_up":
        return d, "appel_booke"
    d["date_relance"] = d["date_appel_booke"] + dt.timedelta(days=rng.randint(0, 6))
    if kind == "inverted":
        # Answer recorded before the first contact: a data-entry slip the alerts must show.
        d["date_reponse_prospect"] = contact - dt.timedelta(days=rng.randint(1, 5))
        return d, "relance"
    return d, rng.choice(["relance", "gagne", "perdu"])


KINDS = (["complete"] * 120 + ["answered"] * 40 + ["stuck_no_answer"] * 14 + ["stuck_unbooked"] * 10
         + ["stuck_no_follow_up"] * 8 + ["inverted"] * 8)
rng.shuffle(KINDS)


def rich_text(text):
    return [{"type": "text", "text": {"content": text, "link": None},
             "annotations": {"bold": False, "italic": False, "strikethrough": False, "underline": False,
                             "code": False, "color": "default"}, "plain_text": text, "href": None}]


def date_property(value, with_time):
    if value is None:
        return {"id": "d", "type": "date", "date": None}
    if with_time:
        # A date-time with an offset, as Notion sends when a time is set (10:30 in Paris).
        start = f"{value.isoformat()}T10:30:00.000+02:00"
    else:
        start = value.isoformat()
    return {"id": "d", "type": "date", "date": {"start": start, "end": None, "time_zone": None}}


DATA_SOURCE = "7f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e1f"
DATABASE = "3a2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d"
notion_pages = []
leads = []  # what the lake will hold, for expected.json
edited = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.timezone.utc)
for index, kind in enumerate(KINDS):
    name, email = people[index]
    if index == 0:
        kind = "complete"
    dates, statut = lead_dates(kind)
    page_id = stable_uuid("lead", index)
    with_time = rng.random() < 0.15
    properties = {
        "Nom": {"id": "title", "type": "title", "title": rich_text(name)},
        "Statut": {"id": "s", "type": "status",
                   "status": {"id": stable_uuid("statut", statut), "name": STATUT_LABEL[statut], "color": "blue"}},
        "Prise de contact": date_property(dates["date_prise_contact"], with_time),
        "Réponse prospect": date_property(dates["date_reponse_prospect"], False),
        "Appel proposé": date_property(dates["date_appel_propose"], False),
        "Appel booké": date_property(dates["date_appel_booke"], with_time),
        "Relance": date_property(dates["date_relance"], False),
        "Notes": {"id": "n", "type": "rich_text", "rich_text": rich_text("demo lead")},
    }
    # Optional properties missing on some pages (as when a column was added after the page).
    if index % 9 != 4:
        properties["Email"] = {"id": "e", "type": "email", "email": email}
    if index % 5 != 3:
        properties["Téléphone"] = {"id": "t", "type": "phone_number",
                                   "phone_number": f"06 {rng.randint(10, 99)} {rng.randint(10, 99)} "
                                                   f"{rng.randint(10, 99)} {rng.randint(10, 99)}"}
    # Notion rounds times to the minute.
    edited += dt.timedelta(minutes=rng.randint(1, 90))
    notion_pages.append({
        "object": "page", "id": page_id,
        "created_time": edited.strftime("%Y-%m-%dT%H:%M:00.000Z"),
        "last_edited_time": edited.strftime("%Y-%m-%dT%H:%M:00.000Z"),
        "created_by": {"object": "user", "id": stable_uuid("user")},
        "last_edited_by": {"object": "user", "id": stable_uuid("user")},
        "cover": None, "icon": None,
        "parent": {"type": "data_source_id", "data_source_id": DATA_SOURCE, "database_id": DATABASE},
        "archived": False, "in_trash": False, "is_locked": False,
        "properties": properties,
        "url": f"https://www.notion.so/{page_id.replace('-', '')}", "public_url": None,
    })
    leads.append({"id": page_id, "nom": name, "statut": statut, "kind": kind, **dates})

api_leads = []
for n in range(5):
    name, email = people[200 - 1 - n]
    dates, statut = lead_dates("complete")
    lead = {"id": f"crm-2026-{n + 1:03d}", "nom": name, "email": email, "statut": statut,
            **{k: (v.isoformat() if v else None) for k, v in dates.items()}}
    api_leads.append(lead)
    leads.append({"id": lead["id"], "nom": name, "statut": statut, "kind": "complete", **dates})

# ---------------------------------------------------------------- expected

COLUMNS = LEAD_DATE_FIELDS


def iso_week(day):
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def counts(bucket_of, key):
    table = {}
    for lead in leads:
        for column in COLUMNS:
            day = lead[column]
            if day is not None:
                row = table.setdefault(bucket_of(day), {c: 0 for c in COLUMNS})
                row[column] += 1
    return [{key: bucket, **table[bucket]} for bucket in sorted(table)]


def alerts():
    found = []
    for lead in leads:
        c, r, p, b, rel = (lead[k] for k in ["date_prise_contact", "date_reponse_prospect", "date_appel_propose",
                                             "date_appel_booke", "date_relance"])
        closed = lead["statut"] in ("gagne", "perdu")
        if not closed and r is None and c is not None and c <= AS_OF - dt.timedelta(days=7):
            found.append(("no_answer_after_contact", lead["id"]))
        if not closed and b is None and p is not None and p <= AS_OF - dt.timedelta(days=5):
            found.append(("proposed_call_not_booked", lead["id"]))
        if not closed and b is not None and b <= AS_OF - dt.timedelta(days=2) and (rel is None or rel < b):
            found.append(("booked_call_without_follow_up", lead["id"]))
        if c is not None and any(x is not None and x < c for x in (r, p, b, rel)) or (
                b is not None and p is not None and b < p):
            found.append(("inverted_dates", lead["id"]))
    return [{"rule": rule, "lead_id": lead_id} for rule, lead_id in sorted(found)]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    sites = [site_data(1), site_data(2)]
    for data in sites:
        (OUT / f"matomo-site-{data['site']}.json").write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    (OUT / "notion-leads.json").write_text(json.dumps(
        {"database": {"object": "database", "id": DATABASE,
                      "title": rich_text("Leads"),
                      "data_sources": [{"id": DATA_SOURCE, "name": "Leads France"}]},
         "pages": notion_pages}, ensure_ascii=False, separators=(",", ":")) + "\n")
    (OUT / "api-leads.json").write_text(json.dumps(api_leads, ensure_ascii=False, indent=1) + "\n")
    visits = {str(d["site"]): sum(len(v) for v in d["visits"].values()) for d in sites}
    known = {str(d["site"]): sum(1 for v in d["visits"].values() for row in v if row["userId"]) for d in sites}
    expected = {
        "as_of": AS_OF.isoformat(),
        "first_day": FIRST_DAY.isoformat(),
        "last_day": (FIRST_DAY + dt.timedelta(days=DAYS - 1)).isoformat(),
        "page_size": PAGE_SIZE,
        "visits_by_site": visits,
        "known_visits_by_site": known,
        "notion_database": DATABASE,
        "notion_pages": len(notion_pages),
        "api_leads": len(api_leads),
        "leads": len(leads),
        "star_customer": STAR,
        "star_visits": sum(1 for d in sites for v in d["visits"].values() for row in v if row["userId"] == STAR),
        "count_by_week": counts(iso_week, "semaine"),
        "count_by_month": counts(lambda d: d.strftime("%Y-%m"), "mois"),
        "alerts": alerts(),
    }
    (OUT / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT}: {visits} visits, {len(notion_pages)} Notion pages, {len(api_leads)} API leads, "
          f"{len(expected['alerts'])} alerts")


if __name__ == "__main__":
    main()
