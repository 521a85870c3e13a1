"""`fcmon quarantine`: supervisors keep or purge held items, every decision audited; expired holds are purged."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from guards.chain import GuardChain
from pipeline.app import App
from pipeline.bus import COLLECTED
from pipeline.models import utcnow
from pipeline.settings import Settings
from pipeline.worker import Worker
from tests.datadirs import fcmon, make_app
from tests.factories_guards import build, item_fields, tasking_fields

HELD_TEXT = "After the rally we cut the converters off their trucks; mail joe@x.example"


@pytest.fixture
def held(tmp_path):
    """A data directory with one item held by the First Amendment guard; returns (data dir, item id)."""
    now = utcnow()
    tasking, item = build(tasking_fields("T-Q", now), item_fields("T-Q", 1, now, title="Rally", text=HELD_TEXT))
    app = make_app(tmp_path / "data", tasking)
    app.bus.produce(COLLECTED, item.source_id, item.model_dump_json().encode())
    app.bus.flush()
    stats = Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings)).run(until_idle=True)
    assert stats.quarantined == 1
    app.close()
    return str(tmp_path / "data"), item.id


def q(data: str, *args: str, user: str = "sam"):
    return fcmon("--data-dir", data, "--as", user, "quarantine", *args)


def reopen(data: str) -> App:
    return App(Settings(data_dir=data))


def test_list_and_show_name_the_signals(held):
    data, item_id = held
    listed = json.loads(q(data, "list", "--json").stdout)
    assert [h["item_id"] for h in listed] == [item_id]
    shown = json.loads(q(data, "show", item_id, "--json").stdout)
    assert "protest:rally" in shown["decision"]["reasons"][0]["signals"]
    assert "joe@x.example" not in shown["item"]["text"], "held content is already minimized"
    [read] = [e for e in reopen(data).audit.entries(["quarantine.show"])]
    assert (read.actor, read.payload["item_id"], read.payload["interface"]) == ("sam", item_id, "cli")


def test_only_supervisors(held):
    data, item_id = held
    result = q(data, "decide", item_id, "--keep", "--reason", "x", user="alice")
    assert result.returncode == 2 and "supervisor" in result.stderr


def test_keep_indexes_with_the_supervisor_and_is_audited(held):
    data, item_id = held
    result = q(data, "decide", item_id, "--keep", "--reason", "direct threat to property, case 2026-CR-7", "--json")
    assert result.returncode == 0, result.stderr
    app = reopen(data)
    record = app.index.get(item_id)
    assert record.released_by == "sam" and record.release_reason.startswith("direct threat")
    assert record.labels.criminal_intelligence is False and record.pii_masked == {"email": 1}
    assert app.state.quarantined() == []
    [entry] = list(app.audit.entries(["quarantine.keep"]))
    assert entry.actor == "sam" and entry.payload["item_id"] == item_id
    app.close()


def test_purge_keeps_only_id_hash_and_reason(held):
    data, item_id = held
    assert q(data, "decide", item_id, "--purge", "--reason", "protected speech, no real threat").returncode == 0
    app = reopen(data)
    assert app.state.quarantined() == [] and app.index.get(item_id) is None
    row = app.state.conn.execute("SELECT * FROM rejections WHERE item_id = ?", (item_id,)).fetchone()
    assert row[3] == "quarantine_purge" and "protected speech" in row[5] and HELD_TEXT not in " ".join(map(str, row))
    assert [e.payload["item_id"] for e in app.audit.entries(["quarantine.purge"])] == [item_id]
    app.close()


def test_decide_needs_keep_or_purge_and_a_known_item(held):
    data, item_id = held
    assert "--keep or --purge" in q(data, "decide", item_id, "--reason", "x").stderr
    assert "quarantine list" in q(data, "decide", "nope", "--purge", "--reason", "x").stderr


def test_expired_holds_are_purged_and_audited(held):
    data, item_id = held
    app = reopen(data)
    past = (utcnow() - timedelta(seconds=1)).isoformat()
    app.state.conn.execute("UPDATE quarantine SET purge_after = ?", (past,))
    app.close()
    assert json.loads(q(data, "purge-expired", "--json").stdout) == [item_id]
    app = reopen(data)
    assert app.state.quarantined() == []
    assert [e.payload["item_id"] for e in app.audit.entries(["quarantine.expire"])] == [item_id]
    app.close()


def test_the_list_is_an_audited_read(held, tmp_path):
    """Who saw which items were held (their taskings and the signals that held them) was not recorded."""
    data, item_id = held
    assert q(data, "list").returncode == 0
    [read] = list(reopen(data).audit.entries(["quarantine.list"]))
    assert read.actor == "sam" and read.payload == {"user": "sam", "interface": "cli", "count": 1, "item_ids": [item_id]}
    head = Path(data) / "audit.head"
    head.unlink()
    head.mkdir()  # no log, no listing
    refused = q(data, "list")
    assert refused.returncode == 2 and item_id not in refused.stdout
