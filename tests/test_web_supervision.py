"""Supervisors in the web console: the quarantine (open a held item, keep or purge it) and taskings (approve,
revoke), in a real browser; every step is the CLI's, audited the same way; nobody else may take them."""
from __future__ import annotations

import html
from datetime import timedelta

import pytest

from guards.chain import GuardChain
from pipeline.bus import COLLECTED
from pipeline.models import utcnow
from pipeline.passwords import hash_password
from pipeline.worker import Worker
from tests.datadirs import make_app
from tests.factories_guards import build, item_fields, tasking_fields
from tests.factories import make_record
from tests.factories_pipeline import make_tasking
from tests.factories_web import WebClient, csrf_of
from tests.test_web import PASSWORD, base, browser, page, queries, sign_in  # noqa: F401  (fixtures; base serves this module's app)

NOW = utcnow()
HELD_TITLE = 'Rally <img src=x onerror="alert(1)">'
HELD_TEXT = "After the rally we cut the converters off their trucks <script>alert(2)</script>"


@pytest.fixture
def app(tmp_path):
    """T-Q holds one item in the quarantine (protected activity with signs of crime); alice asked for T-P, not yet approved."""
    tasking, item = build(tasking_fields("T-Q", NOW), item_fields("T-Q", 1, NOW, title=HELD_TITLE, text=HELD_TEXT))
    pending = make_tasking(id="T-P", case_number="2026-CR-9", approved_by=None, approved_at=None,
                           expires_at=NOW + timedelta(days=30))
    app = make_app(tmp_path / "d", tasking, pending, make_tasking(id="T-S", requested_by="sue", team=[]))
    for name in ("alice", "sam", "sue"):
        app.state.set_password_hash(name, hash_password(PASSWORD))
    app.bus.produce(COLLECTED, item.source_id, item.model_dump_json().encode())
    app.bus.flush()
    assert Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings)).run(until_idle=True).quarantined == 1
    app.held_id = item.id
    yield app
    app.close()


def test_a_supervisor_opens_a_held_item_and_purges_it_in_the_browser(app, base, page):
    sign_in(page, base, "sam")
    with page.expect_navigation():
        page.click("a:text-is('Quarantine')")
    row = page.locator("tr", has_text=app.held_id)
    assert "first_amendment" in row.inner_text() and "protest:rally" in row.inner_text()
    assert queries(app, "quarantine.show") == []  # the list shows no content
    with page.expect_navigation():
        row.locator("button").click()  # opening one is audited: posted with the session's token
    assert page.locator("h2").inner_text() == HELD_TITLE and page.locator("blockquote").inner_text() == HELD_TEXT
    [read] = queries(app, "quarantine.show")
    assert (read["item_id"], read["tasking_id"], read["interface"]) == (app.held_id, "T-Q", "web")
    page.fill("textarea[name=reason]", "a rally report; the theft is already in case 2026-CR-7")
    with page.expect_navigation():
        page.click("button[value=purge]")
    assert page.url == base + "/quarantine" and "Nothing held." in page.locator("tbody").inner_text()
    [purged] = queries(app, "quarantine.purge")
    assert (purged["item_id"], purged["reason"]) == (app.held_id, "a rally report; the theft is already in case 2026-CR-7")
    assert app.state.quarantined() == [] and app.index.count() == 0
    assert page.dialogs == []  # the held markup was shown as text


def test_a_kept_item_is_indexed_with_the_supervisor_on_it(app, base):
    client = WebClient(base)
    assert client.sign_in("sam", PASSWORD) == 303
    csrf = csrf_of(client.request("GET", "/quarantine")[2])
    assert client.request("POST", f"/quarantine/{app.held_id}", {"csrf": csrf})[0] == 200
    status, headers, _ = client.request("POST", "/quarantine/decide", {"csrf": csrf, "item_id": app.held_id, "choice": "keep",
                                                                      "reason": "a direct threat to property"})
    assert (status, headers["Location"]) == (303, "/quarantine")
    record = app.index.get(app.held_id)
    assert (record.released_by, record.release_reason) == ("sam", "a direct threat to property")
    assert [e["item_id"] for e in queries(app, "quarantine.keep")] == [app.held_id]


