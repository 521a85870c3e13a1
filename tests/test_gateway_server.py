"""The gateway's HTTP side over real sockets on 127.0.0.1 (pipeline/gateway/server.py, upstream.py): stalled
connections closed, connections past the cap answered 503, a target uvicorn cannot decode refused in the gateway's
words, keep-alive from Kibana's side, pooled and timed connections to Elasticsearch on the other."""
from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from pipeline.gateway import Gateway, Refusal, serve
from pipeline.gateway.server import Server
from tests.factories_gateway import PASSWORD, call, make_gateway, setup  # noqa: F401  (setup is a fixture)
from tests.servers import running

AUTH = base64.b64encode(f"alice:{PASSWORD}".encode())


def closed(connection: socket.socket) -> bool:
    """The server closed the connection without answering (within the socket's timeout, else socket.timeout)."""
    return connection.recv(1024) == b""


@pytest.mark.parametrize("stalled", [
    b"GET /fcmon-records/_count HTTP/1.1\r\nHost: x\r\n",  # a head that never ends
    b"POST /fcmon-records/_search HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + AUTH +
    b"\r\nX-Fcmon-Tasking: T-1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\"",  # a body
    b"",  # nothing at all
])
def test_a_connection_that_stalls_is_closed_after_the_idle_timeout(setup, es_node, stalled):
    app, _, _ = setup
    server = serve(make_gateway(app, es_node.url, es_node), "127.0.0.1", 0, idle_timeout_s=0.5)
    with running(server):
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as connection:
            connection.sendall(stalled)
            assert closed(connection)
    assert list(app.audit.entries(["query"])) == []


def test_connections_past_the_cap_are_answered_503_and_the_rest_served(setup, es_node):
    app, _, _ = setup
    server = Server(make_gateway(app, es_node.url, es_node), "127.0.0.1", 0, max_connections=3)
    with running(server) as base:
        held = [socket.create_connection(("127.0.0.1", server.server_port), timeout=10) for _ in range(3)]
        try:
            until(lambda: len(server.uvicorn.server_state.connections) == 3)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + "/_security/_authenticate", timeout=5)
            assert refused.value.code == 503
        finally:
            for connection in held:
                connection.close()
        until(lambda: not server.uvicorn.server_state.connections)
        assert call(base, "GET", "/_security/_authenticate", tasking=None)[0] == 200


def test_a_target_that_is_not_ascii_is_refused_in_the_gateways_words(setup):
    app, base, _ = setup
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"GET /fcmon-r\xc3\xa9cords/_count HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + AUTH +
                           b"\r\nX-Fcmon-Tasking: T-1\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and "printable ASCII" in json.loads(body)["error"]["reason"]
    assert setup.forwarded == [] and list(app.audit.entries()) == []


def test_kibanas_requests_share_connections_both_ways(setup):
    """Kibana keeps its sockets to the gateway alive; the gateway keeps its own to Elasticsearch (one pool)."""
    app, base, _ = setup
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        for _ in range(3):
            connection.request("POST", "/fcmon-records/_count", body=b"{}", headers={
                "Authorization": "Basic " + AUTH.decode(), "X-Fcmon-Tasking": "T-1", "Content-Type": "application/json"})
            answer = connection.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["count"] == 5
    finally:
        connection.close()
    assert len(setup.forwarded) == 3 and len({r["peer"] for r in setup.forwarded}) == 1


def test_an_upstream_that_never_answers_is_given_up_on_after_the_timeout_and_the_query_closed(setup):
    app, _, _ = setup
    with socket.create_server(("127.0.0.1", 0)) as silent:  # it accepts connections (the kernel does), never answers
        gateway = Gateway(app.state, app.audit, f"http://127.0.0.1:{silent.getsockname()[1]}",
                          records_alias="fcmon-records", service_account="fcmon", timeout=0.5)
        alice = gateway.authenticate("Basic " + AUTH.decode(), "127.0.0.1")
        with pytest.raises(Refusal) as refused:
            gateway.handle(alice, "POST", "/fcmon-records/_count", {"x-fcmon-tasking": "T-1"}, b"", "127.0.0.1")
    assert refused.value.status == 502 and "timed out" in str(refused.value)
    (query,) = app.audit.entries(["query"])
    (result,) = app.audit.entries(["query.result"])
    assert result.payload["query_id"] == query.payload["id"]


def until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there"
        time.sleep(0.01)
