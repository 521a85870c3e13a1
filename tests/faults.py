"""Faults injected into real fcmon processes, and what must hold after each series. Shared by tests/test_faults.py (a
few rounds, in CI) and bench/bench_faults.py (--count rounds, on demand, counted).

A kill series: each round adds items to fcm.collected (mostly indexable, some the guards reject, some they
quarantine), starts `fcmon work` and an audited `fcmon search` beside it, and SIGKILLs both at a random point: while
the worker starts, or after it is ready at a random moment of its batches (batches of a few items, so kills land
between storing a batch and committing it). After the last round `fcmon work --until-idle` drains the rest, then
`check` compares what is stored with what went in.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

from pipeline.bus import COLLECTED, DECISIONS, Bus
from pipeline.index.local import LocalIndex
from pipeline.models import CollectedItem, utcnow
from pipeline.state import State
from tests.datadirs import FCMON
from tests.factories_pipeline import make_item

QUARANTINE_TEXT = "Rally at the yard, then we torch the converter yard"  # a protest with a crime: held for a supervisor
STARTED = "work: guards="  # the worker's first line: imports done, the chain built


@dataclass
class Expected:
    """The item ids each outcome must hold once, no more and no less."""
    indexed: set[str] = field(default_factory=set)
    quarantined: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.indexed) + len(self.quarantined) + len(self.rejected)


def round_items(number: int, per_round: int, expected: Expected) -> list[CollectedItem]:
    """A round's items, deterministic: every 10th rejected (robots disallowed), every 17th quarantined."""
    items = []
    for i in range(per_round):
        n = number * per_round + i
        fields = {"url": f"https://forum.example/post/{n}", "text": f"Converter number {n} for sale.",
                  "source_id": f"forum.example/u{n % 24}", "fetched_at": utcnow() - timedelta(minutes=1)}
        if n % 10 == 9:
            item = make_item(**fields, robots_allowed=False)
            expected.rejected.add(item.id)
        elif n % 17 == 16:
            item = make_item(**{**fields, "title": "Rally", "text": f"{QUARANTINE_TEXT} {n}"})
            expected.quarantined.add(item.id)
        else:
            item = make_item(**fields)
            expected.indexed.add(item.id)
        items.append(item)
    return items


def publish(bus: Bus, items: list[CollectedItem]) -> None:
    for it in items:
        bus.produce(COLLECTED, it.source_id, it.model_dump_json().encode())
    bus.flush()


def group_lag(bus: Bus, group: str) -> Callable[[], int]:
    """The consumer group's lag on fcm.collected, read by a consumer that never polls (so never joins the group)."""
    def lag() -> int:
        consumer = bus.consumer(group, [COLLECTED])
        try:
            return consumer.lag()
        finally:
            consumer.close()
    return lag


def clean_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | env


