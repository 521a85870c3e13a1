"""Standing queries (`fcmon watch`): a saved search run on every record its tasking newly indexes, alerting its owner.

A standing query is a query: creating one goes through the search gate (`pipeline.search.open_query`: role, team,
active tasking) and its QueryEvent (`filters.standing = "watch"`, its id the watch's id) is in the audit log before the
watch exists, so its terms are in the search-term ledger; `watch.add` records the watch itself. The worker matches each
batch's indexed records against the active watches of their taskings with the local index's own parser (the batch in
an in-memory index of the same schema: `LocalIndex.matching_ids`), and each delivery is a `query.result` entry (the
hits returned to that user: the record ids) written before the alert is stored; a record fires a watch once
(`watch_hits`), however often it is indexed again. A watch ends with its tasking (expired or revoked), when its owner
may no longer search that tasking, or when its owner or a supervisor removes it with a reason (`watch.end`). The console
marks alerts read (`alert_reads`) when their owner says so in the inbox; the header counts the others.
"""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pipeline.audit import AuditLog
from pipeline.audit_bounds import MAX_AUDIT_STRING
from pipeline.errors import FcmonError, Forbidden, NotFound
from pipeline.index import InvalidQuery
from pipeline.index.local import LocalIndex
from pipeline.models import IndexedRecord, Interface, QueryResult, Tasking, utcnow
from pipeline.search import SEARCH_ROLES, authorize_search, new_event, open_query
from pipeline.settings import Settings
from pipeline.sqlite import Transaction
from pipeline.state import State, User

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (id TEXT PRIMARY KEY, owner TEXT NOT NULL, tasking_id TEXT NOT NULL, query TEXT NOT NULL,
    webhook TEXT, created_at TEXT NOT NULL, ended_at TEXT, ended_by TEXT, end_reason TEXT);
CREATE INDEX IF NOT EXISTS watches_active ON watches (ended_at, tasking_id);
CREATE TABLE IF NOT EXISTS watch_hits (watch_id TEXT NOT NULL, record_id TEXT NOT NULL, alert_id TEXT NOT NULL,
    PRIMARY KEY (watch_id, record_id));
CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, watch_id TEXT NOT NULL, owner TEXT NOT NULL, tasking_id TEXT NOT NULL,
    at TEXT NOT NULL, hits TEXT NOT NULL, webhook_status TEXT);
