"""`fcmon serve`: the web console and its JSON API, behind the same gate as every other interface.

Nobody reads without an account: the console signs users in with their fcmon password (`fcmon user set-password`)
and keeps the session on the server (an HttpOnly, SameSite=Strict cookie holds only its random id); the API takes
HTTP Basic on every request. Every search names a tasking the user may search and goes through pipeline.search
(the QueryEvent is written first: no log, no query), as interface `web` or `api` with the client's address; a
record is read through pipeline.records (audited). Crawled content is hostile: every string is escaped, only
http(s) links are made, and the pages run no script at all (Content-Security-Policy).
"""
from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

from pydantic import ValidationError

from pipeline.app import App
from pipeline.audit_bounds import MAX_AUDIT_STRING
from pipeline.errors import AuditUnavailable, FcmonError, Forbidden, NotFound, Unavailable, first_error
from pipeline.httpd import IDLE_TIMEOUT_S, BodyRefused, read_body, threading_server
from pipeline.index import FILTER_FIELDS, SearchPage, SearchQuery
from pipeline.markup import e, link
from pipeline.models import IndexedRecord, Interface, Tasking, utcnow
from pipeline.periods import parse_bound
from pipeline.passwords import (FAILED_SIGN_IN_WINDOW_S, BasicAuth, FailedSignIns, SignInRefused, Throttled,
                                 verify_password)
from pipeline.packets import REQUEST_ROLES, Packet, decide, disseminate, request as request_packet, visible_packets
from pipeline.quarantine import keep, purge, purge_expired, show as show_held
from pipeline.records import show as show_record
from pipeline.retention import due as retention_due, review as retention_review
from pipeline.review import AUDIT_READERS, QueryRow, mark
from pipeline.search import audited_search, authorize_search, hit_dict, new_event, parse_filters, parse_time, refuse_query
from pipeline.state import User
from pipeline.taskings import REQUEST_ROLES as TASKING_ROLES, approve_tasking, request_tasking, revoke_tasking

log = logging.getLogger(__name__)

MAX_LOGGED_NAME = 100
SESSION_COOKIE = "fcmon_session"
SESSION_SECONDS = 8 * 3600
PAGE_SIZE = 20
REVIEW_PAGE_SIZE = 50
REVIEW_FILTERS = ("user", "tasking", "status", "from", "to")
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MARK = re.compile(r"(</?mark>)")


class Refusal(Exception):
    def __init__(self, status: int, message: str, hint: str | None = None):
        super().__init__(message)
        self.status, self.hint = status, hint


@dataclass
class Session:
    user: str
    csrf: str
    expires: float
    credential: str  # a digest of the password hash it signed in with: a new password ends the session


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] | None = None


def first(values: dict[str, list[str]], name: str, default: str = "") -> str:
    """The first value of a query or form field (parse_qs gives lists)."""
    return (values.get(name) or [default])[0]


def safe_highlight(fragment: str) -> str:
    """An index highlight (escaped text, matches in <mark>) rebuilt so that <mark> is the only markup that survives."""
    return "".join(part if part in ("<mark>", "</mark>") else e(html.unescape(part)) for part in MARK.split(fragment))


