"""Every parser of outside input as a fuzz target: bytes in, an Outcome out (how many things were stored, and the
reasons for what was refused), under a watchdog. A target raises only when the parser broke its promise:

- Crash: an exception other than the parser's documented error type escaped (the feed, page and API parsers have
  none: they skip what they cannot read; the interchange format raises ValidationError; config and sources FcmonError);
- Hang: one input took longer than BOUND_S;
- Unsafe: something stored that must not be: a link that is not http(s), a permalink on another host than the page,
  script text kept as content, more or fewer decisions than item lines, a retention period over five years.

Shared by tests/test_fuzz_parsers.py and bench/bench_fuzz.py (which counts instead of failing).
"""
from __future__ import annotations

import os
import re
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hypothesis import strategies as st
from pydantic import ValidationError
from scrapy.http import HtmlResponse

from crawlers.extract import decode_html, extract_page
from crawlers.posts import Parsed, bluesky_posts, feed_posts, json_document, mastodon_posts, telegram_posts
from crawlers.sources import load_sources
from crawlers.spiders.site import SiteSpider
from guards.batch import check_items, jsonl_lines
from pipeline.cli import build_app
from pipeline.errors import FcmonError, first_error
from pipeline.models import CollectedItem, RequestRecord, ResponseRecord, Tasking
from pipeline.settings import Settings
from tests import hostile
from tests.factories_pipeline import make_tasking

BOUND_S = 10.0  # no single input may take longer (the slowest seen is in docs/reliability.md)
NOW = datetime.now(timezone.utc)


class Crash(AssertionError):
    pass


class Unsafe(AssertionError):
    pass


class Hang(BaseException):  # not an Exception: no parser's `except Exception` may swallow the watchdog
    pass


@dataclass(frozen=True)
class Outcome:
    stored: int
    refused: tuple[str, ...] = ()  # a reason for each thing not stored (or for the input as a whole)


@dataclass
class Target:
    name: str
    parse: Callable[[bytes], Outcome]
    inputs: st.SearchStrategy[bytes]
    corpus: tuple[str, ...]  # corpus folders (tests/fixtures/hostile/NAME) and generated sets it is run on

    def corpus_inputs(self) -> dict[str, bytes]:
        found = {f"{c}/{p.name}": p.read_bytes() for c in self.corpus if (hostile.CORPUS_DIR / c).is_dir()
                 for p in hostile.corpus(c)}
        return found | {f"{c}/{k} (generated)": v for c in self.corpus for k, v in hostile.generated(c).items()}


@dataclass
class Tally:
    """What a run of one target came to (bench/bench_fuzz.py prints it)."""
    examples: int = 0
    stored: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)
    max_s: float = 0.0


