#!/usr/bin/env python3
"""Drives the console in headless Chromium against a running demo stack, as a person would.

Signs in with the API key, visits each page, checks what it shows against the API's own answers,
re-drives the failed pushes the demo injected from the Failures page, logs out, and writes a
screenshot of each page. Prints one JSON line: what it saw. Exit status 1 on any failed check.

    TRIBUTARY_API_KEY=KEY python3 tests/console/check_console.py --base http://127.0.0.1:3000 \
        --out .local/console --email camille.martin@example.com --month 2026-10 --queue integrator-dead-letters

The key comes from the environment, never a command line (which any local user can read).
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import urllib.request

from playwright.sync_api import sync_playwright

WIDTHS = {"laptop": (1280, 900), "phone": (390, 844)}


def api(base, key, path):
    request = urllib.request.Request(base + path, headers={"authorization": "Bearer " + key})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the stack's HTTP API, e.g. http://127.0.0.1:3000")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="where the screenshots go")
    parser.add_argument("--email", required=True, help="a customer the demo created")
    parser.add_argument("--month", required=True, help="a month of the demo's leads (YYYY-MM)")
    parser.add_argument("--queue", required=True, help="the failure queue holding the injected failures")
    # Debian's launcher script wraps the binary; Playwright starts the binary itself.
    default_browser = "/usr/lib/chromium/chromium" if pathlib.Path("/usr/lib/chromium/chromium").exists() else shutil.which("chromium")
    parser.add_argument("--browser", default=default_browser or "chromium", help="the Chromium binary")
    args = parser.parse_args()
    args.key = os.environ.get("TRIBUTARY_API_KEY", "")
    if not args.key:
        parser.error("set TRIBUTARY_API_KEY to an API key")
    args.out.mkdir(parents=True, exist_ok=True)
    problems, seen, errors, urls, dialogs = [], {}, [], [], []

    def expect(what, ok, detail=""):
        if not ok:
            problems.append(f"{what}: {detail}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.browser, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: urls.append(request.url))
        # Every confirmation (re-drive, rebuild) is accepted, as the operator would; each is counted.
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))

        def no_overflow(where):
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            expect(f"{where} at a phone's width", overflow <= 1, f"the page is {overflow}px wider than the screen")

        def download_is_xlsx(button, what):
            with page.expect_download(timeout=60_000) as download:
                page.click(button)
            head = pathlib.Path(download.value.path()).read_bytes()[:2]
            expect(what, head == b"PK", f"the download starts with {head!r}, not a workbook's PK")

        page.goto(args.base + "/console")
        expect("the sign-in form", page.is_visible("#login-form"))
        expect("no page before sign-in", not page.is_visible("#nav"), "the navigation shows before sign-in")
        page.fill("#api-key", args.key)
        page.click("#login-form button[type=submit]")

        # Leads: one point per bucket the API returns, for each date.
        page.wait_for_selector("#leads-chart svg .point", timeout=60_000)
        buckets = api(args.base, args.key, "/api/v1/transformation/count_date_by_week?tz=UTC")
        points = page.locator('#leads-chart svg g[data-series="date_prise_contact"] .point').count()
        seen["leads_buckets"], seen["leads_points"] = len(buckets), points
        expect("leads chart", points == len(buckets) and points > 0, f"{points} points for {len(buckets)} weeks")
        shown = [[cell.strip() for cell in row] for row in page.eval_on_selector_all(
            "#leads-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")]
        columns = ["date_prise_contact", "date_reponse_prospect", "date_appel_propose", "date_appel_booke", "date_relance"]
        wanted = [[b["semaine"], *(str(b[c]) for c in columns)] for b in buckets]
        expect("leads table", shown == wanted, f"{shown[:2]} … for {wanted[:2]} …")
        page.fill("#funnel-form input[name=month]", args.month)
        page.click("#funnel-form button[type=submit]")
        page.wait_for_selector("#funnel tbody tr", timeout=60_000)
        seen["funnel_steps"] = page.locator("#funnel tbody tr").count()
        download_is_xlsx("#report-xlsx", "monthly report download")
        page.wait_for_selector("#alerts table", timeout=60_000)
        alerts = api(args.base, args.key, "/api/v1/alerts")["alerts"]
        seen["alerts"] = page.locator("#alerts tbody tr").count()
        expect("alerts table", seen["alerts"] == len(alerts), f"{seen['alerts']} rows for {len(alerts)} alerts")
        download_is_xlsx("#alerts-xlsx", "alerts download")
        page.screenshot(path=str(args.out / "leads.png"), full_page=False)

        # Customers: the demo customer, its record and its audit trail.
        page.click('nav a[data-page="customers"]')
        page.fill("#customer-query", args.email)
        page.click("#customer-form button[type=submit]")
        page.wait_for_selector("#audit li", timeout=60_000)
        seen["audit_entries"] = page.locator("#audit li").count()
        seen["customer_fields"] = page.locator("#customer section tbody tr").count()
        expect("customer fields", seen["customer_fields"] > 0, "no field shown")
        page.screenshot(path=str(args.out / "customers.png"), full_page=False)
        # The rebuild asks first, then says it is queued.
        page.click("#rebuild")
        # Selectors, not wait_for_function: the page's CSP forbids the eval a string predicate needs.
        page.locator("#status", has_text="Rebuild queued").wait_for(timeout=60_000)
        expect("rebuild confirmation", len(dialogs) == 1, f"{len(dialogs)} confirmation(s) asked")

        # Runs: the history the API answers.
        page.click('nav a[data-page="runs"]')
        page.wait_for_selector("#runs-list tbody tr", timeout=60_000)
        seen["runs"] = page.locator("#runs-list tbody tr").count()
        seen["tallies"] = page.locator("#tallies tbody tr").count()
        expect("tallies", seen["tallies"] > 0, "no deliveries, pushes or commits counted")
        page.screenshot(path=str(args.out / "runs.png"), full_page=False)

        # Failures: the injected failures listed, re-driven from the page.
        page.click('nav a[data-page="failures"]')
        queue = page.locator(f'section[data-queue="{args.queue}"]')
        queue.locator("tbody tr").first.wait_for(timeout=60_000)
        seen["failures_listed"] = queue.locator("tbody tr").count()
        page.screenshot(path=str(args.out / "failures.png"), full_page=False)
        queue.get_by_role("button", name="Re-drive all").click()
        page.locator("#failures-list .outcome", has_text="Re-drive done").first.wait_for(timeout=60_000)
        seen["redrive_outcome"] = page.locator(".outcome").first.inner_text()
        expect("re-drive confirmation", len(dialogs) == 2, f"{len(dialogs)} confirmation(s) asked in all")
        page.screenshot(path=str(args.out / "failures-redriven.png"), full_page=False)

        # A phone's width: every page still lays out (nothing wider than the screen).
        page.set_viewport_size({"width": 390, "height": 844})
        no_overflow("failures")
        page.click('nav a[data-page="runs"]')
        page.wait_for_selector("#runs-list tbody tr", timeout=60_000)
        no_overflow("runs")
        page.click('nav a[data-page="customers"]')
        page.wait_for_selector("#audit li", timeout=60_000)
        no_overflow("customers")
        page.click('nav a[data-page="leads"]')
        page.wait_for_selector("#leads-chart svg", timeout=60_000)
        no_overflow("leads")
        page.screenshot(path=str(args.out / "leads-phone.png"), full_page=False)

        # Logging out forgets the key.
        page.click("#logout")
        expect("logged out", page.is_visible("#login-form"), "the sign-in form is not back")
        stored = page.evaluate("sessionStorage.length")
        expect("key forgotten", stored == 0, f"{stored} item(s) left in session storage")
        expect("nothing left shown", page.locator("#customer *").count() == 0, "the customer is still in the page")
        expect("no page after logout", not page.is_visible("#nav"), "the navigation shows after logout")
        browser.close()

    expect("console errors", not errors, "; ".join(errors[:5]))
    expect("key never in a URL", not any(args.key in url for url in urls), "a request carried the key in its URL")
    seen["problems"] = problems
    print(json.dumps(seen))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
