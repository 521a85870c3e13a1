"""The console's decisions: who is signed in, and what each page and the API may do for them.

The HTTP side (pipeline/web/routes.py) only translates: each view calls one method here, and each method calls the
domain code that decides and audits (pipeline.search, records, packets, quarantine, retention, review, taskings).
Sessions live here, on the server: the cookie holds only a random id; a session ends when it expires, on sign-out,
or as soon as the user's password changes (it remembers a digest of the hash it signed in with).
"""
from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from pipeline.app import App
from pipeline.errors import AuditUnavailable, FcmonError, Forbidden, NotFound, Unavailable, first_error
from pipeline.index import SearchPage, SearchQuery
from pipeline.models import IndexedRecord, Interface, Tasking, utcnow
from pipeline.packets import Packet, as_format, decide, disseminate, request as request_packet, visible_packets
from pipeline.passwords import (FAILED_SIGN_IN_WINDOW_S, BasicAuth, FailedSignIns, SignInRefused, Throttled,
                                 credential_digest, verify_password)
from pipeline.quarantine import keep, listed, purge, purge_expired, show as show_held
from pipeline.records import show as show_record
from pipeline.retention import due as retention_due, review as retention_review
from pipeline.review import AUDIT_READERS, QueryRow, log_listing, mark
from pipeline.periods import parse_bound, parse_period
from pipeline.review_charts import ReviewCharts, chart_period, review_charts
from pipeline.search import audited_search, authorize_search, new_event, parse_time, refuse_query
from pipeline.state import User
from pipeline.taskings import approve_tasking, members, request_tasking, revoke_tasking
from pipeline.web.forms import REVIEW_FILTERS, REVIEW_PAGE_SIZE, Fields, Refusal, first, query_from, review_offset, search_fields
from pipeline.web.watching import WatchDesk

MAX_LOGGED_NAME = 100
SESSION_SECONDS = 8 * 3600


