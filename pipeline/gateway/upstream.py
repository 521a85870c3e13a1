"""The gateway's connections to Elasticsearch: one urllib3 pool, kept alive between requests, with timeouts.

urllib3 rather than httpx: the gateway's decisions run in worker threads (they share SQLite connections behind a
lock), and urllib3's pool is thread-safe, synchronous and what Elasticsearch's own Python transport runs on; httpx's
sync client would add its own stack (httpcore, anyio) for nothing the gateway uses. A request goes to the pool of the
upstream's host with the path exactly as given (never parsed or normalized again: what the policy checked is what is
sent), without retries or redirects, which would send a request the gateway did not decide on.
"""
from __future__ import annotations

from typing import Any

import urllib3
from urllib3.exceptions import HTTPError

CONNECT_TIMEOUT_S = 10.0
POOL_SIZE = 40  # connections kept: as many as the server's worker threads (more are opened when needed, not kept)


class UpstreamDown(Exception):
    """Elasticsearch did not answer (refused, timed out, or broke the connection)."""


class Upstream:
    def __init__(self, url: str, timeout: float, pool_size: int = POOL_SIZE):
        self.url = url.rstrip("/")
        self.pool = urllib3.connection_from_url(
            self.url, maxsize=pool_size, block=False, retries=False,
            timeout=urllib3.Timeout(connect=min(CONNECT_TIMEOUT_S, timeout), read=timeout))

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of Elasticsearch's answer, whatever its status; UpstreamDown when there is none."""
        try:
            answer: Any = self.pool.urlopen(method, path, body=body, headers=headers, redirect=False,
                                            assert_same_host=False, preload_content=True)
        except (HTTPError, OSError, ValueError) as exc:  # ValueError: a request http.client will not send
            raise UpstreamDown(f"Elasticsearch at {self.url} did not answer ({exc})") from exc
        return answer.status, dict(answer.headers.items()), answer.data

    def close(self) -> None:
        self.pool.close()
