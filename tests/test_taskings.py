"""A tasking's team: only existing users, checked when requested and when approved, and shown to the approver."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipeline.errors import FcmonError, Forbidden
from pipeline.models import utcnow
from pipeline.search import authorize_search
from pipeline.taskings import access, approve_tasking, request_tasking
from tests.datadirs import fcmon, make_app
from tests.factories_pipeline import make_tasking

PENDING = dict(approved_by=None, approved_at=None, expires_at=utcnow() + timedelta(days=30))


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path / "d")


def test_a_team_name_that_is_no_user_is_refused_at_request_naming_each(app):
    """A name nobody holds yet would give its access to whoever is created later under it."""
    with pytest.raises(FcmonError, match=r"team names 'bob', 'carol', which are no users") as refused:
        request_tasking(app, app.state.user("alice"), make_tasking(**PENDING, team=["dana", "bob", "carol"]))
    assert "fcmon user list" in refused.value.hint
    assert app.state.taskings() == [] and list(app.audit.entries(["tasking.request"])) == []


def test_a_team_name_that_is_no_user_is_refused_at_approval(app):
    """A tasking stored with an unknown name (before this check, or by other means) cannot be approved."""
    app.state.put_tasking(make_tasking(**PENDING, team=["bob"]))
    with pytest.raises(FcmonError, match=r"team names 'bob', which is no user"):
        approve_tasking(app, app.state.user("sam"), "T-1")
    assert app.state.tasking("T-1").approved_by is None
    app.state.add_user("bob", "analyst")  # bob created later: access needs an approval that shows him
    with pytest.raises(Forbidden):
        authorize_search(app.state.user("bob"), app.state.tasking("T-1"))
    approve_tasking(app, app.state.user("sam"), "T-1")
    authorize_search(app.state.user("bob"), app.state.tasking("T-1"))


def test_the_approval_records_who_gets_access(app):
    request_tasking(app, app.state.user("alice"), make_tasking(**PENDING, team=["dana", "alice"]))
    approve_tasking(app, app.state.user("sam"), "T-1")
    [entry] = list(app.audit.entries(["tasking.approve"]))
    assert entry.payload["access"] == [{"name": "alice", "role": "analyst", "as": "requester"},
                                       {"name": "dana", "role": "detective", "as": "team"}]
    assert access(app, app.state.tasking("T-1")) == entry.payload["access"]


def test_the_cli_approval_prints_the_team_with_roles(app, tmp_path):
    request_tasking(app, app.state.user("alice"), make_tasking(**PENDING, team=["dana"]))
    app.close()
    data = str(tmp_path / "d")
    approved = fcmon("--data-dir", data, "--as", "sam", "tasking", "approve", "T-1")
    assert approved.returncode == 0, approved.stderr
    assert "access: alice (analyst, requester), dana (detective, team)" in approved.stdout
    add_file = tmp_path / "t2.json"
    add_file.write_text(make_tasking(**PENDING, id="T-2", team=["nobody"]).model_dump_json())
    refused = fcmon("--data-dir", data, "--as", "alice", "tasking", "add", "--file", str(add_file))
    assert refused.returncode == 2 and "team names 'nobody', which is no user" in refused.stderr


def test_the_cli_approval_json_lists_the_access(app, tmp_path):
    request_tasking(app, app.state.user("alice"), make_tasking(**PENDING, team=["dana"]))
    app.close()
    approved = fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "tasking", "approve", "T-1", "--json", check=True)
    assert [m["name"] for m in json.loads(approved.stdout)["access"]] == ["alice", "dana"]
