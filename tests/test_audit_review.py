"""Supervisor review, the search-term ledger and the transparency report, through the real `fcmon` command."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from pipeline.app import App
from pipeline.duty import off_hours, parse_window
from pipeline.errors import FcmonError
from pipeline.index import SearchQuery
from pipeline.models import GuardDecision, Interface, QueryEvent, Reason, utcnow
from pipeline.passwords import verify_password
from pipeline.periods import date_range, parse_period
from pipeline.review import SYNC_CHUNK, mark
from pipeline.search import audited_search
from pipeline.settings import Settings
from tests.datadirs import fcmon, make_app
from tests.factories import make_record
from tests.factories_gateway import LIVE, NOW, PASSWORD, call, setup  # noqa: F401  (setup is a fixture)
from tests.factories_pipeline import make_tasking
from tests.factories_web import WebClient, api_search, running_console

UTC = ZoneInfo("UTC")


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 2, hour, minute, tzinfo=timezone.utc)


@pytest.mark.parametrize("window,moment,expected", [
    ("08:00-16:00", at(9), False), ("08:00-16:00", at(16), True), ("08:00-16:00", at(7, 59), True),
    ("22:00-06:00", at(23), False), ("22:00-06:00", at(5), False), ("22:00-06:00", at(12), True),
    (None, at(3), None),
])
def test_off_hours(window, moment, expected):
    assert off_hours(moment, window, UTC) is expected


def test_duty_hours_are_read_in_the_duty_timezone():
    assert off_hours(at(15), "08:00-16:00", ZoneInfo("America/Chicago")) is False  # 09:00 in Chicago
    assert off_hours(at(9), "08:00-16:00", ZoneInfo("America/Chicago")) is True  # 03:00 in Chicago


@pytest.mark.parametrize("bad", ["8-16", "08:00-08:00", "25:00-26:00", "08:00 16:00"])
def test_bad_duty_hours(bad):
    with pytest.raises(FcmonError, match="duty hours"):
        parse_window(bad)


def test_periods():
    assert parse_period("2026-Q4") == (datetime(2026, 10, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert parse_period("2026-02")[1] == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert date_range("2026-11-01", "2026-11-30")[1] == datetime(2026, 12, 1, tzinfo=timezone.utc)
    for bad in ("2026-Q5", "2026-13", "Q4-2026", "26"):
        with pytest.raises(FcmonError, match="bad period"):
            parse_period(bad)


def window_excluding_now() -> str:
    start, end = NOW + timedelta(hours=2), NOW + timedelta(hours=3)
    return f"{start:%H:%M}-{end:%H:%M}"


def window_including_now() -> str:
    start, end = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


@pytest.fixture
def data(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE, team=["dana"]))
    app.state.set_duty_hours("alice", window_excluding_now())
    app.state.set_duty_hours("dana", window_including_now())
    app.index.upsert([make_record(url="https://forum.example/p/1", text="catalytic converter")])
    app.close()
    return tmp_path / "d"


def cli(root, *args, user="sam"):
    return fcmon("--data-dir", str(root), "--as", user, *args)


def listed(root, *args) -> list[dict]:
    result = cli(root, "audit", "list", "--kind", "query", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_review_marks_highlights_and_filters(data):
    for user, term in (("alice", "converter"), ("dana", "catalytic")):
        assert cli(data, "search", term, "--tasking", "T-1", user=user).returncode == 0
    queries = {q["payload"]["query"]: q for q in listed(data)}
    assert queries["converter"]["review"]["off_hours"] is True and "OFF-HOURS" in queries["converter"]["review"]["highlights"]
    assert queries["catalytic"]["review"]["off_hours"] is False and queries["catalytic"]["review"]["hits_total"] == 1
    alice_query = queries["converter"]["payload"]["id"]

    flagged = cli(data, "audit", "review", alice_query, "--flag", "--note", "search outside duty hours", "--json")
    assert flagged.returncode == 0, flagged.stderr
    assert [q["payload"]["query"] for q in listed(data, "--flagged")] == ["converter"]
    assert [q["payload"]["query"] for q in listed(data, "--unreviewed")] == ["catalytic"]
    review = listed(data, "--flagged")[0]["review"]
    assert review == {**review, "status": "flagged", "note": "search outside duty hours", "by": "sam"}
    (mark,) = json.loads(cli(data, "audit", "list", "--kind", "query.review", "--json").stdout)
    assert mark["actor"] == "sam" and mark["payload"]["query_id"] == alice_query  # the mark is audited

    text = cli(data, "audit", "list", "--kind", "query", "--user", "alice").stdout
    assert "OFF-HOURS" in text and "FLAGGED" in text
    dana_line = cli(data, "audit", "list", "--kind", "query", "--user", "dana").stdout
    assert dana_line.rstrip().endswith("catalytic (unreviewed)")  # no empty brackets without highlights
    assert listed(data, "--user", "dana", "--tasking", "T-1")[0]["payload"]["query"] == "catalytic"
    assert listed(data, "--from", "2000-01-01", "--to", "2000-01-02") == []
    first, last = sorted(q["payload"]["at"][:10] for q in queries.values())  # the days they ran (a run may cross midnight)
    assert len(listed(data, "--from", first, "--to", last)) == 2
    # queries alone are found through the review view; mixed with other kinds, by reading the log: the same entries
    everything = json.loads(cli(data, "audit", "list", "--kind", "query", "--kind", "query.result", "--json").stdout)
    assert [e for e in everything if e["kind"] == "query"] == listed(data)
    assert [e["seq"] for e in listed(data)] == sorted(e["seq"] for e in listed(data))  # chain order


def test_listing_the_log_is_itself_audited(data):
    """`fcmon audit list` read the log unrecorded (the ledger's export was recorded)."""
    assert cli(data, "search", "converter", "--tasking", "T-1", user="alice").returncode == 0
    [query] = listed(data, "--user", "alice")
    [read] = json.loads(cli(data, "audit", "list", "--kind", "audit.list", "--json").stdout)
    assert read["actor"] == "sam" and read["payload"]["interface"] == "cli"
    assert read["payload"]["filters"] == {"kinds": ["query"], "user": "alice"}
    assert (read["payload"]["shown"], read["payload"]["first_seq"], read["payload"]["last_seq"]) == (1, query["seq"], query["seq"])


def test_review_refusals(data):
    assert cli(data, "search", "converter", "--tasking", "T-1", user="sam").returncode == 0
    own = listed(data)[0]["payload"]["id"]
    cases = [
        (("audit", "review", own, "--reviewed"), "sam", "another supervisor must review it"),
        (("audit", "review", own, "--reviewed"), "alice", "needs the role supervisor"),
        (("audit", "review", own, "--flag"), "sue", "a flag needs a note"),
        (("audit", "review", "nope", "--reviewed"), "sue", "no query 'nope'"),
        (("audit", "review", own), "sue", "pass --reviewed, or --flag"),
    ]
    for args, user, message in cases:
        result = cli(data, *args, user=user)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    assert cli(data, "audit", "review", own, "--reviewed", user="sue").returncode == 0
    assert listed(data, "--unreviewed") == []


def test_a_tasking_that_has_since_ended_is_highlighted(data):
    assert cli(data, "search", "converter", "--tasking", "T-1", user="dana").returncode == 0
    app = App(Settings(data_dir=data))
    tasking = app.state.tasking("T-1")
    app.state.put_tasking(tasking.model_copy(update={"revoked": True, "revoked_by": "sam", "revoked_at": NOW}))
    app.close()
    (query,) = listed(data)
    assert query["review"]["tasking_expired"] is True and "TASKING-ENDED" in query["review"]["highlights"]


def logged_query(app: App, user: str, term: str, at: datetime, tasking_id: str = "T-1", hits: int = 1) -> str:
    """A query as audited_search logs it: the QueryEvent, then its result."""
    event = QueryEvent(id=f"q-{term}", at=at, user=user, role=app.state.user(user).role, tasking_id=tasking_id,
                       query=term, interface="cli")
    app.audit.append("query", user, event.model_dump(mode="json"))
    app.audit.append("query.result", user, {"query_id": event.id, "at": at.isoformat(), "hits_total": hits, "returned_ids": []})
    return event.id


def test_the_review_reads_only_what_was_logged_since_and_filters_in_the_database(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE, team=["dana"]), make_tasking(id="T-2", requested_by="dana", **LIVE))
    reviews = app.query_reviews
    logged_at = []  # when each pair of queries was logged: the time filters read the log's times
    for i in range(6):
        if i % 2 == 0:
            logged_at.append(utcnow())
        logged_query(app, ("alice", "dana")[i % 2], f"term{i}", NOW, ("T-1", "T-2")[i // 4])
    assert reviews.sync() == 12 and reviews.sync() == 0  # the second read finds nothing new
    mark(reviews, app.state.user("sam"), "q-term1", "flagged", "why this search?")
    assert reviews.sync() == 1

    def terms(**filters) -> tuple[list[str], int]:
        rows, total = reviews.page(**filters)
        return [r.query for r in rows], total
    assert terms() == (["term5", "term4", "term3", "term2", "term1", "term0"], 6)
    assert terms(offset=1, limit=2) == (["term4", "term3"], 6)
    assert terms(user="dana") == (["term5", "term3", "term1"], 3)
    assert terms(tasking_id="T-2") == (["term5", "term4"], 2)
    assert terms(statuses=["flagged"]) == (["term1"], 1) and terms(statuses=["unreviewed"])[1] == 5
    assert terms(statuses=["flagged", "reviewed"], user="dana") == (["term1"], 1)
    assert terms(start=logged_at[1], end=logged_at[2]) == (["term3", "term2"], 2)
    assert terms(end=logged_at[0]) == ([], 0) and terms(start=logged_at[2])[1] == 2
    (flagged,) = reviews.page(statuses=["flagged"])[0]
    assert (flagged.reviewed_by, flagged.review_note, flagged.hits_total) == ("sam", "why this search?", 1)

    logged_query(app, "alice", "later", NOW)
    assert terms(limit=1) == (["later"], 7)  # a page is brought up to date before it is read


def test_the_review_is_rebuilt_when_the_log_it_read_was_replaced(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE))
    logged_query(app, "alice", "old", NOW)
    assert [r.query for r in app.query_reviews.page()[0]] == ["old"]
    app.close()
    for path in (app.data_dir.audit_db, app.data_dir.audit_head):  # a log restored from elsewhere: other entries, same seqs
        path.unlink()
    for suffix in ("-wal", "-shm"):
        app.data_dir.audit_db.with_name(app.data_dir.audit_db.name + suffix).unlink(missing_ok=True)
    replaced = App(Settings(data_dir=tmp_path / "d"))
    logged_query(replaced, "alice", "new", NOW)
    assert [r.query for r in replaced.query_reviews.page()[0]] == ["new"]


def test_a_long_log_is_read_in_several_transactions(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE))
    for i in range(SYNC_CHUNK // 2 + 1):
        logged_query(app, "alice", f"t{i}", NOW)
    assert app.query_reviews.sync() == 2 * (SYNC_CHUNK // 2 + 1)
    rows, total = app.query_reviews.page(limit=1)
    assert total == SYNC_CHUNK // 2 + 1 and rows[0].query == f"t{SYNC_CHUNK // 2}" and rows[0].hits_total == 1


# Every search interface: the CLI, the Kibana gateway, the web console and its API.
COVERED = {"cli", "kibana", "web", "api"}


def test_the_ledger_holds_every_search_term_from_every_interface(setup):
    app, base, tmp_path = setup
    root = tmp_path / "d"
    assert COVERED == set(Interface.__args__)  # a new interface must be added to this test
    app.state.set_password_hash("dana", app.state.password_hash("alice"))
    entered = {
        "cli": cli(root, "search", "converter AND cash", "--tasking", "T-1", user="alice"),
        "cli-refused": cli(root, "search", "wrenchman", "--tasking", "T-2", user="alice"),
        "cli-bad-date": cli(root, "search", "pickup spot", "--tasking", "T-1", "--from", "last week", user="alice"),
        "cli-bad-filter": cli(root, "search", "cash only", "--tasking", "T-1", "--filter", "bogus=1", user="alice"),
    }
    assert entered["cli"].returncode == 0 and entered["cli-refused"].returncode == 2
    assert entered["cli-bad-date"].returncode == 2 and entered["cli-bad-filter"].returncode == 2
    assert call(base, "POST", "/fcmon-records/_search", {"query": {"query_string": {"query": "stolen pallets"}}})[0] == 200
    assert call(base, "POST", "/fcmon-records/_search", {"query": {"match": {"message": "docks"}}}, tasking="T-2")[0] == 403
    assert call(base, "POST", "/fcmon-records/_search", {"query": {"match": {"message": "ledger-term"}}}, tasking=None)[0] == 403
    with running_console(app) as console:
        browser = WebClient(console)
        assert browser.sign_in("alice", PASSWORD) == 303
        assert browser.search("T-1", "web words")[0] == 200
        assert browser.search("T-2", "web refused")[0] == 403
        assert api_search(console, {"tasking": "T-1", "q": "api words"}, "alice", PASSWORD)[0] == 200
        assert api_search(console, {"q": "api refused"}, "alice", PASSWORD)[0] == 400  # no tasking

    start, end = ((utcnow() + timedelta(days=d)).date().isoformat() for d in (-1, 1))  # safe across midnight
    result = cli(root, "audit", "ledger", "--from", start, "--to", end, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    terms = {(r["interface"], r["outcome"], r["search_terms"]) for r in rows}
    assert terms == {("cli", "run", "converter AND cash"), ("cli", "refused", "wrenchman"), ("cli", "refused", "pickup spot"),
                     ("cli", "refused", "cash only"),
                     ("kibana", "run", "stolen pallets"), ("kibana", "refused", "message:docks"),
                     ("kibana", "refused", "message:ledger-term"), ("web", "run", "web words"),
                     ("web", "refused", "web refused"), ("api", "run", "api words"), ("api", "refused", "api refused")}
    assert {r["interface"] for r in rows} == COVERED
    assert all(r["user"] == "alice" and start <= r["at"][:10] <= end for r in rows)

    as_csv = list(csv.DictReader(io.StringIO(cli(root, "audit", "ledger", "--from", start, "--to", end).stdout)))
    assert sorted(r["search_terms"] for r in as_csv) == sorted(t for _, _, t in terms)
    assert cli(root, "audit", "ledger", "--from", "2000-01-01", "--to", "2000-01-31", "--format", "json").stdout.strip() == "[]"
    assert cli(root, "audit", "ledger", "--from", start, "--to", end, user="alice").returncode == 2
    bad = cli(root, "audit", "ledger", "--from", "yesterday", "--to", end)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
    assert [e.payload["rows"] for e in app.audit.entries(["audit.ledger"])][:2] == [11, 11]  # exports are audited


def test_transparency_report(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE), make_tasking(id="T-9", kind="public_safety", case_number=None,
                                                                      predicate=None, criminal_activity=None, **LIVE))
    app.index.upsert([make_record(url=f"https://forum.example/p/{i}") for i in range(3)])
    app.audit.append("crawl.end", "alice", {"tasking_id": "T-1", "items": 7})
    app.audit.append("crawl.end", "alice", {"tasking_id": "T-1", "items": 5})
    app.audit.append("quarantine.purge", "sam", {"item_id": "x"})
    for n, rule in enumerate(("first_amendment", "first_amendment", "public_provenance")):
        app.state.reject(GuardDecision(item_id=f"item-{n}", decision="rejected",
                                       reasons=[Reason(rule=rule, clause="28CFR23.20(b)", message="m")]))
    audited_search(app.state, app.audit, app.index, app.state.user("alice"), SearchQuery(text="x", tasking_id="T-1"), "cli")
    app.close()
    month = NOW.strftime("%Y-%m")
    result = fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "report", "transparency", "--period", month, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["taskings_approved_by_kind"] == {"criminal_predicate": 1, "public_safety": 1}
    assert report["items_collected"] == 12 and report["crawls"] == 2
    assert report["records_indexed_now"] == 3 and report["records_purged"] == 1
    assert report["rejected_by_rule"] == {"first_amendment": 2, "public_provenance": 1} and report["rejected_total"] == 3
    assert report["queries"] == 1 and report["queries_by_interface"] == {"cli": 1}
    assert report["packets_disseminated"] == 0  # disseminations are counted in tests/test_packets.py
    last_year = fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "report", "transparency", "--period", "2001", "--json")
    assert json.loads(last_year.stdout)["items_collected"] == 0
    bad = fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "report", "transparency", "--period", "2026-Q7")
    assert bad.returncode == 2 and "2026-Q4" in bad.stderr
    text = fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "report", "transparency", "--period", month)
    assert "items collected: 12" in text.stdout


