"""One function per page: read the request, call one Console method, render one template (or redirect).

Each view takes a Req (routes.py has checked the session, the form's CSRF token and the route's roles already) and
returns a Starlette response. A Refusal or FcmonError raised here becomes the error page (or the API's JSON error).
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import HTMLResponse, Response

from pipeline.errors import FcmonError
from pipeline.models import utcnow
from pipeline.packets import REQUEST_ROLES
from pipeline.review import AUDIT_READERS
from pipeline.search import hit_dict
from pipeline.taskings import REQUEST_ROLES as TASKING_ROLES
from pipeline.web.forms import REVIEW_PAGE_SIZE, Fields, Refusal, first, next_page, review_offset, review_view, search_fields
from pipeline.web.console import refusal_of
from pipeline.web.request import Req
from pipeline.web.security import SESSION_COOKIE, from_elsewhere, session_cookie
from pipeline.web.templating import render
from pipeline.web.watching import header


def page(req: Req, template: str, title: str, status: int = 200, **context: Any) -> HTMLResponse:
    return render(template, status, title=title, user=req.user, csrf=req.session.csrf if req.session else None,
                  audit_readers=AUDIT_READERS, **header(req.console.watch_desk, req.user), **context)


def redirect(location: str, **headers: str) -> Response:
    return Response(status_code=303, headers={"Location": location, **headers})


def flat(fields: Fields) -> dict[str, str]:
    """Each field's first value, for filling a form in again."""
    return {name: values[0] for name, values in fields.items() if values}


def audited_get(req: Req, what: str) -> None:
    """A page whose reading is audited, asked by another origin's page (even of this site), is refused before
    anything is read or logged: no other page makes a user's browser write reads to the log in their name."""
    if from_elsewhere(req.headers):
        raise Refusal(403, f"this request for {what} did not come from the console's own pages", f"open {what} from the console")


# signing in and out
def login_form(req: Req) -> Response:
    return page(req, "login.html", "Sign in")


def sign_in(req: Req) -> Response:
    if from_elsewhere(req.headers):  # a page of another origin (even of this site) must not sign a victim in
        raise Refusal(403, "this sign-in did not come from the console's own page", "open the console and sign in there")
    try:
        token = req.console.sign_in(first(req.form, "name"), first(req.form, "password"), req.client)
    except Refusal as refusal:
        return page(req, "login.html", "Sign in", refusal.status, error=str(refusal))
    return redirect("/", **{"Set-Cookie": session_cookie(token, req.console.session_seconds)})


def sign_out(req: Req) -> Response:
    req.console.sign_out(req.cookies.get(SESSION_COOKIE))
    return redirect("/login", **{"Set-Cookie": f"{SESSION_COOKIE}=; Max-Age=0; Path=/"})


# searching and reading
def home(req: Req) -> Response:
    return page(req, "search.html", "Search", taskings=req.console.taskings_for(req.user), fields={}, page=None)


def search_form(req: Req) -> Response:
    """A search's link fills the form in and runs nothing: only a posted search (with the session's token) runs."""
    return page(req, "search.html", "Search", taskings=req.console.taskings_for(req.user),
                fields=flat(search_fields(req.params)), page=None, prefilled=bool(req.params))


def search(req: Req) -> Response:
    fields = search_fields(req.form)
    query_id, found, query = req.console.search(req.user, fields, "web", req.client)
    more = next_page(query) if query.offset + len(found.hits) < found.total else None
    return page(req, "search.html", "Search", taskings=req.console.taskings_for(req.user), fields=flat(fields),
                page=found, query=query, query_id=query_id, next_page=more, may_request=req.user.role in REQUEST_ROLES)


def record(req: Req) -> Response:
    found = req.console.record(req.user, req.path_params["record_id"], first(req.form, "tasking"), "web")
    return page(req, "record.html", found.title or "Record", record=found)


def api_search(req: Req) -> Response:
    if from_elsewhere(req.headers):  # a browser sends remembered Basic credentials on other pages' requests too
        raise Refusal(403, "the API does not answer requests from other sites' pages", "call it from a program, not a page")
    user = req.console.basic_user(req.headers.get("authorization"), req.client)
    query_id, found, _ = req.console.search(user, req.params, "api", req.client)
    body = {"query_id": query_id, "total": found.total, "hits": [hit_dict(h) for h in found.hits]}
    return Response(json.dumps(body, default=str), media_type="application/json")


