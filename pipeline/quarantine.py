"""Quarantine decisions: a supervisor keeps (indexes) or purges a held item; expired holds are purged.

Every decision is written to the audit log before it takes effect (no log, no decision), and so is every
reading of the quarantine: the list (`quarantine.list`) and each held item opened (`quarantine.show`). A kept item is
indexed with the supervisor and reason recorded on it; a purged one leaves only its id, content hash
and the reason, as a rejection record. Holds older than `quarantine_days` are purged by
`fcmon quarantine purge-expired`, by `fcmon maintain`, at the start of every `fcmon work` and before every
quarantine command.
"""
from __future__ import annotations

import logging
from typing import Any

from guards.tasking_rules import load_tasking_lexicon, use_problems
from pipeline.app import App
from pipeline.errors import FcmonError
from pipeline.models import GuardDecision, Reason, utcnow
from pipeline.state import User
from pipeline.worker import to_record

log = logging.getLogger(__name__)

PURGE_CLAUSE = "28CFR23.20(b); D3.II"


def listed(app: App, user: User, interface: str = "cli") -> list[dict[str, Any]]:
    """The held items (ids, taskings, the rules and signals that held them; no content), the reading audited
    (`quarantine.list`: who, through what, which items) before they are shown."""
    held = app.state.quarantined()
    app.audit.append("quarantine.list", user.name, {"user": user.name, "interface": interface, "count": len(held),
                                                    "item_ids": [h["item_id"] for h in held]})
    return held


def show(app: App, user: User, item_id: str, interface: str = "cli") -> dict[str, Any]:
    """A held item for a supervisor to decide on; the reading is audited first (held content is protected activity)."""
    item, decision, held_at, purge_after = app.state.held(item_id)
    app.audit.append("quarantine.show", user.name, {"item_id": item_id, "tasking_id": item.tasking_id, "interface": interface})
    return {"item": item.model_dump(mode="json"), "decision": decision.model_dump(mode="json"),
            "held_at": held_at, "purge_after": purge_after}


def keep(app: App, user: User, item_id: str, reason: str) -> dict[str, Any]:
    """Index a held item, with the supervisor recorded on it, if its tasking still covers it."""
    item, decision, _, _ = app.state.held(item_id)
    tasking = app.state.tasking(item.tasking_id)
    problems = use_problems(tasking, app.state.roles(), utcnow(), load_tasking_lexicon(app.settings))
    if problems:
        raise FcmonError(f"item {item_id} cannot be kept: {problems[0].message}", "purge it with --purge")
    record = to_record(item, decision).model_copy(update={"released_by": user.name, "release_reason": reason})
    app.audit.append("quarantine.keep", user.name, {"item_id": item_id, "tasking_id": item.tasking_id,
                                                    "content_sha256": item.content_sha256, "reason": reason})
    app.index.upsert([record])
    app.state.release(item_id)
    return {"item_id": item_id, "decision": "kept", "by": user.name, "reason": reason, "record_id": record.id}


def purge(app: App, actor: str, item_id: str, reason: str, *, rule: str = "quarantine_purge") -> dict[str, Any]:
    """Drop the held content; only its id, hash and the reason remain."""
    item, held, _, _ = app.state.held(item_id)
    app.audit.append(f"quarantine.{'purge' if rule == 'quarantine_purge' else 'expire'}", actor,
                     {"item_id": item_id, "tasking_id": item.tasking_id, "content_sha256": item.content_sha256, "reason": reason})
    app.state.purge_held(GuardDecision(item_id=item_id, tasking_id=item.tasking_id, decision="rejected",
                                       content_sha256=item.content_sha256, decided_at=utcnow(),
                                       reasons=[Reason(rule=rule, clause=PURGE_CLAUSE, message=f"{reason} ({actor})",
                                                       signals=held.reasons[0].signals if held.reasons else [])]))
    return {"item_id": item_id, "decision": "purged", "by": actor, "reason": reason}


def purge_expired(app: App, actor: str = "(quarantine_days)") -> list[str]:
    expired = app.state.expired_holds(utcnow().isoformat())
    for item_id in expired:
        purge(app, actor, item_id, f"held longer than quarantine_days={app.settings.quarantine_days} without a decision",
              rule="quarantine_expired")
    if expired:
        log.info("quarantine purged_expired=%d", len(expired))
    return expired
