"""Parsing pages and feeds into what an item holds: pure functions on bytes and strings, no Scrapy."""
from __future__ import annotations

import codecs
import copy
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
XML_DECL = regex.compile(r"^\s*<\?xml\b[^>]*?\?>")
XML_ENCODING = regex.compile(rb"^\s*<\?xml\b[^>]*?\bencoding\s*=\s*[\"']([A-Za-z0-9._-]{1,40})[\"']")
BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
SURROGATE = regex.compile(r"[\ud800-\udfff]")
UTF8_SEQUENCE = regex.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
UTF16_MARKERS = ((b"<\x00?\x00", "utf-16-le"), (b"\x00<\x00?", "utf-16-be"))  # '<?' without a BOM
CHROME = ("header", "nav", "aside", "footer")
NOT_TEXT = ("script", "style", "template")  # their contents are code, never a page's text
CODE = regex.compile(r"<(script|style|template)\b.*?(</\1\s*>|$)", regex.DOTALL | regex.IGNORECASE)
MARKUP = regex.compile(r"</?[A-Za-z][^<>]*>")  # a tag, strictly: "x < y" is no tag


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


def feed_text(body: bytes) -> str:
    """A feed's bytes as text: the BOM's encoding, else the XML declaration's, else UTF-8 (XML's default) unless no
    byte sequence in it is UTF-8 (then windows-1252); bytes the encoding cannot read become U+FFFD. feedparser's own
    sniffing raises UnicodeDecodeError on invalid UTF-8 inside the declaration, and reads a whole UTF-8 feed as
    Latin-2 for one bad byte."""
    for bom, encoding in BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(encoding, "replace")
    for marker, encoding in UTF16_MARKERS:
        if body.startswith(marker):
            return body.decode(encoding, "replace")
    declared = XML_ENCODING.match(body)
    if declared:
        try:
            encoding = codecs.lookup(declared.group(1).decode("ascii")).name
            if not encoding.startswith(("utf-16", "utf-32")):  # a UTF-16 declaration in 8-bit bytes is wrong
                return body.decode(encoding, "replace")
        except (LookupError, UnicodeError):  # an unknown charset, or no text encoding (base64, rot13): as undeclared
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:  # UTF-8 with stray bytes (they become U+FFFD), or a legacy 8-bit feed
        return body.decode("utf-8" if UTF8_SEQUENCE.search(body) else "cp1252", "replace")


def read_feed(body: bytes) -> feedparser.FeedParserDict:
    """feedparser on a feed decoded by feed_text and handed over as UTF-8 (its declaration's encoding dropped), its
    character references that name no character (past U+10FFFF, surrogates) made U+FFFD: feedparser's loose parser
    raises on them instead of reading the feed."""
    text = XML_DECL.sub('<?xml version="1.0" encoding="utf-8"?>', feed_text(body), count=1)
    data = SURROGATE.sub("\ufffd", text).encode("utf-8")  # unicode_escape can declare "\\ud800": no UTF-8 holds it
    return feedparser.parse(CHARREF.sub(_charref, data), response_headers={"content-type": "application/xml; charset=utf-8"})


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


def plain(value: str) -> str:
    """A title or author as one line without markup: libxml2 (like a browser) reads everything after an unclosed
    <title> (its end tag broken by a stray byte) as the title's text, the page's tags and scripts with it."""
    return " ".join(MARKUP.sub(" ", CODE.sub(" ", value)).split()) if "<" in value else " ".join(value.split())


def _first(doc: lxml.html.HtmlElement, *xpaths: str) -> str:
    for xp in xpaths:
        for found in doc.xpath(xp):
            value = plain(str(found if isinstance(found, str) else _text(found)))
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


def drop_code(doc: lxml.html.HtmlElement) -> None:
    """Script, style and template elements removed with their contents (their code is never a page's text), also one
    glued to bytes before it: `<m\x8f<script>` is one element named "m\x8f<script" to libxml2 (and a browser),
    holding the script's code as its text."""
    lxml.etree.strip_elements(doc, *NOT_TEXT, with_tail=False)
    glued = [el for el in doc.iter() if isinstance(el.tag, str) and "<" in el.tag
             and el.tag.rsplit("<", 1)[1].lower() in NOT_TEXT]
    for el in glued:
        el.drop_tree()  # its tail is text after the element: kept


def main_text(html: str, url: str, doc: lxml.html.HtmlElement) -> str:
    """trafilatura's main text of the page, else the text of its <article> or <body>; both read the tree without its
    code (drop_code): trafilatura parsing the page again would keep what libxml2 makes of broken markup around it."""
    text = ""
    if html.strip():
        text = trafilatura.extract(copy.deepcopy(doc), url=url, favor_precision=True, include_comments=False,
                                   include_tables=True, deduplicate=False) or ""
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
    drop_code(doc)  # no script text in the title, author or main text
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
