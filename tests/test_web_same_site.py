"""Hole 4 of the outside test: pages of the same *site* (another port of the host, a sibling subdomain) get the
SameSite=Strict cookie on their requests, so they must not be able to make a signed-in browser run an audited
search or read, nor sign it in as someone else. In Chromium, with the hostile page served on another port of
127.0.0.1, and over HTTP with the headers a browser sends from a sibling subdomain."""
from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from tests.factories import make_record
from tests.factories_web import NoRedirect, WebClient
from tests.servers import serving
from tests.test_web import PASSWORD, app, base, browser, page, queries, sign_in  # noqa: F401  (fixtures)


def hostile_site(html: str):
    """A page on another port of 127.0.0.1: the same site as the console, another origin. It may run script."""
    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    return serving(Hostile)


def test_a_same_site_page_cannot_run_searches_or_reads_as_the_user(app, base, page):
    record = make_record(url="https://forum.example/p/1")
    sign_in(page, base)
    assert [c["sameSite"] for c in page.context.cookies()] == ["Strict"]
    attack = f"""<img src="{base}/search?tasking=T-1&q=framed+words"><img src="{base}/record/{record.id}?tasking=T-1">"""
    with hostile_site(attack) as elsewhere:
        assert urllib.parse.urlsplit(elsewhere).port != urllib.parse.urlsplit(base).port
        page.goto(elsewhere + "/", wait_until="load")  # the images' requests carried the session cookie
    assert queries(app) == [] and queries(app, "query.refused") == [] and queries(app, "record.read") == []


def test_a_same_site_page_cannot_sign_the_browser_in_as_someone_else(app, base, page):
    attack = f"""<form method="post" action="{base}/login"><input name="name" value="sam">
<input name="password" value="{PASSWORD}"></form><script>document.forms[0].submit()</script>"""
    with hostile_site(attack) as elsewhere:
        page.goto(elsewhere + "/")
        page.wait_for_url(f"{base}/**")  # the form was posted to the console, and answered
    assert page.context.cookies() == [] and queries(app, "web.login") == []  # the victim is not signed in as sam
    assert "this sign-in did not come from the console's own page" in page.locator(".error").inner_text()


def post(base: str, path: str, form: dict[str, str], headers: dict[str, str]) -> int:
    request = urllib.request.Request(base + path, data=urllib.parse.urlencode(form).encode(), method="POST", headers=headers)
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as answer:
        return answer.code


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-site"},  # another port of the host, or a sibling subdomain
    {"Sec-Fetch-Site": "same-site", "Origin": "https://other.fcmon.example"},  # behind a proxy: Host is not compared
])
def test_a_sign_in_from_a_sibling_subdomain_is_refused(app, base, headers):
    assert post(base, "/login", {"name": "alice", "password": PASSWORD}, headers) == 403
    assert queries(app, "web.login") == []


def test_a_link_to_a_search_fills_the_form_in_and_runs_nothing(app, base):
    client = WebClient(base)
    assert client.sign_in("alice", PASSWORD) == 303
    status, _, body = client.request("GET", "/search?tasking=T-1&q=converters")
    assert status == 200 and 'value="converters"' in body and "press Search to run it" in body
    assert queries(app) == [] and queries(app, "query.refused") == []
    assert client.search("T-1", "converters")[0] == 200 and [q["query"] for q in queries(app)] == ["converters"]


def test_the_api_refuses_what_a_browser_sends_for_another_origins_page(app, base):
    auth = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(base + "/api/search?tasking=T-1&q=converters",
                                     headers={"Authorization": auth, "Sec-Fetch-Site": "same-site"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403 and queries(app) == [] and queries(app, "query.refused") == []


def test_a_form_with_the_sessions_token_is_still_refused_from_another_origin(app, base):
    client = WebClient(base)
    assert client.sign_in("alice", PASSWORD) == 303
    form = urllib.parse.urlencode({"csrf": client.csrf(), "tasking": "T-1", "q": "converters"}).encode()
    for headers in ({"Sec-Fetch-Site": "same-site"}, {"Origin": "http://127.0.0.1:1"}):  # a leaked token is not enough
        request = urllib.request.Request(base + "/search", data=form, method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as refused:
            client.opener.open(request, timeout=5)
        assert refused.value.code == 403
    assert queries(app) == [] and client.search("T-1", "converters")[0] == 200
