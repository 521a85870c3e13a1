"""The audit indexer (`fcmon audit index-es`): bulk actions from the audit mirror's messages, and the consumer loop
on a real LocalBus writing into the session's real Elasticsearch (tests/stack.py `es_node`) as fcmon's service account:
the alias and its template, _id = the chain's seq, create-only (a replay meets 409 and is checked, never overwrites),
a batch committed only when every entry is in."""
from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest

from pipeline.audit import LocalAuditLog
from pipeline.audit_bounds import MAX_AUDIT_STRING
from pipeline.audit_index import (AUDIT_ALIAS, AUDIT_TEMPLATE_FILE, GROUP, AuditIndexer, AuditIndexWriter, ItemsRefused,
                                  batch_actions, entry_from_message)
from pipeline.audit_mirror import MirroredAuditLog
from pipeline.bus import AUDIT, DEAD_LETTER, Message
from pipeline.bus.local import LocalBus
from pipeline.errors import Unavailable
from pipeline.index.elasticsearch import load_template
from pipeline.settings import Settings
from pipeline.stack import free_port
from tests.datadirs import fcmon, make_app
from tests.test_es_adapter import mapped_paths
from tests.test_index_contract import wipe_alias

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


# -- on the real node ------------------------------------------------------------------------------

@pytest.fixture
def audit_es(es_node):
    """(fcmon's client, a fresh audit alias, its writer); everything behind the alias wiped afterwards."""
    client = es_node.client()
    alias = f"fcmon-test-audit-{uuid.uuid4().hex[:12]}"
    yield client, alias, AuditIndexWriter(es_node.client(), alias)
    wipe_alias(client, alias)
    client.close()


def stored(client, alias: str) -> dict[str, dict]:
    """What the node holds behind the alias: _id -> {"source", "version", "index"}."""
    client.indices.refresh(index=alias)
    hits = client.search(index=alias, size=100, version=True, query={"match_all": {}})["hits"]["hits"]
    return {h["_id"]: {"source": h["_source"], "version": h["_version"], "index": h["_index"]} for h in hits}


def test_every_entry_is_indexed_once_and_committed(tmp_path, audit_es):
    client, alias, writer = audit_es
    bus = LocalBus(tmp_path / "bus.db")
    append_sample(mirrored(tmp_path, bus))
    stats = AuditIndexer(bus, writer).run(until_idle=True)
    assert (stats.consumed, stats.indexed, stats.already_indexed, stats.dead_lettered, stats.batches) == (4, 4, 0, 0, 1)
    docs = stored(client, alias)
    assert sorted(docs, key=int) == ["1", "2", "3", "4"] and {d["index"] for d in docs.values()} == {f"{alias}-v1"}
    assert docs["2"]["source"]["fcm"]["query"] == "stolen pallets" and docs["2"]["source"]["event"]["sequence"] == 2
    assert docs["3"]["source"]["fcm"]["hits_total"] == 3
    (template,) = client.indices.get_index_template(name=alias)["index_templates"]
    assert template["index_template"]["index_patterns"] == [f"{alias}-*"]
    (concrete,) = client.indices.get_mapping(index=alias).values()
    assert concrete["mappings"]["dynamic"] == "strict" and mapped_paths(concrete["mappings"]["properties"]) == PATHS
    hits = client.search(index=alias, query={"term": {"fcm.query_id": "q1"}})["hits"]["hits"]
    assert sorted(h["_id"] for h in hits) == ["2", "3"]  # the query and its result, found by the mapped field
    assert bus.consumer(GROUP, [AUDIT]).lag() == 0


def test_a_replay_is_harmless_and_new_entries_follow(tmp_path, audit_es):
    client, alias, writer = audit_es
    bus = LocalBus(tmp_path / "bus.db")
    log = mirrored(tmp_path, bus)
    append_sample(log)
    AuditIndexer(bus, writer).run(until_idle=True)
    for message in bus.consumer("replay", [AUDIT]).poll(100, 0):  # the mirror re-sends everything (e.g. a gap fill)
        bus.produce(AUDIT, message.key, message.value)
    log.append("query.review", "sam", {"query_id": "q1", "status": "reviewed", "note": "", "user": "alice", "tasking_id": "T-1"})
    stats = AuditIndexer(bus, writer).run(until_idle=True)
    assert (stats.consumed, stats.indexed, stats.already_indexed) == (5, 1, 4)
    docs = stored(client, alias)
    assert sorted(docs, key=int) == ["1", "2", "3", "4", "5"]
    assert {d["version"] for d in docs.values()} == {1}  # create-only: no entry was written twice


def older_audit_index(client, alias: str) -> None:
    """<alias>-v1 as an index made before the audit mapping had fcm.hits_total."""
    template = load_template(AUDIT_TEMPLATE_FILE)["template"]
    mappings = copy.deepcopy(template["mappings"])
    del mappings["properties"]["fcm"]["properties"]["hits_total"]
    client.indices.create(index=f"{alias}-v1", settings=template["settings"], mappings=mappings,
                          aliases={alias: {"is_write_index": True}})


