"""The sources file and the post parsers: pure, no I/O beyond reading the shipped example and fixture responses."""
from __future__ import annotations

import json

import pytest

from crawlers.extract import decode_html
from crawlers.posts import bluesky_posts, count, feed_posts, html_text, mastodon_next, mastodon_posts, telegram_posts
from crawlers.run import Job, check_job
from crawlers.sources import MastodonSource, SiteSource, load_sources, parse_sources
from crawlers.traps import TrapLimits
from pipeline.errors import FcmonError
from pipeline.settings import REPO_CONFIG_DIR
from tests.factories_pipeline import make_tasking
from tests.fixtures.server import RESPONSES

BASE = "http://127.0.0.1:9"


def fixture(name: str) -> str:
    return (RESPONSES / name).read_text(encoding="utf-8").replace("{base}", BASE)


# --- sources file ---------------------------------------------------------------------------------------

def test_the_shipped_example_is_valid_and_crawls_nothing_by_default():
    sources = load_sources(REPO_CONFIG_DIR / "sources.toml")
    assert {s.kind for s in sources.source} == {"feed", "site", "mastodon", "bluesky", "reddit", "telegram", "youtube"}
    assert not [s.id for s in sources.source if s.enabled]


@pytest.mark.parametrize("text,message", [
    ('[[source]]\nid = "x"\nkind = "gopher"', "source 'x': kind: missing or unknown kind"),
    ('[[source]]\nid = "x"', "source 'x': kind: missing or unknown kind"),
    ('[[source]]\nid = "x"\nkind = "site"\nstart_urls = ["ftp://a/"]', "source 'x': start_urls.0: 'ftp://a/' is not an http(s) URL"),
    ('[[source]]\nid = "x"\nkind = "site"', "source 'x': (source): a site source needs start_urls or sitemaps"),
    ('[[source]]\nid = "x"\nkind = "mastodon"', "source 'x': instance: Field required"),
    ('[[source]]\nid = "x"\nkind = "site"\nstart_urls = ["http://a/"]\nallow = ["("]', "source 'x': allow: '(' is not a valid regex"),
    ('[[source]]\nid = "x"\nkind = "site"\nstart_urls = ["http://a/"]\nextract = {title = "css:h1["}', "source 'x': extract: css rule for title is invalid"),
    ('[[source]]\nid = "x"\nkind = "site"\nstart_urls = ["http://a/"]\nextract = {body = "css:p"}', "unknown extraction field 'body'"),
    ('[[source]]\nid = "x"\nkind = "site"\nstart_urls = ["http://a/"]\nextract = {text = "p"}', "must start with css: or xpath:"),
    ('[[source]]\nid = "x"\nkind = "telegram"\nchannels = ["a"]\nlogin = "me"', "source 'x': login: Extra inputs are not permitted"),
    ('[[source]]\nkind = "telegram"\nchannels = ["a"]', "source '#1': id: Field required"),
    ('[[source]]\nid = "a b"\nkind = "telegram"\nchannels = ["a"]', "source 'a b': id: String should match pattern"),
    ('[[source]]\nid = "x"\nkind = "youtube"\nchannels = ["U"]\n[[source]]\nid = "x"\nkind = "youtube"\nchannels = ["V"]', "source id 'x' is used twice"),
    ('[[source]\nid = "x"', "not valid TOML"),
])
def test_an_invalid_file_is_one_line_naming_the_source_and_field(text, message):
    with pytest.raises(FcmonError) as err:
        parse_sources(text, "s.toml")
    assert message in str(err.value) and str(err.value).startswith("s.toml: ") and "\n" not in str(err.value)
    assert "docs/sources.md" in str(err.value)


def test_a_missing_file_and_an_unknown_source_say_what_to_do(tmp_path):
    with pytest.raises(FcmonError, match="does not exist.*FCMON_CRAWL_SOURCES_FILE"):
        load_sources(tmp_path / "none.toml")
    with pytest.raises(FcmonError, match="no source 'b'.*known: a"):
        parse_sources('[[source]]\nid = "a"\nkind = "youtube"\nchannels = ["U"]').get("b")


def test_tasking_keywords_bound_hashtags_and_searches():
    tasking = make_tasking(scope={"domains": ["127.0.0.1"], "keywords": ["#converter", "catalytic converter", "cats"]})
    masto = parse_sources(f'[[source]]\nid = "m"\nkind = "mastodon"\ninstance = "{BASE}/"').source[0]
    assert masto.start_urls(tasking) == [f"{BASE}/api/v1/timelines/tag/converter?limit=40", f"{BASE}/api/v1/timelines/tag/cats?limit=40"]
    own = masto.model_copy(update={"hashtags": ["theft"], "public": True, "local": True})
    assert own.start_urls(tasking) == [f"{BASE}/api/v1/timelines/public?limit=40&local=true", f"{BASE}/api/v1/timelines/tag/theft?limit=40&local=true"]
    reddit = parse_sources(f'[[source]]\nid = "r"\nkind = "reddit"\nbase = "{BASE}"\nsubreddits = ["chicago"]\nsearch = ["cats"]').source[0]
    assert reddit.start_urls(tasking) == [f"{BASE}/r/chicago/search.rss?q=cats&restrict_sr=on&sort=new"]
    bsky = parse_sources('[[source]]\nid = "b"\nkind = "bluesky"').source[0]
    assert bsky.start_urls(tasking)[1] == "https://public.api.bsky.app/xrpc/app.bsky.feed.searchPosts?q=catalytic+converter&limit=25&sort=latest"


