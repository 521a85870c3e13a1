"""Crawl progress on stderr, one line every few seconds and one at the end (enabled by FCMON_PROGRESS)."""
from __future__ import annotations

import sys
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import create_looping_call

INTERVAL_S = 2.0


def progress_line(stats: dict[str, Any]) -> str:
    return (f"crawl: pages={stats.get('response_received_count', 0)} items={stats.get('item_scraped_count', 0)} "
            f"refused={stats.get('fcmon/refused', 0) + stats.get('robotstxt/forbidden', 0)}")


class Progress:
    def __init__(self, crawler: Crawler, interval: float):
        self.crawler, self.interval = crawler, interval
        self.task: Any = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Progress:
        if not crawler.settings.getbool("FCMON_PROGRESS"):
            raise NotConfigured
        ext = cls(crawler, crawler.settings.getfloat("FCMON_PROGRESS_INTERVAL", INTERVAL_S))
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def report(self) -> None:
        assert self.crawler.stats is not None
        source = getattr(getattr(self.crawler, "spider", None), "source", None)
        suffix = f" source={source.id}" if source is not None else ""
        print(progress_line(self.crawler.stats.get_stats()) + suffix, file=sys.stderr, flush=True)

    def spider_opened(self) -> None:
        self.task = create_looping_call(self.report)
        self.task.start(self.interval, now=False)

    def spider_closed(self) -> None:
        if self.task is not None and self.task.running:
            self.task.stop()
        self.report()
