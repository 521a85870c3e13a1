"""The tasking lifecycle: requested, approved by a supervisor who is not the requester, revoked or expired.

A tasking's team is checked against the users when it is requested and again when it is approved: a name that
is no user is refused, so nobody created later under that name finds access waiting. The approver is shown who
gets access (`access`: the requester and the team, with their roles), and the approval's audit entry records it.
"""
from __future__ import annotations

from guards.tasking_rules import load_tasking_lexicon, request_problems
from pipeline.app import App
from pipeline.errors import FcmonError, Forbidden
from pipeline.models import Tasking, utcnow
from pipeline.state import User

REQUEST_ROLES = ("analyst", "detective", "supervisor")
APPROVAL_FIELDS = ("approved_by", "approved_at", "revoked", "revoked_by", "revoked_at")


NO_SUCH_USER = "no such user"


def members(tasking: Tasking, roles: dict[str, str]) -> list[dict[str, str]]:
    """Who may search under the tasking once approved: its requester and each team member, with their roles."""
    return [{"name": tasking.requested_by, "role": roles.get(tasking.requested_by, NO_SUCH_USER), "as": "requester"},
            *({"name": name, "role": roles.get(name, NO_SUCH_USER), "as": "team"} for name in dict.fromkeys(tasking.team)
              if name != tasking.requested_by)]


def access(app: App, tasking: Tasking) -> list[dict[str, str]]:
    """The tasking's members (above); a team name that is no user is refused, naming them all, never left waiting."""
    team = members(tasking, app.state.roles())
    unknown = [m["name"] for m in team if m["role"] == NO_SUCH_USER and m["as"] == "team"]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        which = "which is no user" if len(unknown) == 1 else "which are no users"
        raise FcmonError(f"tasking {tasking.id}'s team names {names}, {which}",
                         "name existing users in the team (`fcmon user list`), or have an administrator add them first")
    return team


def request_tasking(app: App, user: User, tasking: Tasking) -> tuple[Tasking, list[str]]:
    """Store a new tasking as pending; approval fields in the file are dropped (only `approve` grants approval)."""
    if user.role not in REQUEST_ROLES:
        raise Forbidden(f"{user.name} is {user.role}; requesting a tasking needs the role {', '.join(REQUEST_ROLES)}")
    if tasking.requested_by != user.name:
        raise FcmonError(f"the tasking says requested_by={tasking.requested_by!r} but you act as {user.name!r}",
                         "request taskings as yourself: fix requested_by or --as")
    dropped = [f for f in APPROVAL_FIELDS if getattr(tasking, f)]
    tasking = tasking.model_copy(update={f: Tasking.model_fields[f].default for f in APPROVAL_FIELDS} | {"created_at": utcnow()})
    if tasking.expires_at <= utcnow():
        raise FcmonError(f"tasking {tasking.id} expires in the past ({tasking.expires_at.isoformat()})", "set a future expires_at")
    problems = request_problems(tasking, load_tasking_lexicon(app.settings))
    if problems:
        raise FcmonError(f"tasking {tasking.id} refused: " + "; ".join(f"{p.message} ({p.clause})" for p in problems),
                         "rewrite the tasking (see docs/compliance.md, rule 7)")
    access(app, tasking)
    app.state.put_tasking(tasking, new=True)
    app.audit.append("tasking.request", user.name, tasking.model_dump(mode="json"))
    return tasking, dropped


def approve_tasking(app: App, user: User, tasking_id: str) -> Tasking:
    if user.role != "supervisor":
        raise Forbidden(f"{user.name} is {user.role}; only a supervisor approves taskings")
    tasking = app.state.tasking(tasking_id)
    if tasking.requested_by == user.name:
        raise Forbidden(f"{user.name} requested tasking {tasking.id} and cannot approve it", "another supervisor must approve it")
    status = tasking.status(utcnow())
    if status != "pending":
        raise FcmonError(f"tasking {tasking.id} is {status} and cannot be approved",
                         "request a new tasking" if status in ("expired", "revoked") else None)
    team = access(app, tasking)  # checked again: a tasking stored otherwise may name no user
    tasking = tasking.model_copy(update={"approved_by": user.name, "approved_at": utcnow()})
    app.audit.append("tasking.approve", user.name, {"tasking_id": tasking.id, "approved_at": tasking.approved_at.isoformat(),
                                                    "access": team})
    app.state.put_tasking(tasking)
    return tasking


def revoke_tasking(app: App, user: User, tasking_id: str, reason: str) -> Tasking:
    tasking = app.state.tasking(tasking_id)
    if user.role != "supervisor" and user.name != tasking.requested_by:
        raise Forbidden(f"{user.name} may not revoke tasking {tasking.id}", "its requester or a supervisor can")
    if tasking.revoked:
        return tasking
    tasking = tasking.model_copy(update={"revoked": True, "revoked_by": user.name, "revoked_at": utcnow()})
    app.audit.append("tasking.revoke", user.name, {"tasking_id": tasking.id, "reason": reason})
    app.state.put_tasking(tasking)
    return tasking
