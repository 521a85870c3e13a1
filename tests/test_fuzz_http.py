"""Hostile requests over real HTTP on 127.0.0.1 (tests/fuzz_http.py): the console's pages, forms and API with
records a hostile crawl stored, and the gateway's JSON bodies in front of the session's real Elasticsearch. Every
request is answered (never a 500, never a dropped connection) and refused with a reason or served safely."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from pipeline.passwords import hash_password
from tests.datadirs import make_app
from tests.factories_gateway import setup  # noqa: F401  (a fixture)
from tests.factories_gateway import PASSWORD as GATEWAY_PASSWORD
from tests.factories_pipeline import make_tasking
from tests.factories_web import WebClient, running_console
from tests.fuzz_http import HOSTILE_RECORDS, LIVE, PASSWORD, answered_safely, basic, console_requests, gateway_bodies, send

EXAMPLES = int(os.environ.get("FUZZ_HTTP_EXAMPLES", "60"))
FAST = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])


@pytest.fixture
def console(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE))
    app.state.set_password_hash("alice", hash_password(PASSWORD))
    app.index.upsert(HOSTILE_RECORDS)
    with running_console(app) as base:
        client = WebClient(base)
        assert client.sign_in("alice", PASSWORD) == 303
        yield base, client
    app.close()


def cookie(client: WebClient) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in client.opener.handlers[[type(h).__name__ for h in client.opener.handlers]
                                                                           .index("HTTPCookieProcessor")].cookiejar)


def test_the_hostile_records_are_shown_escaped(console):
    """The control: the records are found and shown (so the pages checked below do hold the hostile strings)."""
    base, client = console
    status, page = client.search("T-1", "converter")
    assert status == 200 and "gnp.exe" in page and "&lt;script&gt;" in page and "javascript:alert(1)//forum.example" in page
    answered_safely(status, "text/html", page.encode())


def test_console_requests(console):
    base, client = console
    session = cookie(client)

    @FAST
    @given(console_requests())
    def check(request):
        method, path, body, headers = request
        status, content_type, answer = send(base, method, path, body, headers | {"Cookie": session})
        answered_safely(status, content_type, answer)

    check()


def test_gateway_bodies(setup):
    base = setup.base
    other = set(setup.seed.ids["T-2"])

    @FAST
    @given(gateway_bodies())
    def check(request):
        path, body, content_type = request
        status, content_type_back, answer = send(base, "POST", path, body, {
            "Authorization": basic("alice", GATEWAY_PASSWORD), "X-Fcmon-Tasking": "T-1", "Content-Type": content_type})
        answered_safely(status, content_type_back, answer)
        assert not any(i.encode() in answer for i in other), "another tasking's record in the answer"

    check()
