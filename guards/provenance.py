"""Rules 2 and 5: public access without login or interaction, and provenance that holds together."""
from __future__ import annotations

import functools
from datetime import timedelta

import regex

from guards.base import GuardContext, Stage, Verdict
from pipeline.models import PUBLIC_SOURCE_KINDS, CollectedItem, content_hash
from pipeline.settings import Settings

CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
SESSION_HEADER = regex.compile(r"(?i)^x-(auth|csrf|xsrf|session|access|api)[-_]?(token|key|id)?$")
CLOCK_SKEW = timedelta(minutes=5)


@functools.lru_cache(maxsize=1024)
def carries_credentials(header_name: str) -> bool:
    """Cached: crawlers send the same few header names on every item."""
    return header_name.lower() in CREDENTIAL_HEADERS or SESSION_HEADER.match(header_name) is not None


class PublicProvenance(Stage):
    rule = "public_provenance"
    clause = "D1.VI.B.4; D1.VI.C.1-4; D3.IV.A.11.b-e; D3.IV.B.2.e; D3.IV.B.2.g"

    def __init__(self, login_url_pattern: str):
        self.login_url = regex.compile(login_url_pattern)

    @classmethod
    def from_settings(cls, settings: Settings) -> PublicProvenance:
        return cls(settings.crawl_login_url_pattern)

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        method = item.request.method.upper()
        if method not in ("GET", "HEAD"):
            return self.rejected(f"fetched with {method}: only GET and HEAD read public content without interacting", method)
        sent = [name for name in item.request.headers if carries_credentials(name)]
        if sent:
            return self.rejected(f"credentials or session state were sent ({', '.join(sent)}): the content was not obtained as the public sees it", *sent)
        if not item.robots_allowed:
            return self.rejected("robots.txt disallows this URL", clause="D3.IV.B.2.e")
        if item.login_wall_detected:
            return self.rejected(f"behind a login wall ({item.login_wall_reason or 'detected'}): not public", item.login_wall_reason or "login_wall")
        if not 200 <= item.response.status < 300:
            return self.rejected(f"response status {item.response.status} is not a success", str(item.response.status))
        if self.login_url.search(item.final_url):
            return self.rejected(f"final URL {item.final_url} is a login or sign-up page", item.final_url)
        if item.source_kind not in PUBLIC_SOURCE_KINDS:
            return self.rejected(f"source kind {item.source_kind!r} is not a public source", item.source_kind)
        return self.passed("fetched publicly: GET/HEAD, no credentials, robots allowed, no login wall, success")


class LawfullyObtained(Stage):
    rule = "lawfully_obtained"
    clause = "28CFR23.20(d)"

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        if item.fetched_at - CLOCK_SKEW > context.now:
            return self.rejected(f"fetch time {item.fetched_at.isoformat()} lies in the future")
        if item.content_sha256 != content_hash(item.title, item.text):
            return self.rejected("content hash does not match the content: provenance cannot be trusted")
        if not item.final_url.startswith(("http://", "https://")) or not item.url.startswith(("http://", "https://")):
            return self.rejected("provenance lacks an http(s) URL")
        return self.passed("provenance is complete and consistent")
