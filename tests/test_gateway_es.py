"""`fcmon gateway` in front of a real Elasticsearch holding two taskings' records: what a user really gets back.

Every answer here is the node's (tests/factories_gateway.py seeds it through fcmon's own adapters); the tap between
the gateway and the node only notes what reached it. This node is the integ-test-zip distribution: it has no
rest-root module (`GET /` answers 405, so the gateway, forwarding it, passes that on: Kibana's cluster-info request
needs the full distribution), no x-pack monitoring (`GET /_xpack` answers 500), no native realm (the security index's
mapping needs analysis-common, so Kibana's own account cannot be made on it) and no async search (see
AsyncSearches in the factories).
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest

from pipeline.stack import free_port
from tests.factories_gateway import (DISCOVER_BODY, IDS, LENS_BODY, PASSWORD, RECORDS, VALUE_SUGGESTIONS_BODY,  # noqa: F401
                                     WRITES_INDEX, call, exchange, gateway_app, seeded, setup, straight, top_terms_body)

OWN, FOREIGN = IDS["T-1"], IDS["T-2"]
MISSING = "0" * 32


def ids_of(answer: dict) -> list[str]:
    return [h["_id"] for h in answer["hits"]["hits"]]


def matching(tasking: str, word: str) -> set[str]:
    """The ids of a tasking's records whose text holds the word (as the standard analyzer reads it)."""
    return {r.id for r in RECORDS[tasking] if word in r.text.lower().replace(",", " ").replace(".", " ").split()}


def results(app) -> list[tuple[int, list[str]]]:
    return [(e.payload["hits_total"], e.payload["returned_ids"]) for e in app.audit.entries(["query.result"])]


def service_header(es_node) -> str:
    return "Basic " + base64.b64encode(":".join(es_node.service_auth).encode()).decode()


def test_a_search_is_logged_before_it_reaches_elasticsearch_and_answers_only_the_taskings_records(setup, es_node):
    app, base, _ = setup
    body = {"size": 10, "query": {"bool": {"filter": [
        {"multi_match": {"type": "best_fields", "query": "converters", "lenient": True}},
        {"range": {"@timestamp": {"gte": "2026-01-01"}}}]}}}
    status, answer = call(base, "POST", "/fcmon-records/_search", body)
    assert status == 200
    assert set(ids_of(answer)) == matching("T-1", "converters") and len(ids_of(answer)) == 4
    assert {h["_source"]["fcm"]["tasking_id"] for h in answer["hits"]["hits"]} == {"T-1"}
    assert answer["hits"]["total"] == {"value": 4, "relation": "eq"}
    _, unfiltered = straight(es_node, "POST", "/fcmon-records/_search", body)  # T-2's forklift post says converters too
    assert set(ids_of(unfiltered)) == matching("T-1", "converters") | matching("T-2", "converters")
    (seen,) = setup.forwarded
    assert seen["queries_logged"] == 1  # the QueryEvent was durable before Elasticsearch saw anything
    assert seen["headers"]["Authorization"] == service_header(es_node) and "X-Fcmon-Tasking" not in seen["headers"]
    query, result = [e for e in app.audit.entries() if e.kind in ("query", "query.result")]
    assert query.payload["interface"] == "kibana" and query.payload["client"] == "127.0.0.1"
    assert (query.payload["user"], query.payload["tasking_id"], query.payload["case_number"]) == ("alice", "T-1", "2026-CR-1")
    assert query.payload["filters"]["terms"] == ["converters"]  # the time picker's range is not a search term
    assert (result.payload["query_id"], result.payload["hits_total"]) == (query.payload["id"], 4)
    assert result.payload["returned_ids"] == ids_of(answer)
    assert app.audit.verify().ok


