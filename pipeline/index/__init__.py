"""The Index port: stored records and search over them, with the same query semantics on every adapter.

Query language (Lucene-like, as in Elasticsearch's query_string): words are ANDed by default;
`OR`, `AND`, `NOT` / `-word`, "exact phrases", parentheses and field prefixes
(`title:`, `text:`, `author:`, `source_kind:`, `source_id:`) are understood.
Every search is bound to one tasking: the tasking filter is applied by the adapter, never taken
from the query text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol, Sequence

from pipeline.datadir import DataDir
from pipeline.errors import FcmonError
from pipeline.models import IndexedRecord
from pipeline.settings import Settings

RetentionLabel = Literal["review_by", "purge_by"]


def earliest(record: IndexedRecord, labels: Sequence[RetentionLabel]) -> tuple[date, str]:
    """The sort key of Index.due: the earliest of the labels' dates, then the id."""
    return min(getattr(record.labels, label) for label in labels), record.id
FILTER_FIELDS = ("source_kind", "source_id", "author", "sensitivity", "source_reliability",
                 "content_validity", "review_status", "criminal_intelligence")


@dataclass(frozen=True)
class SearchQuery:
    text: str
    tasking_id: str
    filters: dict[str, str] = field(default_factory=dict)
    time_from: datetime | None = None
    time_to: datetime | None = None
    sort: Literal["relevance", "time"] = "relevance"
    offset: int = 0
    limit: int = 20

    def describe_filters(self) -> dict[str, str]:
        described = dict(self.filters)
        if self.time_from:
            described["time_from"] = self.time_from.isoformat()
        if self.time_to:
            described["time_to"] = self.time_to.isoformat()
        described["sort"] = self.sort
        described["offset"], described["limit"] = str(self.offset), str(self.limit)
        return described


@dataclass(frozen=True)
class Hit:
    record: IndexedRecord
    score: float
    highlights: list[str]


@dataclass(frozen=True)
class SearchPage:
    total: int
    hits: list[Hit]


class InvalidQuery(FcmonError):
    pass


QUERY_HINT = 'use words, "phrases", AND/OR/NOT, parentheses and field:value'
MAX_WINDOW = 10_000  # offset + limit, as Elasticsearch's index.max_result_window


def check_window(query: SearchQuery) -> None:
    """The paging bounds every adapter enforces."""
    if query.offset < 0 or query.limit < 0:
        raise InvalidQuery("invalid query: offset and limit must not be negative", "use offset >= 0 and limit >= 1")
    if query.offset + query.limit > MAX_WINDOW:
        raise InvalidQuery(f"invalid query: offset + limit exceeds {MAX_WINDOW}", "narrow the query instead of paging further")


class Index(Protocol):
    def upsert(self, records: list[IndexedRecord]) -> None:
        """Add or replace records by id; durable when it returns."""

    def get(self, record_id: str) -> IndexedRecord | None:
        """One record by id."""

    def delete(self, record_ids: list[str]) -> None:
        """Remove records by id; durable when it returns."""

    def count(self, tasking_id: str | None = None) -> int:
        """Records held, for one tasking or all."""

    def ids(self) -> list[str]:
        """Every record id held."""

    def due(self, labels: Sequence[RetentionLabel], on_or_before: date) -> list[IndexedRecord]:
        """Records one of whose `labels` (`review_by`, `purge_by`) is on or before a day, in one pass, earliest first."""

    def search(self, query: SearchQuery) -> SearchPage:
        """Matches within the query's tasking; raises InvalidQuery for a malformed query."""

    def close(self) -> None:
        """Release files and locks."""


def open_index(settings: Settings, data_dir: DataDir) -> Index:
    if settings.index == "local":
        from pipeline.index.local import LocalIndex
        return LocalIndex(data_dir.index_dir)
    if settings.index == "elasticsearch":
        from pipeline.index.elasticsearch import ElasticsearchIndex
        return ElasticsearchIndex.from_settings(settings)
    raise FcmonError(f"index backend {settings.index!r} is not available in this version", "set FCMON_INDEX=local")
