"""`fcmon gateway`: what it decides alone (routes, sign-in, refusals, body and header checks, the ledger), in front of
the session's real Elasticsearch through a tap that shows a refused request reached nothing (tests/factories_gateway.py).
What the node answers is in test_gateway_es.py; test_gateway_properties.py proves the tasking filter on generated bodies."""
from __future__ import annotations

import base64
import json
import socket
import urllib.parse
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.gateway import Gateway, Refusal, parse_body, request_terms, response_hits, route, serve
from tests.factories_gateway import PASSWORD, call, setup, top_terms_body  # noqa: F401  (setup is a fixture)
from tests.factories_web import raw_request
from tests.servers import running


def kinds(app) -> list[str]:
    return [e.kind for e in app.audit.entries()]


KQL_BODY = {"size": 10, "query": {"bool": {"filter": [
    {"multi_match": {"type": "best_fields", "query": "converter", "lenient": True}},
    {"match_phrase": {"user.name": "wrenchman"}},
    {"range": {"@timestamp": {"gte": "2026-01-01"}}}]}}}


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
    assert setup.forwarded == []
    assert "query" not in kinds(app)
    if status == 403 and "_search" in path and not path.startswith(("/fcmon-audit", "/.kibana")):
        (refused,) = app.audit.entries(["query.refused"])
        assert refused.payload["interface"] == "kibana" and refused.payload["query"]  # the terms entered are kept


def test_kibanas_own_cluster_calls(setup):
    _, base, _ = setup
    to_system = [{"index": {"_index": ".kibana_8.19.0", "_id": "a"}}, {"x": 1}]
    to_records = [{"index": {"_index": ".kibana_8.19.0", "_id": "a"}}, {"x": 1}, {"delete": {"_index": "fcmon-records", "_id": "r1"}}]
    assert call(base, "POST", "/_bulk", to_records, user="kibana_system", tasking=None, ndjson=True)[0] == 403
    assert call(base, "POST", "/_reindex", {"source": {"index": "fcmon-records"}, "dest": {"index": ".x"}},
                user="kibana_system", tasking=None)[0] == 403
    assert call(base, "PUT", "/_index_template/kibana", {}, user="alice", tasking=None)[0] == 403
    assert setup.forwarded == []
    # forwarded with Kibana's own login, which this node does not know (Elasticsearch says so: 401, not the gateway)
    for method, path, body, ndjson in (("POST", "/_bulk", to_system, True), ("PUT", "/_index_template/kibana", {}, False)):
        status, answer = call(base, method, path, body, user="kibana_system", tasking=None, ndjson=ndjson)
        assert status == 401 and "unable to authenticate user [kibana_system]" in answer["error"]["reason"]
    assert [r["path"] for r in setup.forwarded] == ["/_bulk", "/_index_template/kibana"]


def test_kibanas_account_reads_no_records(setup):
    app, base, _ = setup
    assert call(base, "POST", "/fcmon-records/_search", KQL_BODY, user="kibana_system")[0] == 403
    assert setup.forwarded == []
    (refused,) = app.audit.entries(["query.refused"])
    assert refused.actor == "kibana_system"


def test_password_guessing_is_throttled_per_user_and_audited(setup):
    app, base, _ = setup
    for _ in range(5):
        assert call(base, "GET", "/_security/_authenticate", password="a wrong guess", tasking=None)[0] == 401
    status, answer = call(base, "GET", "/_security/_authenticate", tasking=None)
    assert status == 429 and "too many failed sign-ins for alice" in answer["error"]["reason"]  # even the right one waits
    assert call(base, "GET", "/_security/_authenticate", user="sam", tasking=None)[0] == 200  # others sign in as before
    assert setup.forwarded == []
    refused = list(app.audit.entries(["gateway.login.refused"]))
    assert [e.actor for e in refused] == ["alice"] * 6 and refused[0].payload["client"] == "127.0.0.1"
    assert [e.payload["reason"] for e in refused][-2:] == ["unknown user or wrong password (set one with "
                                                           "`fcmon user set-password NAME`)", "throttled"]


def test_authenticate_is_answered_for_fcmon_users(setup):
    _, base, _ = setup
    status, answer = call(base, "GET", "/_security/_authenticate", tasking=None)
    assert status == 200 and answer["username"] == "alice" and answer["roles"] == ["fcmon_analyst"]
    assert setup.forwarded == []


