"""The guard/index worker: consumes fcm.collected, runs the guard chain, stores what it decides.

A batch's offsets are committed only after its outcomes are durable (index written, quarantine
written, rejections recorded), so a worker killed at any point loses nothing when restarted, and
deterministic record ids make the replay of an uncommitted batch harmless.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import ValidationError

from guards.base import GuardContext
from guards.chain import GuardChain
from pipeline.bus import COLLECTED, DEAD_LETTER, DECISIONS, REJECTED, Bus, Message
from pipeline.bus.loop import CommittingLoop
from pipeline.errors import first_error
from pipeline.index import Index
from pipeline.models import SCHEMA_VERSION, CollectedItem, GuardDecision, IndexedRecord, utcnow
from pipeline.settings import Settings
from pipeline.state import State
from pipeline.watches import Watches

log = logging.getLogger(__name__)

GIVE_UP_AFTER = 3
PROGRESS_EVERY_S = 1.0


@dataclass
class WorkStats:
    consumed: int = 0
    indexed: int = 0
    quarantined: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    alerts: int = 0
    rejected_by_rule: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {"consumed": self.consumed, "indexed": self.indexed, "quarantined": self.quarantined,
                "rejected": self.rejected, "dead_lettered": self.dead_lettered, "alerts": self.alerts,
                "rejected_by_rule": dict(sorted(self.rejected_by_rule.items())),
                "items_per_s": round(self.consumed / elapsed, 1)}


def to_record(item: CollectedItem, decision: GuardDecision) -> IndexedRecord:
    if not (decision.labels and decision.predicate):  # not an assert: `python -O` would store an unlabelled record
        raise ValueError(f"item {item.id} has no labels or recorded predicate: nothing unlabelled is stored")
    return IndexedRecord(
        id=item.id, tasking_id=item.tasking_id, source_kind=item.source_kind, source_id=item.source_id,
        url=item.url, final_url=item.final_url, title=item.title, text=item.text, author=item.author,
        published_at=item.published_at, fetched_at=item.fetched_at, content_sha256=item.content_sha256,
        labels=decision.labels, predicate=decision.predicate,
        pii_masked=decision.pii_masked, non_subject_identifiers=decision.non_subject_identifiers)


class Worker(CommittingLoop):
    """Until idle it gives up after GIVE_UP_AFTER attempts at a batch; a long-running worker retries for as long
    as the store is down, committing nothing, and resumes when it is back."""
    give_up_after = GIVE_UP_AFTER
    progress_every_s = PROGRESS_EVERY_S

    def __init__(self, settings: Settings, bus: Bus, index: Index, state: State, chain: GuardChain,
                 progress: Callable[[dict[str, Any]], None] | None = None, watches: Watches | None = None):
        super().__init__(progress)
        self.settings, self.bus, self.index, self.state, self.chain = settings, bus, index, state, chain
        self.watches = watches  # standing queries matched on each batch's indexed records (pipeline/watches.py)
        self.group, self.topics, self.batch_size = settings.work_group, [COLLECTED], settings.work_batch_size
        self.stats = WorkStats()

    def run(self, *, until_idle: bool) -> WorkStats:
        self.run_loop(until_idle=until_idle)
        return self.stats

    def stats_dict(self) -> dict[str, Any]:
        return self.stats.to_dict()

    def process(self, batch: list[Message]) -> None:
        context = GuardContext(taskings={t.id: t for t in self.state.taskings()}, roles=self.state.roles(),
                               now=utcnow(), settings=self.settings)
        records: list[IndexedRecord] = []
        held: list[tuple[CollectedItem, GuardDecision]] = []
        rejected: list[GuardDecision] = []
        # produced only once the batch's outcomes are stored: a failed attempt, retried, sends nothing twice
        outgoing: list[tuple[str, str | None, bytes]] = []
        stats = WorkStats()
        for message in batch:
            item = self._parse(message, stats, outgoing)
            if item is None:
                continue
            decision, stored = self.chain.apply(item, context)  # stored: as masked/labelled by the guards
            payload = decision.model_dump_json().encode()
            if decision.decision == "indexed":
                records.append(to_record(stored, decision))
                stats.indexed += 1
            elif decision.decision == "quarantined":
                held.append((stored, decision))
                stats.quarantined += 1
            else:
                rejected.append(decision)
                outgoing.append((REJECTED, message.key or decision.item_id, payload))
                stats.rejected += 1
                stats.rejected_by_rule[decision.reasons[0].rule] += 1
            outgoing.append((DECISIONS, message.key or decision.item_id, payload))  # the source: its order kept
        self.state.record_outcomes(held, rejected, self.settings.quarantine_days)  # one transaction per batch
        if records:
            self.index.upsert(records)
        if self.watches is not None:  # after the records are searchable, before the batch is committed
            stats.alerts = self.watches.deliver(records, context.taskings, context.now)
        for topic, key, value in outgoing:
            self.bus.produce(topic, key, value)
        self.bus.flush()
        self._add(stats, consumed=len(batch))

    def _parse(self, message: Message, stats: WorkStats, outgoing: list[tuple[str, str | None, bytes]]
               ) -> CollectedItem | None:
        try:
            item = CollectedItem.model_validate_json(message.value)
            if item.schema_version != SCHEMA_VERSION:
                raise ValueError(f"schema_version {item.schema_version} is not {SCHEMA_VERSION}")
            return item
        except (ValidationError, ValueError) as exc:
            error = first_error(exc, "item") if isinstance(exc, ValidationError) else str(exc)
            outgoing.append((DEAD_LETTER, message.key, json.dumps({
                "error": error, "topic": message.topic, "partition": message.partition, "offset": message.offset,
                "value": message.value.decode("utf-8", "replace")}).encode()))
            log.warning("dead-lettered topic=%s offset=%d error=%s", message.topic, message.offset, error)
            stats.dead_lettered += 1
            return None

    def _add(self, batch: WorkStats, consumed: int) -> None:
        self.stats.consumed += consumed
        self.stats.indexed += batch.indexed
        self.stats.quarantined += batch.quarantined
        self.stats.rejected += batch.rejected
        self.stats.dead_lettered += batch.dead_lettered
        self.stats.alerts += batch.alerts
        self.stats.rejected_by_rule.update(batch.rejected_by_rule)
