"""Item pipeline: every collected item onto the bus topic fcm.collected, keyed by its source."""
from __future__ import annotations

import logging
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.utils.defer import deferred_from_coro

from crawlers.middlewares import fcmon_settings
from pipeline.bus import COLLECTED, Bus, open_bus
from pipeline.datadir import DataDir
from pipeline.errors import FcmonError
from pipeline.models import CollectedItem
from pipeline.settings import Settings

log = logging.getLogger(__name__)

FLUSH_EVERY = 100


class BusPipeline:
    """Validates each item as a CollectedItem and produces it; flushes every FLUSH_EVERY items and at close.

    A bus failure is counted in the stats (fcmon/bus_errors: items that may not have been written) and
    closes the crawl with reason "bus_error"; run_crawl reports it so the command exits non-zero.
    """

    def __init__(self, crawler: Crawler, settings: Settings, data_dir: DataDir):
        self.crawler, self.settings, self.data_dir = crawler, settings, data_dir
        self.bus: Bus | None = None
        self.unflushed = 0
        self.failed = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BusPipeline:
        data_dir = crawler.settings.get("FCMON_DATA_DIR")
        if not isinstance(data_dir, DataDir):
            raise FcmonError("FCMON_DATA_DIR is not set: the crawl has nowhere to put items",
                             "build the Scrapy settings with crawlers.settings.scrapy_settings(settings, data_dir, ...)")
        return cls(crawler, fcmon_settings(crawler), data_dir)

    def open_spider(self) -> None:
        try:
            self.bus = open_bus(self.settings, self.data_dir)
        except Exception as exc:
            self._fail("open", 0, exc)

    def process_item(self, item: Any) -> Any:
        collected = item if isinstance(item, CollectedItem) else CollectedItem.model_validate(item)
        if self.bus is None:
            self._fail("produce", 1, None)
            raise DropItem(f"bus unavailable: item {collected.id} not written")
        try:
            self.bus.produce(COLLECTED, collected.source_id, collected.model_dump_json().encode())
            self.unflushed += 1
            if self.unflushed >= FLUSH_EVERY:
                self._flush()
        except Exception as exc:
            self._fail("produce", self.unflushed + 1, exc)
            self.unflushed = 0
            raise DropItem(f"bus error: item {collected.id} not written") from exc
        return item

    def close_spider(self) -> None:
        if self.bus is None:
            return
        try:
            self._flush()
        except Exception as exc:
            self._fail("flush", self.unflushed, exc)
        try:
            self.bus.close()
        except Exception as exc:
            if not self.failed:
                self._fail("close", 0, exc)

    def _flush(self) -> None:
        assert self.bus is not None
        self.bus.flush()
        self.unflushed = 0

    def _fail(self, stage: str, items: int, exc: BaseException | None) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value("fcmon/bus_errors", max(items, 1))
        log.error("event=bus_error stage=%s topic=%s items=%d error=%r", stage, COLLECTED, items, str(exc) if exc else "bus not open")
        if not self.failed:
            self.failed = True
            try:
                engine = self.crawler.engine
            except RuntimeError:  # no crawl running (a unit test): nothing to close
                return
            if engine is not None and engine.spider is not None:
                deferred_from_coro(engine.close_spider_async(reason="bus_error"))
