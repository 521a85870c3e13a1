"""Hostile HTTP requests to fcmon's own servers, over real HTTP on 127.0.0.1: the console's forms and the API's query
parameters (tests/factories_web.py) and the gateway's JSON bodies (tests/factories_gateway.py). A request is
answered, never dropped and never a 500; an HTML answer holds no script and no javascript: link, whatever the request
or the records held; a refusal is a 4xx with a reason. Shared by tests/test_fuzz_http.py and bench/bench_fuzz.py."""
from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.parse
from datetime import timedelta
from html.parser import HTMLParser

from hypothesis import strategies as st

from pipeline.models import utcnow
from tests import hostile
from tests.factories import make_record
from tests.fuzz_targets import Outcome, Unsafe

NOW = utcnow()
LIVE = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
PASSWORD = "correct horse battery"
HOSTILE_RECORDS = [  # what a hostile crawl may have stored: markup as text, a javascript: link, direction overrides
    make_record(url="javascript:alert(1)//forum.example/p/1", final_url="javascript:alert(1)//forum.example/p/1",
                title=f'<script>{hostile.SCRIPT_MARK}()</script> converter \u202egnp.exe', author='"><svg onload=alert(1)>',
                text=f"converter <img src=x onerror={hostile.SCRIPT_MARK}()> \u200b\u200d javascript:alert(2)"),
    make_record(url="https://forum.example/p/2", title="converter \u061c\u202e", text="converter </textarea><script>x</script>"),
]
ACTIVE_TAGS = {"script", "svg", "img", "iframe", "object", "embed", "math", "base", "meta"}
SAFE_LINK = re.compile(r"^(/|\?|#|https?://)", re.IGNORECASE)


class Markup(HTMLParser):
    """The elements and attributes a browser would make of a page (text, escaped or not, is no element)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.faults: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ACTIVE_TAGS and not (tag == "meta" and all(n in ("charset", "name", "content") for n, _ in attrs)):
            self.faults.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.faults.append(f"{tag} {name}=")
            if name in ("href", "src", "action", "formaction") and value and not SAFE_LINK.match(value.strip()):
                self.faults.append(f"{tag} {name}={value[:200]!r}")


def answered_safely(status: int, content_type: str, body: bytes) -> Outcome:
    """Stored (2xx/3xx) or refused with a reason (4xx); Unsafe for a 500, or markup or a link a page must not have."""
    if status >= 500 and status != 503:
        raise Unsafe(f"answered {status}: {body[:300]!r}")
    if "html" in content_type:
        page = Markup()
        page.feed(body.decode("utf-8", "replace"))
        page.close()
        if page.faults:
            raise Unsafe(f"the page holds {page.faults[0]}")
    if status >= 400:
        return Outcome(0, (f"{status}",))
    return Outcome(1)


def send(base: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """Exactly this request line, headers and body (urllib would re-quote the path)."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(base).netloc, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type") or "", answer.read()
    finally:
        connection.close()


def basic(user: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8", "surrogatepass")).decode()


def quoted(text: str) -> str:
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


param_values = st.one_of(hostile.hostile_text, hostile.urls, st.sampled_from(["T-1", "T-2", "converter", "", "-1", "99999999999999999999",
                                                                             "2026-13-45", "%ff%fe", "%", "%zz"]))
RAW_VALUES = ("%ff%fe", "%", "%zz")  # sent as they are: broken percent-encoding
PARAM_NAMES = ["tasking", "q", "offset", "limit", "sort", "source_kind", "from", "to", "author", "user", "status", "bogus"]


@st.composite
def console_requests(draw: st.DrawFn) -> tuple[str, str, bytes | None, dict[str, str]]:
    """(method, path with query, form body, headers) against the console's pages, forms and API."""
    params = draw(st.lists(st.tuples(st.sampled_from(PARAM_NAMES), param_values), max_size=5))
    raw = "&".join(f"{quoted(k)}={v if v in RAW_VALUES else quoted(v)}" for k, v in params)
    where = draw(st.sampled_from(["/search", "/api/search", "/review", "/packets", "/quarantine", "/retention", "/taskings",
                                  "/record/", "/quarantine/", "/login", "/", "/nowhere"]))
    path = where + (quoted(draw(hostile.hostile_text)) if where.endswith("/") and where != "/" else "") + (f"?{raw}" if raw else "")
    headers = {"Authorization": basic(draw(st.sampled_from(["alice", "nobody", "\u202ealice"])))} if where.startswith("/api") else {}
    if draw(st.booleans()) and not where.startswith("/api"):  # a form post, with or without the session's CSRF token
        form = raw.encode() if draw(st.booleans()) else draw(hostile.spoiled(hostile.encode(raw)))
        return "POST", where.rstrip("/") or "/", form, headers | {"Content-Type": "application/x-www-form-urlencoded"}
    return "GET", path, None, headers


# -- the gateway's JSON bodies -------------------------------------------------------------------

kibana_bodies = st.fixed_dictionaries({}, optional={
    "query": st.one_of(hostile.json_values, st.fixed_dictionaries({"query_string": st.fixed_dictionaries({"query": hostile.hostile_text})}),
                       st.fixed_dictionaries({"match": st.fixed_dictionaries({"message": hostile.hostile_text})})),
    "size": st.one_of(st.integers(-5, 10_000_000), hostile.json_values), "from": st.integers(-5, 100),
    "aggs": hostile.json_values, "_source": hostile.json_values, "sort": hostile.json_values, hostile.PIECES[0]: hostile.json_values,
})


@st.composite
def gateway_bodies(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """(path, body, content type) of a search Kibana could never have sent."""
    path = draw(st.sampled_from(["/fcmon-records/_search", "/fcmon-records/_count", "/fcmon-records/_msearch",
                                 "/fcmon-records/_async_search"]))
    kind = draw(st.sampled_from(["kibana", "kibana", "deep", "broken", "ndjson"]))
    if kind == "deep":
        body = b'{"query":' * draw(st.integers(50, hostile.DEPTH)) + b"{}"
    elif kind == "ndjson":
        lines = draw(st.lists(st.one_of(kibana_bodies.map(json.dumps), hostile.hostile_text), max_size=4))
        body = hostile.encode("\n".join(lines) + "\n")
    else:
        body = json.dumps(draw(kibana_bodies)).encode()
        body = draw(hostile.spoiled(body)) if kind == "broken" else body
    content_type = draw(st.sampled_from(["application/json", "application/x-ndjson", "application/vnd.elasticsearch+json; compatible-with=8",
                                         "text/plain", "application/json; charset=\xff"]))
    return path, body, content_type