CREATE INDEX IF NOT EXISTS alerts_owner ON alerts (owner, at);
CREATE TABLE IF NOT EXISTS alert_reads (alert_id TEXT PRIMARY KEY, owner TEXT NOT NULL, read_at TEXT NOT NULL);
"""
SUPERVISOR = "supervisor"
LIST_ROLES = (*SEARCH_ROLES, "admin")  # who may list watches (an administrator every watch, read-only)
MAX_HITS = 10_000  # records of one batch one watch can match (a batch is at most work_batch_size)


@dataclass(frozen=True)
class Watch:
    id: str
    owner: str
    tasking_id: str
    query: str
    webhook: str | None
    created_at: str
    ended_at: str | None = None
    ended_by: str | None = None
    end_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"status": "ended" if self.ended_at else "active"}


class Watches:
    """The watches, their hits and alerts, in state.db."""

    def __init__(self, state: State, audit: AuditLog, settings: Settings):
        self.state, self.audit, self.settings = state, audit, settings
        self.conn = state.conn
        self.conn.executescript(SCHEMA)

    # -- the analyst's side ---------------------------------------------------------------------

    def add(self, user: User, tasking_id: str, text: str, webhook: str | None, client: str,
            interface: Interface = "cli") -> Watch:
        if not text.strip():
            raise FcmonError("a standing query needs words", 'give a query, e.g. \'converter AND "rail yard"\'')
        if len(text) > MAX_AUDIT_STRING:  # the log holds the whole text of every query, standing ones too
            raise FcmonError(f"the query is longer than {MAX_AUDIT_STRING:,} characters", "shorten it, or split it into several watches")
        probe = LocalIndex(None)  # run once on an empty index: InvalidQuery names what to fix (a query that parses but
        try:  # cannot run, `title:*`, too), before anything is logged as run
            probe.matching_ids(text, tasking_id, 1)
        finally:
            probe.close()
        if webhook is not None:
            self.check_webhook(webhook)
        filters = {"standing": "watch"} | ({"webhook": webhook} if webhook else {})
        event = open_query(self.state, self.audit, user, new_event(user, tasking_id, text, filters, interface, client))
        watch = Watch(event.id, user.name, tasking_id, text, webhook, event.at.isoformat())
        self.audit.append("watch.add", user.name, {"watch_id": watch.id, "user": user.name, "tasking_id": tasking_id,
                                                   "query": text, "webhook": webhook})
        with Transaction(self.conn) as tx:
            tx.execute("INSERT INTO watches (id, owner, tasking_id, query, webhook, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (watch.id, watch.owner, watch.tasking_id, watch.query, watch.webhook, watch.created_at))
        return watch

    def check_webhook(self, url: str) -> None:
        if not any(url.startswith(prefix) for prefix in self.settings.watch_webhook_allow):
            allowed = ", ".join(self.settings.watch_webhook_allow) or "none"
            raise Forbidden(f"webhook {url!r} is not an internal URL the configuration allows (allowed: {allowed})",
                            "an administrator lists internal alert services in FCMON_WATCH_WEBHOOK_ALLOW")

    def remove(self, user: User, watch_id: str, reason: str) -> Watch:
        watch = self.get(watch_id)
        if user.role != SUPERVISOR and user.name != watch.owner:
            raise Forbidden(f"{user.name} may not end watch {watch_id}", "its owner or a supervisor can")
        if not reason.strip():
            raise FcmonError("ending a watch needs a reason", "say why with --reason TEXT")
        if watch.ended_at:
            return watch
        return self.end(watch, user.name, reason)

    def end(self, watch: Watch, by: str, reason: str) -> Watch:
        self.audit.append("watch.end", by, {"watch_id": watch.id, "user": watch.owner, "tasking_id": watch.tasking_id,
                                            "reason": reason})
        ended = Watch(**{**asdict(watch), "ended_at": utcnow().isoformat(), "ended_by": by, "end_reason": reason})
        with Transaction(self.conn) as tx:
            tx.execute("UPDATE watches SET ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
                       (ended.ended_at, by, reason, watch.id))
        return ended

    def get(self, watch_id: str) -> Watch:
        row = self.conn.execute("SELECT * FROM watches WHERE id = ?", (watch_id,)).fetchone()
        if row is None:
            raise NotFound(f"no watch {watch_id!r}", "see `fcmon watch list` for watch ids")
        return Watch(*row)

    def listed(self, user: User) -> list[Watch]:
        """The user's watches; a supervisor's (or an administrator's, read-only) listing has everyone's."""
        self.end_with_taskings({t.id: t for t in self.state.taskings()}, utcnow())
        if user.role in (SUPERVISOR, "admin"):
            rows = self.conn.execute("SELECT * FROM watches ORDER BY created_at DESC").fetchall()
        else:
            rows = self.conn.execute("SELECT * FROM watches WHERE owner = ? ORDER BY created_at DESC", (user.name,)).fetchall()
        return [Watch(*row) for row in rows]

    def alerts(self, user: User, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT a.id, a.watch_id, w.query, a.tasking_id, a.at, a.hits, a.webhook_status FROM alerts a "
                                 "JOIN watches w ON w.id = a.watch_id WHERE a.owner = ? ORDER BY a.at DESC LIMIT ?",
                                 (user.name, limit)).fetchall()
        return [{"id": r[0], "watch_id": r[1], "query": r[2], "tasking_id": r[3], "at": r[4], "hits": json.loads(r[5]),
                 "webhook": r[6]} for r in rows]

    def unread(self, user: User, alert_ids: list[str] | None = None) -> set[str]:
        """The ids of the user's alerts not yet marked read (of alert_ids, when given)."""
        rows = self.conn.execute("SELECT a.id FROM alerts a WHERE a.owner = ? AND NOT EXISTS "
                                 "(SELECT 1 FROM alert_reads r WHERE r.alert_id = a.id)", (user.name,)).fetchall()
        found = {r for (r,) in rows}
        return found if alert_ids is None else found & set(alert_ids)

    def unread_count(self, user: User) -> int:
        """How many of the user's alerts are not marked read yet (the console's header count)."""
        return self.conn.execute("SELECT COUNT(*) FROM alerts a WHERE a.owner = ? AND NOT EXISTS "
                                 "(SELECT 1 FROM alert_reads r WHERE r.alert_id = a.id)", (user.name,)).fetchone()[0]

    def mark_read(self, user: User, alert_ids: list[str]) -> int:
        """Mark these of the user's own alerts read (others' ids are ignored); returns how many were newly marked."""
        mine = self.unread(user, alert_ids)
        with Transaction(self.conn) as tx:
            tx.executemany("INSERT OR IGNORE INTO alert_reads VALUES (?, ?, ?)",
                           [(i, user.name, utcnow().isoformat()) for i in sorted(mine)])
        return len(mine)

    # -- the worker's side ----------------------------------------------------------------------

    def active(self) -> list[Watch]:
        return [Watch(*row) for row in self.conn.execute("SELECT * FROM watches WHERE ended_at IS NULL")]

    def end_with_taskings(self, taskings: dict[str, Tasking], now: datetime) -> list[Watch]:
        """End the watches whose tasking is no longer active, or whose owner may no longer search it; the others."""
        users = {u.name: u for u in self.state.users()}
        kept = []
        for watch in self.active():
            tasking, owner = taskings.get(watch.tasking_id), users.get(watch.owner)
            if tasking is None or tasking.status(now) != "active":
                self.end(watch, "fcmon", f"tasking {tasking.status(now) if tasking else 'missing'}")
                continue
            if owner is not None:
                try:
                    authorize_search(owner, tasking)
                except Forbidden:
                    owner = None
            if owner is None:
                self.end(watch, "fcmon", f"{watch.owner} may no longer search tasking {watch.tasking_id}")
                continue
            kept.append(watch)
        return kept

    def deliver(self, records: list[IndexedRecord], taskings: dict[str, Tasking], now: datetime) -> int:
        """Alert the owners of the active watches these just-indexed records match (each record once per watch); each
        delivery audited as a query.result before it is stored. Returns the alerts made."""
        watches = [w for w in self.end_with_taskings(taskings, now) if w.tasking_id in {r.tasking_id for r in records}]
        if not watches:
            return 0
        batch = LocalIndex(None)
        batch.upsert(records)
        by_id = {r.id: r for r in records}
        made = 0
        for watch in watches:
            try:
                matched = batch.matching_ids(watch.query, watch.tasking_id, MAX_HITS)
            except InvalidQuery as exc:  # saved before its query was run once: ended, never a worker stuck on it
                log.warning("event=watch_query_failed watch=%s error=%r", watch.id, str(exc))
                self.end(watch, "fcmon", f"its query cannot run: {exc}"[:300])
                continue
            new = self._unfired(watch.id, matched)
            if new:
                self._alert(watch, [by_id[i] for i in sorted(new)])
                made += 1
        batch.close()
        return made

    def _unfired(self, watch_id: str, record_ids: list[str]) -> list[str]:
        if not record_ids:
            return []
        fired = {r for (r,) in self.conn.execute(
            f"SELECT record_id FROM watch_hits WHERE watch_id = ? AND record_id IN ({','.join('?' * len(record_ids))})",
            [watch_id, *record_ids])}
        return [r for r in record_ids if r not in fired]

    def _alert(self, watch: Watch, records: list[IndexedRecord]) -> None:
        alert_id = uuid.uuid4().hex
        ids = [r.id for r in records]
        result = QueryResult(query_id=watch.id, at=utcnow(), hits_total=len(ids), returned_ids=ids)
        channels = ["inbox", "webhook"] if watch.webhook else ["inbox"]
        self.audit.append("query.result", watch.owner, result.model_dump(mode="json") | {
            "watch_id": watch.id, "alert_id": alert_id, "user": watch.owner, "tasking_id": watch.tasking_id,
            "delivery": channels})
        hits = [{"id": r.id, "title": r.title, "url": r.final_url, "published_at": r.published_at.isoformat() if r.published_at
                 else None, "source_id": r.source_id} for r in records]
        with Transaction(self.conn) as tx:
            tx.executemany("INSERT OR IGNORE INTO watch_hits VALUES (?, ?, ?)", [(watch.id, i, alert_id) for i in ids])
            tx.execute("INSERT INTO alerts (id, watch_id, owner, tasking_id, at, hits) VALUES (?, ?, ?, ?, ?, ?)",
                       (alert_id, watch.id, watch.owner, watch.tasking_id, result.at.isoformat(), json.dumps(hits)))
        if watch.webhook:
            self._post(watch, alert_id, ids)

    def _post(self, watch: Watch, alert_id: str, ids: list[str]) -> None:
        """The alert's ids (never the records' content) to the watch's internal webhook; the outcome kept on the alert."""
        try:
            self.check_webhook(watch.webhook or "")
            body = json.dumps({"alert_id": alert_id, "watch_id": watch.id, "tasking_id": watch.tasking_id,
                               "user": watch.owner, "record_ids": ids}).encode()
            request = urllib.request.Request(watch.webhook or "", data=body, method="POST",
                                             headers={"Content-Type": "application/json", "User-Agent": "fcmon-watch"})
            with urllib.request.urlopen(request, timeout=self.settings.watch_webhook_timeout) as answer:
                outcome = f"delivered {answer.status}"
        except (urllib.error.URLError, OSError, Forbidden, ValueError) as exc:
            outcome = f"failed: {exc}"[:300]
            log.warning("event=webhook_failed watch=%s alert=%s error=%r", watch.id, alert_id, outcome)
        with Transaction(self.conn) as tx:
            tx.execute("UPDATE alerts SET webhook_status = ? WHERE id = ?", (outcome, alert_id))
