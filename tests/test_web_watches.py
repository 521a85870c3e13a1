"""Watches, alerts and collection in the web console (Chromium, driven by Playwright) and the API, against a real data
directory served on 127.0.0.1; the worker and the monitor are the real `fcmon work` and `fcmon monitor run`, and what
the console shows is compared with what `fcmon watch list`, `fcmon watch alerts` and `fcmon monitor status` print."""
from __future__ import annotations

import base64
import html
import json
import urllib.error
import urllib.request

import pytest

from pipeline.models import utcnow
from pipeline.passwords import hash_password
from tests.datadirs import fcmon, make_app
from tests.factories_web import WebClient, csrf_of, running_console
from tests.fixtures.live import LiveFeed
from tests.test_crawler_sources import tasking as source_tasking
from tests.test_monitor import ENV as MONITOR_ENV
from tests.test_web import PASSWORD, base, browser, page, queries, sign_in  # noqa: F401  (fixtures; base serves this module's app)
from tests.test_web_openapi import schema
from tests.test_worker import item, live_tasking, publish

HOSTILE_TITLE = 'Ring at the yard <img src=x onerror="alert(1)">'
MATCHING = "Six stolen converters at the rail yard tonight."


@pytest.fixture
def app(tmp_path):
    """T-1: alice's, dana on its team; T-2: sue's, alice not on it."""
    app = make_app(tmp_path / "d", live_tasking(team=["dana"]), live_tasking(id="T-2", requested_by="sue", team=[]),
                   watch_webhook_allow=["http://alerts.internal/"])
    for name in ("alice", "dana", "sam", "ada"):
        app.state.set_password_hash(name, hash_password(PASSWORD))
    yield app
    app.close()


def cli(app, *args: str):
    """`fcmon --data-dir D ARGS --json`, its output read as JSON."""
    done = fcmon("--data-dir", str(app.settings.data_dir), *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def work(app) -> None:
    """`fcmon work --until-idle`: the guards, the index, then the watches of each batch's records."""
    fcmon("--data-dir", str(app.settings.data_dir), "work", "--until-idle", check=True)


def api(base: str, method: str, path: str, who: str | None, body: dict | None = None,
        content_type: str = "application/json") -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data, method=method, headers={"Content-Type": content_type} if data else {})
    if who:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{who}:{PASSWORD}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as answer:
        return answer.code, json.loads(answer.read())


def header_count(page) -> str:
    return page.locator("header a.alerts").inner_text()


# -- the console in a real browser ----------------------------------------------------------------

def test_an_analyst_adds_a_watch_and_its_alert_reaches_the_inbox_once(app, base, page):
    sign_in(page, base)
    assert header_count(page) == "Alerts"  # nothing new
    with page.expect_navigation():
        page.click("a:text-is('Watches')")
    page.select_option("select[name=tasking]", "T-1")
    page.fill("input[name=query]", '"rail yard"')
    with page.expect_navigation():
        page.click("button:text-is('Save watch')")
    assert page.url == base + "/watches"
    watch_id = page.locator("tr.watch", has_text='"rail yard"').locator("td").first.inner_text()
    listed = cli(app, "--as", "alice", "watch", "list")  # the CLI sees the console's watch
    assert [(w["id"], w["owner"], w["tasking_id"], w["query"], w["status"]) for w in listed] == [
        (watch_id, "alice", "T-1", '"rail yard"', "active")]
    [query] = queries(app)  # the search gate's QueryEvent, before the watch existed
    assert (query["id"], query["interface"], query["client"], query["filters"]) == (watch_id, "web", "127.0.0.1", {"standing": "watch"})
    assert [e["watch_id"] for e in queries(app, "watch.add")] == [watch_id]

    matching = item(1, title=HOSTILE_TITLE, text=MATCHING)
    publish(app, [matching, item(2, text="Converters for sale, stolen last week.")])
    work(app)
    page.reload()
    assert header_count(page) == "Alerts 1 new"  # on every page
    with page.expect_navigation():
        page.click("header a.alerts")
    [alert] = page.locator("tr.alert").all()
    assert "new" in alert.get_attribute("class") and HOSTILE_TITLE in alert.inner_text() and matching.id in alert.inner_text()
    assert page.locator("tr.alert img, tr.alert script").count() == 0  # crawled markup is text
    publish(app, [matching])  # indexed again (a replay, a re-crawl): no second alert
    work(app)
    page.reload()
    assert page.locator("tr.alert").count() == 1 and header_count(page) == "Alerts 1 new"
    with page.expect_navigation():
        page.click("button:text-is('Mark 1 new as read')")
    assert header_count(page) == "Alerts" and page.locator("tr.alert").count() == 1 and page.locator("tr.new").count() == 0
    assert page.dialogs == []
    deliveries = [e for e in queries(app, "query.result") if e.get("watch_id") == watch_id]
    assert [(d["user"], d["returned_ids"]) for d in deliveries] == [("alice", [matching.id])]  # audited once
    [shown] = cli(app, "--as", "alice", "watch", "alerts")
    assert (shown["watch_id"], [h["id"] for h in shown["hits"]]) == (watch_id, [matching.id])
    other = WebClient(base)  # dana's header counts only dana's alerts
    assert other.sign_in("dana", PASSWORD) == 303
    assert '<a href="/alerts" class="alerts">Alerts</a>' in other.request("GET", "/")[2]


