#!/usr/bin/env python3
"""The demo's outside world on one local port: Matomo, Notion and a CRM that receives the
integrator's pushes, serving the data of tests/demo/ (scripts/generate-demo-data.py).

  /matomo/index.php   Matomo's HTTP API: Live.getLastVisitsDetails (period=day, filter_limit,
                      filter_offset), CustomDimensions.getConfiguredCustomDimensions, Goals.getGoals;
                      token_auth accepted in the POST body only; errors as {"result":"error"} (HTTP 200)
  /notion/v1/...      Notion 2025-09-03: GET databases/{id}, POST data_sources/{id}/query (filter on
                      last_edited_time on_or_after, ascending, page_size, start_cursor); and the
                      2022-06-28 POST databases/{id}/query; bearer token and Notion-Version checked
  /crm/contacts       POST: records a push (bearer token checked); GET: every push received
  /crm/_outage        POST {"down": true|false}: while down, pushes are answered 503 (the demo's repair)
  /_stats             requests served, for the demo's progress lines

Usage: demo-sources.py --data tests/demo --port 0 --matomo-token T --notion-token N --crm-token C
Prints "listening on <port>" once ready.
"""

import argparse
import json
import pathlib
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sources:
    def __init__(self, data_dir, matomo_token, notion_token, crm_token):
        self.sites = {}
        for path in sorted(pathlib.Path(data_dir).glob("matomo-site-*.json")):
            site = json.loads(path.read_text())
            self.sites[str(site["site"])] = site
        notion = json.loads((pathlib.Path(data_dir) / "notion-leads.json").read_text())
        self.database = notion["database"]
        self.pages = sorted(notion["pages"], key=lambda p: (p["last_edited_time"], p["id"]))
        self.matomo_token, self.notion_token, self.crm_token = matomo_token, notion_token, crm_token
        self.lock = threading.Lock()
        self.stats = {"matomo_requests": 0, "notion_requests": 0, "crm_pushes": 0, "crm_refused": 0}
        self.pushes = []
        self.crm_down = False

    def count(self, key):
        with self.lock:
            self.stats[key] += 1

    # ---- Matomo

    def matomo(self, query, form):
        self.count("matomo_requests")
        if "token_auth" in query:
            return {"result": "error", "message": "token_auth must be sent in the POST body"}
        if form.get("token_auth") != self.matomo_token:
            return {"result": "error", "message": "You can't access this resource as it requires 'view' access."}
        site = self.sites.get(query.get("idSite", ""))
        if site is None:
            return {"result": "error", "message": f"The site id {query.get('idSite')} is not valid."}
        method = query.get("method")
        if method == "CustomDimensions.getConfiguredCustomDimensions":
            return site["custom_dimensions"]
        if method == "Goals.getGoals":
            return site["goals"]
        if method == "Live.getLastVisitsDetails":
            if query.get("period") != "day":
                return {"result": "error", "message": "the demo serves period=day only"}
            try:
                limit = int(query.get("filter_limit", "100"))
                offset = int(query.get("filter_offset", "0"))
            except ValueError:
                return {"result": "error", "message": "filter_limit and filter_offset are numbers"}
            visits = site["visits"].get(query.get("date", ""), [])
            if query.get("filter_sort_order", "desc") != "asc":
                visits = list(reversed(visits))
            return visits[offset:offset + limit] if limit >= 0 else visits[offset:]
        return {"result": "error", "message": f"The method '{method}' does not exist or is not available."}

    # ---- Notion

    def notion(self, method, path, headers, body):
        self.count("notion_requests")
        if headers.get("authorization") != f"Bearer {self.notion_token}":
            return 401, {"object": "error", "status": 401, "code": "unauthorized", "message": "API token is invalid."}
        version = headers.get("notion-version", "")
        parts = path.strip("/").split("/")
        if method == "GET" and parts[:2] == ["v1", "databases"] and len(parts) == 3:
            if parts[2] != self.database["id"] or version < "2025-09-03":
                return 404, not_found(parts[2])
            return 200, self.database
        if method == "POST" and len(parts) == 4 and parts[3] == "query":
            if parts[1] == "data_sources" and parts[2] in [d["id"] for d in self.database["data_sources"]]:
                return 200, self.query(body)
            if parts[1] == "databases" and parts[2] == self.database["id"] and version < "2025-09-03":
                return 200, self.query(body)
            return 404, not_found(parts[2])
        return 400, {"object": "error", "status": 400, "code": "invalid_request_url", "message": "Invalid request URL."}

    def query(self, body):
        pages = self.pages
        after = (((body.get("filter") or {}).get("last_edited_time") or {}).get("on_or_after"))
        if after:
            # Notion compares instants; the demo's times are all UTC with a Z.
            threshold = after.replace("+00:00", "Z")[:16]
            pages = [p for p in pages if p["last_edited_time"][:16] >= threshold]
        size = min(int(body.get("page_size", 100)), 100)
        start = int(body.get("start_cursor") or 0)
        chunk = pages[start:start + size]
        more = start + size < len(pages)
        return {"object": "list", "results": chunk, "next_cursor": str(start + size) if more else None,
                "has_more": more, "type": "page_or_data_source", "page_or_data_source": {}}

    # ---- CRM

    def crm(self, method, headers, body):
        if method == "GET":
            with self.lock:
                return 200, {"pushes": list(self.pushes)}
        if headers.get("authorization") != f"Bearer {self.crm_token}":
            return 401, {"error": "unauthorized"}
        with self.lock:
            if self.crm_down:
                self.stats["crm_refused"] += 1
                return 503, {"error": "down for the demo"}
            self.pushes.append({"idempotency_key": headers.get("idempotency-key"), "body": body})
            self.stats["crm_pushes"] += 1
        return 201, {"ok": True}


def not_found(object_id):
    return {"object": "error", "status": 404, "code": "object_not_found",
            "message": f"Could not find database with ID: {object_id}."}


def handler_for(sources):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the demo prints its own progress
            pass

        def answer(self, status, document):
            payload = json.dumps(document, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def handle_any(self, method):
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            query = dict(urllib.parse.parse_qsl(url.query))
            try:
                if url.path == "/matomo/index.php" and method == "POST":
                    form = dict(urllib.parse.parse_qsl(raw.decode()))
                    return self.answer(200, sources.matomo(query, form))
                if url.path.startswith("/notion/"):
                    body = json.loads(raw) if raw else {}
                    return self.answer(*sources.notion(method, url.path[len("/notion"):], headers, body))
                if url.path == "/crm/_outage" and method == "POST":
                    with sources.lock:
                        sources.crm_down = bool(json.loads(raw)["down"])
                    return self.answer(200, {"down": sources.crm_down})
                if url.path == "/crm/contacts":
                    body = json.loads(raw) if raw else None
                    return self.answer(*sources.crm(method, headers, body))
                if url.path == "/_stats":
                    with sources.lock:
                        return self.answer(200, dict(sources.stats))
                return self.answer(404, {"error": f"no route {method} {url.path}"})
            except (ValueError, KeyError) as error:
                return self.answer(400, {"error": str(error)})

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--matomo-token", required=True)
    parser.add_argument("--notion-token", required=True)
    parser.add_argument("--crm-token", required=True)
    args = parser.parse_args()
    sources = Sources(args.data, args.matomo_token, args.notion_token, args.crm_token)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(sources))
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
