"""What every fcmon spider shares: its source and tasking, parse errors counted (never fatal), items with provenance,
and, under `fcmon monitor run`, the source's cursor: conditional start requests (an unchanged answer is a 304 and
yields nothing), posts already seen skipped, and a platform's pages followed back only as far as the last one seen."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from twisted.python.failure import Failure

from crawlers.middlewares import decode_headers
from crawlers.cursors import Cursor
from crawlers.posts import Parsed, Post
from crawlers.sources import SourceBase
from pipeline.models import CollectedItem, RequestRecord, ResponseRecord, Tasking, sha256_hex, utcnow

log = logging.getLogger(__name__)


class SourceSpider(scrapy.Spider):
    """A spider for one source of the sources file, under one tasking; subclasses implement parse_response."""

    item_kind = "web_page"

    def __init__(self, source: SourceBase, tasking: Tasking | None = None, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.source = source
        self.tasking = tasking
        self.cursor: Cursor | None = None
        self.max_pages = 1

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SourceSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        if spider.tasking is None:
            spider.tasking = crawler.settings.get("FCMON_TASKING")
        if not isinstance(spider.tasking, Tasking):
            raise ValueError(f"{cls.__name__} needs a tasking (spider argument or FCMON_TASKING)")
        spider.cursor = crawler.settings.get("FCMON_CURSOR")
        pages = getattr(spider.source, "pages", None)
        spider.max_pages = pages or crawler.settings.getint("FCMON_DEFAULT_PAGES", 1)
        return spider

    @property
    def tasking_id(self) -> str:
        return self.tasking.id

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.source.start_urls(self.tasking):
            yield self.start_request(url)

    def start_request(self, url: str) -> scrapy.Request:
        """A start request; under the monitor, conditional on what the URL answered last (ETag, Last-Modified)."""
        if self.cursor is None:
            return self.request(url, callback=self.parse)
        return self.request(url, callback=self.parse, headers=self.cursor.conditional_headers(url),
                            meta={"fcmon_start_url": url, "handle_httpstatus_list": [304]})

    def request(self, url: str, **kwargs: Any) -> scrapy.Request:
        """A request whose failures (size limits, timeouts, refusals) are counted per reason instead of logged as errors."""
        kwargs.setdefault("callback", self.parse)
        kwargs.setdefault("errback", self.failed)
        return scrapy.Request(url, **kwargs)

    def failed(self, failure: Failure) -> None:
        request = getattr(failure, "request", None)
        if request is not None and request.meta.get("fcmon_start_url"):
            self.crawler.stats.inc_value("fcmon/start_failed")  # the monitor counts the poll as failed
        if failure.check(IgnoreRequest) and "DOWNLOAD_MAXSIZE" not in str(failure.value):
            return  # refused by a middleware (ours or robots.txt), which counted it
        reason = "decompressed_too_large" if failure.check(IgnoreRequest) else type(failure.value).__name__
        self.crawler.stats.inc_value(f"fcmon/fetch_failed/{reason}")
        log.warning("event=fetch_failed source=%s url=%s reason=%s detail=%r", self.source.id,
                    failure.request.url if hasattr(failure, "request") else "", reason, str(failure.value)[:200])

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        start_url = response.meta.get("fcmon_start_url")
        if start_url and self.cursor is not None:
            if response.status == 304:
                self.crawler.stats.inc_value("fcmon/not_modified")
                return
            self.cursor.answered(start_url, response.headers.get("ETag"), response.headers.get("Last-Modified"))
        try:
            yield from self.parse_response(response, **kwargs)
        except Exception as exc:  # a malformed page or answer never ends the crawl
            self.crawler.stats.inc_value("fcmon/parse_errors")
            log.warning("event=parse_error source=%s url=%s error=%r", self.source.id, response.url, f"{type(exc).__name__}: {exc}")

    def parse_response(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        raise NotImplementedError

    def walled(self, response: Response) -> bool:
        """True (and logged) when the login-wall middleware stopped at this response: an API or feed behind a wall gives nothing."""
        wall = response.meta.get("fcmon_login_wall")
        if wall:
            log.info("event=source_walled source=%s url=%s reason=%s", self.source.id, response.url, wall)
        return bool(wall)

    def count_skipped(self, parsed: Parsed) -> None:
        for reason, n in parsed.skipped.items():
            self.crawler.stats.inc_value(f"fcmon/skipped/{reason}", n)

    def unseen(self, parsed: Parsed) -> bool:
        """Drop the posts the cursor has seen; True when the page reached one, so older pages hold nothing new."""
        if self.cursor is None:
            return False
        before = len(parsed.posts)
        parsed.posts = [p for p in parsed.posts if p.ident not in self.cursor.seen]
        if len(parsed.posts) < before:
            self.crawler.stats.inc_value("fcmon/already_seen", before - len(parsed.posts))
        return len(parsed.posts) < before

    def next_page(self, response: Response, parsed: Parsed, reached_seen: bool) -> Iterator[scrapy.Request]:
        """The platform's next (older) page, up to max_pages per start URL, unless this page reached a post already seen."""
        page = response.meta.get("fcmon_page", 1)
        if parsed.next_url and parsed.posts and not reached_seen and page < self.max_pages:
            yield self.request(parsed.next_url, callback=self.parse, meta={"fcmon_page": page + 1})

    def post_items(self, response: Response, parsed: Parsed) -> Iterator[dict[str, Any]]:
        self.count_skipped(parsed)
        for post in parsed.posts:
            yield self.post_item(response, post)

    def post_item(self, response: Response, post: Post, kind: str | None = None) -> dict[str, Any]:
        if self.cursor is not None:
            self.cursor.collected(post.ident)
        return self.item(response, kind=kind or self.item_kind, url=post.url, final_url=post.url, title=post.title,
                         text=post.text, author=post.author, handle=post.handle, published_at=post.published_at,
                         engagement=post.engagement)

    def item(self, response: Response, *, kind: str, title: str = "", text: str = "", author: str | None = None,
             published_at: datetime | None = None, wall_reason: str | None = None, url: str | None = None,
             final_url: str | None = None, handle: str | None = None, engagement: dict[str, int] | None = None) -> dict[str, Any]:
        """A CollectedItem (as a dict) with the provenance of `response`: request as sent, status, headers, verdicts."""
        sent = response.meta.get("fcmon_sent") or {"method": response.request.method,
                                                   "headers": decode_headers(response.request.headers)}
        return CollectedItem(
            tasking_id=self.tasking_id,
            source_kind=kind,
            source_id=self.source.id,
            spider=self.name,
            url=url or response.meta.get("redirect_urls", [response.url])[0],
            final_url=final_url or response.url,
            fetched_at=utcnow(),
            request=RequestRecord(method=sent["method"], headers=sent["headers"], url=response.request.url),
            response=ResponseRecord(status=response.status, headers=decode_headers(response.headers),
                                    body_sha256=sha256_hex(response.body), url=response.url),
            robots_allowed=bool(response.meta.get("fcmon_robots_allowed", False)),
            login_wall_detected=wall_reason is not None,
            login_wall_reason=wall_reason,
            title=title,
            text=text,
            author=author,
            published_at=published_at,
            handle=handle,
            engagement=engagement or {},
        ).model_dump()
