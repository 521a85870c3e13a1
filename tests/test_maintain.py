"""`fcmon maintain`: expired holds and records past their purge date are purged on schedule, each audited first."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import timedelta

import pytest

from guards.chain import GuardChain
from pipeline.app import App
from pipeline.bus import COLLECTED
from pipeline.models import utcnow
from pipeline.settings import Settings
from pipeline.worker import Worker
from tests.datadirs import FCMON, fcmon, make_app
from tests.factories import make_record
from tests.factories_guards import build, item_fields, tasking_fields

NOW = utcnow()


@pytest.fixture
def data(tmp_path):
    """A data directory holding one item past quarantine_days, one record past its purge date and one not yet due."""
    tasking, item = build(tasking_fields("T-M", NOW), item_fields("T-M", 1, NOW, title="Rally",
                                                                   text="After the rally we cut the converters off their trucks"))
    app = make_app(tmp_path / "data", tasking)
    app.bus.produce(COLLECTED, item.source_id, item.model_dump_json().encode())
    app.bus.flush()
    worker = Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings))
    assert worker.run(until_idle=True).quarantined == 1
    app.state.conn.execute("UPDATE quarantine SET purge_after = ?", ((NOW - timedelta(seconds=1)).isoformat(),))
    due, kept = (make_record(tasking_id="T-M", url=f"https://forum.example/{name}",
                             label_overrides={"review_by": NOW.date() + timedelta(days=d), "purge_by": NOW.date() + timedelta(days=d)})
                 for name, d in (("due", -1), ("kept", 30)))
    app.index.upsert([due, kept])
    app.close()
    return tmp_path / "data", item.id, due.id, kept.id


def reopen(root) -> App:
    return App(Settings(data_dir=root))


def entries(root, kind: str) -> list:
    app = reopen(root)
    try:
        return list(app.audit.entries([kind]))
    finally:
        app.close()


def test_one_round_purges_expired_holds_and_due_records_and_audits_both(data):
    root, held_id, due_id, kept_id = data
    result = fcmon("--data-dir", str(root), "--as", "sam", "maintain", "--once", "--json", check=True)
    assert json.loads(result.stdout) == {"holds_expired": 1, "records_purged": 1}
    app = reopen(root)
    assert app.state.quarantined() == [] and app.index.ids() == [kept_id]
    assert [e.payload["item_id"] for e in app.audit.entries(["quarantine.expire"])] == [held_id]
    assert [e.payload["record_ids"] for e in app.audit.entries(["retention.purge"])] == [[due_id]]
    app.close()
    again = fcmon("--data-dir", str(root), "--as", "sam", "maintain", "--once", check=True)
    assert "0 expired hold(s) and 0 record(s) purged" in again.stdout


def test_only_supervisors_and_admins_maintain(data):
    root, *_ = data
    refused = fcmon("--data-dir", str(root), "--as", "alice", "maintain", "--once")
    assert refused.returncode == 2 and "supervisor or admin" in refused.stderr
    assert entries(root, "quarantine.expire") == [] and entries(root, "retention.purge") == []


def test_no_log_no_purge_and_the_round_says_what_failed(data):
    root, *_ = data
    head = root / "audit.head"
    head.unlink(missing_ok=True)
    head.mkdir()  # the audit log cannot be written
    failed = fcmon("--data-dir", str(root), "--as", "sam", "maintain", "--once")
    assert failed.returncode == 2 and "holds_expired" in failed.stderr and "records_purged" in failed.stderr
    head.rmdir()
    app = reopen(root)
    assert len(app.state.quarantined()) == 1 and app.index.count() == 2  # kept until the purges can be recorded
    app.close()


def test_the_service_purges_on_schedule_and_stops_on_sigterm(data):
    root, _, _, kept_id = data
    env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | {"FCMON_USER": "sam"}
    service = subprocess.Popen([*FCMON, "--data-dir", str(root), "maintain", "--every", "1"], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        lines = [service.stderr.readline() for _ in range(2)]  # two rounds, a second apart
        assert lines[0].startswith("maintain: holds_expired=1 records_purged=1 next_in=1s"), lines
        assert lines[1].startswith("maintain: holds_expired=0 records_purged=0"), lines
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=10) == 0
    finally:
        service.kill()
    app = reopen(root)
    assert app.index.ids() == [kept_id] and len(list(app.audit.entries(["retention.purge"]))) == 1
    app.close()