def test_no_audit_log_no_forwarding(setup):
    app, base, tmp_path = setup
    assert call(base, "GET", "/fcmon-records/_count")[0] == 200  # the head file is open now
    setup.forwarded.clear()
    head = tmp_path / "d" / "audit.head"
    head.unlink()
    head.mkdir()  # the log opens, but no entry can be completed
    status, answer = call(base, "POST", "/fcmon-records/_search", KQL_BODY)
    assert status == 503 and "audit log cannot be written" in answer["error"]["reason"]
    assert setup.forwarded == []


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
    assert setup.forwarded == []
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
    assert setup.forwarded == [] and kinds(app) == []  # refused before anything was read, logged or forwarded


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
    assert setup.forwarded == []
    (refused,) = app.audit.entries(["query.refused"])
    assert reason in refused.payload["refusal"] and refused.payload["filters"]["path"] == path


def test_an_msearch_with_one_unconfined_search_is_refused_whole(setup):
    app, base, _ = setup
    lines = [{"index": "fcmon-records"}, KQL_BODY, {"index": "fcmon-records"}, GLOBAL_AGGS]
    status, answer = call(base, "POST", "/_msearch", lines, ndjson=True)
    assert status == 403 and "a 'global' aggregation" in answer["error"]["reason"]
    assert setup.forwarded == [] and "query" not in kinds(app)
    status, answer = call(base, "POST", "/_msearch", [{"index": "fcmon-records"}, ["not", "an", "object"]], ndjson=True)
    assert status == 403 and "not NDJSON" in answer["error"]["reason"]


def test_significant_terms_are_measured_against_the_taskings_own_documents(setup):
    _, base, _ = setup
    body = top_terms_body()
    body["aggs"]["by_source"] = {"terms": {"field": "fcm.source_kind"}, "aggs": {"authors": {"significant_terms": {
        "field": "user.name", "background_filter": {"term": {"fcm.source_kind": "forum_post"}}}}}}
    assert call(base, "POST", "/fcmon-records/_search", body)[0] == 200
    forwarded = json.loads(setup.forwarded[0]["body"])
    tasking_only = {"term": {"fcm.tasking_id": "T-1"}}
    assert forwarded["aggs"]["top_terms"]["significant_text"]["background_filter"]["bool"]["filter"] == [tasking_only]
    nested = forwarded["aggs"]["by_source"]["aggs"]["authors"]["significant_terms"]["background_filter"]["bool"]
    assert nested == {"filter": [tasking_only, {"term": {"fcm.source_kind": "forum_post"}}]}
    assert forwarded["query"]["bool"]["filter"] == [tasking_only, body["query"]]


def test_an_msearch_header_names_its_index_only_with_index(setup):
    app, base, _ = setup
    lines = [{"index": "fcmon-records", "indices": "fcmon-audit"}, KQL_BODY]  # Elasticsearch takes the later key
    status, answer = call(base, "POST", "/fcmon-records/_msearch", lines, ndjson=True)
    assert status == 403 and "header key 'indices' is not forwarded" in answer["error"]["reason"]
    assert setup.forwarded == [] and kinds(app) == ["query.refused"]


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
    assert setup.forwarded == [] and kinds(app) == []
    assert call(base, "GET", "/fcmon-audit/_mapping", user="sam", tasking=None)[0] == 200


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
    assert setup.forwarded == [] and kinds(app) == []


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


def test_an_answer_that_is_not_json_is_not_passed_on(setup):
    """Elasticsearch, asked for JSON, answers JSON (its formats are asked for with the Accept header and `format`, which
    the gateway never forwards); what else an upstream might send is shown by a plain file server."""
    app, _, tmp_path = setup
    (tmp_path / "files" / "fcmon-records" / "_doc").mkdir(parents=True)
    (tmp_path / "files" / "fcmon-records" / "_doc" / "r1").write_text("found: true\n_source: {fcm: {tasking_id: T-1}}\n")
    files = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "files")))
    with running(files) as upstream:
        gateway = Gateway(app.state, app.audit, upstream, records_alias="fcmon-records", service_account="fcmon")
        with running(serve(gateway, "127.0.0.1", 0)) as base:
            status, answer = call(base, "GET", "/fcmon-records/_doc/r1")
    assert status == 502 and "cannot check" in answer["error"]["reason"]
    (result,) = app.audit.entries(["query.result"])
    assert (result.payload["hits_total"], result.payload["returned_ids"]) == (0, [])


