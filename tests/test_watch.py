"""Standing queries on the real local bus, index, state and audit log: the search gate, the ledger, matching with the
index's own query language in the worker, one alert per record, the tasking's end, supervisors; the webhook against a
real HTTP server on 127.0.0.1."""
from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest

from guards.chain import GuardChain
from pipeline.errors import FcmonError, Forbidden
from pipeline.index import SearchQuery
from pipeline.models import utcnow
from pipeline.taskings import revoke_tasking
from pipeline.watches import Watches
from pipeline.worker import Worker
from tests.datadirs import fcmon, make_app
from tests.servers import serving
from tests.test_worker import NOW, item, live_tasking, publish


def watching(tmp_path, *taskings, **settings):
    app = make_app(tmp_path / "d", *(taskings or (live_tasking(), live_tasking(id="T-2", requested_by="dana"))), **settings)
    return app, Watches(app.state, app.audit, app.settings)


def work(app):
    watches = Watches(app.state, app.audit, app.settings)
    return Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings),
                  watches=watches).run(until_idle=True)


def entries(app, *kinds):
    return list(app.audit.entries(list(kinds)))


def test_a_watch_is_a_query_through_the_search_gate_and_in_the_ledger(tmp_path):
    app, watches = watching(tmp_path)
    made = watches.add(app.state.user("alice"), "T-1", '"rail yard" converter', None, "alice@host")
    [query] = entries(app, "query")
    assert query.payload["id"] == made.id and query.payload["query"] == '"rail yard" converter'
    assert query.payload["filters"] == {"standing": "watch"} and query.payload["case_number"] == "2026-CR-1"
    [added] = entries(app, "watch.add")
    assert added.payload["watch_id"] == made.id and added.actor == "alice"
    with pytest.raises(Forbidden):  # alice is not on T-2's team
        watches.add(app.state.user("alice"), "T-2", "converter", None, "alice@host")
    with pytest.raises(Forbidden):  # an administrator does not search
        watches.add(app.state.user("ada"), "T-1", "converter", None, "ada@host")
    app.close()
    ledger = fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "audit", "ledger", "--from", "2000-01-01",
                   "--to", "2100-01-01", "--format", "json")
    assert ledger.returncode == 0, ledger.stderr
    rows = json.loads(ledger.stdout)
    assert [(r["search_terms"], r["outcome"], r["tasking_id"]) for r in rows] == [
        ('"rail yard" converter', "run", "T-1"), ("converter", "refused", "T-2"), ("converter", "refused", "T-1")]


def test_a_watch_needs_a_valid_query_and_an_active_tasking(tmp_path):
    app, watches = watching(tmp_path, live_tasking(), live_tasking(id="T-P", approved_by=None, approved_at=None))
    alice = app.state.user("alice")
    with pytest.raises(FcmonError, match="invalid query"):
        watches.add(alice, "T-1", '"unbalanced', None, "alice@host")
    with pytest.raises(FcmonError, match="needs words"):
        watches.add(alice, "T-1", "  ", None, "alice@host")
    with pytest.raises(Forbidden, match="pending"):
        watches.add(alice, "T-P", "converter", None, "alice@host")
    assert watches.listed(alice) == [] and [e.kind for e in entries(app, "query", "query.refused")] == ["query.refused"]


def test_the_worker_alerts_once_per_record_with_the_index_query_semantics(tmp_path):
    app, watches = watching(tmp_path)
    alice, dana = app.state.user("alice"), app.state.user("dana")
    phrase = watches.add(alice, "T-1", '"rail yard" -wheel', None, "alice@host")
    field = watches.add(alice, "T-1", "title:ring", None, "alice@host")
    other = watches.add(dana, "T-2", "converter", None, "dana@host")
    first = item(1, title="Ring", text="Six stolen converters at the rail yard tonight.")
    publish(app, [first, item(2, text="Converters and a wheel at the rail yard."),
                  item(3, text="Converters near the yard by the rail.")])
    assert work(app).alerts == 2
    [a_phrase] = [a for a in watches.alerts(alice) if a["watch_id"] == phrase.id]
    [a_field] = [a for a in watches.alerts(alice) if a["watch_id"] == field.id]
    assert [h["id"] for h in a_phrase["hits"]] == [first.id] == [h["id"] for h in a_field["hits"]]
    index_says = {h.record.id for h in app.index.search(SearchQuery('"rail yard" -wheel', "T-1")).hits}
    assert index_says == {first.id}  # the search and the watch agree
    assert watches.alerts(dana) == []  # T-2's watch never sees T-1's records
    # the same record indexed again (a replay, a re-crawl) and a new one: one new alert, for the new one only
    publish(app, [first, item(4, text="More converters at the rail yard.")])
    work(app)
    fired = [a for a in watches.alerts(alice) if a["watch_id"] == phrase.id]
    assert [[h["id"] for h in a["hits"]] for a in fired] == [[item(4, text="More converters at the rail yard.").id], [first.id]]
    deliveries = [e for e in entries(app, "query.result") if e.payload.get("watch_id") == phrase.id]
    assert [(e.actor, e.payload["returned_ids"], e.payload["hits_total"]) for e in deliveries] == [
        ("alice", [first.id], 1), ("alice", [item(4, text="More converters at the rail yard.").id], 1)]
    assert all(e.payload["delivery"] == ["inbox"] for e in deliveries)
    assert other.id not in {e.payload.get("watch_id") for e in entries(app, "query.result")}


