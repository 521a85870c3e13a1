"""Benchmark continuous monitoring and standing queries.

    .venv/bin/python bench/bench_monitor.py [--interval 10] [--seconds 90] [--sources 5] [--idle-sources 100]
                                            [--idle-interval 5] [--records 2000] [--repeat 3] [--json]

1. Freshness: `fcmon monitor run` and `fcmon work` (subprocesses, local bus and index) on --sources fixture feeds on
   127.0.0.1 polled every --interval seconds; a new post is published on one of them every interval/3 s for --seconds;
   freshness = the record's indexed_at minus the post's publication time, p50/p95 over every post (what
   `fcmon monitor status` reports per source). Expect about interval/2 + the poll and worker latency.
2. Schedule and idle cost: --idle-sources unchanging feeds (every poll a robots.txt and a 304) polled every
   --idle-interval seconds for --seconds; reported: polls made against polls due, p95 lateness of a poll's start,
   the monitor's CPU seconds (utime+stime of its process) per poll, and the polls/s one process sustained; sources
   one process keeps on schedule at 60 s = sustained polls/s x 60 (valid while it kept up, lateness well under 1 s).
3. The worker's added cost per record for N = 0, 10, 100, 1,000 standing queries (single words, phrases, AND, OR,
   NOT, field prefixes) on the same --records items, at batch size 2000 (a backlog) and 20 (a trickle, as the monitor
   feeds it), each run on a fresh data directory, as a ratio to N = 0 in the same run: once with queries on words no
   record holds (`records_matched: none`, the cost of matching itself) and once on the items' own 20-word vocabulary
   (`most`: nearly every watch matches nearly every record, so each batch delivers N alerts, each audited; a worst case).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawlers.cursors import percentile  # noqa: E402
from guards.chain import GuardChain  # noqa: E402
from pipeline.app import App  # noqa: E402
from pipeline.bus import COLLECTED  # noqa: E402
from pipeline.datadir import DataDir  # noqa: E402
from pipeline.index.local import LocalIndex  # noqa: E402
from pipeline.models import utcnow  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.watches import Watches  # noqa: E402
from pipeline.worker import Worker  # noqa: E402
from tests.datadirs import FCMON, make_app  # noqa: E402
from tests.factories_pipeline import make_item, make_tasking  # noqa: E402
from tests.fixtures.live import LiveFeed  # noqa: E402

WORDS = ("converter catalytic theft rail yard stolen cash night truck hybrid saw buyer seller metal price garage "
         "district report wrench exhaust lot").split()
ENV = {"FCMON_CRAWL_ALLOW_HOSTS": "127.0.0.1", "FCMON_CRAWL_DOWNLOAD_DELAY": "0", "FCMON_MONITOR_MIN_INTERVAL": "0.5"}


def tasking():
    now = utcnow()
    return make_tasking(id="T-B", approved_at=now - timedelta(days=1), expires_at=now + timedelta(days=30),
                        scope={"domains": ["127.0.0.1"], "keywords": ["converter", "converters"]})


def env_for(data: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | ENV | {"FCMON_DATA_DIR": str(data)}


def sources_file(path: Path, feeds: list[LiveFeed], interval: float) -> Path:
    path.write_text("".join(f'[[source]]\nid = "feed{n}"\nkind = "feed"\ntasking = "T-B"\nurls = ["{f.url}/feed.atom"]\n'
                            f"interval = {interval}\nfollow_articles = false\n\n" for n, f in enumerate(feeds)))
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def statuses(data: Path) -> list[dict]:
    done = subprocess.run([*FCMON, "--as", "alice", "monitor", "status", "--json"], env=env_for(data),
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def freshness(args: argparse.Namespace, root: Path) -> dict:
    data = root / "fresh"
    feeds = [LiveFeed().start() for _ in range(args.sources)]
    make_app(data, tasking()).close()
    env = env_for(data)
    worker = subprocess.Popen([*FCMON, "work"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    monitor = subprocess.Popen([*FCMON, "--as", "alice", "monitor", "run", "--sources",
                                str(sources_file(root / "fresh.toml", feeds, args.interval))], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    published: dict[str, datetime] = {}
    rnd = random.Random(1)
    try:
        time.sleep(args.interval + 2)  # the first polls (nothing there yet)
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            feed = rnd.choice(feeds)
            n = feed.add(f"Converter report {len(published)}", f"Catalytic converter {len(published)} for sale at the rail yard.",
                         article=False)
            published[f"{feed.url}/articles/{n}"] = feed.posts[-1]["at"]
            time.sleep(args.interval / 3)
        time.sleep(args.interval + 10)  # the last posts polled and indexed
    finally:
        for proc in (monitor, worker):
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        for feed in feeds:
            feed.stop()
    index = LocalIndex(DataDir(data).index_dir)
    delays = []
    for record_id in index.ids():
        record = index.get(record_id)
        if record and record.url in published:
            delays.append((record.indexed_at - published[record.url]).total_seconds())
    return {"interval_s": args.interval, "sources": args.sources, "posts": len(published), "indexed": len(delays),
            "p50_s": round(percentile(delays, 50) or 0, 2), "p95_s": round(percentile(delays, 95) or 0, 2),
            "max_s": round(max(delays, default=0), 2)}


def schedule(args: argparse.Namespace, root: Path) -> dict:
    data = root / "idle"
    feeds = [LiveFeed(posts=1).start() for _ in range(args.idle_sources)]
    make_app(data, tasking()).close()
    monitor = subprocess.Popen([*FCMON, "--as", "alice", "monitor", "run", "--sources",
                                str(sources_file(root / "idle.toml", feeds, args.idle_interval))],
                               env=env_for(data), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(args.idle_interval + 5)  # the first (backfill) polls
        polls0, cpu0, t0 = sum(s["polls"] for s in statuses(data)), cpu_seconds(monitor.pid), time.monotonic()
        late: list[float] = []
        while time.monotonic() < t0 + args.seconds:
            time.sleep(args.idle_interval)
            late += [s["late_s"] for s in statuses(data) if s["polls"]]
        polls1, cpu1, t1 = sum(s["polls"] for s in statuses(data)), cpu_seconds(monitor.pid), time.monotonic()
    finally:
        monitor.send_signal(signal.SIGTERM)
        monitor.wait(120)
        answers = [a["status"] for f in feeds for a in f.answers if a["path"] == "/feed.atom"]
        for feed in feeds:
            feed.stop()
    polls, elapsed = polls1 - polls0, t1 - t0
    return {"sources": args.idle_sources, "interval_s": args.idle_interval, "polls": polls,
            "polls_due": round(args.idle_sources * elapsed / args.idle_interval), "late_p95_s": round(percentile(late, 95) or 0, 3),
            "cpu_ms_per_idle_poll": round((cpu1 - cpu0) / max(polls, 1) * 1000, 1), "polls_per_s": round(polls / elapsed, 1),
            "sources_at_60s": int(polls / elapsed * 60), "feed_answers_304": answers.count(304), "feed_answers_200": answers.count(200)}


ABSENT = [f"nomatch{n}" for n in range(50)]  # words no record holds: the pure cost of matching


def random_query(rnd: random.Random, words: list[str]) -> str:
    a, b, c = rnd.sample(words, 3)
    return rnd.choice([a, f'"{a} {b}"', f"{a} AND {b}", f"{a} OR {b}", f"{a} -{c}", f"title:{a}", f"({a} OR {b}) AND {c}"])


def worker_run(root: Path, records: int, batch: int, watches: int, words: list[str]) -> float:
    data = root / f"w{batch}-{watches}-{words[0]}"
    data.parent.mkdir(parents=True, exist_ok=True)
    app = make_app(data, tasking(), work_batch_size=batch)
    rnd = random.Random(7)
    store = Watches(app.state, app.audit, app.settings)
    for _ in range(watches):
        store.add(app.state.user("alice"), "T-B", random_query(rnd, words), None, "bench")
    for n in range(records):
        text = " ".join(rnd.choice(WORDS) for _ in range(60))
        item = make_item(tasking_id="T-B", url=f"https://127.0.0.1/post/{n}", title=f"{rnd.choice(WORDS)} converter {n}",
                         text=f"converter for sale {text}", fetched_at=utcnow() - timedelta(minutes=1))
        app.bus.produce(COLLECTED, item.source_id, item.model_dump_json().encode())
    app.bus.flush()
    worker = Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings),
                    watches=store if watches else None)
    started = time.perf_counter()
    stats = worker.run(until_idle=True)
    elapsed = time.perf_counter() - started
    assert stats.indexed == records, stats.to_dict()
    app.close()
    return elapsed


def watch_cost(args: argparse.Namespace, root: Path) -> list[dict]:
    runs = iter(range(1_000_000))

    def best(batch: int, n: int, words: list[str]) -> float:  # the least of --repeat runs: other load only adds
        return min(worker_run(root / str(next(runs)), args.records, batch, n, words) for _ in range(args.repeat))

    rows = []
    for batch in (2000, 20):
        base = best(batch, 0, ABSENT)
        rows.append({"batch": batch, "watches": 0, "ms_per_record": round(base / args.records * 1000, 3), "ratio": 1.0})
        for matching, words in (("none", ABSENT), ("most", list(WORDS))):
            for n in (10, 100, 1000):
                took = best(batch, n, words)
                rows.append({"batch": batch, "watches": n, "records_matched": matching,
                             "ms_per_record": round(took / args.records * 1000, 3),
                             "added_ms_per_record": round((took - base) / args.records * 1000, 3), "ratio": round(took / base, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--sources", type=int, default=5)
    parser.add_argument("--idle-sources", type=int, default=100)
    parser.add_argument("--idle-interval", type=float, default=5.0)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per worker configuration; the fastest counts")
    parser.add_argument("--only", choices=("freshness", "schedule", "watches"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        result = {}
        for name, run in (("freshness", freshness), ("schedule", schedule), ("watches", watch_cost)):
            if args.only in (None, name):
                result[name] = run(args, root)
                print(f"{name}: {json.dumps(result[name])}", file=sys.stderr, flush=True)
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {json.dumps(v)}" for k, v in result.items()))


if __name__ == "__main__":
    main()