@pytest.mark.parametrize("path", ["/_xpack/_mget", "/_alias/_mget", "/_mapping/_mget", "/_nodes/_msearch"])
def test_housekeeping_paths_that_elasticsearch_routes_as_reads_are_refused(setup, path):
    app, base, _ = setup
    docs = {"docs": [{"_index": "fcmon-audit", "_id": "1"}, {"_index": "fcmon-records", "_id": "foreign"}]}
    assert call(base, "GET", path, docs, tasking=None)[0] == 403  # Elasticsearch falls back to /{index}/_mget
    assert call(base, "GET", "/_nodes", {"query": {"match_all": {}}}, tasking=None)[0] == 400  # housekeeping has no body
    assert setup.forwarded == [] and kinds(app) == []


def test_an_msearch_header_with_an_empty_index_is_refused(setup):
    _, base, _ = setup
    for index in ("", ","):
        status, answer = call(base, "POST", "/fcmon-records/_msearch", [{"index": index}, KQL_BODY], ndjson=True)
        assert status == 403 and "names no index" in answer["error"]["reason"]
    assert setup.forwarded == []


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
    assert setup.forwarded == [] and kinds(app) == []


def test_a_context_is_not_continued_or_freed_through_a_body_the_gateway_cannot_read(setup):
    app, base, _ = setup
    status, mine = call(base, "POST", "/fcmon-records/_search?scroll=1m", {"size": 1})
    assert status == 200
    status, theirs = call(base, "POST", "/fcmon-records/_search?scroll=1m", {"size": 1}, user="sue", tasking="T-2")
    assert status == 200
    own, other = mine["_scroll_id"], theirs["_scroll_id"]
    setup.forwarded.clear()
    tricks = [("POST", f"/_search/scroll/{own}", f'/* */{{"scroll_id": "{other}"}}', "application/json"),
              ("POST", f"/_search/scroll/{own}", f"scroll_id: {other}", "application/yaml"),
              ("DELETE", f"/_search/scroll/{own}", f'//x\n{{"scroll_id": ["{other}"]}}', "application/json")]
    for method, path, raw, content_type in tricks:
        assert call(base, method, path, raw=raw.encode(), content_type=content_type, tasking="T-1")[0] == 400, (method, raw)
    source = f'?source={{"scroll_id":["{other}"]}}&source_content_type=application/json'
    assert call(base, "DELETE", f"/_search/scroll/{own}" + urllib.parse.quote(source, safe="?=&"), tasking=None)[0] == 400
    for bad_id in ({"a": 1}, [other]):  # not a string, not alice's: refused, not a crash
        assert call(base, "POST", "/_search/scroll", {"scroll_id": bad_id})[0] == 403
    assert setup.forwarded == []
    assert call(base, "DELETE", "/_search/scroll", {"scroll_id": [own]}, tasking=None)[0] == 200
    assert call(base, "POST", "/_search/scroll", {"scroll_id": own})[0] == 403  # freed: nobody continues it
    status, page = call(base, "POST", "/_search/scroll", {"scroll_id": other, "scroll": "1m"}, user="sue", tasking="T-2")
    assert status == 200 and len(page["hits"]["hits"]) == 1  # theirs was neither continued nor freed by alice


def test_audit_reads_take_the_same_body_checks(setup):
    _, base, _ = setup
    lookup = {"runtime_mappings": {"want": {"type": "keyword", "script": "emit('r1')"}, "rec": {
        "type": "lookup", "target_index": "fcmon-records", "input_field": "want", "target_field": "_id", "fetch_fields": ["message"]}},
        "fields": ["rec"]}
    status, answer = call(base, "POST", "/fcmon-audit/_search", lookup, user="sam", tasking=None)
    assert status == 403 and "lookup" in answer["error"]["reason"] and setup.forwarded == []


def test_housekeeping_kibana_does_not_need_is_refused(setup):
    _, base, _ = setup
    for method, path in (("GET", "/_snapshot"), ("GET", "/_security/user"), ("GET", "/_cluster/settings"),
                         ("POST", "/_security/user/x/_has_privileges")):
        assert call(base, method, path, tasking=None)[0] == 403, path
    assert setup.forwarded == []


@pytest.mark.parametrize("path", ["/*-v1/_mapping", "/fcmon-a*-v1/_mapping/field/*", "/*-v1/_alias",
                                  "/_cluster/health?level=indices", "/_nodes/stats/indices/docs"])
def test_analysts_learn_nothing_of_other_indices_from_housekeeping(setup, path):
    _, base, _ = setup
    assert call(base, "GET", path, tasking=None)[0] == 403
    assert setup.forwarded == []


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