def test_watches_end_with_their_tasking_and_supervisors_end_any(tmp_path):
    app, watches = watching(tmp_path)
    alice, sam, dana = app.state.user("alice"), app.state.user("sam"), app.state.user("dana")
    mine = watches.add(alice, "T-1", "converter", None, "alice@host")
    hers = watches.add(dana, "T-2", "converter", None, "dana@host")
    with pytest.raises(Forbidden):
        watches.remove(alice, hers.id, "not mine")
    assert {w.id for w in watches.listed(sam)} == {mine.id, hers.id} and {w.id for w in watches.listed(alice)} == {mine.id}
    ended = watches.remove(sam, hers.id, "outside the case's need")
    assert (ended.ended_by, ended.end_reason) == ("sam", "outside the case's need")
    revoke_tasking(app, sam, "T-1", "case closed")
    publish(app, [item(1, fetched_at=utcnow() - timedelta(seconds=1))])
    stats = work(app)
    assert stats.alerts == 0 and watches.alerts(alice) == []
    [w] = watches.listed(alice)
    assert w.ended_at and w.end_reason == "tasking revoked" and w.ended_by == "fcmon"
    assert [(e.payload["watch_id"], e.payload["reason"]) for e in entries(app, "watch.end")] == [
        (hers.id, "outside the case's need"), (mine.id, "tasking revoked")]


def test_a_webhook_must_be_allowed_and_gets_only_the_ids(tmp_path):
    received: list[dict] = []
    done = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append({"path": self.path, "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args):
            pass

    with serving(Hook) as url:
        app, watches = watching(tmp_path, watch_webhook_allow=[f"{url}/alerts/"])
        alice = app.state.user("alice")
        with pytest.raises(Forbidden, match="not an internal URL"):
            watches.add(alice, "T-1", "converter", "http://elsewhere.example/hook", "alice@host")
        made = watches.add(alice, "T-1", "converter", f"{url}/alerts/analysts", "alice@host")
        publish(app, [item(1)])
        work(app)
        assert done.wait(10)
    assert received == [{"path": "/alerts/analysts", "body": {
        "alert_id": watches.alerts(alice)[0]["id"], "watch_id": made.id, "tasking_id": "T-1", "user": "alice",
        "record_ids": [item(1).id]}}]
    assert watches.alerts(alice)[0]["webhook"] == "delivered 204"
    [delivery] = [e for e in entries(app, "query.result") if e.payload.get("watch_id") == made.id]
    assert delivery.payload["delivery"] == ["inbox", "webhook"]


def test_the_cli_adds_lists_alerts_and_removes(tmp_path):
    app, _ = watching(tmp_path)
    app.close()
    d = str(tmp_path / "d")
    added = fcmon("--data-dir", d, "--as", "alice", "watch", "add", "converter", "--tasking", "T-1", "--json")
    assert added.returncode == 0, added.stderr
    watch_id = json.loads(added.stdout)["id"]
    listed = fcmon("--data-dir", d, "--as", "sam", "watch", "list", "--json")
    assert [w["id"] for w in json.loads(listed.stdout)] == [watch_id]
    assert fcmon("--data-dir", d, "--as", "alice", "watch", "alerts").stdout.strip() == "no alerts"
    refused = fcmon("--data-dir", d, "--as", "dana", "watch", "remove", watch_id, "--reason", "x")
    assert refused.returncode == 2 and "its owner or a supervisor" in refused.stderr
    removed = fcmon("--data-dir", d, "--as", "sam", "watch", "remove", watch_id, "--reason", "enough", "--json")
    assert removed.returncode == 0 and json.loads(removed.stdout)["status"] == "ended"
    assert NOW  # the taskings of tests.test_worker are live now


def test_a_query_the_index_cannot_run_is_refused_and_an_old_one_ends_without_stopping_the_worker(tmp_path):
    app, watches = watching(tmp_path)
    alice = app.state.user("alice")
    with pytest.raises(FcmonError, match="invalid query"):  # parses, but `title:*` needs a fast field
        watches.add(alice, "T-1", "title:*", None, "alice@host")
    assert entries(app, "query", "watch.add") == []
    good = watches.add(alice, "T-1", "converters", None, "alice@host")
    # one saved before queries were run once on adding (stored as such a version stored it)
    with app.state.conn:
        app.state.conn.execute("INSERT INTO watches (id, owner, tasking_id, query, webhook, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                               ("old", "alice", "T-1", "title:*", None, utcnow().isoformat()))
    publish(app, [item(1, text="Six stolen converters at the rail yard tonight.")])
    assert work(app).alerts == 1  # the good watch still alerts
    assert [a["watch_id"] for a in watches.alerts(alice)] == [good.id]
    old = watches.get("old")
    assert old.ended_by == "fcmon" and old.end_reason.startswith("its query cannot run: invalid query")
    assert [e.payload["watch_id"] for e in entries(app, "watch.end")] == ["old"]
