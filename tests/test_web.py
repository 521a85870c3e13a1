"""`fcmon serve`: the web console in a real browser (Chromium, driven by Playwright) and its JSON API, against a real
data directory: sign-in required, every search audited first as interface web or api, crawled content escaped."""
from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline import passwords
from pipeline.audit_bounds import MAX_AUDIT_STRING
from pipeline.models import utcnow
from pipeline.passwords import hash_password
from pipeline.records import review
from pipeline.search import close_query, new_event, open_query
from pipeline.web import REVIEW_PAGE_SIZE, Console, serve
from tests.broker import free_port
from tests.datadirs import make_app
from tests.factories import make_record
from tests.factories_pipeline import make_tasking
from tests.factories_web import NoRedirect, WebClient, api_search, csrf_of, raw_request, running_console
from tests.servers import running

NOW = utcnow()
LIVE = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
PASSWORD = "correct horse battery"
HOSTILE_TITLE = 'Converters <img src=x onerror="alert(1)">'
HOSTILE_TEXT = 'Six catalytic converters <script>alert("xss")</script> cash only, see javascript:alert(2)'
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE, team=["dana"]), make_tasking(id="T-2", requested_by="sue", **LIVE))
    for name in ("alice", "sam", "dana", "ada"):
        app.state.set_password_hash(name, hash_password(PASSWORD))
    app.index.upsert([make_record(url="https://forum.example/p/1", title=HOSTILE_TITLE, text=HOSTILE_TEXT),
                      make_record(url="javascript:alert(3)//forum.example/p/2", text="converter in a bad link"),
                      make_record(tasking_id="T-2", url="https://forum.example/p/3", text="converter of the other tasking")])
    yield app
    app.close()


@pytest.fixture
def base(app):
    with running_console(app) as url:
        yield url


def queries(app, kind: str = "query") -> list[dict]:
    return [e.payload for e in app.audit.entries([kind])]


# -- the console in a real browser ----------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("FCMON_REQUIRE_BROWSER"):
            pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs it (apt-get install chromium)")
        pytest.skip("no Chromium: `make test` installs it (apt-get install chromium); CI requires it")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def run_search(page, base: str, query: str) -> None:
    """A search's link opens the form filled in; pressing Search runs it (a GET runs nothing audited)."""
    page.goto(f"{base}/search?{query}")
    with page.expect_navigation():
        page.click("button:text-is('Search')")


def sign_in(page, base: str, name: str = "alice", password: str = PASSWORD) -> None:
    page.goto(base + "/")
    assert page.url == base + "/login"  # nobody reads without an account
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button:text-is('Sign in')")


def test_sign_in_search_and_read_a_record_in_the_browser(app, base, page):
    sign_in(page, base)
    assert page.url == base + "/"
    assert [o.get_attribute("value") for o in page.locator("select[name=tasking] option").all()] == ["T-1"]  # hers only
    page.fill("input[name=q]", "converters")
    with page.expect_navigation():
        page.click("button:text-is('Search')")
    hit = page.locator("article.hit").first
    assert hit.locator("h3").inner_text() == HOSTILE_TITLE  # shown as text, not run
    assert page.locator("article.hit mark").count() >= 1
    assert page.locator("article.hit img, article.hit script").count() == 0
    assert page.locator("a[href^='javascript:']").count() == 0
    [query] = queries(app)
    assert (query["user"], query["interface"], query["client"], query["query"]) == ("alice", "web", "127.0.0.1", "converters")
    assert query["tasking_id"] == "T-1" and query["case_number"] == "2026-CR-1"

    with page.expect_navigation():
        hit.locator("h3 button").click()  # a record read is audited: posted with the session's token
    assert page.locator("blockquote").inner_text() == HOSTILE_TEXT
    [read] = queries(app, "record.read")
    assert (read["user"], read["interface"], read["tasking_id"]) == ("alice", "web", "T-1")
    assert page.dialogs == []  # no script ran: not the crawled markup, not anything else
    with page.expect_navigation():
        page.click("button:text-is('Sign out')")
    assert page.url == base + "/login"
    page.goto(base + "/search?tasking=T-1&q=converters")
    assert page.url == base + "/login" and len(queries(app)) == 1


