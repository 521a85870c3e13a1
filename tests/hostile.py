"""Hostile input: the stored corpus (tests/fixtures/hostile/<parser>/) and hypothesis strategies that build what a
hostile site, API or operator can send: invalid UTF-8, deep nesting, entity expansion and external entities, huge
attributes, right-to-left and zero-width characters, `<script>` and `javascript:` URLs, wrong JSON types.

SCRIPT_MARK only ever appears inside <script> or <style> elements (or their JSON/feed equivalents) or an on* handler:
text a parser keeps must never hold it. `spoiled` keeps that true: its invalid bytes never split the tags it is put
in (`<sc\xffript>` is no script tag to any parser, and what follows it is text). Shared by tests/test_fuzz_*.py and bench/bench_fuzz.py.
"""
from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import strategies as st

CORPUS_DIR = Path(__file__).parent / "fixtures" / "hostile"
SCRIPT_MARK = "fcmonSCRIPTMARK"
DEPTH = 50_000  # deeper than CPython's recursion limit and libxml2's depth limit

PIECES = [
    "\u202eevil\u202c", "\u200b\u200c\u200d\u2060\ufeff", "\u061c\u200f\u200e", "a\u0301\u0301\u0301", "\x00", "\x1b[2J",
    "<script>alert(1)</script>", "javascript:alert(1)", " JaVaScRiPt:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "&lt;script&gt;", "&#0;&#x110000;&bogus;",
    "]]>", "<![CDATA[", "<!--", "\r\n\r\n", "\U0001f600", "\ud800", "%00%ff", "{{7*7}}", "' OR 1=1 --", "\\u0000",
    "ＡＢＣ", "ⓐⓑⓒ", "a" * 300,
]
URLS = [
    "https://example.org/a", "http://example.org/b?x=1#f", "/relative/path", "//evil.example/x", "javascript:alert(1)",
    " javascript:alert(1)", "JAVASCRIPT:alert(1)", "java\nscript:alert(1)", "data:text/html,x", "file:///etc/passwd",
    "ftp://example.org/", "https://exa\u202emple.org/", "https://[::1/", "http://", "", "mailto:a@b", "https://example.org/" + "a" * 3000,
]
LAUGHS = ('<!DOCTYPE lolz [<!ENTITY a "aaaaaaaaaaaaaaaa">' + "".join(
    f'<!ENTITY {n} "{("&" + p + ";") * 10}">' for p, n in zip("abcdefgh", "bcdefghi")) + ']>')
XXE = '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd"><!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>'

hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(PIECES),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=10)), max_size=6).map("".join),
)
urls = st.one_of(st.sampled_from(URLS), hostile_text)


def encode(text: str) -> bytes:
    """Text as bytes, lone surrogates and all (they make invalid UTF-8)."""
    return text.encode("utf-8", "surrogatepass")


MARK_TAGS = re.compile(rb"(<|&lt;)(script|style)(>|&gt;)|<a [^<>]*>")  # the tags SCRIPT_MARK is put in or after


@st.composite
def spoiled(draw: st.DrawFn, body: bytes) -> bytes:
    """A document as it may arrive: whole, truncated, with invalid UTF-8 spliced in, or a BOM of the wrong kind."""
    how = draw(st.sampled_from(["whole", "whole", "truncate", "splice", "bom"]))
    if how == "truncate" and body:
        return body[:draw(st.integers(0, len(body) - 1))]
    if how == "splice":
        at = draw(st.integers(0, len(body)))
        for tag in MARK_TAGS.finditer(body):  # a byte inside one makes it no tag, and the SCRIPT_MARK in it text
            if tag.start() < at < tag.end():
                at = tag.start()
        return body[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00"])) + body[at:]
    if how == "bom":
        return draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])) + body
    return body


def markup_text(value: str, escape: bool) -> str:
    return html.escape(value) if escape else value