def test_msearch_and_count_answer_and_count_only_the_taskings_records(setup):
    app, base, _ = setup
    lines = [{"index": "fcmon-records"}, {"query": {"match": {"message": "pallets"}}},  # T-2's word only
             {"index": "fcmon-records*"}, {"query": {"query_string": {"query": "cash"}}}]
    status, answer = call(base, "POST", "/_msearch", lines, ndjson=True)
    assert status == 200
    first, second = answer["responses"]
    assert (first["status"], first["hits"]["hits"]) == (200, [])
    assert set(ids_of(second)) == matching("T-1", "cash") and len(matching("T-2", "cash")) == 1
    status, counted = call(base, "GET", "/fcmon-records/_count")
    assert status == 200 and counted["count"] == len(OWN)
    assert results(app) == [(len(matching("T-1", "cash")), ids_of(second)), (len(OWN), [])]
    assert [e.payload["query"] for e in app.audit.entries(["query"])] == ["message:pallets cash", ""]


def test_documents_of_other_taskings_are_not_found(setup):
    app, base, _ = setup
    status, own = call(base, "GET", f"/fcmon-records/_doc/{OWN[0]}")
    assert status == 200 and own["found"] and own["_source"]["fcm"]["record_id"] == OWN[0]
    status, foreign = call(base, "GET", f"/fcmon-records/_doc/{FOREIGN[0]}")
    assert status == 404 and foreign == {"_index": setup.seed.concrete, "_id": FOREIGN[0], "found": False}
    status, missing = call(base, "GET", f"/fcmon-records/_doc/{MISSING}")
    assert status == 404 and missing["found"] is False  # Elasticsearch's own not found, passed on
    assert results(app) == [(1, [OWN[0]]), (0, []), (0, [])]


def test_a_source_read_answers_and_counts_only_the_taskings_records(setup):
    app, base, _ = setup
    status, source = call(base, "GET", f"/fcmon-records/_source/{OWN[1]}")
    assert status == 200 and source["fcm"]["tasking_id"] == "T-1"
    status, answer = call(base, "GET", f"/fcmon-records/_source/{FOREIGN[1]}")
    assert status == 404 and json.dumps(answer).find("harbor") < 0
    assert results(app) == [(1, [OWN[1]]), (0, [])]


def test_mget_answers_another_taskings_documents_as_not_found(setup):
    app, base, _ = setup
    for body in ({"ids": [OWN[0], FOREIGN[0], MISSING]},
                 {"docs": [{"_index": "fcmon-records", "_id": i} for i in (OWN[0], FOREIGN[0], MISSING)]}):
        status, answer = call(base, "POST", "/fcmon-records/_mget", body)
        assert status == 200
        own, foreign, missing = answer["docs"]
        assert own["found"] and own["_source"]["fcm"]["tasking_id"] == "T-1"
        assert foreign == {"_index": setup.seed.concrete, "_id": FOREIGN[0], "found": False}
        assert missing["found"] is False and "_source" not in missing
    assert results(app) == [(1, [OWN[0]])] * 2


@pytest.mark.parametrize("method,path,body,reason", [
    ("GET", "/fcmon-records/_doc/{own}?_source_includes=message", None, "'_source_includes' is not forwarded"),
    ("GET", "/fcmon-records/_doc/{own}?_source=false", None, "'_source' is not forwarded"),
    ("GET", "/fcmon-records/_source/{own}?_source_excludes=fcm", None, "'_source_excludes' is not forwarded"),
    ("POST", "/fcmon-records/_mget", {"docs": [{"_id": "{own}", "_source": False}]}, "'_source' is not forwarded in an _mget"),
    ("POST", "/fcmon-records/_mget", {"docs": [{"_id": "{own}", "stored_fields": ["message"]}]}, "'stored_fields'"),
])
def test_a_document_read_that_would_hide_its_tasking_is_refused_not_answered_as_not_found(setup, es_node, method, path,
                                                                                          body, reason):
    """Elasticsearch answers these without the source's fcm.tasking_id, so the gateway cannot tell whose the document
    is: it answered the user's own document as not found. Refused, and logged, instead."""
    app, base, _ = setup
    path, body = path.format(own=OWN[0]), json.loads(json.dumps(body).replace("{own}", OWN[0])) if body else None
    status, straight_answer = straight(es_node, method, path, body)
    assert status == 200 and "tasking_id" not in json.dumps(straight_answer)  # what the gateway would have to read
    status, answer = call(base, method, path, body)
    assert status == 403 and reason in answer["error"]["reason"]
    assert setup.forwarded == [] and [e.kind for e in app.audit.entries()] == ["query.refused"]