def test_a_wrong_password_signs_nobody_in(app, base, page):
    sign_in(page, base, password="not the password")
    assert page.url == base + "/login" and "wrong password" in page.locator(".error").inner_text()
    assert page.context.cookies() == []
    [refused] = queries(app, "web.login.refused")
    assert refused["user"] == "alice" and refused["client"] == "127.0.0.1"


def test_a_tasking_the_user_may_not_search_is_refused_and_logged_in_the_browser(app, base, page):
    sign_in(page, base)
    page.goto(base + "/search?tasking=T-2&q=converter")  # a link fills the form in and runs nothing
    assert page.locator("article.hit").count() == 0 and queries(app, "query.refused") == []
    page.locator("select[name=tasking]").evaluate("s => s.add(new Option('T-2', 'T-2', true, true))")  # not offered
    with page.expect_navigation():
        page.click("button:text-is('Search')")
    assert "neither the requester nor on the team" in page.locator(".error").inner_text()
    assert page.locator("article.hit").count() == 0
    [refused] = queries(app, "query.refused")
    assert (refused["user"], refused["tasking_id"], refused["interface"]) == ("alice", "T-2", "web")


def test_a_supervisor_reviews_and_flags_queries_in_the_browser(app, base, page):
    now = utcnow()
    app.state.set_duty_hours("alice", f"{now + timedelta(hours=2):%H:%M}-{now + timedelta(hours=3):%H:%M}")  # off duty now
    assert api_search(base, {"tasking": "T-1", "q": 'converters "<b>bold</b>"'}, "alice", PASSWORD)[0] == 200
    assert api_search(base, {"tasking": "T-1", "q": "own query"}, "sam", PASSWORD)[0] == 200
    sign_in(page, base, "sam")
    with page.expect_navigation():
        page.click("a:text-is('Query review')")
    alices = page.locator("tr", has_text="alice (analyst)")
    assert "OFF-HOURS" in alices.inner_text() and 'converters "<b>bold</b>"' in alices.locator("code").inner_text()
    assert alices.locator("code b").count() == 0  # what a user typed is shown as text too
    alices.locator("input[name=note]").fill("searched off duty; ask why")
    with page.expect_navigation():
        alices.locator("button:text-is('Flag')").click()
    assert "flagged by sam: searched off duty; ask why" in page.locator("tr", has_text="alice (analyst)").inner_text()
    [mark] = queries(app, "query.review")
    assert (mark["user"], mark["status"], mark["note"]) == ("alice", "flagged", "searched off duty; ask why")
    with page.expect_navigation():
        page.locator("tr", has_text="sam (supervisor)").locator("button:text-is('Reviewed')").click()
    assert "another supervisor must review it" in page.locator(".error").inner_text()
    assert len(queries(app, "query.review")) == 1
    assert page.dialogs == []


def test_the_query_log_is_paged_and_a_mark_keeps_the_reviewers_place(app, base):
    alice = app.state.user("alice")
    for n in range(REVIEW_PAGE_SIZE + 5):
        event = open_query(app.state, app.audit, alice, new_event(alice, "T-1", f"term {n}", {}, "cli", "local"))
        close_query(app.audit, event, 0, [])
    client = WebClient(base)
    assert client.sign_in("sam", PASSWORD) == 303
    status, _, body = client.request("GET", "/review")
    assert status == 200 and body.count("<code>term ") == REVIEW_PAGE_SIZE and "1-50 of 55 quer(ies)" in body
    assert "<code>term 54</code>" in body and "<code>term 4</code>" not in body  # newest first
    assert 'href="/review?offset=50">Older 50' in body and "Newer" not in body
    status, _, body = client.request("GET", "/review?offset=50")
    assert body.count("<code>term ") == 5 and "<code>term 0</code>" in body and 'href="/review?">Newer 50' in body
    oldest = body.split("<code>term 0</code>", 1)[1].split('name="query_id" value="', 1)[1].split('"', 1)[0]
    form = {"csrf": csrf_of(body), "query_id": oldest, "status": "reviewed", "note": "", "view": "offset=50"}
    status, headers, _ = client.request("POST", "/review", form)
    assert status == 303 and headers["Location"] == "/review?offset=50"  # back where the reviewer was
    assert [q["query_id"] for q in queries(app, "query.review")] == [oldest]
    status, headers, _ = client.request("POST", "/review", {**form, "view": "//elsewhere.example/x"})
    assert status == 303 and headers["Location"] == "/review"  # rebuilt from known fields, never a redirect away
    assert client.request("GET", "/review?offset=many")[0] == 400
    yesterday, tomorrow = (f"{utcnow() + timedelta(days=d):%Y-%m-%d}" for d in (-1, 1))  # safe across midnight
    status, _, body = client.request("GET", f"/review?from={yesterday}&to={tomorrow}&status=reviewed")
    assert status == 200 and body.count("<code>term ") == 1 and f'name="from" value="{yesterday}"' in body
    assert '<p class="meta">0 quer(ies)' in client.request("GET", f"/review?to={yesterday}T00:00:00")[2]
    status, _, body = client.request("GET", "/review?from=last+week")
    assert status == 400 and "from 'last week' is not a date or time" in html.unescape(body)


