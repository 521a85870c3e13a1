"""`fcmon monitor run` as a service against fixture feeds on 127.0.0.1 that change between polls, with `fcmon work`
running beside it on the local bus and the local index: one scenario, observed step by step, asserted test by test.
The fixture servers' own logs show what was sent and what it cost."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from http.server import BaseHTTPRequestHandler

import pytest

from crawlers.cursors import CursorStore
from pipeline.app import App
from pipeline.bus import COLLECTED
from pipeline.bus.local import LocalBus
from pipeline.datadir import DataDir
from pipeline.index import SearchQuery
from pipeline.index.local import LocalIndex
from pipeline.models import CollectedItem
from pipeline.settings import Settings
from tests.datadirs import FCMON, fcmon, make_app
from tests.fixtures.live import LiveFeed
from tests.servers import serving
from tests.test_crawler_sources import tasking

INTERVAL = 1.5
ENV = {"FCMON_CRAWL_ALLOW_HOSTS": "127.0.0.1", "FCMON_CRAWL_DOWNLOAD_DELAY": "0", "FCMON_MONITOR_MIN_INTERVAL": "0.5",
       "FCMON_MONITOR_HOST_DELAY": "0.2"}
BOUND_S = 60  # generous: only ever waited out when something is broken

SOURCES = """
[[source]]
id = "desk"
kind = "feed"
tasking = "T-A"
urls = ["{a}/feed.atom"]
interval = {interval}

[[source]]
id = "other"
kind = "feed"
tasking = "T-B"
urls = ["{b}/feed.atom"]
interval = {interval}