def test_a_head_answers_as_the_get_would(setup):
    app, base, _ = setup
    assert call(base, "HEAD", f"/fcmon-records/_doc/{OWN[2]}")[0] == 200
    assert call(base, "HEAD", f"/fcmon-records/_doc/{FOREIGN[2]}")[0] == 404  # it exists, but is another tasking's
    assert [r["method"] for r in setup.forwarded] == ["GET", "GET"]
    assert [total for total, _ in results(app)] == [1, 0]


def test_field_caps_are_answered_under_the_tasking_filter(setup):
    app, base, _ = setup
    for method in ("GET", "POST"):  # Kibana's data views send either
        status, answer = call(base, method, "/fcmon-records/_field_caps?fields=*&ignore_unavailable=true&include_unmapped=false")
        assert status == 200 and answer["indices"] == [setup.seed.concrete]
        assert answer["fields"]["fcm.tasking_id"]["keyword"]["aggregatable"] is True
    forwarded = json.loads(setup.forwarded[0]["body"])
    assert forwarded["index_filter"]["bool"]["filter"] == [{"term": {"fcm.tasking_id": "T-1"}}]
    assert results(app) == [(0, [])] * 2


def test_an_answer_elasticsearch_refuses_is_passed_on_and_closed_in_the_log(setup):
    app, base, _ = setup
    status, answer = call(base, "POST", "/fcmon-records/_search", {"sort": [{"message": "asc"}]})  # a text field
    assert status == 400 and answer["error"]["type"] == "search_phase_execution_exception"
    lines = [{"index": "fcmon-records"}, {"sort": [{"message": "asc"}]}, {"index": "fcmon-records"}, {"size": 1}]
    status, answer = call(base, "POST", "/fcmon-records/_msearch", lines, ndjson=True)
    failed, ok = answer["responses"]
    assert status == 200 and failed["status"] == 400 and "error" in failed and len(ids_of(ok)) == 1
    assert results(app) == [(0, []), (len(OWN), ids_of(ok))]


def test_hits_are_counted_as_elasticsearch_reports_them(setup):
    app, base, _ = setup
    status, untracked = call(base, "POST", "/fcmon-records/_search", {"track_total_hits": False, "size": 2})
    assert status == 200 and "total" not in untracked["hits"] and len(ids_of(untracked)) == 2
    status, as_int = call(base, "POST", "/fcmon-records/_search?rest_total_hits_as_int=true", {"size": 0})
    assert status == 200 and as_int["hits"]["total"] == len(OWN)
    assert results(app) == [(2, ids_of(untracked)), (len(OWN), [])]


def test_documents_returned_inside_aggregations_are_logged_and_are_the_taskings(setup):
    app, base, _ = setup
    body = {"size": 0, "aggs": {"by_user": {"terms": {"field": "user.name"}, "aggs": {
        "latest": {"top_hits": {"size": 1, "sort": [{"@timestamp": "desc"}]}}}}}}
    status, answer = call(base, "POST", "/fcmon-records/_search", body)
    buckets = answer["aggregations"]["by_user"]["buckets"]
    assert status == 200 and {b["key"] for b in buckets} == {"wrenchman", "sparky"}  # not dockhand, not forklifter
    inner = [h["_id"] for b in buckets for h in b["latest"]["hits"]["hits"]]
    assert set(inner) <= set(OWN) and len(inner) == 2
    assert results(app) == [(len(OWN), inner)]