def test_a_decision_needs_a_reason_and_only_supervisors_see_the_quarantine(app, base):
    supervisor = WebClient(base)
    supervisor.sign_in("sam", PASSWORD)
    csrf = csrf_of(supervisor.request("GET", "/quarantine")[2])
    assert supervisor.request("POST", f"/quarantine/{app.held_id}", {"csrf": csrf})[0] == 200
    status, _, body = supervisor.request("POST", "/quarantine/decide", {"csrf": csrf, "item_id": app.held_id, "choice": "keep",
                                                                        "reason": " "})
    assert status == 400 and "the reason is empty" in body
    assert len(app.state.quarantined()) == 1 and queries(app, "quarantine.keep") == []

    analyst = WebClient(base)
    analyst.sign_in("alice", PASSWORD)
    assert "Quarantine" not in analyst.request("GET", "/")[2]
    for method, path in (("GET", "/quarantine"), ("POST", f"/quarantine/{app.held_id}")):
        status, _, body = analyst.request(method, path, {"csrf": analyst.csrf()} if method == "POST" else None)
        assert status == 403 and "needs the role supervisor" in body
    status, _, body = analyst.request("POST", "/quarantine/decide", {"csrf": csrf_of(analyst.request("GET", "/")[2]),
                                                                     "item_id": app.held_id, "choice": "purge", "reason": "x"})
    assert status == 403 and len(app.state.quarantined()) == 1
    assert [e["interface"] for e in queries(app, "quarantine.show")] == ["web"]  # the supervisor's read only


def test_a_supervisor_approves_a_tasking_in_the_browser_and_nobody_approves_their_own(app, base, page):
    sign_in(page, base, "sam")
    with page.expect_navigation():
        page.click("a:text-is('Taskings')")
    pending = page.locator("tr", has_text="T-P")
    assert pending.locator(".status").inner_text() == "pending" and "2026-CR-9" in pending.inner_text()
    assert page.locator("tr", has_text="T-S").count() == 1  # a supervisor sees every tasking
    with page.expect_navigation():
        pending.locator("button:text-is('Approve')").click()
    assert page.locator("tr", has_text="T-P").locator(".status").inner_text() == "active"
    [approval] = queries(app, "tasking.approve")
    assert approval["tasking_id"] == "T-P" and app.state.tasking("T-P").approved_by == "sam"

    app.state.put_tasking(make_tasking(id="T-O", requested_by="sam", approved_by=None, approved_at=None))
    page.reload()
    assert page.locator("tr", has_text="T-O").locator("button:text-is('Approve')").count() == 0
    client = WebClient(base)
    client.sign_in("sam", PASSWORD)
    status, _, body = client.request("POST", "/taskings/approve", {"csrf": csrf_of(client.request("GET", "/")[2]), "tasking_id": "T-O"})
    assert status == 403 and "cannot approve it" in body and app.state.tasking("T-O").approved_by is None


def test_the_approver_sees_who_gets_access_and_the_team_must_be_users(app, base):
    """The approval page showed the requester only; a team name nobody holds was stored and waited for its user."""
    app.state.put_tasking(app.state.tasking("T-P").model_copy(update={"team": ["dana"]}))
    client = WebClient(base)
    client.sign_in("sam", PASSWORD)
    _, _, body = client.request("GET", "/taskings")
    row = body[body.index("<td>T-P</td>"):]
    row = row[:row.index("</tr>")]
    assert '<td class="access">alice (analyst, requester), dana (detective)</td>' in row and "Approve</button>" in row
    status, _, _ = client.request("POST", "/taskings/approve", {"csrf": csrf_of(body), "tasking_id": "T-P"})
    assert status == 303
    [approval] = queries(app, "tasking.approve")
    assert [(m["name"], m["role"]) for m in approval["access"]] == [("alice", "analyst"), ("dana", "detective")]
    analyst = WebClient(base)
    analyst.sign_in("alice", PASSWORD)
    form = {"csrf": csrf_of(analyst.request("GET", "/taskings")[2]), "id": "T-9", "kind": "criminal_predicate",
            "case_number": "2026-CR-10", "criminal_activity": "burglary of garages", "domains": "forum.example",
            "predicate": make_tasking().predicate, "team": "dana, bob", "expires": f"{NOW + timedelta(days=30):%Y-%m-%d}"}
    status, _, body = analyst.request("POST", "/taskings", form)
    assert status == 400 and "team names 'bob', which is no user" in html.unescape(body)
    assert queries(app, "tasking.request") == []


