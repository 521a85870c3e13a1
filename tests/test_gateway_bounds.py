"""What a request can make the gateway write to the append-only audit log, and that every request reaching the gate is
logged whatever its content (the outside test's holes 1 and 2), on the session's real Elasticsearch."""
from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.audit import canonical_json
from tests.factories_gateway import call, setup  # noqa: F401  (setup is a fixture)


def entries(app, kind: str) -> list:
    return list(app.audit.entries([kind]))


def test_a_refused_sign_in_keeps_a_hundred_characters_of_its_name_and_its_length(setup):
    app, base, _ = setup
    name = "n" * 12_000
    status, answer = call(base, "GET", "/_security/_authenticate", user=name, tasking=None)
    assert status == 401 and "wrong password" in answer["error"]["reason"]
    (refused,) = entries(app, "gateway.login.refused")
    assert refused.actor == refused.payload["user"] == "n" * 100 + "... (12,000 characters)"
    assert len(canonical_json(refused.payload)) < 500
    assert setup.forwarded == []


def test_a_throttled_name_is_logged_once_a_window_however_often_it_tries(setup):
    app, base, _ = setup
    for _ in range(5):
        assert call(base, "GET", "/_security/_authenticate", password="a wrong guess", tasking=None)[0] == 401
    for _ in range(20):
        assert call(base, "GET", "/_security/_authenticate", password="a wrong guess", tasking=None)[0] == 429
    reasons = [e.payload["reason"] for e in entries(app, "gateway.login.refused")]
    assert len(reasons) == 6 and reasons[-1] == "throttled"


def test_every_entry_of_a_large_search_is_bounded_and_says_what_was_cut(setup):
    app, base, _ = setup
    values = [f"value-{n:06d}" for n in range(20_000)]
    raw = json.dumps({"query": {"bool": {"filter": [{"terms": {"user.name": values}}]}}}).encode()
    status, _ = call(base, "POST", "/fcmon-records/_search", raw=raw)
    assert status == 200
    (query,) = entries(app, "query")
    assert len(canonical_json(query.payload)) < 64 * 1024
    cut = query.payload["cut"]
    assert cut["filters.body"] == {"chars": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    terms = [f"user.name:{v}" for v in values]
    assert cut["query"] == {"chars": len(" ".join(terms)), "sha256": hashlib.sha256(" ".join(terms).encode()).hexdigest()}
    kept = query.payload["filters"]["terms"]
    assert kept == terms[:len(kept)] and 0 < len(kept) < len(terms)
    assert query.payload["filters"]["terms_cut"] == {
        "terms": len(terms), "kept": len(kept), "sha256": hashlib.sha256("\n".join(terms).encode()).hexdigest()}
    assert app.audit.verify().ok


def test_a_refused_large_search_is_bounded_too(setup):
    app, base, _ = setup
    raw = json.dumps({"query": {"match": {"message": "w" * 50_000}}, "suggest": {}}).encode()
    assert call(base, "POST", "/fcmon-records/_search", raw=raw)[0] == 403
    (refused,) = entries(app, "query.refused")
    assert len(canonical_json(refused.payload)) < 64 * 1024 and set(refused.payload["cut"]) >= {"query", "filters.body"}


@pytest.mark.parametrize("path,raw,content_type", [
    ("/fcmon-records/_search", rb'{"query": {"match": {"message": "\ud800"}}}', None),
    ("/fcmon-records/_search", rb'{"query": {"match": {"\udfff": "converters"}}}', None),
    ("/fcmon-records/_count", rb'{"query": {"query_string": {"query": "a\ud800b"}}}', None),
    ("/fcmon-records/_msearch", b'{}\n{"query": {"match": {"message": "\\ud800"}}}\n', "application/x-ndjson"),
])
def test_a_body_holding_a_lone_surrogate_is_refused_and_logged(setup, path, raw, content_type):
    app, base, _ = setup
    status, answer = call(base, "POST", path, raw=raw, content_type=content_type)
    assert status in (400, 403) and "lone surrogate" in answer["error"]["reason"], answer
    assert setup.forwarded == []
    logged = entries(app, "query") + entries(app, "query.refused")
    assert len(logged) == 1 and logged[0].payload["filters"]["body"] == raw.decode()
    assert app.audit.verify().ok


def test_an_audit_read_lists_its_terms_bounded_too(setup):
    app, base, _ = setup
    values = [f"user-{n:06d}" for n in range(20_000)]
    status, _ = call(base, "POST", "/fcmon-audit/_search", {"query": {"terms": {"actor": values}}}, user="sam", tasking=None)
    assert status == 200
    (read,) = entries(app, "audit.read")
    assert len(canonical_json(read.payload)) < 64 * 1024
    assert read.payload["terms_cut"]["terms"] == 20_000 and read.payload["terms"] == [f"actor:{v}" for v in values][
        :read.payload["terms_cut"]["kept"]]
