"""What every answer carries, and which requests a browser sent on another page's behalf.

SameSite=Strict keeps the session cookie off requests from other *sites*, but a page on another port of the same
host, or on a sibling subdomain, is the same site: its requests carry the cookie. So:
- every form the console takes (POST) must carry the session's own CSRF token, a random value kept with the session
  on the server (a synchronizer token: the double-submit cookies of asgi-csrf or starlette-csrf can be planted by a
  sibling subdomain, which is the case to defend against here);
- nothing audited is done on a GET: searches, record and held-item reads and retention listings are POSTs;
- a sign-in, and every other POST, must come from the console's own origin: a browser's Sec-Fetch-Site must say
  same-origin (or none: typed by the user), and without it an Origin header must name this host and port;
- the API refuses requests a browser marks as coming from another origin (browsers send remembered Basic
  credentials on them too).
"""
from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

SESSION_COOKIE = "fcmon_session"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
OWN_ORIGIN = ("same-origin", "none")


def from_elsewhere(headers: Mapping[str, str]) -> bool:
    """A request a browser says another origin's page sent (another site, another port, a sibling subdomain).
    Sec-Fetch-Site is believed when sent (behind a TLS proxy the Host the console sees is often not the Origin's);
    otherwise an Origin that is not this host and port. A request with neither is not a browser's from a page."""
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site:
        return fetch_site not in OWN_ORIGIN
    origin = headers.get("origin")
    if not origin:
        return False
    parts = urlsplit(origin)
    return origin == "null" or _host_port(parts.netloc, parts.scheme) != _host_port(headers.get("host", ""), parts.scheme)


def csrf_matches(sent: str, expected: str) -> bool:
    """The form's token is the session's (compare_digest on bytes: it refuses non-ASCII text)."""
    return secrets.compare_digest(sent.encode(), expected.encode())


def session_cookie(token: str, max_age: int) -> str:
    return f"{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}"


def _host_port(netloc: str, scheme: str) -> tuple[str, str]:
    host, _, port = netloc.lower().rpartition(":") if ":" in netloc else (netloc.lower(), "", "")
    return host, port or {"https": "443", "http": "80"}.get(scheme, "")
