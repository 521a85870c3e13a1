"""Hand-made interchange objects for tests: sensible defaults, override any field."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from pipeline.models import IndexedRecord, Labels, RecordedPredicate, content_hash, record_id

DEFAULT_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def make_labels(**overrides: Any) -> Labels:
    values: dict[str, Any] = {
        "sensitivity": "law_enforcement_sensitive",
        "source_reliability": "unknown",
        "content_validity": "cannot_be_judged",
        "submitting_agency": "Example State Fusion Center",
        "control_official": "sgt.rivera",
        "criminal_intelligence": False,
        "review_status": "unreviewed",
        "review_by": date(2027, 3, 1),
        "purge_by": date(2031, 3, 1),
    }
    values.update(overrides)
    return Labels(**values)


def make_predicate(tasking_id: str = "T-1", **overrides: Any) -> RecordedPredicate:
    values: dict[str, Any] = {
        "tasking_id": tasking_id,
        "kind": "criminal_predicate",
        "case_number": "2026-000123",
        "predicate": "Reasonable suspicion of organised retail theft.",
        "criminal_activity": "organised retail theft",
        "approved_by": "lt.okafor",
        "approved_at": datetime(2026, 2, 1, 9, 0, tzinfo=timezone.utc),
    }
    values.update(overrides)
    return RecordedPredicate(**values)


def make_record(**overrides: Any) -> IndexedRecord:
    """An IndexedRecord whose id is derived as the pipeline derives it (tasking, URL, content)."""
    labels = overrides.pop("labels", None)
    label_overrides = overrides.pop("label_overrides", {})
    values: dict[str, Any] = {
        "tasking_id": "T-1",
        "source_kind": "forum_post",
        "source_id": "forum.example.org",
        "url": "https://forum.example.org/t/1",
        "title": "A post",
        "text": "Nothing to see here.",
        "author": "someone",
        "published_at": DEFAULT_TIME,
        "fetched_at": DEFAULT_TIME,
        "indexed_at": DEFAULT_TIME,
    }
    values.update(overrides)
    values.setdefault("final_url", values["url"])
    values.setdefault("content_sha256", content_hash(values["title"], values["text"]))
    values.setdefault("id", record_id(values["tasking_id"], values["final_url"], values["content_sha256"]))
    values.setdefault("labels", labels or make_labels(**label_overrides))
    values.setdefault("predicate", make_predicate(values["tasking_id"]))
    return IndexedRecord(**values)
