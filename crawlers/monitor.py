"""`fcmon monitor run`: every enabled source polled on its own interval, all in one process, bound to its tasking.

Design: one long-lived Twisted reactor and a Scrapy CrawlerRunner; each poll of a source is a fresh Crawler (the
source's spider, the public-only middlewares, robots.txt, the bus pipeline: `fcmon crawl`'s machinery unchanged),
started when the source is due, and the poll's outcome is that crawler's stats. Rejected designs: a CrawlerProcess
per round (the reactor cannot restart in one process, and a round waits for its slowest source); a subprocess per
poll (starting Python and Scrapy costs more CPU than an idle poll itself); one long-lived crawler with scheduled
requests (a crawler's limits, stats, dupe filter and finish reason are per crawl, and the per-source cursor and page
limits would have to be untangled request by request). What the crawlers share is the HostBudget (one request budget
per host, Retry-After honoured: crawlers/budget.py) and the cursors in monitor.db (crawlers/cursors.py).

Collection is bound to its tasking: it is read again every tick (1 s); a source starts collecting only while its
tasking is active, and stops (a running poll is stopped too) as soon as it is revoked or expires. Each start and
stop is an audit entry (`monitor.start`, `monitor.stop`: source, tasking, why), so the log holds every period of
collection. SIGTERM or SIGINT stops the polls cleanly (their items flushed to the bus, their cursors saved), closes
every period and exits.
"""
from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

from scrapy import signals
from scrapy.crawler import Crawler, CrawlerRunner
from scrapy.settings import Settings as ScrapySettings
from scrapy.utils.defer import deferred_from_coro

from crawlers.budget import BUDGET_ORDER, RATE_LIMITED, HostBudget
from crawlers.cursors import Cursor, CursorStore
from crawlers.run import Job, check_job, source_settings, summarise
from crawlers.settings import scrapy_settings
from crawlers.sources import SourceBase
from crawlers.spiders import SPIDERS
from pipeline.app import App
from pipeline.errors import FcmonError, NotFound
from pipeline.models import Tasking, utcnow

log = logging.getLogger(__name__)

TICK_S = 0.5
REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"


def interval_of(source: SourceBase, app: App) -> float:
    interval = source.interval or app.settings.monitor_interval
    if interval < app.settings.monitor_min_interval:
        raise FcmonError(f"source {source.id}: interval {interval:g} s is below the polite minimum "
                         f"monitor_min_interval ({app.settings.monitor_min_interval:g} s)",
                         "raise the source's `interval` (or monitor_interval); sites and platforms rate-limit eager pollers")
    return interval


@dataclass
class Poll:
    """One running poll: its crawler, its cursor, the items it got onto the bus."""
    crawler: Crawler
    cursor: Cursor
    started: float
    started_at: str
    sightings: list[dict[str, Any]] = field(default_factory=list)
    stop_requested: bool = False
    stopping: bool = False

    def stop(self) -> None:
        """Stop the poll gracefully (its items flushed to the bus). Scrapy's stop does nothing to a crawler whose engine
        is still starting, and that crawler would then never end: the request stands and is retried each tick."""
        self.stop_requested = True
        engine = getattr(self.crawler, "_engine", None)
        if not self.stopping and self.crawler.crawling and engine is not None and engine.running:
            self.stopping = True
            deferred_from_coro(self.crawler.stop_async())

    def item_scraped(self, item: dict[str, Any]) -> None:  # after the bus pipeline took it
        published = item.get("published_at")
        self.sightings.append({"id": item["id"], "published_at": published.isoformat() if published else None,
                               "first_seen": item["fetched_at"].isoformat()})


@dataclass
class Watched:
    """A source under the monitor: its schedule, its collection period, its status as `monitor status` shows it."""
    source: SourceBase
    tasking_id: str
    interval: float
    next_due: float = 0.0
    collecting_since: str | None = None
    poll: Poll | None = None
    failures: int = 0
    polls: int = 0
    period_items: int = 0
    period_polls: int = 0
    status: dict[str, Any] = field(default_factory=dict)


