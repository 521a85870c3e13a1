"""The worker, the crawler and the audit mirror on Apache Kafka (tests/broker.py) on 127.0.0.1, real subprocesses.

Tests that stop or restart the broker start their own (`fresh_broker`); the others share the module's, emptied of
topics and groups before each (`clean_broker`).
"""
from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Iterator

import pytest
import tantivy
from kafka.partitioner.default import murmur2

from guards.chain import GuardChain
from pipeline.bus import AUDIT, COLLECTED, DEAD_LETTER, DECISIONS
from pipeline.bus import DAY_MS
from pipeline.bus.kafka import KafkaBus, TopicSpec, create_topics
from pipeline.demosite import DemoSite
from pipeline.index.local import LocalIndex
from pipeline.models import utcnow
from pipeline.settings import Settings
from pipeline.worker import Worker
from tests.broker import Broker, broker, clean_broker, fresh_broker, kafka_settings  # noqa: F401  (fixtures)
from tests.datadirs import FCMON, fcmon, make_app
from tests.test_bus_contract import drain, produce
from tests.test_crawler import demo_tasking
from tests.faults import Expected, check_outcomes, group_lag, kill_series
from tests.test_worker import item, live_tasking

FAULT_ROUNDS_KAFKA = int(os.environ.get("FAULT_ROUNDS", "1"))  # the kill series, short (bench/bench_faults.py: 100)
SOURCES = 24  # distinct keys, so the items spread over fcm.collected's partitions


def spread_item(n: int):
    return item(n, source_id=f"forum.example/u{n % SOURCES}")


def publish(settings: Settings, items) -> None:
    bus = KafkaBus(settings)
    for it in items:
        bus.produce(COLLECTED, it.source_id, it.model_dump_json().encode())
    bus.close()


class WorkerProcess:
    """`fcmon work` in a subprocess; stderr is collected line by line. Any still running after a test is killed."""
    started: list[WorkerProcess] = []

    def __init__(self, env: dict[str, str], *args: str):
        WorkerProcess.started.append(self)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | env
        self.proc = subprocess.Popen([*FCMON, "work", "--json", *args], env=full_env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stderr.readline, "")), daemon=True)
        self._reader.start()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, f"worker exited {self.proc.returncode}: {''.join(self.lines)[-2000:]}"
            assert time.monotonic() < deadline, f"no {text!r} from the worker in {timeout} s"
            time.sleep(0.05)

    def tail(self, chars: int = 3000) -> str:
        return "".join(self.lines)[-chars:]

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        out = self.proc.stdout.read()
        assert self.proc.wait(timeout=30) == 0, "".join(self.lines)[-2000:]
        self._reader.join(timeout=5)
        return json.loads(out)


@pytest.fixture(autouse=True)
def no_worker_left_running() -> Iterator[None]:
    """A failed test leaves no worker consuming from the next test's topics (the module's broker is shared)."""
    yield
    while WorkerProcess.started:
        worker = WorkerProcess.started.pop()
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


