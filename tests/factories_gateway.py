"""A running gateway over a real data directory, in front of a recording upstream on 127.0.0.1."""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.audit import LocalAuditLog
from pipeline.gateway import Gateway, serve
from pipeline.passwords import hash_password
from tests.datadirs import make_app
from tests.factories_es import FakeElasticsearch
from tests.factories_pipeline import make_tasking
from tests.servers import running, serving

NOW = datetime.now(timezone.utc)
PASSWORD = "correct horse battery"
LIVE = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))


def doc(doc_id: str, tasking: str) -> dict:
    return {"_index": "fcmon-records-v1", "_id": doc_id, "found": True, "_source": {"fcm": {"tasking_id": tasking}}}


class Upstream(FakeElasticsearch):
    """Records what it receives (and how many query entries the audit log held at that moment)."""
    received: list[dict] = []
    audit_dir = None
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        body = self.read_body()
        queries = len(list(LocalAuditLog(self.audit_dir / "audit.db", self.audit_dir / "audit.head").entries(["query"])))
        self.received.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                              "body": body.decode(), "queries_logged": queries})
        if "/_doc/yaml" in self.path:  # an answer in a form the gateway cannot check
            self.send_response(200)
            self.send_header("Content-Type", "application/yaml")
            self.send_header("Content-Length", "14")
            self.end_headers()
            self.wfile.write(b"found: true\n_x\n")
            return
        if "_msearch" in self.path:
            answer = {"responses": [{"hits": {"total": {"value": 3}, "hits": [{"_id": "a"}]}},
                                    {"hits": {"total": {"value": 1}, "hits": [{"_id": "b"}]}}]}
        elif "_count" in self.path:
            answer = {"count": 5}
        elif self.path.endswith("/_pit") or "/_pit?" in self.path:
            answer = {"id": "pit-1"}
        elif "_async_search" in self.path:
            answer = {"id": "async-1", "is_running": False, "response": {"hits": {"total": {"value": 1}, "hits": [{"_id": "r1"}]}}}
        elif "_search" in self.path:
            answer = {"hits": {"total": {"value": 2, "relation": "eq"}, "hits": [{"_id": "r1"}, {"_id": "r2"}]}}
            if "scroll=" in self.path or "/_search/scroll" in self.path:
                answer["_scroll_id"] = "scroll-1"
        elif "/_doc/" in self.path:
            answer = doc("own", "T-1") if self.path.endswith("/own") else doc("foreign", "T-2")
        elif "/_source/" in self.path:
            answer = {"fcm": {"tasking_id": "T-1" if self.path.endswith("/own") else "T-2"}}
        elif self.command == "GET" and self.path == "/":
            answer = {"name": "es", "version": {"number": "8.15.0"}, "tagline": "You Know, for Search"}
        else:
            answer = {"result": "created"}
        self.answer(200, answer)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def setup(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE), make_tasking(id="T-2", requested_by="sue", **LIVE),
                   make_tasking(id="T-old", approved_at=NOW - timedelta(days=40), expires_at=NOW - timedelta(days=1)))
    app.state.add_user("fcmon", "admin")
    app.state.add_user("kibana_system", "admin")
    for name in ("alice", "sam", "fcmon", "kibana_system"):
        app.state.set_password_hash(name, hash_password(PASSWORD))
    Upstream.received, Upstream.audit_dir = [], tmp_path / "d"
    with serving(Upstream) as upstream:
        proxy = Gateway(app.state, app.audit, upstream, records_alias="fcmon-records", service_account="fcmon",
                        kibana_account="kibana_system", upstream_auth=("fcmon-es", "es-secret"))
        with running(serve(proxy, "127.0.0.1", 0)) as base:
            yield app, base, tmp_path


def call(base: str, method: str, path: str, body: object = None, user: str | None = "alice", password: str = PASSWORD,
         tasking: str | None = "T-1", ndjson: bool = False, raw: bytes | None = None, content_type: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = raw
    if body is not None:
        data = ("\n".join(json.dumps(b) for b in body) + "\n").encode() if ndjson else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    request.add_header("Content-Type", content_type or ("application/x-ndjson" if ndjson else "application/json"))
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    if tasking:
        request.add_header("X-Fcmon-Tasking", tasking)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as answer:
        return answer.code, json.loads(answer.read() or b"{}")