def test_an_item_error_leaves_the_batch_uncommitted(tmp_path, audit_es):
    client, alias, writer = audit_es
    older_audit_index(client, alias)
    bus = LocalBus(tmp_path / "bus.db")
    append_sample(mirrored(tmp_path, bus))
    with pytest.raises(ItemsRefused, match=r"did not index 1 of 4 audit entries \(first: 3: 400 "
                                           r"strict_dynamic_mapping_exception .*\[hits_total\]"):
        AuditIndexer(bus, writer).run(until_idle=True)
    assert bus.consumer(GROUP, [AUDIT]).lag() == 4 and sorted(stored(client, alias), key=int) == ["1", "2", "4"]
    client.indices.put_mapping(index=alias, properties={"fcm": {"properties": {"hits_total": {"type": "long"}}}})
    stats = AuditIndexer(bus, writer).run(until_idle=True)  # the cause fixed: the redelivered batch completes
    assert (stats.indexed, stats.already_indexed) == (1, 3) and bus.consumer(GROUP, [AUDIT]).lag() == 0
    docs = stored(client, alias)
    assert sorted(docs, key=int) == ["1", "2", "3", "4"] and {d["version"] for d in docs.values()} == {1}


def test_a_different_entry_under_an_indexed_seq_is_refused_not_overwritten(tmp_path, audit_es):
    client, alias, writer = audit_es
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    bus = LocalBus(tmp_path / "bus.db")
    mirrored(first, bus).append("tasking.approve", "sam", {"tasking_id": "T-1"})
    AuditIndexer(bus, writer).run(until_idle=True)
    kept = stored(client, alias)["1"]
    mirrored(second, bus).append("tasking.approve", "sam", {"tasking_id": "T-2"})  # another chain's seq 1
    with pytest.raises(ItemsRefused, match="1: already indexed with hash"):
        AuditIndexer(bus, writer).run(until_idle=True)
    assert stored(client, alias)["1"] == kept and bus.consumer(GROUP, [AUDIT]).lag() == 1


def test_a_message_that_is_no_entry_is_dead_lettered_and_the_rest_indexed(tmp_path, audit_es):
    client, alias, writer = audit_es
    bus = LocalBus(tmp_path / "bus.db")
    append_sample(mirrored(tmp_path, bus))
    bus.produce(AUDIT, "x", b"{broken")
    bus.flush()
    stats = AuditIndexer(bus, writer).run(until_idle=True)
    assert (stats.indexed, stats.dead_lettered) == (4, 1) and len(stored(client, alias)) == 4
    (dead,) = bus.consumer("t", [DEAD_LETTER]).poll(10, 0)
    assert json.loads(dead.value)["offset"] == 4 and json.loads(dead.value)["topic"] == AUDIT


def test_an_entry_with_a_huge_user_name_is_indexed(tmp_path, audit_es):
    """A sign-in refused for a made-up name is audited under that name, cut to MAX_AUDIT_STRING characters with its
    length and hash recorded: the audit index must take it (a keyword above its ignore_above is kept unindexed, not
    refused, which would hold up every later entry), and keep it in the source as the log holds it."""
    client, alias, writer = audit_es
    bus = LocalBus(tmp_path / "bus.db")
    name = "m" * 40_000
    mirrored(tmp_path, bus).append("gateway.login.refused", name, {"user": name, "client": "10.0.0.7", "reason": "x"})
    assert AuditIndexer(bus, writer).run(until_idle=True).indexed == 1
    source = stored(client, alias)["1"]["source"]
    assert source["user"]["name"] == name[:MAX_AUDIT_STRING] and bus.consumer(GROUP, [AUDIT]).lag() == 0
    assert source["fcm"]["payload"]["cut"]["user"]["chars"] == 40_000


def test_while_elasticsearch_is_down_nothing_is_committed(tmp_path, es_node, audit_es):
    client, alias, writer = audit_es
    bus = LocalBus(tmp_path / "bus.db")
    append_sample(mirrored(tmp_path, bus))
    down = AuditIndexWriter.from_settings(Settings(**es_node.settings(elasticsearch_url=f"http://127.0.0.1:{free_port()}")))
    with pytest.raises(Unavailable, match="Elasticsearch request failed: ConnectionError"):
        AuditIndexer(bus, down).run(until_idle=True)
    assert bus.consumer(GROUP, [AUDIT]).lag() == 4
    assert AuditIndexer(bus, writer).run(until_idle=True).indexed == 4 and len(stored(client, alias)) == 4


def test_the_command(tmp_path, es_node):
    """`fcmon audit index-es` writes into the alias the gateway guards, fcmon-audit (no setting names another)."""
    client = es_node.client()
    wipe_alias(client, AUDIT_ALIAS)  # what another test of the session left there
    root = tmp_path / "data"
    app = make_app(root)
    append_sample(MirroredAuditLog(app.audit, lambda: app.bus))
    app.close()
    env = {"FCMON_DATA_DIR": str(root), **es_node.env()}
    try:
        result = fcmon("audit", "index-es", "--until-idle", "--json", env=env, check=True)
        assert json.loads(result.stdout) == {"consumed": 4, "indexed": 4, "already_indexed": 0, "dead_lettered": 0,
                                             "batches": 1}
        assert "group=fcmon-audit-indexer" in result.stderr and sorted(stored(client, AUDIT_ALIAS), key=int) == ["1", "2", "3", "4"]
        assert list(client.indices.get_alias(name=AUDIT_ALIAS)) == [f"{AUDIT_ALIAS}-v1"]
        again = fcmon("audit", "index-es", "--until-idle", env=env, check=True)
        assert again.stdout.strip() == "consumed 0: indexed 0, already indexed 0, dead-lettered 0"
    finally:
        wipe_alias(client, AUDIT_ALIAS)
        client.close()
    missing = fcmon("audit", "index-es", "--until-idle", env={"FCMON_DATA_DIR": str(root)})
    assert missing.returncode == 2 and "set FCMON_ELASTICSEARCH_URL" in missing.stderr
