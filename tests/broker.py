"""Apache Kafka for tests: a single-node KRaft broker (pipeline.stack.kafka) in a folder under /tmp, on 127.0.0.1.

Its data is on disk: `stop()` then `start()` is the same broker on the same ports with its topics, messages and the
groups' commits. Without Java or Maven these tests skip, saying how to enable them (tests/stack.py); with
FCMON_REQUIRE_STACK=1 they fail instead.
"""
from __future__ import annotations

import shutil
import time
from typing import Any, Iterator

import pytest

from pipeline.settings import Settings
from pipeline.stack import StackError, free_port  # noqa: F401  (tests/test_web.py takes free_port from here)
from pipeline.stack.kafka import Kafka
from tests.stack import require_java_and_maven, stack_dir, unavailable

# Test clients' group timings (docs/kafka.md lists them). 6000 ms is the broker's smallest session timeout
# (group.min.session.timeout.ms); with group.initial.rebalance.delay.ms=0 a join takes well under a second anyway,
# and only a member that dies without leaving keeps its partitions that long.
FAST_GROUP = {"kafka_session_timeout_ms": 6000, "kafka_heartbeat_interval_ms": 1000, "kafka_fetch_max_wait_ms": 50}


class Broker:
    """One Apache Kafka; `stop(kill=True)` is a crash (SIGKILL), `stop()` a clean shutdown, either keeps the data."""

    def __init__(self, port: int | None = None):
        self.home = stack_dir("fcmon-kafka-")
        self.kafka = Kafka(self.home, port=port)

    @property
    def port(self) -> int:
        return self.kafka.port

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    def settings(self, **overrides) -> dict[str, object]:
        """Settings fields for a client of this broker (pass to Settings(...) or make_app)."""
        return {"bus": "kafka", "kafka_bootstrap_servers": self.bootstrap, **FAST_GROUP, **overrides}

    def env(self, **overrides: str) -> dict[str, str]:
        return {f"FCMON_{k.upper()}": str(v) for k, v in self.settings(**overrides).items()}

    def start(self) -> Broker:
        self.kafka.start()
        return self

    def stop(self, kill: bool = False) -> None:
        self.kafka.stop(kill=kill)

    def remove(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def admin(self):
        from kafka import KafkaAdminClient
        return KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="fcmon-test-admin")

    def delete_topics(self, topics: tuple[str, ...] | None = None, timeout: float = 30) -> None:
        """Delete the topics that exist (all but the broker's own when None) and wait until none is listed."""
        admin = self.admin()
        try:
            listed = set(admin.list_topics())
            present = [t for t in listed if not t.startswith("__")] if topics is None else [t for t in topics if t in listed]
            if present:
                admin.delete_topics(present)
            deadline = time.monotonic() + timeout
            while set(present) & set(admin.list_topics()):
                assert time.monotonic() < deadline, f"topics {present} still listed {timeout} s after their deletion"
                time.sleep(0.1)
        finally:
            admin.close()

    def delete_groups(self) -> None:
        """Delete every consumer group without members (one a test left a member in stays; its topics are gone)."""
        admin = self.admin()
        try:
            groups = [g["group_id"] for g in admin.list_groups()]
            if groups:
                admin.delete_groups(groups)
        finally:
            admin.close()

    def records(self, topic: str) -> list[Any]:
        """Every record in `topic`, read from each partition's start to its end by a consumer outside any group."""
        from kafka import KafkaConsumer, TopicPartition
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            assert partitions, f"the broker does not know {topic}"
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            got: list[Any] = []
            deadline = time.monotonic() + 60
            while any(consumer.position(tp) < ends[tp] for tp in partitions):
                assert time.monotonic() < deadline, f"{topic} not read to its end in 60 s"
                got += [r for batch in consumer.poll(timeout_ms=500).values() for r in batch]
            return got
        finally:
            consumer.close(autocommit=False)


def started_broker() -> Broker:
    """A running broker, or the test skips (fails under FCMON_REQUIRE_STACK=1) saying what is missing."""
    require_java_and_maven()
    b = Broker()
    try:
        return b.start()
    except StackError as exc:
        b.remove()
        unavailable(str(exc))
        raise  # unreachable: unavailable() skips or fails


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """One broker per test module (tests on it use their own topics or groups)."""
    b = started_broker()
    yield b
    b.remove()


@pytest.fixture
def clean_broker(broker: Broker) -> Iterator[Broker]:
    """The module's broker without topics or groups: a test's fcmon creates the fcm.* topics afresh."""
    broker.delete_topics()
    broker.delete_groups()
    yield broker


def kafka_settings(broker: Broker, **overrides) -> Settings:
    return Settings(**broker.settings(**overrides))


@pytest.fixture
def fresh_broker() -> Iterator[Broker]:
    """A broker of this test's own, for tests that stop, kill or restart it."""
    b = started_broker()
    yield b
    b.remove()