# Ends whatever the unescaped hostile text before it left open (a comment, `<![CDATA[` as HTML's bogus comment or
# in <math> a CDATA section, an attribute value, a tag), so that by HTML's parsing rules the script after it is one:
# `<![CDATA[x<style>MARK` is text to a browser, the comment ending at the style tag's ">".
RESET = "]]>-->\">'>"


# -- feeds ---------------------------------------------------------------------------------------

def closed_cdata(text: str) -> str:
    """Unescaped text with a CDATA section it opens closed: in XML an open one makes the rest of the feed, the script
    mark's escaped tags too, one text (what RESET ends in HTML)."""
    return text + "]]>" if text.count("<![CDATA[") > text.count("]]>") else text


@st.composite
def feed_entry(draw: st.DrawFn, atom: bool, flavour: str) -> str:
    esc = draw(st.booleans())
    title, summary = closed_cdata(markup_text(draw(hostile_text), esc)), closed_cdata(markup_text(draw(hostile_text), esc))
    link = markup_text(draw(urls), True)
    script = f"{html.escape(RESET)}&lt;script&gt;{SCRIPT_MARK}&lt;/script&gt;" if draw(st.booleans()) else ""
    if atom:
        youtube = ["<yt:channelId>UC\u202ex</yt:channelId>", f"<yt:channelId>{html.escape(draw(hostile_text))}</yt:channelId>",
                   "<media:group><media:community><media:statistics views=\"1e999\"/><media:starRating count=\""
                   + "9" * 400 + "\"/></media:community></media:group>",
                   f'<media:group><media:community><media:statistics views="{html.escape(draw(hostile_text))}"/>'
                   "</media:community></media:group>"]
        reddit = ["<author><name>/u/\u200bx</name></author>", f"<author><name>{html.escape(draw(hostile_text))}</name></author>"]
        extra = draw(st.sampled_from({"youtube": youtube, "reddit": reddit}.get(flavour, [""] + youtube + reddit)))
        return (f"<entry><title>{title}</title><link href=\"{link}\"/><id>{link}</id><updated>{markup_text(draw(hostile_text), True)}"
                f"</updated><content type=\"html\">{summary}{script}</content>{extra}</entry>")
    return (f"<item><title>{title}</title><link>{link}</link><description>{summary}{script}</description>"
            f"<pubDate>{markup_text(draw(hostile_text), True)}</pubDate></item>")


@st.composite
def feeds(draw: st.DrawFn, flavour: str = "any") -> bytes:
    """RSS or Atom (Reddit's and YouTube's feeds are Atom), with entity bombs, external entities and broken bytes."""
    atom = flavour != "any" or draw(st.booleans())
    prolog = '<?xml version="1.0" encoding="utf-8"?>' + draw(st.sampled_from(["", "", LAUGHS, XXE]))
    entries = "".join(draw(st.lists(feed_entry(atom, flavour), max_size=4)))
    if prolog.endswith("]>") and "lolz" in prolog:
        entries += "<item><title>&i;</title><link>https://example.org/l</link></item>"
    body = (f'{prolog}<feed xmlns="http://www.w3.org/2005/Atom" xmlns:yt="http://www.youtube.com/xml/schemas/2015" '
            f'xmlns:media="http://search.yahoo.com/mrss/">{entries}</feed>') if atom else \
        f'{prolog}<rss version="2.0"><channel><title>{draw(hostile_text)}</title>{entries}</channel></rss>'
    return draw(spoiled(encode(body)))


# -- HTML pages ----------------------------------------------------------------------------------

