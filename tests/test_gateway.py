"""`fcmon gateway` against a recording upstream on 127.0.0.1: audited before forwarding, restricted, fail closed."""
from __future__ import annotations

import base64
import json
import socket
import urllib.parse
import urllib.request

import pytest

from pipeline.gateway import Gateway, Refusal, parse_body, request_terms, response_hits, route
from tests.factories_gateway import PASSWORD, Upstream, call, setup  # noqa: F401  (setup is a fixture)
from tests.factories_web import raw_request
from tests.test_kibana_objects import objects as kibana_objects


def kinds(app) -> list[str]:
    return [e.kind for e in app.audit.entries()]


KQL_BODY = {"size": 10, "query": {"bool": {"filter": [
    {"multi_match": {"type": "best_fields", "query": "converter", "lenient": True}},
    {"match_phrase": {"user.name": "wrenchman"}},
    {"range": {"@timestamp": {"gte": "2026-01-01"}}}]}}}


def test_a_search_is_logged_before_it_is_forwarded_restricted_and_counted(setup):
    app, base, _ = setup
    status, answer = call(base, "POST", "/fcmon-records/_search", KQL_BODY)
    assert status == 200 and answer["hits"]["total"]["value"] == 2
    (seen,) = Upstream.received
    assert seen["queries_logged"] == 1  # the QueryEvent was durable before the upstream saw anything
    forwarded = json.loads(seen["body"])
    assert forwarded["query"]["bool"]["filter"] == [{"term": {"fcm.tasking_id": "T-1"}}]
    assert forwarded["query"]["bool"]["must"] == [KQL_BODY["query"]]
    assert seen["headers"]["Authorization"] == "Basic " + base64.b64encode(b"fcmon-es:es-secret").decode()
    assert "X-Fcmon-Tasking" not in seen["headers"]
    query, result = [e for e in app.audit.entries() if e.kind in ("query", "query.result")]
    assert query.payload["interface"] == "kibana" and query.payload["client"] == "127.0.0.1"
    assert query.payload["user"] == "alice" and query.payload["tasking_id"] == "T-1"
    assert query.payload["case_number"] == "2026-CR-1"
    assert query.payload["filters"]["terms"] == ["converter", "user.name:wrenchman"]
    assert result.payload == {**result.payload, "query_id": query.payload["id"], "hits_total": 2, "returned_ids": ["r1", "r2"]}
    assert app.audit.verify().ok


def test_msearch_and_count_are_restricted_and_counted(setup):
    app, base, _ = setup
    lines = [{"index": "fcmon-records"}, {"query": {"match": {"message": "pallets"}}},
             {"index": "fcmon-records*"}, {"query": {"query_string": {"query": "docks"}}}]
    status, _ = call(base, "POST", "/_msearch", lines, ndjson=True)
    assert status == 200
    bodies = [json.loads(line) for line in Upstream.received[0]["body"].splitlines()]
    assert all(b["query"]["bool"]["filter"] == [{"term": {"fcm.tasking_id": "T-1"}}] for b in bodies[1::2])
    assert call(base, "GET", "/fcmon-records/_count")[0] == 200
    results = [e.payload for e in app.audit.entries(["query.result"])]
    assert [r["hits_total"] for r in results] == [4, 5] and results[0]["returned_ids"] == ["a", "b"]
    assert [e.payload["query"] for e in app.audit.entries(["query"])] == ["message:pallets docks", ""]


def test_documents_of_other_taskings_are_not_found(setup):
    app, base, _ = setup
    assert call(base, "GET", "/fcmon-records/_doc/own")[0] == 200
    status, answer = call(base, "GET", "/fcmon-records/_doc/foreign")
    assert status == 404 and answer["found"] is False and "_source" not in answer
    assert [e.payload["hits_total"] for e in app.audit.entries(["query.result"])] == [1, 0]


@pytest.mark.parametrize("kwargs,status,reason", [
    ({"user": None}, 401, "authentication required"),
    ({"password": "wrong password!"}, 401, "wrong password"),
    ({"user": "dana"}, 401, "wrong password"),  # no password set
    ({"tasking": None}, 403, "no tasking"),
    ({"tasking": "T-2"}, 403, "neither the requester nor on the team"),
    ({"tasking": "T-old"}, 403, "expired"),
    ({"tasking": "T-nope"}, 403, "unknown tasking"),
    ({"path": "/fcmon-audit/_search"}, 403, "supervisors"),
    ({"path": "/_search"}, 403, "name the records index"),
    ({"path": "/*/_search"}, 403, "only fcmon-records may be searched"),
    ({"path": "/fcmon-*/_search"}, 403, "only fcmon-records may be searched"),
    ({"path": "/.kibana/_search"}, 403, "Kibana's own account"),
])
def test_refused_reads_forward_nothing(setup, kwargs, status, reason):
    app, base, _ = setup
    path = kwargs.pop("path", "/fcmon-records/_search")
    got, answer = call(base, "POST", path, KQL_BODY, **kwargs)
    assert got == status and reason in answer["error"]["reason"]
    assert Upstream.received == []
    assert "query" not in kinds(app)
    if status == 403 and "_search" in path and not path.startswith(("/fcmon-audit", "/.kibana")):
        (refused,) = app.audit.entries(["query.refused"])
        assert refused.payload["interface"] == "kibana" and refused.payload["query"]  # the terms entered are kept


