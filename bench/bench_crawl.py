"""Benchmark the crawler: pages/min of fcmon's crawler (every public-only middleware, the site spider with text
extraction, the bus pipeline) beside `scrapy bench` and plain Scrapy, measured in the same run.

    .venv/bin/python bench/bench_crawl.py [--seconds 10] [--pages 5000]

Three runs, one after the other, each in its own process (the reactor runs once per process):
  1. `scrapy bench`: Scrapy's own command, its own server and link-following spider (no items).
  2. plain Scrapy: the same link-following spider, Scrapy's defaults, against our fixture site.
  3. fcmon: `crawlers.run.run_sources` with a `site` source against our fixture site, items onto a local bus.
The fixture site is --pages generated pages on 127.0.0.1 (Twisted, in its own process, like scrapy bench's
server), each ~1 KB of article text and 20 links to other pages. Fair settings for 2 and 3, as scrapy bench:
CONCURRENT_REQUESTS=16, CONCURRENT_REQUESTS_PER_DOMAIN=8, no download delay, AutoThrottle off,
CLOSESPIDER_TIMEOUT=--seconds; for fcmon also depth/page/trap limits raised so they do not end the run early.
robots.txt is obeyed by fcmon (the site serves one) and not by the plain spider. pages/min =
response_received_count / elapsed_time_seconds * 60.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = {"CONCURRENT_REQUESTS": 16, "CONCURRENT_REQUESTS_PER_DOMAIN": 8}

SERVE = r"""
import random, sys
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site
PAGES = int(sys.argv[1])
WORDS = "converter catalytic theft report street night police vehicle sale cash market public forum news city".split()
class Page(Resource):
    isLeaf = True
    def render_GET(self, request):
        path = request.path.decode()
        if path == "/robots.txt":
            request.setHeader(b"Content-Type", b"text/plain")
            return b"User-agent: *\nDisallow: /private/\n"
        n = int(path.rsplit("/", 1)[-1]) if path.startswith("/page/") and path.rsplit("/", 1)[-1].isdigit() else 0
        rnd = random.Random(n)
        text = " ".join(rnd.choice(WORDS) for _ in range(160))
        links = "".join(f"<li><a href='/page/{rnd.randrange(PAGES)}'>page</a></li>" for _ in range(20))
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return (f"<!DOCTYPE html><html><head><title>Page {n}</title></head><body><article><h1>Page {n}</h1>"
                f"<p>{text}</p></article><ul>{links}</ul></body></html>").encode()
port = reactor.listenTCP(0, Site(Page()), interface="127.0.0.1")
print(port.getHost().port, flush=True)
reactor.run()
"""

PLAIN = r"""
import json, sys
import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor
class Follow(scrapy.Spider):
    name = "follow"
    links = LinkExtractor()
    async def start(self):
        yield scrapy.Request(sys.argv[1] + "/page/0")
    def parse(self, response):
        for link in self.links.extract_links(response):
            yield scrapy.Request(link.url)
settings = json.loads(sys.argv[2])
process = CrawlerProcess(settings)
crawler = process.create_crawler(Follow)
process.crawl(crawler)
process.start()
s = crawler.stats.get_stats()
print(json.dumps({"pages": s.get("response_received_count", 0), "elapsed_s": s["elapsed_time_seconds"]}))
"""

FCMON = r"""
import json, sys
from pathlib import Path
from crawlers.run import Job, run_sources
from crawlers.sources import SiteSource
from pipeline.datadir import DataDir
from pipeline.models import Tasking
from pipeline.settings import Settings
url, data, seconds, tasking = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), Tasking.model_validate_json(sys.argv[4])
DataDir(data).create()
settings = Settings(data_dir=data, crawl_allow_hosts=["127.0.0.1"], crawl_download_delay=0, crawl_concurrency_per_domain=8,
                    crawl_depth_limit=20, crawl_page_limit=10**6, crawl_pages_per_domain=10**6, crawl_query_variants=10**6)
overrides = {"AUTOTHROTTLE_ENABLED": False, "CLOSESPIDER_TIMEOUT": seconds, **json.loads(sys.argv[5])}
[s] = run_sources(settings, DataDir(data), [Job(SiteSource.for_start_url(url + "/page/0"), tasking)], progress=False, overrides=overrides)
print(json.dumps({"pages": s["responses"], "elapsed_s": s["elapsed_s"], "items": s["items"], "refused": s["refused"]}))
"""


def scrapy_bench(seconds: float) -> dict:
    done = subprocess.run([sys.executable, "-m", "scrapy", "bench", "-s", f"CLOSESPIDER_TIMEOUT={seconds}"],
                          capture_output=True, text=True, cwd=tempfile.gettempdir(), timeout=300)
    pages = re.search(r"'response_received_count': (\d+)", done.stderr)
    elapsed = re.search(r"'elapsed_time_seconds': ([\d.]+)", done.stderr)
    if not pages or not elapsed:
        raise SystemExit(f"scrapy bench printed no stats:\n{done.stderr[-2000:]}")
    return {"pages": int(pages.group(1)), "elapsed_s": float(elapsed.group(1))}


def last_json(args: list[str]) -> dict:
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{args[:3]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def per_min(run: dict) -> float:
    return run["pages"] / run["elapsed_s"] * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="CLOSESPIDER_TIMEOUT of every run (scrapy bench's default: 10)")
    parser.add_argument("--pages", type=int, default=5000, help="pages of the fixture site")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.factories_pipeline import make_tasking
    from pipeline.models import utcnow
    from datetime import timedelta

    tasking = make_tasking(id="BENCH", approved_at=utcnow() - timedelta(days=1), expires_at=utcnow() + timedelta(days=1),
                           scope={"domains": ["127.0.0.1"]})
    runs = {"scrapy bench": scrapy_bench(args.seconds)}
    server = subprocess.Popen([sys.executable, "-u", "-c", SERVE, str(args.pages)], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        plain = {**CONCURRENCY, "CLOSESPIDER_TIMEOUT": args.seconds, "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False}
        runs["plain Scrapy, fixture site"] = last_json([sys.executable, "-c", PLAIN, url, json.dumps(plain)])
        with tempfile.TemporaryDirectory() as tmp:
            runs["fcmon crawler, fixture site"] = last_json([sys.executable, "-c", FCMON, url, str(Path(tmp) / "data"), str(args.seconds),
                                                             tasking.model_dump_json(), json.dumps(CONCURRENCY)])
    finally:
        server.kill()
        server.wait()
    base = per_min(runs["scrapy bench"])
    plain_rate = per_min(runs["plain Scrapy, fixture site"])
    print(f"{'run':<30} {'pages':>7} {'seconds':>8} {'pages/min':>10} {'vs scrapy bench':>16} {'vs plain Scrapy':>16}")
    for name, run in runs.items():
        rate = per_min(run)
        print(f"{name:<30} {run['pages']:>7} {run['elapsed_s']:>8.1f} {rate:>10.0f} {rate / base:>15.0%} {rate / plain_rate:>15.0%}")
    fc = runs["fcmon crawler, fixture site"]
    print(f"fcmon: items={fc['items']} refused={fc['refused']}")


if __name__ == "__main__":
    main()
