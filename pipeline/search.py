"""Search with a purpose: authorize, write the QueryEvent first (fail closed), run, record what came back."""
from __future__ import annotations

import uuid

from pipeline.audit import AuditLog
from pipeline.errors import FcmonError, Forbidden
from pipeline.index import Index, SearchPage, SearchQuery
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


def audited_search(state: State, audit: AuditLog, index: Index, user: User, query: SearchQuery,
                   interface: Interface, client: str = "local") -> tuple[QueryEvent, SearchPage]:
    event = QueryEvent(id=uuid.uuid4().hex, at=utcnow(), user=user.name, role=user.role, tasking_id=query.tasking_id,
                       query=query.text, filters=query.describe_filters(), client=client, interface=interface)
    try:
        tasking = state.tasking(query.tasking_id)
        authorize_search(user, tasking)
    except FcmonError as refusal:
        audit.append("query.refused", user.name, {**event.model_dump(mode="json"), "refusal": str(refusal)})
        raise
    event = event.model_copy(update={"case_number": tasking.case_number})
    audit.append("query", user.name, event.model_dump(mode="json"))
    page = index.search(query)
    result = QueryResult(query_id=event.id, at=utcnow(), hits_total=page.total, returned_ids=[h.record.id for h in page.hits])
    audit.append("query.result", user.name, result.model_dump(mode="json"))
    return event, page