def test_reading_the_quarantine_and_the_query_log_is_audited_and_no_other_page_can_ask(app, base):
    """The lists were not audited reads; audited, another origin's page must not make a browser write them."""
    client = WebClient(base)
    client.sign_in("sam", PASSWORD)
    status, _, body = client.request("GET", "/quarantine")
    assert status == 200 and app.held_id in body
    [read] = queries(app, "quarantine.list")
    assert (read["user"], read["interface"], read["item_ids"], read["count"]) == ("sam", "web", [app.held_id], 1)
    client.search("T-Q", "converter")
    status, _, body = client.request("GET", "/review?user=sam&status=unreviewed")
    assert status == 200 and "<code>converter</code>" in body
    [log_read] = queries(app, "audit.list")
    assert (log_read["user"], log_read["role"], log_read["interface"]) == ("sam", "supervisor", "web")
    assert log_read["filters"] == {"user": "sam", "status": "unreviewed"} and log_read["shown"] == log_read["total"] == 1
    [query] = app.audit.entries(["query"])
    assert log_read["first_seq"] == log_read["last_seq"] == query.seq
    for site in ("same-site", "cross-site"):  # a page on another port of this host, or another site
        client.opener.addheaders = [("Sec-Fetch-Site", site)]
        for path in ("/quarantine", "/review"):
            status, _, body = client.request("GET", path)
            assert status == 403 and "did not come from the console's own pages" in html.unescape(body)
    assert len(queries(app, "quarantine.list")) == 1 and len(queries(app, "audit.list")) == 1
    client.opener.addheaders = [("Sec-Fetch-Site", "same-origin")]
    assert client.request("GET", "/quarantine")[0] == 200 and len(queries(app, "quarantine.list")) == 2


def test_the_requester_sees_and_revokes_only_their_own_taskings(app, base):
    client = WebClient(base)
    client.sign_in("alice", PASSWORD)
    _, _, body = client.request("GET", "/taskings")
    assert "T-Q" in body and "T-P" in body and "T-S" not in body  # sue's tasking is not hers to know
    assert "Approve</button>" not in body
    csrf = csrf_of(body)
    status, _, body = client.request("POST", "/taskings/approve", {"csrf": csrf, "tasking_id": "T-P"})
    assert status == 403 and "only a supervisor approves" in body
    status, _, body = client.request("POST", "/taskings/revoke", {"csrf": csrf, "tasking_id": "T-S", "reason": "not mine"})
    assert status == 403 and not app.state.tasking("T-S").revoked
    status, _, _ = client.request("POST", "/taskings/revoke", {"csrf": csrf, "tasking_id": "T-P", "reason": "case closed"})
    assert status == 303 and app.state.tasking("T-P").revoked
    [revocation] = queries(app, "tasking.revoke")
    assert (revocation["tasking_id"], revocation["reason"]) == ("T-P", "case closed")


def test_an_analyst_requests_a_tasking_in_the_browser_and_a_refused_request_keeps_the_form(app, base, page):
    sign_in(page, base, "alice")
    page.goto(base + "/taskings")
    page.fill("input[name=id]", "IG-7")
    page.select_option("select[name=kind]", "information_gathering")
    page.fill("input[name=title]", "Street racing meet-ups, 14th District")
    page.fill("input[name=domains]", "forum.example")
    page.fill("input[name=keywords]", "street racing, rally")
    page.fill("input[name=expires]", f"{NOW + timedelta(days=60):%Y-%m-%d}")
    with page.expect_navigation():
        page.click("button:text-is('Request')")
    assert "rally are protest, advocacy, worship or organizing terms" in page.locator(".error").inner_text()
    assert page.input_value("input[name=title]") == "Street racing meet-ups, 14th District"  # nothing typed is lost
    assert queries(app, "tasking.request") == []
    page.fill("input[name=keywords]", "drag race, street racing")
    with page.expect_navigation():
        page.click("button:text-is('Request')")
    assert page.url == base + "/taskings"
    assert page.locator("tr", has_text="IG-7").locator(".status").inner_text() == "pending"
    stored = app.state.tasking("IG-7")
    assert (stored.requested_by, stored.kind, stored.scope.keywords) == ("alice", "information_gathering", ["drag race", "street racing"])
    assert [e["id"] for e in queries(app, "tasking.request")] == ["IG-7"]


