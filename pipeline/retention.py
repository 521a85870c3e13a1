"""Retention of stored records (28CFR23.20(h); D1.IV.A.3; D2.V.D.2): reviewed before their purge date, purged on it.

Every record carries `review_by` and `purge_by` (guards/labels.py), never more than five years after collection.
Before a record's date comes, a person reviews it: validates it for continuing compliance (`--keep`, with the
reason: reviewer, date and reason go to the audit log; the purge date never moves), or a supervisor purges it
early (`--purge`; anyone else is refused, the refusal audited). `fcmon retention run` purges every record whose
purge date has come, reviewed or not. Each decision is written to the audit log before the index changes (no log,
no purge: the record stays until it can be).
"""
from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from pipeline.app import App
from pipeline.errors import FcmonError, Forbidden
from pipeline.models import IndexedRecord, utcnow
from pipeline.records import REVIEW_ROLES, authorized, record_under, refusals_audited
from pipeline.state import User


MAX_WITHIN_DAYS = 5 * 366


def due(app: App, user: User, within_days: int, tasking_id: str | None = None) -> list[dict[str, Any]]:
    """Records whose review or purge date falls within `within_days` (supervisors; the listing is audited)."""
    if user.role != "supervisor":
        raise Forbidden(f"{user.name} is {user.role}; the retention review list needs the role supervisor")
    if not 0 <= within_days <= MAX_WITHIN_DAYS:
        raise FcmonError(f"--within {within_days} is outside 0-{MAX_WITHIN_DAYS} days (no record is kept over five years)",
                         "give the number of days ahead to look, e.g. --within 30")
    horizon = utcnow().date() + timedelta(days=within_days)
    rows = [_row(r) for r in app.index.due(["review_by", "purge_by"], horizon)
            if tasking_id is None or r.tasking_id == tasking_id]
    validated = {e.payload["record_id"]: e for e in app.audit.entries(["retention.keep"])}
    for row in rows:
        entry = validated.get(row["record_id"])
        row["validated"] = {"by": entry.actor, "at": entry.at, "reason": entry.payload["reason"]} if entry else None
    app.audit.append("retention.list", user.name, {"within_days": within_days, "tasking_id": tasking_id,
                                                   "horizon": horizon.isoformat(), "rows": len(rows)})
    return rows


def _row(record: IndexedRecord) -> dict[str, Any]:
    return {"record_id": record.id, "tasking_id": record.tasking_id, "review_by": record.labels.review_by.isoformat(),
            "purge_by": record.labels.purge_by.isoformat(), "review_status": record.labels.review_status,
            "criminal_intelligence": record.labels.criminal_intelligence, "title": record.title, "url": record.final_url}


def review(app: App, user: User, record_id: str, tasking_id: str, keep: bool, reason: str) -> dict[str, Any]:
    """Validate a record for continuing compliance (keep; its tasking must be active) or purge it now."""
    if not reason.strip():
        raise FcmonError("the reason is empty", "say why with --reason; it is audited")
    kind = "retention.keep" if keep else "retention.purge"
    payload = {"record_id": record_id, "tasking_id": tasking_id, "reason": reason, "user": user.name}
    with refusals_audited(app, user, kind, payload):
        if not keep and user.role != "supervisor":  # a purge before the date is a supervisor's decision, on any record
            raise Forbidden(f"{user.name} is {user.role}; only a supervisor purges a record before its purge date",
                            "validate it with --keep, or ask a supervisor to purge it")
        tasking = app.state.tasking(tasking_id)
        if keep:
            authorized(user, tasking, REVIEW_ROLES)  # continuing compliance needs an active, lawful purpose
        record = record_under(app, record_id, tasking)
    app.audit.append(kind, user.name, {**payload, "role": user.role, "case_number": tasking.case_number,
                                       "purge_by": record.labels.purge_by.isoformat(), **({} if keep else {"count": 1})})
    if not keep:
        app.index.delete([record_id])
    return {"record_id": record_id, "decision": "kept" if keep else "purged", "by": user.name, "reason": reason,
            "purge_by": record.labels.purge_by.isoformat()}


def run(app: App, user: User) -> dict[str, Any]:
    """Purge every record whose purge date has come: one audited entry, then the deletion."""
    if user.role not in ("supervisor", "admin"):
        raise Forbidden(f"{user.name} is {user.role}; a retention run needs the role supervisor or admin")
    today = utcnow().date()
    expired = app.index.due(["purge_by"], today)
    by_tasking = Counter(r.tasking_id for r in expired)
    result = {"purged": len(expired), "on": today.isoformat(), "by_tasking": dict(sorted(by_tasking.items()))}
    if expired:
        app.audit.append("retention.purge", user.name, {**result, "count": len(expired), "reason": "purge date reached",
                                                        "record_ids": [r.id for r in expired]})
        app.index.delete([r.id for r in expired])
    return result