def test_a_source_outside_the_tasking_or_with_nothing_to_fetch_is_refused_before_crawling():
    tasking = make_tasking(scope={"domains": ["127.0.0.1"], "keywords": []})
    with pytest.raises(FcmonError, match="source m: host mastodon.social is outside the domains of tasking T-1"):
        check_job(Job(MastodonSource(kind="mastodon", id="m", instance="https://mastodon.social"), tasking))
    with pytest.raises(FcmonError, match="source m: nothing to fetch"):
        check_job(Job(MastodonSource(kind="mastodon", id="m", instance=BASE), tasking))
    check_job(Job(SiteSource.for_start_url(BASE + "/"), tasking))


# --- parsers --------------------------------------------------------------------------------------------

def test_mastodon_statuses():
    parsed = mastodon_posts(json.loads(fixture("mastodon_tag_converter.json")), BASE)
    assert [p.url for p in parsed.posts] == [f"{BASE}/@wrenchman/111", "https://other.example/@scrapper/90"]
    assert parsed.skipped == {"not_public": 1, "noindex": 1, "malformed": 2}
    assert parsed.posts[1].author == "scrapper@other.example" and parsed.posts[1].engagement == {"replies": 2, "reposts": 5, "likes": 1}
    assert mastodon_posts({"error": "x"}, BASE).skipped == {"not_a_list": 1}
    assert mastodon_next('<https://m.example/api/v1/timelines/public?max_id=5>; rel="next", <https://m.example/x>; rel="prev"',
                         "https://m.example/") == "https://m.example/api/v1/timelines/public?max_id=5"
    assert mastodon_next('<https://m.example/x>; rel="prev"', "https://m.example/") is None


def test_bluesky_post_views():
    parsed = bluesky_posts(json.loads(fixture("bluesky_search.json")), "https://bsky.app")
    assert [p.url for p in parsed.posts] == ["https://bsky.app/profile/wrench.bsky.social/post/3kq2a"]
    assert parsed.skipped == {"no_unauthenticated": 1, "malformed": 1}
    assert bluesky_posts(json.loads(fixture("bluesky_author.json")), "https://bsky.app").posts[0].text == "Back in stock: converters."
    assert bluesky_posts([1, 2], "https://bsky.app").skipped == {"not_an_object": 1}


def test_telegram_preview():
    parsed = telegram_posts(fixture("telegram_channel.html"), f"{BASE}/s/scrapmarket")
    assert [p.url for p in parsed.posts] == [f"{BASE}/scrapmarket/42"] and parsed.skipped == {"no_text": 1}
    assert parsed.next_url == f"{BASE}/s/scrapmarket?before=41"
    assert parsed.posts[0].published_at.isoformat() == "2026-11-21T12:00:00+00:00"
    assert telegram_posts("", BASE).posts == [] and telegram_posts("<<<\x00", BASE).posts == []


def test_feeds_youtube_reddit_and_broken():
    [video] = feed_posts(fixture("youtube_channel.xml").encode(), BASE).posts
    assert video.engagement == {"views": 4321, "likes": 57} and video.handle == "UCscrap0000000000000000"
    reddit = feed_posts(fixture("reddit_search.atom").encode(), BASE)
    assert reddit.posts[0].handle == "u/parkingdad" and reddit.skipped == {"no_link": 1}
    broken = feed_posts(fixture("broken.rss").encode(), BASE)
    assert [p.title for p in broken.posts][:1] == ["Readable converter item"]
    assert feed_posts(b"\x00\xff not a feed", BASE).posts == []


@pytest.mark.parametrize("value,expected", [(12, 12), ("1,204", 1204), ("3.4K", 3400), ("2M", 2_000_000), ("", None), ("n/a", None),
                                            (None, None), (True, None)])
def test_engagement_counts(value, expected):
    assert count(value) == expected


def test_html_text_keeps_line_breaks():
    assert html_text("<p>a <b>b</b></p><p>c<br>d</p>") == "a b\nc\nd"
    assert html_text("") == "" and html_text(None) == ""


def test_undeclared_charsets_fall_back_to_utf8_then_windows_1252():
    assert "Déjà – ¿" in decode_html("<p>Déjà – ¿</p>".encode("cp1252"), "text/html")
    assert "Déjà" in decode_html("<p>Déjà</p>".encode(), "text/html")
    assert "Caf\u00e9" in decode_html("<meta charset='iso-8859-1'><p>Café</p>".encode("latin-1"), "text/html")


# --- crawl-trap limits ----------------------------------------------------------------------------------

def test_trap_limits():
    limits = TrapLimits(pages_per_host=5, query_variants=2, max_query_params=3)
    assert limits.check("http://h/cal?m=1") is None and limits.check("http://h/cal?m=2") is None
    assert limits.check("http://h/cal?m=3").reason == "trap_query_variants"
    assert limits.check("http://h/cal?m=1") is None  # a variant already seen is not a new one
    assert limits.check("http://h/x?a=1&b=2&c=3&d=4").reason == "trap_query_params"
    assert limits.check("http://h/a") is None and limits.check("http://h/b") is None
    assert limits.check("http://h/c").reason == "trap_pages_per_host"
    assert limits.check("http://other/c") is None
