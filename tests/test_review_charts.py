"""The review page's charts over a real data directory and the real console: queries made through the real search
paths (so the audit log holds them), counted per day per user, off-hours and refused, per tasking, in the chart's
table; labels from the log (a tasking named in a refused search, a user the state does not know) stay text."""
from __future__ import annotations

import html
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.errors import FcmonError
from pipeline.index import SearchQuery
from pipeline.models import utcnow
from pipeline.passwords import hash_password
from pipeline.search import audited_search
from pipeline.state import User
from tests.datadirs import make_app
from tests.factories import make_record
from tests.factories_pipeline import make_tasking
from tests.factories_web import WebClient, api_search
from tests.test_web import PASSWORD, base, browser, page, sign_in  # noqa: F401  (fixtures; base serves this module's app)

NOW = utcnow()
LIVE = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
HOSTILE_TASKING = "<script>alert(1)</script>&T"
HOSTILE_USER = "<script>alert(2)</script>&co"
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")  # SCREENSHOT_DIR=docs/img writes docs/img/review-charts.png


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE, team=["dana"]), make_tasking(id="T-2", requested_by="sue", **LIVE))
    for name in ("alice", "sam", "dana", "ada"):
        app.state.set_password_hash(name, hash_password(PASSWORD))
    app.index.upsert([make_record(url=f"https://forum.example/p/{n}", text=f"catalytic converter {n}") for n in range(3)])
    yield app
    app.close()


def seed(app, base: str) -> None:
    """alice (off duty now) searches 3 times through the API, once under a tasking not hers and once, on the console's
    form, under a tasking that does not exist; dana searches twice; a user the state does not hold is refused."""
    now = utcnow()
    app.state.set_duty_hours("alice", f"{now + timedelta(hours=2):%H:%M}-{now + timedelta(hours=3):%H:%M}")
    for query in ("converter", "catalytic", "converter AND catalytic"):
        assert api_search(base, {"tasking": "T-1", "q": query}, "alice", PASSWORD)[0] == 200
    assert api_search(base, {"tasking": "T-2", "q": "converter"}, "alice", PASSWORD)[0] == 403
    for query in ("converter", "catalytic"):
        assert api_search(base, {"tasking": "T-1", "q": query}, "dana", PASSWORD)[0] == 200
    client = WebClient(base)
    assert client.sign_in("alice", PASSWORD) == 303
    assert client.search(HOSTILE_TASKING, "converter")[0] == 404  # logged as refused, naming that tasking
    with pytest.raises(FcmonError):  # e.g. a log restored from before names were checked
        audited_search(app.state, app.audit, app.index, User(HOSTILE_USER, "analyst", now.isoformat()),
                       SearchQuery(text="x", tasking_id="T-1"), "cli")


def table(body: str, key: str) -> dict[str, list[str]]:
    """A chart's table: the header row, each row by its heading, and the totals, as text."""
    found = body.split(f'<figure class="chart" id="{key}">', 1)[1].split("</figure>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", found.split("<table", 1)[1], re.DOTALL):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.DOTALL)]
        rows["header" if '<th scope="col">' in row else cells[0]] = cells[1:] if '<th scope="col">' not in row else cells
    return rows


def test_the_review_page_charts_the_queries_with_their_numbers(app, base):
    seed(app, base)
    client = WebClient(base)
    assert client.sign_in("sam", PASSWORD) == 303
    status, _, body = client.request("GET", "/review")
    assert status == 200 and body.count("<svg") == 3
    today = f"{utcnow():%Y-%m-%d}"
    assert f"to {today} (UTC, by day)" in body

    per_day = table(body, "queries-per-day")
    assert per_day["header"] == ["day", HOSTILE_USER, "alice", "dana", "total"]  # users in name order
    assert len([k for k in per_day if re.match(r"\d{4}-", k)]) == 30  # the last 30 days by default
    assert per_day["total"] == ["1", "5", "2", "8"]
    assert sum(int(per_day[day][-1]) for day in per_day if re.match(r"\d{4}-", day)) == 8

    flagged = table(body, "off-hours-refused")
    assert flagged["header"] == ["user", "off-hours", "refused"]  # no total across: a query can be both
    assert flagged["alice"] == ["5", "2"] and flagged["dana"] == ["0", "0"] and flagged[HOSTILE_USER] == ["0", "1"]
    assert flagged["total"] == ["5", "3"]

    used = table(body, "taskings-used")
    assert used[HOSTILE_TASKING] == ["0", "1", "1"] and used["T-1"] == ["5", "1", "6"] and used["T-2"] == ["0", "1", "1"]

    assert "<script>alert" not in body  # escaped in the SVG and in the tables alike
    assert body.count("&lt;script&gt;alert(1)&lt;/script&gt;&amp;T") >= 3

    status, _, narrowed = client.request("GET", "/review?user=dana")
    assert table(narrowed, "queries-per-day")["total"] == ["2"] and "2 quer(ies)" in narrowed  # the filters apply to both
    status, _, old = client.request("GET", "/review?period=2001")
    assert status == 200 and "2001-01-01 to 2001-12-31 (UTC, by month)" in old and '<p class="meta">0 quer(ies)' in old
    assert table(old, "queries-per-day")["total"][-1] == "0" and len(table(old, "queries-per-day")) == 14  # 12 months
    status, _, ancient = client.request("GET", "/review?from=1970-01-01")  # from the first query there is
    assert table(ancient, "queries-per-day")["total"][-1] == "8" and f"from {utcnow():%Y-%m}-01 to {today}" in ancient
    status, _, empty = client.request("GET", "/review?from=1970-01-01&user=nobody")  # ten years of months at most
    assert len(table(empty, "queries-per-day")) == 122 and "(UTC, by month)" in empty
    status, _, bad = client.request("GET", "/review?period=2026-Q7")
    assert status == 400 and "bad period '2026-Q7'" in html.unescape(bad) and "2026-Q4" in bad


def test_the_charts_show_in_the_browser_and_run_nothing(app, base, page):
    seed(app, base)
    page.set_viewport_size({"width": 1200, "height": 900})
    sign_in(page, base, "sam")
    with page.expect_navigation():
        page.click("a:text-is('Query review')")
    figure = page.locator("figure#queries-per-day")
    assert figure.locator("svg[role=img]").count() == 1 and figure.locator("svg").bounding_box()["width"] > 300
    assert figure.locator("svg text", has_text=HOSTILE_USER).count() == 1  # the legend's label, as text
    assert figure.locator("table caption").text_content() == "Queries per day, by user: the numbers drawn"
    assert figure.locator("details summary").inner_text() == "The numbers drawn: 30 rows"  # the last 30 days
    assert figure.locator("tfoot td").all_text_contents() == ["1", "5", "2", "8"]  # folded under the summary, still there
    used = page.locator("figure#taskings-used")
    assert used.locator("svg text", has_text=HOSTILE_TASKING).count() == 1
    assert used.locator("th[scope=row]", has_text=HOSTILE_TASKING).count() == 1
    assert page.locator("script, foreignObject, iframe").count() == 0 and page.dialogs == []
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / "review-charts.png"), full_page=True)
