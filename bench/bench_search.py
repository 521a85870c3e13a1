"""Benchmark search with a purpose on the local index: build rate, latency, and the audit log's overhead.

    .venv/bin/python bench/bench_search.py --n 1000000 > /tmp/bench_search.out 2>&1

Uses bench_index.py's synthetic corpus (~600 B posts, Zipf vocabulary, four taskings). Measures, in one run:
- build rate of LocalIndex.upsert in batches of --batch (one commit each; generation time not counted);
- search latency p50/p95/p99 for 1-3 term queries with a 30-90 day range and a filter (top 20, relevance);
- audited (pipeline.search.audited_search: tasking lookup, authorization, QueryEvent before and QueryResult
  after, each a hash-chained SQLite append) against unaudited (LocalIndex.search) latency, on the same
  queries, alternating which runs first.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_index import TASKINGS, Corpus, disk_size, percentile  # noqa: E402

from pipeline.app import App  # noqa: E402
from pipeline.datadir import DataDir  # noqa: E402
from pipeline.index.local import LocalIndex  # noqa: E402
from pipeline.models import Tasking, utcnow  # noqa: E402
from pipeline.search import audited_search  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.state import User  # noqa: E402


def timed_batches(corpus: Corpus, n: int, batch: int, clock: list[float]) -> Iterator[list]:
    """Batches of synthetic records; the time spent generating them is added to clock[0] (not counted)."""
    for start in range(0, n, batch):
        began = time.perf_counter()
        records = corpus.records(start, min(batch, n - start))
        clock[0] += time.perf_counter() - began
        yield records
        print(f"generated={start + len(records)}", file=sys.stderr, flush=True)


def build(folder: Path, n: int, batch: int) -> tuple[float, Corpus]:
    corpus, generation = Corpus(), [0.0]
    index = LocalIndex(folder)
    began = time.perf_counter()
    for records in timed_batches(corpus, n, batch, generation):
        index.upsert(records)
    seconds = time.perf_counter() - began - generation[0]
    assert index.count() == n, index.count()
    index.close()
    return seconds, corpus


def analyst_app(data_dir: DataDir, audit_fsync: bool = False) -> tuple[App, User]:
    """The data directory opened with an analyst who requested the corpus's taskings, all active."""
    app = App(Settings(data_dir=data_dir.root, audit_fsync=audit_fsync))
    app.state.add_user("bench.analyst", "analyst")
    for tasking_id in TASKINGS:
        app.state.put_tasking(Tasking(id=tasking_id, kind="information_gathering", requested_by="bench.analyst",
                                      approved_by="bench.supervisor", approved_at=utcnow() - timedelta(days=1),
                                      expires_at=utcnow() + timedelta(days=30)))
    return app, app.state.user("bench.analyst")


def stats(values: list[float]) -> str:
    return f"{percentile(values, 50):.2f} | {percentile(values, 95):.2f} | {percentile(values, 99):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="posts to index (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=100_000, help="records per batch (per upsert call in the baseline)")
    parser.add_argument("--queries", type=int, default=600, help="queries to time (each run audited and unaudited)")
    parser.add_argument("--audit-fsync", action="store_true", help="audit entries fsynced before the query runs (FCMON_AUDIT_FSYNC)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="fcmon-bench-search-"))
    try:
        data_dir = DataDir(root / "data")
        data_dir.create()
        build_s, corpus = build(data_dir.index_dir, args.n, args.batch)
        size = disk_size(data_dir.index_dir)

        app, user = analyst_app(data_dir, args.audit_fsync)
        kinds = ["common", "mid", "rare"]
        queries = [(kinds[n % 3], corpus.query(kinds[n % 3])) for n in range(args.queries)]
        for _, query in queries[:30]:  # warm-up
            app.index.search(query)
        plain: dict[str, list[float]] = {k: [] for k in kinds}
        audited: dict[str, list[float]] = {k: [] for k in kinds}
        hits: dict[str, list[int]] = {k: [] for k in kinds}
        for n, (kind, query) in enumerate(queries):
            order = ("plain", "audited") if n % 2 == 0 else ("audited", "plain")
            for mode in order:
                began = time.perf_counter()
                if mode == "plain":
                    page = app.index.search(query)
                else:
                    _, page = audited_search(app.state, app.audit, app.index, user, query, interface="cli")
                (plain if mode == "plain" else audited)[kind].append((time.perf_counter() - began) * 1000)
            hits[kind].append(page.total)
        assert app.audit.verify().ok
        app.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    every_plain = [v for vs in plain.values() for v in vs]
    every_audited = [v for vs in audited.values() for v in vs]
    print(f"## Search with a purpose: local index (tantivy), {args.n:,} posts")
    print()
    print(f"Build: {args.n / build_s:,.0f} docs/s ({build_s:.1f} s; `upsert` per {args.batch:,} records, one commit each).")
    print()
    print(f"Index size {size / 1e6:,.0f} MB. {args.queries} queries of 1-3 terms, 30-90 day range, one filter, "
          "relevance, top 20 with highlights; each run unaudited and audited, alternating order.")
    print()
    print("| terms | queries | median hits | unaudited p50 ms | p95 | p99 | audited p50 ms | p95 | p99 | audited/unaudited (median per-query ratio) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind in kinds + ["all"]:
        p = every_plain if kind == "all" else plain[kind]
        a = every_audited if kind == "all" else audited[kind]
        h = [t for ts in hits.values() for t in ts] if kind == "all" else hits[kind]
        ratio = statistics.median(x / y for x, y in zip(a, p))
        print(f"| {kind} | {len(p)} | {statistics.median(h):,.0f} | {stats(p)} | {stats(a)} | {ratio:.2f} |")
    print()
    print(f"Audit overhead{' with every entry fsynced' if args.audit_fsync else ''} (mean audited / mean unaudited latency): {statistics.mean(every_audited) / statistics.mean(every_plain):.2f}; "
          f"absolute: +{statistics.mean(every_audited) - statistics.mean(every_plain):.2f} ms per query")


if __name__ == "__main__":
    main()
