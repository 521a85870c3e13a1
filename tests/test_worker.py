"""The guard/index worker on the real local bus, index and state."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

from guards.chain import GuardChain
from pipeline.bus import COLLECTED, DEAD_LETTER, DECISIONS, REJECTED
from pipeline.index.local import LocalIndex
from pipeline.models import utcnow
from pipeline.worker import Worker
from tests.datadirs import FCMON, make_app
from tests.factories_pipeline import make_item, make_tasking

NOW = datetime.now(timezone.utc)


def live_tasking(**overrides):
    return make_tasking(**({"approved_at": NOW - timedelta(days=1), "expires_at": NOW + timedelta(days=30)} | overrides))


def item(n: int, **overrides):
    fields = {"url": f"https://forum.example/post/{n}", "text": f"Converter number {n} for sale.",
              "fetched_at": utcnow() - timedelta(minutes=1)}
    return make_item(**(fields | overrides))


def publish(app, items):
    for it in items:
        app.bus.produce(COLLECTED, it.source_id, it.model_dump_json().encode())
    app.bus.flush()


def run_worker(app):
    return Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings)).run(until_idle=True)


def test_items_land_where_the_guards_send_them(tmp_path):
    app = make_app(tmp_path / "d", live_tasking())
    publish(app, [item(1), item(2), item(3, robots_allowed=False),
                  item(4, title="Rally", text="Rally then we torch the converter yard")])
    stats = run_worker(app)
    assert (stats.indexed, stats.rejected, stats.quarantined) == (2, 1, 1)
    assert app.index.count("T-1") == 2
    assert app.state.counts() == {"quarantined": 1, "rejected": 1}
    assert app.bus.count(DECISIONS) == 4 and app.bus.count(REJECTED) == 1
    record = app.index.get(item(1).id)
    assert record.predicate.case_number == "2026-CR-1" and record.labels.submitting_agency


def test_rejected_content_is_not_kept(tmp_path):
    app = make_app(tmp_path / "d", live_tasking())
    secret = "Robots-disallowed converter text that must vanish"
    publish(app, [item(1, text=secret, robots_allowed=False)])
    run_worker(app)
    app.close()
    for path in (tmp_path / "d").rglob("*"):
        if path.is_file() and path.name != "bus.db":  # the bus holds the raw input until its retention expires
            assert secret.encode() not in path.read_bytes(), path


def test_unapproved_or_expired_taskings_index_nothing(tmp_path):
    pending = live_tasking(id="T-P", approved_by=None, approved_at=None)
    expired = live_tasking(id="T-E", expires_at=NOW - timedelta(minutes=1))
    app = make_app(tmp_path / "d", pending, expired)
    publish(app, [item(1, tasking_id="T-P"), item(2, tasking_id="T-E"), item(3, tasking_id="T-missing")])
    stats = run_worker(app)
    assert stats.indexed == 0 and stats.rejected == 3 and app.index.count() == 0
    assert set(stats.rejected_by_rule) == {"lawful_purpose"}


def test_replaying_the_same_items_duplicates_nothing(tmp_path):
    app = make_app(tmp_path / "d", live_tasking())
    publish(app, [item(n) for n in range(5)])
    run_worker(app)
    publish(app, [item(n) for n in range(5)])
    assert run_worker(app).indexed == 5
    assert app.index.count() == 5


def test_poison_messages_go_to_the_dead_letter_topic_and_the_worker_goes_on(tmp_path):
    app = make_app(tmp_path / "d", live_tasking())
    app.bus.produce(COLLECTED, "x", b"{not json")
    app.bus.produce(COLLECTED, "x", item(9).model_dump_json().replace('"schema_version":1', '"schema_version":99').encode())
    publish(app, [item(1)])
    stats = run_worker(app)
    assert stats.dead_lettered == 2 and stats.indexed == 1
    letters = app.bus.consumer("t", [DEAD_LETTER]).poll(10, 0)
    assert "invalid" in letters[0].value.decode() and "schema_version" in letters[1].value.decode()


def test_a_worker_killed_mid_run_and_restarted_loses_and_duplicates_nothing(tmp_path):
    root = tmp_path / "d"
    app = make_app(root, live_tasking())
    n = 3000
    publish(app, [item(i) for i in range(n)])
    app.close()
    env = {"FCMON_DATA_DIR": str(root), "FCMON_WORK_BATCH_SIZE": "10"}
    proc = subprocess.Popen([*FCMON, "work"], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = LocalIndex(root / "index")
    deadline = time.monotonic() + 60
    while index.count() < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    at_kill = LocalIndex(root / "index").count()  # a fresh reader sees the last commit at once
    assert 0 < at_kill < n, f"the worker was not killed mid-run ({at_kill} of {n} indexed)"

    subprocess.run([*FCMON, "work", "--until-idle"], env={**os.environ, **env}, check=True, capture_output=True, timeout=120)
    ids = LocalIndex(root / "index").ids()
    assert len(ids) == len(set(ids)) == n


def test_progress_lines_read_the_lag_at_most_every_ten_seconds(tmp_path, monkeypatch):
    from pipeline.bus.local import LocalConsumer
    app = make_app(tmp_path / "d", live_tasking(), work_batch_size=3)
    for i in range(30):
        app.bus.produce(COLLECTED, "forum.example", item(i).model_dump_json().encode())
    app.bus.flush()
    readings, reports = [], []
    read_lag = LocalConsumer.lag
    monkeypatch.setattr(LocalConsumer, "lag", lambda self: readings.append(1) or read_lag(self))
    worker = Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings), progress=reports.append)
    worker.progress_every_s = 0  # a line after every batch
    worker.run(until_idle=True)
    assert len(reports) == 10 and {r["lag"] for r in reports} == {27}  # read after the first batch, shown since
    assert len(readings) == 2  # that reading and the until-idle check at the end (on Kafka each is a broker round trip)


def test_a_batch_retried_after_the_index_failed_sends_each_decision_once(tmp_path, caplog):
    """Decisions, rejections and dead letters leave only once the batch is stored: failed attempts send nothing."""
    import logging
    import threading

    import tantivy
    app = make_app(tmp_path / "d", live_tasking())
    publish(app, [item(i) for i in range(5)] + [item(5, request={"method": "POST", "headers": {}})])
    app.bus.produce(COLLECTED, "x", b"{not json")
    app.bus.flush()
    index = LocalIndex(app.data_dir.index_dir, lock_timeout=0.2)
    blocker = tantivy.Index.open(str(app.data_dir.index_dir)).writer()  # holds the index's writer lock
    worker = Worker(app.settings, app.bus, index, app.state, GuardChain.from_settings(app.settings))

    def release_after_three_failures() -> None:
        deadline = time.monotonic() + 60
        while caplog.text.count("event=batch_failed") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        blocker.rollback()
        blocker.wait_merging_threads()
        while index.count() < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.stop()

    helper = threading.Thread(target=release_after_three_failures)
    with caplog.at_level(logging.WARNING, logger="pipeline.worker"):
        helper.start()
        stats = worker.run(until_idle=False)
        helper.join()
    assert caplog.text.count("event=batch_failed") >= 3 and index.count() == 5
    assert (stats.indexed, stats.rejected, stats.dead_lettered) == (5, 1, 1)
    sent = {topic: app.bus.consumer("count", [topic]).poll(100, 0) for topic in (DECISIONS, REJECTED, DEAD_LETTER)}
    assert [len(sent[t]) for t in (DECISIONS, REJECTED, DEAD_LETTER)] == [6, 1, 1]
