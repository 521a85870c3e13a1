"""A running gateway over a real data directory, in front of the session's real Elasticsearch (tests/stack.py).

The node holds real records of two taskings, put there through fcmon's own ElasticsearchIndex adapter, and a few
audit entries in the audit index (AuditIndexWriter), seeded once per test module and wiped after it. Between the
gateway and the node sits a tap: it passes every request and answer through unchanged and notes what reached
Elasticsearch (and how many queries the audit log held at that moment), so a test can show that a refused request
reached nothing and that a query was logged before Elasticsearch saw it. Everything a user gets back is the node's,
with one exception this distribution forces: it has no async search, so the tap answers that API from the node's
own _search (AsyncSearches).
"""
from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from pipeline.app import App
from pipeline.audit import LocalAuditLog
from pipeline.audit_index import AuditIndexWriter, audit_action
from pipeline.gateway import Gateway, serve
from pipeline.index.elasticsearch import ElasticsearchIndex
from pipeline.passwords import hash_password
from tests.datadirs import make_app
from tests.factories import make_record
from tests.factories_pipeline import make_tasking
from tests.servers import running
from tests.test_kibana_objects import objects as kibana_objects

NOW = datetime.now(UTC)
PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD)  # one scrypt for every user of every test
LIVE = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
RECORDS_ALIAS, AUDIT_ALIAS = "fcmon-records", "fcmon-audit"
WRITES_INDEX = "fcmon-test-gateway-writes"  # where the service account's writes through the gateway go
DAY = (NOW - timedelta(days=20)).replace(hour=12, minute=0, second=0, microsecond=0)  # the first record's; all within 13 days

# Two taskings' records. Some words are shared ("converters", "cash"), so one query matches records of both; the
# others belong to one tasking only: seeing one of the other tasking's in an answer means its records leaked.
T1_ROWS = [  # (title, text, author, source_kind, source_id, days after DAY)
    ("Selling catalytic converters", "Six catalytic converters, $150 each, cash only. Ask for wrenchman.",
     "wrenchman", "forum_post", "forum.example", 0),
    ("Converters wanted", "Buying converters off any car, no questions asked, behind the tyreshop.",
     "sparky", "marketplace_listing", "market.example", 1),
    ("Cut pipe photos", "Fresh cut pipe: catalytic converters removed last night on Elmhurst Street.",
     "wrenchman", "forum_post", "forum.example", 3),
    ("Scrap prices", "The scrapyard pays well for platinum; converters go fast, cash only.",
     "sparky", "forum_post", "forum.example", 7),
    ("Tyreshop hours", "Open late on Fridays, cash only.", None, "marketplace_listing", "market.example", 12),
]
T2_ROWS = [
    ("Pallets for sale", "Forty pallets of copper wire off the harbor docks, cash only. Contact dockhand.",
     "dockhand", "forum_post", "harbor.example", 2),
    ("Forklift for hire", "Forklift and driver at the harbor tonight; converters too.",
     "forklifter", "marketplace_listing", "harbor.example", 4),
    ("Copper spools", "Copper spools and pallets stacked behind the warehouse.", "dockhand", "forum_post",
     "harbor.example", 9),
]
OWN_WORDS = {"T-1": ("catalytic", "wrenchman", "sparky", "tyreshop", "platinum", "elmhurst", "scrapyard",
                     "forum.example", "market.example"),
             "T-2": ("pallets", "copper", "harbor", "dockhand", "forklift", "warehouse", "spools")}


def make_records(tasking: str, rows: list[tuple]) -> list:
    return [make_record(tasking_id=tasking, title=title, text=text, author=author, source_kind=kind, source_id=source,
                        url=f"https://{source}/post/{number}", published_at=DAY + timedelta(days=days),
                        fetched_at=DAY + timedelta(days=days))
            for number, (title, text, author, kind, source, days) in enumerate(rows, 1)]


RECORDS = {"T-1": make_records("T-1", T1_ROWS), "T-2": make_records("T-2", T2_ROWS)}
IDS = {tasking: [r.id for r in records] for tasking, records in RECORDS.items()}


