"""Parsing pages and feeds into what an item holds: pure functions on bytes and strings, no Scrapy."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urljoin

import feedparser
import lxml.etree
import lxml.html
import regex
import trafilatura
from w3lib.encoding import html_to_unicode

from guards.walls import WALL_TEXT_MAX_CHARS, wall_text_reason

log = logging.getLogger(__name__)
# trafilatura logs ERROR for pages it cannot use (tiny or empty ones); main_text() falls back, so they are not crawl errors.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/rdf+xml")
FEED_SNIFF = regex.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(rss|feed|rdf:RDF)\b", regex.DOTALL)
CHARREF = regex.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
CHROME = ("header", "nav", "aside", "footer")
NOT_TEXT = ("script", "style", "template")  # their contents are code, never a page's text


@dataclass(frozen=True)
class Page:
    title: str
    text: str
    author: str | None
    published_at: datetime | None
    is_post: bool  # an <article> with an author: a forum post
    login_wall_reason: str | None


def is_feed(content_type: str, body: bytes) -> bool:
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct in FEED_TYPES:
        return True
    if ct in ("text/html", "application/xhtml+xml"):
        return False
    return bool(FEED_SNIFF.match(body[:2048].lstrip(b"\xef\xbb\xbf")))


def _charref(match: regex.Match) -> bytes:
    digits = match.group(1) or match.group(2)
    value = int(digits, 16 if match.group(1) else 10) if len(digits) <= 8 else -1
    return match.group(0) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else b"&#xFFFD;"


def read_feed(body: bytes) -> feedparser.FeedParserDict:
    """feedparser on a feed, its character references that name no character (past U+10FFFF, surrogates) made U+FFFD:
    feedparser's loose parser raises on them instead of reading the feed."""
    return feedparser.parse(CHARREF.sub(_charref, body))


def feed_links(body: bytes, base_url: str) -> list[str]:
    """Absolute links of a feed's entries; a broken feed yields what could be read (feedparser never raises on bad XML)."""
    parsed = read_feed(body)
    if parsed.get("bozo"):
        log.info("event=feed_malformed url=%s error=%r", base_url, str(parsed.get("bozo_exception")))
    links: list[str] = []
    for entry in parsed.entries:
        link = entry.get("link") or next((l.get("href") for l in entry.get("links", []) if l.get("href")), None)
        if link:
            links.append(urljoin(base_url, link))
    return links


def _utf8_else_windows_1252(body: bytes) -> str:
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


def decode_html(body: bytes, content_type: str) -> str:
    """HTML as text: BOM, then the header's charset, then <meta>; undeclared, UTF-8 when it decodes, else windows-1252
    (the WHATWG default for legacy pages, where a statistical guess on a short page is often wrong)."""
    return html_to_unicode(content_type or None, body, auto_detect_fun=_utf8_else_windows_1252)[1]


def parse_datetime(value: object) -> datetime | None:
    """An ISO 8601 timestamp as aware UTC (naive means UTC); None when absent, not a string or unreadable."""
    if not value or not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):  # 9999-12-31T23:59-01:00 is past the last UTC datetime
        return None


def _text(el: lxml.html.HtmlElement | None) -> str:
    if el is None:
        return ""
    return " ".join(el.text_content().split())


def _first(doc: lxml.html.HtmlElement, *xpaths: str) -> str:
    for xp in xpaths:
        for found in doc.xpath(xp):
            value = found if isinstance(found, str) else _text(found)
            value = " ".join(str(value).split())
            if value:
                return value
    return ""


def login_wall_reason(doc: lxml.html.HtmlElement, text: str) -> str | None:
    """Why the page's content sits behind a login, or None: a password form outside the page chrome, or a short 'log in to see' page."""
    chrome = " or ".join(f"ancestor::{tag}" for tag in CHROME)
    if doc.xpath(f"//input[translate(@type, 'PASWORD', 'pasword')='password'][not({chrome})]"):
        return "password_form"
    if len(text) <= WALL_TEXT_MAX_CHARS:
        return wall_text_reason(text)  # the guards' own detector: one definition of a wall in text
    return None


def main_text(html: str, url: str, doc: lxml.html.HtmlElement) -> str:
    text = ""
    if html.strip():
        text = trafilatura.extract(html, url=url, favor_precision=True, include_comments=False, include_tables=True,
                                   deduplicate=False) or ""
    if not text.strip():
        article = doc.find(".//article")
        fallback = article if article is not None else doc.find(".//body")
        text = "\n".join(" ".join(p.split()) for p in (fallback.itertext() if fallback is not None else []) if p.strip())
    return text.strip()


def extract_page(html: str, url: str) -> Page:
    """Title, main text, author, publication time, kind and login-wall verdict of one HTML page."""
    try:
        doc = lxml.html.document_fromstring(html.replace("\x00", ""))
    except (lxml.etree.ParserError, ValueError):  # empty or unparseable: an empty page, not a crashed crawl
        doc = lxml.html.document_fromstring("<html><body></body></html>")
        html = ""
    lxml.etree.strip_elements(doc, *NOT_TEXT, with_tail=False)  # no script text in the title, author or fallback text
    article = doc.find(".//article")
    author = _first(doc, "//meta[@name='author']/@content", "//*[contains(concat(' ', normalize-space(@class), ' '), ' author ')]",
                    "//*[@rel='author']") or None
    article_author = article is not None and bool(
        article.xpath(".//*[contains(concat(' ', normalize-space(@class), ' '), ' author ')] | .//*[@rel='author']")
        or doc.xpath("//meta[@name='author']/@content"))
    title = _first(doc, "//article//h1", "//article//h2", "//meta[@property='og:title']/@content", "//title") if article is not None \
        else _first(doc, "//meta[@property='og:title']/@content", "//title")
    published = _first(doc, "//article//time/@datetime", "//meta[@property='article:published_time']/@content", "//time/@datetime")
    text = main_text(html, url, doc)
    return Page(title=title, text=text, author=author, published_at=parse_datetime(published),
                is_post=article_author, login_wall_reason=login_wall_reason(doc, text))
