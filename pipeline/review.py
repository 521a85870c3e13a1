"""Supervisor review of queries (D1.VI.B.2, D3.IV.A.11.f, D3.IV.B.3): queries joined with their results and
review marks, highlighted when made off duty hours or under a tasking that has since expired or been revoked;
and the search-term ledger. Review marks are audit entries themselves (kind query.review)."""
from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Collection, Iterable

from pipeline.audit import AuditEntry, AuditLog
from pipeline.duty import off_hours, parse_window, utc_offsets, zone
from pipeline.errors import FcmonError, Forbidden, NotFound
from pipeline.models import Tasking, utcnow
from pipeline.settings import Settings
from pipeline.sqlite import Transaction
from pipeline.state import State, User

log = logging.getLogger(__name__)

QUERY_OUTCOMES = {"query": "run", "query.refused": "refused"}  # the entries that are queries, and what became of them
QUERY_KINDS = [*QUERY_OUTCOMES, "query.result", "query.review"]
AUDIT_READERS = ("supervisor", "admin")  # who reads the audit log; only supervisors mark queries
REVIEW_STATUSES = ("reviewed", "flagged")
LEDGER_FIELDS = ["at", "user", "role", "interface", "client", "tasking_id", "case_number", "outcome", "search_terms",
                 "filters", "query_id", "seq"]


@dataclass
class QueryRow:
    seq: int
    query_id: str
    at: str
    user: str
    role: str
    interface: str
    client: str
    tasking_id: str
    case_number: str | None
    query: str
    outcome: str  # run | refused
    refusal: str | None = None
    hits_total: int | None = None
    review_status: str = "unreviewed"
    review_note: str | None = None
    reviewed_by: str | None = None
    off_hours: bool | None = None
    tasking_expired: bool = False
    filters: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def highlights(self) -> list[str]:
        return [name for name, on in (("OFF-HOURS", self.off_hours), ("TASKING-ENDED", self.tasking_expired),
                                      ("FLAGGED", self.review_status == "flagged"), ("REFUSED", self.outcome == "refused")) if on]


@dataclass(frozen=True)
class Activity:
    """Queries as the review page's charts count them: how many one user made on one UTC day under one tasking with
    one outcome, and how many of those outside the user's duty hours (none when the user has none)."""
    day: str  # YYYY-MM-DD, UTC
    user: str
    tasking_id: str
    outcome: str  # run | refused
    queries: int
    off_hours: int


@dataclass(frozen=True)
class ActivityCounts:
    first_at: str | None  # when the oldest query counted was logged (UTC ISO 8601); None when none was
    counts: list[Activity]


REVIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS query_review (
    query_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, at TEXT NOT NULL, user TEXT NOT NULL, tasking_id TEXT NOT NULL,
    event TEXT NOT NULL, outcome TEXT NOT NULL, hits_total INTEGER,
    review_status TEXT NOT NULL DEFAULT 'unreviewed', review_note TEXT, reviewed_by TEXT);
CREATE INDEX IF NOT EXISTS query_review_seq ON query_review (seq);
CREATE INDEX IF NOT EXISTS query_review_user ON query_review (user, seq);
CREATE INDEX IF NOT EXISTS query_review_tasking ON query_review (tasking_id, seq);
CREATE INDEX IF NOT EXISTS query_review_status ON query_review (review_status, seq);
CREATE INDEX IF NOT EXISTS query_review_by_day ON query_review (substr(at, 1, 10), user, tasking_id, outcome, review_status, at,
                                                          seq);
CREATE TABLE IF NOT EXISTS query_review_cursor (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL,
                                                hash TEXT NOT NULL);
