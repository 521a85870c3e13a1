"""The crawler: pure rules (addresses, requests, extraction) with no I/O, then whole crawls of the bundled
fixture site over real HTTP on 127.0.0.1, each in a subprocess (the Twisted reactor runs once per process)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scrapy import Request, Spider
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.exceptions import DropItem, IgnoreRequest
from scrapy.http import HtmlResponse
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from crawlers.extract import extract_page, feed_links, is_feed, parse_datetime
from crawlers.middlewares import LoginWallMiddleware, ProvenanceMiddleware, PublicOnlyMiddleware
from crawlers.netpolicy import AddressPolicy, RequestPolicy, is_public, parse_ip
from crawlers.pipelines import BusPipeline
from crawlers.posts import feed_posts
from crawlers.run import check_start_url, summarise
from crawlers.settings import scrapy_settings
from pipeline.bus import COLLECTED
from pipeline.bus.local import LocalBus
from pipeline.datadir import DataDir
from pipeline.demosite import DemoSite
from pipeline.demosite.content import POSTS, routes
from pipeline.errors import FcmonError
from pipeline.models import CollectedItem, Tasking, content_hash
from pipeline.settings import REPO_CONFIG_DIR, Settings

TASKING_FILE = REPO_CONFIG_DIR / "taskings" / "demo-criminal-predicate.json"
LOGIN_PATTERN = Settings.model_fields["crawl_login_url_pattern"].default
CRAWL = """
import json, sys
from pathlib import Path
from crawlers.run import run_crawl
from pipeline.datadir import DataDir
from pipeline.models import Tasking
from pipeline.settings import Settings
data_dir, tasking_file, start_url, progress = sys.argv[1:5]
tasking = Tasking.model_validate_json(Path(tasking_file).read_text())
summary = run_crawl(Settings(data_dir=data_dir), DataDir(Path(data_dir)), tasking, start_url, progress=progress == "1")
print(json.dumps(summary))
"""


def demo_tasking() -> Tasking:
    return Tasking.model_validate_json(TASKING_FILE.read_text())


# --- fixtures: crawl runs -------------------------------------------------------------------------------

def crawl(root: Path, start_url: str, progress: bool = False, broken_bus: bool = False,
          **env: str) -> tuple[dict, list[CollectedItem], str]:
    """Crawl start_url into a new data directory at root, in a subprocess: the summary, the items on the bus, stderr."""
    data_dir = DataDir(root)
    data_dir.create()
    if broken_bus:
        data_dir.bus_db.mkdir()  # SQLite cannot open a directory
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | {"FCMON_CRAWL_DOWNLOAD_DELAY": "0", **env}
    done = subprocess.run([sys.executable, "-c", CRAWL, str(root), str(TASKING_FILE), start_url, "1" if progress else "0"],
                          capture_output=True, text=True, env=full_env, timeout=60)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if broken_bus:
        return summary, [], done.stderr
    bus = LocalBus(data_dir.bus_db)
    items = [CollectedItem.model_validate_json(m.value) for m in bus.consumer("test", [COLLECTED]).poll(1000, 0)]
    bus.close()
    return summary, items, done.stderr


@pytest.fixture(scope="module")
def site():
    with DemoSite(port=0) as s:
        yield s


@pytest.fixture(scope="module")
def allowed_crawl(site, tmp_path_factory):
    """One crawl with 127.0.0.1 allowed: (summary, items by path, requests the site received)."""
    before = len(site.requests)
    summary, items, stderr = crawl(tmp_path_factory.mktemp("crawl") / "data", site.url + "/", progress=True,
                                   FCMON_CRAWL_ALLOW_HOSTS="127.0.0.1")
    assert f"crawl: pages={summary['responses']} items={summary['items']} refused=" in stderr
    return summary, {i.url[len(site.url):]: i for i in items}, site.requests[before:]


# --- whole crawls of the fixture site ------------------------------------------------------------------

def test_crawl_collects_the_public_pages(allowed_crawl):
    summary, items, _ = allowed_crawl
    posts = {f"/forum/post/{p.number}" for p in POSTS}
    assert posts | {"/", "/forum/", "/news/", "/news/1", "/news/2", "/report", "/members/board", "/members/roster"} == set(items)
    assert summary["items"] == len(items) == 14
    assert summary["finish_reason"] == "finished"
    assert (summary["errors"], summary["bus_errors"], summary["parse_errors"]) == (0, 0, 0)
    assert {items[p].source_kind for p in posts} == {"forum_post"}
    assert items["/news/1"].source_kind == "web_page"


def test_only_get_and_never_credentials_even_after_the_site_set_a_cookie(allowed_crawl):
    _, items, received = allowed_crawl
    assert "Set-Cookie" in items["/"].response.headers
    assert received and {r["method"] for r in received} <= {"GET", "HEAD"}
    for r in received:
        sent = {name.lower() for name in r["headers"]}
        assert not sent & {"cookie", "authorization", "proxy-authorization"}, r
        assert "fcmon" in r["headers"]["User-Agent"]


def test_login_robots_disallowed_and_form_targets_are_never_requested(allowed_crawl):
    summary, _, received = allowed_crawl
    paths = [r["path"] for r in received]
    assert not [p for p in paths if p.startswith(("/login", "/private/", "/report/submit"))], paths
    assert "/report" in paths  # the tip page itself is public; its form is never submitted
    assert summary["refused"].get("login_url", 0) >= 1
    assert summary["robots_disallowed"] >= 1
    assert paths.count("/robots.txt") == 1


def test_login_walls_are_marked_and_not_walked_through(allowed_crawl):
    summary, items, _ = allowed_crawl
    board, roster = items["/members/board"], items["/members/roster"]
    assert board.login_wall_detected and board.login_wall_reason == "password_form"
    assert roster.login_wall_detected and roster.login_wall_reason == "redirect_to_login"
    assert roster.response.status == 302 and roster.final_url.endswith("/members/roster")
    assert summary["login_walls"] == 2
    assert not any(i.login_wall_detected for path, i in items.items() if not path.startswith("/members/"))


def test_public_posts_carry_full_provenance(allowed_crawl, site):
    _, items, received = allowed_crawl
    post = items["/forum/post/1"]
    assert post.robots_allowed and post.response.status == 200
    assert post.author == "wrenchman" and post.published_at.isoformat() == "2026-02-03T22:14:00+00:00"
    assert "six catalytic converters off Priuses" in post.text and post.title == "Six cats for sale tonight"
    assert post.content_sha256 == content_hash(post.title, post.text)
    assert post.fetched_at.utcoffset().total_seconds() == 0
    assert (post.tasking_id, post.source_id, post.spider) == ("DEMO-2026-0001", "127.0.0.1", "site")
    assert post.response.body_sha256 and post.request.method == "GET"
    on_the_wire = next(r["headers"] for r in received if r["path"] == "/forum/post/1")
    assert post.request.headers == on_the_wire


def test_a_second_crawl_yields_the_same_items(allowed_crawl, site, tmp_path):
    _, items, _ = allowed_crawl
    _, again, _ = crawl(tmp_path / "data", site.url + "/", FCMON_CRAWL_ALLOW_HOSTS="127.0.0.1")
    assert sorted((i.id, i.content_sha256) for i in again) == sorted((i.id, i.content_sha256) for i in items.values())


def test_loopback_is_refused_unless_allowed(site, tmp_path):
    before = len(site.requests)
    summary, items, _ = crawl(tmp_path / "data", site.url + "/")
    assert site.requests[before:] == []
    assert items == [] and summary["requests"] == 0
    assert summary["refused"]["private_address"] >= 1


def test_a_broken_bus_ends_the_crawl_and_is_reported(site, tmp_path):
    before = len(site.requests)
    summary, _, stderr = crawl(tmp_path / "data", site.url + "/", broken_bus=True, FCMON_CRAWL_ALLOW_HOSTS="127.0.0.1")
    assert summary["finish_reason"] == "bus_error" and summary["bus_errors"] >= 1
    assert "event=bus_error" in stderr and site.requests[before:] == []


# --- request policy: pure ------------------------------------------------------------------------------

def fake_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    def resolve(host: str) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]
    return resolve


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "0.0.0.0",
                                     "224.0.0.1", "240.0.0.1", "100.64.0.1", "::1", "fe80::1", "fd00::1", "::", "::ffff:10.0.0.1"])
def test_non_public_addresses(address):
    assert not is_public(parse_ip(address))
    assert AddressPolicy().check_host(address).reason == "private_address"


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses(address):
    assert is_public(parse_ip(address)) and AddressPolicy().check_host(address) is None


def test_names_are_judged_by_every_address_they_resolve_to():
    table = {"news.example": ["93.184.215.14"], "intranet.example": ["10.0.0.5"],
             "mixed.example": ["93.184.215.14", "192.168.0.9"], "lab.example": ["10.9.0.1"]}
    policy = AddressPolicy(["10.9.0.0/16"], resolver=fake_resolver(table))
    assert policy.check_host("news.example") is None
    assert policy.check_host("intranet.example").reason == "private_address"
    assert "192.168.0.9" in policy.check_host("mixed.example").detail
    assert policy.check_host("lab.example") is None  # allowed network
    assert policy.check_host("nowhere.example").reason == "unresolvable"


def test_allow_list_takes_names_ips_and_networks_and_resolution_is_cached():
    calls: list[str] = []
    policy = AddressPolicy(["Demo.Local", "127.0.0.1", "fd00::/8"], resolver=fake_resolver({"other.local": ["127.0.0.2"]}, calls))
    assert policy.check_host("demo.local") is None and calls == []  # an allowed name is not even resolved
    assert policy.check_host("127.0.0.1") is None and policy.check_host("fd00::7") is None
    assert policy.check_host("127.0.0.2").reason == "private_address"
    assert policy.check_host("other.local").reason == "private_address"
    policy.check_host("OTHER.local")
    assert calls == ["other.local"]


@pytest.mark.parametrize("method,url,headers,reason", [
    ("POST", "http://93.184.215.14/report/submit", [], "method"),
    ("PUT", "http://93.184.215.14/x", [], "method"),
    ("GET", "ftp://93.184.215.14/x", [], "scheme"),
    ("GET", "file:///etc/passwd", [], "scheme"),
    ("GET", "http://93.184.215.14/x", ["Cookie"], "credentials"),
    ("GET", "http://93.184.215.14/x", ["authorization"], "credentials"),
    ("GET", "http://93.184.215.14/x", ["Proxy-Authorization"], "credentials"),
    ("GET", "http://user:pw@93.184.215.14/x", [], "credentials"),
    ("GET", "http://93.184.215.14/login", [], "login_url"),
    ("GET", "http://93.184.215.14/user/sign-in?next=/", [], "login_url"),
    ("GET", "http://93.184.215.14/register.php", [], "login_url"),
    ("GET", "http://93.184.215.14/x?redirect=/oauth/", [], "login_url"),
    ("GET", "http://10.0.0.1/x", [], "private_address"),
])
def test_request_policy_refuses(method, url, headers, reason):
    assert RequestPolicy(LOGIN_PATTERN, AddressPolicy()).check(method, url, headers).reason == reason


@pytest.mark.parametrize("url", ["http://93.184.215.14/author/wrenchman", "https://93.184.215.14/forum/post/1?page=2",
                                 "http://93.184.215.14/blog/logging-tips"])
def test_request_policy_allows_public_pages(url):
    assert RequestPolicy(LOGIN_PATTERN, AddressPolicy()).check("HEAD", url, ["User-Agent", "Accept"]) is None


# --- middlewares with real Scrapy components, no network -----------------------------------------------

def middleware_crawler(**settings):
    return get_crawler(Spider, {"FCMON_SETTINGS": Settings(**settings)})


@pytest.mark.parametrize("location,reason", [("http://169.254.169.254/latest/meta-data/", "private_address"),
                                             ("http://10.0.0.8/admin", "private_address"),
                                             ("/login?next=/members", "login_url")])
def test_redirects_are_checked_again_before_they_are_sent(location, reason):
    crawler = middleware_crawler()
    redirect, public_only = build_from_crawler(RedirectMiddleware, crawler), build_from_crawler(PublicOnlyMiddleware, crawler)
    request = Request("http://93.184.215.14/members")
    assert public_only.process_request(request) is None
    followed = redirect.process_response(request, HtmlResponse(request.url, status=302, headers={"Location": location}, request=request))
    assert isinstance(followed, Request)
    with pytest.raises(IgnoreRequest):
        public_only.process_request(followed)
    assert crawler.stats.get_value(f"fcmon/refused/{reason}") == 1


def test_public_only_refuses_a_request_carrying_a_cookie():
    crawler = middleware_crawler()
    with pytest.raises(IgnoreRequest):
        build_from_crawler(PublicOnlyMiddleware, crawler).process_request(Request("http://93.184.215.14/", headers={"Cookie": "a=b"}))
    assert crawler.stats.get_value("fcmon/refused/credentials") == 1


@pytest.mark.parametrize("status,headers,reason", [(401, {}, "http_401"), (403, {}, "http_403"),
                                                   (302, {"Location": "/signin?r=/x"}, "redirect_to_login"),
                                                   (301, {"Location": "/news/"}, None), (200, {}, None)])
def test_login_wall_middleware_stops_at_the_wall(status, headers, reason):
    wall = build_from_crawler(LoginWallMiddleware, middleware_crawler())
    request = Request("http://93.184.215.14/members/x")
    wall.process_response(request, HtmlResponse(request.url, status=status, headers=headers, request=request))
    assert request.meta.get("fcmon_login_wall") == reason
    if reason:
        assert request.meta["dont_redirect"] and status in request.meta["handle_httpstatus_list"]


def test_provenance_records_robots_verdict_and_headers_as_sent():
    provenance = build_from_crawler(ProvenanceMiddleware, get_crawler(Spider, scrapy_settings(Settings())))
    request = Request("http://93.184.215.14:8080/a", headers={"User-Agent": "fcmon/0.1", "Accept": ["a", "b"]})
    provenance.process_request(request)
    assert request.meta["fcmon_robots_allowed"] is True
    assert request.meta["fcmon_sent"] == {"method": "GET", "headers": {"User-Agent": "fcmon/0.1", "Accept": "a, b",
                                                                       "Host": "93.184.215.14:8080"}}
    off = build_from_crawler(ProvenanceMiddleware, get_crawler(Spider, {**scrapy_settings(Settings()), "ROBOTSTXT_OBEY": False}))
    request = Request("http://93.184.215.14/a")
    off.process_request(request)
    assert request.meta["fcmon_robots_allowed"] is False  # nobody checked robots.txt: the item must not claim it


def test_an_unreachable_robots_txt_disallows_the_site():
    crawler = get_crawler(Spider, scrapy_settings(Settings()))
    provenance = build_from_crawler(ProvenanceMiddleware, crawler)
    robots = Request("http://93.184.215.14/robots.txt", meta={"dont_obey_robotstxt": True})
    provenance.process_response(robots, HtmlResponse(robots.url, status=503, request=robots))
    with pytest.raises(IgnoreRequest):
        provenance.process_request(Request("http://93.184.215.14/forum/"))
    assert crawler.stats.get_value("fcmon/refused/robots_unreachable") == 1
    provenance.process_request(Request("http://93.184.215.15/forum/"))  # another site is unaffected


# --- bus pipeline --------------------------------------------------------------------------------------

class BrokenBus:
    def produce(self, topic, key, value):
        raise OSError("disk full")

    def flush(self):
        raise OSError("disk full")

    def close(self):
        pass


def sample_item() -> dict:
    return CollectedItem(tasking_id="T-1", source_kind="web_page", url="http://93.184.215.14/", fetched_at="2026-02-01T00:00:00Z",
                         request={"method": "GET"}, response={"status": 200}, robots_allowed=True,
                         login_wall_detected=False, title="t", text="x").model_dump()


def test_bus_pipeline_produces_keyed_json_and_flushes_at_close(tmp_path):
    data_dir = DataDir(tmp_path / "d")
    data_dir.create()
    crawler = get_crawler(Spider, scrapy_settings(Settings(), data_dir, demo_tasking()))
    pipeline = BusPipeline.from_crawler(crawler)
    pipeline.open_spider()
    pipeline.process_item(sample_item())
    pipeline.close_spider()
    [message] = LocalBus(data_dir.bus_db).consumer("t", [COLLECTED]).poll(10, 0)
    assert message.key == "" and CollectedItem.model_validate_json(message.value).title == "t"


def test_bus_failures_are_counted_not_swallowed(tmp_path):
    data_dir = DataDir(tmp_path / "d")
    data_dir.create()
    crawler = get_crawler(Spider, scrapy_settings(Settings(), data_dir, demo_tasking()))
    pipeline = BusPipeline.from_crawler(crawler)
    pipeline.bus = BrokenBus()
    with pytest.raises(DropItem):
        pipeline.process_item(sample_item())
    assert crawler.stats.get_value("fcmon/bus_errors") == 1
    assert summarise(crawler.stats.get_stats(), "http://x/", "T-1")["bus_errors"] == 1


# --- extraction: pure ----------------------------------------------------------------------------------

def test_forum_post_extraction():
    page = extract_page(routes()["/forum/post/5"].body, "http://h/forum/post/5")
    assert page.is_post and page.author == "anon_4471" and page.title == "Saturday at the scrapyard"
    assert page.published_at.isoformat() == "2026-02-10T23:55:00+00:00"
    assert "cut the converters off their trucks" in page.text and "Southside Neighbors is run" not in page.text
    assert page.login_wall_reason is None


def test_news_article_without_an_author_is_a_web_page():
    page = extract_page(routes()["/news/2"].body, "http://h/news/2")
    assert not page.is_post and page.author is None and page.title.startswith("School bake sale")


def test_content_walls():
    assert extract_page(routes()["/members/board"].body, "http://h/members/board").login_wall_reason == "password_form"
    short = "<html><body><main><h1>Club</h1><p>Please log in to view this thread.</p></main></body></html>"
    assert extract_page(short, "http://h/t").login_wall_reason.startswith("wall_text")
    sidebar = ("<html><body><aside><form><input type=password></form></aside><article><h1>T</h1><p>"
               + "Public text about catalytic converters. " * 40 + "A members only sale.</p></article></body></html>")
    assert extract_page(sidebar, "http://h/t").login_wall_reason is None


def test_malformed_html_does_not_raise():
    for html in ["", "<html", "<<<>>>\x00", "<article><span class=author></span>"]:
        extract_page(html or "<html></html>", "http://h/")


def test_feeds_are_recognised_and_their_links_followed():
    rss = routes()["/feed.xml"].body.replace("{base}", "http://h").encode()
    assert is_feed("application/rss+xml; charset=utf-8", rss) and is_feed("text/xml", rss) and is_feed("application/octet-stream", rss)
    assert not is_feed("text/html", b"<html><body>rss</body></html>")
    assert feed_links(rss, "http://h/feed.xml") == ["http://h/news/1", "http://h/news/2", "http://h/forum/post/1"]
    atom = b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>a</title><link href="/a/1"/></entry></feed>'
    assert is_feed("", atom) and feed_links(atom, "http://h/atom") == ["http://h/a/1"]
    broken = b"<rss><channel><item><title>x</title><link>http://h/x</link></item><item><title>&bad"
    assert feed_links(broken, "http://h/f") == ["http://h/x"]


def test_a_hostile_feed_expands_no_entities_and_reads_no_local_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("NOT-FOR-THE-INDEX")
    nested = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    laughs = f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e0 "lol">{nested}]>'  # a billion "lol"s if expanded
    external = f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e9 SYSTEM "file://{secret}">]>'
    for prolog in (laughs, external):
        body = (prolog + '<rss version="2.0"><channel><item><title>&e9;</title><link>http://h/1</link>'
                "<description>&e9; and more</description></item></channel></rss>").encode()
        assert feed_links(body, "http://h/f") == ["http://h/1"]  # what can be read is still read
        parsed = feed_posts(body, "http://h/f")
        text = " ".join(f"{post.title} {post.text}" for post in parsed.posts)
        assert "NOT-FOR-THE-INDEX" not in text and "lollol" not in text and len(text) < 1000


def test_parse_datetime():
    assert parse_datetime("2026-02-03T22:14:00Z").isoformat() == "2026-02-03T22:14:00+00:00"
    assert parse_datetime("2026-02-03T17:14:00-05:00").isoformat() == "2026-02-03T22:14:00+00:00"
    assert parse_datetime("2026-02-03").isoformat() == "2026-02-03T00:00:00+00:00"
    assert parse_datetime("yesterday") is None and parse_datetime(None) is None


# --- run_crawl preconditions, settings, fixture site ---------------------------------------------------

def test_start_url_must_be_http_and_inside_the_tasking_domains():
    tasking = demo_tasking()
    check_start_url("http://127.0.0.1:8741/", tasking)
    for url in ["ftp://127.0.0.1/", "127.0.0.1/forum", "http://news.example.org/"]:
        with pytest.raises(FcmonError):
            check_start_url(url, tasking)
    wider = tasking.model_copy(update={"scope": tasking.scope.model_copy(update={"domains": ["example.org"]})})
    check_start_url("https://forum.example.org/", wider)  # a subdomain of a tasking domain


def test_scrapy_settings_follow_fcmon_settings():
    s = scrapy_settings(Settings(crawl_download_delay=1.5, crawl_page_limit=7, crawl_max_bytes=4096))
    assert (s["ROBOTSTXT_OBEY"], s["COOKIES_ENABLED"], s["DOWNLOAD_DELAY"], s["AUTOTHROTTLE_START_DELAY"]) == (True, False, 1.5, 1.5)
    assert (s["CLOSESPIDER_PAGECOUNT"], s["DOWNLOAD_MAXSIZE"]) == (7, 4096) and "fcmon" in s["USER_AGENT"]
    assert not s["TELNETCONSOLE_ENABLED"] and not s["REMOTE_CONTROL_ENABLED"]
    mws = s["DOWNLOADER_MIDDLEWARES"]
    assert mws["scrapy.downloadermiddlewares.cookies.CookiesMiddleware"] is None
    assert mws["scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware"] is None
    assert 600 < mws["crawlers.middlewares.LoginWallMiddleware"] < 700 and mws["crawlers.middlewares.PublicOnlyMiddleware"] == 990


def test_demo_site_reports_a_busy_port(site):
    with pytest.raises(FcmonError, match="busy"):
        DemoSite(port=site.port).start()
