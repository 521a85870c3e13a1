"""Feed spiders: RSS/Atom feeds with their linked articles, Reddit subreddit and search RSS, YouTube channel feeds."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from scrapy.http import HtmlResponse, Response
from twisted.python.failure import Failure

from crawlers.extract import decode_html, extract_page
from crawlers.posts import Post, feed_posts
from crawlers.spiders.base import SourceSpider
from guards.scope import host_in


class FeedSpider(SourceSpider):
    """Each entry of each feed becomes a feed_entry; with follow_articles, the linked article (on an allowed host) is
    fetched and its main text replaces the entry's summary; an article that cannot be fetched (404, a timeout, a
    refusal) leaves the entry with its summary, as fetched from the feed. Older pages: RFC 5005 rel="next", or
    WordPress's ?paged=N."""

    name = "feed"
    item_kind = "feed_entry"

    def article_hosts(self) -> list[str]:
        return self.source.allowed_domains or sorted({(urlsplit(u).hostname or "").lower() for u in self.source.urls})

    reddit = False

    def parse_response(self, response: Response, entry: Post | None = None, feed: Response | None = None,
                       **kwargs: Any) -> Iterator[Any]:
        if entry is not None:
            yield self.article_item(response, entry)
            return
        if self.walled(response):
            return
        parsed = feed_posts(response.body, response.url, response.meta.get("fcmon_page", 1), reddit=self.reddit)
        self.count_skipped(parsed)
        reached = self.unseen(parsed)
        follow = getattr(self.source, "follow_articles", False)
        hosts = self.article_hosts() if follow else []
        for post in parsed.posts:
            if follow and host_in((urlsplit(post.url).hostname or "").lower(), hosts):
                yield self.request(post.url, callback=self.parse, errback=self.article_failed,
                                   cb_kwargs={"entry": post, "feed": response})
            else:
                yield self.post_item(response, post)
        yield from self.next_page(response, parsed, reached)

    def article_failed(self, failure: Failure) -> Iterator[Any]:
        """The article could not be fetched: counted, and the entry kept with its summary and the feed's provenance."""
        self.failed(failure)
        kwargs = failure.request.cb_kwargs  # type: ignore[attr-defined]
        yield self.post_item(kwargs["feed"], kwargs["entry"])

    def article_item(self, response: Response, entry: Post) -> dict[str, Any]:
        """The entry with its article's main text; a walled article keeps the wall verdict (the guards reject it)."""
        content_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
        page = extract_page(decode_html(response.body, content_type), response.url) if isinstance(response, HtmlResponse) else None
        wall = response.meta.get("fcmon_login_wall") or (page.login_wall_reason if page else None)
        if self.cursor is not None:
            self.cursor.collected(entry.ident)
        return self.item(response, kind=self.item_kind, title=(page.title if page else "") or entry.title,
                         text=(page.text if page and not wall else "") or entry.text,
                         author=entry.author or (page.author if page else None),
                         published_at=entry.published_at or (page.published_at if page else None),
                         wall_reason=wall, handle=entry.handle, engagement=entry.engagement)


class RedditSpider(FeedSpider):
    """Subreddit and search RSS (Atom): each entry is a reddit_post with its text; Reddit pages themselves are not fetched."""

    name = "reddit"
    item_kind = "reddit_post"
    reddit = True  # older pages: the listing with after=<last entry>


class YouTubeSpider(FeedSpider):
    """Channel feeds (/feeds/videos.xml?channel_id=): each video with its description, views and rating count."""

    name = "youtube"
    item_kind = "youtube_video"