def test_writes_only_from_the_service_account(setup):
    app, base, _ = setup
    record = {"message": "planted"}
    for method, path in (("PUT", "/fcmon-records/_doc/x"), ("POST", "/fcmon-records/_doc"), ("POST", "/fcmon-records/_doc/x"),
                         ("DELETE", "/fcmon-records/_doc/x"), ("POST", "/fcmon-records/_bulk"), ("POST", "/fcmon-records/_update/x"),
                         ("DELETE", "/fcmon-records"), ("POST", "/fcmon-records/_delete_by_query"),
                         # Elasticsearch takes `_search` or `_mget` as a document id: these are writes, not reads
                         ("POST", "/fcmon-records/_create/_mget"), ("POST", "/fcmon-records/_create/_pit"),
                         ("POST", "/fcmon-records/_update/_pit"), ("PUT", "/fcmon-records/_doc/_search")):
        assert call(base, method, path, record)[0] == 403
    assert call(base, "PUT", "/fcmon-records/_doc/x", record, user="sam")[0] == 403  # a supervisor is no exception
    assert Upstream.received == []
    assert call(base, "PUT", "/fcmon-records/_doc/x", record, user="kibana_system", tasking=None)[0] == 403
    assert call(base, "POST", "/.kibana_8.15.0/_doc/config", record, user="fcmon", tasking=None)[0] == 403
    assert Upstream.received == []
    assert call(base, "PUT", "/fcmon-records/_doc/x", record, user="fcmon", tasking=None)[0] == 200
    assert Upstream.received[-1]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"fcmon-es:es-secret").decode()
    assert call(base, "POST", "/.kibana_8.15.0/_doc/config", record, user="kibana_system", tasking=None)[0] == 200
    own = "Basic " + base64.b64encode(f"kibana_system:{PASSWORD}".encode()).decode()
    assert Upstream.received[-1]["headers"]["Authorization"] == own  # Kibana's own work, with Kibana's own login
    assert [r["method"] for r in Upstream.received] == ["PUT", "POST"]


def test_kibanas_own_cluster_calls(setup):
    _, base, _ = setup
    to_system = [{"index": {"_index": ".kibana_8.15.0", "_id": "a"}}, {"x": 1}]
    to_records = [{"index": {"_index": ".kibana_8.15.0", "_id": "a"}}, {"x": 1}, {"delete": {"_index": "fcmon-records", "_id": "r1"}}]
    assert call(base, "POST", "/_bulk", to_system, user="kibana_system", tasking=None, ndjson=True)[0] == 200
    assert call(base, "POST", "/_bulk", to_records, user="kibana_system", tasking=None, ndjson=True)[0] == 403
    assert call(base, "POST", "/_reindex", {"source": {"index": "fcmon-records"}, "dest": {"index": ".x"}},
                user="kibana_system", tasking=None)[0] == 403
    assert call(base, "PUT", "/_index_template/kibana", {}, user="kibana_system", tasking=None)[0] == 200
    assert call(base, "PUT", "/_index_template/kibana", {}, user="alice", tasking=None)[0] == 403
    assert [r["path"] for r in Upstream.received] == ["/_bulk", "/_index_template/kibana"]


def test_kibanas_account_reads_no_records(setup):
    app, base, _ = setup
    assert call(base, "POST", "/fcmon-records/_search", KQL_BODY, user="kibana_system")[0] == 403
    assert Upstream.received == []
    (refused,) = app.audit.entries(["query.refused"])
    assert refused.actor == "kibana_system"


def test_password_guessing_is_throttled_per_user_and_audited(setup):
    app, base, _ = setup
    for _ in range(5):
        assert call(base, "GET", "/_security/_authenticate", password="a wrong guess", tasking=None)[0] == 401
    status, answer = call(base, "GET", "/_security/_authenticate", tasking=None)
    assert status == 429 and "too many failed sign-ins for alice" in answer["error"]["reason"]  # even the right one waits
    assert call(base, "GET", "/_security/_authenticate", user="sam", tasking=None)[0] == 200  # others sign in as before
    assert Upstream.received == []
    refused = list(app.audit.entries(["gateway.login.refused"]))
    assert [e.actor for e in refused] == ["alice"] * 6 and refused[0].payload["client"] == "127.0.0.1"
    assert [e.payload["reason"] for e in refused][-2:] == ["unknown user or wrong password (set one with "
                                                           "`fcmon user set-password NAME`)", "throttled"]


def test_authenticate_is_answered_for_fcmon_users(setup):
    _, base, _ = setup
    status, answer = call(base, "GET", "/_security/_authenticate", tasking=None)
    assert status == 200 and answer["username"] == "alice" and answer["roles"] == ["fcmon_analyst"]
    assert Upstream.received == []


def test_housekeeping_is_forwarded_without_a_tasking(setup):
    _, base, _ = setup
    status, answer = call(base, "GET", "/", tasking=None)
    assert status == 200 and answer["version"]["number"] == "8.15.0"
    assert call(base, "GET", "/_snapshot", tasking=None)[0] == 403  # not needed by Kibana through the gateway
    assert call(base, "POST", "/_security/user/_has_privileges", {"cluster": ["monitor"]}, tasking=None)[0] == 200
    assert call(base, "GET", "/fcmon-records/_mapping", tasking=None)[0] == 200
    assert [r["path"] for r in Upstream.received] == ["/", "/_security/user/_has_privileges", "/fcmon-records/_mapping"]


def test_supervisors_read_the_audit_index_logged(setup):
    app, base, _ = setup
    assert call(base, "POST", "/fcmon-audit/_search", {"query": {"match_all": {}}}, user="sam", tasking=None)[0] == 200
    (read,) = app.audit.entries(["audit.read"])
    assert read.actor == "sam" and read.payload["path"] == "/fcmon-audit/_search"