@dataclass
class Session:
    user: str
    csrf: str
    expires: float
    credential: str  # a digest of the password hash it signed in with: a new password ends the session


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
        self.watch_desk = WatchDesk(app, self.lock)  # watches, alerts, the monitor's status (pipeline/web/watching.py)

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
        self.sessions[token] = Session(name, secrets.token_urlsafe(24), now + self.session_seconds, credential_digest(stored or ""))
        return token

    def session(self, token: str | None) -> Session | None:
        found = self.sessions.get(token or "")
        if found is not None and found.expires >= time.monotonic():
            with self.lock:
                stored = self.app.state.password_hash(found.user)
            if stored is not None and secrets.compare_digest(credential_digest(stored), found.credential):
                return found
        self.sessions.pop(token or "", None)  # expired, or the password was changed or removed since
        return None

    def sign_out(self, token: str | None) -> None:
        self.sessions.pop(token or "", None)

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

    def search(self, user: User, params: Fields, interface: Interface, client: str) -> tuple[str, SearchPage, SearchQuery]:
        """Audited like every search; one that cannot even be formed (no tasking, bad filter) is logged as refused."""
        try:
            query = query_from(params)
        except (Refusal, FcmonError) as refusal:
            raw = {k: v[0] for k, v in search_fields(params).items() if v and k != "q"}
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

    def request_packet(self, user: User, form: Fields) -> Packet:
        with self.lock:
            return request_packet(self.app, user, first(form, "tasking"), form.get("record", []), first(form, "recipient"),
                                  first(form, "agency"), first(form, "need_to_know"), first(form, "right_to_know"))

    def decide_packet(self, user: User, packet_id: str, approve: bool, note: str) -> Packet:
        with self.lock:
            return decide(self.app, user, packet_id, approve, note)

    def disseminate(self, user: User, packet_id: str, client: str, kind: str = "html") -> str | bytes:
        """The packet as HTML or PDF (printed after the lock is let go: the dissemination is on record by then)."""
        with self.lock:
            document = disseminate(self.app, user, packet_id, client, "web download", kind)[1]
        return as_format(document, kind)

    # supervisors' review of queries (D1.VI.B.2, D3.IV.A.11.f, D3.IV.B.3)
    def review_rows(self, user: User, params: Fields) -> tuple[list[QueryRow], int]:
        """One page of the filtered queries, newest first, and how many match in all."""
        wanted, start, end = _review_filters(user, params)
        with self.lock:
            return self.app.query_reviews.page(user=wanted["user"], tasking_id=wanted["tasking"],
                                               statuses=[wanted["status"]] if wanted["status"] else [],
                                               start=start, end=end, offset=review_offset(params), limit=REVIEW_PAGE_SIZE)

    def review_listing(self, user: User, params: Fields) -> tuple[list[QueryRow], int]:
        """review_rows, the reading audited (`audit.list`, as `fcmon audit list`) before the page is shown."""
        rows, total = self.review_rows(user, params)
        with self.lock:
            log_listing(self.app.audit, user, "web", {k: first(params, k).strip() for k in (*REVIEW_FILTERS, "offset")},
                        [row.seq for row in rows], total)
        return rows, total

    def review_charts(self, user: User, params: Fields) -> ReviewCharts:
        """The filtered queries in charts, all of them over the period (the last 30 days when none is chosen)."""
        wanted, start, end = _review_filters(user, params)
        start, end = chart_period(start, end, utcnow())
        with self.lock:
            found = self.app.query_reviews.activity(user=wanted["user"], tasking_id=wanted["tasking"],
                                                    statuses=[wanted["status"]] if wanted["status"] else [],
                                                    start=start, end=end)
        return review_charts(found, start, end)  # drawn outside the lock the other requests need

    def mark_query(self, user: User, query_id: str, status: str, note: str) -> None:
        _supervisor(user, "marking queries")
        with self.lock:
            mark(self.app.query_reviews, user, query_id, status, note)

    # the quarantine (pipeline/quarantine.py decides and audits; supervisors only, as in `fcmon quarantine`)
    def held(self, user: User) -> list[dict[str, Any]]:
        _supervisor(user, "the quarantine")
        with self.lock:
            purge_expired(self.app)
            return listed(self.app, user, "web")

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
    def due(self, user: User, params: Fields) -> tuple[int, list[dict[str, Any]]]:
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

    def access(self, taskings: list[Tasking]) -> dict[str, list[dict[str, str]]]:
        """Who gets access under each tasking (requester and team, with roles), as the approver must see it."""
        with self.lock:
            roles = self.app.state.roles()
        return {t.id: members(t, roles) for t in taskings}

    def request_tasking(self, user: User, form: Fields) -> Tasking:
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


def refusal_of(exc: Refusal | FcmonError) -> tuple[int, str, str | None]:
    """The HTTP status, message and hint of what the console refuses."""
    if isinstance(exc, Refusal):
        return exc.status, str(exc), exc.hint
    if isinstance(exc, AuditUnavailable):
        return 503, f"{exc.message}: nothing was searched or read", exc.hint
    status = 403 if isinstance(exc, Forbidden) else 404 if isinstance(exc, NotFound) else 503 if isinstance(exc, Unavailable) else 400
    return status, exc.message, exc.hint


def _review_filters(user: User, params: Fields) -> tuple[dict[str, str | None], datetime | None, datetime | None]:
    """The review page's filters, and the [start, end) that its period, from and to leave (all of them apply)."""
    if user.role not in AUDIT_READERS:
        raise Forbidden(f"{user.name} is {user.role}; the query log is for supervisors and administrators")
    wanted = {k: first(params, k).strip() or None for k in REVIEW_FILTERS}
    start, end = parse_period(wanted["period"]) if wanted["period"] else (None, None)
    if wanted["from"]:
        low = parse_bound(wanted["from"], "from")
        start = max(start, low) if start else low
    if wanted["to"]:
        high = parse_bound(wanted["to"], "to", end=True)
        end = min(end, high) if end else high
    return wanted, start, end


def _supervisor(user: User, what: str) -> None:
    if user.role != "supervisor":
        raise Forbidden(f"{user.name} is {user.role}; {what} needs the role supervisor")


def _may_search(user: User, tasking: Tasking) -> bool:
    try:
        authorize_search(user, tasking)
    except Forbidden:
        return False
    return True


