"""Local bus: an append-only SQLite log per topic, with consumer-group offsets, in the data directory."""
from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from pipeline.bus import RETENTION_MS, Message
from pipeline.sqlite import Transaction, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    topic TEXT NOT NULL, offset INTEGER NOT NULL, key TEXT, value BLOB NOT NULL, produced_at REAL NOT NULL,
    PRIMARY KEY (topic, offset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (grp, topic));
"""


log = logging.getLogger(__name__)
EXPIRE_EVERY_S = 600


class LocalBus:
    """Messages older than their topic's retention (RETENTION_MS, as on Kafka) are deleted when the bus opens and at
    most every EXPIRE_EVERY_S on a flush: content the guards rejected does not stay on the local bus either."""

    def __init__(self, path: Path):
        self.conn = connect(path)
        self.conn.executescript(SCHEMA)
        self._pending: list[tuple[str, str | None, bytes]] = []
        self._expired_at = 0.0
        self.expire()

    @staticmethod
    def _next_offset(tx: sqlite3.Connection, topic: str) -> int:
        """After the last message, and never below a group's committed position: expired messages leave no gap
        that new ones could fill unseen."""
        (last,) = tx.execute("SELECT coalesce(max(offset), -1) FROM messages WHERE topic = ?", (topic,)).fetchone()
        (committed,) = tx.execute("SELECT coalesce(max(next_offset), 0) FROM offsets WHERE topic = ?", (topic,)).fetchone()
        return max(last + 1, committed)

    def expire(self, now: float | None = None) -> int:
        """Delete the messages past their topic's retention, read or not (as Kafka does); returns how many."""
        now = time.time() if now is None else now
        deleted = 0
        with Transaction(self.conn) as tx:
            for topic, retention_ms in RETENTION_MS.items():
                if retention_ms < 0:
                    continue
                (unread,) = tx.execute(
                    "SELECT count(*) FROM messages WHERE topic = ? AND produced_at < ? AND offset >= "
                    "coalesce((SELECT min(next_offset) FROM offsets WHERE topic = ?), 0)",
                    (topic, now - retention_ms / 1000, topic)).fetchone()
                gone = tx.execute("DELETE FROM messages WHERE topic = ? AND produced_at < ?",
                                  (topic, now - retention_ms / 1000)).rowcount
                if gone:
                    log.log(logging.WARNING if unread else logging.INFO, "event=bus_expired topic=%s deleted=%d unread=%d "
                            "retention_days=%g", topic, gone, unread, retention_ms / 86_400_000)
                deleted += gone
        self._expired_at = now
        return deleted

    def produce(self, topic: str, key: str | None, value: bytes) -> None:
        self._pending.append((topic, key, value))
        if len(self._pending) >= 1000:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        now = time.time()
        with Transaction(self.conn) as tx:
            next_offsets: dict[str, int] = {}
            rows = []
            for topic, key, value in self._pending:
                if topic not in next_offsets:
                    next_offsets[topic] = self._next_offset(tx, topic)
                rows.append((topic, next_offsets[topic], key, value, now))
                next_offsets[topic] += 1
            tx.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", rows)
        self._pending.clear()
        if now - self._expired_at > EXPIRE_EVERY_S:
            self.expire(now)

    def consumer(self, group: str, topics: list[str]) -> LocalConsumer:
        return LocalConsumer(self.conn, group, topics)

    def count(self, topic: str) -> int:
        return self.conn.execute("SELECT count(*) FROM messages WHERE topic = ?", (topic,)).fetchone()[0]

    def close(self) -> None:
        self.flush()
        self.conn.close()


class LocalConsumer:
    def __init__(self, conn: sqlite3.Connection, group: str, topics: list[str]):
        self.conn, self.group, self.topics = conn, group, topics
        self.position = {t: self._committed(t) for t in topics}

    def _committed(self, topic: str) -> int:
        row = self.conn.execute("SELECT next_offset FROM offsets WHERE grp = ? AND topic = ?", (self.group, topic)).fetchone()
        return row[0] if row else 0

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        while True:
            batch: list[Message] = []
            for topic in self.topics:
                rows = self.conn.execute(
                    "SELECT offset, key, value FROM messages WHERE topic = ? AND offset >= ? ORDER BY offset LIMIT ?",
                    (topic, self.position[topic], max_records - len(batch))).fetchall()
                batch.extend(Message(topic, 0, offset, key, value) for offset, key, value in rows)
                if rows:
                    self.position[topic] = rows[-1][0] + 1
                if len(batch) >= max_records:
                    break
            if batch or time.monotonic() >= deadline:
                return batch
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def commit(self) -> None:
        with Transaction(self.conn) as tx:
            tx.executemany(
                "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (grp, topic) DO UPDATE SET next_offset = excluded.next_offset",
                [(self.group, topic, offset) for topic, offset in self.position.items()])

    def lag(self) -> int:
        total = 0
        for topic in self.topics:
            (last,) = self.conn.execute("SELECT coalesce(max(offset), -1) FROM messages WHERE topic = ?", (topic,)).fetchone()
            total += max(0, last + 1 - self._committed(topic))
        return total

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        pass
