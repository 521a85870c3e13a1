"""The web console's HTTP server (the Kibana gateway runs on uvicorn: pipeline/gateway/server.py): a threading server
that closes idle connections, and request bodies read bounded, never trusted.

A connection that sends nothing for a while (IDLE_TIMEOUT_S) is closed, so clients that open
connections and stall cannot hold the server's threads. A body is read only with a Content-Length that is a whole
number within the service's limit; anything else is refused before a byte is read, and the connection is closed so
its unread bytes are never taken for a request.
"""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IDLE_TIMEOUT_S = 75.0  # nginx's keepalive_timeout: browsers retry a request on a keep-alive socket closed under them


def threading_server(host: str, port: int, handler: type[BaseHTTPRequestHandler],
                     idle_timeout_s: float = IDLE_TIMEOUT_S) -> ThreadingHTTPServer:
    handler.timeout = idle_timeout_s  # each socket read or write; StreamRequestHandler applies it
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


class BodyRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    declared = handler.headers.get("Content-Length")
    try:
        if handler.headers.get("Transfer-Encoding"):
            raise BodyRefused(411, "a chunked request body is not accepted: send it with a Content-Length")
        try:
            length = int(declared or 0)
        except ValueError:
            raise BodyRefused(400, f"Content-Length {declared!r} is not a number of bytes") from None
        if length < 0:
            raise BodyRefused(400, f"Content-Length {declared!r} is negative")
        if length > limit:
            raise BodyRefused(413, f"the request body ({length:,} bytes) is over this service's limit of {limit:,} bytes")
    except BodyRefused:
        handler.close_connection = True
        raise
    return handler.rfile.read(length)
