"""Supervisor review of queries (D1.VI.B.2, D3.IV.A.11.f, D3.IV.B.3): queries joined with their results and
review marks, highlighted when made off duty hours or under a tasking that has since expired or been revoked;
and the search-term ledger. Review marks are audit entries themselves (kind query.review)."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Iterable

from pipeline.audit import AuditEntry, AuditLog
from pipeline.duty import off_hours, zone
from pipeline.errors import FcmonError, Forbidden, NotFound
from pipeline.models import Tasking, utcnow
from pipeline.settings import Settings
from pipeline.state import State, User

QUERY_KINDS = ["query", "query.refused", "query.result", "query.review"]
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


def query_rows(entries: Iterable[AuditEntry], state: State, settings: Settings) -> list[QueryRow]:
    """Every query and refused query, with its hit count, latest review mark and highlights."""
    tz = zone(settings.duty_timezone)
    users = {u.name: u for u in state.users()}
    taskings: dict[str, Tasking | None] = {}
    now = utcnow()
    rows: dict[str, QueryRow] = {}
    for entry in entries:
        p = entry.payload
        if entry.kind in ("query", "query.refused"):
            user = users.get(p["user"])
            window = (user.duty_hours if user else None) or settings.duty_hours_default
            if p["tasking_id"] not in taskings:
                taskings[p["tasking_id"]] = _tasking_or_none(state, p["tasking_id"])
            tasking = taskings[p["tasking_id"]]
            rows[p["id"]] = QueryRow(
                seq=entry.seq, query_id=p["id"], at=p["at"], user=p["user"], role=p["role"], interface=p["interface"],
                client=p.get("client", ""), tasking_id=p["tasking_id"], case_number=p.get("case_number"),
                query=p["query"], outcome="run" if entry.kind == "query" else "refused", refusal=p.get("refusal"),
                off_hours=off_hours(datetime.fromisoformat(p["at"]), window, tz),
                tasking_expired=tasking is not None and tasking.status(now) in ("expired", "revoked"),
                filters=p.get("filters"))
        elif entry.kind == "query.result" and p["query_id"] in rows:
            rows[p["query_id"]].hits_total = p["hits_total"]
        elif entry.kind == "query.review" and p["query_id"] in rows:
            row = rows[p["query_id"]]
            row.review_status, row.review_note, row.reviewed_by = p["status"], p.get("note"), entry.actor
    return list(rows.values())


def _tasking_or_none(state: State, tasking_id: str) -> Tasking | None:
    try:
        return state.tasking(tasking_id)
    except NotFound:
        return None


def mark(audit: AuditLog, state: State, settings: Settings, reviewer: User, query_id: str, status: str,
         note: str | None) -> dict[str, Any]:
    """Append a query.review entry: a supervisor other than the searcher marks a query reviewed or flags it."""
    if status not in REVIEW_STATUSES:
        raise FcmonError(f"unknown review status {status!r}", "use --reviewed or --flag")
    if status == "flagged" and not (note and note.strip()):
        raise FcmonError("a flag needs a note", "say why with --note TEXT")
    row = next((r for r in query_rows(audit.entries(QUERY_KINDS), state, settings) if r.query_id == query_id), None)
    if row is None:
        raise NotFound(f"no query {query_id!r} in the audit log", "see `fcmon audit list --kind query` for query ids")
    if row.user == reviewer.name:
        raise Forbidden(f"{reviewer.name} made query {query_id}; another supervisor must review it")
    payload = {"query_id": query_id, "status": status, "note": note or "", "user": row.user, "tasking_id": row.tasking_id}
    entry = audit.append("query.review", reviewer.name, payload)
    return {**payload, "seq": entry.seq, "reviewed_by": reviewer.name, "at": entry.at}


def in_period(at: str, start: datetime | None, end: datetime | None) -> bool:
    moment = datetime.fromisoformat(at)
    return (start is None or moment >= start) and (end is None or moment < end)


def ledger_rows(entries: Iterable[AuditEntry], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every search term entered in [start, end), through any interface, whether the query ran or was refused."""
    rows = []
    for entry in entries:
        if entry.kind not in ("query", "query.refused") or not in_period(entry.payload["at"], start, end):
            continue
        p = entry.payload
        rows.append({"at": p["at"], "user": p["user"], "role": p["role"], "interface": p["interface"],
                     "client": p.get("client", ""), "tasking_id": p["tasking_id"], "case_number": p.get("case_number") or "",
                     "outcome": "run" if entry.kind == "query" else "refused", "search_terms": p["query"],
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
    if entry.kind in ("query", "query.refused"):
        doc["fcm"]["query_id"] = p["id"]
    if row is not None:
        doc["fcm"].update({"off_hours": bool(row.off_hours), "tasking_expired": row.tasking_expired,
                           "review_status": row.review_status})
    return doc