def wait_indexed(index: LocalIndex, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while index.count() < n and time.monotonic() < deadline:
        time.sleep(0.1)
    assert index.count() == n, f"{index.count()} of {n} indexed"


def worker_env(root, broker: Broker, **extra: str) -> dict[str, str]:
    return {"FCMON_DATA_DIR": str(root), "FCMON_LOG_LEVEL": "INFO", **broker.env(), **extra}


def test_two_workers_in_one_group_share_the_partitions_and_index_every_item_once(clean_broker, tmp_path):
    root = tmp_path / "d"
    app = make_app(root, live_tasking(), **clean_broker.settings())
    n = 600
    env = worker_env(root, clean_broker, FCMON_WORK_BATCH_SIZE="50")
    first = WorkerProcess(env)
    first.wait_for("event=kafka_assigned")
    second = WorkerProcess(env)
    second.wait_for("event=kafka_assigned")
    publish(app.settings, [spread_item(i) for i in range(n)])
    index = LocalIndex(root / "index")
    wait_indexed(index, n)
    a, b = first.stop(), second.stop()
    assert a["consumed"] > 0 and b["consumed"] > 0, (a, b)
    assert a["consumed"] + b["consumed"] == n  # no rebalance during the run: nothing was read twice
    ids = index.ids()
    assert len(ids) == len(set(ids)) == n
    assert KafkaBus(app.settings).consumer(app.settings.work_group, [COLLECTED]).lag() == 0


def test_a_worker_killed_mid_batch_and_restarted_loses_and_duplicates_nothing(clean_broker, tmp_path):
    root = tmp_path / "d"
    app = make_app(root, live_tasking(), **clean_broker.settings())
    n = 1500
    publish(app.settings, [spread_item(i) for i in range(n)])
    # Batches of 2 (~100 items/s here) leave the test seconds, even under CPU load, to kill the worker mid-run.
    worker = WorkerProcess(worker_env(root, clean_broker, FCMON_WORK_BATCH_SIZE="2"))
    index = LocalIndex(root / "index")
    deadline = time.monotonic() + 120
    while index.count() < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(timeout=10)
    at_kill = LocalIndex(root / "index").count()  # a fresh reader sees the last commit at once
    assert 0 < at_kill < n, f"the worker was not killed mid-run ({at_kill} of {n} indexed)"

    env = worker_env(root, clean_broker, FCMON_WORK_BATCH_SIZE="200")
    done = fcmon("work", "--until-idle", "--json", env=env, timeout=240, check=True)
    assert json.loads(done.stdout)["consumed"] >= n - at_kill
    ids = LocalIndex(root / "index").ids()
    assert len(ids) == len(set(ids)) == n


def test_poison_messages_go_to_the_dead_letter_topic_and_the_worker_goes_on(clean_broker, tmp_path):
    app = make_app(tmp_path / "d", live_tasking(), **clean_broker.settings())
    app.bus.produce(COLLECTED, "x", b"{not json")
    app.bus.produce(COLLECTED, "x", item(9).model_dump_json().replace('"schema_version":1', '"schema_version":99').encode())
    app.bus.produce(COLLECTED, "x", item(1).model_dump_json().encode())
    app.bus.flush()
    stats = Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings)).run(until_idle=True)
    assert (stats.dead_lettered, stats.indexed) == (2, 1)
    reader = app.bus.consumer("t", [DEAD_LETTER])
    letters = [json.loads(m.value) for m in drain(reader, 2)]
    reader.close()
    assert "invalid" in letters[0]["error"] and "schema_version" in letters[1]["error"]
    assert letters[0]["value"] == "{not json" and letters[0]["topic"] == COLLECTED


def test_decisions_are_keyed_by_source_in_the_partition_the_java_client_picks(clean_broker, tmp_path):
    app = make_app(tmp_path / "d", live_tasking(), **clean_broker.settings())
    n = 60
    publish(app.settings, [spread_item(i) for i in range(n)])
    stats = Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings)).run(until_idle=True)
    assert stats.indexed == n
    for topic, partitions in ((COLLECTED, 6), (DECISIONS, 6)):
        reader = app.bus.consumer(f"check-{topic}", [topic])
        got = drain(reader, n)
        reader.close()
        assert {m.key for m in got} == {f"forum.example/u{i}" for i in range(SOURCES)}
        # The Java client's default partitioner (kafka-python's murmur2 is its port): other clients agree on partitions.
        assert all(m.partition == (murmur2(m.key.encode()) & 0x7FFFFFFF) % partitions for m in got), topic
    app.close()


def test_while_the_index_is_down_the_worker_commits_nothing_and_resumes_when_it_is_back(clean_broker, tmp_path, caplog):
    app = make_app(tmp_path / "d", live_tasking(), **clean_broker.settings())
    n = 40
    publish(app.settings, [spread_item(i) for i in range(n)])
    index = LocalIndex(app.data_dir.index_dir, lock_timeout=0.2)
    blocker = tantivy.Index.open(str(app.data_dir.index_dir)).writer()  # holds the index's writer lock
    worker = Worker(app.settings, app.bus, index, app.state, GuardChain.from_settings(app.settings))
    watcher = app.bus.consumer(app.settings.work_group, [COLLECTED])  # never polls: reads the group's lag only
    seen: dict[str, int] = {}

    def outage_then_recovery() -> None:
        deadline = time.monotonic() + 60
        while caplog.text.count("event=batch_failed") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # a few retries
        seen["lag_during_outage"] = watcher.lag()
        blocker.rollback()
        blocker.wait_merging_threads()  # releases the lock
        while index.count() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.stop()

    helper = threading.Thread(target=outage_then_recovery)
    with caplog.at_level(logging.WARNING, logger="pipeline.worker"):
        helper.start()
        stats = worker.run(until_idle=False)
        helper.join()
    assert seen["lag_during_outage"] == n
    assert caplog.text.count("event=batch_failed") >= 2 and "event=store_recovered" in caplog.text
    assert stats.indexed == n and index.count() == n
    assert watcher.lag() == 0
    watcher.close()