"""
SYNC_CHUNK = 10_000
ROW_COLUMNS = "seq, event, outcome, hits_total, review_status, review_note, reviewed_by"


class QueryReviews:
    """The rows supervisors review: every query and refused query in the audit log, with its hit count and latest
    mark, kept in state.db as a view of the log. Each read first brings it up to date with the entries appended since
    the last (a page costs what it shows, not the whole log). The log stays the authority: if the entry the view
    last read is gone or different (a restored or replaced log), the view is rebuilt from the log."""

    def __init__(self, state: State, audit: AuditLog, settings: Settings):
        self.state, self.audit, self.settings = state, audit, settings
        self.conn = state.conn
        self.conn.executescript(REVIEW_SCHEMA)

    def sync(self) -> int:
        """Read the entries appended since the last sync, SYNC_CHUNK to a transaction (a first sync of a long log
        must not hold state.db's write lock for long); returns how many were read."""
        read = 0
        while True:
            with Transaction(self.conn) as tx:
                after = self._cursor(tx)
                chunk = list(itertools.islice(self.audit.entries(QUERY_KINDS, after=after), SYNC_CHUNK))
                for entry in chunk:
                    _apply(tx, entry)
                if chunk:
                    tx.execute("INSERT INTO query_review_cursor VALUES (1, ?, ?) ON CONFLICT (one) DO UPDATE "
                               "SET seq = excluded.seq, hash = excluded.hash", (chunk[-1].seq, chunk[-1].hash))
            read += len(chunk)
            if len(chunk) < SYNC_CHUNK:
                return read

    def _cursor(self, tx: sqlite3.Connection) -> int:
        """The seq of the last entry read, or 0 (and an empty view) when the log no longer holds that entry as read."""
        cursor = tx.execute("SELECT seq, hash FROM query_review_cursor").fetchone()
        if cursor is None:
            return 0
        seq, digest = cursor
        if [e.hash for e in self.audit.entries_at([seq])] == [digest]:
            return seq
        log.warning("event=query_review_rebuilt seq=%d reason=%r", seq, "the audit log no longer holds the entry last read")
        tx.execute("DELETE FROM query_review")
        tx.execute("DELETE FROM query_review_cursor")
        return 0

    def page(self, *, user: str | None = None, tasking_id: str | None = None, statuses: Collection[str] = (),
             outcomes: Collection[str] = (), start: datetime | None = None, end: datetime | None = None,
             offset: int = 0, limit: int | None = None) -> tuple[list[QueryRow], int]:
        """Rows matching every filter given (`start`/`end`: when the entry was logged), newest first, and how many
        match in all."""
        self.sync()
        condition, args = _where(user, tasking_id, statuses, outcomes, start, end)
        total = self.conn.execute(f"SELECT count(*) FROM query_review{condition}", args).fetchone()[0]
        found = self.conn.execute(f"SELECT {ROW_COLUMNS} FROM query_review{condition} ORDER BY seq DESC LIMIT ? OFFSET ?",
                                  [*args, -1 if limit is None else limit, offset]).fetchall()
        return self._rows(found), total

    def activity(self, *, user: str | None = None, tasking_id: str | None = None, statuses: Collection[str] = (),
                 start: datetime | None = None, end: datetime | None = None) -> ActivityCounts:
        """The queries matching the filters (as `page` takes them), counted in SQLite per UTC day, user, tasking and
        outcome, with how many were off-hours by the duty hours as they stand (read now, as `_rows` reads them). The
        count walks query_review_by_day over the period's days: it costs the queries in the period, not in the log."""
        self.sync()
        condition, args = _where(user, tasking_id, statuses, (), start, end)
        days = [f"substr(at, 1, 10) {op} '{moment.astimezone(timezone.utc).date().isoformat()}'"
                for op, moment in ((">=", start), ("<=", end)) if moment is not None]
        condition = " AND ".join([condition, *days]) if condition else (f" WHERE {' AND '.join(days)}" if days else "")
        day = f"SELECT substr(at, 1, 10) FROM query_review INDEXED BY query_review_by_day{condition} ORDER BY 1"
        first = self.conn.execute(f"{day} LIMIT 1", args).fetchone()
        if first is None:
            return ActivityCounts(None, [])
        last = self.conn.execute(f"{day} DESC LIMIT 1", args).fetchone()
        low = datetime.fromisoformat(first[0]).replace(tzinfo=timezone.utc)
        off, off_args = self._off_hours_sql(low, datetime.fromisoformat(last[0]).replace(tzinfo=timezone.utc) + timedelta(days=1))
        # min(seq) makes the bare `at` the one of the group's oldest entry (SQLite's rule for one min() aggregate)
        found = self.conn.execute(f"SELECT substr(at, 1, 10), user, tasking_id, outcome, count(*), sum({off}), min(seq), at "
                                  f"FROM query_review INDEXED BY query_review_by_day{condition} GROUP BY 1, 2, 3, 4",
                                  [*off_args, *args]).fetchall()
        return ActivityCounts(min(found, key=lambda group: group[6])[7], [Activity(*group[:6]) for group in found])

    def _off_hours_sql(self, first: datetime, last: datetime) -> tuple[str, list[str]]:
        """A SQL expression over query_review's `at` and `user`: 1 when a query logged between `first` and `last` is
        outside its user's duty hours as they stand (what `off_hours` of pipeline/duty.py says of it), else 0; and
        its arguments (user names). While the duty zone's UTC offset stays the same, a local window is a window of
        UTC times of day, compared as text with `at`'s HH:MM:SS (offsets and windows are whole seconds, so a
        fraction of a second decides nothing)."""
        pieces = utc_offsets(first, last, zone(self.settings.duty_timezone))

        def outside(window: str | None) -> str:
            if not window:
                return "0"
            begin, stop = (t.hour * 3600 + t.minute * 60 for t in parse_window(window))
            tests = []
            for _, offset in pieces:
                low, high = ((begin - offset) % 86400, (stop - offset) % 86400)
                low_text, high_text = (f"{x // 3600:02}:{x // 60 % 60:02}:{x % 60:02}" for x in (low, high))
                tests.append(f"(substr(at, 12, 8) < '{low_text}' {'OR' if low < high else 'AND'} "
                             f"substr(at, 12, 8) >= '{high_text}')")
            if len(tests) == 1:
                return tests[0]
            changes = " ".join(f"WHEN at < '{since.astimezone(timezone.utc).isoformat()}' THEN {test}"
                               for test, (since, _) in zip(tests, pieces[1:]))
            return f"(CASE {changes} ELSE {tests[-1]} END)"

        default = self.settings.duty_hours_default
        own: dict[str, list[str]] = {}  # the users whose window is not the default, by window
        for u in self.state.users():
            if (u.duty_hours or default) != default:
                own.setdefault(u.duty_hours, []).append(u.name)
        if not own:
            return outside(default), []
        cases = " ".join(f"WHEN user IN ({','.join('?' * len(names))}) THEN {outside(window)}" for window, names in own.items())
        return f"CASE {cases} ELSE {outside(default)} END", [name for names in own.values() for name in names]

    def rows(self, query_ids: Iterable[str]) -> dict[str, QueryRow]:
        """The rows of these queries, by query id (an id the log does not hold has none)."""
        self.sync()
        wanted = list(dict.fromkeys(query_ids))
        found = []
        for chunk in range(0, len(wanted), 500):
            ids = wanted[chunk:chunk + 500]
            found += self.conn.execute(f"SELECT {ROW_COLUMNS} FROM query_review WHERE query_id IN "
                                       f"({','.join('?' * len(ids))})", ids).fetchall()
        return {row.query_id: row for row in self._rows(found)}

    def _rows(self, found: list[tuple]) -> list[QueryRow]:
        """Rows with their highlights, read now: duty hours and tasking status as they stand."""
        tz = zone(self.settings.duty_timezone)
        users = {u.name: u for u in self.state.users()}
        taskings: dict[str, Tasking | None] = {}
        now = utcnow()
        rows = []
        for seq, event, outcome, hits_total, review_status, review_note, reviewed_by in found:
            p = json.loads(event)
            user = users.get(p["user"])
            window = (user.duty_hours if user else None) or self.settings.duty_hours_default
            if p["tasking_id"] not in taskings:
                taskings[p["tasking_id"]] = _tasking_or_none(self.state, p["tasking_id"])
            tasking = taskings[p["tasking_id"]]
            rows.append(QueryRow(
                seq=seq, query_id=p["id"], at=p["at"], user=p["user"], role=p["role"], interface=p["interface"],
                client=p.get("client", ""), tasking_id=p["tasking_id"], case_number=p.get("case_number"),
                query=p["query"], outcome=outcome, refusal=p.get("refusal"), hits_total=hits_total,
                review_status=review_status, review_note=review_note, reviewed_by=reviewed_by,
                off_hours=off_hours(datetime.fromisoformat(p["at"]), window, tz),
                tasking_expired=tasking is not None and tasking.status(now) in ("expired", "revoked"),
                filters=p.get("filters")))
        return rows


def _where(user: str | None, tasking_id: str | None, statuses: Collection[str], outcomes: Collection[str],
           start: datetime | None, end: datetime | None) -> tuple[str, list[Any]]:
    """The WHERE clause of the review rows matching every filter given, and its arguments."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("user", user), ("tasking_id", tasking_id)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    for column, values in (("review_status", statuses), ("outcome", outcomes)):
        if values:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            args += list(values)
    # `at` is the entry's time in UTC ISO 8601, as the log writes it: text order is time order
    if start is not None:
        where.append("at >= ?")
        args.append(start.astimezone(timezone.utc).isoformat())
    if end is not None:
        where.append("at < ?")
        args.append(end.astimezone(timezone.utc).isoformat())
    return (f" WHERE {' AND '.join(where)}" if where else ""), args


def _tasking_or_none(state: State, tasking_id: str) -> Tasking | None:
    try:
        return state.tasking(tasking_id)
    except NotFound:
        return None


def _apply(tx: sqlite3.Connection, entry: AuditEntry) -> None:
    p = entry.payload
    if entry.kind in QUERY_OUTCOMES:
        at = datetime.fromisoformat(entry.at).astimezone(timezone.utc).isoformat()
        tx.execute("INSERT INTO query_review (query_id, seq, at, user, tasking_id, event, outcome) VALUES (?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (query_id) DO UPDATE SET seq = excluded.seq, at = excluded.at, user = excluded.user, "
                   "tasking_id = excluded.tasking_id, event = excluded.event, outcome = excluded.outcome",
                   (p["id"], entry.seq, at, p["user"], p["tasking_id"], json.dumps(p),
                    QUERY_OUTCOMES[entry.kind]))
    elif entry.kind == "query.result":
        tx.execute("UPDATE query_review SET hits_total = ? WHERE query_id = ?", (p["hits_total"], p["query_id"]))
    elif entry.kind == "query.review":
        tx.execute("UPDATE query_review SET review_status = ?, review_note = ?, reviewed_by = ? WHERE query_id = ?",
                   (p["status"], p.get("note"), entry.actor, p["query_id"]))


def mark(reviews: QueryReviews, reviewer: User, query_id: str, status: str, note: str | None) -> dict[str, Any]:
    """Append a query.review entry: a supervisor other than the searcher marks a query reviewed or flags it."""
    if status not in REVIEW_STATUSES:
        raise FcmonError(f"unknown review status {status!r}", "use --reviewed or --flag")
    if status == "flagged" and not (note and note.strip()):
        raise FcmonError("a flag needs a note", "say why with --note TEXT")
    row = reviews.rows([query_id]).get(query_id)
    if row is None:
        raise NotFound(f"no query {query_id!r} in the audit log", "see `fcmon audit list --kind query` for query ids")
    if row.user == reviewer.name:
        raise Forbidden(f"{reviewer.name} made query {query_id}; another supervisor must review it")
    payload = {"query_id": query_id, "status": status, "note": note or "", "user": row.user, "tasking_id": row.tasking_id}
    entry = reviews.audit.append("query.review", reviewer.name, payload)
    return {**payload, "seq": entry.seq, "reviewed_by": reviewer.name, "at": entry.at}


def in_period(at: str, start: datetime | None, end: datetime | None) -> bool:
    moment = datetime.fromisoformat(at)
    return (start is None or moment >= start) and (end is None or moment < end)


def ledger_rows(entries: Iterable[AuditEntry], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every search term entered in [start, end), through any interface, whether the query ran or was refused."""
    rows = []
    for entry in entries:
        if entry.kind not in QUERY_OUTCOMES or not in_period(entry.payload["at"], start, end):
            continue
        p = entry.payload
        rows.append({"at": p["at"], "user": p["user"], "role": p["role"], "interface": p["interface"],
                     "client": p.get("client", ""), "tasking_id": p["tasking_id"], "case_number": p.get("case_number") or "",
                     "outcome": QUERY_OUTCOMES[entry.kind], "search_terms": p["query"],
                     "filters": p.get("filters", {}), "query_id": p["id"], "seq": entry.seq})
    return rows


def ledger_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LEDGER_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "filters": json.dumps(row["filters"], sort_keys=True, separators=(",", ":"))})
    return out.getvalue()


