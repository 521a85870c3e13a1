"""Posts out of public API answers, feeds and preview pages: pure functions on bytes and dicts, no Scrapy.

Each parser returns `Post`s and skips, without failing, any entry it cannot read; what the author asked not
to be shown to the public (Mastodon `noindex`, Bluesky `!no-unauthenticated`) is skipped and counted.
"""
from __future__ import annotations

import calendar
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import lxml.etree
import lxml.html
import regex

from crawlers.extract import CODE, NOT_TEXT, SURROGATE, parse_datetime, read_feed

log = logging.getLogger(__name__)

COUNT = regex.compile(r"^\s*([\d.,]+)\s*([KkMmBb]?)\s*$")
MULTIPLIERS = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
HIDDEN_FROM_PUBLIC = "!no-unauthenticated"  # the Bluesky label of authors who asked not to be shown logged out
BLUESKY_PART = regex.compile(r"^[A-Za-z0-9._:~-]+$")  # a handle, DID or record key: nothing that changes the permalink's path
CONTROL = regex.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
TAG = regex.compile(r"<[^>]*>?")
TELEGRAM_POST = regex.compile(r"^[A-Za-z0-9_]{1,64}/[0-9]{1,20}$")  # data-post="channel/123"


@dataclass
class Post:
    url: str
    text: str
    title: str = ""
    author: str | None = None
    handle: str | None = None
    published_at: datetime | None = None
    engagement: dict[str, int] = field(default_factory=dict)
    key: str = ""  # the platform's own id (feed entry id, Bluesky URI, Telegram message), else the URL

    @property
    def ident(self) -> str:
        """What says this post was seen before (the monitor's cursor)."""
        return self.key or self.url


@dataclass
class Parsed:
    posts: list[Post] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    next_url: str | None = None

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def text_of(value: Any) -> str | None:
    """A field an API answer should hold as a string: the string (a lone surrogate, which JSON's \\ud800 makes and
    no UTF-8 can hold, as U+FFFD), or None (a hostile answer sends any JSON type)."""
    return SURROGATE.sub("\ufffd", value) if isinstance(value, str) else None


