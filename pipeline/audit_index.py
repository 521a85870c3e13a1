"""The audit indexer: consumer group `fcmon-audit-indexer` on fcm.audit, writing the audit mirror's entries into
the Elasticsearch audit alias (`fcmon-audit`), which only supervisors and administrators read (pipeline/gateway/).

Documents are created with `_id` = the entry's chain seq (op `create`, never `index`): a replay meets 409 and is
checked against the stored entry's hash, so replays never duplicate and an indexed audit entry is never overwritten
(a different entry under the same seq is a failure). Offsets are committed only after every item of the batch is
in; any item error leaves the batch uncommitted. Messages that are not a valid chain entry go to fcm.dead-letter.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable

from pipeline.audit import AuditEntry, canonical_json, entry_hash
from pipeline.bus import AUDIT, DEAD_LETTER, Bus, Message
from pipeline.bus.loop import CommittingLoop
from pipeline.errors import FcmonError
from pipeline.index.elasticsearch import (BULK_CHUNK, ElasticsearchIndex, bulk_body, bulk_retrying, connect, es_call,
                                          triage_bulk)
from pipeline.review import audit_document
from pipeline.settings import REPO_CONFIG_DIR, Settings

log = logging.getLogger(__name__)

AUDIT_ALIAS = "fcmon-audit"  # the alias the gateway guards (pipeline/gateway/ audit_alias)
AUDIT_TEMPLATE_FILE = REPO_CONFIG_DIR / "elasticsearch" / "audit-template.json"
GROUP = "fcmon-audit-indexer"


class ItemsRefused(FcmonError):
    """Some entries of a batch were not indexed: the batch stays uncommitted."""


# -- pure: messages to bulk actions ---------------------------------------------------------------

def entry_from_message(message: Message) -> AuditEntry:
    """The audit mirror's JSON (AuditEntry.to_dict()) back as an entry; ValueError unless it is a consistent chain entry."""
    try:
        raw = json.loads(message.value)
        entry = AuditEntry(seq=raw["seq"], at=raw["at"], kind=raw["kind"], actor=raw["actor"], payload=raw["payload"],
                           prev_hash=raw["prev_hash"], hash=raw["hash"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not an audit entry: {type(exc).__name__}: {exc}") from exc
    if not isinstance(entry.seq, int) or isinstance(entry.seq, bool) or entry.seq < 1 or not isinstance(entry.payload, dict):
        raise ValueError("not an audit entry: seq must be a positive integer and payload an object")
    if entry_hash(entry.seq, entry.at, entry.kind, entry.actor, canonical_json(entry.payload), entry.prev_hash) != entry.hash:
        raise ValueError(f"audit entry {entry.seq}: hash does not match its fields (altered in transit?)")
    return entry


def audit_action(entry: AuditEntry, index: str = AUDIT_ALIAS) -> dict[str, Any]:
    return {"_op_type": "create", "_index": index, "_id": str(entry.seq), "_source": audit_document(entry)}


def batch_actions(messages: list[Message], index: str = AUDIT_ALIAS
                  ) -> tuple[list[dict[str, Any]], list[tuple[Message, str]], list[str]]:
    """(create actions, one per seq; messages to dead-letter with why; conflicts: one seq with two different hashes)."""
    actions: dict[str, dict[str, Any]] = {}
    invalid: list[tuple[Message, str]] = []
    conflicts: list[str] = []
    for message in messages:
        try:
            action = audit_action(entry_from_message(message), index)
        except ValueError as exc:
            invalid.append((message, str(exc)))
            continue
        seen = actions.setdefault(action["_id"], action)
        if _hash(seen) != _hash(action):
            conflicts.append(f"{action['_id']}: two entries with this seq in one batch ({_hash(seen)[:12]}, {_hash(action)[:12]})")
    return list(actions.values()), invalid, conflicts


def _hash(action: dict[str, Any]) -> str:
    return action["_source"]["event"]["hash"]


def split_conflicts(actions: list[dict[str, Any]], response: dict[str, Any]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(actions refused with 409 because the id exists, the other actions, the response for those others)."""
    conflicts, others, items = [], [], []
    for action, item in zip(actions, response.get("items", [])):
        if next(iter(item.values())).get("status") == 409:
            conflicts.append(action)
        else:
            others.append(action)
            items.append(item)
    return conflicts, others, {"items": items}


def compare_existing(conflicts: list[dict[str, Any]], docs: list[dict[str, Any]]) -> list[str]:
    """One-line failures for ids already holding a different entry (an mget answer); identical ones are replays."""
    stored = {d["_id"]: d.get("_source", {}).get("event", {}).get("hash") for d in docs if d.get("found")}
    return [f"{a['_id']}: already indexed with hash {str(stored.get(a['_id']))[:12]}, this entry has {_hash(a)[:12]}"
            for a in conflicts if stored.get(a["_id"]) != _hash(a)]


# -- the Elasticsearch write ----------------------------------------------------------------------

class AuditIndexWriter:
    def __init__(self, client: Any, alias: str = AUDIT_ALIAS):
        self.client, self.alias = client, alias
        self._ensured = False

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditIndexWriter:
        if not settings.elasticsearch_url:
            raise FcmonError("the audit indexer needs an Elasticsearch URL", "set FCMON_ELASTICSEARCH_URL")
        return cls(connect(settings.elasticsearch_url, settings.elasticsearch_username,
                           settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else None))

    def ensure(self) -> None:
        """The audit template and <alias>-v1, installed on first use (as for records)."""
        if not self._ensured:
            ElasticsearchIndex(self.client, self.alias).ensure(AUDIT_TEMPLATE_FILE)
            self._ensured = True

    def write(self, actions: list[dict[str, Any]]) -> tuple[int, int]:
        """(created, already indexed); raises ItemsRefused naming every item that is not in, after trying the rest."""
        self.ensure()
        created = already = 0

        def send(pending: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
            nonlocal created, already
            response = dict(es_call(self.client.bulk, operations=bulk_body(pending)))
            conflicts, others, rest = split_conflicts(pending, response)
            retry, failed = triage_bulk(others, rest)
            created += len(others) - len(retry) - len(failed)
            if conflicts:
                docs = es_call(self.client.mget, index=self.alias, ids=[a["_id"] for a in conflicts],
                               source_includes=["event.hash"])["docs"]
                different = compare_existing(conflicts, docs)
                already += len(conflicts) - len(different)
                failed += different
            return retry, failed

        failures = bulk_retrying(actions, send, "audit_index.bulk.retry")
        if failures:
            for failure in failures:
                log.error("event=audit_index.item_failed seq_error=%r", failure)
            raise ItemsRefused(f"Elasticsearch did not index {len(failures)} of {len(actions)} audit entries "
                               f"(first: {failures[0]})",
                               "the batch was not committed and will be redelivered; fix the cause and run again")
        return created, already

    def close(self) -> None:
        self.client.close()


# -- the consumer loop ----------------------------------------------------------------------------

@dataclass
class AuditIndexStats:
    consumed: int = 0
    indexed: int = 0
    already_indexed: int = 0
    dead_lettered: int = 0
    batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditIndexer(CommittingLoop):
    """Until idle the first failure raises; as a service failures are retried with back-off."""
    event_prefix = "audit_index."
    group, topics = GROUP, [AUDIT]

    def __init__(self, bus: Bus, writer: AuditIndexWriter, batch_size: int = BULK_CHUNK,
                 progress: Callable[[dict[str, Any]], None] | None = None):
        super().__init__(progress)
        self.bus, self.writer, self.batch_size = bus, writer, batch_size
        self.stats = AuditIndexStats()

    def run(self, *, until_idle: bool) -> AuditIndexStats:
        self.run_loop(until_idle=until_idle)
        return self.stats

    def stats_dict(self) -> dict[str, Any]:
        return self.stats.to_dict()

    def process(self, batch: list[Message]) -> None:
        actions, invalid, conflicts = batch_actions(batch, self.writer.alias)
        if conflicts:
            raise ItemsRefused(f"fcm.audit holds {len(conflicts)} conflicting entries (first: {conflicts[0]})",
                               "two audit chains mirror into one topic; give each its own topic or cluster")
        created, already = self.writer.write(actions) if actions else (0, 0)
        for message, error in invalid:  # only once the batch is in, so a retried batch dead-letters nothing twice
            self.bus.produce(DEAD_LETTER, message.key, json.dumps({
                "error": error, "topic": message.topic, "partition": message.partition, "offset": message.offset,
                "value": message.value.decode("utf-8", "replace")}).encode())
            log.error("event=audit_index.dead_lettered topic=%s offset=%d error=%r", message.topic, message.offset, error)
        self.bus.flush()
        self.stats.consumed += len(batch)
        self.stats.indexed += created
        self.stats.already_indexed += already
        self.stats.dead_lettered += len(invalid)
        self.stats.batches += 1