def audit_document(entry: AuditEntry, row: QueryRow | None = None) -> dict[str, Any]:
    """An audit entry as a document of the audit index (config/elasticsearch/audit-template.json; _id = seq)."""
    p = entry.payload
    doc: dict[str, Any] = {
        "@timestamp": entry.at,
        "event": {"kind": entry.kind, "sequence": entry.seq, "hash": entry.hash},
        "user": {"name": p.get("user", entry.actor), **({"roles": [p["role"]]} if "role" in p else {})},
        "fcm": {"payload": p, **{k: p[k] for k in ("query_id", "tasking_id", "case_number", "interface", "query", "hits_total")
                                 if p.get(k) is not None}},
    }
    if "client" in p:
        doc["client"] = {"address": p["client"]}
    if entry.kind in QUERY_OUTCOMES:
        doc["fcm"]["query_id"] = p["id"]
    if row is not None:
        doc["fcm"].update({"off_hours": bool(row.off_hours), "tasking_expired": row.tasking_expired,
                           "review_status": row.review_status})
    return doc


def log_listing(audit: AuditLog, user: User, interface: str, filters: dict[str, Any], seqs: list[int], total: int) -> None:
    """A reading of the log (the console's /review, `fcmon audit list`) is audited as `audit.list`, as the ledger's
    export and the gateway's audit reads are: who read, through what, with which filters, which entries (by seq) were
    shown and how many matched. Written before anything is shown (no log, no listing)."""
    audit.append("audit.list", user.name, {
        "user": user.name, "role": user.role, "interface": interface,
        "filters": {k: v for k, v in filters.items() if v not in (None, "", [], (), False)},
        "shown": len(seqs), "total": total, "first_seq": min(seqs, default=None), "last_seq": max(seqs, default=None)})
