"""Spiders for public social-media endpoints that need no account: Mastodon, Bluesky, Telegram channel previews."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scrapy.http import Response

from crawlers.posts import bluesky_posts, json_document, mastodon_next, mastodon_posts, telegram_posts
from crawlers.spiders.base import SourceSpider


def json_body(spider: SourceSpider, response: Response) -> Any:
    """The answer's JSON, or None (counted as fcmon/parse_errors) when it is not JSON."""
    try:
        return json_document(response.body)
    except ValueError as exc:  # not JSON, not UTF-8, or nested too deeply
        spider.crawler.stats.inc_value("fcmon/parse_errors")
        spider.logger.warning("event=parse_error source=%s url=%s error=%r", spider.source.id, response.url, f"malformed JSON: {exc}")
        return None


class MastodonSpider(SourceSpider):
    """The instance's public REST API: /api/v1/timelines/public and /api/v1/timelines/tag/NAME."""

    name = "mastodon"
    item_kind = "mastodon_post"

    def parse_response(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if self.walled(response):
            return
        data = json_body(self, response)
        if data is None:
            return
        parsed = mastodon_posts(data, self.source.instance)
        link = (response.headers.get("Link") or b"").decode("latin-1")
        parsed.next_url = mastodon_next(link, response.url) if link else None
        reached = self.unseen(parsed)
        yield from self.post_items(response, parsed)
        yield from self.next_page(response, parsed, reached)


class BlueskySpider(SourceSpider):
    """The public AppView: app.bsky.feed.searchPosts and app.bsky.feed.getAuthorFeed, no account and no token; older
    pages by the answer's cursor."""

    name = "bluesky"
    item_kind = "bluesky_post"

    def parse_response(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if self.walled(response):
            return
        data = json_body(self, response)
        if data is not None:
            parsed = bluesky_posts(data, self.source.web, response.url)
            reached = self.unseen(parsed)
            yield from self.post_items(response, parsed)
            yield from self.next_page(response, parsed, reached)


class TelegramSpider(SourceSpider):
    """Public channel previews at t.me/s/NAME (the page Telegram shows anyone without an account)."""

    name = "telegram"
    item_kind = "telegram_post"

    def parse_response(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if self.walled(response):
            return
        parsed = telegram_posts(response.text, response.url)
        reached = self.unseen(parsed)
        yield from self.post_items(response, parsed)
        yield from self.next_page(response, parsed, reached)