def test_a_criminal_predicate_must_state_its_facts(app, base):
    client = WebClient(base)
    client.sign_in("alice", PASSWORD)
    form = {"csrf": csrf_of(client.request("GET", "/taskings")[2]), "id": "T-9", "kind": "criminal_predicate",
            "case_number": "2026-CR-10", "criminal_activity": "burglary of garages", "domains": "forum.example",
            "expires": f"{NOW + timedelta(days=30):%Y-%m-%d}"}
    status, _, body = client.request("POST", "/taskings", form)
    assert status == 400 and "must state predicate (28CFR23.20(c))" in body and 'value="burglary of garages"' in body
    status, _, body = client.request("POST", "/taskings", form | {"predicate": "he is suspicious"})
    assert status == 400 and "the predicate must state the facts" in body
    assert queries(app, "tasking.request") == []
    status, _, body = client.request("POST", "/taskings", form | {"expires": "next week"})
    assert status == 400 and "expires 'next week' is not a date" in html.unescape(body)


def test_a_supervisor_validates_and_purges_records_coming_due_in_the_browser(app, base, page):
    soon, later = (make_record(tasking_id="T-Q", url=f"https://forum.example/{name}", title=title,
                               label_overrides={"review_by": (NOW + timedelta(days=days)).date(),
                                                "purge_by": (NOW + timedelta(days=days)).date()})
                   for name, title, days in (("soon", "Soon <b>due</b>", 5), ("later", "Later", 400)))
    app.index.upsert([soon, later])
    sign_in(page, base, "sam")
    with page.expect_navigation():
        page.click("a:text-is('Retention')")
    assert page.locator("tbody tr").count() == 0 and queries(app, "retention.list") == []  # a GET lists nothing
    with page.expect_navigation():
        page.click("button:text-is('List')")  # a listing is audited: posted with the session's token
    rows = page.locator("tbody tr")
    assert rows.count() == 1 and "Soon <b>due</b>" in rows.first.inner_text()  # within 30 days only; titles as text
    [listing] = queries(app, "retention.list")
    assert (listing["within_days"], listing["rows"]) == (30, 1)
    rows.first.locator("input[name=reason]").fill("still tied to case 2026-CR-7")
    with page.expect_navigation():
        rows.first.locator("button:text-is('Validate')").click()
    assert "validated by sam: still tied to case 2026-CR-7" in page.locator("tbody tr").first.inner_text()
    [kept] = queries(app, "retention.keep")
    assert (kept["record_id"], kept["purge_by"]) == (soon.id, soon.labels.purge_by.isoformat())  # the date never moves
    page.fill("input[name=within]", "500")
    with page.expect_navigation():
        page.click("button:text-is('List')")
    later_row = page.locator("tr", has_text="Later")
    later_row.locator("input[name=reason]").fill("no longer relevant")
    with page.expect_navigation():
        later_row.locator("button:text-is('Purge now')").click()
    assert app.index.get(later.id) is None and app.index.get(soon.id) is not None
    assert [e["record_id"] for e in queries(app, "retention.purge")] == [later.id]


def test_retention_is_for_supervisors_and_a_bad_horizon_is_refused(app, base):
    analyst = WebClient(base)
    analyst.sign_in("alice", PASSWORD)
    status, _, body = analyst.request("GET", "/retention")
    assert status == 403 and "needs the role supervisor" in body and "Retention</a>" not in analyst.request("GET", "/")[2]
    supervisor = WebClient(base)
    supervisor.sign_in("sam", PASSWORD)
    status, _, body = supervisor.request("POST", "/retention/due", {"csrf": supervisor.csrf(), "within": "soon"})
    assert status == 400 and "is not a number of days" in html.unescape(body)
    status, _, body = supervisor.request("POST", "/retention/due", {"csrf": supervisor.csrf(), "within": str(10**12)})
    assert status == 400 and "is outside 0-1830 days" in body
    assert queries(app, "retention.list") == []
