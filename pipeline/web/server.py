"""The console's HTTP server: uvicorn (HTTP/1.1 by h11) on one socket, with the limits the console promises.

- A connection that sends nothing for IDLE_TIMEOUT_S (before its first request, inside a request's head or body, or
  between requests) is closed: stalled clients cannot hold connections. uvicorn's own keep-alive timeout covers only
  the time between requests, so the protocol below adds the rest.
- At most MAX_CONNECTIONS connections at once (uvicorn's limit-concurrency: the next one is answered 503 at once),
  a listen backlog of BACKLOG (`fcmon serve` takes both from the settings web_max_connections and web_listen_backlog:
  200 and 128), and the work of requests in anyio's worker threads (40): the console's code is
  synchronous and shares one SQLite connection per store behind a lock, so more threads would only wait.
- A Content-Length that is not a whole number of bytes is refused before anything else, saying so.
The object has the shape of http.server's servers (server_port, serve_forever, shutdown, server_close), which
`fcmon serve` and the tests use.
"""
from __future__ import annotations

import asyncio
import re
import socket
import threading
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipeline.settings import Settings
from pipeline.web.security import SECURITY_HEADERS

IDLE_TIMEOUT_S = 75.0  # nginx's keepalive_timeout: browsers retry a request on a keep-alive socket closed under them
MAX_CONNECTIONS = Settings.model_fields["web_max_connections"].default  # `fcmon serve` passes the settings' values
BACKLOG = Settings.model_fields["web_listen_backlog"].default
MAX_HEAD_BYTES = 16 * 1024  # h11's limit for a request's head, uvicorn's default
CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)


class ConsoleProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing idle connections (timeout_keep_alive is the idle timeout) and explaining a bad
    Content-Length (h11 refuses it as an invalid request, without saying why)."""

    _idle: asyncio.TimerHandle | None = None
    _head = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and the socket bound here (and so each
        # accepted one) says 0: without it Nagle held each answer's last segment for the client's delayed ACK, ~40 ms
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rearm()

    def data_received(self, data: bytes) -> None:
        self._rearm()
        if self.conn.their_state is h11.IDLE and len(self._head) < MAX_HEAD_BYTES:
            self._head += data[:MAX_HEAD_BYTES]
        super().data_received(data)

    def on_response_complete(self) -> None:
        self._head = b""
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        super().connection_lost(exc)

    def _rearm(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = self.loop.call_later(self.timeout_keep_alive, self._idle_too_long)

    def _idle_too_long(self) -> None:
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.DONE:  # the request is in; the console is still answering it
            self._rearm()
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 cannot parse, with the reason when it is the Content-Length."""
        text = content_length_problem(self._head) or msg
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        headers += [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=text.encode("ascii", "replace")), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def content_length_problem(head: bytes) -> str | None:
    found = CONTENT_LENGTH.search(head.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n"))
    if found is None or found.group(1).isdigit():
        return None
    declared = found.group(1).decode("latin-1")
    if declared.startswith("-") and declared[1:].isdigit():
        return f"Content-Length {declared!a} is negative"
    return f"Content-Length {declared!a} is not a number of bytes"


class Server:
    """uvicorn serving `app` on host:port (port 0: any free one); the socket is bound here, so errors come at once."""

    def __init__(self, app: Any, host: str, port: int, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS, backlog: int = BACKLOG):
        self.socket = socket.create_server((host, port), backlog=backlog)
        self.server_port: int = self.socket.getsockname()[1]
        self.config = uvicorn.Config(app, http=ConsoleProtocol, lifespan="off", log_config=None, access_log=False,
                                     timeout_keep_alive=idle_timeout_s, limit_concurrency=max_connections,
                                     backlog=backlog, proxy_headers=False, server_header=False,
                                     h11_max_incomplete_event_size=MAX_HEAD_BYTES)
        self.uvicorn = uvicorn.Server(self.config)
        self._stopped = threading.Event()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until shutdown() (from another thread) or an interrupt (Ctrl-C, SIGTERM, in the main thread)."""
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self.uvicorn.should_exit = True
        self._stopped.wait(15)

    def server_close(self) -> None:
        self.socket.close()