@dataclass
class Seed:
    """What the node holds for the module: each tasking's record ids, and the audit index's document ids."""
    ids: dict[str, list[str]]
    audit_ids: list[str]
    concrete: str  # the records alias's index


def wipe(client: Any) -> None:
    """The indices and templates a seed makes (and whatever an earlier run left behind the two aliases)."""
    behind = client.options(ignore_status=404).indices.get_alias(name=f"{RECORDS_ALIAS},{AUDIT_ALIAS}")
    names = {f"{RECORDS_ALIAS}-v1", f"{AUDIT_ALIAS}-v1", WRITES_INDEX} | {i for i in dict(behind) if i not in ("error", "status")}
    client.options(ignore_status=404).indices.delete(index=",".join(sorted(names)), ignore_unavailable=True)
    for template in (RECORDS_ALIAS, AUDIT_ALIAS):
        client.options(ignore_status=404).indices.delete_index_template(name=template)


def seed(es_node: Any, scratch: Path) -> Seed:
    """Wipe what an earlier run left, then the records through ElasticsearchIndex and audit entries through
    AuditIndexWriter, searchable at once."""
    client = es_node.client()
    wipe(client)
    index = ElasticsearchIndex(client, RECORDS_ALIAS, refresh=True)
    index.ensure()
    index.upsert([r for records in RECORDS.values() for r in records])
    audit = LocalAuditLog(scratch / "audit.db", scratch / "audit.head")
    entries = [audit.append("query", "alice", {"id": f"q-{n}", "tasking_id": "T-1", "query": "converters"})
               for n in range(3)]
    AuditIndexWriter(client, AUDIT_ALIAS).write([audit_action(e, AUDIT_ALIAS) for e in entries])
    client.indices.refresh(index=f"{AUDIT_ALIAS}-*")
    assert index.count() == sum(len(ids) for ids in IDS.values())
    (concrete,) = client.indices.get_alias(name=RECORDS_ALIAS)
    return Seed(IDS, [str(e.seq) for e in entries], concrete)


_SEEDED: dict[str, Seed] = {}


def seeded(request: pytest.FixtureRequest, es_node: Any) -> Seed:
    """The module's seed (made on its first use, wiped when the module's tests are done)."""
    module = request.node.getparent(pytest.Module)
    if module.nodeid not in _SEEDED:
        _SEEDED[module.nodeid] = seed(es_node, request.getfixturevalue("tmp_path_factory").mktemp("seed"))

        def done() -> None:
            _SEEDED.pop(module.nodeid, None)
            wipe(es_node.client())
        module.addfinalizer(done)
    return _SEEDED[module.nodeid]


# -- the tap --------------------------------------------------------------------------------------

PASSED_ON_NOT = {"connection", "keep-alive", "transfer-encoding", "content-length"}
ASYNC_SUBMIT = re.compile(r"^/([^/_][^/]*)/_async_search$")
ASYNC_STORED = re.compile(r"^/_async_search/(status/)?([^/]+)$")
ASYNC_ONLY_PARAMS = ("keep_on_completion", "keep_alive", "wait_for_completion_timeout")


class AsyncSearches:
    """The async search API, which this node cannot answer: the integ-test-zip distribution has no async-search
    module (x-pack-async-search; the node answers "no handler found"). A submission runs as the node's own _search,
    with the body and search parameters exactly as the gateway forwarded them; the node's answer comes back in async
    search's documented envelope (`id` only when kept, `is_running`, `response`), kept for GET and DELETE."""

    def __init__(self) -> None:
        self.kept: dict[str, dict[str, Any]] = {}

    def answer(self, send: Any, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]] | None:
        where = urlsplit(path)
        submit, stored = ASYNC_SUBMIT.match(where.path), ASYNC_STORED.match(where.path)
        if submit and method == "POST":
            params = parse_qsl(where.query, keep_blank_values=True)
            search = [(k, v) for k, v in params if k not in ASYNC_ONLY_PARAMS]
            status, response = send("POST", f"/{submit.group(1)}/_search" + (f"?{urlencode(search)}" if search else ""),
                                    body)
            if status >= 300:
                return status, response
            envelope = {"is_partial": False, "is_running": False, "start_time_in_millis": 0,
                        "expiration_time_in_millis": 0, "completion_time_in_millis": 0, "response": response}
            if dict(params).get("keep_on_completion") == "true":
                envelope = {"id": secrets.token_urlsafe(24), **envelope}
                self.kept[envelope["id"]] = envelope
            return 200, envelope
        if stored and method in ("GET", "DELETE"):
            kept = self.kept.get(stored.group(2))
            if kept is None:
                return 404, {"error": {"type": "resource_not_found_exception", "reason": stored.group(2)}, "status": 404}
            if method == "DELETE":
                del self.kept[stored.group(2)]
                return 200, {"acknowledged": True}
            if stored.group(1):
                return 200, {k: v for k, v in kept.items() if k != "response"} | {"completion_status": 200}
            return 200, kept
        return None