class Console:
    """The decisions behind the pages and the API; the HTTP handler only translates."""

    def __init__(self, app: App, session_seconds: int = SESSION_SECONDS):
        self.app, self.session_seconds = app, session_seconds
        self.lock = threading.Lock()  # one SQLite connection each for state and audit, and one index, for all threads
        self.sessions: dict[str, Session] = {}
        # failed sign-ins count per (name, client) on the form, per name on the API: behind a TLS proxy every client
        # has the proxy's address, and counting per address would let anyone lock every API user out
        self.basic = BasicAuth(app.state.password_hash, self.lock, FailedSignIns())
        self.failures = FailedSignIns()

    # authentication
    def _refused(self, name: str, client: str, reason: str) -> None:
        """Audited; a name is kept to MAX_LOGGED_NAME characters (the log is append-only: a megabyte of made-up name
        per try would fill the disk, and with it stop every audited action)."""
        shown = name if len(name) <= MAX_LOGGED_NAME else f"{name[:MAX_LOGGED_NAME]}... ({len(name):,} characters)"
        with self.lock:
            self.app.audit.append("web.login.refused", shown or "(none)", {"user": shown, "client": client, "reason": reason})

    def sign_in(self, name: str, password: str, client: str) -> str:
        if self.failures.throttled((name, client)):
            if self.failures.first_refusal((name, client)):  # once a window: a throttled try costs nothing to repeat
                self._refused(name, client, "throttled")
            raise Refusal(429, f"too many failed sign-ins for {name} from {client}",
                          f"wait {FAILED_SIGN_IN_WINDOW_S // 60} minutes (a new password does not lift it)")
        with self.lock:
            stored = self.app.state.password_hash(name) if name else None
        if not verify_password(password, stored):  # ~50 ms of scrypt: outside the lock the other requests need
            self.failures.failed((name, client))
            self._refused(name, client, "wrong password or unknown user")
            raise Refusal(401, "unknown user or wrong password", "an administrator sets passwords with `fcmon user set-password NAME`")
        self.failures.succeeded((name, client))
        with self.lock:
            self.app.audit.append("web.login", name, {"user": name, "client": client})
        now = time.monotonic()
        for stale in [t for t, session in list(self.sessions.items()) if session.expires < now]:
            self.sessions.pop(stale, None)
        token = secrets.token_urlsafe(32)
        self.sessions[token] = Session(name, secrets.token_urlsafe(24), now + self.session_seconds, _digest(stored))
        return token

    def session(self, cookie_header: str | None) -> Session | None:
        token = _cookie(cookie_header, SESSION_COOKIE)
        found = self.sessions.get(token or "")
        if found is not None and found.expires >= time.monotonic():
            with self.lock:
                stored = self.app.state.password_hash(found.user)
            if stored is not None and secrets.compare_digest(_digest(stored), found.credential):
                return found
        self.sessions.pop(token or "", None)  # expired, or the password was changed or removed since
        return None

    def sign_out(self, cookie_header: str | None) -> None:
        self.sessions.pop(_cookie(cookie_header, SESSION_COOKIE) or "", None)

    def basic_user(self, header: str | None, client: str) -> User:
        try:
            name = self.basic.user_name(header)
        except Throttled as exc:
            if self.basic.failures is not None and self.basic.failures.first_refusal(exc.name):
                self._refused(exc.name, client, "throttled (API)")
            raise Refusal(429, str(exc)) from exc
        except ValueError as exc:
            if header:
                self._refused(exc.name if isinstance(exc, SignInRefused) else "", client, f"{exc} (API)")
            raise Refusal(401, str(exc)) from exc
        return self.user(name)

    def user(self, name: str) -> User:
        with self.lock:
            return self.app.state.user(name)

    # what a user may do
    def taskings_for(self, user: User) -> list[Tasking]:
        """The taskings the user may search now (pipeline.search.authorize_search decides), for the search form."""
        with self.lock:
            taskings = self.app.state.taskings()
        return [t for t in taskings if _may_search(user, t)]

    def search(self, user: User, params: dict[str, list[str]], interface: Interface, client: str) -> tuple[str, SearchPage, SearchQuery]:
        """Audited like every search; one that cannot even be formed (no tasking, bad filter) is logged as refused."""
        try:
            query = query_from(params)
        except (Refusal, FcmonError) as refusal:
            raw = {k: v[0] for k, v in params.items() if v and k != "q"}
            event = new_event(user, raw.get("tasking", ""), first(params, "q"), raw, interface, client)
            with self.lock:
                refuse_query(self.app.audit, event, refusal)
            raise
        with self.lock:
            event, page = audited_search(self.app.state, self.app.audit, self.app.index, user, query, interface, client)
        return event.id, page, query

    def record(self, user: User, record_id: str, tasking_id: str, interface: str) -> IndexedRecord:
        with self.lock:
            return show_record(self.app, user, record_id, tasking_id, interface)

    # situational-awareness packets (pipeline/packets.py decides; every step audited there)
    def packets(self, user: User) -> list[Packet]:
        with self.lock:
            return list(reversed(visible_packets(self.app, user)))

    def request_packet(self, user: User, form: dict[str, list[str]]) -> Packet:
        with self.lock:
            return request_packet(self.app, user, first(form, "tasking"), form.get("record", []), first(form, "recipient"),
                                  first(form, "agency"), first(form, "need_to_know"), first(form, "right_to_know"))

    def decide_packet(self, user: User, packet_id: str, approve: bool, note: str) -> Packet:
        with self.lock:
            return decide(self.app, user, packet_id, approve, note)

    def disseminate(self, user: User, packet_id: str, client: str) -> str:
        with self.lock:
            return disseminate(self.app, user, packet_id, client, "web download")[1]

    # supervisors' review of queries (D1.VI.B.2, D3.IV.A.11.f, D3.IV.B.3)
    def review_rows(self, user: User, params: dict[str, list[str]]) -> tuple[list[QueryRow], int]:
        """One page of the filtered queries, newest first, and how many match in all."""
        if user.role not in AUDIT_READERS:
            raise Forbidden(f"{user.name} is {user.role}; the query log is for supervisors and administrators")
        wanted = {k: first(params, k).strip() or None for k in REVIEW_FILTERS}
        start = parse_bound(wanted["from"], "from") if wanted["from"] else None
        end = parse_bound(wanted["to"], "to", end=True) if wanted["to"] else None
        with self.lock:
            return self.app.query_reviews.page(user=wanted["user"], tasking_id=wanted["tasking"],
                                               statuses=[wanted["status"]] if wanted["status"] else [],
                                               start=start, end=end, offset=review_offset(params), limit=REVIEW_PAGE_SIZE)

    def mark_query(self, user: User, query_id: str, status: str, note: str) -> None:
        _supervisor(user, "marking queries")
        with self.lock:
            mark(self.app.query_reviews, user, query_id, status, note)

    # the quarantine (pipeline/quarantine.py decides and audits; supervisors only, as in `fcmon quarantine`)
    def held(self, user: User) -> list[dict[str, Any]]:
        _supervisor(user, "the quarantine")
        with self.lock:
            purge_expired(self.app)
            return self.app.state.quarantined()

    def held_item(self, user: User, item_id: str) -> dict[str, Any]:
        _supervisor(user, "the quarantine")
        with self.lock:
            purge_expired(self.app)
            return show_held(self.app, user, item_id, "web")

    def decide_held(self, user: User, item_id: str, choice: str, reason: str) -> dict[str, Any]:
        _supervisor(user, "deciding quarantined items")
        if choice not in ("keep", "purge"):
            raise Refusal(400, "say what to do with the item", "keep it (index it) or purge it")
        if not reason.strip():
            raise Refusal(400, "the reason is empty", "say why; the reason is audited and kept with the outcome")
        with self.lock:
            return keep(self.app, user, item_id, reason) if choice == "keep" else purge(self.app, user.name, item_id, reason)

    # retention (pipeline/retention.py decides and audits; 28CFR23.20(h))
    def due(self, user: User, params: dict[str, list[str]]) -> tuple[int, list[dict[str, Any]]]:
        within = first(params, "within", "30").strip() or "30"
        if not (within.isascii() and within.isdigit()):  # "²" is a digit to isdigit, not to int
            raise Refusal(400, f"within {within!r} is not a number of days", "give the days ahead to look, e.g. 30")
        tasking_id = first(params, "tasking").strip() or None
        with self.lock:
            return int(within), retention_due(self.app, user, int(within), tasking_id)

    def review_retention(self, user: User, record_id: str, tasking_id: str, choice: str, reason: str) -> dict[str, Any]:
        if choice not in ("keep", "purge"):
            raise Refusal(400, "say what to do with the record", "validate it (keep) or purge it")
        with self.lock:
            return retention_review(self.app, user, record_id, tasking_id, choice == "keep", reason)

    # taskings (pipeline/taskings.py decides and audits)
    def taskings(self, user: User) -> list[Tasking]:
        """Supervisors see every tasking; others those they requested or are on the team of (need to know)."""
        with self.lock:
            taskings = self.app.state.taskings()
        return [t for t in taskings if user.role == "supervisor" or user.name == t.requested_by or user.name in t.team]

    def request_tasking(self, user: User, form: dict[str, list[str]]) -> Tasking:
        """A tasking from the request form, checked as `fcmon tasking add` checks a file (pending until approved)."""
        def one(name: str) -> str:
            return first(form, name).strip()

        def listed(name: str) -> list[str]:
            return [v.strip() for v in re.split(r"[,\n]", one(name)) if v.strip()]  # a keyword may be a phrase
        expires = parse_time(one("expires") or None, "expires")
        try:
            tasking = Tasking.model_validate({
                "id": one("id"), "kind": one("kind"), "title": one("title"), "case_number": one("case_number") or None,
                "predicate": one("predicate") or None, "criminal_activity": one("criminal_activity") or None,
                "requested_by": user.name, "team": listed("team"), "expires_at": expires,
                "scope": {"domains": listed("domains"), "keywords": listed("keywords"), "accounts": listed("accounts")}})
        except ValidationError as exc:
            raise Refusal(400, first_error(exc, "tasking"), "correct the form and send it again") from exc
        with self.lock:
            return request_tasking(self.app, user, tasking)[0]

    def approve_tasking(self, user: User, tasking_id: str) -> Tasking:
        with self.lock:
            return approve_tasking(self.app, user, tasking_id)

    def revoke_tasking(self, user: User, tasking_id: str, reason: str) -> Tasking:
        if not reason.strip():
            raise Refusal(400, "the reason is empty", "say why the tasking ends; the reason is audited")
        with self.lock:
            return revoke_tasking(self.app, user, tasking_id, reason)


