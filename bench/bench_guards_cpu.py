"""The guard chain's items per CPU second (time.process_time, best of 3 passes after a warm-up), on the guard
benchmark's forum items (bench/bench_guards.py: English, ~1 KB) and on the labelled corpus with its held-out set
(tests/guard_corpus/: seven languages, short posts, five taskings with many keywords, 4 times over). CPU time, since
on a loaded host wall-clock rates swing by half; run it alternately on two versions to compare them.

    .venv/bin/python bench/bench_guards_cpu.py [--n 3000]
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_guards  # noqa: E402

from guards.base import GuardContext  # noqa: E402
from guards.chain import GuardChain  # noqa: E402
from pipeline.models import CollectedItem, Tasking, utcnow  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from tests.guard_corpus import CASES, HELDOUT, labelled_set  # noqa: E402


def rate(chain: GuardChain, items: list[CollectedItem], context: GuardContext) -> tuple[int, dict[str, int]]:
    for item in items[:200]:
        chain.apply(item, context)
    best = 0.0
    for _ in range(3):
        start = time.process_time()
        out = [chain.apply(item, context)[0].decision for item in items]
        best = max(best, len(items) / (time.process_time() - start))
    return round(best), {o: out.count(o) for o in sorted(set(out))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="benchmark items")
    args = parser.parse_args()
    settings, now = Settings(), utcnow()
    chain = GuardChain.from_settings(settings)
    tasking = Tasking(id="T-B", kind="criminal_predicate", case_number="B-1", requested_by="alice", approved_by="sam",
                      predicate="Reasonable suspicion, from theft reports RD-1 to RD-9, that forum users sell converters cut from cars.",
                      criminal_activity="theft and sale of stolen catalytic converters", approved_at=now - timedelta(days=1),
                      expires_at=now + timedelta(days=30), scope={"domains": ["forum.example"], "keywords": ["converter", "converters"]})
    context = GuardContext(taskings={tasking.id: tasking}, roles=bench_guards.ROLES, now=now, settings=settings)
    items = [CollectedItem.model_validate_json(r) for r in bench_guards.make_items(args.n, tasking)]
    print("benchmark items per CPU second, best of 3:", *rate(chain, items, context))
    taskings, users, _, _ = labelled_set(CASES)
    context = GuardContext(taskings={t["id"]: Tasking.model_validate(t) for t in taskings},
                           roles={u["name"]: u["role"] for u in users},
                           now=datetime(2026, 11, 21, 12, tzinfo=timezone.utc), settings=settings)
    corpus = [CollectedItem.model_validate(i) for d in (CASES, HELDOUT) for i in labelled_set(d)[2]] * 4
    print(f"corpus items ({len(corpus)}) per CPU second, best of 3:", *rate(chain, corpus, context))


if __name__ == "__main__":
    main()
