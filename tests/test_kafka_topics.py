"""The fcm.* topics as docs/kafka.md states them, read back from Apache Kafka after `fcmon bus create-topics`."""
from __future__ import annotations

import json
import re
from pathlib import Path

from kafka.admin import ConfigResource, ConfigResourceType

from pipeline.bus import DAY_MS
from pipeline.bus.kafka import TOPICS
from tests.broker import Broker, broker, clean_broker  # noqa: F401  (fixtures)
from tests.datadirs import fcmon

DOC = Path(__file__).resolve().parent.parent / "docs" / "kafka.md"


def documented() -> dict[str, dict[str, str]]:
    """{topic: {"partitions": "6", "retention.ms": "604800000"}} from the doc's table of topics."""
    topics = {}
    for name, partitions, retention in re.findall(r"^\| `(fcm\.[\w.-]+)` \| (\d+) \| ([^|]+?) \|", DOC.read_text(), re.M):
        days = re.fullmatch(r"(\d+) days?", retention)
        assert days or retention == "forever", f"docs/kafka.md: retention {retention!r} of {name} is not 'N days' or 'forever'"
        topics[name] = {"partitions": partitions, "retention.ms": str(int(days[1]) * DAY_MS) if days else "-1"}
    return topics


def documented_setting(pattern: str) -> str:
    found = re.search(pattern, DOC.read_text())
    assert found, f"docs/kafka.md no longer says {pattern!r}"
    return found[1]


def test_the_doc_names_every_topic_the_bus_creates():
    assert set(documented()) == {spec.name for spec in TOPICS}


def test_created_topics_have_the_partitions_retention_and_replication_the_doc_states(clean_broker: Broker):
    env = clean_broker.env(kafka_create_topics="false")  # the command creates them, not the bus it opens
    created = json.loads(fcmon("bus", "create-topics", "--json", env=env, check=True).stdout)
    assert {row["topic"]: row["status"] for row in created} == {name: "created" for name in documented()}
    again = json.loads(fcmon("bus", "create-topics", "--json", env=env, check=True).stdout)
    assert {row["status"] for row in again} == {"exists"}

    replication = documented_setting(r"Replication factor (\d+) here")
    cleanup = documented_setting(r"`cleanup\.policy=(\w+)`")
    min_isr = documented_setting(r"`min\.insync\.replicas` \((\d+) here\)")
    admin = clean_broker.admin()
    try:
        described = {t["name"]: t for t in admin.describe_topics(list(documented()))}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in documented()],
                                         config_filter="all")["topic"]
    finally:
        admin.close()
    for name, doc in documented().items():
        partitions = described[name]["partitions"]
        got = {"partitions": str(len(partitions)), "retention.ms": configs[name]["retention.ms"]["value"]}
        assert got == doc, f"{name}: the broker has {got}, docs/kafka.md says {doc}"
        assert {str(len(p["replica_nodes"])) for p in partitions} == {replication}, name
        assert configs[name]["cleanup.policy"]["value"] == cleanup, name
        assert configs[name]["min.insync.replicas"]["value"] == min_isr, name