def test_only_supervisors_and_administrators_see_the_query_log(app, base):
    client = WebClient(base)
    assert client.sign_in("alice", PASSWORD) == 303
    status, _, body = client.request("GET", "/review")
    assert status == 403 and "for supervisors and administrators" in body
    assert "Query review" not in client.request("GET", "/")[2]
    status, _, body = client.request("POST", "/review", {"query_id": "x", "status": "reviewed", "note": ""})
    assert status == 403 and "did not come from your session" in body


def test_a_packet_is_requested_approved_and_disseminated_in_the_browser(app, base, browser):
    reviewed = make_record(url="https://forum.example/p/1", title=HOSTILE_TITLE, text=HOSTILE_TEXT)
    review(app, app.state.user("alice"), reviewed.id, "T-1", "usually_reliable", "probably_true", "matches RD-4")
    contexts = [browser.new_context(accept_downloads=True), browser.new_context()]
    detective, supervisor = (context.new_page() for context in contexts)
    try:
        packet_flow(app, base, reviewed, detective, supervisor)
    finally:
        for context in contexts:
            context.close()


def packet_flow(app, base, reviewed, detective, supervisor):
    sign_in(detective, base, "dana")
    run_search(detective, base, "tasking=T-1&q=converter+OR+converters")
    detective.locator(f"input[name=record][value='{reviewed.id}']").check()
    detective.fill("input[name=recipient]", "Det. Dana Ortiz")
    detective.fill("input[name=agency]", "Example PD")
    detective.fill("textarea[name=need_to_know]", "RD-4 theft investigation")
    detective.fill("textarea[name=right_to_know]", "Sworn officer")
    with detective.expect_navigation():
        detective.click("button:text-is('Request a packet')")
    assert detective.url == base + "/packets" and "requested" in detective.locator("td.status").inner_text()

    sign_in(supervisor, base, "sam")
    supervisor.goto(base + "/packets")
    supervisor.fill("input[name=note]", "need and right to know fit RD-4")
    with supervisor.expect_navigation():
        supervisor.click("button:text-is('Approve')")
    assert "approved by sam" in supervisor.locator("td.status").inner_text()

    detective.goto(base + "/packets")
    with detective.expect_download() as download:
        detective.click("button:text-is('Disseminate (download)')")
    document = Path(download.value.path()).read_text()
    assert "&lt;script&gt;" in document and "<script>" not in document and "RD-4 theft investigation" in document
    [event] = queries(app, "packet.disseminate")
    assert (event["disseminated_by"], event["approved_by"], event["client"]) == ("dana", "sam", "127.0.0.1")
    assert event["record_ids"] == [reviewed.id]


