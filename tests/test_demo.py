"""`fcmon demo` end to end, as a user runs it: real fixture site, real Scrapy, real SQLite and tantivy."""
from __future__ import annotations

import json
import socket

import pytest

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
