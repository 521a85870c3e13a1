"""The one place fcmon's Settings become Scrapy settings, with every component and its order."""
from __future__ import annotations

from typing import Any

from crawlers.middlewares import LOGIN_WALL_ORDER, PROVENANCE_ORDER, PUBLIC_ONLY_ORDER
from crawlers.traps import TRAP_ORDER
from pipeline.datadir import DataDir
from pipeline.models import Tasking
from pipeline.settings import Settings

AUTOTHROTTLE_MAX_DELAY = 10.0


def scrapy_settings(settings: Settings, data_dir: DataDir | None = None, tasking: Tasking | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """Scrapy settings for one crawl: robots.txt obeyed, no cookies or auth, bounded in depth, pages, bytes and time."""
    delay = settings.crawl_download_delay
    return {
        "FCMON_SETTINGS": settings,
        "FCMON_DATA_DIR": data_dir,
        "FCMON_TASKING": tasking,
        "FCMON_PROGRESS": progress,
        "ROBOTSTXT_OBEY": True,
        "COOKIES_ENABLED": False,
        "USER_AGENT": settings.user_agent,
        "DOWNLOAD_DELAY": delay,
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": delay,
        "AUTOTHROTTLE_MAX_DELAY": max(AUTOTHROTTLE_MAX_DELAY, delay),
        "CONCURRENT_REQUESTS_PER_DOMAIN": settings.crawl_concurrency_per_domain,
        "DEPTH_LIMIT": settings.crawl_depth_limit,
        "CLOSESPIDER_PAGECOUNT": settings.crawl_page_limit,
        "DOWNLOAD_MAXSIZE": settings.crawl_max_bytes,  # Scrapy applies it to the decompressed body too
        "DOWNLOAD_WARNSIZE": max(1024, settings.crawl_max_bytes // 2),
        "DOWNLOAD_TIMEOUT": settings.crawl_timeout,
        "RETRY_TIMES": 2,
        "REDIRECT_MAX_TIMES": 5,
        "DUPEFILTER_CLASS": "scrapy.dupefilters.RFPDupeFilter",
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware": None,
            "scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None,
            "crawlers.middlewares.LoginWallMiddleware": LOGIN_WALL_ORDER,
            "crawlers.traps.CrawlTrapMiddleware": TRAP_ORDER,
            "crawlers.middlewares.PublicOnlyMiddleware": PUBLIC_ONLY_ORDER,
            "crawlers.middlewares.ProvenanceMiddleware": PROVENANCE_ORDER,
        },
        "ITEM_PIPELINES": {"crawlers.pipelines.BusPipeline": 900},
        "EXTENSIONS": {"crawlers.extensions.Progress": 500},
        "LOG_LEVEL": "WARNING",
        "LOGSTATS_INTERVAL": 0,
        "TELNETCONSOLE_ENABLED": False,
        "REMOTE_CONTROL_ENABLED": False,  # Scrapy's code-executing HTTP control server: never in a collection crawl
        "TWISTED_DNS_RESOLVER": "crawlers.resolver.PublicOnlyResolver",  # connect-time answers checked too (rebinding)
    }
