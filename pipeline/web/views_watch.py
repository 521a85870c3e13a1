"""The console's pages for standing queries (as `fcmon watch`), alerts, and collection (as `fcmon monitor status`):
one function per page, as in views.py; pipeline/web/watching.py calls the domain code."""
from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pipeline.errors import FcmonError
from pipeline.search import SEARCH_ROLES
from pipeline.web.console import refusal_of
from pipeline.web.forms import Fields, Refusal, first
from pipeline.web.request import Req
from pipeline.web.views import flat, page, redirect


def watches_page(req: Req, status: int = 200, form: Fields | None = None, **context: Any) -> Response:
    """Everyone's watches for a supervisor (and an administrator, read-only), the user's own for the others."""
    desk, may_add = req.console.watch_desk, req.user.role in SEARCH_ROLES
    return page(req, "watches.html", "Watches", status, watches=desk.listed(req.user), form=flat(form or {}),
                may_add=may_add, taskings=req.console.taskings_for(req.user) if may_add else [],
                webhook_allow=desk.webhook_allow, **context)


def watches(req: Req) -> Response:
    return watches_page(req)


def add_watch(req: Req) -> Response:
    """The search gate of `fcmon watch add` (refusals are audited there); a refused watch comes back as sent."""
    form = req.form
    try:
        req.console.watch_desk.add(req.user, first(form, "tasking"), first(form, "query"), first(form, "webhook"),
                                   "web", req.client)
    except (Refusal, FcmonError) as exc:
        status, message, hint = refusal_of(exc)
        return watches_page(req, status, form, error=message, hint=hint)
    return redirect("/watches")


def end_watch(req: Req) -> Response:
    req.console.watch_desk.remove(req.user, first(req.form, "watch_id"), first(req.form, "reason"))
    return redirect("/watches")


def alerts(req: Req) -> Response:
    return page(req, "alerts.html", "Alerts", alerts=req.console.watch_desk.alerts(req.user))


def mark_read(req: Req) -> Response:
    req.console.watch_desk.mark_read(req.user, req.form.get("alert", []))
    return redirect("/alerts")


def collection(req: Req) -> Response:
    desk = req.console.watch_desk
    return page(req, "collection.html", "Collection", sources=desk.sources(req.user), collected=desk.collected(req.user))
