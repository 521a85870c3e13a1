"""The supervisors' query review page at a long audit log: ms per page through the web console over HTTP.

    .venv/bin/python bench/bench_review.py --queries 100000

Fills a fresh data directory's audit log with N queries as searches log them (a QueryEvent and its result; two
users, two taskings, over 90 days; one in 5,000 flagged by a supervisor), starts the web console on 127.0.0.1,
signs a supervisor in and times GET /review: the first page (the first read of the log), the same page again, a
filtered page, an older page, and the first page after 100 more queries; then, in a new process,
`fcmon audit list --kind query --flagged`. Only the console's URLs and the CLI are used, so the same script
measures an earlier commit (run it with PYTHONPATH pointing at a checkout of that commit).
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

from pipeline.app import App
from pipeline.datadir import DataDir
from pipeline.models import QueryEvent, Tasking, utcnow
from pipeline.passwords import hash_password
from pipeline.settings import Settings
from pipeline.web import Console, serve

PASSWORD = "bench password"
USERS = {"alice": "analyst", "dana": "analyst", "sam": "supervisor"}


def fill(app: App, queries: int, first: int = 0) -> None:
    now = utcnow()
    for i in range(first, first + queries):
        user, tasking = ("alice", "dana")[i % 2], ("T-1", "T-2")[i % 3 == 0]
        at = now - timedelta(days=90) + timedelta(days=90) * i / max(queries + first, 1)
        event = QueryEvent(id=f"q{i}", at=at, user=user, role="analyst", tasking_id=tasking, query=f"term{i % 997} cash",
                           interface="cli")
        app.audit.append("query", user, event.model_dump(mode="json"))
        app.audit.append("query.result", user, {"query_id": event.id, "at": at.isoformat(), "hits_total": i % 40,
                                                "returned_ids": [f"r{i}-{k}" for k in range(min(i % 40, 20))]})
        if i % 5_000 == 0:  # a supervisor flags one query in 5,000
            app.audit.append("query.review", "sam", {"query_id": event.id, "status": "flagged", "note": "why?",
                                                     "user": user, "tasking_id": tasking})
        if (i + 1) % 20_000 == 0:
            print(f"logged={i + 1}", flush=True)


def timed_get(opener: urllib.request.OpenerDirector, url: str) -> float:
    started = time.perf_counter()
    with opener.open(url, timeout=600) as answer:
        body = answer.read()
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status != 200 or b"Query review" not in body:
        raise SystemExit(f"GET {url} answered {answer.status} without the review page")
    return elapsed


def timed_cli(root: Path, *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipeline", "--data-dir", str(root), "--as", "sam", *args],
                            capture_output=True, text=True)
    elapsed = (time.perf_counter() - started) * 1000
    if result.returncode != 0 or not json.loads(result.stdout):
        raise SystemExit(f"fcmon {' '.join(args)} failed or listed nothing: {result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000, help="queries in the audit log")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fcmon-bench-review-"))
    try:
        DataDir(root).create()
        app = App(Settings(data_dir=root))
        for name, role in USERS.items():
            app.state.add_user(name, role)
            app.state.set_password_hash(name, hash_password(PASSWORD))
        now = utcnow()
        for tasking_id in ("T-1", "T-2"):
            app.state.put_tasking(Tasking(id=tasking_id, kind="criminal_predicate", case_number=f"C-{tasking_id}",
                                          requested_by="alice", approved_by="sam", team=["dana"],
                                          predicate="Reports RD-1 to RD-9 show forum users selling stolen converters.",
                                          criminal_activity="theft and sale of catalytic converters",
                                          approved_at=now - timedelta(days=100), expires_at=now + timedelta(days=30),
                                          scope={"domains": ["forum.example"], "keywords": ["converter"]}))
        started = time.perf_counter()
        fill(app, args.queries)
        print(f"logged {args.queries:,} queries in {time.perf_counter() - started:.1f} s", flush=True)

        server = serve(Console(app), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        opener.open(base + "/login", data=urllib.parse.urlencode({"name": "sam", "password": PASSWORD}).encode()).read()
        timings = {
            "first page, first read of the log": timed_get(opener, base + "/review"),
            "first page again": timed_get(opener, base + "/review"),
            "one user's unreviewed queries": timed_get(opener, base + "/review?user=dana&status=unreviewed"),
            "an older page (offset 5,000)": timed_get(opener, base + "/review?offset=5000"),
        }
        fill(app, 100, first=args.queries)
        timings["first page after 100 more queries"] = timed_get(opener, base + "/review")
        timings["CLI: the flagged queries (a new process)"] = timed_cli(root, "audit", "list", "--kind", "query", "--flagged",
                                                                       "--json")
        server.shutdown()
        server.server_close()
        app.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"queries": args.queries, "ms": {k: round(v, 1) for k, v in timings.items()}}, indent=2))


if __name__ == "__main__":
    main()
