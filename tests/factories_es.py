"""Stand-ins for an Elasticsearch cluster over real HTTP on 127.0.0.1 (served with tests.servers.serving): the JSON answer they share."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


class FakeElasticsearch(BaseHTTPRequestHandler):
    """Subclasses answer with `answer`; the product header is what the official client checks before trusting a reply."""

    def answer(self, status: int, body: dict | None = None) -> None:
        payload = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, *args) -> None:
        pass