def test_no_audit_log_no_forwarding(setup):
    app, base, tmp_path = setup
    assert call(base, "GET", "/fcmon-records/_count")[0] == 200  # the head file is open now
    Upstream.received.clear()
    head = tmp_path / "d" / "audit.head"
    head.unlink()
    head.mkdir()  # the log opens, but no entry can be completed
    status, answer = call(base, "POST", "/fcmon-records/_search", KQL_BODY)
    assert status == 503 and "audit log cannot be written" in answer["error"]["reason"]
    assert Upstream.received == []


@pytest.mark.parametrize("method,path,kind", [
    ("POST", "/fcmon-records/_search", "read"), ("GET", "/fcmon-records/_doc/1", "read"),
    ("POST", "/fcmon-records/_async_search", "read"), ("GET", "/_async_search/abc", "read"),
    ("POST", "/fcmon-records/_field_caps", "read"), ("GET", "/", "housekeeping"),
    ("GET", "/_nodes?filter_path=nodes.*.version", "housekeeping"), ("GET", "/.kibana/_doc/x", "system"),
    ("DELETE", "/fcmon-records/_doc/1", "other"), ("POST", "/fcmon-records/_doc", "other"),
    ("DELETE", "/_pit", "housekeeping"), ("DELETE", "/_async_search/abc", "housekeeping"),
    ("DELETE", "/fcmon-records", "other"), ("GET", "/fcmon-audit-1/_search", "audit-read"),
    ("POST", "/fcmon-records/_create/_search", "other"), ("POST", "/fcmon-records/_update/_pit", "other"),
    ("GET", "/fcmon-records/_doc/_search", "read"), ("POST", "/_snapshot/_search/scroll", "other"),
    ("POST", "/_security/user/_has_privileges", "housekeeping"), ("POST", "/_security/user/x/_has_privileges", "other"),
])
def test_routes(method, path, kind):
    assert route(method, path, "fcmon-records").kind == kind


def nested_bool(levels: int) -> dict:
    query: dict = {"match_all": {}}
    for _ in range(levels):
        query = {"bool": {"must": query}}
    return query


def terms_of(endpoint: str, raw: bytes) -> list[str]:
    return request_terms(endpoint, parse_body(endpoint, raw, "application/x-ndjson" if endpoint == "_msearch" else "application/json"))


def test_terms_from_kibana_bodies():
    assert terms_of("_search", json.dumps({"query": {"query_string": {"query": "a AND b"}}}).encode()) == ["a AND b"]
    assert terms_of("_search", json.dumps({"query": {"terms": {"fcm.source_kind": ["x", "y"]}}}).encode()) == \
        ["fcm.source_kind:x", "fcm.source_kind:y"]
    assert terms_of("_search", b"") == [] and terms_of("_search", b'{"query": ') == []
    intervals = {"intervals": {"message": {"all_of": {"intervals": [{"match": {"query": "cut pipe"}},
                                                                    {"wildcard": {"pattern": "conv*"}}]}}}}
    assert terms_of("_search", json.dumps({"query": {"bool": {"must": [
        intervals, {"span_term": {"user.name": "wrenchman"}},
        {"more_like_this": {"fields": ["message"], "like": ["stolen converters", {"_id": "x"}]}}]}}}).encode()) == \
        ["message:cut pipe", "message:conv*", "user.name:wrenchman", "stolen converters"]  # the ledger misses none
    searches = [{"index": "fcmon-records"}, {"query": {"match": {"message": "one"}}}, {}, {"query": {"term": {"a": "two"}}}]
    assert terms_of("_msearch", "".join(json.dumps(line) + "\n" for line in searches).encode()) == ["message:one", "a:two"]


@pytest.mark.parametrize("path,raw,reason,content_type", [
    ("/fcmon-records/_search", b'{"query": ', "not valid JSON (Expecting value", None),
    ("/fcmon-records/_search", b'["a", "list"]', "_search takes a JSON object", None),
    ("/fcmon-records/_field_caps?fields=*", b"[1]", "_field_caps takes a JSON object", None),
    ("/fcmon-records/_count", b"\xff\xfe\x00", "not valid JSON", None),
    # Elasticsearch reads YAML (CBOR, Smile) too, where the index checks read JSON
    ("/fcmon-records/_mget", b"docs:\n - _index: fcmon-audit\n   _id: e1\n", "'application/yaml' is not read: send JSON",
     "application/yaml"),
    ("/fcmon-records/_search", b"[" * 100_000 + b"]" * 100_000, "not valid JSON (maximum recursion depth", None),
    ("/fcmon-records/_search", json.dumps({"query": nested_bool(150)}).encode(), "nested deeper than 100 levels", None),
])
def test_a_body_its_endpoint_cannot_take_is_refused_once_logged_and_never_forwarded(setup, path, raw, reason, content_type):
    app, base, _ = setup
    status, answer = call(base, "POST", path, raw=raw, content_type=content_type)
    assert status == 400 and reason in answer["error"]["reason"], answer
    assert Upstream.received == []
    (query,) = app.audit.entries(["query"])
    (result,) = app.audit.entries(["query.result"])
    assert (result.payload["query_id"], result.payload["hits_total"]) == (query.payload["id"], 0)


