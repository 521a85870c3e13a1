"""`fcmon serve`: the web console and its JSON API, behind the same gate as every other interface.

A newcomer's map: server.py runs uvicorn with the console's limits; routes.py lists every URL with who may call it
and checks sessions, CSRF tokens and roles; views.py has one function per page, given a request.py Req (views_watch.py
the watches, alerts and collection pages, api.py the JSON API's watch, alert and monitor routes); console.py makes the
decisions (and holds the sessions) by calling the domain code, watching.py those about watches, alerts and the
monitor's status; forms.py reads searches and filters from fields; templates/ are the pages (Jinja2, autoescaped;
templating.py sets it up); security.py says which requests came from elsewhere and what every answer carries.

Nobody reads without an account: the console signs users in with their fcmon password (`fcmon user set-password`)
and keeps the session on the server (an HttpOnly, SameSite=Strict cookie holds only its random id); the API takes
HTTP Basic on every request. Every search names a tasking the user may search and goes through pipeline.search
(the QueryEvent is written first: no log, no query), as interface `web` or `api` with the client's address; a
record is read through pipeline.records (audited). Crawled content is hostile: every string is escaped, only
http(s) links are made, and the pages run no script at all (Content-Security-Policy).
"""
from __future__ import annotations

from pipeline.web.console import Console
from pipeline.web.forms import REVIEW_PAGE_SIZE
from pipeline.web.server import BACKLOG, IDLE_TIMEOUT_S, MAX_CONNECTIONS, Server

__all__ = ["Console", "REVIEW_PAGE_SIZE", "serve"]


def serve(console: Console, host: str, port: int, idle_timeout_s: float = IDLE_TIMEOUT_S,
          max_connections: int = MAX_CONNECTIONS, backlog: int = BACKLOG) -> Server:
    """The console and API on host:port (0: a free port), ready for serve_forever()."""
    from pipeline.web.routes import create_app
    return Server(create_app(console), host, port, idle_timeout_s, max_connections, backlog)