@dataclass
class Series:
    rounds: int = 0
    kills: int = 0
    kills_at_start: int = 0  # before the worker was ready to take batches
    kills_mid_stream: int = 0  # after it was, with items still uncommitted
    searches_killed: int = 0
    searches_done: int = 0
    lives_with_progress: int = 0
    items: int = 0
    drain_consumed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def kill_series(root: Path, env: dict[str, str], bus: Bus, expected: Expected, rounds: int, per_round: int,
                rng: random.Random, lag: Callable[[], int], max_after_start_s: float = 1.5,
                at_start_share: float = 0.2, ready: str = STARTED, say: Callable[[str], None] = lambda _: None) -> Series:
    """`rounds` rounds of: publish, start the worker and a search, SIGKILL both at a random point; then drain.

    `ready` is the worker's log line after which it takes batches (on Kafka: `event=kafka_assigned`, at log level
    INFO: a new member waits for the killed one's session to time out before it is given the partitions)."""
    series, started_at = Series(), time.monotonic()
    env = clean_env(env)
    index_dir = root / "index"
    logs = root.parent / f"{root.name}-logs"
    logs.mkdir(exist_ok=True)
    for number in range(rounds):
        items = round_items(number, per_round, expected)
        publish(bus, items)
        series.items += len(items)
        before = LocalIndex(index_dir).count() if (index_dir / "meta.json").exists() else 0
        log = logs / f"work-{number}.log"
        with log.open("wb") as err:
            worker = subprocess.Popen([*FCMON, "work"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        search = subprocess.Popen([*FCMON, "--as", "alice", "search", "converter", "--tasking", "T-1", "--json"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if rng.random() < at_start_share:
                time.sleep(rng.uniform(0, 2.0))  # somewhere in the start-up: imports, opening the stores, joining
            else:
                deadline = time.monotonic() + 60
                while ready not in log.read_text(errors="replace") and worker.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0, max_after_start_s))
            started = ready in log.read_text(errors="replace")
        finally:  # the kill, also when the bench itself is stopped meanwhile
            for proc in (worker, search):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            search.wait(timeout=30)
        if worker.returncode != -signal.SIGKILL:
            raise AssertionError(f"round {number}: the worker exited {worker.returncode} before the kill: "
                                 f"{log.read_text(errors='replace')[-2000:]}")
        series.kills += 1
        series.searches_killed += search.returncode == -signal.SIGKILL
        series.searches_done += search.returncode == 0
        remaining = lag()
        series.kills_at_start += not started
        series.kills_mid_stream += started and remaining > 0
        after = LocalIndex(index_dir).count() if (index_dir / "meta.json").exists() else 0
        series.lives_with_progress += after > before
        series.rounds += 1
        log.unlink()
        if number % 10 == 9 or number == rounds - 1:
            say(f"round {number + 1}/{rounds}: {series.kills_mid_stream} kills mid-stream, {series.kills_at_start} in "
                f"start-up, lag {remaining}, indexed {after}")
    done = subprocess.run([*FCMON, "work", "--until-idle", "--json"], env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"the draining worker exited {done.returncode}: {done.stderr[-2000:]}")
    series.drain_consumed = json.loads(done.stdout)["consumed"]
    series.seconds = round(time.monotonic() - started_at, 1)
    logs.rmdir()
    return series


@dataclass
class Check:
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def ids_once(what: str, got: list[str], want: set[str], check: Check) -> None:
    repeated = [i for i, n in Counter(got).items() if n > 1]
    missing, extra = want - set(got), set(got) - want
    check.counts[what] = len(got)
    if repeated or missing or extra:
        check.problems.append(f"{what}: {len(got)} stored for {len(want)} expected: {len(missing)} lost, "
                              f"{len(repeated)} duplicated, {len(extra)} unexpected")


def check_outcomes(root: Path, env: dict[str, str], expected: Expected, lag: int,
                   decisions: Callable[[], list[bytes]]) -> Check:
    """Items in = records out, the quarantine and the rejections complete, each once; a decision for every item; the
    group has committed everything; `fcmon audit verify` ok."""
    check = Check()
    ids_once("indexed", LocalIndex(root / "index").ids(), expected.indexed, check)
    state = State(root / "state.db")
    try:
        ids_once("quarantined", [r[0] for r in state.conn.execute("SELECT item_id FROM quarantine")], expected.quarantined, check)
        ids_once("rejected", [r[0] for r in state.conn.execute("SELECT item_id FROM rejections")], expected.rejected, check)
    finally:
        state.conn.close()
    decided = Counter(json.loads(value)["item_id"] for value in decisions())
    everything = expected.indexed | expected.quarantined | expected.rejected
    check.counts["decisions"] = sum(decided.values())
    check.counts["decided_more_than_once"] = sum(n > 1 for n in decided.values())
    if everything - set(decided):
        check.problems.append(f"decisions: {len(everything - set(decided))} items have none in {DECISIONS}")
    check.counts["lag"] = lag
    if lag:
        check.problems.append(f"the worker's group still lags by {lag}")
    verify = subprocess.run([*FCMON, "--as", "sam", "audit", "verify", "--json"], env=clean_env(env),
                            capture_output=True, text=True, timeout=120)
    try:
        verdict = json.loads(verify.stdout)
    except ValueError:
        verdict = {}
    check.counts["audit_entries"] = verdict.get("entries", -1)
    if verify.returncode != 0 or not verdict.get("ok"):
        check.problems.append(f"fcmon audit verify: exit {verify.returncode}: {verify.stdout[-500:]} {verify.stderr[-500:]}")
    return check
