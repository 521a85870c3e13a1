"""`fcmon serve` and `fcmon gateway` listen with the connection cap and listen backlog their settings give."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.datadirs import FCMON, make_app


@pytest.fixture
def data(tmp_path):
    make_app(tmp_path / "d").close()
    return str(tmp_path / "d")


def free_port() -> int:
    with socket.socket() as probe:  # --listen takes no port 0
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | env
    proc = subprocess.Popen([*FCMON, *command], env=clean, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if found:
            return proc, int(found.group(1))
        assert line or proc.poll() is None, "the server stopped before it listened"
    raise AssertionError("the server never said where it listens")


def backlog_of(port: int) -> int:
    """The listening socket's backlog, as the kernel reports it (ss: Send-Q of a LISTEN socket)."""
    shown = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(shown.split()[2])


@pytest.mark.parametrize("command, prefix", [
    (["serve"], "WEB"),
    (["gateway", "--upstream", "http://127.0.0.1:9"], "GATEWAY"),
])
def test_the_connection_cap_and_backlog_come_from_the_settings(data, command, prefix):
    command = [*command, "--listen", f"127.0.0.1:{free_port()}"]
    env = {"FCMON_DATA_DIR": data, f"FCMON_{prefix}_MAX_CONNECTIONS": "2", f"FCMON_{prefix}_LISTEN_BACKLOG": "7"}
    proc, port = listening(command, env)
    try:
        assert backlog_of(port) == 7
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        try:
            time.sleep(0.5)  # both accepted, each waiting for a request
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
            assert refused.value.code == 503
        finally:
            for connection in held:
                connection.close()
    finally:
        proc.terminate()
        proc.wait(30)


def server_side_nodelay(port: int, client: socket.socket, wait_s: float = 10) -> int:
    """TCP_NODELAY of the server's end of `client`'s connection (both ends live in this process), once accepted."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for fd in os.listdir("/proc/self/fd"):
            try:
                candidate = socket.socket(fileno=os.dup(int(fd)))
            except OSError:
                continue
            with candidate:
                try:
                    if candidate.getsockname() == ("127.0.0.1", port) and candidate.getpeername() == client.getsockname():
                        return candidate.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                except OSError:
                    continue
        time.sleep(0.05)  # not accepted yet
    raise AssertionError("the server's end of the connection was not found")


def test_answers_are_not_held_back_by_nagle_on_either_server(tmp_path, es_node):
    """asyncio sets TCP_NODELAY only on sockets that say IPPROTO_TCP; the servers' own sockets say 0, and each answer's
    last segment waited ~40 ms for the client's delayed ACK (the gateway's answers took 40 ms more than Elasticsearch's)."""
    from pipeline.gateway import serve as serve_gateway
    from pipeline.web import Console, serve as serve_console
    from tests.factories_gateway import make_gateway
    from tests.servers import running

    app = make_app(tmp_path / "d")
    for server in (serve_console(Console(app), "127.0.0.1", 0),
                   serve_gateway(make_gateway(app, es_node.url, es_node), "127.0.0.1", 0)):
        with running(server), socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head not yet ended: the connection stays open
            assert server_side_nodelay(server.server_port, client) == 1
    app.close()
