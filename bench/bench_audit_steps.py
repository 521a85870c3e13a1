"""Where an audited search's extra time goes: each step of pipeline.search timed in place, after real searches.

    .venv/bin/python bench/bench_audit_steps.py --n 200000 [--audit-fsync]

Builds the local index from bench_index.py's corpus, then for each query times the steps audited_search takes
around LocalIndex.search (new_event, the tasking lookup, authorization, the event's copy and dump, the QueryEvent
append; the QueryResult model and its append). A step that follows a search runs with the caches the search left.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import analyst_app, build  # noqa: E402

from pipeline.datadir import DataDir  # noqa: E402
from pipeline.models import QueryResult, utcnow  # noqa: E402
from pipeline.search import authorize_search, new_event  # noqa: E402

STEPS = ["new_event", "tasking lookup", "authorize", "event copy + dump", "QueryEvent append", "result model",
         "QueryResult append"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="posts to index")
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--audit-fsync", action="store_true", help="audit entries fsynced before the query runs (FCMON_AUDIT_FSYNC)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fcmon-bench-audit-"))
    try:
        data_dir = DataDir(root / "data")
        data_dir.create()
        _, corpus = build(data_dir.index_dir, args.n, 100_000)
        app, user = analyst_app(data_dir, args.audit_fsync)
        kinds = ["common", "mid", "rare"]
        queries = [corpus.query(kinds[i % 3]) for i in range(args.queries)]
        timings: dict[str, list[float]] = {step: [] for step in STEPS}
        for query in queries:
            marks = [time.perf_counter()]
            event = new_event(user, query.tasking_id, query.text, query.describe_filters(), "cli", "local")
            marks.append(time.perf_counter())
            tasking = app.state.tasking(query.tasking_id)
            marks.append(time.perf_counter())
            authorize_search(user, tasking)
            marks.append(time.perf_counter())
            payload = event.model_copy(update={"case_number": tasking.case_number}).model_dump(mode="json")
            marks.append(time.perf_counter())
            app.audit.append("query", user.name, payload)
            marks.append(time.perf_counter())
            page = app.index.search(query)
            marks.append(time.perf_counter())
            result = QueryResult(query_id=event.id, at=utcnow(), hits_total=page.total,
                                 returned_ids=[h.record.id for h in page.hits]).model_dump(mode="json")
            marks.append(time.perf_counter())
            app.audit.append("query.result", user.name, result)
            marks.append(time.perf_counter())
            steps = [b - a for a, b in zip(marks, marks[1:])]
            del steps[5]  # the search itself
            for step, seconds in zip(STEPS, steps):
                timings[step].append(seconds * 1e6)
        app.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.n:,} posts, {args.queries} queries; µs per query")
    print("| step | mean | median |")
    print("|---|---|---|")
    for step, values in timings.items():
        print(f"| {step} | {statistics.mean(values):.0f} | {statistics.median(values):.0f} |")
    total = sum(statistics.mean(v) for v in timings.values())
    print(f"| all | {total:.0f} | |")


if __name__ == "__main__":
    main()