def tap(upstream: str, audit_dir: Path, forwarded: list[dict[str, Any]]) -> ThreadingHTTPServer:
    """A pass-through to `upstream` that notes every request it relays (with the number of queries the audit log
    held when it arrived); the answer is Elasticsearch's, unchanged (async search: see AsyncSearches)."""
    target = urlsplit(upstream)
    async_searches = AsyncSearches()

    class Tap(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def upstream(self, method: str, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in PASSED_ON_NOT | {"host"}}
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                connection.request(method, path, body=body if body or method in ("POST", "PUT") else None,
                                   headers=headers)
                answer = connection.getresponse()
                return answer.status, answer.getheaders(), answer.read()
            finally:
                connection.close()

        def relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            log = LocalAuditLog(audit_dir / "audit.db", audit_dir / "audit.head")
            forwarded.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                              "peer": self.client_address,  # the gateway's end of the connection it came on
                              "body": body.decode(errors="replace"), "queries_logged": len(list(log.entries(["query"])))})

            def send_json(method: str, path: str, payload: bytes) -> tuple[int, Any]:
                status, _, answer = self.upstream(method, path, payload)
                return status, json.loads(answer)

            emulated = async_searches.answer(send_json, self.command, self.path, body)
            if emulated is not None:
                status, payload = emulated[0], json.dumps(emulated[1]).encode()
                headers = [("Content-Type", "application/json"), ("X-elastic-product", "Elasticsearch")]
            else:
                status, headers, payload = self.upstream(self.command, self.path, body)
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in PASSED_ON_NOT:
                    self.send_header(name, value)
            length = {k.lower(): v for k, v in headers}.get("content-length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = relay

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Tap)


# -- what Kibana sends ----------------------------------------------------------------------------

