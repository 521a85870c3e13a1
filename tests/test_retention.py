"""`fcmon retention review|run` (28CFR23.20(h)): records come up for review before their purge date and are purged on it;
every decision is audited before the index changes."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipeline.errors import AuditUnavailable, Forbidden
from pipeline.models import utcnow
from pipeline.retention import due, review, run
from pipeline.transparency import transparency_report
from tests.datadirs import fcmon, make_app
from tests.factories import make_record
from tests.factories_pipeline import make_tasking

NOW = utcnow()
TODAY = NOW.date()
LIVE = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))


def dated(name: str, purge_in_days: int, tasking_id: str = "T-1"):
    when = TODAY + timedelta(days=purge_in_days)
    return make_record(tasking_id=tasking_id, url=f"https://forum.example/{name}", label_overrides={"review_by": when, "purge_by": when})


EXPIRED, TODAY_DUE, SOON, LATER, OTHER = (dated("expired", -3), dated("today", 0), dated("soon", 10), dated("later", 400),
                                         dated("other", -1, "T-OLD"))


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE),
                   make_tasking(id="T-OLD", approved_at=NOW - timedelta(days=90), expires_at=NOW - timedelta(days=60)))
    app.index.upsert([EXPIRED, TODAY_DUE, SOON, LATER, OTHER])
    return app


def test_the_run_purges_every_record_whose_date_has_come_and_audits_it_first(app):
    result = run(app, app.state.user("sam"))
    assert result["purged"] == 3 and result["by_tasking"] == {"T-1": 2, "T-OLD": 1}
    assert sorted(app.index.ids()) == sorted([SOON.id, LATER.id])
    [entry] = list(app.audit.entries(["retention.purge"]))
    assert entry.actor == "sam" and sorted(entry.payload["record_ids"]) == sorted([EXPIRED.id, TODAY_DUE.id, OTHER.id])
    assert run(app, app.state.user("sam"))["purged"] == 0 and len(list(app.audit.entries(["retention.purge"]))) == 1
    report = transparency_report(app, "now", NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert report["records_purged"] == 3


def test_no_log_no_purge(app, tmp_path):
    head = tmp_path / "d" / "audit.head"
    head.unlink(missing_ok=True)  # no entry written yet in this data directory
    head.mkdir()
    with pytest.raises(AuditUnavailable):
        run(app, app.state.user("sam"))
    assert app.index.count() == 5  # kept until the purge can be recorded


def test_analysts_and_detectives_do_not_run_retention(app):
    for name in ("alice", "dana"):
        with pytest.raises(Forbidden, match="needs the role supervisor or admin"):
            run(app, app.state.user(name))
    assert app.index.count() == 5


def test_the_review_list_shows_what_comes_due_and_who_validated_it(app):
    review(app, app.state.user("alice"), SOON.id, "T-1", True, "case RD-4 still open; the seller is charged")
    rows = due(app, app.state.user("sam"), 30)
    assert [r["record_id"] for r in rows] == [EXPIRED.id, OTHER.id, TODAY_DUE.id, SOON.id]
    validated = {r["record_id"]: r["validated"] for r in rows}
    assert validated[SOON.id]["by"] == "alice" and "RD-4" in validated[SOON.id]["reason"] and validated[EXPIRED.id] is None
    assert [r["record_id"] for r in due(app, app.state.user("sam"), 30, "T-OLD")] == [OTHER.id]
    assert len(list(app.audit.entries(["retention.list"]))) == 2  # listing records is a read: audited
    with pytest.raises(Forbidden, match="needs the role supervisor"):
        due(app, app.state.user("alice"), 30)


def test_keeping_records_the_validation_and_never_moves_the_purge_date(app):
    result = review(app, app.state.user("alice"), SOON.id, "T-1", True, "still relevant to RD-4")
    assert result["decision"] == "kept" and result["purge_by"] == SOON.labels.purge_by.isoformat()
    assert app.index.get(SOON.id) == SOON
    [entry] = list(app.audit.entries(["retention.keep"]))
    assert entry.actor == "alice" and entry.payload["reason"] == "still relevant to RD-4"


def test_keeping_needs_an_active_tasking_but_a_supervisor_may_always_purge(app):
    with pytest.raises(Forbidden, match="T-OLD is expired"):
        review(app, app.state.user("alice"), OTHER.id, "T-OLD", True, "keep it")
    assert [e.actor for e in app.audit.entries(["retention.keep.refused"])] == ["alice"]
    assert review(app, app.state.user("sam"), OTHER.id, "T-OLD", False, "its tasking ended")["decision"] == "purged"
    assert app.index.get(OTHER.id) is None
    with pytest.raises(Forbidden):
        review(app, app.state.user("dana"), SOON.id, "T-1", False, "detectives do not purge")
    assert app.index.get(SOON.id) is not None


def test_only_a_supervisor_purges_early_and_a_refused_purge_is_audited(app, tmp_path):
    """The README says supervisors purge; an analyst on the tasking was let purge too."""
    with pytest.raises(Forbidden, match="only a supervisor purges a record before its purge date"):
        review(app, app.state.user("alice"), SOON.id, "T-1", False, "no longer needed")
    assert app.index.get(SOON.id) == SOON
    [refused] = list(app.audit.entries(["retention.purge.refused"]))
    assert refused.actor == "alice" and refused.payload["record_id"] == SOON.id and refused.payload["role"] == "analyst"
    assert "only a supervisor" in refused.payload["refusal"]
    app.close()
    data = str(tmp_path / "d")
    purged = cli(data, "alice", "review", SOON.id, "--tasking", "T-1", "--purge", "--reason", "no longer needed")
    assert purged.returncode == 2 and "only a supervisor purges a record before its purge date" in purged.stderr
    assert "--keep" in purged.stderr  # what to do instead


def cli(data: str, user: str, *args: str):
    return fcmon("--data-dir", data, "--as", user, "retention", *args)


def test_retention_through_the_cli(app, tmp_path):
    app.close()
    data = str(tmp_path / "d")
    listed = cli(data, "sam", "review", "--within", "15", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 4
    kept = cli(data, "alice", "review", SOON.id, "--tasking", "T-1", "--keep", "--reason", "RD-4 open", "--json")
    assert json.loads(kept.stdout)["decision"] == "kept"
    missing = cli(data, "alice", "review", SOON.id, "--keep")
    assert missing.returncode == 2 and "--tasking, --keep or --purge, and --reason" in missing.stderr
    ran = cli(data, "sam", "run", "--json")
    assert json.loads(ran.stdout)["purged"] == 3
    assert "purged 0 record(s)" in cli(data, "sam", "run").stdout
