"""The web console and API over a real data directory, served on 127.0.0.1; an HTTP client with its cookies."""
from __future__ import annotations

import base64
import http.client
import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message

from pipeline.app import App
from pipeline.web import Console, serve
from tests.servers import running


def running_console(app: App, **options):
    return running(serve(Console(app, **options), "127.0.0.1", 0))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class WebClient:
    """A person's browser without the rendering: cookies kept, redirects visible."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, Message, str]:
        """Status, headers (names are case-insensitive, as in HTTP) and body; redirects are not followed."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(urllib.request.Request(self.base + path, data=data, method=method), timeout=10) as answer:
                return answer.status, answer.headers, answer.read().decode()
        except urllib.error.HTTPError as answer:
            return answer.code, answer.headers, answer.read().decode()

    def sign_in(self, name: str, password: str) -> int:
        return self.request("POST", "/login", {"name": name, "password": password})[0]

    def search(self, tasking: str, q: str, **params: str) -> tuple[int, str]:
        """A search as the console's form posts it (with the session's token: a search is audited, never a GET)."""
        status, _, body = self.request("POST", "/search", {"csrf": self.csrf(), "tasking": tasking, "q": q, **params})
        return status, body

    def csrf(self) -> str:
        return csrf_of(self.request("GET", "/")[2])


def csrf_of(page: str) -> str:
    """The session's CSRF token, as a page's forms carry it."""
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def api_search(base: str, params: dict[str, str], user: str | None, password: str) -> tuple[int, Message, dict]:
    request = urllib.request.Request(base + "/api/search?" + urllib.parse.urlencode(params))
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers, json.loads(answer.read())
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers, json.loads(answer.read())


def raw_request(base: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """A request with exactly these headers and no body sent: what a hostile or broken client can do."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(base).netloc, timeout=5)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()
