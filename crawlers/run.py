"""Run crawls in this process and summarise them: one source, several sources, or an ad-hoc site (--start-url).

All sources of one run share ONE CrawlerProcess (a Crawler per source, each with its own limits and stats).
Only one run per process: Scrapy runs on the Twisted reactor, which cannot be restarted once stopped, so a
second run in the same process raises FcmonError (`fcmon crawl` runs once; tests start a subprocess).
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.settings import Settings as ScrapySettings

from crawlers.settings import scrapy_settings
from crawlers.sources import SiteSource, SourceBase
from crawlers.spiders import SPIDERS
from guards.scope import host_in
from pipeline.datadir import DataDir
from pipeline.errors import FcmonError
from pipeline.models import Tasking
from pipeline.settings import Settings

_ran = False


@dataclass(frozen=True)
class Job:
    """One source crawled under one tasking."""
    source: SourceBase
    tasking: Tasking


def check_start_url(start_url: str, tasking: Tasking, source_id: str | None = None) -> None:
    """Refuse a start URL that is not http(s) or whose host lies outside the tasking's domains."""
    who = f"source {source_id}: " if source_id else ""
    parts = urlsplit(start_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FcmonError(f"{who}start URL {start_url!r} is not an http(s) URL", "pass --start-url http://host/ or https://host/")
    host = parts.hostname.lower()
    if tasking.scope.domains and not host_in(host, tasking.scope.domains):
        raise FcmonError(f"{who}host {host} is outside the domains of tasking {tasking.id} ({', '.join(tasking.scope.domains)})",
                         "crawl a site the tasking covers, or request a tasking whose scope includes it")


def check_job(job: Job) -> None:
    """Every host the source reads lies in the tasking's domains, and the source has something to fetch."""
    for url in job.source.scope_urls():
        check_start_url(url, job.tasking, job.source.id)
    if not job.source.start_urls(job.tasking) and not getattr(job.source, "sitemaps", None):
        raise FcmonError(f"source {job.source.id}: nothing to fetch under tasking {job.tasking.id}",
                         "name hashtags, search terms or authors in the source, or give the tasking keywords")


def summarise(stats: dict[str, Any], start_url: str, tasking_id: str, source: SourceBase | None = None) -> dict[str, Any]:
    prefix = "fcmon/refused/"
    skipped, failed = "fcmon/skipped/", "fcmon/fetch_failed/"
    summary = {"source": source.id, "kind": source.kind} if source is not None else {}  # type: ignore[attr-defined]
    return summary | {
        "start_url": start_url,
        "tasking_id": tasking_id,
        "requests": stats.get("fcmon/requests_sent", 0),  # past every check, handed to the HTTP client
        "responses": stats.get("downloader/response_count", 0),
        "items": stats.get("item_scraped_count", 0),
        "refused": {k[len(prefix):]: v for k, v in sorted(stats.items()) if k.startswith(prefix)},
        "robots_disallowed": stats.get("robotstxt/forbidden", 0),
        "login_walls": sum(v for k, v in stats.items() if k.startswith("fcmon/login_wall/")),
        "skipped": {k[len(skipped):]: v for k, v in sorted(stats.items()) if k.startswith(skipped)},
        "fetch_failed": {k[len(failed):]: v for k, v in sorted(stats.items()) if k.startswith(failed)},
        "parse_errors": stats.get("fcmon/parse_errors", 0),
        "not_modified": stats.get("fcmon/not_modified", 0),  # conditional requests answered 304 (the monitor's)
        "errors": stats.get("log_count/ERROR", 0),
        "bus_errors": stats.get("fcmon/bus_errors", 0),
        "finish_reason": stats.get("finish_reason", "unknown"),
        "elapsed_s": round(float(stats.get("elapsed_time_seconds", 0.0)), 2),
    }


def source_settings(base: dict[str, Any], job: Job) -> dict[str, Any]:
    """Scrapy settings of one source's crawler: the run's, with the source's own depth and page limits."""
    conf = {**base, "FCMON_TASKING": job.tasking, "LOG_INSTALL_ROOT_HANDLER": False}
    if job.source.depth_limit is not None:
        conf["DEPTH_LIMIT"] = job.source.depth_limit
    if job.source.page_limit is not None:
        conf["CLOSESPIDER_PAGECOUNT"] = job.source.page_limit
    return conf


def run_sources(settings: Settings, data_dir: DataDir, jobs: list[Job], progress: bool | None = None,
                overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Crawl every job in one CrawlerProcess, items onto fcm.collected; one summary per job (see summarise).

    progress: a stderr line every 2 s per source (default: when stderr is a terminal). overrides: extra Scrapy
    settings (the benchmark's). Only once per process.
    """
    global _ran
    if not jobs:
        raise FcmonError("no source to crawl", "enable a source in the sources file or name one")
    for job in jobs:
        check_job(job)
    if _ran:
        raise FcmonError("a crawl already ran in this process and the Twisted reactor cannot restart",
                         "run each crawl in its own process")
    _ran = True
    show = sys.stderr.isatty() if progress is None else progress
    base = {**scrapy_settings(settings, data_dir, None, progress=show), **(overrides or {})}
    # Logging stays as the application set it up: no Scrapy root handler, and the "scrapy" logger, which
    # Scrapy's logging config sets to DEBUG (and then logs its banner), at LOG_LEVEL.
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        process = CrawlerProcess({**base, "LOG_INSTALL_ROOT_HANDLER": False})
    finally:
        logging.disable(previous)
    logging.getLogger("scrapy").setLevel(base["LOG_LEVEL"])
    crawlers = []
    for n, job in enumerate(jobs):
        # at spider priority, so the runner's own settings, merged in by process.crawl(), do not replace the source's limits
        conf = ScrapySettings(source_settings(base, job), priority="spider")
        crawler = Crawler(SPIDERS[job.source.kind], conf, init_reactor=n == 0)  # type: ignore[attr-defined]
        process.crawl(crawler, source=job.source, tasking=job.tasking)
        crawlers.append(crawler)
    process.start()
    summaries = []
    for job, crawler in zip(jobs, crawlers):
        assert crawler.stats is not None
        urls = job.source.start_urls(job.tasking) or job.source.scope_urls()
        summaries.append(summarise(crawler.stats.get_stats(), urls[0], job.tasking.id, job.source))
    return summaries


def run_crawl(settings: Settings, data_dir: DataDir, tasking: Tasking, start_url: str,
              progress: bool | None = None) -> dict[str, Any]:
    """Crawl one public site (its host and port only) under `tasking`; returns the summary without source fields."""
    check_start_url(start_url, tasking)
    [summary] = run_sources(settings, data_dir, [Job(SiteSource.for_start_url(start_url), tasking)], progress)
    summary.pop("source")
    summary.pop("kind")
    return summary
