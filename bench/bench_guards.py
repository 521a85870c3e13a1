"""Benchmark the guard chain: items/s on one core for ~1 KB JSON items (parse + decide), and the chain's
share of the worker's per-item cost (the real worker on the local bus and index, same items).

The chain is timed twice: in passes over a list of parsed items, and inside the real worker, where each item is
decided right after it is parsed and between the worker's other work (its `apply` calls timed in place, ~0.1 µs a
call for the clock). The share of the worker's time is the second: what the chain costs where it runs.

    taskset -c 0 .venv/bin/python bench/bench_guards.py --n 20000 [--stages] [--repeat 5] [--chain-only]

The chain passes over the items --repeat times (median and best rate; these shared cores swing by a third from
minute to minute); --chain-only skips the worker, for counting instructions, which do not swing:
`valgrind --tool=callgrind .venv/bin/python bench/bench_guards.py --n 1000 --chain-only --repeat R` for R = 1 and 3,
the difference of the two totals over 2,000 is the chain's instructions per item.

Items are forum posts of ~1 KB JSON: most are in scope and indexed, some carry contact details
(masked), a few mention protests (rejected) or lack keywords (rejected), so every stage does work.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from guards.base import Guard, GuardContext
from guards.chain import GuardChain
from pipeline.app import App
from pipeline.bus import COLLECTED
from pipeline.datadir import DataDir
from pipeline.models import CollectedItem, GuardDecision, Tasking, utcnow
from pipeline.settings import Settings
from pipeline.worker import Worker

ROLES = {"alice": "analyst", "sam": "supervisor"}
FILLER = ("seller says the parts came off a fleet of vans near the yard and wants cash only, pickup after dark, "
          "no receipts, prices negotiable for bulk buyers who can move them quickly out of state ")
KINDS = ["plain post", "phone + email", "address + mention", "rally", "off-topic"]  # one per variant, in order
VARIANTS = [
    "Six catalytic converters, $150 each. {f}",
    "Converter lot for sale, text his cousin at 312-555-01{n:02d} or mail buddy{n}@mail.example. {f}",
    "Converters stacked at 4200 W Grand Ave, ask @bystander{n}. {f}",
    "Rally downtown about the converter thefts, bring signs. {f}",
    "Garden day at the park, volunteers wanted. {f}",
]


def make_items(n: int, tasking: Tasking) -> list[bytes]:
    rng = random.Random(7)
    now = utcnow()
    out = []
    for i in range(n):
        text = rng.choice(VARIANTS).format(f=FILLER * 3, n=i % 100)[:720]
        item = CollectedItem(tasking_id=tasking.id, source_kind="forum_post", source_id="forum.example", spider="site",
                             url=f"https://forum.example/post/{i}", fetched_at=now - timedelta(minutes=5),
                             request={"method": "GET", "headers": {"User-Agent": "fcmon/0.1", "Accept": "text/html"}},
                             response={"status": 200, "headers": {"Content-Type": "text/html"}}, robots_allowed=True,
                             login_wall_detected=False, title=f"Post {i}", text=text, author=f"user{i % 50}")
        out.append(item.model_dump_json().encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--stages", action="store_true", help="also print µs per stage, and per item kind, for 10,000 items")
    parser.add_argument("--repeat", type=int, default=5, help="passes of the chain over the items")
    parser.add_argument("--chain-only", action="store_true", help="measure the chain alone, not the parse nor the worker")
    args = parser.parse_args()
    now = utcnow()
    tasking = Tasking(id="T-B", kind="criminal_predicate", case_number="B-1", requested_by="alice", approved_by="sam",
                      predicate="Reasonable suspicion, from theft reports RD-1 to RD-9, that forum users sell converters cut from cars.",
                      criminal_activity="theft and sale of stolen catalytic converters", approved_at=now - timedelta(days=1),
                      expires_at=now + timedelta(days=30), scope={"domains": ["forum.example"], "keywords": ["converter", "converters"]})
    raw = make_items(args.n, tasking)
    settings = Settings()
    chain = GuardChain.from_settings(settings)
    context = GuardContext(taskings={tasking.id: tasking}, roles=ROLES, now=utcnow(), settings=settings)
    for r in raw[:500]:  # warm up caches and pattern compilation
        chain.apply(CollectedItem.model_validate_json(r), context)

    start = time.perf_counter()
    items = [CollectedItem.model_validate_json(r) for r in raw]
    parse_s = time.perf_counter() - start
    passes = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        outcomes = [chain.apply(item, context)[0].decision for item in items]
        passes.append(time.perf_counter() - start)
    chain_s = statistics.median(passes)
    n = args.n
    decided = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    if args.chain_only:
        print(json.dumps({"items": n, "outcomes": decided,
                          "chain_items_per_s_median": round(n / chain_s), "chain_items_per_s_best": round(n / min(passes))}))
        return

    with tempfile.TemporaryDirectory() as tmp:
        DataDir(Path(tmp)).create()
        app = App(Settings(data_dir=Path(tmp)))
        for name, role in ROLES.items():
            app.state.add_user(name, role)
        app.state.put_tasking(tasking)
        for r in raw:
            app.bus.produce(COLLECTED, "forum.example", r)
        app.bus.flush()
        timed = TimedChain(GuardChain.from_settings(app.settings).guards)
        worker = Worker(app.settings, app.bus, app.index, app.state, timed)
        start = time.perf_counter()
        stats = worker.run(until_idle=True)
        worker_s = time.perf_counter() - start
        app.close()

    if args.stages:
        stage_times(chain, items[:10_000], context)
    print(json.dumps({
        "items": n, "avg_item_bytes": round(sum(map(len, raw)) / n),
        "outcomes": decided,
        "parse_items_per_s": round(n / parse_s),
        f"chain_items_per_s_median_of_{args.repeat}": round(n / chain_s), "chain_items_per_s_best": round(n / min(passes)),
        "parse_plus_chain_items_per_s": round(n / (parse_s + chain_s)),
        "worker_items_per_s": round(n / worker_s), "worker_indexed": stats.indexed,
        "chain_in_worker_items_per_s": round(n / timed.seconds),
        "chain_share_of_worker_per_item": round(timed.seconds / worker_s, 3),
        "list_pass_chain_over_worker_time": round(chain_s / worker_s, 3),
    }, indent=2))


class TimedChain(GuardChain):
    """The chain, its time in `apply` summed: how long it takes inside the worker."""

    def __init__(self, guards: list[Guard]):
        super().__init__(guards)
        self.seconds = 0.0

    def apply(self, item: CollectedItem, context: GuardContext) -> tuple[GuardDecision, CollectedItem]:
        start = time.perf_counter()
        try:
            return super().apply(item, context)
        finally:
            self.seconds += time.perf_counter() - start


def stage_times(chain: GuardChain, items: list[CollectedItem], context: GuardContext) -> None:
    """µs per item in each stage's check (run as GuardChain.run runs them), and per item kind for the whole chain."""
    per_stage: dict[str, float] = {guard.rule: 0.0 for guard in chain.guards}
    per_kind: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for item in items:
        started, current = time.perf_counter(), item
        for guard in chain.guards:
            began = time.perf_counter()
            verdict = guard.check(current, context)
            per_stage[guard.rule] += time.perf_counter() - began
            if verdict.outcome == "reject":
                break
            current = verdict.item or current
        variant = next(i for i, v in enumerate(VARIANTS) if item.text.startswith(v.split("{")[0][:12]))
        per_kind[KINDS[variant]].append(time.perf_counter() - started)
    print("µs per item, by stage: " + ", ".join(f"{rule} {t / len(items) * 1e6:.1f}" for rule, t in per_stage.items()))
    print("µs per item, by kind: " + ", ".join(f"{kind} {sum(v) / len(v) * 1e6:.0f}" for kind, v in per_kind.items() if v))


if __name__ == "__main__":
    main()