# packets
def packets(req: Req) -> Response:
    return page(req, "packets.html", "Packets", packets=req.console.packets(req.user))


def request_packet(req: Req) -> Response:
    req.console.request_packet(req.user, req.form)
    return redirect("/packets")


def decide_packet(req: Req) -> Response:
    req.console.decide_packet(req.user, first(req.form, "packet_id"), first(req.form, "decision") == "approve", first(req.form, "note"))
    return redirect("/packets")


def disseminate(req: Req) -> Response:
    """The packet's download: HTML, or PDF with format=pdf (the same route, rules and audit entry)."""
    packet_id, kind = first(req.form, "packet_id"), first(req.form, "format") or "html"
    document = req.console.disseminate(req.user, packet_id, req.client, kind)
    name = re.sub(r"[^A-Za-z0-9-]", "", packet_id)
    disposition = {"Content-Disposition": f'attachment; filename="packet-{name}.{kind}"'}
    if isinstance(document, bytes):
        return Response(document, media_type="application/pdf", headers=disposition)
    return HTMLResponse(document, headers=disposition)


# supervision: the query log, the quarantine, retention
def review(req: Req) -> Response:
    audited_get(req, "the query log")
    rows, total = req.console.review_listing(req.user, req.params)
    offset = review_offset(req.params)
    return page(req, "review.html", "Query review", rows=rows, total=total, offset=offset, fields=flat(req.params),
                charts=req.console.review_charts(req.user, req.params),
                view=review_view(req.params, offset), can_mark=req.user.role == "supervisor", page_size=REVIEW_PAGE_SIZE,
                newer=review_view(req.params, max(0, offset - REVIEW_PAGE_SIZE)) if offset > 0 else None,
                older=review_view(req.params, offset + REVIEW_PAGE_SIZE) if offset + len(rows) < total else None)


def mark_query(req: Req) -> Response:
    req.console.mark_query(req.user, first(req.form, "query_id"), first(req.form, "status"), first(req.form, "note"))
    view = parse_qs(first(req.form, "view"))
    back = review_view(view, review_offset(view))
    return redirect(f"/review?{back}" if back else "/review")  # rebuilt from known fields: never a redirect elsewhere


def quarantine(req: Req) -> Response:
    audited_get(req, "the quarantine")
    return page(req, "quarantine.html", "Quarantine", held=req.console.held(req.user))


def held_item(req: Req) -> Response:
    return page(req, "held.html", "Held item", held=req.console.held_item(req.user, req.path_params["item_id"]))


def decide_held(req: Req) -> Response:
    req.console.decide_held(req.user, first(req.form, "item_id"), first(req.form, "choice"), first(req.form, "reason"))
    return redirect("/quarantine")


def retention(req: Req) -> Response:
    return page(req, "retention.html", "Retention", fields=flat(req.params), rows=None)


def retention_due(req: Req) -> Response:
    within, rows = req.console.due(req.user, req.form)
    return page(req, "retention.html", "Retention", fields=flat(req.form), rows=rows, within=within)


def review_retention(req: Req) -> Response:
    """Validate or purge a record, then list again what comes due (the same horizon; the listing is audited)."""
    form = req.form
    req.console.review_retention(req.user, first(form, "record_id"), first(form, "tasking_id"), first(form, "choice"), first(form, "reason"))
    return retention_due(req)


# taskings
def taskings_page(req: Req, status: int = 200, form: Fields | None = None, **context: Any) -> Response:
    now = utcnow()
    listed = req.console.taskings(req.user)
    shown = [(t, t.status(now)) for t in listed]
    return page(req, "taskings.html", "Taskings", status, taskings=shown, access=req.console.access(listed),
                form=flat(form or {}), may_request=req.user.role in TASKING_ROLES, **context)


def taskings(req: Req) -> Response:
    return taskings_page(req)


def request_tasking(req: Req) -> Response:
    try:
        req.console.request_tasking(req.user, req.form)
    except (Refusal, FcmonError) as exc:  # the form comes back as sent, with what to fix
        status, message, hint = refusal_of(exc)
        return taskings_page(req, status, req.form, error=message, hint=hint)
    return redirect("/taskings")


def approve_tasking(req: Req) -> Response:
    req.console.approve_tasking(req.user, first(req.form, "tasking_id"))
    return redirect("/taskings")


def revoke_tasking(req: Req) -> Response:
    req.console.revoke_tasking(req.user, first(req.form, "tasking_id"), first(req.form, "reason"))
    return redirect("/taskings")