def test_an_unreviewed_record_is_refused_for_a_packet_in_the_browser(app, base, page):
    sign_in(page, base, "dana")
    run_search(page, base, "tasking=T-1&q=converter+OR+converters")
    page.locator("input[name=record]").first.check()
    for field, text in (("input[name=recipient]", "Det. Dana Ortiz"), ("input[name=agency]", "Example PD"),
                        ("textarea[name=need_to_know]", "RD-4"), ("textarea[name=right_to_know]", "Sworn officer")):
        page.fill(field, text)
    with page.expect_navigation():
        page.click("button:text-is('Request a packet')")
    assert "is unreviewed" in page.locator(".error").inner_text() and app.state.packets() == []


# -- the same gate over HTTP ----------------------------------------------------------------------

def test_the_api_searches_with_basic_credentials_and_logs_first(app, base):
    status, _, body = api_search(base, {"tasking": "T-1", "q": "converter OR converters", "source_kind": "forum_post"}, "dana", PASSWORD)
    assert status == 200 and body["total"] == 2 and {h["title"] for h in body["hits"]} >= {HOSTILE_TITLE}
    [query] = queries(app)
    assert (query["user"], query["interface"], query["filters"]["source_kind"]) == ("dana", "api", "forum_post")
    [result] = queries(app, "query.result")
    assert result["query_id"] == body["query_id"] == query["id"] and result["hits_total"] == 2


@pytest.mark.parametrize("params, user, password, status, message", [
    ({"tasking": "T-1", "q": "converter"}, None, PASSWORD, 401, "authentication required"),
    ({"tasking": "T-1", "q": "converter"}, "alice", "guess", 401, "wrong password"),
    ({"tasking": "T-2", "q": "converter"}, "alice", PASSWORD, 403, "neither the requester nor on the team"),
    ({"tasking": "T-1", "q": "converter"}, "ada", PASSWORD, 403, "searching needs the role"),
    ({"q": "converter"}, "alice", PASSWORD, 400, "no tasking"),
    ({"tasking": "T-1", "q": "converter", "filter": "colour=red"}, "alice", PASSWORD, 400, "bad filter"),
    ({"tasking": "T-1", "q": '"converter'}, "alice", PASSWORD, 400, "invalid query"),
    ({"tasking": "T-1", "q": "title:*"}, "alice", PASSWORD, 400, "invalid query"),  # parsed, then refused by the index
], ids=["no-credentials", "wrong-password", "other-tasking", "admin", "no-tasking", "bad-filter", "malformed-query",
        "unrunnable-field-query"])
def test_the_api_refuses_with_a_clear_error(app, base, params, user, password, status, message):
    got, headers, body = api_search(base, params, user, password)
    assert got == status and message in body["error"], body
    assert "hits" not in body and not (body["hint"] and body["hint"] in body["error"])  # what went wrong, then what to do
    assert [(r["hits_total"], r["returned_ids"]) for r in queries(app, "query.result")] == (
        [(0, [])] if message == "invalid query" else [])  # nothing came back (a query that ran and failed is closed)
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Basic") and queries(app, "query") + queries(app, "query.refused") == []
    elif message == "invalid query":  # logged before it ran, as every query is; the index refused it
        assert [(q["user"], q["query"], q["interface"]) for q in queries(app)] == [(user, params["q"], "api")]
    else:  # refused before it ran: the attempt is in the ledger with its terms
        assert queries(app) == []
        assert [(q["user"], q["query"], q["interface"]) for q in queries(app, "query.refused")] == [(user, params["q"], "api")]


def test_no_log_no_query(app, base, tmp_path):
    head = tmp_path / "d" / "audit.head"
    head.unlink(missing_ok=True)
    head.mkdir()
    status, _, body = api_search(base, {"tasking": "T-1", "q": "converter"}, "alice", PASSWORD)
    assert status == 503 and "cannot be written" in body["error"] and "hits" not in body
    client = WebClient(base)
    assert client.sign_in("alice", PASSWORD) == 503  # even the sign-in is audited


def test_pages_need_a_session_and_carry_security_headers(app, base):
    client = WebClient(base)
    status, headers, _ = client.request("GET", "/search?tasking=T-1&q=converter")
    assert status == 303 and headers["Location"] == "/login" and queries(app) == []
    assert client.sign_in("alice", PASSWORD) == 303
    status, headers, body = client.request("POST", "/search", {"csrf": client.csrf(), "tasking": "T-1", "q": "converters"})
    assert status == 200 and "script-src" not in headers["Content-Security-Policy"] and "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert "&lt;script&gt;" in body and "<script>" not in body
    assert client.request("POST", "/logout", {"csrf": "forged"})[0] == 403  # a form from elsewhere does nothing
    assert client.request("GET", "/")[0] == 200


