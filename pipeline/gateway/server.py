"""The gateway's HTTP server: a plain ASGI application (app) on uvicorn with the h11 protocol, as the web console runs.

Plain ASGI rather than Starlette's routing: every URL is Elasticsearch's, and policy.route() decides what each is, so
a router would only add a catch-all; Starlette's Request would read what the gateway must read in a set order. Per
request, in this order:
1. the request target must be origin-form printable ASCII (400 otherwise, before anything else);
2. the sender is authenticated (401, 429), before a byte of the body is read;
3. a body is read only with a Content-Length within the gateway's limit (413 above it, 411 for a chunked body; h11
   refuses a Content-Length that is no number of bytes, and GatewayProtocol says why), and a refusal before the body
   is read closes the connection, so its unread bytes are never taken for a request;
4. Gateway.handle decides, in a worker thread (its code is synchronous: SQLite behind a lock, the pooled upstream).
A connection that sends nothing for idle_timeout_s (before its first request, inside a request's head or body, or
between requests) is closed; at most MAX_CONNECTIONS at once (the next is answered 503), a listen backlog of BACKLOG
(`fcmon gateway` takes both from the settings gateway_max_connections and gateway_listen_backlog: 500 and 128).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
from typing import Any

import h11
import uvicorn
from anyio import to_thread
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipeline.errors import AuditUnavailable, FcmonError
from pipeline.gateway.policy import TASKING_HEADER
from pipeline.gateway.proxy import Gateway, Refusal
from pipeline.settings import Settings

log = logging.getLogger("pipeline.gateway")

REQUEST_TARGET = re.compile(rb"/[\x21-\x7e]*")  # origin-form, printable ASCII: anything else is not forwarded
BAD_TARGET = "the request target must be a path of printable ASCII characters starting with /"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding", "authorization",
              TASKING_HEADER.lower()}
# Longer than Kibana's elasticsearch.idleSocketTimeout (60 s): Kibana closes an idle keep-alive socket before the
# gateway does, so no request is ever written to a socket the gateway is closing.
GATEWAY_IDLE_TIMEOUT_S = 120.0
MAX_CONNECTIONS = Settings.model_fields["gateway_max_connections"].default  # `fcmon gateway` passes the settings'
BACKLOG = Settings.model_fields["gateway_listen_backlog"].default
MAX_HEAD_BYTES = 64 * 1024  # a request's head (http.server's limit for one header line, which the gateway had)
CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)


def error(status: int, message: str) -> bytes:
    return json.dumps({"error": {"type": "fcmon_gateway", "reason": message}, "status": status}).encode()


def make_app(gateway: Gateway) -> Any:
    """The ASGI application: one gateway decision per request."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method, client = scope["method"], (scope.get("client") or ("", 0))[0]
        target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path, close = target.decode("latin-1"), False
        try:
            try:
                if not REQUEST_TARGET.fullmatch(target):
                    raise Refusal(400, BAD_TARGET)
                user = await to_thread.run_sync(gateway.authenticate, headers.get("authorization"), client)
                body = await read_body(receive, headers, gateway.max_body_bytes)
            except Refusal:
                close = True  # its body, unread, must not be taken for the next request
                raise
            status, out_headers, payload = await to_thread.run_sync(gateway.handle, user, method, path, headers, body,
                                                                    client)
        except Refusal as refusal:
            status, out_headers, payload = refusal.status, {}, error(refusal.status, str(refusal))
            if refusal.status == 401:
                out_headers["WWW-Authenticate"] = 'Basic realm="fcmon", charset="UTF-8"'
        except AuditUnavailable as exc:
            status, out_headers, payload = 503, {}, error(503, str(exc))
        except FcmonError as exc:
            status, out_headers, payload = 403, {}, error(403, str(exc))
        except Exception:  # noqa: BLE001  (a bug must still answer, not drop the connection)
            log.exception("event=gateway.error method=%s path=%s", method, path.split("?")[0])
            status, out_headers, payload, close = 500, {}, error(500, "the request could not be completed; see the "
                                                                      "gateway's log"), True
        log.info("event=gateway.request client=%s method=%s path=%s status=%d", client, method, path, status)
        sent = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in out_headers.items()
                if k.lower() not in HOP_BY_HOP]
        if not any(k == b"content-type" for k, _ in sent):
            sent.append((b"content-type", b"application/json"))
        sent.append((b"content-length", str(len(payload)).encode()))
        if close:
            sent.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": sent})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload})

    return app