def cross_site(headers: Any) -> bool:
    """A request a browser says came from another site. Browsers that send Sec-Fetch-Site are believed (behind a TLS
    proxy the Host the console sees is often not the Origin's); for the others, an Origin that is not this host."""
    fetch_site = headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site:
        return fetch_site == "cross-site"
    origin = headers.get("Origin")
    if not origin:
        return False  # not a browser form post from another page
    return origin == "null" or _host_port(urlsplit(origin).netloc, urlsplit(origin).scheme) != _host_port(
        headers.get("Host", ""), urlsplit(origin).scheme)


def _host_port(netloc: str, scheme: str) -> tuple[str, str]:
    host, _, port = netloc.lower().rpartition(":") if ":" in netloc else (netloc.lower(), "", "")
    return host, port or {"https": "443", "http": "80"}.get(scheme, "")


def refusal_of(exc: Refusal | FcmonError) -> tuple[int, str, str | None]:
    """The HTTP status, message and hint of what the console refuses."""
    if isinstance(exc, Refusal):
        return exc.status, str(exc), exc.hint
    if isinstance(exc, AuditUnavailable):
        return 503, f"{exc.message}: nothing was searched or read", exc.hint
    status = 403 if isinstance(exc, Forbidden) else 404 if isinstance(exc, NotFound) else 503 if isinstance(exc, Unavailable) else 400
    return status, exc.message, exc.hint


def _supervisor(user: User, what: str) -> None:
    if user.role != "supervisor":
        raise Forbidden(f"{user.name} is {user.role}; {what} needs the role supervisor")


def _may_search(user: User, tasking: Tasking) -> bool:
    try:
        authorize_search(user, tasking)
    except Forbidden:
        return False
    return True


def _digest(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def query_from(params: dict[str, list[str]]) -> SearchQuery:
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


# -- pages ---------------------------------------------------------------------------------------

def layout(title: str, body: str, user: User | None = None, csrf: str | None = None) -> bytes:
    review = ' <a href="/review">Query review</a> ·' if user and user.role in AUDIT_READERS else ""
    review += ' <a href="/quarantine">Quarantine</a> · <a href="/retention">Retention</a> ·' if user and user.role == "supervisor" else ""
    account = (f'<form method="post" action="/logout" class="account"><a href="/">Search</a> · <a href="/packets">Packets</a> · '
               f'<a href="/taskings">Taskings</a> ·{review} {e(user.name)} '
               f'({e(user.role)}) <input type="hidden" name="csrf" value="{e(csrf)}"><button>Sign out</button></form>') if user else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)} · fcmon</title>
