"""Real HTTP servers on 127.0.0.1 for a test's block: fixture services, fake upstreams, fcmon's own services."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[str]:
    """The server answering in a thread for the block; its base URL. Shut down and closed after."""
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def serving(handler: type[BaseHTTPRequestHandler]):
    """The handler on a free port of 127.0.0.1, for the block; its base URL."""
    return running(ThreadingHTTPServer(("127.0.0.1", 0), handler))
