"""Benchmark the local index: build rate, size on disk and search latency on synthetic posts.

    .venv/bin/python bench/bench_index.py --n 200000

Posts are ~600 bytes drawn from a synthetic vocabulary with a Zipf-like word distribution
(common and rare terms), over a few taskings, sources and authors, with timestamps over a year.
Queries have 1-3 terms, a time range and a filter, sorted by relevance, top 20, and go through
LocalIndex.search (so latency includes loading the records and building highlights).
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from pipeline.index import SearchQuery
from pipeline.index.local import LocalIndex
from pipeline.models import IndexedRecord, Labels, RecordedPredicate, record_id, sha256_hex

TASKINGS = ["T-alpha", "T-bravo", "T-charlie", "T-delta"]
SOURCE_KINDS = ["forum_post", "mastodon_post", "feed_entry", "web_page", "reddit_post"]
SENSITIVITIES = ["public", "sensitive_but_unclassified", "law_enforcement_sensitive"]
YEAR_START = datetime(2025, 1, 1, tzinfo=timezone.utc)
RARITY = {"common": (0, 50), "mid": (50, 5_000), "rare": (5_000, 50_000)}  # ranks of the vocabulary
SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"] + ["an", "el", "is", "or", "un", "ax", "th", "qu"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    ordered = []
    while len(ordered) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 3, 4))))
        if word not in words:
            words.add(word)
            ordered.append(word)
    return ordered


class Corpus:
    """Deterministic synthetic posts: word i of the vocabulary has weight 1 / (i + 1) ** 1.07."""

    def __init__(self, vocab_size: int = 50_000, seed: int = 7):
        self.rng = random.Random(seed)
        self.words = vocabulary(vocab_size, self.rng)
        weights = [1 / (rank + 1) ** 1.07 for rank in range(vocab_size)]
        # a pool of Zipf-distributed words; each post is a slice at a random offset
        self.pool = self.rng.choices(self.words, weights=weights, k=4_000_000)
        self.authors = [f"user{i}" for i in range(2_000)]
        self.sources = [f"site{i}.example" for i in range(50)]
        self.labels = [
            Labels(sensitivity=s, source_reliability="unknown", content_validity="cannot_be_judged",
                   submitting_agency="Bench Fusion Center", control_official="bench.official",
                   criminal_intelligence=ci, review_by=date(2026, 6, 1), purge_by=date(2030, 6, 1))
            for s in SENSITIVITIES for ci in (False, True)]
        self.rank = {word: rank for rank, word in enumerate(self.words)}
        self.samples: list[IndexedRecord] = []  # every 500th post: queries are drawn from real posts
        self.predicates = {
            t: RecordedPredicate(tasking_id=t, kind="information_gathering", approved_by="bench.supervisor",
                                 approved_at=YEAR_START) for t in TASKINGS}

    def text(self, target_bytes: int) -> str:
        start = self.rng.randrange(len(self.pool) - 200)
        words, size = [], 0
        for word in self.pool[start:start + 200]:
            words.append(word)
            size += len(word) + 1
            if size >= target_bytes:
                break
        return " ".join(words)

    def records(self, start: int, count: int) -> list[IndexedRecord]:
        rng = self.rng
        out = []
        for n in range(start, start + count):
            tasking = TASKINGS[n % len(TASKINGS)]
            source = rng.choice(self.sources)
            url = f"https://{source}/post/{n}"
            title = self.text(40)
            text = self.text(rng.randint(500, 640))
            sha = sha256_hex(f"{title}\n{text}")
            moment = YEAR_START + timedelta(seconds=rng.randrange(365 * 86400))
            out.append(IndexedRecord.model_construct(
                id=record_id(tasking, url, sha), tasking_id=tasking, source_kind=rng.choice(SOURCE_KINDS),
                source_id=source, url=url, final_url=url, title=title, text=text,
                author=rng.choice(self.authors), published_at=moment, fetched_at=moment + timedelta(hours=1),
                content_sha256=sha, labels=rng.choice(self.labels), predicate=self.predicates[tasking],
                indexed_at=moment + timedelta(hours=2)))
            if n % 500 == 0:
                self.samples.append(out[-1])
        return out

    def query(self, kind: str) -> SearchQuery:
        """1-3 words of one rarity class taken from one indexed post, so every query has at least one hit."""
        rng = self.rng
        low, high = RARITY[kind]
        while True:
            post = rng.choice(self.samples)
            candidates = sorted({w for w in f"{post.title} {post.text}".split() if low <= self.rank[w] < high})
            if candidates:
                break
        terms = rng.sample(candidates, min(len(candidates), rng.randint(1, 3)))
        days = rng.randint(30, 90)
        start = post.timestamp - timedelta(days=rng.randint(0, days - 1), hours=1)
        filters = rng.choice([{"source_kind": post.source_kind}, {"sensitivity": post.labels.sensitivity}])
        return SearchQuery(text=" ".join(terms), tasking_id=post.tasking_id, filters=filters,
                           time_from=start, time_to=start + timedelta(days=days), sort="relevance", limit=20)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def disk_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="posts to index (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=100_000, help="records per upsert call (one commit each)")
    parser.add_argument("--queries", type=int, default=300, help="search queries to time")
    parser.add_argument("--dir", type=Path, help="index folder (default: a temporary folder, removed afterwards)")
    args = parser.parse_args()

    folder = args.dir or Path(tempfile.mkdtemp(prefix="fcmon-bench-")) / "index"
    corpus = Corpus()
    index = LocalIndex(folder)
    try:
        build_seconds, generate_seconds, payload = 0.0, 0.0, 0
        for start in range(0, args.n, args.batch):
            began = time.perf_counter()
            batch = corpus.records(start, min(args.batch, args.n - start))
            generate_seconds += time.perf_counter() - began
            payload += sum(len(r.title) + len(r.text) for r in batch)
            began = time.perf_counter()
            index.upsert(batch)
            build_seconds += time.perf_counter() - began
            print(f"indexed={start + len(batch)} build_s={build_seconds:.1f}", flush=True)
        assert index.count() == args.n, index.count()
        size = disk_size(folder)

        kinds = ["common", "mid", "rare"]
        for _ in range(20):  # warm-up
            index.search(corpus.query("common"))
        latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
        totals: dict[str, list[int]] = {kind: [] for kind in kinds}
        for n in range(args.queries):
            kind = kinds[n % len(kinds)]
            query = corpus.query(kind)
            began = time.perf_counter()
            page = index.search(query)
            latencies[kind].append((time.perf_counter() - began) * 1000)
            totals[kind].append(page.total)
    finally:
        index.close()
        if args.dir is None:
            shutil.rmtree(folder.parent, ignore_errors=True)

    every = [v for values in latencies.values() for v in values]
    print()
    print(f"## Local index (tantivy): {args.n:,} posts, {payload / args.n:.0f} B of title+text each, "
          f"batches of {args.batch:,}")
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| build rate (upsert calls only) | {args.n / build_seconds:,.0f} docs/s ({build_seconds:.1f} s) |")
    print(f"| synthetic generation (not counted) | {generate_seconds:.1f} s |")
    print(f"| index size on disk | {size / 1e6:,.0f} MB ({size / args.n:.0f} B/doc) |")
    print()
    print(f"Search: {args.queries} queries of 1-3 terms, a 30-90 day range, one filter, relevance, top 20 "
          "(LocalIndex.search, records and highlights included)")
    print()
    print(f"Rarity = rank of a term among {len(corpus.words):,} words: " +
          ", ".join(f"{kind} {low:,}-{high:,}" for kind, (low, high) in RARITY.items()) +
          ". Terms come from one indexed post, so every query has at least one hit.")
    print()
    print("| terms | queries | median hits | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for kind in kinds + ["all"]:
        values = every if kind == "all" else latencies[kind]
        hits = [t for ts in totals.values() for t in ts] if kind == "all" else totals[kind]
        print(f"| {kind} | {len(values)} | {statistics.median(hits):,.0f} | {percentile(values, 50):.2f} | "
              f"{percentile(values, 95):.2f} | {percentile(values, 99):.2f} |")


if __name__ == "__main__":
    main()