class Monitor:
    def __init__(self, app: App, jobs: list[tuple[SourceBase, str]], actor: str, *, once: bool, sources_file: str,
                 progress: Callable[[str], None] = lambda line: None):
        self.app, self.actor, self.once, self.sources_file, self.progress = app, actor, once, sources_file, progress
        settings = app.settings
        self.watched = [Watched(source, tasking_id, interval_of(source, app)) for source, tasking_id in jobs]
        self.store = CursorStore(app.data_dir.monitor_db)
        self.budget = HostBudget(settings.monitor_host_delay, settings.monitor_retry_after_default,
                                 settings.monitor_retry_after_max)
        self.stopping: str | None = None
        self.failure: Exception | None = None
        self.runner: CrawlerRunner | None = None
        self.base: dict[str, Any] = {}
        before = {s["source"]: s for s in self.store.status()}  # counts carry over a restart
        for w in self.watched:
            w.status = before.get(w.source.id, {})
            w.status = self.store_status(w, state="starting")

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> list[dict[str, Any]]:
        """Poll until SIGTERM/SIGINT (or, with once, until every source with an active tasking was polled once)."""
        from scrapy.utils.reactor import install_reactor
        install_reactor(REACTOR)
        from twisted.internet import reactor, task

        base = scrapy_settings(self.app.settings, self.app.data_dir, None, progress=False)
        middlewares = {**base["DOWNLOADER_MIDDLEWARES"], "crawlers.budget.HostBudgetMiddleware": BUDGET_ORDER}
        self.base = {**base, "DOWNLOADER_MIDDLEWARES": middlewares, "FCMON_HOST_BUDGET": self.budget,
                     "FCMON_DEFAULT_PAGES": self.app.settings.monitor_pages, "LOG_INSTALL_ROOT_HANDLER": False,
                     # a 429/503 pauses the host (the budget) and fails the poll; it is not retried at once
                     "RETRY_HTTP_CODES": [c for c in ScrapySettings().getlist("RETRY_HTTP_CODES") if int(c) not in RATE_LIMITED]}
        logging.getLogger("scrapy").setLevel(base["LOG_LEVEL"])
        self.runner = CrawlerRunner({"LOG_INSTALL_ROOT_HANDLER": False, "TWISTED_REACTOR": REACTOR})
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: reactor.callFromThread(self.shutdown, "monitor stopped (signal)"))
        ticker = task.LoopingCall(self.tick)
        ticker.start(TICK_S, now=True)
        reactor.run(installSignalHandlers=False)
        self.store.close()
        if self.failure is not None:
            raise FcmonError(f"the monitor stopped: {self.failure}",
                             "fix the cause (`fcmon audit verify` if the audit log refused an entry) and start it again")
        return [w.status for w in self.watched]

    def tick(self) -> None:
        """One look at every source; an error here (the audit log refusing an entry) stops the monitor: fail closed."""
        for w in self.watched:
            if w.poll is not None and w.poll.stop_requested:
                w.poll.stop()
        if self.stopping:
            return
        try:
            self.look()
        except Exception as exc:
            log.error("event=monitor_failed error=%r", f"{type(exc).__name__}: {exc}")
            self.failure = exc
            self.shutdown(f"error: {exc}")

    def look(self) -> None:
        now, taskings = time.monotonic(), {}
        for w in self.watched:
            if w.tasking_id not in taskings:
                taskings[w.tasking_id] = self.tasking_status(w.tasking_id)
            tasking, status = taskings[w.tasking_id]
            if status != "active":
                self.end_period(w, f"tasking {status}")
                if w.status.get("state") != f"tasking {status}":
                    self.progress(f"monitor: source={w.source.id} not collecting: tasking {w.tasking_id} is {status}")
                    w.status = self.store_status(w, state=f"tasking {status}")
                continue
            if w.collecting_since is None:
                self.begin_period(w)
            if w.poll is None and now >= w.next_due and not (self.once and w.polls):
                self.start_poll(w, tasking, now)
        if self.once and all(w.poll is None and (w.polls or w.collecting_since is None) for w in self.watched):
            self.shutdown("--once: every source polled")

    def tasking_status(self, tasking_id: str) -> tuple[Tasking | None, str]:
        try:
            tasking = self.app.state.tasking(tasking_id)
        except NotFound:
            return None, "missing"
        return tasking, tasking.status(utcnow())

    # -- collection periods (audited) --------------------------------------------------------------

    def begin_period(self, w: Watched) -> None:
        w.collecting_since, w.period_items, w.period_polls = utcnow().isoformat(), 0, 0
        self.app.audit.append("monitor.start", self.actor, {
            "source": w.source.id, "kind": w.source.kind, "tasking_id": w.tasking_id, "why": "tasking active",  # type: ignore[attr-defined]
            "interval_s": w.interval, "sources_file": self.sources_file})
        self.progress(f"monitor: source={w.source.id} collecting under {w.tasking_id} every {w.interval:g} s")
        w.status = self.store_status(w, state="collecting")

    def end_period(self, w: Watched, why: str) -> None:
        if w.poll is not None:
            w.poll.stop()  # the poll closes (items flushed to the bus) and reports in poll_done
        if w.collecting_since is None:
            return
        self.app.audit.append("monitor.stop", self.actor, {
            "source": w.source.id, "tasking_id": w.tasking_id, "why": why, "since": w.collecting_since,
            "polls": w.period_polls, "items": w.period_items})
        self.progress(f"monitor: source={w.source.id} stopped collecting under {w.tasking_id}: {why}")
        w.collecting_since = None
        w.status = self.store_status(w, state=why)

    # -- polls --------------------------------------------------------------------------------------

    def start_poll(self, w: Watched, tasking: Tasking, now: float) -> None:
        assert self.runner is not None
        urls = w.source.start_urls(tasking) or w.source.scope_urls()
        paused = max((self.budget.paused_until(u) for u in urls), default=0.0)
        if paused > now:  # the host asked to be left alone (Retry-After): wait for it instead of queueing requests
            w.next_due = paused
            return
        cursor = self.store.cursor(w.source.id)
        conf = ScrapySettings({**source_settings(self.base, Job(w.source, tasking)), "FCMON_CURSOR": cursor}, priority="spider")
        crawler = Crawler(SPIDERS[w.source.kind], conf)  # type: ignore[attr-defined]
        poll = Poll(crawler, cursor, now, utcnow().isoformat())
        crawler.signals.connect(poll.item_scraped, signal=signals.item_scraped)
        w.poll, w.status["late_s"] = poll, round(max(0.0, now - w.next_due), 3) if w.next_due else 0.0
        done = self.runner.crawl(crawler, source=w.source, tasking=tasking)
        done.addBoth(lambda result: self.poll_done(w, poll, tasking, result))

    def poll_done(self, w: Watched, poll: Poll, tasking: Tasking, result: Any) -> None:
        now = time.monotonic()
        w.poll, w.polls = None, w.polls + 1
        stats = poll.crawler.stats.get_stats() if poll.crawler.stats else {}
        urls = w.source.start_urls(tasking) or w.source.scope_urls()
        summary = summarise(stats, urls[0], tasking.id, w.source)
        error = poll_error(stats, summary, result)
        if not summary["bus_errors"]:  # what reached the bus is seen; validators only when the poll finished
            self.store.save(w.source.id, poll.cursor, poll.sightings, complete=error is None and summary["finish_reason"] == "finished",
                            at=utcnow())
        w.period_items, w.period_polls = w.period_items + len(poll.sightings), w.period_polls + 1
        if error is None:
            w.failures = 0
            w.next_due = poll.started + w.interval
        else:
            w.failures += 1
            w.next_due = now + min(w.interval * 2 ** w.failures, self.app.settings.monitor_backoff_max)
            log.warning("event=poll_failed source=%s error=%r failures=%d", w.source.id, error, w.failures)
        w.next_due = max([w.next_due, *(self.budget.paused_until(u) for u in urls)])
        w.status = self.store_status(w, poll=poll, summary=summary, error=error, now=now)
        self.progress(f"monitor: source={w.source.id} polled items={len(poll.sightings)} not_modified="
                      f"{stats.get('fcmon/not_modified', 0)} error={error or 'none'} next_in={max(0.0, w.next_due - now):.0f}s")
        self.maybe_exit()

    def store_status(self, w: Watched, *, state: str | None = None, poll: Poll | None = None,
                     summary: dict[str, Any] | None = None, error: str | None = None, now: float | None = None) -> dict[str, Any]:
        s = {"source": w.source.id, "kind": w.source.kind, "tasking_id": w.tasking_id, "interval_s": w.interval,  # type: ignore[attr-defined]
             "state": "collecting", "last_poll": None, "last_success": None, "polls": 0, "errors": 0, "new_items_last": 0,
             "new_items": 0, "not_modified": 0, "consecutive_errors": 0, "last_error": None, "next_poll": None,
             "collecting_since": None, "late_s": 0.0, **w.status}
        s.update({"consecutive_errors": w.failures, "collecting_since": w.collecting_since})
        if state is not None:
            s["state"] = state
        if poll is not None and summary is not None and now is not None:
            s.update({"last_poll": poll.started_at, "new_items_last": len(poll.sightings), "polls": s["polls"] + 1,
                      "new_items": s["new_items"] + len(poll.sightings),
                      "not_modified": s["not_modified"] + int(summary.get("not_modified", 0)),
                      "requests": summary["requests"], "last_error": error if error else s["last_error"],
                      "next_poll": (utcnow() + timedelta(seconds=max(0.0, w.next_due - now))).isoformat()})
            if error is None:
                s["last_success"] = poll.started_at
            else:
                s["errors"] += 1
            s["state"] = "collecting" if w.collecting_since else s["state"]
        self.store.put_status(w.source.id, s)
        return s

    # -- stopping -----------------------------------------------------------------------------------

    def shutdown(self, why: str) -> None:
        if self.stopping:
            return
        self.stopping = why
        self.progress(f"monitor: stopping ({why})")
        for w in self.watched:
            if w.poll is not None:
                w.poll.stop()
        self.maybe_exit()

    def maybe_exit(self) -> None:
        if not self.stopping or any(w.poll is not None for w in self.watched):
            return
        for w in self.watched:
            try:
                self.end_period(w, self.stopping)
            except Exception as exc:  # the process still exits; the period's start is in the log, its end is not
                log.error("event=monitor_stop_unaudited source=%s error=%r", w.source.id, str(exc))
                self.failure = self.failure or exc
        from twisted.internet import reactor
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]