def test_a_supervisor_sees_every_watch_and_ends_one_with_a_reason(app, base, page):
    alices = cli(app, "--as", "alice", "watch", "add", "converter", "--tasking", "T-1")
    danas = cli(app, "--as", "dana", "watch", "add", '"rail yard"', "--tasking", "T-1")
    sign_in(page, base, "sam")
    with page.expect_navigation():
        page.click("a:text-is('Watches')")
    assert {r.locator("td").first.inner_text() for r in page.locator("tr.watch").all()} == {alices["id"], danas["id"]}
    row = page.locator("tr.watch", has_text=alices["id"])
    row.locator("input[name=reason]").fill("outside the case's need")
    with page.expect_navigation():
        row.locator("button:text-is('End')").click()
    assert "ended" in row.locator(".status").inner_text() and "by sam: outside the case's need" in row.inner_text()
    assert page.locator("tr.watch", has_text=danas["id"]).locator(".status").inner_text() == "active"
    [ended] = [e for e in app.audit.entries(["watch.end"])]
    assert (ended.actor, ended.payload["watch_id"], ended.payload["user"], ended.payload["reason"]) == (
        "sam", alices["id"], "alice", "outside the case's need")
    [listed] = cli(app, "--as", "alice", "watch", "list")
    assert (listed["status"], listed["ended_by"], listed["end_reason"]) == ("ended", "sam", "outside the case's need")

    analyst = WebClient(base)
    assert analyst.sign_in("alice", PASSWORD) == 303
    csrf = analyst.csrf()
    status, _, body = analyst.request("POST", "/watches/end", {"csrf": csrf, "watch_id": danas["id"], "reason": "not mine"})
    assert status == 403 and f"alice may not end watch {danas['id']}" in html.unescape(body)
    assert danas["id"] not in analyst.request("GET", "/watches")[2]  # an analyst lists only her own
    admin = WebClient(base)
    assert admin.sign_in("ada", PASSWORD) == 303
    status, _, body = admin.request("GET", "/watches")
    assert status == 200 and danas["id"] in body and 'action="/watches/end"' not in body  # read-only
    assert admin.request("POST", "/watches/end", {"csrf": csrf_of(body), "watch_id": danas["id"], "reason": "x"})[0] == 403
    supervisor = WebClient(base)
    assert supervisor.sign_in("sam", PASSWORD) == 303
    status, _, body = supervisor.request("POST", "/watches/end", {"csrf": supervisor.csrf(), "watch_id": danas["id"], "reason": " "})
    assert status == 400 and "the reason is empty" in body and len(list(app.audit.entries(["watch.end"]))) == 1


# -- refusals -------------------------------------------------------------------------------------

