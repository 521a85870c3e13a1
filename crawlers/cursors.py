"""The monitor's memory, in the data directory's monitor.db: per source what it has seen (its cursor), what each start
URL answered last (ETag, Last-Modified, for conditional requests), how its polls went (status), and when each post it
collected was first seen (freshness).

A poll's cursor is written only after its items are on the bus (BusPipeline flushes when the crawl closes), so a
restart resumes from it without duplicates; a poll cut short keeps what it collected and what it saw, never the
validators of a start URL whose older pages it did not finish.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from pipeline.sqlite import Transaction, connect

FRESHNESS_SAMPLE = 200  # newest posts per source whose freshness status reports
SEEN_KEPT = 10_000  # per source: more than any platform's pages hold between two polls

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (source_id TEXT NOT NULL, key TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (source_id, key));
CREATE TABLE IF NOT EXISTS validators (source_id TEXT NOT NULL, url TEXT NOT NULL, etag TEXT, last_modified TEXT,
                                       PRIMARY KEY (source_id, url));
CREATE TABLE IF NOT EXISTS status (source_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sightings (item_id TEXT PRIMARY KEY, source_id TEXT NOT NULL, published_at TEXT,
                                      first_seen TEXT NOT NULL, backfill INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sightings_source ON sightings (source_id, first_seen);
"""


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


@dataclass
class Cursor:
    """One source's cursor for one poll: what it had seen before, and what this poll saw and was answered."""
    seen: set[str]
    validators: dict[str, tuple[str | None, str | None]]
    new_keys: list[str] = field(default_factory=list)
    answers: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def __deepcopy__(self, memo: dict[int, Any]) -> Cursor:
        return self  # Scrapy deep-copies a crawler's settings: the spider must fill in the monitor's own cursor

    @property
    def first_poll(self) -> bool:
        return not self.seen and not self.validators

    def conditional_headers(self, url: str) -> dict[str, str]:
        etag, last_modified = self.validators.get(url, (None, None))
        return ({"If-None-Match": etag} if etag else {}) | ({"If-Modified-Since": last_modified} if last_modified else {})

    def answered(self, url: str, etag: bytes | str | None, last_modified: bytes | str | None) -> None:
        self.answers[url] = (_text(etag), _text(last_modified))

    def collected(self, key: str) -> None:
        self.new_keys.append(key)


class CursorStore:
    def __init__(self, path: Path):
        self.conn = connect(path)
        self.conn.executescript(SCHEMA)

    def cursor(self, source_id: str) -> Cursor:
        seen = {k for (k,) in self.conn.execute("SELECT key FROM seen WHERE source_id = ?", (source_id,))}
        validators = {url: (etag, lm) for url, etag, lm in
                      self.conn.execute("SELECT url, etag, last_modified FROM validators WHERE source_id = ?", (source_id,))}
        return Cursor(seen, validators)

    def save(self, source_id: str, cursor: Cursor, sightings: list[dict[str, Any]], *, complete: bool, at: datetime) -> None:
        """Keep what a poll saw; the start URLs' validators only when the poll finished (complete)."""
        stamp = at.isoformat()
        with Transaction(self.conn) as tx:
            tx.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", [(source_id, k, stamp) for k in cursor.new_keys])
            tx.execute("DELETE FROM seen WHERE source_id = ? AND key NOT IN (SELECT key FROM seen WHERE source_id = ? "
                       "ORDER BY at DESC LIMIT ?)", (source_id, source_id, SEEN_KEPT))
            if complete:
                tx.executemany("INSERT OR REPLACE INTO validators VALUES (?, ?, ?, ?)",
                               [(source_id, url, etag, lm) for url, (etag, lm) in cursor.answers.items()])
            tx.executemany("INSERT OR IGNORE INTO sightings VALUES (?, ?, ?, ?, ?)",
                           [(s["id"], source_id, s["published_at"], s["first_seen"], int(cursor.first_poll))
                            for s in sightings])

    def put_status(self, source_id: str, status: dict[str, Any]) -> None:
        with Transaction(self.conn) as tx:
            tx.execute("INSERT OR REPLACE INTO status VALUES (?, ?)", (source_id, json.dumps(status, default=str)))

    def status(self) -> list[dict[str, Any]]:
        return [json.loads(body) for (body,) in self.conn.execute("SELECT body FROM status ORDER BY source_id")]

    def recent_sightings(self, source_id: str, limit: int) -> list[tuple[str, str | None, str]]:
        """(item id, published_at, first_seen) of the source's newest posts, those of its first poll (a backfill) left out."""
        return self.conn.execute("SELECT item_id, published_at, first_seen FROM sightings WHERE source_id = ? AND "
                                 "backfill = 0 ORDER BY first_seen DESC LIMIT ?", (source_id, limit)).fetchall()

    def first_seen_since(self, since: datetime) -> list[tuple[str, str]]:
        """(source id, first_seen) of every post first seen since then (a first poll's backfill included: collected)."""
        return self.conn.execute("SELECT source_id, first_seen FROM sightings WHERE first_seen >= ? ORDER BY source_id",
                                 (since.isoformat(),)).fetchall()

    def close(self) -> None:
        self.conn.close()


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank q-th percentile (0-100), or None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def freshness(store: CursorStore, source_id: str, indexed_at: Callable[[str], datetime | None],
              recent: int = FRESHNESS_SAMPLE) -> dict[str, Any]:
    """Seconds from each recent post's publication (or, without one, its first sight) to searchable (the record's
    indexed_at), p50 and p95; posts of a source's first poll (a backfill of old posts) are left out, and posts not
    indexed (yet, or ever: the guards rejected or held them) are counted as pending."""
    delays, pending = [], 0
    for item_id, published_at, first_seen in store.recent_sightings(source_id, recent):
        searchable = indexed_at(item_id)
        if searchable is None:
            pending += 1
            continue
        since = datetime.fromisoformat(published_at or first_seen)
        delays.append(max(0.0, (searchable - since).total_seconds()))
    p50, p95 = percentile(delays, 50), percentile(delays, 95)
    return {"sample": len(delays), "pending": pending, "p50_s": None if p50 is None else round(p50, 2),
            "p95_s": None if p95 is None else round(p95, 2)}


def collected_per_day(path: Path, start: datetime, end: datetime) -> tuple[list[str], dict[str, list[int]]]:
    """Posts first seen per source per UTC day of [start, end): the days, and one count per day for each source."""
    from pipeline.charts import bucket_of, count_by, days

    store = CursorStore(path)
    try:
        seen = store.first_seen_since(start)
    finally:
        store.close()
    categories = [d.isoformat() for d in days(start, end)]
    return categories, count_by(((source, bucket_of(at, "day")) for source, at in seen), categories)


def source_statuses(path: Path, index: Any) -> list[dict[str, Any]]:
    """Every monitored source's status (state, last poll and success, new items, errors) with its freshness measured
    against `index` (a pipeline.index.Index: when each record became searchable). What `fcmon monitor status` and the
    console's collection page show."""
    def indexed_at(record_id: str) -> datetime | None:
        record = index.get(record_id)
        return record.indexed_at if record else None

    store = CursorStore(path)
    try:
        return [s | {"freshness": freshness(store, s["source"], indexed_at)} for s in store.status()]
    finally:
        store.close()
