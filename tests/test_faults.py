"""Faults, counted, short: the kill series of bench/bench_faults.py (tests/faults.py) with a few rounds on the local
bus (the Kafka one is in tests/test_kafka_worker.py, on that module's broker); real `fcmon work` and `fcmon search`
processes SIGKILLed, real SQLite and tantivy. FAULT_ROUNDS sets the rounds (CI: 2); the bench runs 100 per bus and
docs/reliability.md reports its counts."""
from __future__ import annotations

import os
import random
from collections import Counter

from pipeline.bus import COLLECTED, DECISIONS
from tests.datadirs import make_app
from tests.faults import Expected, check_outcomes, kill_series
from tests.test_worker import live_tasking

ROUNDS = int(os.environ.get("FAULT_ROUNDS", "2"))


def test_a_worker_killed_at_random_points_on_the_local_bus_loses_and_duplicates_nothing(tmp_path):
    root = tmp_path / "d"
    app = make_app(root, live_tasking())
    env = {"FCMON_DATA_DIR": str(root), "FCMON_WORK_BATCH_SIZE": "5"}
    watcher = app.bus.consumer(app.settings.work_group, [COLLECTED])  # never polls: reads the group's lag only
    expected = Expected()
    # 200 items in batches of 5 are 40 commits, far more than the 0.2 s before a kill lets through: each kill that
    # does not fall in the start-up falls mid-stream (30 items and up to 1.5 s were all indexed before it on a quiet host)
    series = kill_series(root, env, app.bus, expected, ROUNDS, 200, random.Random(18), watcher.lag, max_after_start_s=0.2)
    assert series.kills == ROUNDS and series.kills_mid_stream + series.kills_at_start >= 1
    check = check_outcomes(root, env, expected, watcher.lag(),
                           lambda: [m.value for m in app.bus.consumer("count", [DECISIONS]).poll(10**6, 0)])
    assert check.ok, check.problems
    assert check.counts["indexed"] == len(expected.indexed) > 0 and check.counts["audit_entries"] >= 0


def test_while_the_audit_log_cannot_be_written_every_search_path_is_refused_and_none_runs(tmp_path):
    """The CLI, the console, the API and the gateway each refuse (fail closed) while no entry can be appended; once the
    log is back each searches again and the chain verifies. The gateway's upstream is a closed port: a search that got
    past the log would answer 502, not the 503 of the refusal."""
    from pipeline.gateway import Gateway, serve
    from tests.datadirs import fcmon
    from tests.factories_gateway import PASSWORD, gateway_app
    from tests.factories_web import WebClient, api_search, running_console
    from tests.fuzz_http import basic, send
    from tests.servers import running

    root = tmp_path / "d"
    app = gateway_app(root)
    env = {"FCMON_DATA_DIR": str(root)}
    gateway = Gateway(app.state, app.audit, "http://127.0.0.1:9", records_alias="fcmon-records", service_account="fcmon",
                      kibana_account="kibana_system")
    search_body = b'{"query": {"query_string": {"query": "converter"}}}'
    gateway_headers = {"Authorization": basic("alice", PASSWORD), "X-Fcmon-Tasking": "T-1", "Content-Type": "application/json"}
    with running_console(app) as console, running(serve(gateway, "127.0.0.1", 0)) as proxy:
        web = WebClient(console)
        assert web.sign_in("alice", PASSWORD) == 303
        before = [e.seq for e in app.audit.entries()]
        head = root / "audit.head"
        kept = head.read_bytes()
        head.unlink()
        head.mkdir()  # the log opens, but no entry can be completed
        cli = fcmon("--as", "alice", "search", "converter", "--tasking", "T-1", env=env)
        assert cli.returncode == 2 and cli.stderr.strip().startswith("fcmon: error: audit log cannot be written"), cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1 and not cli.stdout
        status, page = web.search("T-1", "converter")
        assert status == 503 and "nothing was searched" in page
        status, _, answer = api_search(console, {"tasking": "T-1", "q": "converter"}, "alice", PASSWORD)
        assert status == 503, answer
        status, _, answer = send(proxy, "POST", "/fcmon-records/_search", search_body, gateway_headers)
        assert status == 503 and b"audit log cannot be written" in answer, answer
        head.rmdir()
        head.write_bytes(kept)
        assert [e.seq for e in app.audit.entries()] == before, "nothing was logged, so nothing ran"
        assert fcmon("--as", "alice", "search", "converter", "--tasking", "T-1", env=env).returncode == 0
        assert web.search("T-1", "converter")[0] == 200
        assert api_search(console, {"tasking": "T-1", "q": "converter"}, "alice", PASSWORD)[0] == 200
        status, _, _ = send(proxy, "POST", "/fcmon-records/_search", search_body, gateway_headers)
        assert status == 502  # past the log this time: the closed upstream answers
    kinds = Counter(e.payload.get("interface") for e in app.audit.entries(["query"]))
    assert kinds == {"cli": 1, "web": 1, "api": 1, "kibana": 1}, kinds
    assert fcmon("--as", "sam", "audit", "verify", env=env).returncode == 0