@pytest.mark.parametrize("headers, status, message", [
    ({"Content-Length": str(200 * 1024 * 1024)}, 413, "over this service's limit of 104,857,600 bytes"),
    ({"Content-Length": "-5"}, 400, "is negative"),
    ({"Content-Length": "1e3"}, 400, "is not a number of bytes"),
    ({"Transfer-Encoding": "chunked"}, 411, "send it with a Content-Length"),
])
def test_a_body_is_read_only_when_its_length_is_sound(setup, headers, status, message):
    app, base, _ = setup
    auth = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    got, body = raw_request(base, "POST", "/fcmon-records/_search", {"Authorization": auth, "X-Fcmon-Tasking": "T-1", **headers})
    assert got == status and message in json.loads(body)["error"]["reason"]
    assert Upstream.received == [] and kinds(app) == []  # refused before anything was read, logged or forwarded


GLOBAL_AGGS = {"size": 0, "aggs": {"all": {"global": {}, "aggs": {"docs": {"top_hits": {"size": 100}}}}}}


@pytest.mark.parametrize("method,path,body,reason", [
    ("POST", "/fcmon-records/_search?q=*", KQL_BODY, "'q' is not forwarded"),  # q replaces the body's query
    ("GET", "/fcmon-records/_search?source=%7B%7D&source_content_type=application/json", None, "'source' is not forwarded"),
    ("POST", "/fcmon-records/_count?q=user.name:wrenchman", None, "'q' is not forwarded"),
    ("POST", "/fcmon-records/_search", GLOBAL_AGGS, "a 'global' aggregation"),
    ("POST", "/fcmon-records/_search", {"aggs": {"by": {"terms": {"field": "user.name"}, "aggs": {"all": {"global": {}}}}}},
     "a 'global' aggregation"),
    ("POST", "/fcmon-records/_search", {"suggest": {"s": {"text": "wrench", "term": {"field": "message"}}}}, "'suggest'"),
    ("POST", "/fcmon-records/_search", {"knn": {"field": "v", "query_vector": [1.0], "k": 5}}, "'knn'"),
    ("POST", "/fcmon-records/_search", {"retriever": {"standard": {"query": {"match_all": {}}}}}, "'retriever'"),
    ("POST", "/fcmon-records/_search", {**KQL_BODY, "explain": True}, "'explain'"),  # document counts of every tasking
    ("POST", "/fcmon-records/_async_search", {"suggest": {}}, "'suggest'"),
    # clauses that fetch a stored document server-side, past the filter: the answer is an oracle on its content
    ("POST", "/fcmon-records/_search", {"query": {"bool": {"filter": [{"terms": {"user.name": {
        "index": "fcmon-audit", "id": "e1", "path": "user"}}}]}}}, "a terms lookup"),
    ("POST", "/fcmon-records/_search", {"query": {"more_like_this": {"fields": ["message"], "like": [
        "plain text is fine", {"_id": "a-record-of-another-tasking"}]}}}, "more_like_this of a stored document"),
    ("POST", "/fcmon-records/_search", {"query": {"pinned": {"docs": [{"_index": "fcmon-audit", "_id": "e1"}],
                                                              "organic": {"match_all": {}}}}}, "the '_index' clause"),
    ("POST", "/fcmon-records/_search", {"post_filter": {"percolate": {"field": "q", "index": "x", "id": "1"}}}, "'percolate'"),
    ("POST", "/fcmon-records/_search", {"query": {"wrapper": {"query": "eyJtYXRjaF9hbGwiOnt9fQ=="}}}, "'wrapper' query hides"),
    ("POST", "/fcmon-records/_count", {"query": {"match_all": {}}, "aggs": {}}, "'aggs'"),
    ("POST", "/fcmon-records/_terms_enum", {"field": "user.name", "string": "wr"}, "terms_agg"),
    ("GET", "/fcmon-records/_termvectors/r1", None, "_termvectors is not forwarded"),
    ("GET", "/fcmon-records/_explain/r1?_source=true", None, "_explain is not forwarded"),
    ("POST", "/fcmon-records/_validate/query?rewrite=true", {"query": {"wildcard": {"user.name": "a*"}}}, "_validate"),
    ("POST", "/fcmon-records/_search/template", {"source": {"query": {"match_all": {}}}}, "search templates"),
    ("POST", "/fcmon-records/_mget", {"docs": [{"_index": "fcmon-audit", "_id": "x"}]}, "only fcmon-records"),
    # a terms aggregation with min_doc_count 0 lists terms of documents no query matched: every tasking's
    ("POST", "/fcmon-records/_search", {"size": 0, "aggs": {"u": {"terms": {"field": "user.name", "min_doc_count": 0}}}},
     "a 'terms' aggregation with min_doc_count 0"),
    ("POST", "/fcmon-records/_search", {"size": 0, "aggs": {"by": {"date_histogram": {"field": "@timestamp"}, "aggs": {
        "u": {"multi_terms": {"terms": [{"field": "user.name"}], "min_doc_count": "0"}}}}}},
     "a 'multi_terms' aggregation with min_doc_count 0"),
    # URL parameters: filter_path and format change the answer that the not-found check and the hit count read
    ("GET", "/fcmon-records/_doc/foreign?filter_path=_source", None, "'filter_path' is not forwarded"),
    ("POST", "/fcmon-records/_mget?filter_path=docs._id,docs._source", {"ids": ["own", "foreign"]}, "'filter_path'"),
    ("GET", "/fcmon-records/_source/foreign?format=yaml", None, "'format' is not forwarded"),
    ("POST", "/fcmon-records/_search?explain=true", KQL_BODY, "'explain' is not forwarded"),
    ("POST", "/fcmon-records/_search?suggest_field=message&suggest_text=wrench", KQL_BODY, "'suggest_field'"),
    # a lookup runtime field fetches documents of any index by id
    ("POST", "/fcmon-records/_search", {"runtime_mappings": {"p": {"type": "keyword", "script": "emit('e1')"}, "s": {
        "type": "lookup", "target_index": "fcmon-audit-*", "input_field": "p", "target_field": "_id", "fetch_fields": ["*"]}},
        "fields": ["s"]}, "a 'lookup' runtime field"),
    ("POST", "/fcmon-records/_search", {"aggs": {"u": {"terms": {"field": "user.name", "min_doc_count": 1e999}}}},
     "min_doc_count 0"),  # not a count: refused as one that lists every term, not a crash
    # Elasticsearch splits URL parameters on ";" as on "&"
    ("POST", "/fcmon-records/_search?x=1;q=*", KQL_BODY, "'q' is not forwarded"),
    ("POST", "/fcmon-records/_async_search?a=1;source=%7B%7D", None, "'source' is not forwarded"),
])
def test_reads_that_would_step_around_the_tasking_filter_are_refused_and_logged(setup, method, path, body, reason):
    app, base, _ = setup
    status, answer = call(base, method, path, body)
    assert status == 403 and reason in answer["error"]["reason"]
    assert Upstream.received == []
    (refused,) = app.audit.entries(["query.refused"])
    assert reason in refused.payload["refusal"] and refused.payload["filters"]["path"] == path


