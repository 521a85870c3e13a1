"""Whole crawls of every source kind with `fcmon crawl --all` (one process, one CrawlerProcess) against the fixture
server on 127.0.0.1, hostile routes included; the server's own request log proves what was never sent."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.bus import COLLECTED
from pipeline.bus.local import LocalBus
from pipeline.datadir import DataDir
from pipeline.models import CollectedItem, utcnow
from tests.datadirs import fcmon, make_app
from tests.factories_pipeline import make_tasking
from tests.fixtures.server import BIG_BYTES, FixtureServer

ENV = {"FCMON_CRAWL_ALLOW_HOSTS": "127.0.0.1", "FCMON_CRAWL_DOWNLOAD_DELAY": "0", "FCMON_CRAWL_QUERY_VARIANTS": "5"}

SOURCES = """
[[source]]
id = "alerts"
kind = "feed"
urls = ["{base}/news.rss", "{base}/broken.rss"]

[[source]]
id = "board"
kind = "site"
start_urls = ["{base}/board/"]
sitemaps = ["{base}/sitemap.xml"]
deny = ["/tag/"]
depth_limit = 20
page_limit = 100
extract = {{ title = "css:h1.thread-title::text", author = "css:.poster::text", text = "css:div.body" }}

[[source]]
id = "masto"
kind = "mastodon"
instance = "{base}"
public = true
pages = 3

[[source]]
id = "bsky"
kind = "bluesky"
api = "{base}"
web = "https://bsky.app"
authors = ["wrench.bsky.social"]
search = ["converter"]

[[source]]
id = "reddit"
kind = "reddit"
base = "{base}"

[[source]]
id = "tg"
kind = "telegram"
base = "{base}"
channels = ["scrapmarket"]
pages = 2

[[source]]
id = "yt"
kind = "youtube"
base = "{base}"
channels = ["UCscrap0000000000000000"]