@pytest.mark.parametrize("path,body", [
    ("/fcmon-records/_async_search?batched_reduce_size=64&wait_for_completion_timeout=100ms&keep_on_completion=true"
     "&keep_alive=60000ms&ignore_unavailable=true&track_total_hits=true&enable_fields_emulation=true", DISCOVER_BODY),
    ("/fcmon-records/_search?ignore_unavailable=true", VALUE_SUGGESTIONS_BODY),
    ("/fcmon-records/_async_search", LENS_BODY),
])
def test_what_kibana_sends_is_answered_from_the_taskings_records_only(setup, path, body):
    app, base, _ = setup
    status, answer = call(base, "POST", path, body)
    assert status == 200, answer
    response = answer.get("response", answer)
    assert set(ids_of(response)) <= set(OWN)
    text = json.dumps(response)
    assert not [word for word in ("dockhand", "forklifter", "harbor", "pallets", "T-2") if word in text]
    aggs = response["aggregations"]
    if body is DISCOVER_BODY:  # the histogram counts what the hits total counts
        assert ids_of(response) and sum(b["doc_count"] for b in aggs["2"]["buckets"]) == response["hits"]["total"]["value"]
    if body is LENS_BODY:  # T-1 has 3 forum posts and 2 listings; T-2's 2 and 1 are not counted
        assert {b["key"]: b["doc_count"] for b in aggs["0"]["buckets"]} == {"forum_post": 3, "marketplace_listing": 2}
    if body is VALUE_SUGGESTIONS_BODY:
        assert [b["key"] for b in aggs["suggestions"]["buckets"]] == ["wrenchman"]
    assert [e.kind for e in app.audit.entries()] == ["query", "query.result"]
    forwarded = json.loads(setup.forwarded[0]["body"])  # Kibana's body, its query a filter beside the tasking's
    assert forwarded["query"] == {"bool": {"filter": [{"term": {"fcm.tasking_id": "T-1"}}, body["query"]]}}
    assert {k: v for k, v in forwarded.items() if k != "query"} == {k: v for k, v in body.items() if k != "query"}


def test_value_suggestions_never_offer_another_taskings_values(setup):
    _, base, _ = setup
    body = {**VALUE_SUGGESTIONS_BODY, "aggs": {"suggestions": {"terms": {"field": "user.name", "include": ".*"}}}}
    status, answer = call(base, "POST", "/fcmon-records/_search", body)
    assert status == 200 and {b["key"] for b in answer["aggregations"]["suggestions"]["buckets"]} == {"wrenchman", "sparky"}
    status, answer = call(base, "POST", "/fcmon-records/_search", body, user="sue", tasking="T-2")
    assert status == 200 and {b["key"] for b in answer["aggregations"]["suggestions"]["buckets"]} == {"dockhand", "forklifter"}


def test_significant_terms_are_measured_against_the_taskings_own_records(setup, es_node):
    _, base, _ = setup
    body = top_terms_body()
    body["query"] = {"match_all": {}}
    status, answer = call(base, "POST", "/fcmon-records/_search", body)
    assert status == 200, answer
    (name,) = body["aggs"]
    assert answer["aggregations"][name]["bg_count"] == len(OWN)  # the background is T-1's records, not all 8
    _, unfiltered = straight(es_node, "POST", "/fcmon-records/_search", body)
    assert unfiltered["aggregations"][name]["bg_count"] == len(OWN) + len(FOREIGN)


def test_a_scroll_is_continued_and_freed_only_by_who_opened_it_and_holds_only_the_taskings_records(setup):
    _, base, _ = setup
    status, first = call(base, "POST", "/fcmon-records/_search?scroll=1m", {"size": 2, "sort": ["_doc"]})
    assert status == 200 and len(ids_of(first)) == 2
    scroll_id, seen = first["_scroll_id"], ids_of(first)
    assert call(base, "POST", "/_search/scroll", {"scroll_id": scroll_id, "scroll": "1m"}, user="sam")[0] == 403
    while True:
        status, page = call(base, "POST", "/_search/scroll", {"scroll_id": scroll_id, "scroll": "1m"})
        assert status == 200
        if not ids_of(page):
            break
        seen += ids_of(page)
        scroll_id = page["_scroll_id"]
    assert sorted(seen) == sorted(OWN)
    assert call(base, "DELETE", "/_search/scroll", {"scroll_id": [scroll_id]}, user="sam", tasking=None)[0] == 403
    assert call(base, "DELETE", "/_search/scroll/_all", tasking=None)[0] == 403  # every context there is: nobody's
    status, freed = call(base, "DELETE", "/_search/scroll", {"scroll_id": [scroll_id]}, tasking=None)
    assert status == 200 and freed == {"succeeded": True, "num_freed": 1}
    assert call(base, "POST", "/_search/scroll", {"scroll_id": scroll_id})[0] == 403  # freed: nobody continues it