def test_an_msearch_with_one_unconfined_search_is_refused_whole(setup):
    app, base, _ = setup
    lines = [{"index": "fcmon-records"}, KQL_BODY, {"index": "fcmon-records"}, GLOBAL_AGGS]
    status, answer = call(base, "POST", "/_msearch", lines, ndjson=True)
    assert status == 403 and "a 'global' aggregation" in answer["error"]["reason"]
    assert Upstream.received == [] and "query" not in kinds(app)
    status, answer = call(base, "POST", "/_msearch", [{"index": "fcmon-records"}, ["not", "an", "object"]], ndjson=True)
    assert status == 403 and "not NDJSON" in answer["error"]["reason"]


def top_terms_body() -> dict:
    """The body of the analyst dashboard's Top terms panel, as Kibana sends it (its context becomes the query)."""
    (saved,) = [o for o in kibana_objects() if o["id"] == "fcmon-top-terms"]
    spec = json.loads(json.loads(saved["attributes"]["visState"])["params"]["spec"])
    return {**spec["data"]["url"]["body"], "query": {"bool": {"filter": [{"range": {"@timestamp": {"gte": "now-7d"}}}]}}}


def test_significant_terms_are_measured_against_the_taskings_own_documents(setup):
    _, base, _ = setup
    body = top_terms_body()
    body["aggs"]["by_source"] = {"terms": {"field": "fcm.source_kind"}, "aggs": {"authors": {"significant_terms": {
        "field": "user.name", "background_filter": {"term": {"fcm.source_kind": "forum_post"}}}}}}
    assert call(base, "POST", "/fcmon-records/_search", body)[0] == 200
    forwarded = json.loads(Upstream.received[0]["body"])
    tasking_only = {"term": {"fcm.tasking_id": "T-1"}}
    assert forwarded["aggs"]["top_terms"]["significant_text"]["background_filter"]["bool"]["filter"] == [tasking_only]
    nested = forwarded["aggs"]["by_source"]["aggs"]["authors"]["significant_terms"]["background_filter"]["bool"]
    assert nested == {"filter": [tasking_only], "must": [{"term": {"fcm.source_kind": "forum_post"}}]}
    assert forwarded["query"]["bool"]["filter"] == [tasking_only]


def test_a_head_answers_as_the_get_would(setup):
    app, base, _ = setup
    assert call(base, "HEAD", "/fcmon-records/_doc/own")[0] == 200
    assert call(base, "HEAD", "/fcmon-records/_doc/foreign")[0] == 404  # another tasking's document: not found
    assert [r["method"] for r in Upstream.received] == ["GET", "GET"]
    assert [e.payload["hits_total"] for e in app.audit.entries(["query.result"])] == [1, 0]


DISCOVER_BODY = {  # what Kibana 8's Discover sends (trimmed of nothing that matters here)
    "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}],
    "fields": [{"field": "*", "include_unmapped": "true"}, {"field": "@timestamp", "format": "strict_date_optional_time"}],
    "size": 500, "version": True, "script_fields": {}, "stored_fields": ["*"], "runtime_mappings": {}, "_source": False,
    "query": {"bool": {"must": [], "filter": [{"range": {"@timestamp": {"gte": "2026-11-01T00:00:00.000Z"}}}],
                       "should": [], "must_not": []}},
    "highlight": {"pre_tags": ["@kibana-highlighted-field@"], "post_tags": ["@/kibana-highlighted-field@"],
                  "fields": {"*": {}}, "fragment_size": 2147483647},
    "track_total_hits": True,
    "aggs": {"2": {"date_histogram": {"field": "@timestamp", "fixed_interval": "3h", "time_zone": "UTC", "min_doc_count": 1}}}}