def test_audit_entries_are_mirrored_to_kafka_and_a_mirror_failure_loses_no_local_entry(fresh_broker, tmp_path, caplog):
    app = make_app(tmp_path / "d", **fresh_broker.settings(kafka_delivery_timeout_ms=2000))
    entry = app.audit.append("search.query", "alice", {"q": "converter"})
    reader = app.bus.consumer("audit-reader", [AUDIT])
    mirrored = drain(reader, 1)[0]
    reader.close()
    assert mirrored.key == str(entry.seq) and json.loads(mirrored.value)["hash"] == entry.hash

    fresh_broker.stop()
    with caplog.at_level(logging.ERROR, logger="pipeline.audit_mirror"):
        second = app.audit.append("search.query", "alice", {"q": "converter yard"})
    assert f"event=audit_mirror_failed seq={second.seq}" in caplog.text
    assert [e.seq for e in app.audit.entries()] == [1, 2] and app.audit.verify().ok


def test_a_stopped_broker_fails_the_crawl_loudly(fresh_broker, tmp_path):
    root = tmp_path / "d"
    tasking = demo_tasking().model_copy(update={"approved_by": "sam", "approved_at": utcnow() - timedelta(hours=1)})
    make_app(root, tasking, **fresh_broker.settings())
    env = worker_env(root, fresh_broker, FCMON_KAFKA_DELIVERY_TIMEOUT_MS="3000", FCMON_CRAWL_ALLOW_HOSTS="127.0.0.1",
                     FCMON_CRAWL_DOWNLOAD_DELAY="0", FCMON_LOG_LEVEL="WARNING")
    with DemoSite(port=0) as site:
        crawl = ["--as", "alice", "crawl", "--start-url", site.url + "/", "--tasking", tasking.id, "--json"]
        assert json.loads(fcmon(*crawl, env=env, timeout=120, check=True).stdout)["items"] > 0
        fresh_broker.stop()
        failed = fcmon(*crawl, env=env, timeout=120)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1].startswith("fcmon: error:") and "bus" in failed.stderr.splitlines()[-1]


