"""Each platform's own pagination, the feed fixes the held-out fixtures found, and the host budget: pure, no I/O."""
from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

from crawlers.budget import HostBudget, retry_after
from crawlers.posts import bluesky_posts, feed_posts, telegram_posts, with_query

ATOM = """<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><id>urn:f</id><title>F</title>
<link rel="next" href="/feed.atom?page=2"/>
<entry><id>urn:e:1</id><title type="html">Don&amp;#8217;t park there &amp;amp; lock it</title><link href="/a/1"/>
<summary>Converters.</summary></entry>
<entry><id>urn:e:2</id><title type="text">Plain &amp; simple</title><link href="/a/2"/><summary>x</summary></entry></feed>"""

WORDPRESS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Desk</title><link>https://news.example/</link>
<generator>https://wordpress.org/?v=6.7</generator><item><title>One</title><link>https://news.example/one</link>
<guid>https://news.example/?p=1</guid><description>converter</description></item></channel></rss>"""

REDDIT = """<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>r</title>
<entry><id>t3_aaa</id><title>First</title><link href="https://reddit.example/r/x/comments/aaa/"/></entry>
<entry><id>t3_bbb</id><title>Second</title><link href="https://reddit.example/r/x/comments/bbb/"/></entry></feed>"""


def test_an_atom_html_title_is_decoded_and_a_text_title_kept():
    parsed = feed_posts(ATOM.encode(), "https://news.example/feed.atom")
    assert [p.title for p in parsed.posts] == ["Don\u2019t park there & lock it", "Plain & simple"]
    assert [p.ident for p in parsed.posts] == ["urn:e:1", "urn:e:2"]  # entry ids are the cursor's keys


def test_rfc5005_next_link_and_wordpress_paged():
    assert feed_posts(ATOM.encode(), "https://news.example/feed.atom").next_url == "https://news.example/feed.atom?page=2"
    assert feed_posts(WORDPRESS.encode(), "https://news.example/feed/", page=2).next_url == "https://news.example/feed/?paged=3"
    plain = WORDPRESS.replace("<generator>https://wordpress.org/?v=6.7</generator>", "")
    assert feed_posts(plain.encode(), "https://news.example/feed/").next_url is None


def test_reddit_after_the_last_entry():
    parsed = feed_posts(REDDIT.encode(), "https://reddit.example/r/x/new/.rss?after=t3_zzz", reddit=True)
    assert parsed.next_url == "https://reddit.example/r/x/new/.rss?after=t3_bbb"


def test_bluesky_cursor_replaces_the_previous_one():
    answer = {"posts": [{"uri": "at://did:plc:x/app.bsky.feed.post/3k1", "author": {"handle": "a.bsky.social"},
                         "record": {"text": "converter", "createdAt": "2026-11-01T00:00:00Z"}}], "cursor": "c2"}
    parsed = bluesky_posts(answer, "https://bsky.app", "https://api.example/xrpc/app.bsky.feed.searchPosts?q=x&cursor=c1")
    assert parsed.next_url == "https://api.example/xrpc/app.bsky.feed.searchPosts?q=x&cursor=c2"
    assert parsed.posts[0].ident == "at://did:plc:x/app.bsky.feed.post/3k1"
    assert bluesky_posts({**answer, "cursor": None}, "https://bsky.app", "https://api.example/x").next_url is None


def test_telegram_load_more_link_when_there_is_no_rel_prev():
    page = ("<html><body><div class='tgme_widget_message' data-post='chan/9'><div class='tgme_widget_message_text'>"
            "converter</div></div><a class='tme_messages_more js-messages_more' data-before='9' "
            "href='/s/chan?before=9'></a></body></html>")
    parsed = telegram_posts(page, "https://t.example/s/chan")
    assert parsed.next_url == "https://t.example/s/chan?before=9" and parsed.posts[0].ident == "chan/9"


def test_with_query_sets_one_parameter_and_keeps_the_rest():
    assert with_query("https://x.example/p?a=1&b=2", b=3) == "https://x.example/p?a=1&b=3"


def test_retry_after_in_seconds_or_as_a_date_bounded():
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert retry_after("120", now.timestamp(), 60, 3600) == 120
    assert retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now.timestamp(), 60, 3600) == 30
    assert retry_after(None, now.timestamp(), 60, 3600) == 60
    assert retry_after("junk", now.timestamp(), 60, 3600) == 60
    assert retry_after("999999", now.timestamp(), 60, 3600) == 3600


def test_one_budget_per_host_shared_and_a_pause_only_for_that_host():
    budget = HostBudget(delay=1.0, retry_default=60, retry_max=3600)
    assert budget.reserve("http://a.example/feed", 100.0) == 0
    assert budget.reserve("http://a.example/other", 100.0) == 1.0  # a second source on the same host waits its turn
    assert budget.reserve("http://b.example/feed", 100.0) == 0
    budget.answered("http://a.example/feed", 429, "10", 100.5)
    assert budget.reserve("http://a.example/feed", 101.0) == 9.5
    assert budget.reserve("http://b.example/feed", 101.0) == 0
    assert budget.answered("http://b.example/feed", 200, "10", 101.0) == 0 and budget.paused_until("http://b.example/") == 0
    assert (budget.hosts["a.example"].requests, budget.hosts["a.example"].rate_limited) == (3, 1)