def test_a_point_in_time_is_searched_and_closed_only_by_who_opened_it_under_that_tasking(setup):
    app, base, _ = setup
    status, opened = call(base, "POST", "/fcmon-records/_pit?keep_alive=1m")
    assert status == 200 and opened["id"]
    search = {"pit": {"id": opened["id"], "keep_alive": "1m"}, "size": 20, "sort": [{"@timestamp": "asc"}],
              "query": {"match_all": {}}}
    status, answer = call(base, "POST", "/_search", search)
    assert status == 200 and sorted(ids_of(answer)) == sorted(OWN)  # the point in time holds all 8; the user sees 5
    assert call(base, "POST", "/_search", search, user="sam")[0] == 403
    app.state.put_tasking(app.state.tasking("T-2").model_copy(update={"team": ["alice"]}))
    assert call(base, "POST", "/_search", search, tasking="T-2")[0] == 403  # opened under T-1
    assert call(base, "DELETE", "/_pit", {"id": opened["id"]}, user="sam", tasking=None)[0] == 403
    status, closed = call(base, "DELETE", "/_pit", {"id": opened["id"]}, tasking=None)
    assert status == 200 and closed == {"succeeded": True, "num_freed": 1}


def test_an_async_search_is_fetched_and_deleted_only_by_who_submitted_it(setup):
    _, base, _ = setup
    status, submitted = call(base, "POST", "/fcmon-records/_async_search?keep_on_completion=true&wait_for_completion_timeout=1s",
                             {"query": {"match": {"message": "cash"}}})
    assert status == 200 and set(ids_of(submitted["response"])) == matching("T-1", "cash")
    search_id = submitted["id"]
    for path in (f"/_async_search/{search_id}", f"/_async_search/status/{search_id}"):
        assert call(base, "GET", path)[0] == 200
        assert call(base, "GET", path, user="sam")[0] == 403  # a supervisor may search T-1, but did not submit it
    status, fetched = call(base, "GET", f"/_async_search/{search_id}")
    assert set(ids_of(fetched["response"])) == matching("T-1", "cash")
    assert call(base, "DELETE", f"/_async_search/{search_id}", user="sam", tasking=None)[0] == 403
    assert call(base, "DELETE", f"/_async_search/{search_id}", tasking=None) == (200, {"acknowledged": True})
    assert call(base, "GET", f"/_async_search/{search_id}")[0] == 403  # deleted: forgotten
    assert call(base, "GET", "/_async_search/never-submitted")[0] == 403


KIBANA_START_UP = [  # what Kibana 8 asks before it serves a page, and what its data views and spaces ask
    ("GET", "/_nodes?filter_path=nodes.*.version,nodes.*.http.publish_address,nodes.*.ip", None),
    ("GET", "/_license", None),
    ("GET", "/_cluster/health?wait_for_status=yellow&timeout=5s", None),
    ("GET", "/_xpack?accept_enterprise=true", None),  # 500 on this distribution (no x-pack monitoring): passed on
    ("GET", "/", None),  # 405 on this distribution (no rest-root): passed on
    ("GET", "/_resolve/index/fcmon-records*?expand_wildcards=all", None),
    ("GET", "/fcmon-records/_mapping", None),
]


