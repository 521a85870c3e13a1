"""Every kind of request the gateway routes, called over HTTP as nobody and as every role (analyst, detective,
supervisor, administrator, fcmon's service account, Kibana's own login), with the status each gets; in front of the
session's real Elasticsearch through the tap. A route kind, a forwarded read endpoint or an answer the gateway gives
itself without a row here fails test_every_route_has_a_row."""
from __future__ import annotations

import pytest

from pipeline.gateway import ANSWERED_HERE, FORWARDED_READS, READ_ENDPOINTS, ROUTE_KINDS, route
from tests.factories_gateway import IDS, PASSWORD_HASH, RECORDS_ALIAS, WRITES_INDEX, call, setup  # noqa: F401

CALLERS = ("nobody", "alice", "dana", "sam", "ada", "fcmon", "kibana_system")  # analyst .. admin, service, Kibana
SEARCHED = {"nobody": 401, "alice": 200, "dana": 403, "sam": 200, "ada": 403, "fcmon": 403, "kibana_system": 403}
REFUSED = {"nobody": 401, **{c: 403 for c in CALLERS[1:]}}
AUDIT = {"nobody": 401, "alice": 403, "dana": 403, "sam": 200, "ada": 200, "fcmon": 200, "kibana_system": 200}
HOUSEKEEPING = {"nobody": 401, **{c: 200 for c in CALLERS[1:-1]}, "kibana_system": 401}  # Kibana's: its own login
LISTING = {**HOUSEKEEPING, "alice": 403, "dana": 403}
TO_KIBANA = {**REFUSED, "kibana_system": 401}  # forwarded with Kibana's login, which this node does not know
OWN = IDS["T-1"][0]

# (row, method, path, body, ndjson, expected status per caller)
ROWS = [
    ("read _search", "POST", "/fcmon-records/_search", {"query": {"match": {"message": "cash"}}}, False, SEARCHED),
    ("read _msearch", "POST", "/_msearch", [{"index": RECORDS_ALIAS}, {"query": {"match_all": {}}}], True, SEARCHED),
    ("read _async_search", "POST", "/fcmon-records/_async_search", {}, False, SEARCHED),
    ("read _count", "GET", "/fcmon-records/_count", None, False, SEARCHED),
    ("read _field_caps", "GET", "/fcmon-records/_field_caps?fields=*", None, False, SEARCHED),
    ("read _mget", "POST", "/fcmon-records/_mget", {"ids": [OWN]}, False, SEARCHED),
    ("read _doc", "GET", f"/fcmon-records/_doc/{OWN}", None, False, SEARCHED),
    ("read _source", "GET", f"/fcmon-records/_source/{OWN}", None, False, SEARCHED),
    ("read _pit", "POST", "/fcmon-records/_pit?keep_alive=1m", None, False, SEARCHED),
    ("read, not forwarded", "POST", "/fcmon-records/_terms_enum", {"field": "user.name"}, False, REFUSED),
    ("audit-read", "POST", "/fcmon-audit/_search", {"query": {"match_all": {}}}, False, AUDIT),
    ("housekeeping answered: _authenticate", "GET", "/_security/_authenticate", None, False, HOUSEKEEPING),
    ("housekeeping answered: _has_privileges", "POST", "/_security/user/_has_privileges", {"cluster": ["monitor"]},
     False, HOUSEKEEPING),
    ("housekeeping forwarded", "GET", "/_cluster/health", None, False, HOUSEKEEPING),
    ("housekeeping: index resolution", "GET", "/_resolve/index/*", None, False, HOUSEKEEPING),
    ("housekeeping: every index listed", "GET", "/_cat/indices", None, False, LISTING),
    ("housekeeping: freeing a context", "DELETE", "/_pit", {"id": "not-opened-here"}, False, TO_KIBANA),
    ("system", "GET", "/.kibana/_doc/space:default", None, False, TO_KIBANA),
    ("other: a write", "PUT", f"/{WRITES_INDEX}/_doc/1", {"x": 1}, False, {**REFUSED, "fcmon": 201}),
    ("other: a cluster call", "GET", "/_tasks", None, False, {**TO_KIBANA, "fcmon": 200}),
]


def test_every_route_has_a_row():
    kinds = {route(method, path, RECORDS_ALIAS).kind for _, method, path, *_ in ROWS}
    assert kinds == set(ROUTE_KINDS)
    endpoints = {route(method, path, RECORDS_ALIAS).endpoint for row, method, path, *_ in ROWS if row.startswith("read ")}
    assert endpoints == set(FORWARDED_READS)
    assert {route(m, p, RECORDS_ALIAS).endpoint for row, m, p, *_ in ROWS if row == "read, not forwarded"} < set(READ_ENDPOINTS)
    assert {path for _, _, path, *_ in ROWS} >= set(ANSWERED_HERE)


@pytest.mark.parametrize("row,method,path,body,ndjson,expected", ROWS, ids=[r[0] for r in ROWS])
def test_each_route_as_nobody_and_as_every_role(setup, row, method, path, body, ndjson, expected):
    app, base, _ = setup
    for name in ("dana", "ada"):
        app.state.set_password_hash(name, PASSWORD_HASH)
    got = {caller: call(base, method, path, body, user=None if caller == "nobody" else caller, ndjson=ndjson)[0]
           for caller in CALLERS}
    assert got == expected
