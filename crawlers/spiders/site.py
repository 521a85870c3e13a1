"""SiteSpider: a public web site or forum: start URLs and sitemaps, link rules, per-site extraction rules, feeds followed."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import regex
import scrapy
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.linkextractors import LinkExtractor
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap

from crawlers.extract import Page, decode_html, extract_page, feed_links, is_feed, parse_datetime
from crawlers.posts import html_text
from crawlers.sources import SiteSource
from crawlers.spiders.base import SourceSpider
from guards.scope import host_in
from pipeline.models import Tasking

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}


def site_key(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    return (parts.hostname or "").lower(), None if port == DEFAULT_PORTS.get(parts.scheme) else port


class SiteSpider(SourceSpider):
    name = "site"

    def __init__(self, source: SiteSource | None = None, tasking: Tasking | None = None, *args: Any,
                 start_url: str | None = None, **kwargs: Any):
        if source is None:
            if not start_url:
                raise ValueError("SiteSpider needs a source or a start_url")
            source = SiteSource.for_start_url(start_url)
        super().__init__(source, tasking, *args, **kwargs)
        self.sites = {site_key(u) for u in source.scope_urls()}
        # LinkExtractor's allow_domains compares host:port, so same_site() filters instead
        self.links = LinkExtractor(allow=source.allow, deny=source.deny, unique=True)
        self.follow_allow = [regex.compile(p) for p in source.allow]
        self.follow_deny = [regex.compile(p) for p in source.deny]

    def same_site(self, url: str) -> bool:
        """Inside allowed_domains (a host and its subdomains) or, without them, the host and port of a start URL or sitemap."""
        if self.source.allowed_domains:
            return host_in((urlsplit(url).hostname or "").lower(), self.source.allowed_domains)
        return site_key(url) in self.sites

    def follows(self, url: str) -> bool:
        """Same site, and passing the link rules (any allow pattern, no deny pattern)."""
        return (self.same_site(url) and (not self.follow_allow or any(p.search(url) for p in self.follow_allow))
                and not any(p.search(url) for p in self.follow_deny))

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.source.sitemaps:
            yield self.request(url, callback=self.parse, cb_kwargs={"sitemap": True})
        for url in self.source.start_urls(self.tasking):
            yield self.request(url, callback=self.parse)

    def parse_response(self, response: Response, sitemap: bool = False, **kwargs: Any) -> Iterator[Any]:
        wall = response.meta.get("fcmon_login_wall")
        if sitemap and not wall:
            yield from self.parse_sitemap(response)
            return
        content_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
        if not wall and is_feed(content_type, response.body):
            for url in feed_links(response.body, response.url):
                if self.same_site(url):
                    yield self.request(url, callback=self.parse)
            return
        if isinstance(response, HtmlResponse) or (wall and isinstance(response, TextResponse)):
            page = self.apply_rules(response, extract_page(decode_html(response.body, content_type) or "<html></html>", response.url))
            if not wall and page.login_wall_reason:
                self.crawler.stats.inc_value("fcmon/login_wall/content")
            yield self.page_item(response, page, wall or page.login_wall_reason)
            if not wall:
                for link in self.links.extract_links(response):
                    if self.same_site(link.url):
                        yield self.request(link.url, callback=self.parse)
        elif wall:
            yield self.page_item(response, Page("", "", None, None, False, None), wall)
        else:
            self.crawler.stats.inc_value("fcmon/skipped_not_html")

    def parse_sitemap(self, response: Response) -> Iterator[scrapy.Request]:
        """Scrapy's sitemap parser on a sitemap or sitemap index (gzipped or not); pages outside the site or rules are skipped."""
        body = response.body
        if body[:2] == b"\x1f\x8b":
            body = gunzip(body, max_size=self.crawler.settings.getint("DOWNLOAD_MAXSIZE"))
        sitemap = Sitemap(body)
        for entry in sitemap:
            url = entry.get("loc", "")
            if sitemap.type == "sitemapindex":
                if self.same_site(url):
                    yield self.request(url, callback=self.parse, cb_kwargs={"sitemap": True})
            elif self.follows(url):
                yield self.request(url, callback=self.parse)

    def apply_rules(self, response: Response, page: Page) -> Page:
        """The source's css:/xpath: extraction rules override what extract_page found, field by field, where they match."""
        rules = self.source.extract
        if not rules or not isinstance(response, TextResponse):
            return page
        found: dict[str, str] = {}
        for field, rule in rules.items():
            how, _, expr = rule.partition(":")
            values = (response.css(expr) if how == "css" else response.xpath(expr)).getall()
            text = "\n".join(t for t in (" ".join(v.split()) if field != "text" else _block_text(v) for v in values) if t)
            if text:
                found[field] = text
        published = parse_datetime(found["published_at"]) if "published_at" in found else page.published_at
        return Page(title=found.get("title", page.title), text=found.get("text", page.text),
                    author=found.get("author", page.author), published_at=published or page.published_at,
                    is_post=page.is_post or "author" in found, login_wall_reason=page.login_wall_reason)

    def page_item(self, response: Response, page: Page, wall_reason: str | None) -> dict[str, Any]:
        return self.item(response, kind="forum_post" if page.is_post else "web_page", title=page.title, text=page.text,
                         author=page.author, published_at=page.published_at, wall_reason=wall_reason)


def _block_text(value: str) -> str:
    """Text of a matched node (markup removed) or of a matched string."""
    return html_text(value) if value.lstrip().startswith("<") else " ".join(value.split())
