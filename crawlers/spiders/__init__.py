"""Spiders: one per kind of public source (SPIDERS maps a sources-file kind to its spider)."""
from __future__ import annotations

from crawlers.spiders.base import SourceSpider
from crawlers.spiders.feeds import FeedSpider, RedditSpider, YouTubeSpider
from crawlers.spiders.site import SiteSpider
from crawlers.spiders.social import BlueskySpider, MastodonSpider, TelegramSpider

SPIDERS: dict[str, type[SourceSpider]] = {
    "feed": FeedSpider, "site": SiteSpider, "mastodon": MastodonSpider, "bluesky": BlueskySpider,
    "reddit": RedditSpider, "telegram": TelegramSpider, "youtube": YouTubeSpider,
}
