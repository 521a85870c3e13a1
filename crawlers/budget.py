"""One request budget per host, shared by every source the monitor polls on it, and Retry-After honoured.

Every Scrapy crawler has its own downloader, so two sources on one host would each keep their own delay: the budget
is process-wide instead. A request to a host (host and port: another port is another server) waits for the host's
next slot, `monitor_host_delay` seconds after the previous request to it from any source; a 429 or 503 answer pauses
the host for its Retry-After (seconds or an HTTP date; `monitor_retry_after_default` without one, at most
`monitor_retry_after_max`). Requests to other hosts never wait for it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.task import deferLater

log = logging.getLogger(__name__)

BUDGET_ORDER = 993  # after PublicOnlyMiddleware (990) refused what it refuses, before ProvenanceMiddleware (995)
RATE_LIMITED = (429, 503)


def retry_after(value: str | None, now: float, default: float, ceiling: float) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), bounded to [0, ceiling]."""
    seconds = default
    if value:
        value = value.strip()
        if value.isdigit():
            seconds = float(value)
        else:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError, IndexError):
                seconds = default
    return max(0.0, min(seconds, ceiling))


@dataclass
class HostState:
    next_slot: float = 0.0
    paused_until: float = 0.0
    requests: int = 0
    rate_limited: int = 0


class HostBudget:
    """The process's budget per host; the monitor reads `paused_until` to schedule the next poll of a source."""

    def __init__(self, delay: float, retry_default: float, retry_max: float):
        self.delay, self.retry_default, self.retry_max = delay, retry_default, retry_max
        self.hosts: dict[str, HostState] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> HostBudget:
        return self  # Scrapy deep-copies each crawler's settings: every crawler must share this one

    def host(self, url: str) -> HostState:
        return self.hosts.setdefault(urlsplit(url).netloc.lower(), HostState())

    def reserve(self, url: str, now: float) -> float:
        """Seconds this request must wait; its slot is taken."""
        state = self.host(url)
        slot = max(now, state.next_slot, state.paused_until)
        state.next_slot = slot + self.delay
        state.requests += 1
        return slot - now

    def answered(self, url: str, status: int, header: str | None, now: float) -> float:
        """Pause the host after a 429/503; returns the pause in seconds (0 for any other status)."""
        if status not in RATE_LIMITED:
            return 0.0
        pause = retry_after(header, time.time(), self.retry_default, self.retry_max)
        state = self.host(url)
        state.rate_limited += 1
        state.paused_until = max(state.paused_until, now + pause)
        return pause

    def paused_until(self, url: str) -> float:
        return self.host(url).paused_until


class HostBudgetMiddleware:
    """Downloader middleware: waits for the host's slot and records 429/503 pauses (FCMON_HOST_BUDGET, monitor only)."""

    def __init__(self, crawler: Crawler, budget: HostBudget):
        self.crawler, self.budget = crawler, budget

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HostBudgetMiddleware:
        budget = crawler.settings.get("FCMON_HOST_BUDGET")
        if not isinstance(budget, HostBudget):
            raise NotConfigured  # `fcmon crawl`: one crawler per source, Scrapy's own per-host delay
        return cls(crawler, budget)

    async def process_request(self, request: Request) -> None:
        wait = self.budget.reserve(request.url, time.monotonic())
        if wait > 0:
            from twisted.internet import reactor  # the one the monitor installed (importing it at the top would install another)

            await maybe_deferred_to_future(deferLater(reactor, wait, lambda: None))  # type: ignore[arg-type]
        return None

    def process_response(self, request: Request, response: Response) -> Any:
        header = response.headers.get("Retry-After")
        pause = self.budget.answered(request.url, response.status, header.decode("latin-1") if header else None,
                                     time.monotonic())
        if response.status in RATE_LIMITED:
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("fcmon/rate_limited")
            log.warning("event=rate_limited url=%s status=%d pause_s=%.1f", request.url, response.status, pause)
        return response
