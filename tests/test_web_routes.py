"""The route x role table: every route of the served console and API, called over HTTP as nobody and as each role,
answers what this table says. The routes come from the running app itself, so a route added without a row here
(or a row left for a route that is gone) fails the first test."""
from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest

from pipeline.models import utcnow
from pipeline.passwords import hash_password
from pipeline.web import Console, serve
from pipeline.web.routes import Page
from tests.datadirs import make_app
from tests.factories import make_record
from tests.factories_pipeline import make_tasking
from tests.factories_web import WebClient
from tests.servers import running

NOW = utcnow()
PASSWORD = "correct horse battery"
CALLERS = (None, "alice", "dana", "sam", "ada")  # nobody, analyst, detective, supervisor, admin
RECORD = make_record(url="https://forum.example/p/1")

# (method, route): the statuses for nobody, analyst, detective, supervisor, admin. Pages send nobody to /login (303);
# forms without a session are refused (403); roles that the domain code checks (and audits) reach it.
EXPECTED = {
    ("GET", "/login"): (200, 200, 200, 200, 200),
    ("POST", "/login"): (401, 401, 401, 401, 401),  # no name, no password: a failed sign-in for anyone
    ("POST", "/logout"): (403, 303, 303, 303, 303),
    ("GET", "/"): (303, 200, 200, 200, 200),
    ("GET", "/search"): (303, 200, 200, 200, 200),  # fills the form in, runs nothing
    ("POST", "/search"): (403, 200, 200, 200, 403),  # administrators do not search
    ("POST", "/record/{record_id:path}"): (403, 200, 200, 200, 403),
    ("GET", "/packets"): (303, 200, 200, 200, 200),
    ("POST", "/packets"): (403, 400, 400, 400, 400),  # an empty request: what to fill in
    ("POST", "/packets/decide"): (403, 400, 400, 400, 400),
    ("POST", "/packets/render"): (403, 404, 404, 404, 404),
    ("GET", "/review"): (303, 403, 403, 200, 200),  # supervisors, and administrators read-only
    ("POST", "/review"): (403, 403, 403, 400, 403),
    ("GET", "/quarantine"): (303, 403, 403, 200, 403),
    ("POST", "/quarantine/decide"): (403, 403, 403, 400, 403),
    ("POST", "/quarantine/{item_id:path}"): (403, 403, 403, 404, 403),
    ("GET", "/retention"): (303, 403, 403, 200, 403),
    ("POST", "/retention/due"): (403, 403, 403, 200, 403),
    ("POST", "/retention"): (403, 400, 400, 400, 400),
    ("GET", "/taskings"): (303, 200, 200, 200, 200),
    ("POST", "/taskings"): (403, 400, 400, 400, 400),
    ("POST", "/taskings/approve"): (403, 403, 403, 303, 403),  # alice asked for T-P: only a supervisor approves it
    ("POST", "/taskings/revoke"): (403, 400, 400, 400, 400),
    ("GET", "/watches"): (303, 200, 200, 200, 200),  # everyone's for supervisors and administrators (read-only)
    ("POST", "/watches"): (403, 303, 303, 303, 403),  # the search gate: administrators do not search
    ("POST", "/watches/end"): (403, 404, 404, 404, 403),
    ("GET", "/alerts"): (303, 200, 200, 200, 403),  # the roles that can have watches
    ("POST", "/alerts/read"): (403, 303, 303, 303, 403),
    ("GET", "/collection"): (303, 403, 403, 200, 200),
    ("GET", "/api/search"): (401, 200, 200, 200, 403),
    ("GET", "/api/watches"): (401, 200, 200, 200, 200),
    ("POST", "/api/watches"): (401, 201, 201, 201, 403),
    ("POST", "/api/watches/{watch_id}/end"): (401, 404, 404, 404, 403),
    ("GET", "/api/alerts"): (401, 200, 200, 200, 403),
    ("POST", "/api/alerts/read"): (401, 200, 200, 200, 403),
    ("GET", "/api/monitor/status"): (401, 403, 403, 200, 200),
}
# what a well-formed call sends, where an empty one would be refused before the role mattered
FORMS = {
    ("POST", "/search"): {"tasking": "T-1", "q": "converter"},
    ("POST", "/record/{record_id:path}"): {"tasking": "T-1"},
    ("POST", "/retention/due"): {"within": "30"},
    ("POST", "/taskings/approve"): {"tasking_id": "T-P"},
    ("GET", "/api/search"): {"tasking": "T-1", "q": "converter"},
    ("POST", "/watches"): {"tasking": "T-1", "query": "converter"},
    ("POST", "/watches/end"): {"watch_id": "no-such-watch", "reason": "case closed"},
    ("POST", "/api/watches"): {"tasking": "T-1", "query": "converter"},
    ("POST", "/api/watches/{watch_id}/end"): {"reason": "case closed"},
    ("POST", "/api/alerts/read"): {"ids": []},
}
PATH_VALUES = {"record_id": RECORD.id, "item_id": "no-such-item", "watch_id": "no-such-watch"}


@pytest.fixture
def served(tmp_path):
    live = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
    app = make_app(tmp_path / "d", make_tasking(**live, team=["dana"]),
                   make_tasking(id="T-P", approved_by=None, approved_at=None, expires_at=NOW + timedelta(days=30)))
    for name in CALLERS[1:]:
        app.state.set_password_hash(name, hash_password(PASSWORD))
    app.index.upsert([RECORD])
    server = serve(Console(app), "127.0.0.1", 0)
    with running(server) as base:
        yield base, server.config.app.routes
    app.close()


def endpoints(routes) -> dict[tuple[str, str], Page]:
    return {(method, route.path): route for route in routes for method in route.methods - {"HEAD"}}


def test_every_route_has_a_rule_and_a_row(served):
    _, routes = served
    assert all(isinstance(route, Page) and route.rule.auth in ("anyone", "session", "basic") for route in routes)
    assert sorted(endpoints(routes)) == sorted(EXPECTED)


def call(base: str, method: str, path: str, who: str | None, form: dict) -> int:
    if path.startswith("/api/"):  # a GET's fields in the query string, a POST's as a JSON object
        request = (urllib.request.Request(base + path + "?" + urllib.parse.urlencode(form)) if method == "GET" else
                   urllib.request.Request(base + path, json.dumps(form).encode(), {"Content-Type": "application/json"}))
        if who:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{who}:{PASSWORD}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as answer:
            return answer.code
    client = WebClient(base)
    if who:
        assert client.sign_in(who, PASSWORD) == 303
    if method == "GET":
        return client.request("GET", path)[0]
    return client.request("POST", path, {**form, "csrf": client.csrf()} if who else form)[0]


@pytest.mark.parametrize("endpoint", sorted(EXPECTED), ids=lambda e: f"{e[0]} {e[1]}")
def test_each_route_answers_each_role_as_the_table_says(served, endpoint):
    base, _ = served
    method, route = endpoint
    path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_VALUES[m.group(1)], route)
    got = tuple(call(base, method, path, who, FORMS.get(endpoint, {})) for who in CALLERS)
    assert got == EXPECTED[endpoint]
