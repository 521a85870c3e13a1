"""The console's server limits, over real sockets on 127.0.0.1: a connection stalled in the middle of a request is
closed like an idle one, and connections past the cap are answered 503 at once while the others are served."""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest

from pipeline.web import Console, serve
from tests.servers import running
from tests.test_web import app  # noqa: F401  (fixture)


def test_a_request_head_that_stalls_is_closed(app):
    server = serve(Console(app), "127.0.0.1", 0, idle_timeout_s=0.5)
    with running(server):
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as stalled:
            stalled.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n")  # and never the blank line that ends the head
            began = time.monotonic()
            assert stalled.recv(1024) == b"" and time.monotonic() - began < 5


def test_connections_past_the_cap_are_refused_at_once_and_the_rest_served(app):
    server = serve(Console(app), "127.0.0.1", 0, max_connections=3)
    with running(server) as url:
        held = [socket.create_connection(("127.0.0.1", server.server_port), timeout=10) for _ in range(3)]
        try:
            until(lambda: len(server.uvicorn.server_state.connections) == 3)  # accepted, each waiting for a request
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url + "/login", timeout=5)
            assert refused.value.code == 503
        finally:
            for connection in held:
                connection.close()
        until(lambda: not server.uvicorn.server_state.connections)
        with urllib.request.urlopen(url + "/login", timeout=5) as answer:
            assert answer.status == 200


def until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there"
        time.sleep(0.01)
