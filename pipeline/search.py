"""Search with a purpose: authorize, write the QueryEvent first (fail closed), run, record what came back."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from pipeline.audit import AuditLog
from pipeline.errors import FcmonError, Forbidden
from pipeline.index import FILTER_FIELDS, Hit, Index, SearchPage, SearchQuery
from pipeline.periods import parse_bound
from pipeline.models import Interface, QueryEvent, QueryResult, Tasking, utcnow
from pipeline.state import State, User

SEARCH_ROLES = ("analyst", "detective", "supervisor")


def authorize_search(user: User, tasking: Tasking) -> None:
    """Who may search under a tasking: its requester, its team, or a supervisor; and only while it is active."""
    if user.role not in SEARCH_ROLES:
        raise Forbidden(f"{user.name} is {user.role}; searching needs the role analyst, detective or supervisor")
    if user.role != "supervisor" and user.name != tasking.requested_by and user.name not in tasking.team:
        raise Forbidden(f"{user.name} is neither the requester nor on the team of tasking {tasking.id}",
                        "ask its requester or a supervisor to add you to the tasking's team")
    status = tasking.status(utcnow())
    if status != "active":
        raise Forbidden(f"tasking {tasking.id} is {status}: searches need an approved, unexpired, unrevoked tasking")


def new_event(user: User, tasking_id: str, text: str, filters: dict, interface: Interface, client: str) -> QueryEvent:
    return QueryEvent(id=uuid.uuid4().hex, at=utcnow(), user=user.name, role=user.role, tasking_id=tasking_id,
                      query=text, filters=filters, client=client, interface=interface)


def open_query(state: State, audit: AuditLog, user: User, event: QueryEvent) -> QueryEvent:
    """Authorize and write the QueryEvent (every interface's gate); a refusal is logged as query.refused and raised."""
    try:
        tasking = state.tasking(event.tasking_id)
        authorize_search(user, tasking)
    except FcmonError as refusal:
        refuse_query(audit, event, refusal)
        raise
    event = event.model_copy(update={"case_number": tasking.case_number})
    audit.append("query", user.name, event.model_dump(mode="json"))
    return event


def refuse_query(audit: AuditLog, event: QueryEvent, refusal: Exception) -> None:
    audit.append("query.refused", event.user, {**event.model_dump(mode="json"), "refusal": str(refusal)})


def close_query(audit: AuditLog, event: QueryEvent, hits_total: int, returned_ids: list[str]) -> None:
    result = QueryResult(query_id=event.id, at=utcnow(), hits_total=hits_total, returned_ids=returned_ids)
    audit.append("query.result", event.user, result.model_dump(mode="json"))


def audited_search(state: State, audit: AuditLog, index: Index, user: User, query: SearchQuery,
                   interface: Interface, client: str = "local") -> tuple[QueryEvent, SearchPage]:
    event = open_query(state, audit, user, new_event(user, query.tasking_id, query.text, query.describe_filters(),
                                                     interface, client))
    try:
        page = index.search(query)
    except BaseException:
        close_query(audit, event, 0, [])  # a query that failed (a syntax error, a down index) returned nothing
        raise
    close_query(audit, event, page.total, [h.record.id for h in page.hits])
    return event, page


# what every search interface (CLI, web console, API) takes and gives
def parse_time(value: str | None, option: str) -> datetime | None:
    return None if value is None else parse_bound(value, option)


def parse_filters(pairs: tuple[str, ...]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in FILTER_FIELDS:
            raise FcmonError(f"bad filter {pair!r}", f"use NAME=VALUE with NAME one of {', '.join(FILTER_FIELDS)}")
        filters[name] = value
    return filters


def hit_dict(hit: Hit) -> dict[str, Any]:
    r = hit.record
    return {"id": r.id, "score": round(hit.score, 4), "title": r.title, "author": r.author, "url": r.final_url,
            "published_at": r.published_at, "source_kind": r.source_kind, "highlights": hit.highlights,
            "labels": r.labels.model_dump(mode="json"), "predicate": r.predicate.model_dump(mode="json"),
            "reviewed_by": r.reviewed_by, "non_subject_identifiers": r.non_subject_identifiers, "pii_masked": r.pii_masked}