def test_failed_sign_ins_are_throttled_and_audited(app, base):
    client = WebClient(base)
    for _ in range(5):
        assert client.sign_in("alice", "not the password") == 401
    assert client.sign_in("alice", PASSWORD) == 429  # even the right password waits out the window
    assert client.sign_in("sam", PASSWORD) == 303  # another user from the same address is not locked out
    reasons = [q["reason"] for q in queries(app, "web.login.refused")]
    assert reasons == ["wrong password or unknown user"] * 5 + ["throttled"]
    assert client.sign_in("alice", PASSWORD) == 429  # throttled tries cost nothing to repeat: audited once a window
    assert [q["reason"] for q in queries(app, "web.login.refused")] == reasons
    for _ in range(5):
        assert api_search(base, {"tasking": "T-1", "q": "x"}, "alice", "guess")[0] == 401
    for _ in range(2):
        status, _, body = api_search(base, {"tasking": "T-1", "q": "x"}, "alice", PASSWORD)
        assert status == 429 and "too many failed sign-ins for alice" in body["error"] and queries(app) == []
    api = [q for q in queries(app, "web.login.refused") if q["reason"].endswith("(API)")]
    assert [q["user"] for q in api] == ["alice"] * 6 and api[-1]["reason"] == "throttled (API)"
    # counted per name, not per address: behind a TLS proxy every client has one address
    for n in range(5):
        assert api_search(base, {"tasking": "T-1", "q": "x"}, f"nobody-{n}", "guess")[0] == 401
    assert api_search(base, {"tasking": "T-1", "q": "converters"}, "sam", PASSWORD)[0] == 200


def test_a_made_up_name_is_audited_short(app, base):
    assert WebClient(base).sign_in("x" * 16_000, "p") == 401
    (refused,) = queries(app, "web.login.refused")
    assert refused["user"] == "x" * 100 + "... (16,000 characters)"


def test_an_expired_session_reads_nothing(app):
    with running_console(app, session_seconds=0) as base:
        client = WebClient(base)
        assert client.sign_in("alice", PASSWORD) == 303
        status, headers, _ = client.request("GET", "/search?tasking=T-1&q=converters")
        assert status == 303 and headers["Location"] == "/login" and queries(app) == []


def test_the_serve_command_starts_and_answers(app, tmp_path):
    alice = app.state.user("alice")
    close_query(app.audit, open_query(app.state, app.audit, alice, new_event(alice, "T-1", "earlier", {}, "cli", "local")), 0, [])
    app.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")}
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "--data-dir", str(tmp_path / "d"), "serve", "--listen",
                               f"127.0.0.1:{port}"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as answer:
                    assert answer.status == 200 and b"Sign in" in answer.read()
                    break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read() if server.poll() else "timeout"
                time.sleep(0.1)
        status, _, body = api_search(f"http://127.0.0.1:{port}", {"tasking": "T-1", "q": "converter OR converters"}, "alice", PASSWORD)
        assert status == 200 and body["total"] == 2
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert "query review read 2 new audit entries" in server.stderr.read()  # the earlier query, read before serving


def test_an_unknown_user_costs_the_same_scrypt_as_a_wrong_password(monkeypatch):
    calls = []
    real = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: calls.append(k["n"]) or real(*a, **k))
    assert not passwords.verify_password("guess", None)
    assert not passwords.verify_password("guess", hash_password(PASSWORD))
    assert calls == [passwords.N, passwords.N, passwords.N]  # the unknown user's check, the hashing, the wrong password's check


