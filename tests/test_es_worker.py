"""The guard/index worker writing into the session's real Elasticsearch (tests/stack.py `es_node`) from a LocalBus:
everything lands once, and while Elasticsearch cannot be reached the worker backs off and commits nothing.

"Down" is a loopback port nothing listens on, which fcmon is configured with; "back" is a relay that starts listening
on that port and passes the bytes to the real node (stopping the session's node would stop every other test's, and a
second node costs half a minute of two shared cores to start)."""
from __future__ import annotations

import logging
import select
import socket
import socketserver
import threading
import time
import uuid

import pytest

from guards.chain import GuardChain
from pipeline.bus import COLLECTED
from pipeline.stack import free_port
from pipeline.worker import Worker
from tests.datadirs import make_app
from tests.test_index_contract import wipe_alias
from tests.test_worker import item, live_tasking, publish, run_worker


class Relay(socketserver.ThreadingTCPServer):
    """127.0.0.1:`port` -> the node, from `start` on; before it, the port is closed."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target_port: int):
        self.port, self.target_port = free_port(), target_port
        super().__init__(("127.0.0.1", self.port), Pipe, bind_and_activate=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server_bind()
        self.server_activate()
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()


class Pipe(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with socket.create_connection(("127.0.0.1", self.server.target_port)) as upstream:
            ends = {self.request: upstream, upstream: self.request}
            while True:
                ready, _, _ = select.select(list(ends), [], [], 1.0)
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    ends[end].sendall(data)


def node_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture
def alias(es_node):
    name = f"fcmon-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = es_node.client()
    wipe_alias(client, name)
    client.close()


def test_items_are_indexed_once_into_elasticsearch(tmp_path, es_node, alias):
    app = make_app(tmp_path / "d", live_tasking(), **es_node.settings(elasticsearch_records_alias=alias))
    items = [item(i) for i in range(30)]
    publish(app, items)
    assert run_worker(app).indexed == 30
    publish(app, items[:10])  # a replay of what was indexed
    assert run_worker(app).indexed == 10
    assert app.index.count() == 30 and sorted(app.index.ids()) == sorted(i.id for i in items)
    assert app.index.get(items[3].id).text == items[3].text
    assert app.bus.consumer(app.settings.work_group, [COLLECTED]).lag() == 0
    app.close()


def test_while_elasticsearch_is_down_the_worker_commits_nothing_and_resumes_when_it_is_back(tmp_path, es_node, alias,
                                                                                            caplog):
    relay = Relay(node_port(es_node.url))
    app = make_app(tmp_path / "d", live_tasking(),
                   **es_node.settings(elasticsearch_url=relay.url, elasticsearch_records_alias=alias))
    n = 20
    publish(app, [item(i) for i in range(n)])
    worker = Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings))
    watcher = app.bus.consumer(app.settings.work_group, [COLLECTED])  # never polls: reads the group's lag only
    node = es_node.client()
    seen: dict[str, object] = {}

    def outage_then_recovery() -> None:
        try:
            deadline = time.monotonic() + 180  # against a hang only: a loaded machine runs the guards slowly
            while caplog.text.count("event=batch_failed") < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            seen["failures_before_recovery"] = caplog.text.count("event=batch_failed")
            seen["lag_during_outage"] = watcher.lag()
            seen["alias_during_outage"] = bool(node.indices.exists_alias(name=alias))
            relay.start()
            while watcher.lag() > 0 and time.monotonic() < deadline:  # all committed: so all written (process, then commit)
                time.sleep(0.05)
        finally:
            worker.stop()

    helper = threading.Thread(target=outage_then_recovery)
    with caplog.at_level(logging.WARNING, logger="pipeline.bus.loop"):
        helper.start()
        stats = worker.run(until_idle=False)  # as a service: retries for as long as Elasticsearch is down
        helper.join()
    relay.shutdown()
    relay.server_close()
    assert seen["failures_before_recovery"] >= 2 and "ConnectionError" in caplog.text
    assert (seen["lag_during_outage"], seen["alias_during_outage"]) == (n, False)  # nothing committed, nothing written
    assert "event=store_recovered" in caplog.text
    assert stats.indexed == n and node.count(index=alias)["count"] == n
    assert watcher.lag() == 0
    watcher.close()
    node.close()
    app.close()