DISCOVER_BODY = {  # what Kibana 8's Discover sends (trimmed of nothing that matters here)
    "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}],
    "fields": [{"field": "*", "include_unmapped": "true"}, {"field": "@timestamp", "format": "strict_date_optional_time"}],
    "size": 500, "version": True, "script_fields": {}, "stored_fields": ["*"], "runtime_mappings": {}, "_source": False,
    "query": {"bool": {"must": [], "filter": [{"range": {"@timestamp": {"gte": f"{NOW - timedelta(days=30):%Y-%m-%dT%H:%M:%S.000Z}"}}}],
                       "should": [], "must_not": []}},
    "highlight": {"pre_tags": ["@kibana-highlighted-field@"], "post_tags": ["@/kibana-highlighted-field@"],
                  "fields": {"*": {}}, "fragment_size": 2147483647},
    "track_total_hits": True,
    "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "3h", "time_zone": "UTC", "min_doc_count": 1}}}}
LENS_BODY = {  # a Lens bar chart: top values of a field, over time
    "size": 0, "query": {"bool": {"filter": [{"range": {"@timestamp": {"gte": "now-30d"}}}]}},
    "aggs": {"0": {"terms": {"field": "fcm.source_kind", "order": {"_count": "desc"}, "size": 5, "shard_size": 25},
                   "aggs": {"1": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1d"}}}}}}
VALUE_SUGGESTIONS_BODY = {  # autocomplete:valueSuggestionMethod terms_agg, as config/kibana/kibana.yml sets it
    "size": 0, "timeout": "1000ms", "terminate_after": 100000,
    "query": {"bool": {"filter": []}},
    "aggs": {"suggestions": {"terms": {"field": "user.name", "include": "wr.*", "execution_hint": "map", "shard_size": 10}}}}


def top_terms_body() -> dict:
    """The body of the analyst dashboard's Top terms panel, as Kibana sends it (its context becomes the query)."""
    (saved,) = [o for o in kibana_objects() if o["id"] == "fcmon-top-terms"]
    spec = json.loads(json.loads(saved["attributes"]["visState"])["params"]["spec"])
    return {**spec["data"]["url"]["body"], "query": {"bool": {"filter": [{"range": {"@timestamp": {"gte": "now-7d"}}}]}}}


# -- the gateway ----------------------------------------------------------------------------------

@dataclass
class Running:
    """A gateway in front of the real node: (app, base, tmp_path) as a tuple, and what reached Elasticsearch."""
    app: App
    base: str
    tmp_path: Path
    seed: Seed
    es: Any  # an elasticsearch-py client as fcmon's service account, straight to the node
    forwarded: list[dict[str, Any]] = field(default_factory=list)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.app, self.base, self.tmp_path))


def gateway_app(root: Path) -> App:
    """A data directory with T-1 (alice's), T-2 (sue's) and an expired tasking, and every user's password set."""
    app = make_app(root, make_tasking(**LIVE), make_tasking(id="T-2", requested_by="sue", **LIVE),
                   make_tasking(id="T-old", approved_at=NOW - timedelta(days=40), expires_at=NOW - timedelta(days=1)))
    app.state.add_user("fcmon", "admin")
    app.state.add_user("kibana_system", "admin")
    for name in ("alice", "sam", "sue", "fcmon", "kibana_system"):
        app.state.set_password_hash(name, PASSWORD_HASH)
    return app


def make_gateway(app: App, upstream: str, es_node: Any) -> Gateway:
    """The gateway as `fcmon gateway --upstream URL` builds it, authenticating upstream as fcmon's service account."""
    return Gateway(app.state, app.audit, upstream, records_alias=RECORDS_ALIAS, audit_alias=AUDIT_ALIAS,
                   service_account="fcmon", kibana_account="kibana_system", upstream_auth=es_node.service_auth)


@pytest.fixture
def setup(request, tmp_path, es_node) -> Iterator[Running]:
    known = seeded(request, es_node)
    app = gateway_app(tmp_path / "d")
    forwarded: list[dict[str, Any]] = []
    with running(tap(es_node.url, tmp_path / "d", forwarded)) as upstream:
        with running(serve(make_gateway(app, upstream, es_node), "127.0.0.1", 0)) as base:
            yield Running(app, base, tmp_path, known, es_node.client(), forwarded)


def call(base: str, method: str, path: str, body: object = None, user: str | None = "alice", password: str = PASSWORD,
         tasking: str | None = "T-1", ndjson: bool = False, raw: bytes | None = None, content_type: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    status, _, answer = exchange(base, method, path, body, user, password, tasking, ndjson, raw, content_type, headers)
    return status, answer


def exchange(base: str, method: str, path: str, body: object = None, user: str | None = "alice",
             password: str = PASSWORD, tasking: str | None = "T-1", ndjson: bool = False, raw: bytes | None = None,
             content_type: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict]:
    """(status, answer headers, answer JSON) of one request as Kibana would send it."""
    data = raw
    if body is not None:
        data = ("\n".join(json.dumps(b) for b in body) + "\n").encode() if ndjson else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None or content_type:  # as Kibana's client: no body, no Content-Type
        request.add_header("Content-Type", content_type or ("application/x-ndjson" if ndjson else "application/json"))
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    if tasking:
        request.add_header("X-Fcmon-Tasking", tasking)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers.items()), json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as answer:
        return answer.code, dict(answer.headers.items()), json.loads(answer.read() or b"{}")


def straight(es_node: Any, method: str, path: str, body: object = None, admin: bool = False) -> tuple[int, Any]:
    """The same request sent straight to Elasticsearch (as the service account, or the administrator)."""
    user, password = es_node.admin_auth if admin else es_node.service_auth
    request = urllib.request.Request(es_node.url + path, data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers={"Content-Type": "application/json"})
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as answer:
        return answer.code, json.loads(answer.read() or b"{}")

