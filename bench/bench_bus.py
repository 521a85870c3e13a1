"""Benchmark the bus: Kafka producer throughput and the worker end to end, Kafka against the local bus, in one run.

    .venv/bin/python bench/bench_bus.py --n 20000 [--runs 5] [--profile]

Starts Apache Kafka (tests/broker.py: pipeline/stack/kafka.py, the version in config/versions.env, KRaft, data on
disk) on 127.0.0.1, emptied of topics and groups before each worker measurement. Items are ~1 KB CollectedItems over 24 sources under one
approved tasking, all of which pass the guards (the worst case: every item is written to the index).
- producer: KafkaBus.produce of N items + flush (settings as shipped: acks=all, idempotent, linger/batch from
  Settings), once uncompressed and once with gzip;
- worker: the Worker with the default guard chain from fcm.collected into a fresh local index, until idle, on
  Kafka and on the local bus; the rate is counted from the first batch taken to the last one stored (the Kafka
  group join is reported apart; the wait that tells the worker it is idle, 0.3-0.5 s, is left out as the
  processes' figure leaves it out);
- worker processes: 1 and 2 `fcmon work --bus kafka` processes in one consumer group (2 = this machine's cores),
  started and assigned first, then N items produced; the rate counts from the first batch searchable in the index
  to the last (as the in-process figure counts from the first batch), index commits included; --runs repeats
  these two and prints median, min and max.
--profile prints the top functions of both in-process worker runs, Kafka then local (cProfile, main thread,
cumulative); it slows them, so their rates are not the benchmark's.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guards.chain import GuardChain  # noqa: E402
from pipeline.bus import COLLECTED  # noqa: E402
from pipeline.bus.kafka import KafkaBus  # noqa: E402
from pipeline.models import utcnow  # noqa: E402
from pipeline.worker import Worker  # noqa: E402
from tests.broker import Broker  # noqa: E402
from pipeline.index.local import LocalIndex  # noqa: E402
from tests.datadirs import FCMON, make_app  # noqa: E402
from tests.factories_pipeline import make_item, make_tasking  # noqa: E402

FILLER = ("Six catalytic converters cut last night, $150 each, cash only, pick up behind the yard on 5th. "
          "Ask for the guy with the blue truck; no questions, no receipts. ") * 3


def items(n: int) -> list[bytes]:
    now = utcnow()
    return [make_item(url=f"https://forum.example/post/{i}", source_id=f"forum.example/u{i % 24}",
                      text=f"Converter lot {i}. {FILLER}", fetched_at=now - timedelta(minutes=1)).model_dump_json().encode()
            for i in range(n)]


def tasking():
    now = utcnow()
    return make_tasking(approved_at=now - timedelta(days=1), expires_at=now + timedelta(days=30))


class TimedWorker(Worker):
    first_batch_at: float | None = None
    last_batch_stored_at = 0.0

    def process(self, batch):
        if self.first_batch_at is None:
            self.first_batch_at = time.perf_counter()
        super().process(batch)
        self.last_batch_stored_at = time.perf_counter()


def produce(bus, values: list[bytes]) -> float:
    start = time.perf_counter()
    for i, value in enumerate(values):
        bus.produce(COLLECTED, f"forum.example/u{i % 24}", value)
    bus.flush()
    return len(values) / (time.perf_counter() - start)


def empty(broker: Broker) -> None:
    """No topics and no groups: the next measurement's bus creates the fcm.* topics afresh."""
    broker.delete_topics()
    broker.delete_groups()


def work(app, profile: bool = False) -> tuple[float, float]:
    """(items/s from the first batch taken to the last one stored, seconds before the first batch)."""
    worker = TimedWorker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings))
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    stats = worker.run(until_idle=True)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    assert stats.indexed == stats.consumed, stats.to_dict()
    return stats.consumed / (worker.last_batch_stored_at - worker.first_batch_at), worker.first_batch_at - start


def work_in_processes(root: Path, broker: Broker, values: list[bytes], processes: int) -> float:
    """items/s through `processes` worker processes of one group, counted from the first batch in the index to the last."""
    app = make_app(root, tasking(), **broker.settings())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | broker.env(
        data_dir=root, log_level="INFO", work_group=f"bench-{processes}")
    workers = [subprocess.Popen([*FCMON, "work"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    logs: list[list[str]] = [[] for _ in workers]
    for worker, lines in zip(workers, logs):
        threading.Thread(target=lambda w=worker, ls=lines: ls.extend(iter(w.stderr.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while not all(any("event=kafka_assigned" in line for line in lines) for lines in logs):  # the group settled
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "".join(sum(logs, []))[-2000:]
            time.sleep(0.05)
        time.sleep(1.0)
        index = LocalIndex(root / "index")
        produce(app.bus, values)  # faster than the workers consume: they are never starved once the first batch is in
        while (first := index.count()) == 0:
            time.sleep(0.05)  # each count reloads the index: poll gently, the workers share these cores
        start = time.perf_counter()
        while index.count() < len(values):
            time.sleep(0.05)  # each count reloads the index: poll gently, the workers share these cores
        elapsed = time.perf_counter() - start
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    assert index.count() == len(values)
    app.close()
    return (len(values) - first) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--runs", type=int, default=1, help="times to run the 1- and 2-process measurements (their spread is wide)")
    args = parser.parse_args()
    values = items(args.n)
    print(f"items={args.n} bytes_per_item={sum(map(len, values)) // len(values)}")
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker().start()  # raises StackError saying what is missing (Java 17, Maven, Maven Central)
        try:
            for compression in ("none", "gzip"):
                app = make_app(Path(tmp) / f"p-{compression}", **broker.settings(kafka_compression_type=compression))
                bus = KafkaBus(app.settings)
                print(f"kafka producer compression={compression}: {produce(bus, values[: args.n // 2]):,.0f} items/s")
                bus.close()
            empty(broker)  # the worker reads exactly N
            app = make_app(Path(tmp) / "kafka", tasking(), **broker.settings())
            produce(app.bus, values)
            kafka_rate, join_s = work(app, profile=args.profile)
            print(f"worker kafka: {kafka_rate:,.0f} items/s (group join {join_s:.1f} s before the first batch)")
            app.close()
            rates: dict[int, list[float]] = {1: [], 2: []}
            for run in range(args.runs):
                for processes in (1, 2):
                    empty(broker)
                    rate = work_in_processes(Path(tmp) / f"kafka-{processes}p-{run}", broker, values, processes)
                    rates[processes].append(rate)
                    print(f"worker kafka, {processes} `fcmon work` process(es) in one group: {rate:,.0f} items/s "
                          "(first batch indexed to last)", flush=True)
            if args.runs > 1:
                for processes, measured in rates.items():
                    print(f"worker kafka, {processes} process(es), {args.runs} runs: median {statistics.median(measured):,.0f}, "
                          f"min {min(measured):,.0f}, max {max(measured):,.0f} items/s")
        finally:
            broker.remove()
        app = make_app(Path(tmp) / "local", tasking())
        produce(app.bus, values)
        local_rate, _ = work(app, profile=args.profile)
        print(f"worker local: {local_rate:,.0f} items/s")
        print(f"ratio kafka/local: {kafka_rate / local_rate:.2f}")
        app.close()


if __name__ == "__main__":
    main()