TAGS = ["div", "p", "article", "span", "h1", "nav", "footer", "main", "li", "time", "a", "form", "svg", "math", "template"]


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.sampled_from(["text", "text", "tag", "tag", "script", "link", "input", "meta"]) if depth < 6 else st.just("text"))
    if kind == "text":
        return markup_text(draw(hostile_text), draw(st.booleans()))
    if kind == "script":
        tag = draw(st.sampled_from(["script", "style"]))
        return f"{RESET}<{tag}>{SCRIPT_MARK}()</{tag}>"
    if kind == "link":
        return f'{RESET}<a href="{html.escape(draw(urls))}" onclick="{SCRIPT_MARK}()">{markup_text(draw(hostile_text), True)}</a>'
    if kind == "input":
        return f'<input type="{draw(st.sampled_from(["password", "PassWord", "text"]))}" name="{html.escape(draw(hostile_text))}">'
    if kind == "meta":
        name = draw(st.sampled_from(["author", "og:title", "article:published_time", "description"]))
        return f'<meta name="{name}" property="{name}" content="{html.escape(draw(hostile_text))}">'
    tag = draw(st.sampled_from(TAGS))
    attrs = draw(st.sampled_from(["", ' class="author"', ' rel="author"', ' datetime="9999-12-31T23:59:59-23:59"',
                                  f' title="{"x" * 20000}"', ' class="tgme_widget_message_text"']))
    inner = "".join(draw(st.lists(elements(depth + 1), max_size=4)))
    return f"<{tag}{attrs}>{inner}</{tag}>" if draw(st.booleans()) else f"<{tag}{attrs}>{inner}"


@st.composite
def pages(draw: st.DrawFn) -> bytes:
    head = draw(st.sampled_from(["", '<meta charset="utf-8">', '<meta charset="x-bogus">', '<meta charset="utf-16">',
                                 '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">']))
    title = markup_text(draw(hostile_text), True)
    body = "".join(draw(st.lists(elements(), max_size=6)))
    return draw(spoiled(encode(f"<!doctype html><html><head>{head}<title>{title}</title></head><body>{body}</body></html>")))


# -- JSON APIs -----------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                 st.dictionaries(hostile_text, inner, max_size=4)), max_leaves=12)


