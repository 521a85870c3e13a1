"""Kibana's privileges question (`POST /_security/user/_has_privileges`) is answered by the gateway for the fcmon user
who asks, from their role (pipeline/gateway_privileges.py); forwarded, the node answered it for fcmon's service
account, whatever the user. In front of the session's real Elasticsearch, through the tap."""
from __future__ import annotations

import pytest

from tests.factories_gateway import call, setup  # noqa: F401  (setup is a fixture)

VERSION = "8.19.0"
READ = ["login:", f"version:{VERSION}", "app:discover", "app:dashboards", "ui:discover/show", "ui:dashboard/show",
        "ui:navLinks/discover", f"ui:{VERSION}:visualize/show", "saved_object:index-pattern/get",
        "saved_object:dashboard/find", "saved_object:search/bulk_get"]
WRITE = ["ui:discover/save", "ui:dashboard/createNew", "saved_object:dashboard/create", "saved_object:index-pattern/delete",
         "saved_object:search/update", "api:bulkGetUserProfiles", "app:management", "ui:management/kibana/spaces",
         "saved_object:alert/get", "space:manage", "ui:navLinks/management"]
QUESTION = {"cluster": ["monitor", "manage_security"],
            "index": [{"names": ["fcmon-records", "fcmon-audit", "other-index"], "privileges": ["read", "view_index_metadata", "write"]}],
            "application": [{"application": "kibana-.kibana", "resources": ["space:default"], "privileges": READ + WRITE}]}


@pytest.mark.parametrize("user,records,audit", [
    ("alice", True, False),  # analyst
    ("sue", True, True),  # supervisor
    ("sam", True, True),  # supervisor
    ("fcmon", False, True),  # the service account: an administrator
])
def test_the_gateway_answers_kibanas_privileges_question_for_the_user_who_asks(setup, user, records, audit):
    _, base, _ = setup
    status, answer = call(base, "POST", "/_security/user/_has_privileges", QUESTION, user=user, tasking=None)
    assert status == 200, answer
    assert answer["username"] == user and answer["has_all_requested"] is False
    assert answer["cluster"] == {"monitor": False, "manage_security": False}
    assert answer["index"] == {"fcmon-records": {"read": records, "view_index_metadata": records, "write": False},
                               "fcmon-audit": {"read": audit, "view_index_metadata": audit, "write": False},
                               "other-index": {"read": False, "view_index_metadata": False, "write": False}}
    asked = answer["application"]["kibana-.kibana"]["space:default"]
    assert asked == {**{p: True for p in READ}, **{p: False for p in WRITE}}
    assert setup.forwarded == []


def test_kibanas_own_login_is_answered_by_elasticsearch_and_nobody_is_answered_at_all(setup):
    _, base, _ = setup
    status, answer = call(base, "POST", "/_security/user/_has_privileges", QUESTION, user=None, tasking=None)
    assert status == 401 and setup.forwarded == []
    status, answer = call(base, "POST", "/_security/user/_has_privileges", QUESTION, user="kibana_system", tasking=None)
    assert status == 401 and "kibana_system" in answer["error"]["reason"]  # this node does not know Kibana's login
    assert [r["path"] for r in setup.forwarded] == ["/_security/user/_has_privileges"]


@pytest.mark.parametrize("raw", [b"[1]", b'{"application": "x"}', b"{", b'{"index": [{"names": "fcmon-records"}]}'])
def test_a_privileges_question_that_is_not_its_shape_is_refused_or_answered_as_nothing(setup, raw):
    _, base, _ = setup
    status, answer = call(base, "POST", "/_security/user/_has_privileges", raw=raw, tasking=None)
    assert status in (200, 400) and setup.forwarded == []
    if status == 200:
        assert answer["index"] == {} and answer["has_all_requested"] is True