[[source]]
id = "off"
kind = "feed"
enabled = false
urls = ["{base}/never.rss"]
"""


def tasking(**overrides):
    now = utcnow()
    fields = dict(id="T-SRC", approved_at=now - timedelta(days=1), expires_at=now + timedelta(days=30),
                  scope={"domains": ["127.0.0.1", "bsky.app"], "keywords": ["converter", "#catalytic"]})
    return make_tasking(**(fields | overrides))


def data_dir_with(root: Path, *taskings) -> Path:
    make_app(root, *taskings).close()
    return root


def bus_items(root: Path) -> list[CollectedItem]:
    bus = LocalBus(DataDir(root).bus_db)
    try:
        return [CollectedItem.model_validate_json(m.value) for m in bus.consumer("test", [COLLECTED]).poll(10_000, 0)]
    finally:
        bus.close()


@pytest.fixture(scope="module")
def server():
    with FixtureServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def all_crawl(server, tmp_path_factory):
    """One `fcmon crawl --all --json`: (result, items by source id, the server's request log)."""
    root = tmp_path_factory.mktemp("all")
    sources = root / "sources.toml"
    sources.write_text(SOURCES.format(base=server.url))
    data = data_dir_with(root / "data", tasking())
    before = len(server.requests)
    done = fcmon("--data-dir", str(data), "--as", "alice", "crawl", "--all", "--tasking", "T-SRC", "--sources", str(sources),
                 "--json", env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    by_source: dict[str, list[CollectedItem]] = {}
    for item in bus_items(data):
        by_source.setdefault(item.source_id, []).append(item)
    return json.loads(done.stdout), by_source, server.requests[before:], done.stderr


def by_url(items: list[CollectedItem]) -> dict[str, CollectedItem]:
    return {i.url: i for i in items}


# --- the run ------------------------------------------------------------------------------------------

def test_all_enabled_sources_run_in_one_process_with_a_summary_each(all_crawl):
    result, by_source, received, stderr = all_crawl
    summaries = {s["source"]: s for s in result["sources"]}
    assert set(summaries) == {"alerts", "board", "masto", "bsky", "reddit", "tg", "yt"}  # "off" is disabled
    assert not [r for r in received if r["path"] == "/never.rss"]
    assert {s["kind"] for s in summaries.values()} == {"feed", "site", "mastodon", "bluesky", "reddit", "telegram", "youtube"}
    for sid, s in summaries.items():
        assert s["items"] == len(by_source.get(sid, [])), sid
        assert s["tasking_id"] == "T-SRC" and s["bus_errors"] == 0 and s["finish_reason"] == "finished", s
    assert result["totals"]["items"] == sum(s["items"] for s in summaries.values())
    assert "source=board" in stderr and "crawl: pages=" in stderr


def test_nothing_forbidden_ever_reached_the_server(all_crawl):
    _, _, received, _ = all_crawl
    assert received and {r["method"] for r in received} <= {"GET", "HEAD"}
    for r in received:
        assert not {n.lower() for n in r["headers"]} & {"cookie", "authorization", "proxy-authorization"}, r
        assert "fcmon" in r["headers"]["User-Agent"]
    paths = [r["path"] for r in received]
    assert not [p for p in paths if p.startswith(("/login", "/board/private/"))], paths
    assert not [p for p in paths if "elsewhere" in p]


# --- each source kind ---------------------------------------------------------------------------------

def test_mastodon_posts_with_handles_engagement_and_pages(all_crawl, server):
    result, by_source, received, _ = all_crawl
    posts = by_url(by_source["masto"])
    assert set(posts) == {f"{server.url}/@wrenchman/111", "https://other.example/@scrapper/90", f"{server.url}/@wrenchman/100"}
    first = posts[f"{server.url}/@wrenchman/111"]
    assert first.source_kind == "mastodon_post" and first.handle == "@wrenchman@127.0.0.1" and first.author == "Wrench Man"
    assert first.text == "Six catalytic #converters for sale tonight,\ncash only."
    assert first.engagement == {"replies": 3, "reposts": 1, "likes": 7}
    assert first.published_at.isoformat() == "2026-11-20T18:04:00+00:00"
    assert first.request.url.endswith("/api/v1/timelines/tag/converter?limit=40") and first.response.status == 200
    assert posts["https://other.example/@scrapper/90"].handle == "@scrapper@other.example"  # a boost is the boosted post
    tags = [r["path"] for r in received if r["path"].startswith("/api/v1/timelines/tag/")]
    assert sorted(tags) == sorted(["/api/v1/timelines/tag/converter?limit=40", "/api/v1/timelines/tag/catalytic?limit=40",
                                   "/api/v1/timelines/tag/converter?limit=40&max_id=111"])  # hashtags from the tasking
    masto = next(s for s in result["sources"] if s["source"] == "masto")
    assert masto["skipped"] == {"malformed": 2, "noindex": 1, "not_public": 1}
    assert masto["parse_errors"] == 1  # the public timeline's truncated JSON


def test_bluesky_search_and_author_feed(all_crawl):
    result, by_source, received, _ = all_crawl
    posts = by_url(by_source["bsky"])
    assert set(posts) == {"https://bsky.app/profile/wrench.bsky.social/post/3kq2a", "https://bsky.app/profile/wrench.bsky.social/post/3kp9z"}
    post = posts["https://bsky.app/profile/wrench.bsky.social/post/3kq2a"]
    assert (post.source_kind, post.handle, post.author) == ("bluesky_post", "@wrench.bsky.social", "Wrench")
    assert post.engagement == {"replies": 4, "reposts": 2, "likes": 11, "quotes": 1}
    assert "q=converter" in post.request.url
    bsky = next(s for s in result["sources"] if s["source"] == "bsky")
    assert bsky["skipped"] == {"malformed": 1, "no_unauthenticated": 1}


def test_reddit_search_rss_from_tasking_keywords(all_crawl, server):
    _, by_source, received, _ = all_crawl
    assert len({i.id for i in by_source["reddit"]}) == 1  # both searches found the same post: one record id
    [post] = by_url(by_source["reddit"]).values()
    assert post.source_kind == "reddit_post" and post.handle == "u/parkingdad"
    assert post.url == f"{server.url}/r/chicago/comments/abc1/catalytic_converter_stolen/"
    assert "cut the catalytic converter off my car" in post.text and post.title == "Catalytic converter stolen overnight"
    searched = sorted(r["path"] for r in received if r["path"].startswith("/search.rss"))
    assert searched == ["/search.rss?q=catalytic&sort=new", "/search.rss?q=converter&sort=new"]
    assert not [r for r in received if "/comments/" in r["path"]]  # Reddit pages themselves are not fetched


def test_telegram_preview_messages_and_older_page(all_crawl, server):
    _, by_source, _, _ = all_crawl
    posts = by_url(by_source["tg"])
    assert set(posts) == {f"{server.url}/scrapmarket/42", f"{server.url}/scrapmarket/40"}
    post = posts[f"{server.url}/scrapmarket/42"]
    assert (post.source_kind, post.author, post.handle) == ("telegram_post", "Scrap Market", "@scrapmarket")
    assert post.text == "Fresh converters in today,\npickup only. @scrapmarket" and post.engagement == {"views": 1200}


def test_youtube_channel_feed(all_crawl, server):
    _, by_source, _, _ = all_crawl
    [video] = by_source["yt"]
    assert video.source_kind == "youtube_video" and video.url == f"{server.url}/watch?v=vid00000001"
    assert video.handle == "UCscrap0000000000000000" and video.author == "Scrap Yard TV"
    assert video.text == "We buy converters, no questions asked." and video.engagement == {"views": 4321, "likes": 57}


def test_feed_articles_fetched_and_extracted(all_crawl, server):
    result, by_source, received, _ = all_crawl
    items = by_url(by_source["alerts"])
    article = items[f"{server.url}/articles/1"]
    assert article.source_kind == "feed_entry" and article.title == "Converter thefts up in the 14th District"
    assert "forty catalytic converter thefts" in article.text and article.published_at.isoformat() == "2026-11-20T14:00:00+00:00"
    assert "Café owner" in items[f"{server.url}/articles/latin1"].text  # declared only in a <meta>, as ISO-8859-1
    walled = items[f"{server.url}/articles/walled"]
    assert walled.login_wall_detected and walled.login_wall_reason == "http_403"
    elsewhere = items["https://elsewhere.example/story"]  # another host: the entry itself, the article not fetched
    assert elsewhere.text == "A story on another site about converters." and elsewhere.response.url.endswith("/news.rss")
    assert [r["path"] for r in received].count("/articles/1") == 1  # the broken feed's link to it is a duplicate


def test_site_rules_sitemaps_and_extraction(all_crawl, server):
    _, by_source, received, _ = all_crawl
    items = by_url(by_source["board"])
    paths = [r["path"] for r in received]
    thread7 = items[f"{server.url}/board/thread/7"]  # known only from the sitemap
    assert thread7.title == "Thread 7: converters" and thread7.author == "user7" and thread7.source_kind == "forum_post"
    assert thread7.text.startswith("Post 7 offers catalytic converters") and "back" not in thread7.text
    assert "/board/tag/misc" not in paths  # deny rule, from links and from the sitemap alike
    assert paths.count("/sitemap.xml") == 1 and paths.count("/sitemap-pages.xml") == 1


# --- hostile input ------------------------------------------------------------------------------------

def test_endless_calendar_stops_at_the_query_variant_limit(all_crawl):
    result, by_source, received, _ = all_crawl
    calendar = [r["path"] for r in received if r["path"].startswith("/calendar")]
    assert 1 <= len(calendar) <= 5
    board = next(s for s in result["sources"] if s["source"] == "board")
    assert board["refused"]["trap_query_variants"] >= 1


def test_redirect_loop_ends(all_crawl):
    _, _, received, _ = all_crawl
    assert 1 <= len([r for r in received if r["path"].startswith("/loop/")]) <= 6


def test_a_cookie_set_by_the_site_never_comes_back(all_crawl, server):
    _, by_source, received, _ = all_crawl
    cookie = by_url(by_source["board"])[f"{server.url}/cookie"]
    assert "Set-Cookie" in cookie.response.headers and "COOKIE CAME BACK" not in cookie.text
    assert not any("cookie" in {n.lower() for n in r["headers"]} for r in received)


def test_oversize_page_and_gzip_bomb_are_refused(all_crawl, server):
    result, by_source, received, _ = all_crawl
    items = by_url(by_source["board"])
    assert f"{server.url}/big" not in items and f"{server.url}/bomb" not in items
    assert [r["path"] for r in received].count("/big") >= 1
    board = next(s for s in result["sources"] if s["source"] == "board")
    assert board["finish_reason"] == "finished"
    assert all(len(i.text) < BIG_BYTES // 10 for i in items.values())


def test_missing_and_wrong_charsets_do_not_break_the_crawl(all_crawl, server):
    _, by_source, _, _ = all_crawl
    items = by_url(by_source["board"])
    assert "Déjà vu – converters again" in items[f"{server.url}/charset/none"].text
    assert "converter seller" in items[f"{server.url}/charset/wrong"].text


# --- one source by name -------------------------------------------------------------------------------

def test_crawl_one_source_under_its_own_tasking(server, tmp_path):
    sources = tmp_path / "sources.toml"
    sources.write_text(SOURCES.format(base=server.url).replace('id = "yt"', 'id = "yt"\ntasking = "T-SRC"'))
    data = data_dir_with(tmp_path / "data", tasking())
    done = fcmon("--data-dir", str(data), "--as", "alice", "crawl", "yt", "--sources", str(sources), env=ENV)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("crawled yt (youtube) under T-SRC: requests=") and "items=1 " in done.stdout
    assert [i.source_kind for i in bus_items(data)] == ["youtube_video"]
    audit = fcmon("--data-dir", str(data), "--as", "sam", "audit", "list", "--json", env=ENV)
    assert '"source": "yt"' in audit.stdout or "yt" in audit.stdout


# --- refused before anything is fetched ---------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    ([], "name exactly one of SOURCE, --start-url URL or --all"),
    (["yt", "--all"], "name exactly one of SOURCE, --start-url URL or --all"),
    (["--start-url", "http://127.0.0.1:1/"], "--start-url needs --tasking ID"),
    (["nope"], "no source 'nope' in the sources file (known: yt, tg)"),
    (["tg"], "source tg names no tasking; pass --tasking ID or set tasking"),
    (["yt"], "tasking T-PENDING is pending: nothing is collected without an active tasking"),
    (["yt", "--tasking", "T-SRC", "--sources", "/nonexistent/s.toml"], "sources file /nonexistent/s.toml does not exist"),
    (["--all", "--sources", "{bad}"], "source 'tg': channels: List should have at least 1 item"),
])
def test_crawl_errors_are_one_line_and_fetch_nothing(server, tmp_path, args, message):
    sources, bad = tmp_path / "sources.toml", tmp_path / "bad.toml"
    sources.write_text(f'[[source]]\nid = "yt"\nkind = "youtube"\nbase = "{server.url}"\nchannels = ["U"]\ntasking = "T-PENDING"\n'
                       f'[[source]]\nid = "tg"\nkind = "telegram"\nbase = "{server.url}"\nchannels = ["c"]\n')
    bad.write_text('[[source]]\nid = "tg"\nkind = "telegram"\nchannels = []\n')
    data = data_dir_with(tmp_path / "data", tasking(), tasking(id="T-PENDING", approved_by=None, approved_at=None))
    before = len(server.requests)
    args = [a.replace("{bad}", str(bad)) for a in args]
    done = fcmon("--data-dir", str(data), "--as", "alice", "crawl", *args, *([] if "--sources" in args else ["--sources", str(sources)]), env=ENV)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("crawl: sources=")]  # the progress line
    assert len(lines) == 1 and lines[0].startswith("fcmon: error: ")
    assert server.requests[before:] == []
