"""Search with a purpose: authorized by tasking and role, audited before it runs, refused when the log fails."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.errors import AuditUnavailable, Forbidden
from pipeline.index import InvalidQuery, SearchQuery
from pipeline.search import audited_search
from tests.datadirs import make_app
from tests.factories import make_record
from tests.factories_pipeline import make_tasking

NOW = datetime.now(timezone.utc)


@pytest.fixture
def app(tmp_path):
    live = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
    app = make_app(tmp_path / "d", make_tasking(**live, team=["dana"]),
                   make_tasking(id="T-2", requested_by="sue", approved_by="sam", **live))
    app.index.upsert([make_record(url=f"https://forum.example/p/{i}", text=f"catalytic converter {i}") for i in range(3)]
                     + [make_record(tasking_id="T-2", url="https://forum.example/q", text="catalytic converter elsewhere")])
    return app


def search(app, user, text="converter", tasking="T-1"):
    return audited_search(app.state, app.audit, app.index, app.state.user(user), SearchQuery(text=text, tasking_id=tasking), "cli")


def test_the_query_is_logged_before_and_its_results_after(app):
    event, page = search(app, "alice")
    assert page.total == 3
    query, result = [e for e in app.audit.entries() if e.kind.startswith("query")]
    assert query.kind == "query" and query.seq < result.seq
    assert query.payload | {} == query.payload and query.payload["query"] == "converter"
    assert query.payload["user"] == "alice" and query.payload["role"] == "analyst"
    assert query.payload["tasking_id"] == "T-1" and query.payload["case_number"] == "2026-CR-1"
    assert query.payload["interface"] == "cli" and query.payload["id"] == event.id
    assert result.payload["query_id"] == event.id and result.payload["hits_total"] == 3
    assert sorted(result.payload["returned_ids"]) == sorted(h.record.id for h in page.hits)
    assert app.audit.verify().ok


def test_only_the_requester_the_team_or_a_supervisor_may_search(app):
    assert search(app, "dana")[1].total == 3
    assert search(app, "sam", tasking="T-2")[1].total == 1
    with pytest.raises(Forbidden, match="neither the requester nor on the team"):
        search(app, "alice", tasking="T-2")
    refused = [e for e in app.audit.entries(["query.refused"])]
    assert len(refused) == 1 and refused[0].actor == "alice" and refused[0].payload["tasking_id"] == "T-2"


def test_results_never_cross_taskings(app):
    _, page = search(app, "alice", text="tasking_id:T-2 OR converter")
    assert {h.record.tasking_id for h in page.hits} == {"T-1"}


def test_no_log_no_query(app, tmp_path):
    before = len(list(app.audit.entries()))
    head = tmp_path / "d" / "audit.head"
    head.unlink(missing_ok=True)
    head.mkdir()  # the log opens, but no entry can be completed
    with pytest.raises(AuditUnavailable, match="cannot be written"):
        search(app, "alice")
    assert len(list(app.audit.entries())) == before


def test_a_revocation_counts_at_the_next_search_though_parsed_taskings_are_shared(app):
    search(app, "alice")
    tasking = app.state.tasking("T-1")
    assert app.state.tasking("T-1") is tasking  # the same stored text: one parse
    with pytest.raises(ValueError):
        tasking.revoked = True  # frozen: a shared tasking cannot change under another lookup
    app.state.put_tasking(tasking.model_copy(update={"revoked": True, "revoked_by": "sam", "revoked_at": NOW}))
    with pytest.raises(Forbidden, match="revoked"):
        search(app, "alice")
    assert app.state.tasking("T-1").revoked and not tasking.revoked


def test_a_query_that_fails_is_closed_in_the_log_with_nothing_returned(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30)))
    with pytest.raises(InvalidQuery):
        audited_search(app.state, app.audit, app.index, app.state.user("alice"),
                       SearchQuery(text='"unbalanced', tasking_id="T-1"), "cli")
    (query,) = app.audit.entries(["query"])
    (result,) = app.audit.entries(["query.result"])
    assert (result.payload["query_id"], result.payload["hits_total"]) == (query.payload["id"], 0)