def poll_error(stats: dict[str, Any], summary: dict[str, Any], result: Any) -> str | None:
    """Why a poll failed, or None: its start URLs not fetched, the host rate-limiting, the bus, or the crawl itself."""
    if hasattr(result, "getErrorMessage"):
        return f"crawl failed: {result.getErrorMessage()}"
    if summary["bus_errors"]:
        return f"{summary['bus_errors']} item(s) not written to the bus"
    if stats.get("fcmon/rate_limited"):
        return "rate limited (429/503): the host is paused for its Retry-After"
    if stats.get("fcmon/start_failed"):
        failed = ", ".join(f"{k}={v}" for k, v in summary["fetch_failed"].items()) or "refused"
        return f"start URL not fetched ({failed})"
    if summary["finish_reason"] not in ("finished", "shutdown"):
        return f"crawl ended: {summary['finish_reason']}"
    return None


def check_jobs(app: App, jobs: list[tuple[SourceBase, str]]) -> None:
    """Every source's scope and interval checked before anything runs (a tasking that is not active only waits)."""
    for source, tasking_id in jobs:
        interval_of(source, app)
        try:
            check_job(Job(source, app.state.tasking(tasking_id)))
        except NotFound:
            raise FcmonError(f"source {source.id}: tasking {tasking_id} does not exist",
                             "name an existing tasking (`fcmon tasking list`)") from None