@pytest.mark.parametrize("method,path,body", KIBANA_START_UP)
def test_kibanas_housekeeping_is_answered_as_elasticsearch_answers_it(setup, es_node, method, path, body):
    app, base, _ = setup
    status, answer = call(base, method, path, body, tasking=None)
    assert (status, answer) == straight(es_node, method, path, body)
    assert setup.forwarded[0]["headers"]["Authorization"] == service_header(es_node)
    assert list(app.audit.entries()) == []  # it carries no record content: nothing to log


def test_index_resolution_shows_analysts_the_records_names_alone(setup, es_node):
    """Kibana resolves `*` (its has-data check) and what is typed into a data view's pattern: for those who may not see
    the audit index, the node's answer is narrowed to the records alias and its index, and a name that is not found
    answers as one that is found and not theirs (a HEAD too), so no other index's existence is told."""
    _, base, _ = setup
    records = {"indices": [{"name": setup.seed.concrete, "aliases": ["fcmon-records"], "attributes": ["open"]}],
               "aliases": [{"name": "fcmon-records", "indices": [setup.seed.concrete]}], "data_streams": []}
    nothing = {"indices": [], "aliases": [], "data_streams": []}
    assert straight(es_node, "GET", "/_resolve/index/*")[1]["aliases"] != records["aliases"]  # the audit alias is there
    for path, expected in (("/_resolve/index/fcmon-records*", records), ("/_resolve/index/*", records),
                           ("/_resolve/index/*,-.*?expand_wildcards=all", records), ("/_resolve/index/fcmon-*", records),
                           ("/_resolve/index/fcmon-records,fcmon-audit", {**nothing, "aliases": records["aliases"]}),
                           ("/_resolve/index/" + quote("fcmon-a*", safe=""), nothing),
                           ("/_resolve/index/fcmon-audit-v1", nothing), ("/_resolve/index/fcmon-audit-v9", nothing)):
        assert call(base, "GET", path, tasking=None) == (200, expected), path
    assert straight(es_node, "GET", "/_resolve/index/fcmon-audit-v9")[0] == 404  # what the node itself says
    assert [call(base, "HEAD", f"/_resolve/index/fcmon-audit-v{n}", tasking=None)[0] for n in (1, 9)] == [200, 200]
    status, answer = call(base, "GET", "/_resolve/index/*", user="sam", tasking=None)
    assert status == 200 and "fcmon-audit" in {a["name"] for a in answer["aliases"]}


def test_supervisors_read_the_audit_index_logged_analysts_do_not(setup):
    app, base, _ = setup
    status, answer = call(base, "POST", "/fcmon-audit/_search", {"query": {"match_all": {}}}, user="sam", tasking=None)
    assert status == 200 and sorted(ids_of(answer)) == sorted(setup.seed.audit_ids)
    (read,) = app.audit.entries(["audit.read"])
    assert read.actor == "sam" and read.payload["path"] == "/fcmon-audit/_search"
    assert call(base, "POST", "/fcmon-audit/_search", {"query": {"match_all": {}}}, tasking=None)[0] == 403
    assert len(setup.forwarded) == 1


