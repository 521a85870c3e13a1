"""Factories for the guard case table: taskings and items as JSON-ready dicts, relative to a real clock."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pipeline.models import CollectedItem, Tasking

PREDICATE = ("Reasonable suspicion, from theft reports RD-1 to RD-9, that user wrenchman sells catalytic "
             "converters cut from cars on the public forum.")


def tasking_fields(tasking_id: str, now: datetime, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        id=tasking_id, kind="criminal_predicate", case_number="2026-CR-7", predicate=PREDICATE,
        criminal_activity="theft and sale of stolen catalytic converters", requested_by="alice", approved_by="sam",
        approved_at=now - timedelta(days=1), expires_at=now + timedelta(days=30),
        scope={"domains": ["forum.example"], "keywords": ["converter", "converters"]})
    return fields | overrides


def item_fields(tasking_id: str, n: int, now: datetime, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        tasking_id=tasking_id, source_kind="forum_post", source_id="forum.example", spider="site",
        url=f"https://forum.example/post/{n}", fetched_at=now - timedelta(minutes=5),
        request={"method": "GET", "headers": {"User-Agent": "fcmon/0.1", "Accept": "text/html"}},
        response={"status": 200, "headers": {"Content-Type": "text/html"}},
        robots_allowed=True, login_wall_detected=False, title="Selling converters",
        text="Six catalytic converters, $150 each, cash only.", author="wrenchman")
    return fields | overrides


def build(tasking: dict[str, Any] | None, item: dict[str, Any]) -> tuple[Tasking | None, CollectedItem]:
    return (Tasking.model_validate(tasking) if tasking else None), CollectedItem.model_validate(item)