def wait_committed(settings: Settings, timeout: float = 60) -> None:
    """Until the worker's group has committed everything in fcm.collected."""
    deadline = time.monotonic() + timeout
    while (lag := group_lag(KafkaBus(settings), settings.work_group)()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lag == 0, f"the group still lags by {lag} after {timeout} s"


def decided_ids(broker: Broker) -> Counter:
    """How many decisions fcm.decisions holds per item id."""
    return Counter(json.loads(r.value)["item_id"] for r in broker.records(DECISIONS))


def test_a_broker_killed_mid_stream_keeps_its_data_and_the_worker_resumes_from_its_commits(fresh_broker, tmp_path):
    """Apache Kafka restarted under a running worker: the backlog, the group's commits and the producer survive; the
    worker goes on from its last commit, so nothing is lost and only the batch in flight at the crash can repeat."""
    root = tmp_path / "d"
    app = make_app(root, live_tasking(), **fresh_broker.settings(kafka_delivery_timeout_ms=5000))
    batch, before, after = 10, 600, 100
    items = [spread_item(i) for i in range(before + after)]
    bus = KafkaBus(app.settings)  # one producer across the restart
    for it in items[:before]:
        bus.produce(COLLECTED, it.source_id, it.model_dump_json().encode())
    bus.flush()
    worker = WorkerProcess(worker_env(root, fresh_broker, FCMON_WORK_BATCH_SIZE=str(batch),
                                      FCMON_KAFKA_DELIVERY_TIMEOUT_MS="5000"))
    index = LocalIndex(root / "index")
    deadline = time.monotonic() + 180
    while index.count() < 5 * batch and time.monotonic() < deadline:
        assert worker.proc.poll() is None, worker.tail()
        time.sleep(0.1)
    fresh_broker.stop(kill=True)  # a crash, mid-stream
    at_crash = LocalIndex(root / "index").count()
    assert 0 < at_crash < before, f"the broker was not killed mid-stream ({at_crash} of {before} indexed): {worker.tail()}"
    time.sleep(2)
    assert worker.proc.poll() is None, "the worker must wait for the broker, not exit"
    fresh_broker.start()  # same ports, same data
    for it in items[before:]:
        bus.produce(COLLECTED, it.source_id, it.model_dump_json().encode())
    bus.flush()
    bus.close()
    try:
        wait_indexed(index, before + after, timeout=120)
        wait_committed(app.settings)
    finally:
        stats = worker.stop()
    assert len(fresh_broker.records(COLLECTED)) == before + after, "the broker kept its log (and took each item once)"
    ids = index.ids()
    assert len(ids) == len(set(ids)) and set(ids) == {it.id for it in items}
    decided = decided_ids(fresh_broker)
    assert set(decided) == {it.id for it in items}, "a decision for every item"
    repeated = stats["consumed"] - len(items)
    assert 0 <= repeated <= batch, f"{repeated} items read again: more than the batch in flight at the crash"
    assert sum(n > 1 for n in decided.values()) <= batch, "decided more than once: more than one batch's items"
    assert not any("event=kafka_log_lost" in line for line in worker.lines), "nothing was lost, nothing says so"


def test_a_topic_deleted_and_recreated_under_the_worker_is_reported_and_read_from_its_start(clean_broker, tmp_path):
    """Lost data (here: fcm.collected deleted and created again) is logged as an error with the positions that
    pointed into the lost log, and the new log is read from its first message, once."""
    root = tmp_path / "d"
    app = make_app(root, live_tasking(), **clean_broker.settings())
    worker = WorkerProcess(worker_env(root, clean_broker))
    old, new = [spread_item(i) for i in range(48)], [spread_item(i) for i in range(48, 168)]
    publish(app.settings, old)
    index = LocalIndex(root / "index")
    try:
        wait_indexed(index, len(old))
        wait_committed(app.settings)
        clean_broker.delete_topics((COLLECTED,))
        publish(app.settings, new)  # the bus re-creates the topic as it opens
        wait_indexed(index, len(old) + len(new))
        worker.wait_for("event=kafka_log_lost", timeout=30)
        lost = next(line for line in worker.lines if "event=kafka_log_lost" in line)
        assert f"topic={COLLECTED} reason=topic_recreated" in lost and f"positions={COLLECTED}:" in lost, lost
        assert "action=read_from_start" in lost
        wait_committed(app.settings)
    finally:
        stats = worker.stop()
    assert set(index.ids()) == {it.id for it in old + new}
    assert stats["consumed"] == len(old) + len(new), "the client had gone back to the new log's start: no rewind again"


class PacedPublisher(threading.Thread):
    """Publishes items to fcm.collected in rounds of `per_round` every `every_s`: a stream, whatever the workers' pace."""

    def __init__(self, settings: Settings, items, per_round: int = 20, every_s: float = 0.25):
        super().__init__(daemon=True)
        self.settings, self.items, self.per_round, self.every_s = settings, items, per_round, every_s
        self.published = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            bus = KafkaBus(self.settings)
            for start in range(0, len(self.items), self.per_round):
                for it in self.items[start:start + self.per_round]:
                    bus.produce(COLLECTED, it.source_id, it.model_dump_json().encode())
                bus.flush()
                self.published = min(start + self.per_round, len(self.items))
                time.sleep(self.every_s)
            bus.close()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def wait_published(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.published < n:
            assert self.error is None and self.is_alive(), f"the publisher stopped: {self.error!r}"
            assert time.monotonic() < deadline, f"{self.published} of {n} published in {timeout} s"
            time.sleep(0.05)


def test_a_rebalance_while_two_workers_run_indexes_every_item_once(clean_broker, tmp_path):
    """While items stream in, a second worker joins, then the first leaves (SIGTERM): the partitions move twice and
    every item is indexed once; an item is read twice only after a commit the rebalance refused, a batch at most."""
    root = tmp_path / "d"
    app = make_app(root, live_tasking(), **clean_broker.settings())
    n, batch = 360, 10
    items = [spread_item(i) for i in range(n)]
    env = worker_env(root, clean_broker, FCMON_WORK_BATCH_SIZE=str(batch))
    first = WorkerProcess(env)
    first.wait_for("event=kafka_assigned", timeout=60)
    publisher = PacedPublisher(app.settings, items, per_round=10, every_s=0.25)
    publisher.start()
    publisher.wait_published(n // 3)
    second = WorkerProcess(env)  # joins: the first gives up half of the partitions
    second.wait_for("event=kafka_assigned", timeout=60)
    publisher.wait_published(2 * n // 3)
    a = first.stop()  # leaves: the second takes them all
    stopped_at = publisher.published
    index = LocalIndex(root / "index")
    try:
        publisher.join(timeout=120)
        assert publisher.error is None and publisher.published == n, publisher.error
        wait_indexed(index, n, timeout=180)
        wait_committed(app.settings)
    finally:
        b = second.stop()
    assert stopped_at < n, "the first worker left before the stream ended"
    assert a["consumed"] > 0 and b["consumed"] > 0, (a, b)
    assignments = [line for line in second.lines if "event=kafka_assigned" in line]
    assert len(assignments) >= 2 and assignments[-1].count(f"{COLLECTED}:") == 6, \
        f"the second worker took every partition once the first left: {assignments}"
    ids = index.ids()
    assert len(ids) == len(set(ids)) and set(ids) == {it.id for it in items}
    decided = decided_ids(clean_broker)
    assert set(decided) == {it.id for it in items} and sum(decided.values()) == a["consumed"] + b["consumed"]
    repeated = a["consumed"] + b["consumed"] - n
    refused = sum("event=kafka_commit_failed" in line for line in first.lines + second.lines)
    assert 0 <= repeated <= batch * refused, f"{repeated} items read twice with {refused} commit(s) refused"


def test_a_commit_beyond_the_log_end_is_reported_and_the_log_is_read_from_its_start(clean_broker, caplog):
    """A log truncated under its group (lost broker data, a restore): logged as an error, and nothing skipped."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    settings = kafka_settings(clean_broker)
    create_topics(settings, (TopicSpec("lost.log", 1, DAY_MS),))
    bus = KafkaBus(settings)
    produce(bus, "lost.log", ["a0", "a1", "a2"])
    committer = KafkaConsumer(bootstrap_servers=clean_broker.bootstrap, group_id="g-lost", enable_auto_commit=False)
    committer.assign([TopicPartition("lost.log", 0)])
    committer.commit({TopicPartition("lost.log", 0): OffsetAndMetadata(10, "", -1)})  # as if offsets 3..9 were lost
    committer.close(autocommit=False)
    consumer = bus.consumer("g-lost", ["lost.log"])
    with caplog.at_level(logging.ERROR, logger="pipeline.bus.kafka"):
        assert sorted(m.value.decode() for m in drain(consumer, 3)) == ["a0", "a1", "a2"]
    assert "event=kafka_log_lost group=g-lost reason=commit_beyond_end partitions=lost.log:0@10>end3" in caplog.text
    consumer.close(), bus.close()


def test_a_joining_or_idle_consumer_does_not_spin(clean_broker, monkeypatch):
    """Polling an empty topic for 3 s, through the group join: each round waits a fetch's time, not 1 ms."""
    import kafka
    rounds = []
    original = kafka.KafkaConsumer.poll
    monkeypatch.setattr(kafka.KafkaConsumer, "poll", lambda self, *a, **k: rounds.append(k) or original(self, *a, **k))
    consumer = KafkaBus(kafka_settings(clean_broker)).consumer("spin-check", [COLLECTED])
    started = time.monotonic()
    while time.monotonic() - started < 3:
        assert consumer.poll(100, timeout_s=0.05) == []
    elapsed = time.monotonic() - started
    consumer.close()
    assert len(rounds) < 50 * elapsed + 10, f"{len(rounds)} kafka polls in {elapsed:.1f} s"  # 1 ms polls: ~1,000/s


def test_a_worker_killed_at_random_points_on_kafka_loses_and_duplicates_nothing(clean_broker, tmp_path):
    root = tmp_path / "d"
    app = make_app(root, live_tasking(), **clean_broker.settings())
    env = {"FCMON_DATA_DIR": str(root), "FCMON_WORK_BATCH_SIZE": "5", "FCMON_LOG_LEVEL": "INFO", **clean_broker.env()}
    bus = KafkaBus(app.settings)
    lag = group_lag(bus, app.settings.work_group)

    expected = Expected()
    series = kill_series(root, env, bus, expected, FAULT_ROUNDS_KAFKA, 30, random.Random(18), lag, ready="event=kafka_assigned")
    assert series.kills >= 1
    check = check_outcomes(root, env, expected, lag(), lambda: [r.value for r in clean_broker.records(DECISIONS)])
    bus.close()
    assert check.ok, check.problems
