"""The one consumer loop: poll a batch, make its outcome durable, then commit; back off while that fails.

Used by every consumer that stores what it reads (the guard/index worker, the audit indexer), so all of
them commit only what is durable, survive a store outage without committing, and stop cleanly on SIGTERM.
"""
from __future__ import annotations

import itertools
import logging
import signal
import time
from typing import Any, Callable

from pipeline.bus import Bus, Consumer, Message

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.5, 1, 2, 4, 8, 15, 30)


class CommittingLoop:
    """Subclasses set `group`, `topics`, `batch_size` and implement `process(batch)` and `stats_dict()`.

    give_up_after: attempts before a failing batch raises in until-idle mode (a service retries forever).
    progress_every_s: the least time between progress reports.
    lag_every_s: the least time between lag readings in them (on Kafka a reading asks the broker for every
    partition's end offset and the group's commits).
    """
    bus: Bus
    group: str
    topics: list[str]
    batch_size: int
    give_up_after = 1
    progress_every_s = 0.0
    lag_every_s = 10.0
    event_prefix = ""

    def __init__(self, progress: Callable[[dict[str, Any]], None] | None = None):
        self.progress = progress
        self.stopping = False

    def stop(self, *_: object) -> None:
        self.stopping = True

    def process(self, batch: list[Message]) -> None:
        """Make the batch's outcome durable, or raise (nothing is committed then)."""
        raise NotImplementedError

    def stats_dict(self) -> dict[str, Any]:
        """Counts so far, for progress lines."""
        raise NotImplementedError

    def run_loop(self, *, until_idle: bool) -> None:
        """Process batches until idle (until_idle) or until SIGTERM/SIGINT; each batch is committed when durable."""
        consumer = self.bus.consumer(self.group, self.topics)
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        last_report, lag, lag_read = 0.0, None, 0.0
        try:
            while not self.stopping:
                polled: list[list[Message]] = []
                if not self._until_done(lambda: polled.append(consumer.poll(self.batch_size, timeout_s=0.2 if until_idle else 1.0)),
                                        consumer, until_idle):
                    break  # stopped while the bus was down
                batch = polled[-1]
                if not batch:
                    if until_idle and consumer.lag() == 0:
                        break
                    continue
                if not self._until_done(lambda: self.process(batch), consumer, until_idle):
                    break  # stopped while failing: the batch stays uncommitted and is redelivered
                if not self._until_done(consumer.commit, consumer, until_idle):
                    break
                if self.progress and time.monotonic() - last_report >= self.progress_every_s:
                    last_report = time.monotonic()
                    if lag is None or last_report - lag_read >= self.lag_every_s:
                        lag, lag_read = self._lag(consumer), last_report
                    self.progress({**self.stats_dict(), "lag": lag})
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            consumer.close()

    @staticmethod
    def _lag(consumer: Consumer) -> int | str:
        """For the progress line only: "?" while the bus cannot answer (the loop goes on)."""
        try:
            return consumer.lag()
        except Exception as exc:
            log.warning("event=lag_unknown error=%r", str(exc))
            return "?"

    def _until_done(self, action: Callable[[], None], consumer: Consumer, until_idle: bool) -> bool:
        """Run action (a poll, a batch, a commit) until it succeeds, backing off while staying in the group; False when
        stopped meanwhile."""
        for attempt in itertools.count(1):
            try:
                action()
                if attempt > 1:
                    log.warning("event=%sstore_recovered attempts=%d", self.event_prefix, attempt)
                return True
            except Exception as exc:  # the store or the bus is down: keep the batch uncommitted and try again
                if until_idle and attempt >= self.give_up_after:
                    raise
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S)) - 1]
                log.warning("event=%sbatch_failed attempt=%d retry_in_s=%s error=%r", self.event_prefix, attempt, delay, str(exc))
                consumer.wait(delay)
                if self.stopping:
                    return False
        raise AssertionError("unreachable")