LENS_BODY = {  # a Lens bar chart: top values of a field, over time
    "size": 0, "query": {"bool": {"filter": [{"range": {"@timestamp": {"gte": "now-30d"}}}]}},
    "aggs": {"0": {"terms": {"field": "fcm.source_kind", "order": {"_count": "desc"}, "size": 5, "shard_size": 25},
                   "aggs": {"1": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1d"}}}}}}
VALUE_SUGGESTIONS_BODY = {  # autocomplete:valueSuggestionMethod terms_agg, as config/kibana/kibana.yml sets it
    "size": 0, "timeout": "1000ms", "terminate_after": 100000,
    "query": {"bool": {"filter": []}},
    "aggs": {"suggestions": {"terms": {"field": "user.name", "include": "wr.*", "execution_hint": "map", "shard_size": 10}}}}


@pytest.mark.parametrize("path,body", [
    ("/fcmon-records/_async_search?batched_reduce_size=64&wait_for_completion_timeout=100ms&keep_on_completion=true"
     "&keep_alive=60000ms&ignore_unavailable=true&track_total_hits=true&enable_fields_emulation=true", DISCOVER_BODY),
    ("/fcmon-records/_search?ignore_unavailable=true", VALUE_SUGGESTIONS_BODY),
    ("/fcmon-records/_async_search", LENS_BODY),
])
def test_what_kibana_sends_is_forwarded_confined_to_the_tasking(setup, path, body):
    app, base, _ = setup
    assert call(base, "POST", path, body)[0] == 200
    (seen,) = Upstream.received
    forwarded = json.loads(seen["body"])
    assert forwarded["query"]["bool"]["filter"] == [{"term": {"fcm.tasking_id": "T-1"}}]
    assert {k: v for k, v in forwarded.items() if k != "query"} == {k: v for k, v in body.items() if k != "query"}
    assert [e.kind for e in app.audit.entries()] == ["query", "query.result"]


def test_an_msearch_header_names_its_index_only_with_index(setup):
    app, base, _ = setup
    lines = [{"index": "fcmon-records", "indices": "fcmon-audit"}, KQL_BODY]  # Elasticsearch takes the later key
    status, answer = call(base, "POST", "/fcmon-records/_msearch", lines, ndjson=True)
    assert status == 403 and "header key 'indices' is not forwarded" in answer["error"]["reason"]
    assert Upstream.received == [] and kinds(app) == ["query.refused"]


def test_audit_reads_name_only_the_audit_index(setup):
    app, base, _ = setup
    to_records = [{"index": "fcmon-records"}, {"query": {"match_all": {}}}]
    status, answer = call(base, "POST", "/fcmon-audit/_msearch", to_records, user="fcmon", tasking=None, ndjson=True)
    assert status == 403 and "fcmon-records: only fcmon-audit may be searched" in answer["error"]["reason"]
    status, answer = call(base, "POST", "/fcmon-audit/_mget", {"docs": [{"_index": "fcmon-records", "_id": "foreign"}]},
                          user="sam", tasking=None)
    assert status == 403 and "only fcmon-audit" in answer["error"]["reason"]
    status, answer = call(base, "POST", "/fcmon-audit/_mget", raw=b"docs:\n - _index: fcmon-records\n   _id: foreign\n",
                          content_type="application/yaml", user="sam", tasking=None)
    assert status == 400 and "send JSON" in answer["error"]["reason"]
    assert call(base, "POST", "/fcmon-audit/_create/_search", {"kind": "forged"}, user="sam", tasking=None)[0] == 403
    for path in ("/fcmon-audit/_mapping", "/*/_mapping", "/fcmon-*/_alias", "/%66cmon-audit/_mapping", "/_mapping",
                 "/_cat/indices", "/_alias"):  # analysts: not even its fields or its name
        assert call(base, "GET", path, tasking=None)[0] == 403
    assert Upstream.received == [] and kinds(app) == []
    assert call(base, "GET", "/fcmon-audit/_mapping", user="sam", tasking=None)[0] == 200


def test_only_known_headers_go_upstream(setup):
    _, base, _ = setup
    sent = {"es-security-runas-user": "elastic", "es-secondary-authorization": "ApiKey c2VjcmV0",
            "es-client-authentication": "SharedSecret x", "X-Opaque-Id": "kibana-7"}
    assert call(base, "POST", "/fcmon-records/_search", KQL_BODY, headers=sent)[0] == 200
    forwarded = {k.lower(): v for k, v in Upstream.received[0]["headers"].items()}
    assert not {"es-security-runas-user", "es-secondary-authorization", "es-client-authentication",
                "x-fcmon-tasking"} & forwarded.keys()
    assert forwarded["x-opaque-id"] == "kibana-7"
    assert forwarded["authorization"] == "Basic " + base64.b64encode(b"fcmon-es:es-secret").decode()


def test_hits_are_counted_without_a_total():
    assert response_hits("_search", {"hits": {"hits": [{"_id": "a"}, {"_id": "b"}]}}) == (2, ["a", "b"])  # track_total_hits false
    assert response_hits("_search", {"hits": {"total": {"value": 10000, "relation": "gte"}, "hits": [{"_id": "a"}]}}) == (10000, ["a"])


def raw_target(base: str, target: bytes) -> int:
    """The status answered to a request line carrying exactly this target (http.client refuses to send such)."""
    auth = base64.b64encode(f"alice:{PASSWORD}".encode())
    netloc = urllib.parse.urlsplit(base).netloc
    host, port = netloc.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + netloc.encode() + b"\r\nAuthorization: Basic " + auth +
                           b"\r\nX-Fcmon-Tasking: T-1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("target", [b"/fcmon-records/_count?x=\xc3\xa9", b"/fcmon-records/_co\x7funt",
                                    b"fcmon-records/_count", b"http://elsewhere.example/fcmon-records/_count"])
def test_a_request_target_that_is_not_a_plain_path_is_refused_before_anything_else(setup, target):
    app, base, _ = setup
    assert raw_target(base, target) == 400
    assert Upstream.received == [] and kinds(app) == []


def test_a_query_whose_upstream_does_not_answer_is_closed_in_the_log(setup):
    app, _, _ = setup
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    gateway = Gateway(app.state, app.audit, f"http://127.0.0.1:{port}", records_alias="fcmon-records", service_account="fcmon")
    headers = {"authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode(),
               "x-fcmon-tasking": "T-1", "content-type": "application/json"}
    with pytest.raises(Refusal) as refused:
        alice = gateway.authenticate(headers["authorization"], "127.0.0.1")
        gateway.handle(alice, "POST", "/fcmon-records/_search", headers, json.dumps(KQL_BODY).encode(), "127.0.0.1")
    assert refused.value.status == 502 and "did not answer" in str(refused.value)
    (query,) = app.audit.entries(["query"])
    (result,) = app.audit.entries(["query.result"])
    assert (result.payload["query_id"], result.payload["hits_total"]) == (query.payload["id"], 0)


@pytest.mark.parametrize("path", ["/_xpack/_mget", "/_alias/_mget", "/_mapping/_mget", "/_nodes/_msearch"])
def test_housekeeping_paths_that_elasticsearch_routes_as_reads_are_refused(setup, path):
    app, base, _ = setup
    docs = {"docs": [{"_index": "fcmon-audit", "_id": "1"}, {"_index": "fcmon-records", "_id": "foreign"}]}
    assert call(base, "GET", path, docs, tasking=None)[0] == 403  # Elasticsearch falls back to /{index}/_mget
    assert call(base, "GET", "/_nodes", {"query": {"match_all": {}}}, tasking=None)[0] == 400  # housekeeping has no body
    assert Upstream.received == [] and kinds(app) == []


def test_answers_are_asked_for_and_passed_on_only_as_json(setup):
    app, base, _ = setup
    assert call(base, "GET", "/fcmon-records/_doc/foreign", headers={"Accept": "application/yaml"})[0] == 404
    assert Upstream.received[0]["headers"]["Accept"] == "application/json"
    status, answer = call(base, "GET", "/fcmon-records/_doc/yaml")  # an upstream that answers YAML all the same
    assert status == 502 and "cannot check" in answer["error"]["reason"]
    assert [(e.payload["hits_total"], e.payload["returned_ids"]) for e in app.audit.entries(["query.result"])] == [(0, [])] * 2


def test_an_msearch_header_with_an_empty_index_is_refused(setup):
    _, base, _ = setup
    for index in ("", ","):
        status, answer = call(base, "POST", "/fcmon-records/_msearch", [{"index": index}, KQL_BODY], ndjson=True)
        assert status == 403 and "names no index" in answer["error"]["reason"]
    assert Upstream.received == []


def test_search_contexts_are_continued_and_freed_only_by_who_opened_them_under_that_tasking(setup):
    app, base, _ = setup
    assert call(base, "POST", "/fcmon-records/_pit?keep_alive=1m")[0] == 200
    assert call(base, "POST", "/fcmon-records/_async_search", KQL_BODY)[0] == 200
    assert call(base, "POST", "/fcmon-records/_search?scroll=1m", KQL_BODY)[0] == 200
    continuations = [("POST", "/_search", {"pit": {"id": "pit-1"}, "query": {"match_all": {}}}),
                     ("GET", "/_async_search/async-1", None), ("GET", "/_async_search/status/async-1", None),
                     ("POST", "/_search/scroll", {"scroll_id": "scroll-1", "scroll": "1m"})]
    for method, path, body in continuations:
        assert call(base, method, path, body)[0] == 200, path  # alice, under T-1, opened them
        status, answer = call(base, method, path, body, user="sam")  # a supervisor may search T-1, but did not open them
        assert status == 403 and "only by the user who opened it" in answer["error"]["reason"], path
    app.state.put_tasking(app.state.tasking("T-2").model_copy(update={"team": ["alice"]}))
    assert call(base, "GET", "/_async_search/async-1", tasking="T-2")[0] == 403  # opened under T-1
    assert call(base, "GET", "/_async_search/never-opened")[0] == 403
    assert call(base, "DELETE", "/_pit", {"id": "pit-1"}, user="sam", tasking=None)[0] == 403
    assert call(base, "DELETE", "/_search/scroll/_all", tasking=None)[0] == 403
    assert call(base, "DELETE", "/_pit", {"id": "pit-1"}, tasking=None)[0] == 200
    assert call(base, "DELETE", "/_async_search/async-1", tasking=None)[0] == 200
    assert [r["method"] for r in Upstream.received].count("DELETE") == 2


def test_the_ledger_holds_the_terms_of_every_query_in_a_search(setup):
    body = {"query": {"bool": {"must": [{"terms_set": {"tags": {"terms": ["cats", "vans"], "minimum_should_match": 1}}},
                                        {"span_multi": {"match": {"prefix": {"user.name": {"value": "wren"}}}}},
                                        {"span_term": {"user.name": {"term": "sparky"}}},
                                        {"wildcard": {"user.name": {"wildcard": "ki*y"}}}]}},
            "post_filter": {"match": {"message": "hidden"}},
            "rescore": {"query": {"rescore_query": {"match_phrase": {"message": "cut pipe"}}}},
            "aggs": {"f": {"filter": {"term": {"fcm.source_kind": "forum_post"}}},
                     "fs": {"filters": {"filters": {"a": {"match": {"message": "alpha"}}}}},
                     "suggest": {"terms": {"field": "user.name", "include": "wr.*"}}}}
    assert terms_of("_search", json.dumps(body).encode()) == [
        "tags:cats", "tags:vans", "user.name:wren", "user.name:sparky", "user.name:ki*y", "message:hidden", "message:cut pipe",
        "fcm.source_kind:forum_post", "message:alpha", "user.name:wr.*"]


def test_a_source_read_is_counted(setup):
    app, base, _ = setup
    assert call(base, "GET", "/fcmon-records/_source/own")[0] == 200
    assert call(base, "GET", "/fcmon-records/_source/foreign")[0] == 404
    assert [(e.payload["hits_total"], e.payload["returned_ids"]) for e in app.audit.entries(["query.result"])] == [
        (1, ["own"]), (0, [])]


def test_the_gateways_own_answer_says_it_is_elasticsearch(setup):
    _, base, _ = setup
    request = urllib.request.Request(base + "/_security/_authenticate", headers={
        "Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=5) as answer:  # the Elasticsearch client's product check reads it
        assert answer.headers["X-Elastic-Product"] == "Elasticsearch"


def test_a_body_is_not_read_before_its_sender_is_authenticated(setup):
    app, base, _ = setup
    host, port = base.rsplit("/", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as connection:  # 100 MB announced, none sent
        connection.sendall(b"POST /fcmon-records/_search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100000000\r\n\r\n")
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401")
    assert Upstream.received == [] and kinds(app) == []


def test_a_versioned_content_type_gets_the_versioned_accept_elasticsearch_8_wants(setup):
    _, base, _ = setup
    versioned = "application/vnd.elasticsearch+json; compatible-with=8"  # what Kibana 8's client sends
    assert call(base, "POST", "/fcmon-records/_search", KQL_BODY, content_type=versioned)[0] == 200
    assert call(base, "POST", "/fcmon-records/_search", KQL_BODY)[0] == 200
    assert [r["headers"]["Accept"] for r in Upstream.received] == [versioned, "application/json"]


def test_a_context_is_not_continued_or_freed_through_a_body_the_gateway_cannot_read(setup):
    app, base, _ = setup
    assert call(base, "POST", "/fcmon-records/_search?scroll=1m", KQL_BODY)[0] == 200
    Upstream.received.clear()
    tricks = [("POST", "/_search/scroll/scroll-1", b'/* */{"scroll_id": "scroll-of-another"}', "application/json"),
              ("POST", "/_search/scroll/scroll-1", b"scroll_id: scroll-of-another", "application/yaml"),
              ("DELETE", "/_search/scroll/scroll-1", b'//x\n{"scroll_id": ["scroll-of-another"]}', "application/json")]
    for method, path, raw, content_type in tricks:
        assert call(base, method, path, raw=raw, content_type=content_type, tasking="T-1")[0] == 400, (method, raw)
    source = '?source={"scroll_id":["scroll-of-another"]}&source_content_type=application/json'
    assert call(base, "DELETE", "/_search/scroll/scroll-1" + urllib.parse.quote(source, safe="?=&"), tasking=None)[0] == 400
    for bad_id in ({"a": 1}, ["x"]):  # not a string: refused, not a crash
        assert call(base, "POST", "/_search/scroll", {"scroll_id": bad_id})[0] == 403
    assert Upstream.received == []
    assert call(base, "DELETE", "/_search/scroll", {"scroll_id": ["scroll-1"]}, tasking=None)[0] == 200
    assert call(base, "POST", "/_search/scroll", {"scroll_id": "scroll-1"})[0] == 403  # freed: nobody continues it


def test_audit_reads_take_the_same_body_checks(setup):
    _, base, _ = setup
    lookup = {"runtime_mappings": {"want": {"type": "keyword", "script": "emit('r1')"}, "rec": {
        "type": "lookup", "target_index": "fcmon-records", "input_field": "want", "target_field": "_id", "fetch_fields": ["message"]}},
        "fields": ["rec"]}
    status, answer = call(base, "POST", "/fcmon-audit/_search", lookup, user="sam", tasking=None)
    assert status == 403 and "lookup" in answer["error"]["reason"] and Upstream.received == []


@pytest.mark.parametrize("path", ["/*-v1/_mapping", "/fcmon-a*-v1/_mapping/field/*", "/*-v1/_alias",
                                  "/_cluster/health?level=indices", "/_nodes/stats/indices/docs"])
def test_analysts_learn_nothing_of_other_indices_from_housekeeping(setup, path):
    _, base, _ = setup
    assert call(base, "GET", path, tasking=None)[0] == 403
    assert Upstream.received == []


def test_documents_returned_inside_aggregations_are_logged():
    answer = {"hits": {"total": {"value": 7}, "hits": []}, "aggregations": {"by_user": {"buckets": [
        {"key": "wrenchman", "latest": {"hits": {"total": {"value": 2}, "hits": [{"_id": "rec-1"}, {"_id": "rec-2"}]}}}]}}}
    assert response_hits("_search", answer) == (7, ["rec-1", "rec-2"])


def test_the_ledger_holds_filters_ranges_and_scripted_values():
    body = {"query": {"bool": {"filter": [{"exists": {"field": "phone"}}, {"range": {"user.name": {"gte": "wrench"}}},
                                          {"range": {"@timestamp": {"gte": "now-7d"}}}, {"ids": {"values": ["r9"]}},
                                          {"script": {"script": {"source": "doc['x'].value == params.value",
                                                                 "params": {"value": "typed"}}}}]}},
            "highlight": {"highlight_query": {"match": {"message": "glow"}}}}
    assert terms_of("_search", json.dumps(body).encode()) == [
        "exists:phone", "user.name:gtewrench", "_id:r9", "script:value=typed", "message:glow"]
    assert terms_of("_field_caps", json.dumps({"index_filter": {"term": {"user.name": "sparky"}}}).encode()) == ["user.name:sparky"]