def test_a_watch_on_a_tasking_the_user_is_not_on_is_refused_and_audited(app, base):
    client = WebClient(base)
    assert client.sign_in("alice", PASSWORD) == 303
    csrf = client.csrf()
    status, _, body = client.request("POST", "/watches", {"csrf": csrf, "tasking": "T-2", "query": "converter"})
    assert status == 403 and "neither the requester nor on the team of tasking T-2" in html.unescape(body)
    assert 'value="converter"' in body  # the form comes back as sent
    [refused] = queries(app, "query.refused")
    assert (refused["user"], refused["tasking_id"], refused["interface"], refused["query"], refused["filters"]) == (
        "alice", "T-2", "web", "converter", {"standing": "watch"})
    status, _, body = client.request("POST", "/watches", {"csrf": csrf, "tasking": "T-1", "query": "converter",
                                                          "webhook": "http://elsewhere.example/hook"})
    assert status == 403 and "not an internal URL the configuration allows" in html.unescape(body)
    assert client.request("POST", "/watches", {"tasking": "T-1", "query": "converter"})[0] == 403  # no session token
    status, _, body = client.request("POST", "/watches", {"csrf": csrf, "tasking": "T-1", "query": '"unbalanced'})
    assert status == 400 and "invalid query" in body
    assert queries(app, "watch.add") == [] and cli(app, "--as", "alice", "watch", "list") == []
    ledger = fcmon("--data-dir", str(app.settings.data_dir), "--as", "sam", "audit", "ledger", "--from", "2000-01-01",
                   "--to", "2100-01-01", "--format", "json", check=True)
    assert [(r["search_terms"], r["outcome"], r["tasking_id"]) for r in json.loads(ledger.stdout)] == [("converter", "refused", "T-2")]
    admin = WebClient(base)
    assert admin.sign_in("ada", PASSWORD) == 303
    status, _, body = admin.request("GET", "/alerts")
    assert status == 403 and 'class="alerts"' not in body  # administrators have no watches, hence no alerts


# -- the API --------------------------------------------------------------------------------------

def test_the_api_adds_lists_delivers_and_ends_watches(app, base):
    status, made = api(base, "POST", "/api/watches", "alice", {"tasking": "T-1", "query": '"rail yard"'})
    assert status == 201 and (made["owner"], made["status"], made["webhook"]) == ("alice", "active", None)
    assert [(q["id"], q["interface"]) for q in queries(app)] == [(made["id"], "api")]
    status, body = api(base, "POST", "/api/watches", "alice", {"tasking": "T-2", "query": "converter"})
    assert status == 403 and "neither the requester nor on the team" in body["error"]
    assert [(q["tasking_id"], q["interface"]) for q in queries(app, "query.refused")] == [("T-2", "api")]
    assert api(base, "POST", "/api/watches", "alice", {"tasking": "T-1", "query": "x"}, "application/x-www-form-urlencoded")[0] == 415
    assert api(base, "POST", "/api/watches", "alice", {"tasking": "T-1"})[0] == 400
    assert [w["id"] for w in api(base, "GET", "/api/watches", "alice")[1]["watches"]] == [made["id"]]
    assert api(base, "GET", "/api/watches", "dana")[1]["watches"] == []

    matching = item(1, text=MATCHING)
    publish(app, [matching])
    work(app)
    status, inbox = api(base, "GET", "/api/alerts", "alice")
    assert status == 200 and inbox["unread"] == 1
    [alert] = inbox["alerts"]
    assert (alert["watch_id"], [h["id"] for h in alert["hits"]], alert["new"]) == (made["id"], [matching.id], True)
    assert api(base, "POST", "/api/alerts/read", "alice", {"ids": [alert["id"], "someone-elses"]}) == (200, {"marked": 1})
    assert api(base, "GET", "/api/alerts", "alice")[1]["unread"] == 0
    assert api(base, "GET", "/api/alerts", "ada")[0] == 403

    assert api(base, "POST", f"/api/watches/{made['id']}/end", "dana", {"reason": "mine now"})[0] == 403
    status, ended = api(base, "POST", f"/api/watches/{made['id']}/end", "sam", {"reason": "case closed"})
    assert status == 200 and (ended["status"], ended["ended_by"], ended["end_reason"]) == ("ended", "sam", "case closed")
    assert [e.payload["reason"] for e in app.audit.entries(["watch.end"])] == ["case closed"]
    assert api(base, "GET", "/api/monitor/status", "alice")[0] == 403
    assert api(base, "GET", "/api/monitor/status", "sam") == (200, {"sources": []})