def json_document(body: bytes) -> Any:
    """An API answer's JSON; ValueError when it is not JSON, not UTF-8 or nested too deeply to read."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def html_text(fragment: Any) -> str:
    """Readable text of an HTML fragment: line breaks kept at <br> and block ends, whitespace collapsed; scripts and
    styles dropped (their code is not the post's text)."""
    if not isinstance(fragment, str) or not fragment.strip():
        return ""
    fragment = CONTROL.sub("", fragment)  # lxml refuses to set a tail holding one (ValueError)
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return " ".join(TAG.sub(" ", CODE.sub(" ", fragment)).split())  # markup removed, scripts and all
    lxml.etree.strip_elements(root, *NOT_TEXT, with_tail=False)
    for el in root.iter("br", "p", "div", "li"):
        el.tail = "\n" + (el.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return "\n".join(line for line in lines if line)


def count(value: Any) -> int | None:
    """An engagement count: an int, or text such as '1,204', '3.4K' or '2M'; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    match = COUNT.match(str(value or ""))
    if not match:
        return None
    try:
        return int(float(match.group(1).replace(",", "")) * MULTIPLIERS[match.group(2).lower()])
    except (ValueError, OverflowError):  # "1.2.3"; 400 digits are an infinite float
        return None


def absolute(base: str, link: Any) -> str | None:
    """`link` made absolute against `base` when the result is an http(s) URL with a host; None for javascript:, data:,
    file: and mailto: links, non-strings and URLs that do not parse (http://[::1/)."""
    if not isinstance(link, str) or SURROGATE.search(link):
        return None
    try:
        url = urljoin(base, link.strip()).strip()  # "x\x0b#": the empty fragment dropped, the whitespace before it kept
        parts = urlsplit(url)
        return url if parts.scheme in ("http", "https") and parts.hostname else None
    except ValueError:
        return None


def counts(**values: Any) -> dict[str, int]:
    return {k: n for k, v in values.items() if (n := count(v)) is not None}


def with_query(url: str, **params: Any) -> str:
    """The URL with these query parameters set (replacing any of the same name), the others kept in order."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode(query + [(k, str(v)) for k, v in params.items()])))


def _struct_time(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc) if value else None
    except (TypeError, ValueError, OverflowError):
        return None


# --- Mastodon: /api/v1/timelines/public and /api/v1/timelines/tag/NAME ----------------------------------

def mastodon_posts(statuses: Any, instance_url: str) -> Parsed:
    """Statuses of a Mastodon timeline; boosts count as the boosted post; only public posts of indexable accounts."""
    out = Parsed()
    if not isinstance(statuses, list):
        out.skip("not_a_list")
        return out
    instance = (urlsplit(instance_url).hostname or "").lower()
    for status in statuses:
        if not isinstance(status, dict):
            out.skip("malformed")
            continue
        status = status.get("reblog") if isinstance(status.get("reblog"), dict) else status
        account = status.get("account") if isinstance(status.get("account"), dict) else {}
        url = status.get("url") or status.get("uri")
        url = absolute(instance_url, url) if isinstance(url, str) and url.startswith(("http://", "https://")) else None
        if url is None:
            out.skip("malformed")
            continue
        if status.get("visibility", "public") != "public":
            out.skip("not_public")
            continue
        if account.get("noindex") is True:
            out.skip("noindex")
            continue
        acct = text_of(account.get("acct")) or text_of(account.get("username")) or ""
        handle = f"@{acct}" if "@" in acct else (f"@{acct}@{instance}" if acct else None)
        spoiler = text_of(status.get("spoiler_text")) or ""
        text = html_text(status.get("content"))
        out.posts.append(Post(
            key=str(status.get("uri") or url), url=url, text=f"{spoiler}\n{text}".strip(), title=spoiler, author=text_of(account.get("display_name")) or acct or None,
            handle=handle, published_at=parse_datetime(status.get("created_at")),
            engagement=counts(replies=status.get("replies_count"), reposts=status.get("reblogs_count"),
                              likes=status.get("favourites_count"))))
    return out


def mastodon_next(link_header: str, current: str) -> str | None:
    """The rel="next" URL of a Mastodon Link header (older posts)."""
    for part in link_header.split(","):
        match = regex.search(r'<([^>]+)>\s*;\s*rel="?next"?', part)
        if match:
            return absolute(current, match.group(1))
    return None


# --- Bluesky: app.bsky.feed.searchPosts and app.bsky.feed.getAuthorFeed on the public AppView -----------

def bluesky_posts(data: Any, web_url: str, request_url: str = "") -> Parsed:
    """Post views of a searchPosts ({"posts": [...]}) or getAuthorFeed ({"feed": [{"post": ...}]}) answer; the next
    page is the same call with the answer's `cursor`."""
    out = Parsed()
    if not isinstance(data, dict):
        out.skip("not_an_object")
        return out
    feed = data.get("feed") if isinstance(data.get("feed"), list) else []
    views = data.get("posts") if isinstance(data.get("posts"), list) else [e.get("post") for e in feed if isinstance(e, dict)]
    for view in views:
        author = view.get("author") if isinstance(view, dict) else None
        record = view.get("record") if isinstance(view, dict) else None
        uri = view.get("uri") if isinstance(view, dict) else None
        handle = text_of(author.get("handle")) if isinstance(author, dict) else None
        rkey = uri.rstrip("/").rsplit("/", 1)[-1] if isinstance(uri, str) else ""
        if not handle or not isinstance(record, dict) or not BLUESKY_PART.match(handle) or not BLUESKY_PART.match(rkey):
            out.skip("malformed")
            continue
        labels = author.get("labels") if isinstance(author.get("labels"), list) else []
        if any(isinstance(lab, dict) and lab.get("val") == HIDDEN_FROM_PUBLIC for lab in labels):
            out.skip("no_unauthenticated")
            continue
        out.posts.append(Post(
            key=uri, url=f"{web_url.rstrip('/')}/profile/{handle}/post/{rkey}", text=text_of(record.get("text")) or "",
            author=text_of(author.get("displayName")) or handle, handle=f"@{handle}",
            published_at=parse_datetime(record.get("createdAt")),
            engagement=counts(replies=view.get("replyCount"), reposts=view.get("repostCount"), likes=view.get("likeCount"),
                              quotes=view.get("quoteCount"))))
    cursor = data.get("cursor")
    out.next_url = with_query(request_url, cursor=cursor) if request_url and isinstance(cursor, str) and cursor else None
    return out


# --- Telegram: t.me/s/NAME public channel previews -------------------------------------------------------

def telegram_posts(html: str, page_url: str) -> Parsed:
    """Messages of a public channel's preview page, and the URL of the older messages when there is one: the page's
    rel="prev" link, else its "load more" link (`a.tme_messages_more[data-before]`)."""
    out = Parsed()
    try:
        doc = lxml.html.document_fromstring(html.replace("\x00", "") or "<html></html>")
    except (lxml.etree.ParserError, ValueError):
        out.skip("malformed")
        return out
    for msg in doc.xpath("//div[contains(concat(' ', normalize-space(@class), ' '), ' tgme_widget_message ')][@data-post]"):
        post_id = msg.get("data-post")
        if not TELEGRAM_POST.match(post_id):  # "/evil.example/1" would make a permalink on another host
            out.skip("malformed")
            continue
        texts = msg.xpath(".//div[contains(@class, 'tgme_widget_message_text')]")
        text = html_text(lxml.html.tostring(texts[0], encoding="unicode")) if texts else ""
        if not text:
            out.skip("no_text")
            continue
        owner = " ".join(" ".join(msg.xpath(".//*[contains(@class, 'tgme_widget_message_owner_name')]//text()")).split())
        when = msg.xpath(".//*[contains(@class, 'tgme_widget_message_date')]//time/@datetime")
        views = msg.xpath(".//*[contains(@class, 'tgme_widget_message_views')]/text()")
        channel = post_id.split("/", 1)[0]
        out.posts.append(Post(key=post_id, url=urljoin(page_url, f"/{post_id}"), text=text, author=owner or channel, handle=f"@{channel}",
                              published_at=parse_datetime(when[0]) if when else None,
                              engagement=counts(views=views[0]) if views else {}))
    hrefs = (doc.xpath("//link[@rel='prev']/@href")
             + doc.xpath("//a[contains(concat(' ', normalize-space(@class), ' '), ' tme_messages_more ')][@data-before]/@href"))
    older = [url for url in (absolute(page_url, href) for href in hrefs) if url]
    out.next_url = older[0] if older else None
    return out


# --- RSS and Atom feeds (news, Reddit, YouTube) ----------------------------------------------------------

HTML_TYPES = ("text/html", "application/xhtml+xml")


def feed_title(entry: Any) -> str:
    """An entry's title as text: an Atom type="html" (or xhtml) title is markup, its entities and tags decoded."""
    title = str(entry.get("title") or "")
    if (entry.get("title_detail") or {}).get("type") in HTML_TYPES:
        return " ".join(html_text(title).split())
    return " ".join(title.split())


def feed_next(parsed: Any, feed_url: str, page: int) -> str | None:
    """The feed's next (older) page: an RFC 5005 rel="next" link, else WordPress's ?paged=N+1 when WordPress made it."""
    for link in parsed.feed.get("links") or []:
        if link.get("rel") == "next" and link.get("href"):
            return urljoin(feed_url, link["href"])
    generator = str(parsed.feed.get("generator") or "") + str((parsed.feed.get("generator_detail") or {}).get("href") or "")
    if "wordpress.org" in generator.lower():
        return with_query(feed_url, paged=page + 1)
    return None


def reddit_next(parsed: Any, feed_url: str) -> str | None:
    """Reddit's next page: the listing again with after=<the last entry's fullname> (t3_...)."""
    last = str(parsed.entries[-1].get("id") or "") if parsed.entries else ""
    return with_query(feed_url, after=last) if last.startswith("t3_") else None


def feed_posts(body: bytes, feed_url: str, page: int = 1, reddit: bool = False) -> Parsed:
    """Entries of an RSS or Atom feed and its next page; a broken feed yields what could be read (feedparser never raises)."""
    out = Parsed()
    parsed = read_feed(body)
    if parsed.get("bozo"):
        log.info("event=feed_malformed url=%s error=%r", feed_url, str(parsed.get("bozo_exception")))
    for entry in parsed.entries:
        link = entry.get("link") or next((l.get("href") for l in entry.get("links", []) if l.get("href")), None)
        if not link:
            out.skip("no_link")
            continue
        link = absolute(feed_url, link)
        if link is None:  # javascript:, data:, file: links are never followed or stored
            out.skip("not_http")
            continue
        content = entry.get("content") or []
        body_html = (content[0].get("value") if content else None) or entry.get("summary") or ""
        author = entry.get("author") or None
        handle = None
        if entry.get("yt_channelid"):
            handle = entry["yt_channelid"]
        elif author and regex.match(r"^/?u/\w", author):
            handle = author.lstrip("/")
        stats = entry.get("media_statistics") or {}
        rating = entry.get("media_starrating") or {}
        out.posts.append(Post(
            key=str(entry.get("id") or ""), url=link, title=feed_title(entry), text=html_text(body_html),
            author=author, handle=handle,
            published_at=_struct_time(entry.get("published_parsed") or entry.get("updated_parsed")),
            engagement=counts(views=stats.get("views"), likes=rating.get("count"))))
    out.next_url = reddit_next(parsed, feed_url) if reddit else feed_next(parsed, feed_url, page)
    return out
