"""`fcmon demo` end to end, as a user runs it: real fixture site, real Scrapy, real SQLite and tantivy."""
from __future__ import annotations

import json
import socket
import uuid

import pytest

from pipeline.audit import LocalAuditLog
from pipeline.datadir import DataDir
from pipeline.index.local import LocalIndex
from tests.datadirs import fcmon


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "data"
    env = {"FCMON_DEMO_SITE_PORT": str(free_port())}
    first = fcmon("--data-dir", str(root), "demo", "--json", env=env, check=True)
    second = fcmon("--data-dir", str(root), "demo", env=env, check=True)
    return root, json.loads(first.stdout), first.stderr, second.stdout


def test_the_demo_runs_the_whole_pipeline(demo_runs):
    _, summary, progress, _ = demo_runs
    assert summary["tasking"]["approved_by"] == "sam" and summary["tasking"]["requested_by"] == "alice"
    assert summary["collected"] == summary["indexed"] + summary["quarantined"] + summary["rejected"] > 0
    assert summary["indexed"] >= 3 and summary["quarantined"] >= 1
    rules = {r["rule"]: r for r in summary["rejected_by_reason"]}
    assert {"lawful_purpose", "public_provenance", "first_amendment"} <= set(rules)
    assert all(r["clause"] for r in rules.values())
    assert summary["crawl"]["refused"].get("login_url", 0) >= 1 and summary["crawl"]["robots_disallowed"] >= 1
    assert summary["search"]["total"] >= 1 and summary["audit_verify"]["ok"] is True
    assert "[1/6]" in progress and "[6/6]" in progress


def test_login_walled_and_disallowed_pages_are_not_indexed(demo_runs):
    root, summary, _, _ = demo_runs
    index = LocalIndex(root / "index")
    urls = [index.get(i).final_url for i in index.ids()]
    assert urls and not any("/members/" in u or "/login" in u or "/private/" in u for u in urls)
    assert all(index.get(i).predicate.case_number == summary["tasking"]["case_number"] for i in index.ids())


def test_a_second_run_duplicates_nothing(demo_runs):
    root, summary, _, second = demo_runs
    assert f"the index holds {summary['index_total_for_tasking']} records" in second
    assert len(LocalIndex(root / "index").ids()) == summary["index_total_for_tasking"]
    assert "audit verify: ok" in second


@pytest.fixture(scope="module")
def stack_demo_runs(tmp_path_factory, es_node):
    """`fcmon demo --json` twice with the stack's exports: Apache Kafka and Elasticsearch (own records alias)."""
    from tests.broker import Broker
    broker = Broker().start()
    alias = f"fcmon-test-demo-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("stack-demo") / "data"
    env = {"FCMON_DEMO_SITE_PORT": str(free_port()), **broker.env(), **es_node.env(elasticsearch_records_alias=alias)}
    admin = es_node.client(admin=True)
    admin.indices.delete(index="fcmon-audit*", ignore_unavailable=True)
    try:
        first = fcmon("--data-dir", str(root), "demo", "--json", env=env, timeout=300, check=True)
        records_after_first = admin.count(index=alias)["count"]
        second = fcmon("--data-dir", str(root), "demo", "--json", env=env, timeout=300, check=True)
        admin.indices.refresh(index=f"{alias},fcmon-audit")
        local = LocalAuditLog(DataDir(root).audit_db, DataDir(root).audit_head)
        logged = {e.seq: e.hash for e in local.entries()}
        local.close()
        yield (json.loads(first.stdout), first.stderr, records_after_first, json.loads(second.stdout),
               admin.count(index=alias)["count"], admin.search(index="fcmon-audit", size=1000)["hits"]["hits"], logged)
    finally:
        broker.stop()
        admin.indices.delete(index=f"{alias}*,fcmon-audit*", ignore_unavailable=True)
        admin.options(ignore_status=404).indices.delete_index_template(name=alias)
        admin.close()


def test_the_demo_runs_on_kafka_and_elasticsearch(stack_demo_runs):
    first, progress, records, *_ = stack_demo_runs
    assert first["backends"] == {"bus": "kafka", "index": "elasticsearch", "audit": "local + fcm.audit"}
    assert first["collected"] == first["indexed"] + first["quarantined"] + first["rejected"] > 0
    assert first["indexed"] >= 3 and records == first["index_total_for_tasking"] == first["indexed"]
    assert "[1/8]" in progress and "[8/8]" in progress and "Kibana gateway" in progress


def test_the_gateway_reads_what_the_cli_search_reads_and_only_the_demo_tasking(stack_demo_runs):
    first = stack_demo_runs[0]
    assert first["search"]["total"] >= 1
    assert first["gateway"]["status"] == 200 and first["gateway"]["total"] == first["search"]["total"]
    assert first["gateway"]["tasking_ids"] == [first["tasking"]["id"]]


def test_every_audit_entry_reaches_the_audit_index_once(stack_demo_runs):
    first, _, _, second, _, audit_docs, logged = stack_demo_runs
    assert first["audit_index"]["indexed"] == first["audit_verify"]["entries"]
    assert first["audit_index"]["indexed"] + second["audit_index"]["indexed"] == second["audit_verify"]["entries"]
    assert {int(d["_id"]): d["_source"]["event"]["hash"] for d in audit_docs} == logged  # the local chain, entry for entry


def test_a_second_run_on_the_stack_duplicates_nothing(stack_demo_runs):
    first, _, records, second, records_after_second, *_ = stack_demo_runs
    assert records_after_second == records and second["index_total_for_tasking"] == first["index_total_for_tasking"]
    assert second["audit_verify"]["ok"] is True
