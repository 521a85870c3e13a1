"""One test per fault the fuzzing found (tests/test_fuzz_parsers.py), on the smallest input that showed it."""
from __future__ import annotations

import json

import pytest

from crawlers.extract import extract_page, parse_datetime
from crawlers.posts import bluesky_posts, count, feed_posts, html_text, json_document, mastodon_posts, telegram_posts
from crawlers.sources import load_sources, parse_sources
from pipeline.cli import build_app
from pipeline.errors import FcmonError

FEED = "https://news.example/feed.xml"
VIEW = {"uri": "at://did:plc:x/app.bsky.feed.post/3k", "author": {"handle": "a.bsky.social"}, "record": {"text": "hi"}}


@pytest.mark.parametrize("ref", [b"&#x110000;", b"&#99999999999999999999;", b"&#xD800;"])
def test_a_character_reference_naming_no_character_does_not_lose_the_feed(ref):
    body = b"<rss><channel><item><title>a" + ref + b"</title><link>https://news.example/1</link></item>"  # loose parser
    (post,) = feed_posts(body, FEED).posts
    assert post.title == "a\ufffd" and post.url == "https://news.example/1"


def test_feed_links_that_are_not_http_are_skipped():
    items = "".join(f"<item><title>t</title><link>{link}</link></item>" for link in
                    ["javascript:alert(1)", " JaVaScRiPt:alert(1)", "data:text/html,x", "file:///etc/passwd", "https://[::1/", "/ok"])
    parsed = feed_posts(f"<rss><channel>{items}</channel></rss>".encode(), FEED)
    assert [p.url for p in parsed.posts] == ["https://news.example/ok"] and parsed.skipped == {"not_http": 5}


@pytest.mark.parametrize("data", [{"feed": 5}, {"feed": {"post": VIEW}}, {"posts": [{**VIEW, "author": {"handle": "a.b", "labels": [{"val": [1]}]}}]},
                                  {"posts": [{**VIEW, "author": {"handle": "a.b", "labels": 7}}]},
                                  {"posts": [{**VIEW, "record": {"createdAt": 5, "text": ["x"]}}]},
                                  {"posts": [{**VIEW, "author": {"handle": "a.b", "displayName": {"x": 1}}}]},
                                  {"posts": [{**VIEW, "author": {"handle": "../../evil.example"}}]}])
def test_bluesky_answers_of_the_wrong_types_are_read_or_skipped(data):
    parsed = bluesky_posts(data, "https://bsky.app")
    for post in parsed.posts:
        assert isinstance(post.text, str) and isinstance(post.author, str) and post.url.startswith("https://bsky.app/profile/")
        assert ".." not in post.url
    assert parsed.posts or parsed.skipped or not data.get("posts")


def test_mastodon_statuses_of_the_wrong_types_are_read():
    status = {"url": "https://m.example/@a/1", "created_at": 5, "content": {"a": 1}, "spoiler_text": ["x"],
              "account": {"display_name": {"a": 1}, "acct": 7}}
    (post,) = mastodon_posts([status, {"url": "https://[::1/"}], "https://m.example").posts
    assert (post.text, post.author, post.published_at, post.handle) == ("", None, None, None)


def test_json_nested_too_deeply_is_malformed_json():
    with pytest.raises(ValueError, match="nested too deeply"):
        json_document(b"[" * 100_000)


def test_telegram_permalinks_stay_on_telegram():
    page = "".join(f'<div class="tgme_widget_message" data-post="{p}"><div class="tgme_widget_message_text">{p}</div></div>'
                   for p in ["/evil.example/1", "//evil.example/2", "chan/3"])
    parsed = telegram_posts(f'<html><head><link rel="prev" href="javascript:alert(1)"></head><body>{page}</body></html>',
                            "https://t.me/s/chan")
    assert [p.url for p in parsed.posts] == ["https://t.me/chan/3"] and parsed.skipped == {"malformed": 2}
    assert parsed.next_url is None


def test_script_code_is_never_text():
    page = extract_page('<html><body><span class="author"><script>evil()</script>Ann</span><style>p{}</style></body></html>',
                        "https://a.example/")
    assert page.author == "Ann" and "evil" not in page.text and "p{}" not in page.text
    assert html_text("<p>hi<script>evil()</script></p>") == "hi"


def test_control_characters_do_not_make_html_text_return_markup():
    assert html_text("\x08<p>a<b>b</b></p>") == "ab"