@pytest.mark.parametrize("path, body, status", [
    ("/api/watches", b'{"tasking": "T-1", "query": "\\ud800"}', 400),  # a lone surrogate is no text to audit
    ("/api/watches", b"\xff\xfe{", 400),
    ("/api/watches", b"[" * 16_000, 400),  # nested deeper than the decoder goes
    ("/api/watches", b"1e999999", 400),
    ("/api/watches", b'{"tasking": 5, "query": "x"}', 400),
    ("/api/watches", b'{"tasking": "T-1", "query": "title:*"}', 400),  # parses, but the index cannot run it
    ("/api/watches", b'{"tasking": "T-1", "query": "x", "webhook": ["http://alerts.internal/"]}', 400),
    ("/api/watches/x/end", b'{"reason": "\\udfff"}', 400),
    ("/api/alerts/read", b'{"ids": "all"}', 400),
    ("/api/alerts/read", b'{"ids": ["\\ud800", 7]}', 400),
    ("/api/alerts/read", b'{"ids": ["\\ud800"]}', 200),  # not an alert of hers: nothing marked
])
def test_hostile_api_bodies_are_refused_not_failed(app, base, path, body, status):
    request = urllib.request.Request(base + path, body, method="POST", headers={"Content-Type": "application/json"})
    request.add_header("Authorization", "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            got, answered = answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as answer:
        got, answered = answer.code, json.loads(answer.read())
    assert got == status, answered
    assert queries(app, "watch.add") == []


def test_the_api_answers_as_docs_openapi_says(app, base):
    auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
    case = schema["/api/watches"]["POST"].Case(body={"tasking": "T-1", "query": "converters"}, media_type="application/json")
    response = case.call(base_url=base, headers=auth)
    case.validate_response(response)
    assert response.status_code == 201
    publish(app, [item(1, text=MATCHING)])
    work(app)
    for path, method in (("/api/watches", "GET"), ("/api/alerts", "GET")):
        case = schema[path][method].Case()
        response = case.call(base_url=base, headers=auth)
        case.validate_response(response)
        assert response.status_code == 200
    assert len(response.json()["alerts"]) == 1


# -- collection -----------------------------------------------------------------------------------

SOURCES = """
[[source]]
id = "desk"
kind = "feed"
tasking = "T-A"
urls = ["{url}/feed.atom"]
interval = 60
"""


def test_the_collection_page_shows_each_sources_status_as_monitor_status_does(tmp_path):
    data = tmp_path / "d"
    app = make_app(data, source_tasking(id="T-A"))
    for name in ("alice", "sam"):
        app.state.set_password_hash(name, hash_password(PASSWORD))
    sources = tmp_path / "sources.toml"
    env = MONITOR_ENV | {"FCMON_DATA_DIR": str(data)}
    with LiveFeed(posts=2) as feed:
        sources.write_text(SOURCES.format(url=feed.url))
        for round_ in range(2):  # the first poll is a backfill (no freshness); the second brings a new post
            if round_:
                feed.add("Converter ring at the rail yard", "Wrenchman offers six catalytic converters near the rail yard.")
            fcmon("--as", "alice", "monitor", "run", "--sources", str(sources), "--once", env=env, check=True)
            fcmon("work", "--until-idle", env=env, check=True)
    [status] = json.loads(fcmon("--as", "sam", "monitor", "status", "--json", env=env, check=True).stdout)
    assert (status["source"], status["polls"], status["new_items"], status["freshness"]["sample"]) == ("desk", 2, 3, 1)
    with running_console(app) as base:
        client = WebClient(base)
        assert client.sign_in("sam", PASSWORD) == 303
        assert 'href="/collection"' in client.request("GET", "/")[2]
        logged = len(list(app.audit.entries()))
        code, _, body = client.request("GET", "/collection")
        assert len(list(app.audit.entries())) == logged  # not an audited read (no crawled content), as the CLI's is not
        assert api(base, "GET", "/api/monitor/status", "sam") == (200, {"sources": [status]})  # the same function
        analyst = WebClient(base)
        assert analyst.sign_in("alice", PASSWORD) == 303
        assert analyst.request("GET", "/collection")[0] == 403 and 'href="/collection"' not in analyst.request("GET", "/")[2]
    app.close()
    assert code == 200
    row = html.unescape(body.split('<tr class="source">', 1)[1].split("</tr>", 1)[0])
    fresh = status["freshness"]
    for shown in ("desk", "feed", "T-A", status["state"], status["last_poll"][:19].replace("T", " "),
                  status["last_success"][:19].replace("T", " "), f"{status['new_items']} ({status['new_items_last']})",
                  f"{fresh['p50_s']} s / {fresh['p95_s']} s (n=1"):
        assert shown in row, (shown, row)
    # the chart of posts collected per source per day, with its numbers as a table: today's row holds all three
    table = html.unescape(body.split('<table class="chart-data">', 1)[1].split("</table>", 1)[0])
    assert "<svg " in body.split('<figure class="chart" id="collected">', 1)[1] and '<th scope="col">desk</th>' in table
    today = utcnow().date().isoformat()
    days = table.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert f'<tr><th scope="row">{today}</th><td>3</td>' in days and days.count('<tr><th scope="row">') == 30