async def read_body(receive: Any, headers: dict[str, str], limit: int) -> bytes:
    """The body, once its Content-Length is known to be within the limit (h11 has checked that it is a number)."""
    if "transfer-encoding" in headers:
        raise Refusal(411, "a chunked request body is not accepted: send it with a Content-Length")
    length = int(headers.get("content-length") or 0)
    if length > limit:
        raise Refusal(413, f"the request body ({length:,} bytes) is over this service's limit of {limit:,} bytes")
    chunks, more = [], length > 0
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal(400, "the connection closed before the body was sent")
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


class GatewayProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing idle connections (timeout_keep_alive is the idle timeout), answering a request
    it cannot parse in the gateway's JSON (with the reason when it is the Content-Length or a target that is not
    printable ASCII, which h11 or uvicorn refuse without saying why)."""

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

    def handle_events(self) -> None:
        try:
            super().handle_events()
        except UnicodeDecodeError:  # uvicorn decodes the target's path as ASCII
            self.send_400_response(BAD_TARGET)

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
        if self.conn.their_state is h11.DONE:  # the request is in; the gateway is still answering it
            self._rearm()
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        payload = error(400, target_problem(self._head) or content_length_problem(self._head) or msg)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                   (b"connection", b"close")]
        try:
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=payload),
                          h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:  # a response was already begun on this connection
            pass
        self.transport.close()


def target_problem(head: bytes) -> str | None:
    """BAD_TARGET when the request line's target is not one the gateway takes (h11 refuses bytes outside ASCII)."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    return BAD_TARGET if len(parts) == 3 and not REQUEST_TARGET.fullmatch(parts[1]) else None


def content_length_problem(head: bytes) -> str | None:
    found = CONTENT_LENGTH.search(head.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n"))
    if found is None or found.group(1).isdigit():
        return None
    declared = found.group(1).decode("latin-1")
    if declared.startswith("-") and declared[1:].isdigit():
        return f"Content-Length {declared!a} is negative"
    return f"Content-Length {declared!a} is not a number of bytes"


class Server:
    """uvicorn serving the gateway on host:port (port 0: any free one); the socket is bound here, so errors come at
    once. The shape of http.server's servers (server_port, server_address, serve_forever, shutdown, server_close)."""

    def __init__(self, gateway: Gateway, host: str, port: int, idle_timeout_s: float = GATEWAY_IDLE_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS, backlog: int = BACKLOG):
        self.gateway = gateway
        self.socket = socket.create_server((host, port), backlog=backlog)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self.server_port = self.server_address[1]
        self.config = uvicorn.Config(make_app(gateway), http=GatewayProtocol, lifespan="off", log_config=None,
                                     access_log=False, timeout_keep_alive=idle_timeout_s,
                                     limit_concurrency=max_connections, backlog=backlog, proxy_headers=False,
                                     server_header=False, h11_max_incomplete_event_size=MAX_HEAD_BYTES)
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
        self.gateway.upstream.close()


def serve(gateway: Gateway, host: str, port: int, idle_timeout_s: float = GATEWAY_IDLE_TIMEOUT_S,
          max_connections: int = MAX_CONNECTIONS, backlog: int = BACKLOG) -> Server:
    """The gateway on host:port (0: a free port), ready for serve_forever()."""
    return Server(gateway, host, port, idle_timeout_s, max_connections, backlog)
