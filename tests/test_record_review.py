"""`fcmon record review|show`: an analyst on the tasking evaluates and submits a record, audited first (fail closed);
criminal intelligence only under an active criminal predicate; retention and non-subjects untouched."""
from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from pipeline.errors import AuditUnavailable, Forbidden, NotFound
from pipeline.models import utcnow
from pipeline.records import review, show
from tests.datadirs import fcmon, make_app
from tests.factories import make_predicate, make_record
from tests.factories_pipeline import make_tasking

NOW = utcnow()
LIVE = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
NOTE = "seller's photos match theft report RD-4"


def iga_predicate(tasking_id: str):
    return make_predicate(tasking_id, kind="information_gathering", case_number=None, predicate=None, criminal_activity=None)


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path / "d",
                   make_tasking(**LIVE, team=["ann", "dana"]),
                   make_tasking(id="T-2", requested_by="bob", approved_by="sam", **LIVE),
                   make_tasking(id="T-IGA", kind="information_gathering", case_number=None, predicate=None,
                                criminal_activity=None, title="County fair crowd safety", **LIVE),
                   make_tasking(id="T-OLD", approved_at=NOW - timedelta(days=60), expires_at=NOW - timedelta(days=1)))
    app.state.add_user("ann", "analyst")
    app.state.add_user("bob", "analyst")
    app.index.upsert([
        make_record(url=URLS["T-1"], non_subject_identifiers=["@bystander"], pii_masked={"email": 1},
                    label_overrides={"purge_by": date(2031, 2, 28)}),  # collection + 5 x 365 days, as guards.labels sets it
        make_record(tasking_id="T-2", url=URLS["T-2"]),
        make_record(tasking_id="T-IGA", url=URLS["T-IGA"], author=None, predicate=iga_predicate("T-IGA"),
                    label_overrides={"review_by": date(2027, 3, 1), "purge_by": date(2027, 3, 1)}),
        make_record(tasking_id="T-OLD", url=URLS["T-OLD"]),
    ])
    return app


URLS = {"T-1": "https://forum.example.org/t/1", "T-2": "https://forum.example/t2", "T-IGA": "https://forum.example/fair",
        "T-OLD": "https://forum.example/old"}


def rid(tasking_id: str = "T-1") -> str:
    """The id of the fixture's record under this tasking (ids are derived from tasking, URL and content)."""
    return make_record(tasking_id=tasking_id, url=URLS[tasking_id]).id


def do_review(app, user: str, tasking: str = "T-1", record_id: str | None = None, **kw):
    return review(app, app.state.user(user), record_id or rid(tasking), tasking,
                  kw.get("reliability", "usually_reliable"), kw.get("validity", "probably_true"), kw.get("note", NOTE))


def test_an_analyst_on_the_team_submits_criminal_intelligence_under_a_criminal_predicate(app):
    before = app.index.get(rid())
    do_review(app, "ann")
    after = app.index.get(rid())
    assert after.labels.review_status == "reviewed" and after.labels.criminal_intelligence is True
    assert (after.labels.source_reliability, after.labels.content_validity) == ("usually_reliable", "probably_true")
    assert after.reviewed_by == "ann" and after.review_note == NOTE and after.reviewed_at is not None
    assert (after.labels.review_by, after.labels.purge_by) == (before.labels.review_by, before.labels.purge_by)
    assert after.non_subject_identifiers == ["@bystander"] and after.pii_masked == {"email": 1}
    assert (after.text, after.author, after.predicate) == (before.text, before.author, before.predicate)
    assert app.index.count() == 4


def test_information_gathering_is_reviewed_but_never_criminal_intelligence(app):
    do_review(app, "alice", tasking="T-IGA", reliability="reliable", validity="confirmed")
    after = app.index.get(rid("T-IGA"))
    assert after.labels.review_status == "reviewed" and after.labels.criminal_intelligence is False
    assert after.labels.purge_by == date(2027, 3, 1), "the shorter retention is kept"


def test_retention_is_never_extended_beyond_five_years_of_collection(app):
    record = make_record(url="https://forum.example/long", label_overrides={"review_by": date(2032, 3, 1), "purge_by": date(2033, 3, 1)})
    app.index.upsert([record])
    do_review(app, "alice", record_id=record.id)
    labels = app.index.get(record.id).labels
    assert labels.purge_by <= (record.fetched_at + timedelta(days=5 * 365)).date()
    assert labels.review_by <= labels.purge_by


@pytest.mark.parametrize("user", ["dana", "ada"])
def test_detectives_and_admins_may_not_review(app, user):
    with pytest.raises(Forbidden, match="needs the role analyst or supervisor"):
        do_review(app, user)
    assert app.index.get(rid()).labels.review_status == "unreviewed"
    [refused] = list(app.audit.entries(["record.review.refused"]))
    assert refused.actor == user and refused.payload["record_id"] == rid()