def run(target: Target, data: bytes, tally: Tally | None = None) -> Outcome:
    """The target on one input under the watchdog; Crash, Hang or Unsafe when it broke its promise."""
    def alarm(*_: Any) -> None:
        raise Hang(f"{target.name}: an input took longer than {BOUND_S} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, BOUND_S)
    start = time.perf_counter()
    try:
        outcome = target.parse(data)
    except (Unsafe, Hang):
        raise
    except Exception as exc:
        raise Crash(f"{target.name}: {type(exc).__name__}: {exc}"[:500]) from exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if tally is not None:
            tally.examples += 1
            tally.max_s = max(tally.max_s, time.perf_counter() - start)
    if tally is not None:
        tally.stored += outcome.stored > 0
        for reason in set(outcome.refused) if not outcome.stored else ():
            tally.refused[reason] = tally.refused.get(reason, 0) + 1
    return outcome


# -- checks on what would be stored ---------------------------------------------------------------

def http_url(url: Any, what: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or url != url.strip():
        raise Unsafe(f"{what} is not an http(s) URL: {url!r}"[:300])


def no_script(values: dict[str, Any], what: str) -> None:
    """No script's code kept as text. A "<script>MARK" in a value is markup the author escaped (or put in CDATA), so
    text that shows the tag: kept as text, and escaped where it is shown (tests/test_fuzz_http.py)."""
    for name, value in values.items():
        shown = value.replace(f"<script>{hostile.SCRIPT_MARK}", "").replace(f"<style>{hostile.SCRIPT_MARK}", "") \
            if isinstance(value, str) else value
        if isinstance(shown, str) and hostile.SCRIPT_MARK in shown:
            raise Unsafe(f"{what}: script content kept in {name}: {value[:200]!r}")


def item_of(post: Any, kind: str, page_url: str) -> CollectedItem:
    """The CollectedItem a spider makes of a post (SourceSpider.post_item): a wrong type in a post fails here."""
    return CollectedItem(tasking_id="T-1", source_kind=kind, url=post.url, final_url=post.url, fetched_at=NOW,
                         request=RequestRecord(method="GET", url=page_url), response=ResponseRecord(status=200, url=page_url),
                         robots_allowed=True, login_wall_detected=False, title=post.title, text=post.text,
                         author=post.author, handle=post.handle, published_at=post.published_at, engagement=post.engagement)


def posts_outcome(parsed: Parsed, kind: str, page_url: str, same_host: bool = False) -> Outcome:
    for post in parsed.posts:
        http_url(post.url, f"{kind} permalink")
        if same_host and urlsplit(post.url).hostname != urlsplit(page_url).hostname:
            raise Unsafe(f"{kind} permalink {post.url!r} is not on {page_url}")
        item = item_of(post, kind, page_url)
        no_script({"title": item.title, "text": item.text, "author": item.author, "handle": item.handle}, kind)
    if parsed.next_url is not None:
        http_url(parsed.next_url, f"{kind} next page")
    reasons = tuple(parsed.skipped) or (() if parsed.posts else ("no entries",))
    return Outcome(len(parsed.posts), reasons)


# -- the targets ----------------------------------------------------------------------------------

FEED_URL = "https://news.example/feed.xml"
SITE_SPIDER = SiteSpider(start_url="https://forum.example/", tasking=make_tasking())


def feed(kind: str) -> Callable[[bytes], Outcome]:
    return lambda body: posts_outcome(feed_posts(body, FEED_URL), kind, FEED_URL)


def page(body: bytes) -> Outcome:
    """The site spider's extraction: decoding, main text, title, author, time, wall verdict, and the links it follows."""
    url = "https://forum.example/thread/1"
    found = extract_page(decode_html(body, "text/html") or "<html></html>", url)
    no_script({"title": found.title, "text": found.text, "author": found.author}, "page")
    for link in SITE_SPIDER.links.extract_links(HtmlResponse(url, body=body, headers={"Content-Type": "text/html"})):
        if SITE_SPIDER.same_site(link.url):  # what SiteSpider.parse_response follows
            http_url(link.url, "followed link")
    if found.login_wall_reason:
        return Outcome(0, (f"login wall: {found.login_wall_reason}",))
    return Outcome(1) if found.text or found.title else Outcome(0, ("empty page",))


def api(kind: str, parser: Callable[[Any], Parsed]) -> Callable[[bytes], Outcome]:
    def parse(body: bytes) -> Outcome:
        try:
            data = json_document(body)
        except ValueError as exc:  # the spider counts it as fcmon/parse_errors
            return Outcome(0, (f"not JSON: {type(exc).__name__}",))
        return posts_outcome(parser(data), kind, "https://api.example/timeline")
    return parse


def telegram(body: bytes) -> Outcome:
    url = "https://t.me/s/chan"
    return posts_outcome(telegram_posts(body.decode("utf-8", "replace"), url), "telegram_post", url, same_host=True)


def model(cls: type) -> Callable[[bytes], Outcome]:
    def parse(body: bytes) -> Outcome:
        try:
            cls.model_validate_json(body)
        except ValidationError as exc:
            return Outcome(0, (exc.errors()[0]["type"],))
        return Outcome(1)
    return parse


GUARD_TASKING = make_tasking(id="T-1", approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
GUARD_SETTINGS = Settings(crawl_max_bytes=64 * 1024)
ROLES = {"alice": "analyst", "sam": "supervisor"}


def guard_check(body: bytes) -> Outcome:
    """`fcmon guard-check`'s item file: one decision per non-blank line, whatever the line holds."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "items.jsonl"
        path.write_bytes(body)
        lines = jsonl_lines(path)
    decisions = list(check_items(lines, {"T-1": GUARD_TASKING}, {}, ROLES, GUARD_SETTINGS))
    expected = sum(1 for line in lines if line.strip())
    if len(decisions) != expected:
        raise Unsafe(f"guard-check: {len(decisions)} decisions for {expected} item lines")
    items = {}
    for line in lines:
        try:
            item = CollectedItem.model_validate_json(line)
            items[item.id] = item
        except ValidationError:
            pass
    if not decisions:
        return Outcome(0, ("no item lines",))
    kept = [d for d in decisions if d.decision != "rejected"]
    for decision in kept:
        item = items[decision.item_id]
        http_url(item.final_url, "guard-check: a kept item's URL")
        http_url(item.url, "guard-check: a kept item's URL")
    return Outcome(len(kept), tuple(d.reasons[0].rule for d in decisions if d.decision == "rejected" and d.reasons))


def settings_file(body: bytes) -> Outcome:
    """The settings TOML (FCMON_CONFIG) as every command reads it (pipeline.cli.build_app)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fcmon.toml"
        path.write_bytes(body)
        saved = os.environ.get("FCMON_CONFIG")
        os.environ["FCMON_CONFIG"] = str(path)
        try:
            settings = build_app(None, None).settings
        except FcmonError as exc:
            field = re.match(r"invalid configuration: ([A-Za-z_]+)(:| names| is not set)", exc.message)
            return Outcome(0, (f"invalid {field.group(1)}" if field else "unreadable file",))
        finally:
            os.environ.pop("FCMON_CONFIG") if saved is None else os.environ.__setitem__("FCMON_CONFIG", saved)
    if max(settings.retention_days_criminal, settings.retention_days_noncriminal) > 5 * 365:
        raise Unsafe("a retention period over five years was accepted (28CFR23.20(h))")
    return Outcome(1)


def sources_file(body: bytes) -> Outcome:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "sources.toml"
        path.write_bytes(body)
        try:
            parsed = load_sources(path)
        except FcmonError as exc:
            parts = exc.message.split(": ")
            return Outcome(0, (f"invalid {parts[2]}" if len(parts) >= 4 else parts[1].split(" (")[0][:40],))
    for source in parsed.source:
        for url in source.scope_urls():
            http_url(url, f"source {source.id} URL")
    return Outcome(len(parsed.source), () if parsed.source else ("no sources",))


TARGETS = {t.name: t for t in [
    Target("rss_atom", feed("feed_entry"), hostile.feeds(), ("feed",)),
    Target("reddit", feed("reddit_post"), hostile.feeds("reddit"), ("reddit",)),
    Target("youtube", feed("youtube_video"), hostile.feeds("youtube"), ("youtube",)),
    Target("html_page", page, hostile.pages(), ("html",)),
    Target("mastodon", api("mastodon_post", lambda d: mastodon_posts(d, "https://mastodon.example")),
           hostile.json_bodies(hostile.mastodon_answers), ("json", "mastodon")),
    Target("bluesky", api("bluesky_post", lambda d: bluesky_posts(d, "https://bsky.app")),
           hostile.json_bodies(hostile.bluesky_answers), ("json", "bluesky")),
    Target("telegram", telegram, hostile.telegram_pages(), ("html", "telegram")),
    Target("collected_item", model(CollectedItem), hostile.item_lines, ("json", "interchange")),
    Target("tasking", model(Tasking), hostile.tasking_lines, ("json", "interchange")),
    Target("guard_check_jsonl", guard_check, hostile.jsonl_files, ("interchange",)),
    Target("settings_toml", settings_file, hostile.settings_toml(), ("toml", "settings")),
    Target("sources_toml", sources_file, hostile.sources_toml(), ("toml", "sources")),
]}
