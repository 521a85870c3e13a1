"""What the console reads from a request's fields: a search, the review page's filters, where in a list."""
from __future__ import annotations

from urllib.parse import urlencode

from pipeline.audit_bounds import MAX_AUDIT_STRING
from pipeline.index import FILTER_FIELDS, SearchQuery
from pipeline.search import parse_filters, parse_time

PAGE_SIZE = 20
REVIEW_PAGE_SIZE = 50
REVIEW_FILTERS = ("user", "tasking", "status", "period", "from", "to")
SEARCH_FIELDS = ("tasking", "q", "filter", *FILTER_FIELDS, "from", "to", "sort", "limit", "offset")

Fields = dict[str, list[str]]  # a query string's or a form's fields, as parse_qs gives them


class Refusal(Exception):
    """What the console refuses, with the HTTP status, and what to do instead."""

    def __init__(self, status: int, message: str, hint: str | None = None):
        super().__init__(message)
        self.status, self.hint = status, hint


def first(values: Fields, name: str, default: str = "") -> str:
    """The first value of a query or form field (parse_qs gives lists)."""
    return (values.get(name) or [default])[0]


def search_fields(values: Fields) -> Fields:
    """Only the fields a search is made of (never the form's CSRF token), for the search and its audit entry."""
    return {name: values[name] for name in SEARCH_FIELDS if name in values}


def query_from(params: Fields) -> SearchQuery:
    def one(name: str) -> str | None:
        value = first(params, name).strip()
        return value or None

    tasking_id = one("tasking")
    if len(first(params, "q")) > MAX_AUDIT_STRING:  # the log holds the whole text of every query that runs
        raise Refusal(400, f"the query is longer than {MAX_AUDIT_STRING:,} characters", "shorten it, or split it into several searches")
    if not tasking_id:
        raise Refusal(400, "no tasking: every search serves a tasking", "choose the tasking this search is for")
    filters = tuple(f for f in params.get("filter", []) if f.strip())
    filters += tuple(f"{name}={one(name)}" for name in FILTER_FIELDS if one(name))
    try:
        limit, offset = int(one("limit") or PAGE_SIZE), int(one("offset") or 0)
    except ValueError as exc:
        raise Refusal(400, "limit and offset must be whole numbers") from exc
    sort = one("sort") or "relevance"
    if sort not in ("relevance", "time"):
        raise Refusal(400, f"unknown sort {sort!r}", "use relevance or time")
    return SearchQuery(text=one("q") or "", tasking_id=tasking_id, filters=parse_filters(filters),
                       time_from=parse_time(one("from"), "from"), time_to=parse_time(one("to"), "to"),
                       sort=sort, offset=max(0, offset), limit=min(max(1, limit), 100))  # type: ignore[arg-type]


def next_page(query: SearchQuery) -> list[tuple[str, str]]:
    """The fields of the search's next page (the results page posts them again, with the session's token)."""
    fields = [("tasking", query.tasking_id), ("q", query.text), ("sort", query.sort), ("offset", str(query.offset + query.limit))]
    fields += [(name, value) for name, value in query.filters.items()]
    fields += [(k, v.date().isoformat()) for k, v in (("from", query.time_from), ("to", query.time_to)) if v]
    return fields


def review_view(params: Fields, offset: int) -> str:
    """The review page's query string: its filters and where in the list (a mark brings the reviewer back there)."""
    kept = [(k, first(params, k)) for k in REVIEW_FILTERS if first(params, k)]
    return urlencode(kept + ([("offset", str(offset))] if offset else []))


def review_offset(params: Fields) -> int:
    try:
        return max(0, int(first(params, "offset") or 0))
    except ValueError as exc:
        raise Refusal(400, "offset must be a whole number") from exc
