"""The audit indexer (`fcmon audit index-es`): bulk actions from the audit mirror's messages, and the consumer loop
on a real LocalBus against a stand-in Elasticsearch on 127.0.0.1 that keeps what it is sent.

The stand-in of tests/test_es_adapter.py (FakeCluster) answers every id with 429 first and knows no templates,
aliases, `create` conflicts or _mget, so this one stores documents by id as a cluster does. Live tier:
FCMON_ELASTICSEARCH_URL set (and FCMON_ELASTICSEARCH_PASSWORD for a secured cluster)."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pipeline.audit import LocalAuditLog
from pipeline.audit_index import (AUDIT_ALIAS, AUDIT_TEMPLATE_FILE, GROUP, AuditIndexer, AuditIndexWriter, ItemsRefused,
                                  batch_actions, entry_from_message)
from pipeline.audit_mirror import MirroredAuditLog
from pipeline.bus import AUDIT, DEAD_LETTER, Message
from pipeline.bus.local import LocalBus
from pipeline.index.elasticsearch import load_template
from tests.datadirs import fcmon, make_app
from tests.factories_es import FakeElasticsearch
from tests.servers import serving
from tests.test_es_adapter import mapped_paths

MAPPING = load_template(AUDIT_TEMPLATE_FILE)["template"]["mappings"]
PATHS = mapped_paths(MAPPING["properties"])
TYPES = {"keyword": str, "text": str, "date": str, "long": int, "boolean": bool}


def mirrored(tmp_path: Path, bus: LocalBus) -> MirroredAuditLog:
    """The real audit mirror, producing to fcm.audit on a LocalBus exactly as it does on Kafka."""
    return MirroredAuditLog(LocalAuditLog(tmp_path / "audit.db", tmp_path / "audit.head"), lambda: bus)


def append_sample(log: MirroredAuditLog) -> None:
    log.append("tasking.approve", "sam", {"tasking_id": "T-1", "case_number": "C-9"})
    log.append("query", "alice", {"id": "q1", "at": "2026-11-20T10:00:00+00:00", "user": "alice", "role": "analyst",
                                  "interface": "kibana", "client": "10.0.0.5", "tasking_id": "T-1", "query": "stolen pallets",
                                  "filters": {"author": "bob"}})
    log.append("query.result", "alice", {"query_id": "q1", "hits_total": 3, "ids": ["a", "b", "c"]})
    log.append("audit.read", "sam", {"method": "GET", "path": "/fcmon-audit/_search", "client": "10.0.0.6"})


def audit_messages(tmp_path: Path) -> list[Message]:
    bus = LocalBus(tmp_path / "bus.db")
    append_sample(mirrored(tmp_path, bus))
    return bus.consumer("t", [AUDIT]).poll(100, 0)


def leaves(doc: dict, prefix: str = "") -> dict[str, object]:
    found: dict[str, object] = {}
    for name, value in doc.items():
        path = prefix + name
        if isinstance(value, dict) and path not in PATHS:
            found |= leaves(value, path + ".")
        else:
            found[path] = value
    return found


# -- pure parts -----------------------------------------------------------------------------------

def test_the_template_is_strict_and_keeps_payloads_unindexed():
    assert MAPPING["dynamic"] == "strict"
    assert PATHS["event.sequence"]["type"] == "long" and PATHS["fcm.payload"]["enabled"] is False


def test_actions_create_one_document_per_entry_keyed_by_seq(tmp_path):
    messages = audit_messages(tmp_path)
    actions, invalid, conflicts = batch_actions(messages)
    assert (invalid, conflicts) == ([], [])
    assert [a["_id"] for a in actions] == ["1", "2", "3", "4"] == [m.key for m in messages]
    assert {a["_op_type"] for a in actions} == {"create"} and {a["_index"] for a in actions} == {AUDIT_ALIAS}
    assert batch_actions(messages) == batch_actions(messages)
    query = actions[1]["_source"]
    assert query["event"] == {"kind": "query", "sequence": 2, "hash": json.loads(messages[1].value)["hash"]}
    assert query["user"] == {"name": "alice", "roles": ["analyst"]} and query["client"] == {"address": "10.0.0.5"}
    assert query["fcm"]["query_id"] == "q1" and query["fcm"]["query"] == "stolen pallets"
    assert actions[2]["_source"]["fcm"]["hits_total"] == 3


def test_every_document_field_is_mapped_with_its_type(tmp_path):
    for action in batch_actions(audit_messages(tmp_path))[0]:
        for path, value in leaves(action["_source"]).items():
            assert path in PATHS, path
            spec = PATHS[path]
            if spec.get("type") in TYPES:
                values = value if isinstance(value, list) else [value]
                assert all(isinstance(v, TYPES[spec["type"]]) for v in values), (path, value)


def test_replays_in_one_batch_collapse_and_bad_messages_are_set_aside(tmp_path):
    messages = audit_messages(tmp_path)
    good = json.loads(messages[0].value)
    forged = Message(AUDIT, 0, 10, "1", json.dumps({**good, "actor": "mallory"}).encode())
    junk = Message(AUDIT, 0, 11, None, b"not json")
    actions, invalid, conflicts = batch_actions([messages[0], messages[0], junk])
    assert len(actions) == 1 and conflicts == [] and invalid[0][1].startswith("not an audit entry")
    with pytest.raises(ValueError, match="hash does not match"):
        entry_from_message(forged)


# -- the stand-in cluster -------------------------------------------------------------------------

class AuditCluster(FakeElasticsearch):
    """Stores documents by id per index; `create` of an existing id is 409; ids in `refuse` get a 400 mapping error."""
    docs: dict[str, dict] = {}
    bulks: list[list[str]] = []
    refuse: set[str] = set()
    aliases: set[str] = set()
    templates: dict[str, dict] = {}

    def _body(self) -> str:
        return self.read_body().decode()

    def do_HEAD(self) -> None:  # noqa: N802  exists_alias
        name = urlsplit(self.path).path.rsplit("/", 1)[-1]
        self.answer(200 if name in self.aliases else 404)

    def do_PUT(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path == "/_bulk":
            return self.do_POST()
        body = json.loads(self._body() or "{}")
        if path.startswith("/_index_template/"):
            self.templates[path.rsplit("/", 1)[-1]] = body
        else:
            self.aliases.update(body.get("aliases", {}))
        self.answer(200, {"acknowledged": True})

    def do_POST(self) -> None:  # noqa: N802
        path, body = urlsplit(self.path).path, self._body()
        if path.endswith("/_mget"):
            ids = json.loads(body)["ids"]
            return self.answer(200, {"docs": [{"_id": i, "found": i in self.docs, **(
                {"_source": {"event": {"hash": self.docs[i]["event"]["hash"]}}} if i in self.docs else {})} for i in ids]})
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        items, ids = [], []
        for meta, source in zip(lines[::2], lines[1::2]):
            (op, target), = meta.items()
            ids.append(target["_id"])
            if target["_id"] in self.refuse:
                items.append({op: {"_id": target["_id"], "status": 400,
                                   "error": {"type": "document_parsing_exception", "reason": "strict mapping"}}})
            elif op == "create" and target["_id"] in self.docs:
                items.append({op: {"_id": target["_id"], "status": 409,
                                   "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}})
            else:
                self.docs[target["_id"]] = source
                items.append({op: {"_id": target["_id"], "status": 201}})
        self.bulks.append(ids)
        self.answer(200, {"took": 1, "errors": any(next(iter(i.values()))["status"] >= 300 for i in items), "items": items})


@pytest.fixture
def cluster():
    from elasticsearch import Elasticsearch
    handler = type("Cluster", (AuditCluster,), {"docs": {}, "bulks": [], "refuse": set(), "aliases": set(), "templates": {}})
    with serving(handler) as url:
        handler.url, handler.writer = url, AuditIndexWriter(Elasticsearch(url))
        yield handler


def test_every_entry_is_indexed_once_and_committed(tmp_path, cluster):
    bus = LocalBus(tmp_path / "bus.db")
    append_sample(mirrored(tmp_path, bus))
    stats = AuditIndexer(bus, cluster.writer).run(until_idle=True)
    assert (stats.consumed, stats.indexed, stats.already_indexed, stats.dead_lettered) == (4, 4, 0, 0)
    assert sorted(cluster.docs) == ["1", "2", "3", "4"] and cluster.bulks == [["1", "2", "3", "4"]]
    assert cluster.docs["2"]["fcm"]["query"] == "stolen pallets"
    assert AUDIT_ALIAS in cluster.templates and cluster.templates[AUDIT_ALIAS]["index_patterns"] == [f"{AUDIT_ALIAS}-*"]
    assert AUDIT_ALIAS in cluster.aliases
    assert bus.consumer(GROUP, [AUDIT]).lag() == 0


def test_a_replay_is_harmless_and_new_entries_follow(tmp_path, cluster):
    bus = LocalBus(tmp_path / "bus.db")
    log = mirrored(tmp_path, bus)
    append_sample(log)
    AuditIndexer(bus, cluster.writer).run(until_idle=True)
    for message in bus.consumer("replay", [AUDIT]).poll(100, 0):  # the mirror re-sends everything (e.g. a gap fill)
        bus.produce(AUDIT, message.key, message.value)
    log.append("query.review", "sam", {"query_id": "q1", "status": "reviewed", "note": "", "user": "alice", "tasking_id": "T-1"})
    stats = AuditIndexer(bus, cluster.writer).run(until_idle=True)
    assert (stats.consumed, stats.indexed, stats.already_indexed) == (5, 1, 4)
    assert sorted(cluster.docs, key=int) == ["1", "2", "3", "4", "5"]


def test_an_item_error_leaves_the_batch_uncommitted(tmp_path, cluster):
    bus = LocalBus(tmp_path / "bus.db")
    append_sample(mirrored(tmp_path, bus))
    cluster.refuse.add("3")
    with pytest.raises(ItemsRefused, match=r"did not index 1 of 4 audit entries \(first: 3: 400 document_parsing_exception"):
        AuditIndexer(bus, cluster.writer).run(until_idle=True)
    assert bus.consumer(GROUP, [AUDIT]).lag() == 4 and sorted(cluster.docs) == ["1", "2", "4"]
    cluster.refuse.clear()  # the cause fixed: the redelivered batch completes, nothing twice
    stats = AuditIndexer(bus, cluster.writer).run(until_idle=True)
    assert (stats.indexed, stats.already_indexed) == (1, 3) and bus.consumer(GROUP, [AUDIT]).lag() == 0


def test_a_different_entry_under_an_indexed_seq_is_refused_not_overwritten(tmp_path, cluster):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    bus = LocalBus(tmp_path / "bus.db")
    mirrored(first, bus).append("tasking.approve", "sam", {"tasking_id": "T-1"})
    AuditIndexer(bus, cluster.writer).run(until_idle=True)
    kept = dict(cluster.docs["1"])
    mirrored(second, bus).append("tasking.approve", "sam", {"tasking_id": "T-2"})  # another chain's seq 1
    with pytest.raises(ItemsRefused, match="1: already indexed with hash"):
        AuditIndexer(bus, cluster.writer).run(until_idle=True)
    assert cluster.docs["1"] == kept and bus.consumer(GROUP, [AUDIT]).lag() == 1


def test_a_message_that_is_no_entry_is_dead_lettered_and_the_rest_indexed(tmp_path, cluster):
    bus = LocalBus(tmp_path / "bus.db")
    append_sample(mirrored(tmp_path, bus))
    bus.produce(AUDIT, "x", b"{broken")
    bus.flush()
    stats = AuditIndexer(bus, cluster.writer).run(until_idle=True)
    assert (stats.indexed, stats.dead_lettered) == (4, 1)
    (dead,) = bus.consumer("t", [DEAD_LETTER]).poll(10, 0)
    assert json.loads(dead.value)["offset"] == 4 and json.loads(dead.value)["topic"] == AUDIT


def test_the_command(tmp_path, cluster):
    root = tmp_path / "data"
    app = make_app(root)
    append_sample(MirroredAuditLog(app.audit, lambda: app.bus))
    app.close()
    env = {"FCMON_DATA_DIR": str(root), "FCMON_ELASTICSEARCH_URL": cluster.url}
    result = fcmon("audit", "index-es", "--until-idle", "--json", env=env, check=True)
    assert json.loads(result.stdout) == {"consumed": 4, "indexed": 4, "already_indexed": 0, "dead_lettered": 0, "batches": 1}
    assert "group=fcmon-audit-indexer" in result.stderr and len(cluster.docs) == 4
    again = fcmon("audit", "index-es", "--until-idle", env=env, check=True)
    assert again.stdout.strip() == "consumed 0: indexed 0, already indexed 0, dead-lettered 0"
    missing = fcmon("audit", "index-es", "--until-idle", env={"FCMON_DATA_DIR": str(root)})
    assert missing.returncode == 2 and "set FCMON_ELASTICSEARCH_URL" in missing.stderr


# -- live cluster ---------------------------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("FCMON_ELASTICSEARCH_URL"), reason="set FCMON_ELASTICSEARCH_URL for the live cluster")
def test_live_cluster_indexes_each_entry_once(tmp_path):
    from elasticsearch import Elasticsearch
    auth = (os.environ.get("FCMON_ELASTICSEARCH_USERNAME", "elastic"), os.environ["FCMON_ELASTICSEARCH_PASSWORD"]) \
        if os.environ.get("FCMON_ELASTICSEARCH_PASSWORD") else None
    client = Elasticsearch(os.environ["FCMON_ELASTICSEARCH_URL"], basic_auth=auth)
    alias = f"fcmon-test-audit-{uuid.uuid4().hex[:12]}"
    bus = LocalBus(tmp_path / "bus.db")
    append_sample(mirrored(tmp_path, bus))
    try:
        first = AuditIndexer(bus, AuditIndexWriter(client, alias)).run(until_idle=True)
        for message in bus.consumer("replay", [AUDIT]).poll(100, 0):
            bus.produce(AUDIT, message.key, message.value)
        second = AuditIndexer(bus, AuditIndexWriter(client, alias)).run(until_idle=True)
        client.indices.refresh(index=alias)
        assert (first.indexed, second.indexed, second.already_indexed) == (4, 0, 4)
        assert client.count(index=alias)["count"] == 4
        hits = client.search(index=alias, query={"term": {"fcm.query_id": "q1"}})["hits"]["hits"]
        assert sorted(h["_id"] for h in hits) == ["2", "3"]  # the query and its result
    finally:
        client.indices.delete(index=f"{alias}-*", ignore_unavailable=True)
        client.options(ignore_status=404).indices.delete_index_template(name=alias)