def test_failed_sign_ins_of_made_up_names_do_not_fill_memory():
    now = [0.0]
    failures = passwords.FailedSignIns(clock=lambda: now[0])
    for n in range(passwords.KEYS_BEFORE_PRUNING):
        failures.failed(f"made-up-{n}")
    for _ in range(passwords.MAX_FAILED_SIGN_INS):
        failures.failed("alice")
    now[0] = passwords.FAILED_SIGN_IN_WINDOW_S - 1.0  # alice's failures are recent still, the others too
    failures.failed("one-more")
    assert len(failures) == passwords.KEYS_BEFORE_PRUNING + 2 and failures.throttled("alice")
    now[0] = passwords.FAILED_SIGN_IN_WINDOW_S + 1.0  # now all are past the window
    failures.failed("another")
    assert len(failures) == 2 and not failures.throttled("alice")  # the last two fell within the window


def test_a_down_index_is_a_503_after_the_attempt_is_logged(tmp_path):
    app = make_app(tmp_path / "es", make_tasking(**LIVE), index="elasticsearch",
                   elasticsearch_url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    app.state.set_password_hash("alice", hash_password(PASSWORD))
    with running_console(app) as base:
        status, _, body = api_search(base, {"tasking": "T-1", "q": "converter"}, "alice", PASSWORD)
    assert status == 503 and "Elasticsearch request failed" in body["error"] and "hits" not in body
    assert [q["query"] for q in queries(app)] == ["converter"]
    assert [(r["hits_total"], r["returned_ids"]) for r in queries(app, "query.result")] == [(0, [])]  # closed: nothing came back
    app.close()


@pytest.mark.parametrize("headers, status, message", [
    ({"Content-Length": str(10**9)}, 413, "over this service's limit of 16,384 bytes"),
    ({"Content-Length": "-1"}, 400, "is negative"),
    ({"Content-Length": "lots"}, 400, "is not a number of bytes"),
    ({"Transfer-Encoding": "chunked"}, 411, "send it with a Content-Length"),
])
def test_a_form_body_is_read_only_when_its_length_is_sound(app, base, headers, status, message):
    got, body = raw_request(base, "POST", "/login", headers)  # answered at once: the declared body is never awaited
    assert got == status and message in html.unescape(body)
    assert queries(app, "web.login") == queries(app, "web.login.refused") == []


def test_a_connection_that_sends_nothing_is_closed_and_others_are_served(app):
    server = serve(Console(app), "127.0.0.1", 0, idle_timeout_s=0.5)
    with running(server) as url:
        stalled = socket.create_connection(("127.0.0.1", server.server_port), timeout=10)
        began = time.monotonic()
        assert stalled.recv(1024) == b""  # closed by the server, no request ever sent
        assert time.monotonic() - began < 5
        with urllib.request.urlopen(url + "/login", timeout=5) as answer:
            assert answer.status == 200


def test_hostile_parameters_get_an_answer_and_run_nothing(app, base):
    client = WebClient(base)
    assert client.sign_in("sam", PASSWORD) == 303
    status, page = client.search("T-1", "converters", **{"from": "0001-01-01"})  # the index keeps no such time
    assert status == 400 and "outside the years 1970 to 8999" in html.unescape(page)
    assert client.search("T-1", "converters", to="9999-12-31T23:59:59-14:00")[0] == 400  # overflowed
    assert client.request("GET", "/review?to=9999-12-31")[0] == 400
    assert client.request("GET", "/review?to=8999-12-31")[0] == 200  # the last day there is
    assert client.request("POST", "/retention/due", {"csrf": client.csrf(), "within": "\u00b2"})[0] == 400  # a digit to isdigit, not to int
    assert client.request("POST", "/logout", {"csrf": "\u00e9"})[0] == 403  # compare_digest refuses non-ASCII text
    assert queries(app) == []


def test_a_get_with_a_body_is_refused_and_its_body_never_runs(app, base):
    auth = base64.b64encode(f"alice:{PASSWORD}".encode())
    smuggled = b"GET /api/search?tasking=T-1&q=smuggled HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth + b"\r\n\r\n"
    host, port = base.rsplit("/", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1 ") == 1
    assert queries(app) == []


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}])
def test_a_sign_in_posted_from_another_site_is_refused(app, base, headers):
    form = urllib.parse.urlencode({"name": "alice", "password": PASSWORD}).encode()
    request = urllib.request.Request(base + "/login", data=form, method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403 and "web.login" not in [e.kind for e in app.audit.entries()]
    same_site = {"Origin": base, "Sec-Fetch-Site": "same-origin"}
    assert WebClient(base).request("POST", "/login", {"name": "alice", "password": PASSWORD})[0] == 303
    request = urllib.request.Request(base + "/login", data=form, method="POST", headers=same_site)
    with pytest.raises(urllib.error.HTTPError) as signed_in:  # NoRedirect: the 303 is not followed
        urllib.request.build_opener(NoRedirect).open(request, timeout=5)
    assert signed_in.value.code == 303


def test_a_new_password_ends_the_sessions_signed_in_with_the_old(app, base):
    client = WebClient(base)
    assert client.sign_in("alice", PASSWORD) == 303 and client.request("GET", "/")[0] == 200
    app.state.set_password_hash("alice", hash_password("another long passphrase"))
    status, headers, _ = client.request("GET", "/")
    assert status == 303 and headers["Location"] == "/login"


@pytest.mark.parametrize("headers", [
    {"Origin": "https://fcmon.example", "Sec-Fetch-Site": "same-origin"},  # behind a TLS proxy that rewrote Host
    {"Origin": "HTTP://127.0.0.1"},  # no Sec-Fetch-Site: the Origin is compared with Host, case and ports aside
])
def test_a_same_site_sign_in_behind_a_proxy_is_accepted(app, base, headers):
    form = urllib.parse.urlencode({"name": "alice", "password": PASSWORD}).encode()
    host = base.rsplit("/", 1)[1]
    if "Sec-Fetch-Site" not in headers:
        headers = {**headers, "Origin": headers["Origin"] + ":" + host.rsplit(":", 1)[1]}
    request = urllib.request.Request(base + "/login", data=form, method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as signed_in:  # NoRedirect: the 303 is not followed
        urllib.request.build_opener(NoRedirect).open(request, timeout=5)
    assert signed_in.value.code == 303


def test_a_new_password_ends_the_old_one_on_the_api_at_once(app, base):
    assert api_search(base, {"tasking": "T-1", "q": "converters"}, "alice", PASSWORD)[0] == 200  # now remembered
    app.state.set_password_hash("alice", hash_password("another long passphrase"))
    status, _, body = api_search(base, {"tasking": "T-1", "q": "converters"}, "alice", PASSWORD)
    assert status == 401 and "wrong password" in body["error"]  # not up to a minute later: now
    assert api_search(base, {"tasking": "T-1", "q": "converters"}, "alice", "another long passphrase")[0] == 200
    assert len(queries(app)) == 2


def test_an_overlong_query_is_refused_and_logged_cut(app, base):
    long_query = " ".join(["converter"] * 1_000)  # 9,999 characters
    status, _, body = api_search(base, {"tasking": "T-1", "q": long_query}, "alice", PASSWORD)
    assert status == 400 and "longer than 8,192 characters" in body["error"], body
    assert queries(app) == []  # nothing ran
    [refused] = queries(app, "query.refused")
    assert len(refused["query"]) == MAX_AUDIT_STRING and long_query.startswith(refused["query"])
    assert refused["cut"]["query"] == {"chars": 9_999, "sha256": hashlib.sha256(long_query.encode()).hexdigest()}


def test_every_audit_entry_the_console_writes_is_bounded(app, base):
    alice = app.state.user("alice")
    event = open_query(app.state, app.audit, alice, new_event(alice, "T-1", "converters", {}, "cli", "local"))
    close_query(app.audit, event, 0, [])
    client = WebClient(base)
    assert client.sign_in("sam", PASSWORD) == 303
    note = "n" * 12_000  # within the form limit (16 KB), over what one audit string holds
    form = {"csrf": csrf_of(client.request("GET", "/")[2]), "query_id": event.id, "status": "flagged", "note": note}
    assert client.request("POST", "/review", form)[0] == 303
    [marked] = queries(app, "query.review")
    assert marked["note"] == "n" * MAX_AUDIT_STRING and marked["cut"]["note"]["chars"] == 12_000
    for entry in app.audit.entries():
        assert len(json.dumps(entry.payload)) < 20_000, entry.kind
