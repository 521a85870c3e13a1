"""Factories for taskings, collected items and guard contexts."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from guards.base import GuardContext
from pipeline.models import CollectedItem, RequestRecord, ResponseRecord, Tasking
from pipeline.settings import Settings

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
ROLES = {"alice": "analyst", "sam": "supervisor", "dana": "detective", "ada": "admin", "sue": "supervisor"}


def make_tasking(**overrides: Any) -> Tasking:
    fields: dict[str, Any] = dict(
        id="T-1", kind="criminal_predicate", case_number="2026-CR-1", predicate="Reasonable suspicion, from theft reports RD-1 to RD-9, that user wrenchman sells stolen converters on the forum.",
        criminal_activity="sale of stolen property", requested_by="alice", approved_by="sam",
        approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30),
        scope={"domains": ["forum.example"], "keywords": ["converter", "converters"]})
    fields.update(overrides)
    return Tasking.model_validate(fields)


def make_item(**overrides: Any) -> CollectedItem:
    request = overrides.pop("request", None) or RequestRecord(method="GET", headers={"User-Agent": "fcmon/0.1", "Accept": "text/html"})
    response = overrides.pop("response", None) or ResponseRecord(status=200, headers={"Content-Type": "text/html"})
    fields: dict[str, Any] = dict(
        tasking_id="T-1", source_kind="forum_post", source_id="forum.example", spider="site",
        url="https://forum.example/post/1", fetched_at=NOW - timedelta(minutes=5), request=request, response=response,
        robots_allowed=True, login_wall_detected=False, title="Selling converters",
        text="Six catalytic converters, $150 each, cash only.", author="wrenchman")
    fields.update(overrides)
    return CollectedItem.model_validate(fields)


def make_context(*taskings: Tasking, roles: dict[str, str] | None = ROLES, now: datetime = NOW,
                 settings: Settings | None = None) -> GuardContext:
    return GuardContext(taskings={t.id: t for t in taskings}, roles=roles, now=now, settings=settings or Settings())
