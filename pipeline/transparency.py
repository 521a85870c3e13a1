"""The transparency report: counts a department could publish for a period, from the audit log, state.db and the index."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from pipeline.app import App
from pipeline.models import utcnow
from pipeline.review import in_period

PURGE_KINDS = ("quarantine.purge", "quarantine.expire", "retention.purge", "record.purge")
DISSEMINATION_KINDS = ("packet.disseminate", "dissemination")
NOTES = [
    "Periods are UTC: a year (2026), a quarter (2026-Q4) or a month (2026-11); counts cover [from, to).",
    "items_collected sums the items of every crawl that ended in the period (audit entries crawl.end).",
    "records_indexed_now is what the index holds when the report is made, not what was added in the period.",
    "rejected_by_rule counts guard rejections decided in the period (state.db keeps their ids and reasons, never the content).",
    "packets_disseminated counts disseminations (`fcmon packet render`, one audit entry packet.disseminate each).",
    "records_purged counts purges in the audit log: quarantine purges and expiries, and records purged by retention.",
]


def _overlaps(start_at: datetime | None, end_at: datetime | None, start: datetime, end: datetime) -> bool:
    return (start_at is None or start_at < end) and (end_at is None or end_at > start)


def transparency_report(app: App, label: str, start: datetime, end: datetime) -> dict[str, Any]:
    taskings = app.state.taskings()
    approved = Counter(t.kind for t in taskings if t.approved_at and start <= t.approved_at < end)
    active = Counter(t.kind for t in taskings if t.approved_by and
                     _overlaps(t.approved_at, t.revoked_at if t.revoked else t.expires_at, start, end))
    kinds: Counter[str] = Counter()
    queries_by_interface: Counter[str] = Counter()
    items, purged, reviews = 0, 0, Counter()
    for entry in app.audit.entries():
        if not in_period(entry.at, start, end):
            continue
        kinds[entry.kind] += 1
        if entry.kind == "crawl.end":
            items += int(entry.payload.get("items", 0))
        elif entry.kind == "query":
            queries_by_interface[entry.payload.get("interface", "?")] += 1
        elif entry.kind == "query.review":
            reviews[entry.payload.get("status", "?")] += 1
        elif entry.kind in PURGE_KINDS:
            purged += int(entry.payload.get("count", 1))
    rejected = app.state.rejections_by_rule(start.isoformat(), end.isoformat())
    return {
        "period": label, "from": start.isoformat(), "to": end.isoformat(), "generated_at": utcnow().isoformat(),
        "taskings_approved_by_kind": dict(sorted(approved.items())),
        "taskings_active_by_kind": dict(sorted(active.items())),
        "crawls": kinds["crawl.end"],
        "items_collected": items,
        "records_indexed_now": app.index.count(),
        "items_quarantined_now": app.state.counts()["quarantined"],
        "quarantine_decisions": {k.split(".", 1)[1]: kinds[k] for k in ("quarantine.keep", "quarantine.purge", "quarantine.expire")},
        "rejected_by_rule": rejected,
        "rejected_total": sum(rejected.values()),
        "queries": sum(queries_by_interface.values()),
        "queries_by_interface": dict(sorted(queries_by_interface.items())),
        "queries_refused": kinds["query.refused"],
        "query_reviews": dict(sorted(reviews.items())),
        "packets_disseminated": sum(kinds[k] for k in DISSEMINATION_KINDS),
        "records_purged": purged,
        "notes": NOTES,
    }
