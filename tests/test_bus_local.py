"""The local bus on real SQLite: durable topics, consumer-group offsets, at-least-once redelivery."""
from __future__ import annotations

import time

from pipeline.bus import AUDIT, COLLECTED
from pipeline.bus.local import LocalBus


def produce(bus, n, topic="fcm.collected"):
    for i in range(n):
        bus.produce(topic, f"k{i % 3}", f"v{i}".encode())
    bus.flush()


def test_messages_arrive_in_order_with_offsets(tmp_path):
    bus = LocalBus(tmp_path / "bus.db")
    produce(bus, 5)
    batch = bus.consumer("g", ["fcm.collected"]).poll(10, 0)
    assert [m.value for m in batch] == [f"v{i}".encode() for i in range(5)]
    assert [m.offset for m in batch] == list(range(5))


def test_committed_offsets_survive_a_restart_and_uncommitted_are_redelivered(tmp_path):
    bus = LocalBus(tmp_path / "bus.db")
    produce(bus, 6)
    consumer = bus.consumer("g", ["fcm.collected"])
    assert len(consumer.poll(3, 0)) == 3
    consumer.commit()
    assert len(consumer.poll(2, 0)) == 2  # polled but never committed: a crash here loses nothing
    bus.close()

    reopened = LocalBus(tmp_path / "bus.db").consumer("g", ["fcm.collected"])
    assert [m.offset for m in reopened.poll(10, 0)] == [3, 4, 5]
    assert reopened.lag() == 3


def test_groups_are_independent_and_topics_separate(tmp_path):
    bus = LocalBus(tmp_path / "bus.db")
    produce(bus, 2)
    produce(bus, 1, topic="fcm.rejected")
    assert len(bus.consumer("a", ["fcm.collected"]).poll(10, 0)) == 2
    assert len(bus.consumer("b", ["fcm.collected"]).poll(10, 0)) == 2
    assert bus.count("fcm.rejected") == 1


def test_poll_waits_for_new_messages_up_to_its_timeout(tmp_path):
    bus = LocalBus(tmp_path / "bus.db")
    assert bus.consumer("g", ["fcm.collected"]).poll(10, 0.1) == []


def test_messages_past_their_topics_retention_are_deleted(tmp_path):
    bus = LocalBus(tmp_path / "bus.db")
    bus.produce(COLLECTED, "k", b"content the guards rejected")
    bus.produce(AUDIT, "k", b"an audit entry")
    bus.flush()
    assert bus.expire(now=time.time() + 6 * 24 * 3600) == 0  # within fcm.collected's week
    assert bus.expire(now=time.time() + 8 * 24 * 3600) == 1
    assert bus.count(COLLECTED) == 0 and bus.count(AUDIT) == 1  # the audit mirror is kept for ever


def test_messages_after_an_expiry_get_offsets_past_every_committed_position(tmp_path):
    bus = LocalBus(tmp_path / "bus.db")
    for n in range(5):
        bus.produce(COLLECTED, "k", b"old %d" % n)
    bus.flush()
    consumer = bus.consumer("workers", [COLLECTED])
    assert len(consumer.poll(10, 0.1)) == 5
    consumer.commit()
    assert bus.expire(now=time.time() + 8 * 24 * 3600) == 5  # the topic is empty now
    bus.produce(COLLECTED, "k", b"new")
    bus.flush()
    assert [m.value for m in consumer.poll(10, 0.1)] == [b"new"]  # not numbered 0, below the group's position
