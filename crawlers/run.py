"""Run one crawl in this process and summarise it.

One crawl per process: Scrapy runs on the Twisted reactor, which cannot be restarted once stopped, so a
second run_crawl() in the same process raises FcmonError. Run each crawl in its own process (`fcmon crawl`
does; tests start a subprocess).
"""
from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import urlsplit

from scrapy.crawler import CrawlerProcess

from crawlers.settings import scrapy_settings
from crawlers.spiders.site import SiteSpider
from guards.scope import host_in
from pipeline.datadir import DataDir
from pipeline.errors import FcmonError
from pipeline.models import Tasking
from pipeline.settings import Settings

_ran = False


def check_start_url(start_url: str, tasking: Tasking) -> None:
    """Refuse a start URL that is not http(s) or whose host lies outside the tasking's domains."""
    parts = urlsplit(start_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FcmonError(f"start URL {start_url!r} is not an http(s) URL", "pass --start-url http://host/ or https://host/")
    host = parts.hostname.lower()
    if tasking.scope.domains and not host_in(host, tasking.scope.domains):
        raise FcmonError(f"host {host} is outside the domains of tasking {tasking.id} ({', '.join(tasking.scope.domains)})",
                         "crawl a site the tasking covers, or request a tasking whose scope includes it")


def summarise(stats: dict[str, Any], start_url: str, tasking_id: str) -> dict[str, Any]:
    prefix = "fcmon/refused/"
    return {
        "start_url": start_url,
        "tasking_id": tasking_id,
        "requests": stats.get("fcmon/requests_sent", 0),  # past every check, handed to the HTTP client
        "responses": stats.get("downloader/response_count", 0),
        "items": stats.get("item_scraped_count", 0),
        "refused": {k[len(prefix):]: v for k, v in sorted(stats.items()) if k.startswith(prefix)},
        "robots_disallowed": stats.get("robotstxt/forbidden", 0),
        "login_walls": sum(v for k, v in stats.items() if k.startswith("fcmon/login_wall/")),
        "parse_errors": stats.get("fcmon/parse_errors", 0),
        "errors": stats.get("log_count/ERROR", 0),
        "bus_errors": stats.get("fcmon/bus_errors", 0),
        "finish_reason": stats.get("finish_reason", "unknown"),
    }


def run_crawl(settings: Settings, data_dir: DataDir, tasking: Tasking, start_url: str,
              progress: bool | None = None) -> dict[str, Any]:
    """Crawl one public site under `tasking`, items onto fcm.collected; returns the summary (see summarise).

    progress: a stderr line every 2 s (default: when stderr is a terminal). Only once per process.
    """
    global _ran
    check_start_url(start_url, tasking)
    if _ran:
        raise FcmonError("a crawl already ran in this process and the Twisted reactor cannot restart",
                         "run each crawl in its own process")
    _ran = True
    show = sys.stderr.isatty() if progress is None else progress
    conf = scrapy_settings(settings, data_dir, tasking, progress=show)
    # Logging stays as the application set it up: no Scrapy root handler, and the "scrapy" logger, which
    # Scrapy's logging config sets to DEBUG (and then logs its banner), at LOG_LEVEL.
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        process = CrawlerProcess({**conf, "LOG_INSTALL_ROOT_HANDLER": False})
    finally:
        logging.disable(previous)
    logging.getLogger("scrapy").setLevel(conf["LOG_LEVEL"])
    crawler = process.create_crawler(SiteSpider)
    process.crawl(crawler, start_url=start_url, tasking=tasking)
    process.start()
    assert crawler.stats is not None
    return summarise(crawler.stats.get_stats(), start_url, tasking.id)
