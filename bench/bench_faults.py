"""Faults, counted: `fcmon work` SIGKILLed at random points --count times in a row on each bus (the local SQLite bus,
Apache Kafka), with an audited `fcmon search` killed beside it each time; then items in = records out (none lost, none
duplicated), the quarantine and the rejections complete, a decision for every item, nothing left uncommitted and
`fcmon audit verify` ok. The series is tests/faults.py's, which tests/test_faults.py runs with a few rounds in CI.

    .venv/bin/python bench/bench_faults.py [--count 100] [--per-round 30] [--bus local,kafka] [--seed N] [--json FILE]

Kafka is started here (tests/broker.py: Maven Central, Java 17) and removed at the end. Exit status 1 when a check
failed.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.bus import COLLECTED, DECISIONS  # noqa: E402
from pipeline.models import utcnow  # noqa: E402
from tests.datadirs import make_app  # noqa: E402
from tests.factories_pipeline import make_tasking  # noqa: E402
from tests.faults import Expected, check_outcomes, group_lag, kill_series  # noqa: E402


def say(text: str) -> None:
    print(f"bench_faults: {text}", file=sys.stderr, flush=True)


def live_tasking():
    return make_tasking(approved_at=utcnow() - timedelta(days=1), expires_at=utcnow() + timedelta(days=30))


def local_series(scratch: Path, args: argparse.Namespace, rng: random.Random) -> dict:
    root = scratch / "local"
    app = make_app(root, live_tasking())
    env = {"FCMON_DATA_DIR": str(root), "FCMON_WORK_BATCH_SIZE": str(args.batch)}
    expected = Expected()
    watcher = app.bus.consumer(app.settings.work_group, [COLLECTED])  # never polls: reads the group's lag only
    series = kill_series(root, env, app.bus, expected, args.count, args.per_round, rng, watcher.lag, say=say)
    check = check_outcomes(root, env, expected, watcher.lag(),
                           lambda: [m.value for m in app.bus.consumer("bench-count", [DECISIONS]).poll(10**7, 0)])
    app.close()
    return {"series": series.to_dict(), "counts": check.counts, "problems": check.problems}


def kafka_series(scratch: Path, args: argparse.Namespace, rng: random.Random) -> dict:
    from pipeline.bus.kafka import KafkaBus
    from tests.broker import Broker

    broker = Broker()
    try:
        say("starting Apache Kafka")
        broker.start()
        root = scratch / "kafka"
        app = make_app(root, live_tasking(), **broker.settings())
        env = {"FCMON_DATA_DIR": str(root), "FCMON_WORK_BATCH_SIZE": str(args.batch), "FCMON_LOG_LEVEL": "INFO",
               **broker.env()}
        expected = Expected()
        bus = KafkaBus(app.settings)
        lag = group_lag(bus, app.settings.work_group)

        series = kill_series(root, env, bus, expected, args.count, args.per_round, rng, lag, ready="event=kafka_assigned",
                             say=say)
        check = check_outcomes(root, env, expected, lag(), lambda: [r.value for r in broker.records(DECISIONS)])
        bus.close()
        app.close()
        return {"series": series.to_dict(), "counts": check.counts, "problems": check.problems}
    finally:
        broker.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100, help="kills per bus")
    parser.add_argument("--per-round", type=int, default=30, help="items added before each worker start")
    parser.add_argument("--batch", type=int, default=5, help="the worker's batch size (FCMON_WORK_BATCH_SIZE)")
    parser.add_argument("--bus", default="local,kafka", help="comma-separated: local, kafka")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock, printed)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped bench still removes its broker and folders
    seed = args.seed if args.seed is not None else int(time.time())
    say(f"seed {seed}")
    results: dict[str, dict] = {}
    scratch = Path(tempfile.mkdtemp(prefix="fcmon-bench-faults-", dir="/tmp"))
    try:
        for bus in args.bus.split(","):
            say(f"{bus}: {args.count} kills, {args.per_round} items a round, batches of {args.batch}")
            run = {"local": local_series, "kafka": kafka_series}[bus]
            results[bus] = run(scratch, args, random.Random(f"{seed}-{bus}"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'bus':<6} {'kills':>5} {'mid-stream':>10} {'start-up':>8} {'items':>6} {'indexed':>7} {'held':>5} "
          f"{'rejected':>8} {'searches killed/done':>21} {'audit':>6} {'s':>6}  result")
    for bus, r in results.items():
        s, c = r["series"], r["counts"]
        print(f"{bus:<6} {s['kills']:>5} {s['kills_mid_stream']:>10} {s['kills_at_start']:>8} {s['items']:>6} "
              f"{c['indexed']:>7} {c['quarantined']:>5} {c['rejected']:>8} "
              f"{str(s['searches_killed']) + '/' + str(s['searches_done']):>21} {c['audit_entries']:>6} {s['seconds']:>6}  "
              f"{'ok' if not r['problems'] else 'FAILED: ' + '; '.join(r['problems'])}")
    if args.json:
        args.json.write_text(json.dumps({"seed": seed, **results}, indent=2))
    return 1 if any(r["problems"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
