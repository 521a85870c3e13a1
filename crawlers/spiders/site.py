"""SiteSpider: one public web site, same host only, HTML pages as items and RSS/Atom feeds followed."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.linkextractors import LinkExtractor

from crawlers.extract import Page, extract_page, feed_links, is_feed
from crawlers.middlewares import decode_headers
from pipeline.models import CollectedItem, RequestRecord, ResponseRecord, Tasking, sha256_hex, utcnow

log = logging.getLogger(__name__)


DEFAULT_PORTS = {"http": 80, "https": 443}


def site_key(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    return (parts.hostname or "").lower(), None if port == DEFAULT_PORTS.get(parts.scheme) else port


class SiteSpider(scrapy.Spider):
    name = "site"

    def __init__(self, start_url: str, tasking: Tasking | str | None = None, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.start_url = start_url
        self.host = (urlsplit(start_url).hostname or "").lower()
        self.allowed_domains = [self.host]
        self.links = LinkExtractor(unique=True)  # its allow_domains compares host:port, so same_site() filters
        self.tasking = tasking

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SiteSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        if spider.tasking is None:
            spider.tasking = crawler.settings.get("FCMON_TASKING")
        if spider.tasking is None:
            raise ValueError("SiteSpider needs a tasking (spider argument or FCMON_TASKING)")
        return spider

    def same_site(self, url: str) -> bool:
        """Same host as the start URL, and the same port (a default port for http or https counts as the same)."""
        return site_key(url) == site_key(self.start_url)

    @property
    def tasking_id(self) -> str:
        return self.tasking.id if isinstance(self.tasking, Tasking) else str(self.tasking)

    async def start(self) -> AsyncIterator[scrapy.Request]:
        yield scrapy.Request(self.start_url, callback=self.parse)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from self._parse(response)
        except Exception as exc:  # a malformed page never ends the crawl
            self.crawler.stats.inc_value("fcmon/parse_errors")
            log.warning("event=parse_error url=%s error=%r", response.url, f"{type(exc).__name__}: {exc}")

    def _parse(self, response: Response) -> Iterator[Any]:
        wall = response.meta.get("fcmon_login_wall")
        content_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
        if not wall and is_feed(content_type, response.body):
            for url in feed_links(response.body, response.url):
                if self.same_site(url):
                    yield scrapy.Request(url, callback=self.parse)
            return
        if isinstance(response, HtmlResponse) or (wall and isinstance(response, TextResponse)):
            page = extract_page(response.text or "<html></html>", response.url)
            if not wall and page.login_wall_reason:
                self.crawler.stats.inc_value("fcmon/login_wall/content")
            yield self.item(response, page, wall or page.login_wall_reason).model_dump()
            if not wall:
                for link in self.links.extract_links(response):
                    if self.same_site(link.url):
                        yield scrapy.Request(link.url, callback=self.parse)
        elif wall:
            yield self.item(response, Page("", "", None, None, False, None), wall).model_dump()
        else:
            self.crawler.stats.inc_value("fcmon/skipped_not_html")

    def item(self, response: Response, page: Page, wall_reason: str | None) -> CollectedItem:
        sent = response.meta.get("fcmon_sent") or {"method": response.request.method,
                                                   "headers": decode_headers(response.request.headers)}
        return CollectedItem(
            tasking_id=self.tasking_id,
            source_kind="forum_post" if page.is_post else "web_page",
            source_id=self.host,
            spider=self.name,
            url=response.meta.get("redirect_urls", [response.url])[0],
            final_url=response.url,
            fetched_at=utcnow(),
            request=RequestRecord(method=sent["method"], headers=sent["headers"]),
            response=ResponseRecord(status=response.status, headers=decode_headers(response.headers),
                                    body_sha256=sha256_hex(response.body)),
            robots_allowed=bool(response.meta.get("fcmon_robots_allowed", False)),
            login_wall_detected=wall_reason is not None,
            login_wall_reason=wall_reason,
            title=page.title,
            text=page.text,
            author=page.author,
            published_at=page.published_at,
        )