<style>body{{font-family:sans-serif;max-width:64rem;margin:1rem auto;padding:0 1rem}} header{{display:flex;justify-content:space-between;
align-items:center;border-bottom:1px solid #ccc}} .hit{{border-bottom:1px solid #eee;padding:.5rem 0}} .meta{{color:#555;font-size:.85rem}}
mark{{background:#ff8}} .error{{border:2px solid #900;padding:.5rem 1rem}} label{{margin-right:1rem}} .flag{{color:#900}}
table{{border-collapse:collapse;font-size:.85rem}} td,th{{border-bottom:1px solid #ddd;padding:.25rem;text-align:left;vertical-align:top}}</style></head>
<body><header><h1>fcmon</h1>{account}</header>
<p class="meta">Every search and every record read is written to the audit log with your name, the tasking and the time.</p>
{body}</body></html>""".encode()


def error_box(message: str, hint: str | None = None) -> str:
    return f'<p class="error" role="alert">{e(message)}{"<br>" + e(hint) if hint else ""}</p>'


def login_page(message: str | None = None) -> bytes:
    return layout("Sign in", f"""{error_box(message) if message else ""}<form method="post" action="/login">
<label>User <input name="name" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button>Sign in</button></form>""")


def search_form(taskings: list[Tasking], params: dict[str, list[str]]) -> str:
    def value(name: str) -> str:
        return e(first(params, name))
    chosen = first(params, "tasking")
    options = "".join(f'<option value="{e(t.id)}"{" selected" if t.id == chosen else ""}>{e(t.id)}: {e(t.title or t.kind)}'
                      f'{" (case " + e(t.case_number) + ")" if t.case_number else ""}</option>' for t in taskings)
    if not taskings:
        return '<p class="error">No active tasking you may search: ask a supervisor to add you to one.</p>'
    sort = first(params, "sort", "relevance")
    return f"""<form method="get" action="/search" role="search">
<label>Tasking <select name="tasking" required>{options}</select></label>
<label>Query <input name="q" value="{value('q')}" size="40" placeholder='words, "phrases", AND/OR/NOT, field:value'></label>
<label>Source kind <input name="source_kind" value="{value('source_kind')}" size="12"></label>
<label>From <input name="from" type="date" value="{value('from')}"></label>
<label>To <input name="to" type="date" value="{value('to')}"></label>
<label>Sort <select name="sort"><option value="relevance"{" selected" if sort == "relevance" else ""}>relevance</option>
<option value="time"{" selected" if sort == "time" else ""}>time</option></select></label>
<button>Search</button></form>"""


def results(page: SearchPage, query: SearchQuery, query_id: str, csrf: str | None = None) -> str:
    """The hits; with `csrf` (a user who may request packets) each has a checkbox and a packet request form follows."""
    hits = []
    for hit in page.hits:
        r = hit.record
        labels = r.labels
        record_url = f"/record/{e(r.id)}?{urlencode({'tasking': query.tasking_id})}"
        fragments = "".join(f"<p>{safe_highlight(f)}</p>" for f in hit.highlights[:2])
        pick = f'<label class="pick"><input type="checkbox" name="record" value="{e(r.id)}"> for a packet</label>' if csrf else ""
        hits.append(f"""<article class="hit">{pick}<h3><a href="{record_url}">{e(r.title) or "(untitled)"}</a></h3>
<p class="meta">{e(r.source_kind)} · {e(r.author or "author not recorded")} · {e(r.timestamp.strftime("%Y-%m-%d %H:%M UTC"))} · {link(r.final_url)}</p>
{fragments}<p class="meta">{e(labels.review_status)} · source {e(labels.source_reliability)} · content {e(labels.content_validity)}
· criminal intelligence {"yes" if labels.criminal_intelligence else "no"} · purge by {e(labels.purge_by)}</p></article>""")
    more = ""
    if query.offset + len(page.hits) < page.total:
        more = f'<p><a href="/search?{e(urlencode(_params_of(query, query.offset + query.limit)))}">Next {query.limit}</a></p>'
    listing = f'<p class="meta">{page.total} hit(s) · query {e(query_id)} (audited)</p>' + ("".join(hits) or "<p>No records match.</p>")
    if not (csrf and hits):
        return listing + more
    return f"""<form method="post" action="/packets"><input type="hidden" name="csrf" value="{e(csrf)}">
<input type="hidden" name="tasking" value="{e(query.tasking_id)}">{listing}
<fieldset><legend>Request a situational-awareness packet of the ticked records (reviewed records only)</legend>
<label>Recipient <input name="recipient" required></label> <label>Agency <input name="agency" required></label><br>
<label>Need to know <textarea name="need_to_know" rows="2" cols="60" required></textarea></label><br>
<label>Right to know <textarea name="right_to_know" rows="2" cols="60" required></textarea></label><br>
<button>Request a packet</button></fieldset></form>{more}"""


def _params_of(query: SearchQuery, offset: int) -> list[tuple[str, str]]:
    params = [("tasking", query.tasking_id), ("q", query.text), ("sort", query.sort), ("offset", str(offset))]
    params += [(name, value) for name, value in query.filters.items()]
    params += [(k, v.date().isoformat()) for k, v in (("from", query.time_from), ("to", query.time_to)) if v]
    return params


def review_view(params: dict[str, list[str]], offset: int) -> str:
    """The review page's query string: its filters and where in the list (a mark brings the reviewer back there)."""
    kept = [(k, first(params, k)) for k in REVIEW_FILTERS if first(params, k)]
    return urlencode(kept + ([("offset", str(offset))] if offset else []))


def review_offset(params: dict[str, list[str]]) -> int:
    try:
        return max(0, int(first(params, "offset") or 0))
    except ValueError as exc:
        raise Refusal(400, "offset must be a whole number") from exc


def review_page(shown: list[QueryRow], total: int, params: dict[str, list[str]], csrf: str, can_mark: bool) -> str:
    """One page of the filtered rows (newest first), REVIEW_PAGE_SIZE at a time."""
    def value(name: str) -> str:
        return e(first(params, name))
    status = first(params, "status")
    options = "".join(f'<option value="{v}"{" selected" if v == status else ""}>{v or "any"}</option>'
                      for v in ("", "unreviewed", "reviewed", "flagged"))
    offset = review_offset(params)
    view = review_view(params, offset)
    pages = []
    if offset > 0:
        pages.append(f'<a href="/review?{e(review_view(params, max(0, offset - REVIEW_PAGE_SIZE)))}">Newer {REVIEW_PAGE_SIZE}</a>')
    if offset + len(shown) < total:
        pages.append(f'<a href="/review?{e(review_view(params, offset + REVIEW_PAGE_SIZE))}">Older {REVIEW_PAGE_SIZE}</a>')
    lines = []
    for r in shown:
        flags = " ".join(f'<strong class="flag">{e(h)}</strong>' for h in r.highlights)
        hits = "refused: " + e(r.refusal) if r.outcome == "refused" else f"{e(r.hits_total if r.hits_total is not None else '?')} hit(s)"
        review = (f"{e(r.review_status)} by {e(r.reviewed_by)}: {e(r.review_note)}" if r.reviewed_by else "unreviewed")
        lines.append(f"""<tr><td>{e(r.at[:19].replace("T", " "))}</td><td>{e(r.user)} ({e(r.role)})</td><td>{e(r.interface)}</td>
<td>{e(r.tasking_id)} {e(r.case_number or "")}</td><td><code>{e(r.query)}</code></td><td>{hits}</td><td>{flags}</td><td>{review}</td>
<td>{_mark_form(r, csrf, view) if can_mark else ""}</td></tr>""")
    span = f"{offset + 1}-{offset + len(shown)} of " if len(shown) < total else ""
    return f"""<h2>Query review</h2>
<form method="get" action="/review"><label>User <input name="user" value="{value('user')}" size="10"></label>
<label>Tasking <input name="tasking" value="{value('tasking')}" size="12"></label>
<label>Status <select name="status">{options}</select></label>
<label>From <input type="date" name="from" value="{value('from')}"></label>
<label>To <input type="date" name="to" value="{value('to')}"></label><button>Filter</button></form>
<p class="meta">{span}{total} quer(ies), newest first. Marks are audit entries (query.review); nobody marks their own queries.</p>
<table><thead><tr><th>at (UTC)</th><th>user</th><th>via</th><th>tasking</th><th>query</th><th>outcome</th><th>highlights</th>
<th>review</th><th>mark</th></tr></thead><tbody>{"".join(lines)}</tbody></table>
<p class="pages">{" · ".join(pages)}</p>"""


def packets_page(packets: list[Packet], user: User, csrf: str) -> str:
    rows = []
    for p in packets:
        actions = ""
        if p.status == "requested" and user.role == "supervisor" and user.name != p.requested_by:
            actions = (f'<form method="post" action="/packets/decide"><input type="hidden" name="csrf" value="{e(csrf)}">'
                       f'<input type="hidden" name="packet_id" value="{e(p.id)}"><input name="note" placeholder="why" required size="20">'
                       '<button name="decision" value="approve">Approve</button> <button name="decision" value="deny">Deny</button></form>')
        elif p.status == "approved":
            actions = (f'<form method="post" action="/packets/render"><input type="hidden" name="csrf" value="{e(csrf)}">'
                       f'<input type="hidden" name="packet_id" value="{e(p.id)}"><button>Disseminate (download)</button></form>')
        decided = f"{e(p.status)} by {e(p.decided_by)}: {e(p.decision_note)}" if p.decided_by else e(p.status)
        rows.append(f"""<tr><td>{e(p.id)}</td><td>{e(p.tasking_id)}</td><td>{len(p.record_ids)}</td>
<td>{e(p.recipient)}, {e(p.recipient_agency)}</td><td>{e(p.need_to_know)}<br><em>{e(p.right_to_know)}</em></td>
<td>{e(p.requested_by)}</td><td class="status">{decided}</td><td>{actions}</td></tr>""")
    return f"""<h2>Situational-awareness packets</h2>
<p class="meta">Request one from search results. A supervisor other than the requester approves; each download is a
dissemination, recorded before it happens (28 CFR 23.20(e)-(g)).</p>
<table><thead><tr><th>packet</th><th>tasking</th><th>records</th><th>recipient</th><th>need / right to know</th>
<th>requested by</th><th>status</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>"""


def quarantine_page(held: list[dict[str, Any]]) -> str:
    rows = []
    for h in held:
        reason = h["decision"]["reasons"][0] if h["decision"]["reasons"] else {}
        rows.append(f"""<tr><td><a href="/quarantine/{e(h['item_id'])}">{e(h['item_id'])}</a></td><td>{e(h['tasking_id'])}</td>
<td>{e(h['held_at'][:16].replace("T", " "))}</td><td>{e(h['purge_after'][:10])}</td>
<td>{e(reason.get('rule'))}: {e(", ".join(reason.get('signals', [])))}</td></tr>""")
    return f"""<h2>Quarantine</h2>
<p class="meta">Items about protected activity that also showed signs of criminal conduct (28 CFR 23.20(b)). Nothing here
is searchable until a supervisor keeps it; undecided items are purged on their purge date. Opening one is audited.</p>
<table><thead><tr><th>item</th><th>tasking</th><th>held (UTC)</th><th>purged after</th><th>why held</th></tr></thead>
<tbody>{"".join(rows) or '<tr><td colspan="5">Nothing held.</td></tr>'}</tbody></table>"""


def held_page(held: dict[str, Any], csrf: str) -> str:
    item = held["item"]
    reasons = "".join(f"<tr><td>{e(r['rule'])}</td><td>{e(r['clause'])}</td><td>{e(r['message'])}</td>"
                      f"<td>{e(', '.join(r['signals']))}</td></tr>" for r in held["decision"]["reasons"])
    return f"""<h2>{e(item['title']) or "(untitled)"}</h2>
<p class="meta">held item {e(item['id'])} · tasking {e(item['tasking_id'])} · {e(item['source_kind'])} · {link(item['final_url'])}
· purged after {e(held['purge_after'][:10])}</p>
<blockquote style="white-space:pre-wrap">{e(item['text'])}</blockquote>
<table><thead><tr><th>rule</th><th>clause</th><th>why</th><th>signals</th></tr></thead><tbody>{reasons}</tbody></table>
<form method="post" action="/quarantine/decide"><input type="hidden" name="csrf" value="{e(csrf)}">
<input type="hidden" name="item_id" value="{e(item['id'])}">
<label>Reason (audited) <textarea name="reason" rows="2" cols="60" required></textarea></label><br>
<button name="choice" value="keep">Keep: index it, with me recorded on it</button>
<button name="choice" value="purge">Purge: keep only its id, hash and the reason</button></form>"""


def retention_page(within: int, rows: list[dict[str, Any]], params: dict[str, list[str]], csrf: str) -> str:
    lines = []
    for r in rows:
        validated = f"validated by {e(r['validated']['by'])}: {e(r['validated']['reason'])}" if r["validated"] else "not validated"
        lines.append(f"""<tr><td>{e(r['review_by'])}</td><td>{e(r['purge_by'])}</td><td>{e(r['tasking_id'])}</td>
<td>{e(r['title']) or "(untitled)"}<br>{link(r['url'])}</td><td>{e(r['review_status'])}{" · criminal intelligence" if r['criminal_intelligence'] else ""}</td>
<td>{validated}</td><td><form method="post" action="/retention"><input type="hidden" name="csrf" value="{e(csrf)}">
<input type="hidden" name="record_id" value="{e(r['record_id'])}"><input type="hidden" name="tasking_id" value="{e(r['tasking_id'])}">
<input name="reason" placeholder="why (audited)" required size="18"><button name="choice" value="keep">Validate</button>
<button name="choice" value="purge">Purge now</button></form></td></tr>""")
    tasking = e(first(params, "tasking"))
    return f"""<h2>Retention review</h2>
<p class="meta">Records whose review or purge date falls within {within} day(s), earliest first (28 CFR 23.20(h): reviewed
and validated, or purged, within five years). Validating keeps a record to its purge date, which never moves; on that date
<code>fcmon maintain</code> (or <code>fcmon retention run</code>) purges it. This listing is audited.</p>
<form method="get" action="/retention"><label>Within (days) <input name="within" value="{within}" size="4"></label>
<label>Tasking <input name="tasking" value="{tasking}" size="12"></label><button>List</button></form>
<table><thead><tr><th>review by</th><th>purge by</th><th>tasking</th><th>record</th><th>status</th><th>validation</th><th></th></tr></thead>
<tbody>{"".join(lines) or '<tr><td colspan="7">Nothing comes due in that time.</td></tr>'}</tbody></table>"""


def tasking_form(form: dict[str, list[str]], csrf: str) -> str:
    def value(name: str) -> str:
        return e(first(form, name))
    kind = first(form, "kind", "criminal_predicate")
    kinds = "".join(f'<option value="{k}"{" selected" if k == kind else ""}>{k.replace("_", " ")}</option>'
                    for k in ("criminal_predicate", "information_gathering", "public_safety"))
    return f"""<form method="post" action="/taskings"><input type="hidden" name="csrf" value="{e(csrf)}">
<fieldset><legend>Request a tasking (a supervisor other than you approves it)</legend>
<label>Id <input name="id" value="{value('id')}" required pattern="[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}" size="16"></label>
<label>Kind <select name="kind">{kinds}</select></label> <label>Title <input name="title" value="{value('title')}" size="40"></label><br>
<label>Case number <input name="case_number" value="{value('case_number')}" size="16"></label>
<label>Criminal activity <input name="criminal_activity" value="{value('criminal_activity')}" size="40"></label><br>
<label>Predicate: the facts behind the reasonable suspicion (criminal predicates)<br>
<textarea name="predicate" rows="3" cols="80">{value('predicate')}</textarea></label><br>
<label>Domains <input name="domains" value="{value('domains')}" size="24"></label>
<label>Keywords <input name="keywords" value="{value('keywords')}" size="24"></label>
<label>Accounts <input name="accounts" value="{value('accounts')}" size="16"></label><br>
<label>Team <input name="team" value="{value('team')}" size="24"></label>
<label>Expires (00:00 UTC that day) <input name="expires" type="date" value="{value('expires')}" required></label>
<button>Request</button><p class="meta">Lists: separate with commas. Information gathering names places,
events and topics, never persons or accounts; protest, advocacy, worship and organizing terms are refused.</p></fieldset></form>"""


def taskings_page(taskings: list[Tasking], user: User, csrf: str, form: dict[str, list[str]] | None = None) -> str:
    now = utcnow()
    rows = []
    for t in taskings:
        status = t.status(now)
        actions = ""
        if status == "pending" and user.role == "supervisor" and user.name != t.requested_by:
            actions += (f'<form method="post" action="/taskings/approve"><input type="hidden" name="csrf" value="{e(csrf)}">'
                        f'<input type="hidden" name="tasking_id" value="{e(t.id)}"><button>Approve</button></form>')
        if status in ("pending", "active") and (user.role == "supervisor" or user.name == t.requested_by):
            actions += (f'<form method="post" action="/taskings/revoke"><input type="hidden" name="csrf" value="{e(csrf)}">'
                        f'<input type="hidden" name="tasking_id" value="{e(t.id)}"><input name="reason" placeholder="why" required size="16">'
                        '<button>Revoke</button></form>')
        scope = "; ".join(f"{name}: {', '.join(values)}" for name, values in
                          (("domains", t.scope.domains), ("keywords", t.scope.keywords), ("accounts", t.scope.accounts)) if values)
        purpose = f"{e(t.predicate)}<br><em>{e(t.criminal_activity)}</em>" if t.kind == "criminal_predicate" else e(t.title)
        rows.append(f"""<tr><td>{e(t.id)}</td><td>{e(t.kind)}</td><td class="status">{e(status)}</td><td>{e(t.case_number or "")}</td>
<td>{purpose}</td><td>{e(scope)}</td><td>{e(t.requested_by)}</td><td>{e(t.approved_by or "")}</td>
<td>{e(t.expires_at.strftime("%Y-%m-%d"))}</td><td>{actions}</td></tr>""")
    return f"""<h2>Taskings</h2>
<p class="meta">No tasking, no collection and no search. A supervisor other than the requester approves (D3.IV.A.11.a).</p>
<table><thead><tr><th>tasking</th><th>kind</th><th>status</th><th>case</th><th>predicate / purpose</th><th>scope</th>
<th>requested by</th><th>approved by</th><th>expires</th><th></th></tr></thead>
<tbody>{"".join(rows) or '<tr><td colspan="10">No tasking you requested or work on.</td></tr>'}</tbody></table>
{tasking_form(form or {}, csrf) if user.role in TASKING_ROLES else ""}"""


def _mark_form(row: QueryRow, csrf: str, view: str) -> str:
    return (f'<form method="post" action="/review"><input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<input type="hidden" name="query_id" value="{e(row.query_id)}"><input type="hidden" name="view" value="{e(view)}">'
            '<input name="note" placeholder="note (a flag needs one)" size="18"><button name="status" value="reviewed">Reviewed</button> '
            '<button name="status" value="flagged">Flag</button></form>')


def record_page(record: IndexedRecord) -> str:
    labels, predicate = record.labels, record.predicate
    non_subjects = ", ".join(record.non_subject_identifiers)
    return f"""<h2>{e(record.title) or "(untitled)"}</h2>
<p class="meta">{e(record.source_kind)} · {e(record.author or "author not recorded")} · {link(record.final_url)}</p>
<blockquote style="white-space:pre-wrap">{e(record.text)}</blockquote>
<dl><dt>Labels</dt><dd>{e(labels.sensitivity)} · source {e(labels.source_reliability)} · content {e(labels.content_validity)} ·
criminal intelligence {"yes" if labels.criminal_intelligence else "no"} · {e(labels.review_status)} · review by {e(labels.review_by)} ·
purge by {e(labels.purge_by)} · {e(labels.submitting_agency)} · control official {e(labels.control_official)}</dd>
<dt>Predicate</dt><dd>tasking {e(predicate.tasking_id)} ({e(predicate.kind)}) {e(predicate.case_number or "")} {e(predicate.predicate or "")}
· approved by {e(predicate.approved_by)}</dd>
{f"<dt>Not subjects of the predicate</dt><dd>{e(non_subjects)}</dd>" if non_subjects else ""}</dl>"""


# -- HTTP ----------------------------------------------------------------------------------------

def make_handler(console: Console) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fcmon"
        sys_version = ""

        def do_GET(self) -> None:
            self._reply(self._get)

        def do_POST(self) -> None:
            self._reply(self._post)

        def _reply(self, route: Callable[[], Reply]) -> None:
            client = self.client_address[0]
            api = self.path.startswith("/api/")
            try:
                reply = route()
            except (Refusal, FcmonError) as exc:
                reply = self._error(*refusal_of(exc), api)
            except Exception:  # noqa: BLE001  (a bug must still answer, not drop the connection)
                log.exception("event=web.error method=%s path=%s", self.command, urlsplit(self.path).path)
                self.close_connection = True
                reply = self._error(500, "the request could not be completed", "see the service log, and report it", api)
            log.info("event=web.request client=%s method=%s path=%s status=%d", client, self.command,
                     urlsplit(self.path).path, reply.status)
            self.send_response(reply.status)
            for name, value in {**SECURITY_HEADERS, **(reply.headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def _error(self, status: int, message: str, hint: str | None, api: bool) -> Reply:
            if api:
                return Reply(status, json.dumps({"error": message, "hint": hint, "status": status}).encode(), "application/json",
                             {"WWW-Authenticate": 'Basic realm="fcmon", charset="UTF-8"'} if status == 401 else None)
            session = console.session(self.headers.get("Cookie"))
            try:
                user = console.user(session.user) if session and status != 401 else None
            except FcmonError:  # the account is gone: show the error without it
                user, session = None, None
            body = error_box(message, hint) + '<p><a href="/">Back to search</a></p>'
            return Reply(status, layout("Refused", body, user, session.csrf if session else None))

        # routes
        def _get(self) -> Reply:
            if self.headers.get("Transfer-Encoding") or (self.headers.get("Content-Length") or "0").strip() != "0":
                self.close_connection = True  # its unread body would be taken for the next request on the connection
                raise Refusal(400, "a GET request carries no body")
            parts = urlsplit(self.path)
            params = parse_qs(parts.query, keep_blank_values=True)
            client = self.client_address[0]
            if parts.path == "/api/search":
                user = console.basic_user(self.headers.get("Authorization"), client)
                query_id, page, _ = console.search(user, params, "api", client)
                body = {"query_id": query_id, "total": page.total, "hits": [hit_dict(h) for h in page.hits]}
                return Reply(200, json.dumps(body, default=str).encode(), "application/json")
            if parts.path == "/login":
                return Reply(200, login_page())
            session = console.session(self.headers.get("Cookie"))
            if session is None:
                return Reply(303, b"", headers={"Location": "/login"})
            user = console.user(session.user)
            if parts.path == "/":
                return Reply(200, layout("Search", search_form(console.taskings_for(user), params), user, session.csrf))
            if parts.path == "/search":
                query_id, page, query = console.search(user, params, "web", client)
                body = search_form(console.taskings_for(user), params) + results(
                    page, query, query_id, session.csrf if user.role in REQUEST_ROLES else None)
                return Reply(200, layout("Search", body, user, session.csrf))
            if parts.path == "/packets":
                return Reply(200, layout("Packets", packets_page(console.packets(user), user, session.csrf), user, session.csrf))
            if parts.path == "/review":
                return Reply(200, layout("Query review", review_page(*console.review_rows(user, params), params, session.csrf, user.role == "supervisor"),
                                         user, session.csrf))
            if parts.path == "/quarantine":
                return Reply(200, layout("Quarantine", quarantine_page(console.held(user)), user, session.csrf))
            if parts.path.startswith("/quarantine/"):
                held = console.held_item(user, parts.path.removeprefix("/quarantine/"))
                return Reply(200, layout("Held item", held_page(held, session.csrf), user, session.csrf))
            if parts.path == "/retention":
                within, rows = console.due(user, params)
                return Reply(200, layout("Retention", retention_page(within, rows, params, session.csrf), user, session.csrf))
            if parts.path == "/taskings":
                return Reply(200, layout("Taskings", taskings_page(console.taskings(user), user, session.csrf), user, session.csrf))
            if parts.path.startswith("/record/"):
                tasking_id = first(params, "tasking")
                record = console.record(user, parts.path.removeprefix("/record/"), tasking_id, "web")
                return Reply(200, layout(record.title or "Record", record_page(record), user, session.csrf))
            raise Refusal(404, f"no page {parts.path}")

        def _post(self) -> Reply:
            try:
                body = read_body(self, MAX_FORM_BYTES)
            except BodyRefused as refused:
                raise Refusal(refused.status, str(refused)) from refused
            form = parse_qs(body.decode("utf-8", "replace"))
            path = urlsplit(self.path).path

            if path == "/login":
                if cross_site(self.headers):  # a hostile page must not sign a victim in as the attacker
                    raise Refusal(403, "this sign-in did not come from the console's own page", "open the console and sign in there")
                try:
                    token = console.sign_in(first(form, "name"), first(form, "password"), self.client_address[0])
                except Refusal as refusal:
                    return Reply(refusal.status, login_page(str(refusal)))
                cookie = f"{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={console.session_seconds}"
                return Reply(303, b"", headers={"Location": "/", "Set-Cookie": cookie})
            session = console.session(self.headers.get("Cookie"))
            if session is None or not secrets.compare_digest(first(form, "csrf").encode(), session.csrf.encode()):
                raise Refusal(403, "this form did not come from your session", "sign in again and use the page's own form")
            user = console.user(session.user)
            if path == "/packets":
                console.request_packet(user, form)
                return Reply(303, b"", headers={"Location": "/packets"})
            if path == "/packets/decide":
                console.decide_packet(user, first(form, "packet_id"), first(form, "decision") == "approve",
                                      first(form, "note"))
                return Reply(303, b"", headers={"Location": "/packets"})
            if path == "/packets/render":
                packet_id = first(form, "packet_id")
                document = console.disseminate(user, packet_id, self.client_address[0])
                return Reply(200, document.encode(), headers={
                    "Content-Disposition": f'attachment; filename="packet-{re.sub(r"[^A-Za-z0-9-]", "", packet_id)}.html"'})
            if path == "/review":
                console.mark_query(user, first(form, "query_id"), first(form, "status"), first(form, "note"))
                view = parse_qs(first(form, "view"))
                back = review_view(view, review_offset(view))  # rebuilt from known fields: never a redirect elsewhere
                return Reply(303, b"", headers={"Location": f"/review?{back}" if back else "/review"})
            if path == "/quarantine/decide":
                console.decide_held(user, first(form, "item_id"), first(form, "choice"), first(form, "reason"))
                return Reply(303, b"", headers={"Location": "/quarantine"})
            if path == "/retention":
                console.review_retention(user, first(form, "record_id"), first(form, "tasking_id"), first(form, "choice"),
                                         first(form, "reason"))
                return Reply(303, b"", headers={"Location": "/retention"})
            if path == "/taskings":
                try:
                    console.request_tasking(user, form)
                except (Refusal, FcmonError) as exc:  # the form comes back as sent, with what to fix
                    status, message, hint = refusal_of(exc)
                    body = error_box(message, hint) + taskings_page(console.taskings(user), user, session.csrf, form)
                    return Reply(status, layout("Taskings", body, user, session.csrf))
                return Reply(303, b"", headers={"Location": "/taskings"})
            if path == "/taskings/approve":
                console.approve_tasking(user, first(form, "tasking_id"))
                return Reply(303, b"", headers={"Location": "/taskings"})
            if path == "/taskings/revoke":
                console.revoke_tasking(user, first(form, "tasking_id"), first(form, "reason"))
                return Reply(303, b"", headers={"Location": "/taskings"})
            if path == "/logout":
                console.sign_out(self.headers.get("Cookie"))
                return Reply(303, b"", headers={"Location": "/login", "Set-Cookie": f"{SESSION_COOKIE}=; Max-Age=0; Path=/"})
            raise Refusal(404, f"no form {path}")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def serve(console: Console, host: str, port: int, idle_timeout_s: float = IDLE_TIMEOUT_S) -> ThreadingHTTPServer:
    return threading_server(host, port, make_handler(console), idle_timeout_s)
