"""The Bus port: topics of keyed JSON messages, consumer groups with committed offsets.

Delivery is at least once: a consumer commits only after what it did with a batch is durable,
and a restarted consumer resumes from the last commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pipeline.datadir import DataDir
from pipeline.errors import FcmonError
from pipeline.settings import Settings

COLLECTED = "fcm.collected"
DECISIONS = "fcm.decisions"
REJECTED = "fcm.rejected"
AUDIT = "fcm.audit"
DEAD_LETTER = "fcm.dead-letter"
DAY_MS = 24 * 3600 * 1000
# How long a topic keeps a message, on Kafka and on the local bus alike: raw input (including content the guards
# later reject) only a week; the audit mirror for ever.
RETENTION_MS = {COLLECTED: 7 * DAY_MS, DECISIONS: 30 * DAY_MS, REJECTED: 30 * DAY_MS, AUDIT: -1, DEAD_LETTER: 7 * DAY_MS}


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes


class Consumer(Protocol):
    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        """Next messages after this consumer's position (at most max_records, waiting up to timeout_s)."""

    def commit(self) -> None:
        """Make the position after the last polled message durable for the group."""

    def lag(self) -> int:
        """Messages in the subscribed topics that the group has not committed."""

    def wait(self, seconds: float) -> None:
        """Take no messages for `seconds` but stay a live member of the group (back-off while a store is down)."""

    def close(self) -> None:
        """Release the consumer without committing."""


class Bus(Protocol):
    def produce(self, topic: str, key: str | None, value: bytes) -> None:
        """Append one message; it is durable once flush() returns."""

    def flush(self) -> None:
        """Block until every produced message is durable, or raise."""

    def consumer(self, group: str, topics: list[str]) -> Consumer:
        """A member of a consumer group reading the given topics."""

    def close(self) -> None:
        """Flush and release connections."""


def open_bus(settings: Settings, data_dir: DataDir) -> Bus:
    if settings.bus == "local":
        from pipeline.bus.local import LocalBus
        return LocalBus(data_dir.bus_db)
    if settings.bus == "kafka":
        from pipeline.bus.kafka import KafkaBus
        return KafkaBus(settings)
    raise FcmonError(f"bus backend {settings.bus!r} is not available in this version", "set FCMON_BUS=local or kafka")