def test_an_analyst_of_another_tasking_is_refused(app):
    with pytest.raises(Forbidden, match="neither the requester nor on the team"):
        do_review(app, "alice", tasking="T-2")
    with pytest.raises(NotFound, match="no record"):  # another tasking's record, named under one's own tasking
        do_review(app, "alice", tasking="T-1", record_id=rid("T-2"))
    assert app.index.get(rid("T-2")).labels.review_status == "unreviewed"


def test_an_expired_tasking_is_refused(app):
    with pytest.raises(Forbidden, match="T-OLD is expired"):
        do_review(app, "alice", tasking="T-OLD")
    assert app.index.get(rid("T-OLD")).labels.review_status == "unreviewed"


def test_a_tasking_that_no_longer_passes_its_rules_is_refused_and_the_refusal_audited(app):
    app.state.put_tasking(make_tasking(id="T-BAD", approved_by="dana", **LIVE))  # approved by a detective
    record = make_record(tasking_id="T-BAD", url="https://forum.example/bad")
    app.index.upsert([record])
    with pytest.raises(Forbidden, match="does not hold the supervisor role"):
        do_review(app, "alice", tasking="T-BAD", record_id=record.id)
    assert app.index.get(record.id).labels.review_status == "unreviewed"
    assert [e.payload["record_id"] for e in app.audit.entries(["record.review.refused"])] == [record.id]


def test_the_review_is_audited_with_labels_before_and_after(app):
    do_review(app, "alice")
    [entry] = list(app.audit.entries(["record.review"]))
    assert entry.actor == "alice" and entry.payload["note"] == NOTE and entry.payload["case_number"] == "2026-CR-1"
    assert entry.payload["before"]["review_status"] == "unreviewed" and entry.payload["before"]["criminal_intelligence"] is False
    assert entry.payload["after"]["review_status"] == "reviewed" and entry.payload["after"]["criminal_intelligence"] is True
    assert app.audit.verify().ok


def test_no_log_no_review(app, tmp_path):
    head = tmp_path / "d" / "audit.head"
    head.unlink(missing_ok=True)
    head.mkdir()  # the log opens, but no entry can be completed
    with pytest.raises(AuditUnavailable, match="cannot be written"):
        do_review(app, "alice")
    record = app.index.get(rid())
    assert record.labels.review_status == "unreviewed" and record.reviewed_by is None


def test_reading_a_record_is_authorized_and_audited_like_a_search(app, tmp_path):
    assert show(app, app.state.user("dana"), rid(), "T-1").id == rid()  # a detective on the team may read
    [read] = list(app.audit.entries(["record.read"]))
    assert read.actor == "dana" and read.payload["record_id"] == rid() and read.payload["tasking_id"] == "T-1"
    with pytest.raises(Forbidden):
        show(app, app.state.user("alice"), rid("T-2"), "T-2")
    assert [e.actor for e in app.audit.entries(["record.read.refused"])] == ["alice"]
    head = tmp_path / "d" / "audit.head"
    head.unlink(missing_ok=True)
    head.mkdir()
    with pytest.raises(AuditUnavailable):
        show(app, app.state.user("alice"), rid(), "T-1")


def cli(data: str, user: str, *args: str):
    return fcmon("--data-dir", data, "--as", user, "record", *args)


def test_review_and_show_through_the_cli(app, tmp_path):
    app.close()
    data = str(tmp_path / "d")
    result = cli(data, "ann", "review", rid(), "--tasking", "T-1", "--reliability", "reliable",
                 "--validity", "confirmed", "--note", NOTE, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["labels"]["criminal_intelligence"] is True
    shown = json.loads(cli(data, "alice", "show", rid(), "--tasking", "T-1", "--json").stdout)
    assert shown["labels"]["review_status"] == "reviewed" and shown["reviewed_by"] == "ann"
    assert shown["non_subject_identifiers"] == ["@bystander"]
    text = cli(data, "alice", "show", rid(), "--tasking", "T-1")
    assert "reviewed by ann" in text.stdout and "criminal_intelligence=true" in text.stdout


@pytest.mark.parametrize("args, message", [
    (("review", "0" * 32, "--tasking", "T-1", "--reliability", "reliable", "--validity", "confirmed", "--note", NOTE), "no record"),
    (("review", "0" * 32, "--tasking", "T-1", "--reliability", "reliable", "--validity", "confirmed", "--note", " "), "note is empty"),
    (("show", "0" * 32, "--tasking", "T-1"), "no record"),
], ids=["unknown-record", "empty-note", "show-unknown-record"])
def test_bad_input_is_a_one_line_error(app, tmp_path, args, message):
    app.close()
    result = cli(str(tmp_path / "d"), "alice", *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_detective_is_refused_through_the_cli(app, tmp_path):
    app.close()
    result = cli(str(tmp_path / "d"), "dana", "review", rid(), "--tasking", "T-1", "--reliability", "reliable",
                 "--validity", "confirmed", "--note", NOTE)
    assert result.returncode == 2 and "analyst or supervisor" in result.stderr