def test_user_duty_hours_and_password_commands(tmp_path):
    root = str(tmp_path / "d")
    assert fcmon("--data-dir", root, "init").returncode == 0
    added = fcmon("--data-dir", root, "user", "add", "kim", "--role", "analyst", "--duty-hours", "22:00-06:00", "--json")
    assert added.returncode == 0 and json.loads(added.stdout)["duty_hours"] == "22:00-06:00"
    assert fcmon("--data-dir", root, "user", "add", "lee", "--role", "analyst").returncode == 0  # unchanged contract
    bad = fcmon("--data-dir", root, "user", "add", "max", "--role", "analyst", "--duty-hours", "9-5")
    assert bad.returncode == 2 and "HH:MM-HH:MM" in bad.stderr
    cleared = fcmon("--data-dir", root, "user", "set-duty-hours", "kim", "none", "--json")
    assert json.loads(cleared.stdout)["duty_hours"] is None

    env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")}
    short = subprocess.run([sys.executable, "-m", "pipeline", "--data-dir", root, "user", "set-password", "kim"],
                           input="short\n", capture_output=True, text=True, env=env)
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    secret = "a long enough passphrase"
    ok = subprocess.run([sys.executable, "-m", "pipeline", "--data-dir", root, "user", "set-password", "kim"],
                        input=secret + "\n", capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    app = App(Settings(data_dir=root))
    stored = app.state.password_hash("kim")
    assert stored.startswith("scrypt$") and verify_password(secret, stored) and not verify_password("wrong", stored)
    assert secret not in (tmp_path / "d" / "audit.db").read_bytes().decode(errors="replace")
    assert [e.kind for e in app.audit.entries()][-2:] == ["user.duty_hours", "user.password"]


def test_audit_list_prints_no_terminal_control_sequences(data):
    root = data
    cli(root, "search", "cat\x1b[2J\x1b[31mRED\x07", "--tasking", "T-1", user="alice")  # logged, whatever it answers
    shown = cli(root, "audit", "list", "--kind", "query")
    assert shown.returncode == 0 and "RED" in shown.stdout
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout  # they would clear and recolour a supervisor's screen
    refused = cli(root, "user", "add", "ev\x1b[2Jil", "--role", "analyst", user="ada")
    assert refused.returncode == 2 and "is not allowed" in refused.stderr