def test_writes_reach_elasticsearch_only_from_the_service_account_and_kibana_only_with_its_own_login(setup, es_node):
    _, base, _ = setup
    record = {"message": "planted"}
    for method, path in (("PUT", "/fcmon-records/_doc/x"), ("POST", "/fcmon-records/_doc"), ("POST", "/fcmon-records/_doc/x"),
                         ("DELETE", f"/fcmon-records/_doc/{OWN[0]}"), ("POST", "/fcmon-records/_bulk"),
                         ("POST", f"/fcmon-records/_update/{OWN[0]}"), ("DELETE", "/fcmon-records"),
                         ("POST", "/fcmon-records/_delete_by_query"),
                         # Elasticsearch takes `_search` or `_mget` as a document id: these are writes, not reads
                         ("POST", "/fcmon-records/_create/_mget"), ("POST", "/fcmon-records/_create/_pit"),
                         ("POST", "/fcmon-records/_update/_pit"), ("PUT", "/fcmon-records/_doc/_search")):
        assert call(base, method, path, record)[0] == 403, (method, path)
    assert call(base, "PUT", f"/{WRITES_INDEX}/_doc/x", record, user="sam", tasking=None)[0] == 403  # nor a supervisor
    assert call(base, "PUT", f"/{WRITES_INDEX}/_doc/x", record, user="kibana_system", tasking=None)[0] == 403
    assert call(base, "POST", "/.kibana_8.19.0/_doc/config", record, user="fcmon", tasking=None)[0] == 403
    assert setup.forwarded == []
    assert straight(es_node, "GET", f"/fcmon-records/_doc/{OWN[0]}")[1]["_version"] == 1  # nothing was changed
    status, written = call(base, "PUT", f"/{WRITES_INDEX}/_doc/x?refresh=true", record, user="fcmon", tasking=None)
    assert status == 201 and written["result"] == "created"
    assert straight(es_node, "GET", f"/{WRITES_INDEX}/_doc/x")[1]["_source"] == record
    # Kibana's own work goes with Kibana's own login, which Elasticsearch checks (this node has no such user)
    status, answer = call(base, "PUT", "/.kibana_8.19.0/_doc/config", {"x": 1}, user="kibana_system", tasking=None)
    assert status == 401 and "unable to authenticate user [kibana_system]" in answer["error"]["reason"]
    status, answer = call(base, "POST", "/_bulk", [{"index": {"_index": ".kibana_8.19.0", "_id": "a"}}, {"x": 1}],
                          user="kibana_system", tasking=None, ndjson=True)
    assert status == 401 and "unable to authenticate user [kibana_system]" in answer["error"]["reason"]
    own = "Basic " + base64.b64encode(f"kibana_system:{PASSWORD}".encode()).decode()
    assert [r["headers"]["Authorization"] for r in setup.forwarded] == [service_header(es_node), own, own]


def test_only_known_headers_reach_elasticsearch(setup):
    _, base, _ = setup
    sent = {"es-security-runas-user": "fcmon-admin", "es-secondary-authorization": "Basic eDp5",
            "es-client-authentication": "SharedSecret x", "X-Opaque-Id": "kibana-7"}
    status, headers, answer = exchange(base, "POST", "/fcmon-records/_search", {"size": 1}, headers=sent)
    assert status == 200 and len(ids_of(answer)) == 1  # run as the administrator, the service account would be refused
    assert {k.lower(): v for k, v in headers.items()}["x-opaque-id"] == "kibana-7"  # Elasticsearch saw it, and says so
    forwarded = {k.lower() for k in setup.forwarded[0]["headers"]}
    assert not {"es-security-runas-user", "es-secondary-authorization", "es-client-authentication"} & forwarded


def test_a_versioned_content_type_gets_the_versioned_accept_elasticsearch_8_wants(setup, es_node):
    _, base, _ = setup
    versioned = "application/vnd.elasticsearch+json; compatible-with=8"  # what Kibana 8's client sends
    status, headers, answer = exchange(base, "POST", "/fcmon-records/_search", {"size": 1}, content_type=versioned,
                                       headers={"Accept": "application/json"})
    assert status == 200 and len(ids_of(answer)) == 1
    assert headers["content-type"].replace(" ", "") == "application/vnd.elasticsearch+json;compatible-with=8"
    ndjson = "application/vnd.elasticsearch+x-ndjson; compatible-with=8"  # Kibana's _msearch
    status, answer = call(base, "POST", "/fcmon-records/_msearch", [{}, {"size": 1}], ndjson=True, content_type=ndjson)
    assert status == 200 and len(ids_of(answer["responses"][0])) == 1
    request = urllib.request.Request(es_node.url + "/fcmon-records/_search", data=b"{}", method="POST", headers={
        "Content-Type": versioned, "Accept": "application/json", "Authorization": service_header(es_node)})
    with pytest.raises(urllib.error.HTTPError) as mixed:  # what forwarding the client's Accept would have got
        urllib.request.urlopen(request, timeout=10)
    assert mixed.value.code == 400 and b"media_type_header_exception" in mixed.value.read()


