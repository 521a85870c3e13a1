"""Situational-awareness packets: requested, approved by a supervisor, disseminated on record (28CFR23.20(e)-(g), D3.IV.A.10).

A packet names reviewed records of one tasking, who receives them (person and agency) and why that recipient
needs to know and has the right to know. Records the automated chain stored are `unreviewed` and cannot be
packed: a person evaluates a record (`fcmon record review`) before it leaves the center. A supervisor other than
the requester approves or denies. Rendering is the dissemination: the DisseminationEvent (who, to whom, why,
when, which records) is written to the audit log first (no log, no packet), then the document, which names that
audit entry: HTML or PDF from one template (pipeline/packet_document.py, pipeline/pdf.py). Requests, decisions
and refusals are audited too. Everything crawled is escaped in the packet.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field

from pipeline.app import App
from pipeline.errors import FcmonError, Forbidden
from pipeline.models import DisseminationEvent, IndexedRecord, Strict, Tasking, utcnow
from pipeline.packet_document import format_of, packet_html
from pipeline.pdf import engine, html_to_pdf
from pipeline.records import record_under, refusals_audited
from pipeline.search import authorize_search
from pipeline.state import User

REQUEST_ROLES = ("detective", "analyst", "supervisor")
PacketStatus = Literal["requested", "approved", "denied"]


class Packet(Strict):
    id: str
    tasking_id: str
    record_ids: list[str] = Field(min_length=1)
    recipient: str = Field(min_length=1)
    recipient_agency: str = Field(min_length=1)
    need_to_know: str = Field(min_length=1, description="Why the recipient needs the information for a law enforcement activity.")
    right_to_know: str = Field(min_length=1, description="The recipient's authority to receive it.")
    requested_by: str
    requested_at: AwareDatetime
    status: PacketStatus = "requested"
    decided_by: str | None = None
    decided_at: AwareDatetime | None = None
    decision_note: str | None = None


def _stated(**fields: str) -> None:
    for name, value in fields.items():
        if not value.strip():
            raise FcmonError(f"the packet's {name.replace('_', '-')} is empty",
                             f"state it with --{name.replace('_', '-')}: it is recorded on every dissemination (28CFR23.20(e))")


def _disseminable(app: App, tasking: Tasking, record_ids: list[str]) -> list[IndexedRecord]:
    """The records, each stored under the tasking, reviewed by a person and not past its purge date."""
    records = [record_under(app, record_id, tasking) for record_id in record_ids]
    today = utcnow().date()
    for record in records:
        if record.labels.review_status != "reviewed":
            raise Forbidden(f"record {record.id} is unreviewed: automated collection is not disseminated before a person evaluates it",
                            f"an analyst reviews it first: `fcmon record review {record.id} --tasking {tasking.id} ...`")
        if record.labels.purge_by <= today:
            raise Forbidden(f"record {record.id} was due for purge on {record.labels.purge_by}", "it cannot be disseminated")
    return records


def request(app: App, user: User, tasking_id: str, record_ids: list[str], recipient: str, recipient_agency: str,
            need_to_know: str, right_to_know: str) -> Packet:
    """A detective (or an analyst or supervisor on the tasking) asks for a packet; audited as packet.request."""
    _stated(recipient=recipient, agency=recipient_agency, need_to_know=need_to_know, right_to_know=right_to_know)
    record_ids = list(dict.fromkeys(record_ids))
    if not record_ids:
        raise FcmonError("a packet needs at least one record", "name records with --record ID (see `fcmon search --json`)")
    payload = {"tasking_id": tasking_id, "record_ids": record_ids, "recipient": recipient, "recipient_agency": recipient_agency,
               "need_to_know": need_to_know, "right_to_know": right_to_know, "user": user.name}
    with refusals_audited(app, user, "packet.request", payload):
        if user.role not in REQUEST_ROLES:
            raise Forbidden(f"{user.name} is {user.role}; requesting a packet needs the role {', '.join(REQUEST_ROLES)}")
        tasking = app.state.tasking(tasking_id)
        authorize_search(user, tasking)
        _disseminable(app, tasking, record_ids)
    packet = Packet(id=f"P-{uuid.uuid4().hex[:12]}", tasking_id=tasking.id, record_ids=record_ids, recipient=recipient,
                    recipient_agency=recipient_agency, need_to_know=need_to_know, right_to_know=right_to_know,
                    requested_by=user.name, requested_at=utcnow())
    app.audit.append("packet.request", user.name, {**payload, "packet_id": packet.id, "role": user.role,
                                                   "case_number": tasking.case_number})
    app.state.put_packet(packet.id, packet.tasking_id, packet.model_dump_json())
    return packet


def packet(app: App, packet_id: str) -> Packet:
    return Packet.model_validate_json(app.state.packet(packet_id))


def visible_packets(app: App, user: User) -> list[Packet]:
    """Supervisors see every packet; anyone else the packets they requested."""
    packets = [Packet.model_validate_json(body) for body in app.state.packets()]
    return packets if user.role == "supervisor" else [p for p in packets if p.requested_by == user.name]


def decide(app: App, user: User, packet_id: str, approve: bool, note: str) -> Packet:
    """A supervisor other than the requester approves or denies; audited (packet.approve|deny) before it takes effect."""
    if not note.strip():
        raise FcmonError("the decision note is empty", "say why with --note; it is audited")
    kind = "packet.approve" if approve else "packet.deny"
    payload = {"packet_id": packet_id, "note": note, "user": user.name}
    with refusals_audited(app, user, kind, payload):
        if user.role != "supervisor":
            raise Forbidden(f"{user.name} is {user.role}; approving packets needs the role supervisor")
        found = packet(app, packet_id)
        if found.requested_by == user.name:
            raise Forbidden(f"{user.name} requested packet {packet_id}; another supervisor must decide it")
        if found.status != "requested":
            raise FcmonError(f"packet {packet_id} was already {found.status} by {found.decided_by}", "request a new packet")
        tasking = app.state.tasking(found.tasking_id)
        if approve:
            authorize_search(user, tasking)  # the tasking is still active
            _disseminable(app, tasking, found.record_ids)
    decided = found.model_copy(update={"status": "approved" if approve else "denied", "decided_by": user.name,
                                       "decided_at": utcnow(), "decision_note": note})
    app.audit.append(kind, user.name, {**payload, "tasking_id": found.tasking_id, "requested_by": found.requested_by,
                                       "record_ids": found.record_ids})
    app.state.put_packet(decided.id, decided.tasking_id, decided.model_dump_json())
    return decided


def render(app: App, user: User, packet_id: str, out: Path, client: str = "local") -> DisseminationEvent:
    """Disseminate an approved packet into the file `out` (the CLI): its suffix chooses, .pdf a PDF, .html HTML."""
    kind = format_of(out)
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise FcmonError(f"cannot write the packet to {out}: {out.parent} is not a writable folder",
                         "choose --out in a folder you can write; nothing was disseminated")
    event, document = disseminate(app, user, packet_id, client, str(out), kind)
    _write(out, as_format(document, kind))
    return event


def disseminate(app: App, user: User, packet_id: str, client: str, destination: str,
                kind: str = "html") -> tuple[DisseminationEvent, str]:
    """An approved packet's HTML, once its DisseminationEvent (with the `kind` of file it goes out as, html or pdf)
    is in the audit log (no log, no packet): the document names that entry's sequence and hash."""
    payload = {"packet_id": packet_id, "user": user.name, "out": destination, "client": client, "format": kind}
    with refusals_audited(app, user, "packet.disseminate", payload):
        if kind not in ("html", "pdf"):
            raise FcmonError(f"a packet is rendered as html or pdf, not {kind!r}", "choose html or pdf")
        if kind == "pdf":
            engine()  # WeasyPrint loads, or nothing is disseminated
        found = packet(app, packet_id)
        if user.name != found.requested_by and user.role != "supervisor":
            raise Forbidden(f"{user.name} neither requested packet {packet_id} nor is a supervisor")
        if found.status != "approved":
            raise Forbidden(f"packet {packet_id} is {found.status}: only an approved packet is disseminated",
                            "a supervisor other than the requester approves it with `fcmon packet approve`")
        tasking = app.state.tasking(found.tasking_id)
        if tasking.status(utcnow()) != "active":
            raise Forbidden(f"tasking {tasking.id} is {tasking.status(utcnow())}: its records are no longer disseminated")
        authorize_search(user, tasking)  # still on the tasking (a requester taken off its team disseminates nothing)
        records = _disseminable(app, tasking, found.record_ids)
    assert found.decided_by is not None
    event = DisseminationEvent(id=uuid.uuid4().hex, at=utcnow(), packet_id=found.id, tasking_id=found.tasking_id,
                               disseminated_by=user.name, approved_by=found.decided_by, recipient=found.recipient,
                               recipient_agency=found.recipient_agency, need_to_know=found.need_to_know,
                               right_to_know=found.right_to_know, record_ids=found.record_ids)
    entry = app.audit.append("packet.disseminate", user.name, {**event.model_dump(mode="json"), "case_number": tasking.case_number,
                                                               "client": client, "out": destination, "format": kind})
    return event, packet_html(found, tasking, records, event, entry)


def as_format(document: str, kind: str) -> str | bytes:
    """The packet's HTML as it goes out: itself, or printed to PDF."""
    return html_to_pdf(document) if kind == "pdf" else document


def _write(out: Path, document: str | bytes) -> None:
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if isinstance(document, bytes):
            temporary.write_bytes(document)
        else:
            temporary.write_text(document, encoding="utf-8")
        os.replace(temporary, out)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise FcmonError(f"cannot write the packet to {out}: {exc.strerror}",
                         "the dissemination is already in the audit log; render it again to a writable path") from exc
