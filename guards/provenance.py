"""Rules 2 and 5: public access without login or interaction, and provenance that holds together."""
from __future__ import annotations

import functools
from datetime import timedelta
from urllib.parse import parse_qsl, unquote, urlsplit

import regex

from guards.base import GuardContext, Stage, Verdict
from guards.lexicon import Lexicons, load
from guards.walls import wall_text_reason
from pipeline.models import PUBLIC_SOURCE_KINDS, CollectedItem, content_hash
from pipeline.settings import Settings

# A header whose name holds one of these carries a credential or session state (Cookie, Cookie2, Authorization,
# Proxy-Authorization, X-Auth-Token, X-CSRF-Token, Session-Id, Api-Key, X-Goog-Api-Key, X-Amz-Security-Token, ...):
# a public fetch sends none, so fail closed on the name alone.
CREDENTIAL_HEADER = regex.compile(r"(?i)cookie|auth|token|session|api[-_]?key|secret|password|credential|csrf|xsrf|security")
# A URL that carries credentials (user:password@host) or a session or access token as a parameter.
CREDENTIAL_PARAMS = frozenset({"jsessionid", "phpsessid", "aspsessionid", "sessionid", "session_id", "session", "token",
                               "access_token", "accesstoken", "auth", "auth_token", "id_token", "oauth_token", "api_key",
                               "apikey", "password", "passwd", "x-amz-security-token", "x-amz-credential",
                               "x-amz-signature", "x-goog-credential", "x-goog-signature"})
CREDENTIAL_VALUE = regex.compile(r"(?i)^\s*(bearer|basic|token|digest|negotiate)\s")  # whatever the header's name
CLOCK_SKEW = timedelta(minutes=5)


@functools.lru_cache(maxsize=1024)
def carries_credentials(header_name: str) -> bool:
    """Cached: crawlers send the same few header names on every item."""
    return CREDENTIAL_HEADER.search(header_name) is not None


def url_credentials(url: str) -> str | None:
    """What in the URL is a credential or session token (userinfo, ;jsessionid=..., ?access_token=...), or None."""
    if "@" not in url and "?" not in url and ";" not in url and "#" not in url:  # most URLs: nothing to parse
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "a URL that cannot be parsed"  # fail closed: what it carries cannot be shown to be nothing
    if "@" in parts.netloc:
        return "user information in the URL"
    names = {name.lower() for text in (parts.query, parts.fragment)  # servers split on ";" too
             for name, _ in parse_qsl(text.replace(";", "&"), keep_blank_values=True)}
    names |= {unquote(segment.split("=")[0]).lower() for segment in parts.path.split(";")[1:]}  # path parameters
    found = sorted(names & CREDENTIAL_PARAMS)
    return f"the URL parameter {found[0]}" if found else None


class PublicProvenance(Stage):
    rule = "public_provenance"
    clause = "D1.VI.B.4; D1.VI.C.1-4; D3.IV.A.11.b-e; D3.IV.B.2.e; D3.IV.B.2.g"

    def __init__(self, login_url_pattern: str, lexicons: Lexicons):
        self.login_url = regex.compile(login_url_pattern)
        self.lexicons = lexicons

    @classmethod
    def from_settings(cls, settings: Settings) -> PublicProvenance:
        return cls(settings.crawl_login_url_pattern, load(settings))

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        method = item.request.method.upper()
        if method not in ("GET", "HEAD"):
            return self.rejected(f"fetched with {method}: only GET and HEAD read public content without interacting", method)
        sent = [name for name, value in item.request.headers.items()
                if carries_credentials(name) or CREDENTIAL_VALUE.match(value)]
        if sent:
            return self.rejected(f"credentials or session state were sent ({', '.join(sent)}): the content was not obtained as the public sees it", *sent)
        if not item.robots_allowed:
            return self.rejected("robots.txt disallows this URL", clause="D3.IV.B.2.e")
        if item.login_wall_detected:
            return self.rejected(f"behind a login wall ({item.login_wall_reason or 'detected'}): not public", item.login_wall_reason or "login_wall")
        if item.login_wall_reason:  # a reason without the flag: provenance that contradicts itself is not proof of public access
            return self.rejected(f"login-wall reason {item.login_wall_reason!r} given while the flag says no wall: "
                                 "inconsistent provenance, not shown to be public", item.login_wall_reason)
        wall = wall_text_reason(f"{item.title}\n{item.text}", self.lexicons)  # the crawler's own detector, checked again
        if wall:
            return self.rejected(f"the text is a login or members-only wall ({wall}): not public content", wall)
        if not 200 <= item.response.status < 300:
            return self.rejected(f"response status {item.response.status} is not a success", str(item.response.status))
        for url in dict.fromkeys((item.url, item.final_url, item.response.url, item.request.url)):
            if not url:
                continue
            if self.login_url.search(unquote(url)):  # decoded: /%6Cogin is /login
                return self.rejected(f"{url} is a login or sign-up page", url)
            credential = url_credentials(url)
            if credential:
                return self.rejected(f"{credential} of {url} is a credential or session state: not obtained as the "
                                     "public sees it", credential)
        if item.source_kind not in PUBLIC_SOURCE_KINDS:
            return self.rejected(f"source kind {item.source_kind!r} is not a public source", item.source_kind)
        return self.passed("fetched publicly: GET/HEAD, no credentials, robots allowed, no login wall, success")


class LawfullyObtained(Stage):
    rule = "lawfully_obtained"
    clause = "28CFR23.20(d)"

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        if item.fetched_at > context.now + CLOCK_SKEW:  # (not fetched_at - skew: that underflows for year 1)
            return self.rejected(f"fetch time {item.fetched_at.isoformat()} lies in the future")
        limit = context.settings.crawl_max_bytes
        if len(item.text) + len(item.title) > limit:  # decoded text has at most one character per byte of the body
            return self.rejected(f"title and text hold {len(item.title) + len(item.text)} characters, more than the largest "
                                 f"body the crawler accepts ({limit} bytes, crawl_max_bytes): not what a public fetch returned")
        if item.content_sha256 != content_hash(item.title, item.text):
            return self.rejected("content hash does not match the content: provenance cannot be trusted")
        if not item.final_url.startswith(("http://", "https://")) or not item.url.startswith(("http://", "https://")):
            return self.rejected("provenance lacks an http(s) URL")
        return self.passed("provenance is complete and consistent")