def test_lone_surrogates_become_replacement_characters():
    (post,) = mastodon_posts(json.loads('[{"url": "https://m.example/1", "spoiler_text": "a\\ud800"}]'), "https://m.example").posts
    assert post.title == "a\ufffd"
    assert mastodon_posts([{"url": "https://m.example/\ud800"}], "https://m.example").skipped == {"malformed": 1}


def test_overflowing_times_and_counts_are_unreadable_not_fatal():
    assert parse_datetime("9999-12-31T23:59:59-23:59") is None and parse_datetime(5) is None
    assert count("9" * 400) is None


def test_sources_files_not_utf8_or_nested_too_deeply_are_one_error(tmp_path):
    (tmp_path / "s.toml").write_bytes(b'[[source]]\nid = "\xff"\n')
    with pytest.raises(FcmonError, match="not UTF-8"):
        load_sources(tmp_path / "s.toml")
    with pytest.raises(FcmonError, match="nested too deeply"):
        parse_sources("a = " + "[" * 5000)


def test_settings_nested_too_deeply_unknown_variables_and_missing_secrets_are_one_error(tmp_path, monkeypatch):
    (tmp_path / "fcmon.toml").write_text("guards = " + "[" * 5000)
    monkeypatch.setenv("FCMON_CONFIG", str(tmp_path / "fcmon.toml"))
    with pytest.raises(FcmonError, match="nests too deeply"):
        build_app(None, None)
    monkeypatch.delenv("FCMON_CONFIG")
    monkeypatch.setenv("FCMON_RETENTION_DAYS_CRIMNAL", "30")
    with pytest.raises(FcmonError, match="FCMON_RETENTION_DAYS_CRIMNAL names no setting"):
        build_app(None, None)
    monkeypatch.delenv("FCMON_RETENTION_DAYS_CRIMNAL")
    monkeypatch.setenv("FCMON_INDEX", "elasticsearch")
    monkeypatch.setenv("FCMON_ELASTICSEARCH_URL", "http://127.0.0.1:9")
    with pytest.raises(FcmonError, match="elasticsearch_password is not set"):
        build_app(None, None)
    monkeypatch.setenv("FCMON_ELASTICSEARCH_PASSWORD", "s3cret")
    assert build_app(None, None).settings.index == "elasticsearch"


@pytest.mark.parametrize("declaration", [b'encoding="u\xf4\x90\x80\x80tf-8"', b'encoding="utf-8\xed\xa0\x80"', b'encoding="\xffutf-8"'])
def test_invalid_utf8_in_the_xml_declaration_does_not_lose_the_feed(declaration):
    body = b'<?xml version="1.0" ' + declaration + b'?><rss><channel><item><title>caf\xc3\xa9 \xff</title><link>https://news.example/1</link></item></channel></rss>'
    (post,) = feed_posts(body, FEED).posts  # feedparser raised UnicodeDecodeError sniffing the declaration
    assert post.title == "caf\u00e9 \ufffd"  # one bad byte is U+FFFD, not the whole feed read as Latin-2


@pytest.mark.parametrize("encoding", ["utf-16", "base64", "rot13", "x-bogus"])
def test_a_declared_encoding_that_cannot_be_the_bytes_is_read_as_undeclared(encoding):
    body = f'<?xml version="1.0" encoding="{encoding}"?><rss><channel><item><title>caf\u00e9</title><link>https://news.example/1</link></item></channel></rss>'
    assert [p.title for p in feed_posts(body.encode(), FEED).posts] == ["caf\u00e9"]


def test_script_glued_to_junk_before_it_is_still_code():
    page = extract_page('<html><body><p>Converters for sale</p><m\u00cf\u00da<script>evil()</script></body></html>', "https://a.example/")
    assert "evil" not in page.text and "Converters for sale" in page.text  # trafilatura read libxml2's "m\u00cf\u00da<script" element


def test_an_unclosed_title_keeps_no_markup_or_script():
    page = extract_page('<html><head><title>Shop<\u00c3(/title></head><body><script>evil()</script>'
                        '<a href="/x" onclick="evil()">here</a></body></html>', "https://a.example/")
    assert "evil" not in page.title and "<" not in page.title.replace("<\u00c3(", "") and page.title.startswith("Shop")


def test_a_link_whose_empty_fragment_hid_trailing_whitespace_is_stored_without_it():
    body = b'<rss><channel><item><title>t</title><link>seq \x0b#</link></item></channel></rss>'
    (post,) = feed_posts(body, FEED).posts  # urljoin dropped the "#" and kept the "\x0b" before it
    assert post.url == "https://news.example/seq"
