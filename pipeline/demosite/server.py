"""Serve the fixture site over real HTTP on 127.0.0.1, in a daemon thread, logging every request it receives."""
from __future__ import annotations

import errno
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

from pipeline.demosite.content import routes
from pipeline.errors import FcmonError

HOST = "127.0.0.1"


class RecordingServer:
    """An HTTP server on 127.0.0.1 in a daemon thread that logs every request it receives (`requests`).

    Handlers reach their server object as `self.server.owner` and call `owner.log(...)` first thing.
    """
    handler: type[BaseHTTPRequestHandler]

    def __init__(self, port: int = 0):
        self.port = port
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Self:
        try:
            server = ThreadingHTTPServer((HOST, self.port), self.handler)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise FcmonError(f"port {self.port} on {HOST} is busy", "set FCMON_DEMO_SITE_PORT to a free port") from exc
            raise
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        threading.Thread(target=server.serve_forever, name=f"{type(self).__name__}-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers})


class _Handler(BaseHTTPRequestHandler):
    server_version = "SouthsideNeighbors/1.0"
    sys_version = ""

    @property
    def site(self) -> DemoSite:
        return self.server.owner  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        self._serve(with_body=False)

    def _refuse(self) -> None:
        """Anything but GET/HEAD is logged (the tests assert it never happens) and refused."""
        self.site.log(self.command, self.path, dict(self.headers.items()))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._send(405, b"method not allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"}, True)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse

    def _serve(self, with_body: bool) -> None:
        self.site.log(self.command, self.path, dict(self.headers.items()))
        page = self.site._routes.get(urlsplit(self.path).path)
        if page is None:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", {}, with_body)
            return
        body = page.body.replace("{base}", self.site.url).encode()
        self._send(page.status, body, page.content_type, page.headers, with_body)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str], with_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the request log is `DemoSite.requests`
        pass


class DemoSite(RecordingServer):
    """`with DemoSite(port=0) as site:` serves the site at `site.url`; `site.requests` logs what arrived."""
    handler = _Handler

    def __init__(self, port: int = 0):
        super().__init__(port)
        self._routes = routes()
