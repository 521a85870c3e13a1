"""Every URL of the console and the API, who may call it, and the one adapter between Starlette and the views.

Each route has a Rule: who it is for (anyone, a signed-in session, HTTP Basic on the API) and, where the domain code
would not audit the refusal itself, the roles it needs. tests/test_web_routes.py calls every route as nobody and as
every role; a route added here without an expected answer there fails it. For a session's route the adapter:
reads a form only with a sound Content-Length within MAX_FORM_BYTES (a GET carries no body), finds the session
(none: GET goes to /login, POST is refused), refuses a POST from another origin or without the session's CSRF token,
checks the roles, then runs the view in a worker thread. Refusals become the error page, or JSON on the API.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.errors import FcmonError, Forbidden
from pipeline.review import AUDIT_READERS
from pipeline.search import SEARCH_ROLES
from pipeline.watches import LIST_ROLES
from pipeline.web import api, views, views_watch
from pipeline.web.console import Console, refusal_of
from pipeline.web.forms import Refusal, first
from pipeline.web.request import Req
from pipeline.web.security import SECURITY_HEADERS, SESSION_COOKIE, csrf_matches, from_elsewhere
from pipeline.web.templating import render
from pipeline.web.watching import MONITOR_READERS, header

log = logging.getLogger("pipeline.web")

MAX_FORM_BYTES = 16 * 1024
CLOSE = {"Connection": "close"}  # after a refused body: its unread bytes must never be taken for a request


@dataclass(frozen=True)
class Rule:
    auth: str  # "anyone", "session" or "basic"
    roles: tuple[str, ...] | None = None  # None: any signed-in user (the domain code decides, and audits refusals)
    what: str = ""  # the refusal for other roles: "NAME is ROLE; {what}"


ANYONE, SIGNED_IN, BASIC = Rule("anyone"), Rule("session"), Rule("basic")


def supervisors(what: str) -> Rule:
    return Rule("session", ("supervisor",), f"{what} needs the role supervisor")


class Page(Route):
    """A route with its rule, for the adapter and for the route x role test."""

    def __init__(self, path: str, method: str, view: Callable[[Req], Response], rule: Rule, console: Console):
        self.rule, self.view = rule, view
        super().__init__(path, adapter(console, view, rule), methods=[method], name=f"{method} {path}")


def routes(console: Console) -> list[Page]:
    table: list[tuple[str, str, Callable[[Req], Response], Rule]] = [
        ("/login", "GET", views.login_form, ANYONE),
        ("/login", "POST", views.sign_in, ANYONE),
        ("/logout", "POST", views.sign_out, SIGNED_IN),
        ("/", "GET", views.home, SIGNED_IN),
        ("/search", "GET", views.search_form, SIGNED_IN),
        ("/search", "POST", views.search, SIGNED_IN),
        ("/record/{record_id:path}", "POST", views.record, SIGNED_IN),
        ("/packets", "GET", views.packets, SIGNED_IN),
        ("/packets", "POST", views.request_packet, SIGNED_IN),
        ("/packets/decide", "POST", views.decide_packet, SIGNED_IN),
        ("/packets/render", "POST", views.disseminate, SIGNED_IN),
        ("/review", "GET", views.review, Rule("session", AUDIT_READERS, "the query log is for supervisors and administrators")),
        ("/review", "POST", views.mark_query, supervisors("marking queries")),
        ("/quarantine", "GET", views.quarantine, supervisors("the quarantine")),
        ("/quarantine/decide", "POST", views.decide_held, supervisors("deciding quarantined items")),
        ("/quarantine/{item_id:path}", "POST", views.held_item, supervisors("the quarantine")),
        ("/retention", "GET", views.retention, supervisors("the retention review list")),
        ("/retention/due", "POST", views.retention_due, supervisors("the retention review list")),
        ("/retention", "POST", views.review_retention, SIGNED_IN),  # pipeline.retention audits refusals
        ("/taskings", "GET", views.taskings, SIGNED_IN),
        ("/taskings", "POST", views.request_tasking, SIGNED_IN),
        ("/taskings/approve", "POST", views.approve_tasking, SIGNED_IN),
        ("/taskings/revoke", "POST", views.revoke_tasking, SIGNED_IN),
        ("/watches", "GET", views_watch.watches, Rule("session", LIST_ROLES, "watches need the role analyst, detective, supervisor or admin")),
        ("/watches", "POST", views_watch.add_watch, SIGNED_IN),  # the search gate decides, and audits refusals
        ("/watches/end", "POST", views_watch.end_watch, Rule("session", SEARCH_ROLES, "ending a watch needs the role analyst, detective or supervisor")),
        ("/alerts", "GET", views_watch.alerts, Rule("session", SEARCH_ROLES, "alerts are for users who can have watches")),
        ("/alerts/read", "POST", views_watch.mark_read, Rule("session", SEARCH_ROLES, "alerts are for users who can have watches")),
        ("/collection", "GET", views_watch.collection, Rule("session", MONITOR_READERS, "the collection status is for supervisors and administrators")),
        ("/api/search", "GET", views.api_search, BASIC),
        ("/api/watches", "GET", api.watches, BASIC),  # the API's routes check roles in pipeline/web/watching.py
        ("/api/watches", "POST", api.add_watch, BASIC),
        ("/api/watches/{watch_id}/end", "POST", api.end_watch, BASIC),
        ("/api/alerts", "GET", api.alerts, BASIC),
        ("/api/alerts/read", "POST", api.mark_read, BASIC),
        ("/api/monitor/status", "GET", api.monitor_status, BASIC),
    ]
    return [Page(path, method, view, rule, console) for path, method, view, rule in table]


def adapter(console: Console, view: Callable[[Req], Response], rule: Rule) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            body = await read_body(request)
            form = {} if is_json(request) else parse_qs(body.decode("utf-8", "replace"))
            req = Req(console, request.method, request.url.path, request.client.host if request.client else "",
                      request.headers, request.cookies, parse_qs(request.url.query, keep_blank_values=True), form,
                      dict(request.path_params), body)
            return await run_in_threadpool(checked, view, rule, req)
        except (Refusal, FcmonError) as exc:
            status, message, hint = refusal_of(exc)
            extra = CLOSE if isinstance(exc, BodyRefused) else {}
        except Exception:  # noqa: BLE001  (a bug must still answer, not drop the connection)
            log.exception("event=web.error method=%s path=%s", request.method, request.url.path)
            status, message, hint, extra = 500, "the request could not be completed", "see the service log, and report it", CLOSE
        return await run_in_threadpool(error_page, console, request, status, message, hint, extra)
    return endpoint


class BodyRefused(Refusal):
    """A body refused before it was read: the connection is closed after the answer."""


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower() == "application/json"


async def read_body(request: Request) -> bytes:
    declared, chunked = request.headers.get("content-length"), request.headers.get("transfer-encoding")
    if request.method in ("GET", "HEAD"):
        if chunked or (declared or "0").strip() != "0":
            raise BodyRefused(400, "a GET request carries no body")
        return b""
    if chunked:
        raise BodyRefused(411, "a chunked request body is not accepted: send it with a Content-Length")
    try:
        length = int(declared or 0)
    except ValueError:
        raise BodyRefused(400, f"Content-Length {declared!r} is not a number of bytes") from None
    if length < 0:
        raise BodyRefused(400, f"Content-Length {declared!r} is negative")
    if length > MAX_FORM_BYTES:
        raise BodyRefused(413, f"the request body ({length:,} bytes) is over this service's limit of {MAX_FORM_BYTES:,} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BodyRefused(413, f"the request body is over this service's limit of {MAX_FORM_BYTES:,} bytes")
    return body


def checked(view: Callable[[Req], Response], rule: Rule, req: Req) -> Response:
    """The view's answer, once the request passed its route's rule."""
    if rule.auth != "session":
        return view(req)
    req.session = req.console.session(req.cookies.get(SESSION_COOKIE))
    if req.method == "POST":
        if req.session is None or from_elsewhere(req.headers) or not csrf_matches(first(req.form, "csrf"), req.session.csrf):
            raise Refusal(403, "this form did not come from your session", "sign in again and use the page's own form")
    elif req.session is None:
        return Response(status_code=303, headers={"Location": "/login"})
    req.user = req.console.user(req.session.user)
    if rule.roles is not None and req.user.role not in rule.roles:
        raise Forbidden(f"{req.user.name} is {req.user.role}; {rule.what}")
    return view(req)


def error_page(console: Console, request: Request, status: int, message: str, hint: str | None,
               headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if request.url.path.startswith("/api/"):
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="fcmon", charset="UTF-8"'
        return Response(json.dumps({"error": message, "hint": hint, "status": status}), status, headers, "application/json")
    session = console.session(request.cookies.get(SESSION_COOKIE))
    try:
        user = console.user(session.user) if session and status != 401 else None
    except FcmonError:  # the account is gone: show the error without it
        user, session = None, None
    response = render("error.html", status, title="Refused", user=user, csrf=session.csrf if session else None,
                      audit_readers=AUDIT_READERS, **header(console.watch_desk, user), error=message, hint=hint)
    response.headers.update(headers)
    return response


def create_app(console: Console) -> Starlette:
    async def not_routed(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            message, hint = f"{request.method} is not how {request.url.path} is used", "use the console's own links and forms"
        else:
            message, hint = f"no page {request.url.path}", "start from the console's own pages, linked from /"
        return await run_in_threadpool(error_page, console, request, status, message, hint)
    return Starlette(routes=routes(console), exception_handlers={404: not_routed, 405: not_routed},
                     middleware=[Middleware(SecurityHeaders)])


class SecurityHeaders:
    """Every answer carries SECURITY_HEADERS (CSP `default-src 'none'`: the pages run no script), and is logged."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *((k.lower().encode(), v.encode())
                                      for k, v in SECURITY_HEADERS.items() if k.lower().encode() not in present)]
                log.info("event=web.request client=%s method=%s path=%s status=%d", (scope.get("client") or ("",))[0],
                         scope["method"], scope["path"], message["status"])
            await send(message)
        await self.app(scope, receive, with_headers)