[[source]]
id = "waiting"
kind = "feed"
tasking = "T-P"
urls = ["{p}/feed.atom"]
interval = {interval}
"""


def wait_for(what: str, check, bound: float = BOUND_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {bound} s: {what}")


def env_for(data: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | ENV | {"FCMON_DATA_DIR": str(data)}


def status(data: Path) -> dict[str, dict]:
    store = CursorStore(DataDir(data).monitor_db)
    try:
        return {s["source"]: s for s in store.status()}
    finally:
        store.close()


def bus_items(data: Path) -> list[CollectedItem]:
    bus = LocalBus(DataDir(data).bus_db)
    try:
        return [CollectedItem.model_validate_json(m.value) for m in bus.consumer("test-count", [COLLECTED]).poll(100_000, 0)]
    finally:
        bus.close()


def collected(data: Path) -> int:
    return len(bus_items(data))


def found(data: Path, tasking_id: str, text: str) -> list[str]:
    index = LocalIndex(DataDir(data).index_dir)
    try:
        return [h.record.id for h in index.search(SearchQuery(text, tasking_id)).hits]
    finally:
        index.close()


def audit_entries(data: Path, *kinds: str) -> list:
    app = App(Settings(data_dir=data))
    try:
        return list(app.audit.entries(list(kinds)))
    finally:
        app.close()


class Hook(BaseHTTPRequestHandler):
    """An internal alert service: records what it is posted."""
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def alerts(data: Path, user: str) -> list[dict]:
    done = fcmon("--data-dir", str(data), "--as", user, "watch", "alerts", "--json", env=ENV)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    data = root / "data"
    with LiveFeed(posts=4) as a, LiveFeed(posts=2) as b, LiveFeed(posts=1) as p, serving(Hook) as hook:
        b.missing_articles.add(1)  # its article answers 404: the entry is kept with its summary
        make_app(data, tasking(id="T-A"), tasking(id="T-B"), tasking(id="T-P", approved_by=None, approved_at=None)).close()
        sources = root / "sources.toml"
        sources.write_text(SOURCES.format(a=a.url, b=b.url, p=p.url, interval=INTERVAL))
        env = env_for(data) | {"FCMON_WATCH_WEBHOOK_ALLOW": f"{hook}/alerts/"}
        watch_env = ENV | {"FCMON_WATCH_WEBHOOK_ALLOW": f"{hook}/alerts/"}
        worker = subprocess.Popen([*FCMON, "work"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        monitor = subprocess.Popen([*FCMON, "--as", "alice", "monitor", "run", "--sources", str(sources)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen: dict = {"a": a, "b": b, "p": p, "data": data, "sources": sources}
        try:
            wait_for("a first poll of both active sources", lambda: all(status(data).get(s, {}).get("polls") for s in ("desk", "other")))
            seen["backfill"] = wait_for("the first posts searchable", lambda: len(found(data, "T-A", "converter")) == 4)
            made = [fcmon("--data-dir", str(data), "--as", "alice", "watch", "add", query, "--tasking", tid, *extra, "--json",
                          env=watch_env) for query, tid, extra in (('"rail yard"', "T-A", ["--webhook", f"{hook}/alerts/desk"]),
                                                                   ("converter", "T-B", []))]
            assert all(m.returncode == 0 for m in made), [m.stderr for m in made]
            seen["watch_a"], seen["watch_b"] = (json.loads(m.stdout)["id"] for m in made)

            # a new post: first seen within one interval, searchable soon after
            added = time.monotonic()
            a.add("Converter ring at the rail yard", "Wrenchman offers six catalytic converters near the rail yard.")
            wait_for("the new post searchable", lambda: found(data, "T-A", "rail yard"))
            seen["searchable_after_s"] = time.monotonic() - added
            seen["alerts"] = wait_for("its watch fired", lambda: alerts(data, "alice"))
            seen["first_seen_after_s"] = next(x["at"] for x in a.answers if x["path"].startswith("/articles/5")) - added

            # unchanged: a few more polls, each a 304
            polls = status(data)["desk"]["polls"]
            wait_for("three more polls", lambda: status(data)["desk"]["polls"] >= polls + 3)
            seen["a_after_new"] = [x for x in a.answers if x["at"] > added]

            # 429 with Retry-After on one host
            b.limit(1, "6")
            wait_for("b rate-limited", lambda: 429 in b.statuses("/feed.atom"))
            limited_at = next(x["at"] for x in b.answers if x["status"] == 429)
            wait_for("b asked again", lambda: [x for x in b.answers if x["at"] > limited_at and x["path"] == "/feed.atom"], bound=30)
            seen["b_next_after_429_s"] = next(x["at"] for x in b.answers if x["at"] > limited_at) - limited_at
            seen["a_during_pause"] = [x for x in a.answers if limited_at < x["at"] < limited_at + 6 and x["path"] == "/feed.atom"]
            seen["status_after_429"] = status(data)["other"]

            # revoking T-B mid-run stops its source
            done = fcmon("--data-dir", str(data), "--as", "sam", "tasking", "revoke", "T-B", "--reason", "case closed", env=ENV)
            assert done.returncode == 0, done.stderr
            revoked = time.monotonic()
            polls = status(data)["desk"]["polls"]
            wait_for("desk polled on after the revocation", lambda: status(data)["desk"]["polls"] >= polls + 3)
            seen["b_after_revoke"] = [x for x in b.answers if x["at"] > revoked + INTERVAL + 1.0]
            seen["status_after_revoke"] = status(data)
            listed = fcmon("--data-dir", str(data), "--as", "sam", "watch", "list", "--json", env=ENV)
            seen["watches_after_revoke"] = {w["id"]: w for w in json.loads(listed.stdout)}

            # SIGTERM: the running polls finish, the periods close, exit 0
            monitor.send_signal(signal.SIGTERM)
            out, err = monitor.communicate(timeout=60)
            seen["monitor_exit"], seen["monitor_stderr"] = monitor.returncode, err
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=60)
            done = fcmon("--data-dir", str(data), "work", "--until-idle", env=ENV)
            assert done.returncode == 0, done.stderr
            seen["collected_before_restart"] = collected(data)
            seen["items"] = bus_items(data)
            seen["indexed_before_restart"] = len(LocalIndex(DataDir(data).index_dir).ids())

            # a restart duplicates nothing
            mark = len(a.answers)
            again = fcmon("--data-dir", str(data), "--as", "alice", "monitor", "run", "--once", "--sources", str(sources),
                          "--json", env=ENV)
            assert again.returncode == 0, again.stderr
            seen["restart"] = json.loads(again.stdout)
            seen["restart_answers"] = a.answers[mark:]
            done = fcmon("--data-dir", str(data), "work", "--until-idle", env=ENV)
            assert done.returncode == 0, done.stderr
            seen["collected_after_restart"] = collected(data)
            seen["indexed_after_restart"] = len(LocalIndex(DataDir(data).index_dir).ids())
            seen["audit"] = audit_entries(data, "monitor.start", "monitor.stop")
            seen["watch_audit"] = audit_entries(data, "query", "watch.add", "query.result", "watch.end")
            seen["alerts_after_restart"] = alerts(data, "alice")
            seen["hook"] = list(Hook.received)
            ledger = fcmon("--data-dir", str(data), "--as", "sam", "audit", "ledger", "--from", "2000-01-01",
                           "--to", "2100-01-01", "--format", "json", env=ENV)
            seen["ledger"] = json.loads(ledger.stdout)
            status_cli = fcmon("--data-dir", str(data), "--as", "sam", "monitor", "status", "--json", env=ENV)
            assert status_cli.returncode == 0, status_cli.stderr
            seen["status_cli"] = {s["source"]: s for s in json.loads(status_cli.stdout)}
            yield seen
        finally:
            for proc in (monitor, worker):
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()


def test_a_new_post_is_fetched_within_one_interval_and_searchable(scenario):
    assert scenario["first_seen_after_s"] <= INTERVAL + 2.5  # one interval, plus a 0.5 s tick and the poll's own start-up
    assert scenario["searchable_after_s"] < 20
    [record_id] = found(scenario["data"], "T-A", "rail yard")
    assert record_id


def test_an_unchanged_feed_answers_304_to_a_conditional_request(scenario):
    feed = [x for x in scenario["a_after_new"] if x["path"] == "/feed.atom"]
    assert len(feed) >= 3
    not_modified = [x for x in feed if x["status"] == 304]
    assert len(not_modified) >= 2 and all(x["headers"].get("If-None-Match") for x in not_modified)
    assert not [x for x in scenario["a_after_new"] if x["path"].startswith("/articles/") and x["status"] == 200][1:]  # only the new one


def test_429_with_retry_after_slows_only_that_host(scenario):
    assert scenario["b_next_after_429_s"] >= 5.5  # Retry-After: 6
    assert len(scenario["a_during_pause"]) >= 2  # the other host kept its schedule
    other = scenario["status_after_429"]
    assert other["errors"] >= 1 and "rate limited" in (other["last_error"] or "")


def test_revoking_a_tasking_stops_its_source_mid_run_and_the_others_go_on(scenario):
    assert scenario["b_after_revoke"] == []
    after = scenario["status_after_revoke"]
    assert after["other"]["state"] == "tasking revoked" and after["desk"]["state"] == "collecting"


def test_a_source_whose_tasking_is_not_active_never_starts(scenario):
    assert scenario["p"].requests == []
    assert not [e for e in scenario["audit"] if e.payload["source"] == "waiting"]
    assert scenario["status_cli"]["waiting"]["state"] == "tasking pending"


def test_sigterm_finishes_cleanly(scenario):
    assert scenario["monitor_exit"] == 0, scenario["monitor_stderr"]
    assert "stopping (monitor stopped (signal))" in scenario["monitor_stderr"]
    assert "Traceback" not in scenario["monitor_stderr"]


def test_a_restart_duplicates_nothing(scenario):
    assert scenario["collected_after_restart"] == scenario["collected_before_restart"]
    assert scenario["indexed_after_restart"] == scenario["indexed_before_restart"] == 5 + 2
    desk = {s["source"]: s for s in scenario["restart"]}["desk"]
    assert desk["new_items_last"] == 0 and desk["errors"] >= 0
    assert [x["status"] for x in scenario["restart_answers"] if x["path"] == "/feed.atom"] == [304]


def test_every_collection_period_is_in_the_audit_log(scenario):
    periods = [(e.kind, e.payload["source"], e.payload["tasking_id"], e.payload["why"]) for e in scenario["audit"]]
    assert periods == [
        ("monitor.start", "desk", "T-A", "tasking active"), ("monitor.start", "other", "T-B", "tasking active"),
        ("monitor.stop", "other", "T-B", "tasking revoked"), ("monitor.stop", "desk", "T-A", "monitor stopped (signal)"),
        ("monitor.start", "desk", "T-A", "tasking active"), ("monitor.stop", "desk", "T-A", "--once: every source polled"),
    ]
    assert all(e.actor == "alice" for e in scenario["audit"])
    first_stop = next(e.payload for e in scenario["audit"] if e.kind == "monitor.stop" and e.payload["source"] == "desk")
    assert first_stop["items"] == 5 and first_stop["polls"] >= 5 and first_stop["since"]


def test_status_shows_freshness_and_counts(scenario):
    desk = scenario["status_cli"]["desk"]
    assert desk["last_success"] and desk["new_items"] == 5 and desk["not_modified"] >= 2
    fresh = desk["freshness"]
    assert fresh["sample"] == 1 and 0 <= fresh["p50_s"] <= fresh["p95_s"] < 30  # the backfill is left out


def test_a_feed_entry_whose_article_answers_404_keeps_its_summary(scenario):
    b = scenario["b"]
    [entry] = [i for i in scenario["items"] if i.url == f"{b.url}/articles/1"]
    assert entry.text == "Catalytic converters stolen overnight, report 1." and entry.title == "Converter report 1"
    assert entry.response.status == 200 and entry.response.url == f"{b.url}/feed.atom"  # the feed's provenance
    assert 404 in b.statuses("/articles/1")


def test_the_new_post_fires_its_watch_exactly_once_inbox_and_webhook(scenario):
    [record_id] = found(scenario["data"], "T-A", "rail yard")
    for listed in (scenario["alerts"], scenario["alerts_after_restart"]):
        assert [(a["watch_id"], [h["id"] for h in a["hits"]]) for a in listed] == [(scenario["watch_a"], [record_id])]
    assert [(h["watch_id"], h["record_ids"]) for h in scenario["hook"]] == [(scenario["watch_a"], [record_id])]
    assert scenario["alerts_after_restart"][0]["webhook"] == "delivered 204"


def test_revoking_a_tasking_ends_its_watches(scenario):
    ended = scenario["watches_after_revoke"][scenario["watch_b"]]
    assert ended["status"] == "ended" and ended["end_reason"] == "tasking revoked"
    assert scenario["watches_after_revoke"][scenario["watch_a"]]["status"] == "active"


def test_every_watch_and_delivery_is_in_the_audit_log_and_the_ledger(scenario):
    [record_id] = found(scenario["data"], "T-A", "rail yard")
    by_kind: dict[str, list] = {}
    for e in scenario["watch_audit"]:
        by_kind.setdefault(e.kind, []).append(e.payload)
    assert [p["id"] for p in by_kind["query"]] == [scenario["watch_a"], scenario["watch_b"]]
    assert [p["watch_id"] for p in by_kind["watch.add"]] == [scenario["watch_a"], scenario["watch_b"]]
    deliveries = [p for p in by_kind["query.result"] if p.get("watch_id")]
    assert [(p["query_id"], p["user"], p["returned_ids"]) for p in deliveries] == [(scenario["watch_a"], "alice", [record_id])]
    assert [(p["watch_id"], p["reason"]) for p in by_kind["watch.end"]] == [(scenario["watch_b"], "tasking revoked")]
    terms = [(r["search_terms"], r["tasking_id"], r["filters"].get("standing")) for r in scenario["ledger"]]
    assert ('"rail yard"', "T-A", "watch") in terms and ("converter", "T-B", "watch") in terms


def test_sigterm_while_the_polls_are_starting_still_exits(tmp_path):
    """Scrapy ignores a stop while a crawler's engine is still starting (it would then run on for ever): the monitor
    keeps asking until the engine runs, so a SIGTERM at the first tick still ends every poll and the process."""
    with LiveFeed(posts=3) as feed:
        data = tmp_path / "data"
        make_app(data, tasking(id="T-A")).close()
        sources = tmp_path / "sources.toml"
        sources.write_text("".join(f'[[source]]\nid = "s{n}"\nkind = "feed"\ntasking = "T-A"\nurls = ["{feed.url}/feed.atom"]\n'
                                   f"interval = {INTERVAL}\n\n" for n in range(12)))
        monitor = subprocess.Popen([*FCMON, "--as", "alice", "monitor", "run", "--sources", str(sources)], env=env_for(data),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for("every source collecting", lambda: len([s for s in status(data).values() if s["state"] == "collecting"]) == 12)
            monitor.send_signal(signal.SIGTERM)
            out, err = monitor.communicate(timeout=60)
        finally:
            if monitor.poll() is None:
                monitor.kill()
                monitor.communicate()
        assert monitor.returncode == 0, err
        stops = audit_entries(data, "monitor.stop")
        assert sorted(e.payload["source"] for e in stops) == sorted(f"s{n}" for n in range(12))