def test_answers_are_asked_for_as_json(setup):
    app, base, _ = setup
    status, answer = call(base, "GET", f"/fcmon-records/_doc/{OWN[0]}", headers={"Accept": "application/yaml"})
    assert status == 200 and answer["found"]  # JSON, whatever the client asked for
    assert setup.forwarded[0]["headers"]["Accept"] == "application/json"
    assert results(app) == [(1, [OWN[0]])]


def test_fcmon_gateway_command_serves_the_node_with_the_service_accounts_settings(tmp_path, es_node, request):
    seeded(request, es_node)
    app = gateway_app(tmp_path / "d")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FCMON_")} | es_node.env(data_dir=tmp_path / "d")
    gateway = subprocess.Popen([sys.executable, "-m", "pipeline", "gateway", "--listen", f"127.0.0.1:{port}",
                                "--upstream", es_node.url], env=env, stderr=subprocess.PIPE, text=True)
    try:
        said = [gateway.stderr.readline() for _ in range(1)]
        while "listening on" not in said[-1] and said[-1] and len(said) < 20:
            said.append(gateway.stderr.readline())
        assert f"listening on http://127.0.0.1:{port}" in said[-1], said
        base = f"http://127.0.0.1:{port}"
        status, answer = call(base, "POST", "/fcmon-records/_search", {"query": {"match": {"message": "cash"}}})
        assert status == 200 and set(ids_of(answer)) == matching("T-1", "cash")
        status, answer = call(base, "POST", "/fcmon-records/_search", {"query": {"match": {"message": "cash"}}},
                              user="sue", tasking="T-2")
        assert status == 200 and set(ids_of(answer)) == matching("T-2", "cash")
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
    assert [e.payload["hits_total"] for e in app.audit.entries(["query.result"])] == [3, 1]


def test_the_official_client_reads_through_the_gateway_as_it_reads_elasticsearch(setup):
    """elasticsearch-py sends what Kibana's JavaScript client sends (versioned media types, compatible-with=8) and
    checks the product header of every answer: it works through the gateway, and sees the tasking's records only."""
    from elasticsearch import Elasticsearch, NotFoundError
    _, base, _ = setup
    client = Elasticsearch(base, basic_auth=("alice", PASSWORD), headers={"X-Fcmon-Tasking": "T-1"})
    assert sorted(h["_id"] for h in client.search(index="fcmon-records", size=20)["hits"]["hits"]) == sorted(OWN)
    assert client.count(index="fcmon-records")["count"] == len(OWN)
    responses = client.msearch(searches=[{"index": "fcmon-records"}, {"query": {"match": {"message": "cash"}}}])
    assert {h["_id"] for h in responses["responses"][0]["hits"]["hits"]} == matching("T-1", "cash")
    assert client.get(index="fcmon-records", id=OWN[0])["found"]
    with pytest.raises(NotFoundError):
        client.get(index="fcmon-records", id=FOREIGN[0])
    assert [d["found"] for d in client.mget(index="fcmon-records", ids=[OWN[1], FOREIGN[1]])["docs"]] == [True, False]
    pit = client.open_point_in_time(index="fcmon-records", keep_alive="1m")["id"]
    page = client.search(pit={"id": pit, "keep_alive": "1m"}, size=20, sort=[{"@timestamp": "asc"}])
    assert sorted(ids_of(page)) == sorted(OWN)
    assert client.close_point_in_time(id=pit)["succeeded"]
    first = client.search(index="fcmon-records", scroll="1m", size=3)
    rest = client.scroll(scroll_id=first["_scroll_id"], scroll="1m")
    assert sorted(ids_of(first) + ids_of(rest)) == sorted(OWN)
    assert client.clear_scroll(scroll_id=rest["_scroll_id"])["succeeded"]
    assert "fcm.tasking_id" in client.field_caps(index="fcmon-records", fields="*")["fields"]
    assert [i["name"] for i in client.indices.resolve_index(name="*")["indices"]] == [setup.seed.concrete]
    assert client.security.authenticate()["username"] == "alice"