LOCKER = """
import sqlite3, sys, time
conns = [sqlite3.connect(path, isolation_level=None) for path in sys.argv[2:]]
for conn in conns:
    conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[1]))
for conn in conns:
    conn.execute("ROLLBACK")
"""


def lock(seconds: float, *paths):
    """Another process holding an exclusive transaction on these SQLite databases for `seconds`."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(seconds), *map(str, paths)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_databases_locked_by_another_process_are_waited_for_then_a_clear_error_and_nothing_is_corrupted(tmp_path):
    import sqlite3
    import subprocess
    import time

    from pipeline.app import App
    from tests.datadirs import FCMON, fcmon
    from tests.faults import clean_env, publish, round_items

    root = tmp_path / "d"
    app = make_app(root, live_tasking())
    expected = Expected()
    publish(app.bus, round_items(0, 40, expected))
    app.close()
    env = {"FCMON_DATA_DIR": str(root)}
    search = ["--as", "alice", "search", "converter", "--tasking", "T-1", "--json"]
    holder = lock(3, root / "state.db", root / "audit.db", root / "bus.db")  # shorter than SQLite's busy timeout (10 s)
    started = time.monotonic()
    worker = subprocess.Popen([*FCMON, "work", "--until-idle", "--json"], env=clean_env(env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    searched = fcmon(*search, env=env)
    out, err = worker.communicate(timeout=120)
    holder.wait(timeout=30)
    assert searched.returncode == 0 and worker.returncode == 0, (searched.stderr, err)
    assert time.monotonic() - started >= 2.5, "they waited for the lock"

    holder = lock(15, root / "audit.db")  # longer than the busy timeout: the search gives up, saying why
    refused = fcmon(*search, env=env)
    holder.kill()
    holder.wait(timeout=30)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith("fcmon: error: audit log cannot be written (database is locked)"), refused.stderr

    for name in ("state.db", "audit.db", "bus.db"):
        conn = sqlite3.connect(root / name)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",), name
        conn.close()
    bus = App(app.settings).bus
    check = check_outcomes(root, env, expected, bus.consumer(app.settings.work_group, [COLLECTED]).lag(),
                           lambda: [m.value for m in bus.consumer("count", [DECISIONS]).poll(10**6, 0)])
    assert check.ok, check.problems
    assert check.counts["audit_entries"] == 2  # the search that waited: its query and its result; the refused one none


def small_disk(path):
    """A 8 MB tmpfs mounted at `path` (root only), or the test skips saying so."""
    import subprocess

    import pytest
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"no small disk to fill: mount -t tmpfs needs root ({mounted.stderr.strip()})")
    return path


def fill(disk) -> None:
    import os
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # ENOSPC: full
    finally:
        os.close(fd)


def test_on_a_full_disk_the_worker_stores_and_commits_nothing_a_search_is_refused_and_both_resume(tmp_path):
    import subprocess
    import time

    from pipeline.app import App
    from pipeline.index.local import LocalIndex
    from tests.datadirs import FCMON, fcmon
    from tests.faults import clean_env, publish, round_items

    disk = small_disk(tmp_path / "disk")
    worker = None
    try:
        root = disk / "d"
        app = make_app(root, live_tasking())
        expected = Expected()
        publish(app.bus, round_items(0, 120, expected))
        app.close()
        env = {"FCMON_DATA_DIR": str(root), "FCMON_WORK_BATCH_SIZE": "2", "FCMON_LOG_LEVEL": "WARNING"}
        fill(disk)
        first = fcmon("work", "--until-idle", env=env)  # SQLite cannot make the bus's -shm: was an internal error (70)
        assert first.returncode == 2 and first.stderr.strip().splitlines()[-1].startswith("fcmon: error:"), first.stderr
        (disk / "filler").unlink()
        log = tmp_path / "work.log"
        with log.open("wb") as err:
            worker = subprocess.Popen([*FCMON, "work"], env=clean_env(env), stdout=subprocess.DEVNULL, stderr=err)
        index = LocalIndex(root / "index")
        deadline = time.monotonic() + 60
        while index.count() < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        fill(disk)
        time.sleep(1)  # the batch in flight when the disk filled
        at_full = index.count()
        time.sleep(4)
        assert index.count() == at_full < len(expected.indexed), "nothing stored while the disk is full"
        assert worker.poll() is None, f"the worker must wait for space, not exit: {log.read_text()[-2000:]}"
        assert "event=batch_failed" in log.read_text()
        refused = fcmon("--as", "alice", "search", "converter", "--tasking", "T-1", env=env)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert refused.stderr.startswith("fcmon: error: audit log cannot be written"), refused.stderr
        second = fcmon("work", "--until-idle", env=env)  # until idle, a worker gives up after three attempts, saying why
        last = second.stderr.strip().splitlines()[-1]
        assert second.returncode == 2 and last.startswith("fcmon: error:") and "disk" in last, second.stderr
        (disk / "filler").unlink()  # space returns
        deadline = time.monotonic() + 120
        while index.count() < len(expected.indexed) and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
        worker.terminate()
        assert worker.wait(timeout=60) == 0, log.read_text()[-2000:]
        assert "event=store_recovered" in log.read_text()
        bus = App(app.settings).bus
        check = check_outcomes(root, env, expected, bus.consumer(app.settings.work_group, [COLLECTED]).lag(),
                               lambda: [m.value for m in bus.consumer("count", [DECISIONS]).poll(10**6, 0)])
        bus.close()
        assert check.ok, check.problems
        assert fcmon("--as", "alice", "search", "converter", "--tasking", "T-1", env=env).returncode == 0
    finally:
        if worker is not None and worker.poll() is None:  # a failed assertion leaves no worker running
            worker.kill()
            worker.wait(timeout=30)
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_crawler_killed_mid_crawl_and_run_again_stores_every_page_once(tmp_path):
    """`fcmon crawl` SIGKILLed after some pages reached the bus, then run again to its end: the items are the same
    (deterministic ids), so the worker stores each page once, whatever the first crawl had sent."""
    import json
    import signal
    import subprocess
    import time

    from pipeline.app import App
    from pipeline.demosite import DemoSite
    from pipeline.index.local import LocalIndex
    from tests.datadirs import FCMON, fcmon
    from tests.faults import clean_env
    from tests.test_crawler import demo_tasking
    from pipeline.models import utcnow
    from datetime import timedelta

    root = tmp_path / "d"
    tasking = demo_tasking().model_copy(update={"approved_by": "sam", "approved_at": utcnow() - timedelta(hours=1)})
    app = make_app(root, tasking)
    env = {"FCMON_DATA_DIR": str(root), "FCMON_CRAWL_ALLOW_HOSTS": "127.0.0.1", "FCMON_CRAWL_DOWNLOAD_DELAY": "0.15"}
    with DemoSite(port=0) as site:
        crawl = ["--as", "alice", "crawl", "--start-url", site.url + "/", "--tasking", tasking.id, "--json"]
        first = subprocess.Popen([*FCMON, *crawl], env=clean_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(site.requests) < 6 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        fetched_at_kill, sent_at_kill = len(site.requests), app.bus.count(COLLECTED)
        done = fcmon(*crawl, env=env, timeout=120, check=True)
        fetched_again = len(site.requests) - fetched_at_kill
    assert first.returncode == -signal.SIGKILL and fetched_at_kill < fetched_again, "killed mid-crawl"
    sent = [json.loads(m.value)["id"] for m in app.bus.consumer("count", [COLLECTED]).poll(10**6, 0)]
    assert len(sent) == sent_at_kill + json.loads(done.stdout)["items"]  # what the killed crawl had sent stays
    fcmon("work", "--until-idle", env=env, timeout=120, check=True)
    stored = LocalIndex(root / "index").ids()
    state = App(app.settings).state
    held = [r[0] for r in state.conn.execute("SELECT item_id FROM quarantine")]
    rejected = [r[0] for r in state.conn.execute("SELECT item_id FROM rejections")]
    assert sorted(stored + held + rejected) == sorted(set(sent)), "every page once, in one place"
