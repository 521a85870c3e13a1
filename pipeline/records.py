"""Stored records read and reviewed by people (Real-Time and Open Source Analysis guidance; 28CFR23.20(g)-(h)).

Automated collection is stored `unreviewed` and is not criminal intelligence. An analyst on the tasking
reviews a record: evaluates its source reliability and content validity and submits it (recorded as
`reviewed_by`, the record's 28 CFR Part 23 submitter). It becomes criminal intelligence only under an
approved, still active criminal-predicate tasking. Reads and reviews are authorized like searches and written
to the audit log before they happen (no log, no read, no review); retention is never extended and
non-subject identifiers are never touched.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from guards.labels import FIVE_YEARS
from guards.tasking_rules import load_tasking_lexicon, use_problems
from pipeline.app import App
from pipeline.errors import FcmonError, Forbidden, NotFound
from pipeline.models import ContentValidity, IndexedRecord, Labels, SourceReliability, Tasking, utcnow
from pipeline.search import authorize_search
from pipeline.state import User

REVIEW_ROLES = ("analyst", "supervisor")


@contextmanager
def refusals_audited(app: App, user: User, kind: str, payload: dict[str, Any]) -> Iterator[None]:
    """A refusal inside is written to the audit log as `{kind}.refused`, then raised."""
    try:
        yield
    except FcmonError as refusal:
        app.audit.append(f"{kind}.refused", user.name, {**payload, "role": user.role, "refusal": str(refusal)})
        raise


def authorized(user: User, tasking: Tasking, roles: tuple[str, ...] | None = None) -> None:
    """Who may act on a tasking's records: as for a search, and holding one of `roles` when given."""
    if roles and user.role not in roles:
        raise Forbidden(f"{user.name} is {user.role}; reviewing records needs the role {' or '.join(roles)}")
    authorize_search(user, tasking)


def record_under(app: App, record_id: str, tasking: Tasking) -> IndexedRecord:
    """A record of this tasking; one of another tasking is as unknown as a missing one."""
    record = app.index.get(record_id)
    if record is None or record.tasking_id != tasking.id:
        raise NotFound(f"no record {record_id!r} under tasking {tasking.id}",
                       f"find record ids with `fcmon search QUERY --tasking {tasking.id} --json`")
    return record


def show(app: App, user: User, record_id: str, tasking_id: str, interface: str = "cli") -> IndexedRecord:
    """Read one record: authorized like a search, audited (`record.read`) before the read."""
    payload = {"record_id": record_id, "tasking_id": tasking_id, "user": user.name, "interface": interface}
    with refusals_audited(app, user, "record.read", payload):
        tasking = app.state.tasking(tasking_id)
        authorized(user, tasking)
    app.audit.append("record.read", user.name, {**payload, "role": user.role, "case_number": tasking.case_number})
    return record_under(app, record_id, tasking)


def becomes_criminal_intelligence(record: IndexedRecord, tasking: Tasking) -> bool:
    """Only under the approved, active criminal predicate recorded on the record (never IGA or public safety)."""
    return (bool(tasking.approved_by) and tasking.kind == "criminal_predicate" and record.predicate.kind == "criminal_predicate"
            and record.predicate.tasking_id == tasking.id and tasking.status(utcnow()) == "active")


def review(app: App, user: User, record_id: str, tasking_id: str, reliability: SourceReliability,
           validity: ContentValidity, note: str) -> dict[str, Any]:
    """Evaluate and submit a record; the audit entry (labels before and after) is written before the index changes."""
    if not note.strip():
        raise FcmonError("the review note is empty", "say why in --note; it is audited and kept on the record")
    payload = {"record_id": record_id, "tasking_id": tasking_id, "user": user.name,
               "source_reliability": reliability, "content_validity": validity, "note": note}
    with refusals_audited(app, user, "record.review", payload):
        tasking = app.state.tasking(tasking_id)
        authorized(user, tasking, REVIEW_ROLES)
        record = record_under(app, record_id, tasking)
        problems = use_problems(tasking, app.state.roles(), utcnow(), load_tasking_lexicon(app.settings))
        if problems:
            raise Forbidden(f"record {record_id} cannot be reviewed: {problems[0].message}",
                            "a supervisor must fix or re-approve the tasking first")
    before = record.labels
    cap = (record.fetched_at + FIVE_YEARS).date()  # never extended; capped if it ever exceeded five years
    after = Labels.model_validate(before.model_dump() | {
        "review_status": "reviewed", "source_reliability": reliability, "content_validity": validity,
        "criminal_intelligence": becomes_criminal_intelligence(record, tasking),
        "review_by": min(before.review_by, cap), "purge_by": min(before.purge_by, cap)})
    reviewed = record.model_copy(update={"labels": after, "reviewed_by": user.name, "reviewed_at": utcnow(),
                                         "review_note": note})
    app.audit.append("record.review", user.name, {
        **payload, "role": user.role, "case_number": tasking.case_number, "reviewed_at": reviewed.reviewed_at.isoformat(),
        "before": before.model_dump(mode="json"), "after": after.model_dump(mode="json")})
    app.index.upsert([reviewed])
    return {"record_id": record_id, "tasking_id": tasking.id, "reviewed_by": user.name,
            "reviewed_at": reviewed.reviewed_at, "note": note, "labels": after.model_dump(mode="json")}
