"""The Bus port's contract, run against every adapter: the local SQLite log and Kafka (Apache Kafka, tests/broker.py)."""
from __future__ import annotations

import time
import uuid
from collections import defaultdict

import pytest

from pipeline.bus import Bus, Consumer, Message
from pipeline.bus import DAY_MS
from pipeline.bus.kafka import KafkaBus, TopicSpec, create_topics
from pipeline.bus.local import LocalBus
from tests.broker import broker, kafka_settings  # noqa: F401  (fixture)


@pytest.fixture(params=["local", "kafka"])
def bus_topic(request, tmp_path):
    """(bus, a fresh topic with 3 partitions where the adapter has partitions)."""
    topic = f"contract.{uuid.uuid4().hex[:8]}"
    if request.param == "local":
        bus: Bus = LocalBus(tmp_path / "bus.db")
    else:
        settings = kafka_settings(request.getfixturevalue("broker"))
        create_topics(settings, (TopicSpec(topic, 3, DAY_MS),))
        bus = KafkaBus(settings)
    yield bus, topic
    bus.close()


def drain(consumer: Consumer, n: int, timeout_s: float = 20) -> list[Message]:
    """Poll until n messages arrived (or fail), then make sure no more come."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got += consumer.poll(n - len(got), 0.5)
    assert len(got) == n, f"{len(got)} of {n} messages arrived"
    assert consumer.poll(10, 0.3) == []
    return got


def produce(bus: Bus, topic: str, values: list[str], key=lambda i: f"k{i % 3}") -> None:
    for i, v in enumerate(values):
        bus.produce(topic, key(i), v.encode())
    bus.flush()


def group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def test_messages_keep_key_value_and_per_key_order(bus_topic):
    bus, topic = bus_topic
    produce(bus, topic, [f"m{i}" for i in range(30)])
    bus.produce(topic, None, b"keyless")
    bus.flush()
    consumer = bus.consumer(group(), [topic])
    got = drain(consumer, 31)
    consumer.close()
    by_key = defaultdict(list)
    for m in got:
        assert m.topic == topic
        by_key[m.key].append(m.value.decode())
    assert by_key[None] == ["keyless"]
    for k in range(3):
        assert by_key[f"k{k}"] == [f"m{i}" for i in range(k, 30, 3)]


def test_a_poll_fills_its_batch_across_partitions_up_to_max_records(bus_topic):
    """Each worker batch costs an index commit: a poll takes what waits (up to max_records), not one fetch's worth."""
    bus, topic = bus_topic
    big = [f"b{i}:" + "x" * 400_000 for i in range(6)]  # 2.4 MB on one key: more than one Kafka fetch returns
    produce(bus, topic, big, key=lambda i: "big")
    produce(bus, topic, [f"m{i}" for i in range(30)])
    consumer = bus.consumer(group(), [topic])
    first = consumer.poll(20, 20)
    rest = consumer.poll(20, 5)
    consumer.close()
    assert (len(first), len(rest)) == (20, 16)
    assert sorted(m.value.decode() for m in first + rest) == sorted(big + [f"m{i}" for i in range(30)])


def test_a_group_resumes_after_its_last_commit(bus_topic):
    bus, topic = bus_topic
    g = group()
    produce(bus, topic, [f"a{i}" for i in range(10)])
    first = bus.consumer(g, [topic])
    drain(first, 10)
    first.commit()
    first.close()
    produce(bus, topic, [f"b{i}" for i in range(5)])
    second = bus.consumer(g, [topic])
    assert sorted(m.value.decode() for m in drain(second, 5)) == [f"b{i}" for i in range(5)]
    second.close()


def test_what_was_not_committed_is_delivered_again(bus_topic):
    bus, topic = bus_topic
    g = group()
    produce(bus, topic, [f"a{i}" for i in range(10)])
    first = bus.consumer(g, [topic])
    drain(first, 10)
    first.close()
    second = bus.consumer(g, [topic])
    assert len(drain(second, 10)) == 10
    second.close()


def test_lag_counts_what_the_group_has_not_committed_and_groups_are_independent(bus_topic):
    bus, topic = bus_topic
    produce(bus, topic, [f"a{i}" for i in range(12)])
    reader, other = bus.consumer(group(), [topic]), bus.consumer(group(), [topic])
    assert reader.lag() == 12
    drain(reader, 12)
    assert reader.lag() == 12, "polled but uncommitted messages still count"
    reader.commit()
    assert reader.lag() == 0
    assert other.lag() == 12 and len(drain(other, 12)) == 12
    reader.close(), other.close()


def test_wait_takes_nothing_and_polling_goes_on_after_it(bus_topic):
    bus, topic = bus_topic
    produce(bus, topic, ["a0", "a1"])
    consumer = bus.consumer(group(), [topic])
    drain(consumer, 2)
    produce(bus, topic, ["b0", "b1", "b2"])
    consumer.wait(0.5)
    assert sorted(m.value.decode() for m in drain(consumer, 3)) == ["b0", "b1", "b2"]
    consumer.close()


def test_flush_with_nothing_pending_returns(bus_topic):
    bus, _ = bus_topic
    bus.flush()
