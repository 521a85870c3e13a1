"""Kafka bus (kafka-python): acks=all idempotent producer whose flush() raises on any failed send, and
group consumers with manual commits. Topic layout and tuning are documented in docs/kafka.md.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from pipeline.bus import AUDIT, COLLECTED, DEAD_LETTER, DECISIONS, REJECTED, RETENTION_MS, Message
from pipeline.errors import FcmonError
from pipeline.settings import Settings

try:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.errors import (CommitFailedError, KafkaConfigurationError, KafkaError, TopicAlreadyExistsError,
                              UnsupportedVersionError)
    from kafka.partitioner.default import DefaultPartitioner, murmur2
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise FcmonError("bus=kafka needs kafka-python", "pip install 'fcmon[kafka]' (kafka-python and crc32c)") from exc

log = logging.getLogger(__name__)

BROKER_HINT = "check that the brokers in FCMON_KAFKA_BOOTSTRAP_SERVERS are up and reachable"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int  # -1 keeps messages forever

    def new_topic(self) -> NewTopic:
        return NewTopic(self.name, self.partitions, 1, topic_configs={"retention.ms": str(self.retention_ms)})


# Partitions bound how many workers share a topic; retention bounds how long raw input (including content
# the guards later reject) sits on the bus. The audit mirror has one partition so the chain's order holds.
TOPICS = tuple(TopicSpec(name, partitions, RETENTION_MS[name])
               for name, partitions in ((COLLECTED, 6), (DECISIONS, 6), (REJECTED, 3), (AUDIT, 1), (DEAD_LETTER, 1)))


def _common(settings: Settings) -> dict[str, Any]:
    # A down broker must fail within the delivery timeout, not after kafka-python's 30 s backoff ladder.
    return {"bootstrap_servers": settings.kafka_bootstrap_servers.split(","), "client_id": settings.kafka_client_id,
            "bootstrap_timeout_ms": settings.kafka_delivery_timeout_ms, "reconnect_backoff_max_ms": 1000}


def _request_timeout_ms(settings: Settings) -> int:
    """Short enough that a delivery (linger + request + retries) fits in kafka_delivery_timeout_ms."""
    return max(500, min(30000, (settings.kafka_delivery_timeout_ms - settings.kafka_linger_ms) // 2))


def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS) -> dict[str, str]:
    """Create the topics that are missing (idempotent): {name: "created" | "exists"}."""
    try:
        admin = KafkaAdminClient(**_common(settings), request_timeout_ms=_request_timeout_ms(settings))
    except KafkaError as exc:
        raise FcmonError(f"Kafka at {settings.kafka_bootstrap_servers} is not reachable ({exc})", BROKER_HINT) from exc
    try:
        existing = set(admin.list_topics())
        result = {spec.name: "exists" for spec in specs if spec.name in existing}
        for spec in specs:
            if spec.name in existing:
                continue
            try:
                admin.create_topics([spec.new_topic()])
                log.info("event=kafka_topic_created topic=%s partitions=%d retention_ms=%d", spec.name, spec.partitions, spec.retention_ms)
                result[spec.name] = "created"
            except TopicAlreadyExistsError:  # another process created it meanwhile
                result[spec.name] = "exists"
        # The broker answers CreateTopics before the topics are in its metadata with a leader per partition (a
        # describe just after said UnknownTopicOrPartition): return when they can be used.
        admin.wait_for_topics([name for name, status in result.items() if status == "created"],
                              timeout_ms=settings.kafka_delivery_timeout_ms)
        return result
    except KafkaError as exc:
        raise FcmonError(f"Kafka topics could not be created ({exc})", BROKER_HINT) from exc
    finally:
        admin.close()


@functools.lru_cache(maxsize=65536)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


class KeyHashCachingPartitioner(DefaultPartitioner):
    """The default partitioner's choice (murmur2 of the key, as the Java client: other clients agree on partitions),
    remembering each key's hash: fcmon keys by source, a few keys in many messages, and kafka-python's pure-Python
    murmur2 was a third of the time the worker spent in `send`."""

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        partitions = cluster.partitions_for_topic(topic) if serialized_key is not None else None
        if not partitions:  # no key (random choice) or unknown topic (the default's error)
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        ordered = sorted(partitions)
        return ordered[_key_hash(serialized_key) % len(ordered)]


class KafkaBus:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._producer: KafkaProducer | None = None
        self._pending: list[Any] = []
        if settings.kafka_create_topics:
            create_topics(settings)

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._new_producer()
        return self._producer

    def _new_producer(self) -> KafkaProducer:
        s = self.settings
        config = {**_common(s), "acks": "all", "linger_ms": s.kafka_linger_ms, "batch_size": s.kafka_batch_size,
                  "compression_type": None if s.kafka_compression_type == "none" else s.kafka_compression_type,
                  "delivery_timeout_ms": s.kafka_delivery_timeout_ms, "max_block_ms": s.kafka_delivery_timeout_ms,
                  "request_timeout_ms": _request_timeout_ms(s), "retries": 2**31 - 1,
                  "partitioner": KeyHashCachingPartitioner()}
        try:
            if s.kafka_idempotence:
                try:
                    return KafkaProducer(**config, enable_idempotence=True)
                except UnsupportedVersionError as exc:
                    log.warning("event=kafka_idempotence_unavailable error=%r fallback=acks_all_one_in_flight", str(exc))
            return KafkaProducer(**config, enable_idempotence=False, max_in_flight_requests_per_connection=1)
        except KafkaConfigurationError as exc:
            raise FcmonError(f"invalid Kafka producer settings ({exc})", "fix the kafka_* settings (see docs/settings.md)") from exc
        except KafkaError as exc:
            raise FcmonError(f"Kafka at {s.kafka_bootstrap_servers} is not reachable ({exc})", BROKER_HINT) from exc

    def produce(self, topic: str, key: str | None, value: bytes) -> None:
        try:
            self._pending.append(self.producer.send(topic, key=key.encode() if key is not None else None, value=value))
        except KafkaError as exc:
            self._drop_producer(exc)
            raise FcmonError(f"Kafka refused a message for {topic} ({exc})", BROKER_HINT) from exc

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            self.producer.flush(timeout=self.settings.kafka_delivery_timeout_ms / 1000 + 5)
        except KafkaError as exc:
            self._drop_producer(exc)
            raise FcmonError(f"{len(pending)} message(s) not confirmed by Kafka ({exc})", BROKER_HINT) from exc
        failed = [f for f in pending if not f.succeeded()]
        if failed:
            first = failed[0].exception if failed[0].is_done else "not acknowledged in time"
            self._drop_producer(first)
            raise FcmonError(f"{len(failed)} of {len(pending)} message(s) were not written to Kafka ({first})", BROKER_HINT)

    def _drop_producer(self, error: object) -> None:
        """Close the producer after a failed send: the next send starts a new one (and a new producer id).

        A producer whose batch expired while the broker was away can stay stuck after the broker is back (its
        idempotent producer id reset to -1, later records never sent: every flush timed out), and a broker that lost
        its state refuses the old producer id for good, so a kept producer would fail every later batch. The caller
        retries the whole batch; deterministic ids make any duplicate harmless.
        """
        if self._producer is not None:
            log.warning("event=kafka_producer_reset error=%r", str(error))
            producer, self._producer = self._producer, None
            _abandon(producer)

    def consumer(self, group: str, topics: list[str]) -> KafkaBusConsumer:
        return KafkaBusConsumer(self.settings, group, topics)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._producer is not None:
                producer, self._producer = self._producer, None
                try:
                    producer.close(timeout=5)
                except KafkaError as exc:  # records produced but never flushed: this close is their only flush
                    _abandon(producer)
                    raise FcmonError(f"Kafka producer did not close cleanly ({exc})", BROKER_HINT) from exc


def _abandon(producer: KafkaProducer) -> None:
    """Close a producer without waiting for what it still holds.

    kafka-python's close() flushes first and raises KafkaTimeoutError when records are pending, before it stops the
    producer's I/O thread: the producer then lives on (and a reset that relied on close() kept the stuck producer).
    """
    try:
        producer.close(timeout=0)
    except KafkaError:
        sender = getattr(producer, "_sender", None)  # what close() would have force-closed next
        if sender is not None:
            sender.force_close()
            sender.join(5)


class _LogAssignments(ConsumerRebalanceListener):
    def __init__(self, group: str, checked: set[Any], first: dict[Any, int]):
        self.group, self.checked, self.first = group, checked, first

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("event=kafka_revoked group=%s partitions=%s", self.group, _names(revoked))
        self.checked.difference_update(revoked)  # checked again when assigned again
        for tp in revoked:
            self.first.pop(tp, None)

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("event=kafka_assigned group=%s partitions=%s", self.group, _names(assigned))


def _names(partitions: Any) -> str:
    return ",".join(sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)) or "none"


class KafkaBusConsumer:
    """A group member. poll() returns [] only once the member holds an assignment and has fetched it."""

    def __init__(self, settings: Settings, group: str, topics: list[str]):
        self.group, self.topics = group, topics
        self.join_timeout_s = 2 * settings.kafka_session_timeout_ms / 1000 + 10
        try:
            self._consumer = KafkaConsumer(
                **_common(settings), group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                session_timeout_ms=settings.kafka_session_timeout_ms, heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
                max_poll_interval_ms=settings.kafka_max_poll_interval_ms, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms)
        except KafkaError as exc:
            raise FcmonError(f"Kafka at {settings.kafka_bootstrap_servers} is not reachable ({exc})", BROKER_HINT) from exc
        self._checked: set[Any] = set()  # assigned partitions whose commit was checked against the log end
        self._first: dict[Any, int] = {}  # partition -> offset of the first message poll() returned since assigned
        self._consumer.subscribe(topics, listener=_LogAssignments(group, self._checked, self._first))
        self._created = time.monotonic()
        self._topic_ids: dict[str, Any] = {}
        self._recreated: set[str] = set()  # topics re-created while none of their partitions was assigned here
        self._next: dict[Any, int] = {}  # partition -> offset after the last message poll() returned
        self._fill_wait_s = max(settings.kafka_fetch_max_wait_ms, 10) / 1000

    def _check_logs(self) -> None:
        """Notice loudly a broker that lost data, and read what it has from the start.

        A topic with a new id (deleted and created again, or a broker restored without its data) or a commit
        beyond a partition's end (a log truncated under the group) means positions point into a log that is gone;
        a position below the new end would skip messages silently. Deterministic ids make the replay harmless.
        """
        assignment = self._consumer.assignment()
        cluster = getattr(self._consumer, "_cluster", None)  # kafka-python keeps topic ids there only
        for topic in self.topics:
            topic_id, prior = cluster.topic_id(topic) if cluster is not None else None, self._topic_ids.get(topic)
            if topic_id is None or topic_id == prior:
                continue
            self._topic_ids[topic] = topic_id
            if prior is None:
                continue
            lost = sorted((tp for tp in self._next if tp.topic == topic), key=lambda tp: tp.partition)
            log.error("event=kafka_log_lost group=%s topic=%s reason=topic_recreated old_id=%s new_id=%s positions=%s "
                      "action=read_from_start", self.group, topic, prior, topic_id,
                      ",".join(f"{tp.topic}:{tp.partition}@{self._next.pop(tp)}" for tp in lost) or "none")
            partitions = [tp for tp in assignment if tp.topic == topic]
            pending = self._not_read_from_start(partitions)
            if not partitions or (pending and not self._rewind(pending)):
                self._recreated.add(topic)  # mid-rebalance: rewind what this member is assigned next
        fresh = assignment - self._checked
        if not fresh:
            return
        if again := [tp for tp in fresh if tp.topic in self._recreated]:
            self._recreated -= {tp.topic for tp in again}
            self._rewind(self._not_read_from_start(again))
        committed = {tp: offset for tp in fresh if (offset := self._consumer.committed(tp))}
        ends = self._ends(committed) if committed else {}
        beyond = sorted((tp for tp in committed if committed[tp] > ends[tp]), key=lambda tp: (tp.topic, tp.partition))
        if beyond:
            log.error("event=kafka_log_lost group=%s reason=commit_beyond_end partitions=%s action=read_from_start",
                      self.group, ",".join(f"{tp.topic}:{tp.partition}@{committed[tp]}>end{ends[tp]}" for tp in beyond))
            # Kafka answers a fetch beyond the end with OffsetOutOfRange and the client has then already gone back to
            # the start (auto_offset_reset) and may have returned messages from there: rewinding again repeated them.
            self._rewind([tp for tp in beyond if self._beyond_end(tp, ends[tp])])
        self._checked.update(fresh)

    def _not_read_from_start(self, partitions: list[Any]) -> list[Any]:
        """Those not read from offset 0 since they were assigned. Kafka drops the group's commits for a deleted topic
        and answers a fetch beyond the end with OffsetOutOfRange, so the client itself has often gone back to the new
        log's start before the new topic id is seen here: rewinding those read the new log twice."""
        return [tp for tp in partitions if self._first.get(tp) != 0]

    def _beyond_end(self, tp: Any, end: int) -> bool:
        """Whether this member's position in tp is still beyond the partition's end (not reset by the client)."""
        if tp not in self._consumer.assignment():
            return False
        position = self._consumer.position(tp, timeout_ms=5000)
        return position is None or position > end

    def _rewind(self, partitions: list[Any]) -> bool:
        """Read partitions from their start; False when none of them is assigned (any more)."""
        try:
            if partitions:
                self._consumer.seek_to_beginning(*partitions)
                return True
        except ValueError:  # revoked meanwhile (the group is managed on kafka-python's IO thread)
            log.warning("event=kafka_rewind_skipped group=%s partitions=%s reason=revoked", self.group, _names(partitions))
        return False

    def _settled(self) -> bool:
        assignment = self._consumer.assignment()
        return bool(assignment) and all(self._consumer.highwater(tp) is not None for tp in assignment)

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        while True:
            # Past the deadline the group is still joining (or its first fetch is out): wait a fetch's time per poll,
            # not 1 ms, which spun thousands of empty polls (and cross-thread waits) through every join.
            timeout_ms = int((deadline - time.monotonic()) * 1000)
            if records := self._poll_checked(timeout_ms if timeout_ms > 0 else int(self._fill_wait_s * 1000), max_records):
                return self._fill(self._messages(records), max_records, max(deadline, time.monotonic() + self._fill_wait_s))
            if time.monotonic() >= deadline and (self._settled() or time.monotonic() - self._created > self.join_timeout_s):
                return []

    def _fill(self, messages: list[Message], max_records: int, until: float) -> list[Message]:
        """Top the batch up while more is buffered or arrives within a fetch wait: each batch costs an index commit.

        kafka-python returns what one fetch response holds, often a fraction of max_records.
        """
        while len(messages) < max_records and (remaining := until - time.monotonic()) > 0:
            try:
                more = self._poll_checked(max(1, int(min(remaining, self._fill_wait_s) * 1000)), max_records - len(messages))
            except FcmonError as exc:  # hand back what was taken (its position already moved); the next poll raises
                log.warning("event=kafka_fill_stopped group=%s error=%r", self.group, str(exc))
                break
            if not more:
                break
            messages += self._messages(more)
        return messages

    def _poll_checked(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        try:
            self._check_logs()
        except KafkaError as exc:  # the broker went away meanwhile: check again on the next poll
            log.warning("event=kafka_log_check_failed group=%s error=%r", self.group, str(exc))
        try:
            return self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise FcmonError(f"Kafka poll failed ({exc})", BROKER_HINT) from exc

    def _messages(self, records: dict[Any, list[Any]]) -> list[Message]:
        self._next.update({tp: batch[-1].offset + 1 for tp, batch in records.items()})
        for tp, batch in records.items():
            self._first.setdefault(tp, batch[0].offset)
        return [Message(r.topic, r.partition, r.offset, r.key.decode() if r.key is not None else None, r.value)
                for batch in records.values() for r in batch]

    def commit(self) -> None:
        try:
            self._consumer.commit()
        except CommitFailedError as exc:  # the group rebalanced: the new owner re-reads; ids make that harmless
            log.warning("event=kafka_commit_failed group=%s error=%r redelivery=expected", self.group, str(exc))
        except KafkaError as exc:
            raise FcmonError(f"Kafka commit failed ({exc})", BROKER_HINT) from exc

    def lag(self) -> int:
        """End offsets minus the group's commits, over every partition of the topics."""
        consumer = self._consumer
        try:
            partitions = [TopicPartition(t, p) for t in self.topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            committed = {tp: consumer.committed(tp) or 0 for tp in partitions}
            ends = self._ends(committed)
            return sum(max(0, ends[tp] - committed[tp]) for tp in partitions)
        except KafkaError as exc:
            raise FcmonError(f"Kafka lag could not be read ({exc})", BROKER_HINT) from exc

    def _ends(self, partitions) -> dict[Any, int]:
        """Each partition's end offset (ListOffsets: the high watermark on Apache Kafka)."""
        return {tp: end or 0 for tp, end in self._consumer.end_offsets(list(partitions)).items()}

    def wait(self, seconds: float) -> None:
        assignment = list(self._consumer.assignment())
        self._consumer.pause(*assignment)
        try:
            deadline = time.monotonic() + seconds
            while (remaining := deadline - time.monotonic()) > 0:
                try:  # polling keeps the worker in its group; with the broker down it is just a pause
                    records = self._consumer.poll(timeout_ms=int(min(remaining, 1.0) * 1000) or 1)
                except KafkaError as exc:
                    log.warning("event=kafka_wait_poll_failed group=%s error=%r", self.group, str(exc))
                    time.sleep(min(remaining, 1.0))
                    continue
                for tp, batch in records.items():  # a partition assigned meanwhile is not paused: give its records back
                    self._consumer.seek(tp, batch[0].offset)
        finally:
            self._consumer.resume(*[tp for tp in assignment if tp in self._consumer.assignment()])

    def close(self) -> None:
        self._consumer.close(autocommit=False)
