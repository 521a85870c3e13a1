"""Crawl-trap limits: pages per host, distinct query strings per host and path, query parameters per URL.

Depth is Scrapy's DEPTH_LIMIT; these catch what depth does not: endless calendars (?month=N+1 forever),
faceted search (every filter combination) and session-id URLs. The rules are pure (TrapLimits) and the
middleware applies them to each request before it is sent.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from urllib.parse import parse_qsl, urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest

from crawlers.middlewares import fcmon_settings
from crawlers.netpolicy import Refusal

log = logging.getLogger(__name__)

TRAP_ORDER = 985  # after robots.txt and header middlewares, before PublicOnlyMiddleware (990)


class TrapLimits:
    """Counts what one crawl fetched and refuses the request past a limit; robots.txt fetches are not counted."""

    def __init__(self, pages_per_host: int, query_variants: int, max_query_params: int):
        self.pages_per_host, self.query_variants, self.max_query_params = pages_per_host, query_variants, max_query_params
        self.pages: dict[str, int] = defaultdict(int)
        self.variants: dict[tuple[str, str], set[str]] = defaultdict(set)

    def check(self, url: str) -> Refusal | None:
        """None and the request counted, or why it is refused."""
        parts = urlsplit(url)
        host = parts.netloc.lower()
        params = parse_qsl(parts.query, keep_blank_values=True)
        if len(params) > self.max_query_params:
            return Refusal("trap_query_params", f"{len(params)} query parameters (crawl_max_query_params={self.max_query_params})")
        if self.pages[host] >= self.pages_per_host:
            return Refusal("trap_pages_per_host", f"{host} reached crawl_pages_per_domain={self.pages_per_host}")
        seen = self.variants[(host, parts.path)]
        if parts.query and parts.query not in seen and len(seen) >= self.query_variants:
            return Refusal("trap_query_variants", f"{host}{parts.path} reached crawl_query_variants={self.query_variants}")
        if parts.query:
            seen.add(parts.query)
        self.pages[host] += 1
        return None


class CrawlTrapMiddleware:
    """Applies TrapLimits to every request; refusals are counted as fcmon/refused/trap_*."""

    def __init__(self, crawler: Crawler, limits: TrapLimits):
        self.crawler, self.limits = crawler, limits

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlTrapMiddleware:
        s = fcmon_settings(crawler)
        return cls(crawler, TrapLimits(s.crawl_pages_per_domain, s.crawl_query_variants, s.crawl_max_query_params))

    def process_request(self, request: Request) -> None:
        if request.meta.get("dont_obey_robotstxt") and urlsplit(request.url).path == "/robots.txt":
            return None
        refusal = self.limits.check(request.url)
        if refusal is None:
            return None
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(f"fcmon/refused/{refusal.reason}")
        self.crawler.stats.inc_value("fcmon/refused")
        log.info("event=request_refused reason=%s url=%s detail=%r", refusal.reason, request.url, refusal.detail)
        raise IgnoreRequest(f"fcmon refused {request.url}: {refusal.detail}")
