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
    series = kill_series(root, env, app.bus, expected, ROUNDS, 30, random.Random(18), watcher.lag)
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