def field(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A field as the API sends it, or of the wrong type."""
    return st.one_of(strategy, strategy, strategy, strategy, json_values)


def script_html() -> st.SearchStrategy:
    return st.one_of(hostile_text, st.just(f"<p>hi<script>{SCRIPT_MARK}()</script></p>"),
                     hostile_text.map(lambda t: f"<p>{html.escape(t)}<br>{t}</p>"))


mastodon_status = st.fixed_dictionaries({"url": field(st.just("https://mastodon.example/@a/1"))}, optional={
    "uri": field(urls), "visibility": field(st.sampled_from(["public", "unlisted", "direct"])),
    "content": field(script_html()), "spoiler_text": field(hostile_text), "created_at": field(hostile_text),
    "account": field(st.fixed_dictionaries({}, optional={"acct": field(hostile_text), "display_name": field(hostile_text),
                                                         "noindex": field(st.booleans())})),
    "replies_count": field(st.integers()), "reblogs_count": field(hostile_text), "favourites_count": field(st.floats()),
    "reblog": json_values,
})
bluesky_view = st.fixed_dictionaries({"uri": field(st.sampled_from(["at://did:plc:x/app.bsky.feed.post/3k", "at://x/../..//"]))}, optional={
    "replyCount": field(st.integers()), "likeCount": field(hostile_text),
    "author": field(st.fixed_dictionaries({"handle": field(st.sampled_from(["a.bsky.social", "../evil", "did:plc:x"]))}, optional={
        "displayName": field(hostile_text),
        "labels": field(st.lists(st.fixed_dictionaries({"val": field(st.sampled_from(["!no-unauthenticated", "porn", "x"]))}), max_size=2))})),
})
bluesky_view = st.tuples(bluesky_view, field(st.fixed_dictionaries({}, optional={
    "text": field(hostile_text), "createdAt": field(hostile_text)}))).map(lambda vr: {**vr[0], "record": vr[1]})
mastodon_answers = st.one_of(st.lists(mastodon_status, min_size=1, max_size=4), st.lists(mastodon_status, max_size=4), json_values).map(json.dumps).map(str.encode)
bluesky_answers = st.one_of(
    st.fixed_dictionaries({"posts": field(st.lists(bluesky_view, min_size=1, max_size=4))}),
    st.fixed_dictionaries({}, optional={"posts": field(st.lists(bluesky_view, max_size=4))}),
    st.fixed_dictionaries({}, optional={"feed": field(st.lists(st.fixed_dictionaries({"post": bluesky_view}), max_size=4))}),
    json_values).map(json.dumps).map(str.encode)


@st.composite
def json_bodies(draw: st.DrawFn, shaped: st.SearchStrategy) -> bytes:
    """An API answer: well-shaped with wrong types, nested too deep, or not JSON at all."""
    kind = draw(st.sampled_from(["shaped", "shaped", "shaped", "deep", "broken"]))
    if kind == "deep":
        return b"[" * draw(st.integers(900, DEPTH)) + draw(st.sampled_from([b"", b"]"]))
    body = draw(shaped)
    return draw(spoiled(body)) if kind == "broken" else body


@st.composite
def telegram_pages(draw: st.DrawFn) -> bytes:
    messages = []
    for _ in range(draw(st.integers(0, 3))):
        post = html.escape(draw(st.one_of(st.sampled_from(["chan/1", "chan/22", "/evil.example/1", "//evil.example/2",
                                                          "javascript:alert(1)", "chan", "", "chan/3", "chan/4"]))))
        post = post if draw(st.integers(0, 4)) else html.escape(draw(hostile_text))
        text = draw(script_html())
        messages.append(f'<div class="tgme_widget_message" data-post="{post}"><div class="tgme_widget_message_text">{text}</div>'
                        f'<a class="tgme_widget_message_owner_name">{markup_text(draw(hostile_text), True)}</a>'
                        f'<span class="tgme_widget_message_views">{html.escape(draw(hostile_text))}</span>'
                        f'<a class="tgme_widget_message_date"><time datetime="{html.escape(draw(hostile_text))}"></time></a></div>')
    prev = f'<link rel="prev" href="{html.escape(draw(urls))}">' if draw(st.booleans()) else ""
    return draw(spoiled(encode(f"<html><head>{prev}</head><body>{''.join(messages)}</body></html>")))


# -- the corpus ----------------------------------------------------------------------------------

def corpus(parser: str) -> list[Path]:
    return sorted((CORPUS_DIR / parser).iterdir())


def generated(parser: str) -> dict[str, bytes]:
    """Hostile inputs too large to keep as files, built the same way every run."""
    deep_markup = b"<div>" * DEPTH
    big_attr = b'<p title="' + b"\xe2\x80\xae" * 1_000_000 + b'">x</p>'
    return {
        "feed": {"deep": b"<rss><channel>" + b"<item>" * DEPTH, "huge-attribute": b"<rss><channel><item><link>https://a.example/"
                 b"</link><title x=\"" + b"a" * 3_000_000 + b"\">t</title></item></channel></rss>"},
        "html": {"deep": deep_markup, "huge-attribute": big_attr, "many-links": b"<a href='javascript:x'>j</a>" * 20_000},
        "telegram": {"deep": deep_markup, "huge-attribute": big_attr},
        "json": {"deep-array": b"[" * DEPTH, "deep-object": b'{"a":' * DEPTH, "huge-string": b'"' + b"\\u202e" * 500_000 + b'"'},
        "toml": {"deep-array": b"a = " + b"[" * DEPTH, "deep-table": b"a = " + b"{b = " * DEPTH},
    }.get(parser, {})


# -- the interchange format ----------------------------------------------------------------------

ITEM = {"tasking_id": "T-1", "source_kind": "forum_post", "source_id": "forum.example", "url": "https://forum.example/post/1",
        "fetched_at": (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat(), "request": {"method": "GET", "headers": {"User-Agent": "fcmon/0.1"}},
        "response": {"status": 200, "headers": {"Content-Type": "text/html"}}, "robots_allowed": True,
        "login_wall_detected": False, "title": "Selling converters", "text": "Six catalytic converters, cash only.",
        "author": "wrenchman"}
TASKING = {"id": "T-1", "kind": "criminal_predicate", "case_number": "2026-CR-1", "predicate": "Reasonable suspicion.",
           "criminal_activity": "theft", "requested_by": "alice", "approved_by": "sam", "approved_at": "2026-11-01T12:00:00Z",
           "expires_at": "2099-01-01T00:00:00Z", "scope": {"domains": ["forum.example"], "keywords": ["converter"]}}


@st.composite
def altered(draw: st.DrawFn, base: dict, extra_keys: list[str]) -> bytes:
    """A valid document with some fields replaced by hostile values, some removed and some unknown ones added."""
    doc = dict(base)
    for key in draw(st.lists(st.sampled_from(sorted(base) + extra_keys), max_size=4)):
        how = draw(st.sampled_from(["hostile", "url", "any", "drop"]))
        if how == "drop":
            doc.pop(key, None)
        else:
            doc[key] = draw({"hostile": hostile_text, "url": urls, "any": json_values}[how])
    kind = draw(st.sampled_from(["doc", "doc", "doc", "deep", "broken"]))
    if kind == "deep":
        return json.dumps({**doc, "text": None})[:-1].encode() + b', "x": ' + b"[" * draw(st.integers(100, DEPTH)) + b"}"
    body = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    return draw(spoiled(body)) if kind == "broken" else body


item_lines = altered(ITEM, ["final_url", "published_at", "engagement", "handle", "schema_version", "id", "bogus"])
tasking_lines = altered(TASKING, ["team", "revoked", "title", "bogus"])
jsonl_files = st.lists(st.one_of(item_lines, st.binary(max_size=40)), min_size=1, max_size=5).flatmap(
    lambda lines: st.sampled_from([b"\n", b"\r\n", b"\r"]).map(lambda sep: sep.join(lines)))


# -- settings and sources files (TOML) -------------------------------------------------------------

def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if value == value and abs(value) != float("inf") else "nan"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps("" if value is None else value)


SETTING_KEYS = ["bus", "index", "retention_days_criminal", "retention_days_noncriminal", "quarantine_days", "guards",
                "crawl_allow_hosts", "crawl_max_bytes", "elasticsearch_password", "duty_hours_default", "duty_timezone",
                "crawl_login_url_pattern", "work_batch_size", "data_dir", "retention_days", "bogus_key", "Bus"]
SETTING_VALUES = st.one_of(json_values, st.sampled_from([1825, 1826, 99999, 0, -1, "kafka", "local", "elasticsearch",
                                                         {"guards.pii.PiiMinimization": 1}, ["127.0.0.1"]]))


@st.composite
def settings_toml(draw: st.DrawFn) -> bytes:
    table = draw(st.dictionaries(st.sampled_from(SETTING_KEYS), SETTING_VALUES, max_size=4))
    text = "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items())
    return draw(spoiled(encode(text)))


SOURCE_FIELDS = {
    "feed": {"urls": ["https://news.example/feed.xml"]}, "site": {"start_urls": ["https://forum.example/"]},
    "mastodon": {"instance": "https://mastodon.example"}, "bluesky": {}, "reddit": {"subreddits": ["x"]},
    "telegram": {"channels": ["chan"]}, "youtube": {"channels": ["UCx"]},
}
SOURCE_KEYS = ["id", "kind", "urls", "start_urls", "instance", "api", "web", "base", "allow", "deny", "extract", "sitemaps",
               "limit", "pages", "channels", "depth_limit", "enabled", "bogus"]
SOURCE_VALUES = st.one_of(json_values, urls, st.lists(urls, max_size=2), st.sampled_from(
    ["(?P<x", "a{99999999}", {"title": "css:h1::text"}, {"text": "xpath://p["}, {"title": "css:<<"}, 9999, "site"]))


@st.composite
def sources_toml(draw: st.DrawFn) -> bytes:
    blocks = []
    for number in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(sorted(SOURCE_FIELDS)))
        table = {"id": f"s{number}", "kind": kind, **SOURCE_FIELDS[kind]}
        table.update(draw(st.dictionaries(st.sampled_from(SOURCE_KEYS), SOURCE_VALUES, max_size=3)))
        blocks.append("[[source]]\n" + "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()))
    return draw(spoiled(encode("\n\n".join(blocks))))
