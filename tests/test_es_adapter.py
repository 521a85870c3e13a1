"""The Elasticsearch adapter's pure parts: template, documents, query translation, bulk actions and their errors.

The live tier is tests/test_index_contract.py with FCMON_ELASTICSEARCH_URL set."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from pipeline.errors import FcmonError
from pipeline.index import FILTER_FIELDS, InvalidQuery, SearchQuery
from pipeline.index.elasticsearch import (FILTER_TARGETS, QUERY_FIELDS, ElasticsearchIndex, bulk_actions, bulk_body,
                                          es_document, es_page, es_record, es_search_body, load_template, triage_bulk)
from tests.factories import make_record
from tests.factories_es import FakeElasticsearch
from tests.servers import serving

R1 = make_record(url="https://forum.example.org/t/1", author="Alice", title="Stolen pallets", text="Power tools")
R2 = make_record(url="https://news.example.com/x", author=None, published_at=None,
                 fetched_at=datetime(2026, 3, 10, tzinfo=timezone.utc), label_overrides={"criminal_intelligence": True})
R3 = make_record(url="https://forum.example.org/t/3", pii_masked={"email": 2, "phone": 1}, non_subject_identifiers=["@bystander"],
                 released_by="sam", release_reason="direct threat", reviewed_by="alice",
                 reviewed_at=datetime(2026, 3, 12, tzinfo=timezone.utc), review_note="matches report RD-1")
MAPPING = load_template()["template"]["mappings"]


def mapped_paths(properties: dict, prefix: str = "") -> dict[str, dict]:
    paths = {}
    for name, spec in properties.items():
        if "properties" in spec:
            paths |= mapped_paths(spec["properties"], f"{prefix}{name}.")
        else:
            paths[prefix + name] = spec
    return paths


def leaf_paths(doc: dict, prefix: str = "") -> set[str]:
    found = set()
    for name, value in doc.items():
        if isinstance(value, dict) and PATHS.get(prefix + name, {}).get("enabled") is not False:
            found |= leaf_paths(value, f"{prefix}{name}.")
        else:
            found.add(prefix + name)
    return found


PATHS = mapped_paths(MAPPING["properties"])


def test_template_is_strict_and_uses_ecs_names():
    assert MAPPING["dynamic"] == "strict"
    assert PATHS["@timestamp"]["type"] == "date"
    assert PATHS["url.full"]["type"] == "keyword" and PATHS["user.name"]["type"] == "keyword"
    assert PATHS["fcm.tasking_id"]["type"] == "keyword"
    assert PATHS["fcm.labels.criminal_intelligence"]["type"] == "boolean"


@pytest.mark.parametrize("record", [R1, R2, R3])
def test_every_document_field_is_mapped(record):
    assert leaf_paths(es_document(record)) <= set(PATHS)


def test_query_fields_and_filters_resolve_to_mapped_fields():
    for name in QUERY_FIELDS:
        assert PATHS[name]["type"] == "alias" and PATHS[name]["path"] in PATHS, name
    assert set(FILTER_TARGETS) == set(FILTER_FIELDS)
    assert all(target in PATHS for target in FILTER_TARGETS.values())


@pytest.mark.parametrize("record", [R1, R2, R3])
def test_document_round_trips(record):
    assert es_record(json.loads(json.dumps(es_document(record)))) == record


def test_document_uses_ecs_fields():
    doc = es_document(R1)
    assert doc["@timestamp"] == R1.timestamp.isoformat() and doc["url"]["full"] == R1.final_url
    assert doc["user"]["name"] == "Alice" and doc["message"] == "Power tools" and doc["fcm"]["title"] == "Stolen pallets"
    assert "user" not in es_document(R2)


def test_query_translation():
    body = es_search_body(SearchQuery(text='stolen "power tools" -docks', tasking_id="T-1",
                                      filters={"author": "ALICE", "criminal_intelligence": "true"},
                                      time_from=datetime(2026, 1, 1, tzinfo=timezone.utc), offset=20, limit=10))
    boolean = body["query"]["bool"]
    assert boolean["filter"][0] == {"term": {"fcm.tasking_id": "T-1"}}
    assert {"term": {"user.name": "alice"}} in boolean["filter"]
    assert {"term": {"fcm.labels.criminal_intelligence": True}} in boolean["filter"]
    assert {"range": {"@timestamp": {"gte": "2026-01-01T00:00:00+00:00"}}} in boolean["filter"]
    (must,) = boolean["must"]
    assert must["query_string"]["query"] == 'stolen "power tools" -docks'
    assert must["query_string"]["default_operator"] == "AND"
    assert must["query_string"]["fields"] == ["fcm.title", "message"]
    assert (body["from"], body["size"], body["track_total_hits"]) == (20, 10, True)
    assert "sort" not in body and body["highlight"]["encoder"] == "html"


def test_empty_text_is_the_whole_tasking_newest_first():
    body = es_search_body(SearchQuery(text="  ", tasking_id="T-9"))
    assert "must" not in body["query"]["bool"] and "highlight" not in body
    assert body["sort"][0] == {"@timestamp": {"order": "desc"}}
    assert body["query"]["bool"]["filter"] == [{"term": {"fcm.tasking_id": "T-9"}}]


def test_the_tasking_filter_is_never_from_the_text():
    body = es_search_body(SearchQuery(text="tasking_id:T-2 OR x", tasking_id="T-1"))
    assert body["query"]["bool"]["filter"][0] == {"term": {"fcm.tasking_id": "T-1"}}


@pytest.mark.parametrize("text,message", [
    ("nosuchfield:x", "unknown field nosuchfield"),
    ("title:x AND url.full:y", "unknown field url.full"),
])
def test_unknown_fields_are_refused_before_the_cluster(text, message):
    with pytest.raises(InvalidQuery, match=message):
        es_search_body(SearchQuery(text=text, tasking_id="T-1"))


def test_colons_inside_phrases_are_not_fields():
    es_search_body(SearchQuery(text='"see http://x.example/a:b" author:bob', tasking_id="T-1"))


@pytest.mark.parametrize("kwargs,message", [
    ({"filters": {"tasking_id": "T-2"}}, "cannot filter on 'tasking_id'"),
    ({"filters": {"criminal_intelligence": "maybe"}}, "true or false"),
    ({"offset": -1}, "must not be negative"),
    ({"offset": 9_995, "limit": 10}, "exceeds 10000"),
])
def test_bad_queries_are_refused(kwargs, message):
    with pytest.raises(InvalidQuery, match=message):
        es_search_body(SearchQuery(text="x", tasking_id="T-1", **kwargs))


def test_page_from_a_response():
    response = {"hits": {"total": {"value": 7, "relation": "eq"}, "hits": [
        {"_id": R1.id, "_score": 1.5, "_source": es_document(R1),
         "highlight": {"fcm.title": ["Stolen <mark>pallets</mark>"], "message": ["<mark>Power</mark> tools"]}}]}}
    page = es_page(response, by_time=False)
    assert page.total == 7 and page.hits[0].record == R1 and page.hits[0].score == 1.5
    assert page.hits[0].highlights == ["Stolen <mark>pallets</mark>", "<mark>Power</mark> tools"]


def test_bulk_actions_have_deterministic_ids_and_last_wins():
    newer = R1.model_copy(update={"title": "newer"})
    actions = bulk_actions([R1, R2, newer], "fcmon-records")
    assert [a["_id"] for a in actions] == [R1.id, R2.id]
    assert actions[0]["_source"]["fcm"]["title"] == "newer"
    assert bulk_body(actions)[0] == {"index": {"_index": "fcmon-records", "_id": R1.id}}
    assert bulk_actions([R1], "a") == bulk_actions([R1], "a")


def test_bulk_triage_separates_retries_from_failures():
    actions = bulk_actions([R1, R2, make_record(url="https://x.example/3")], "i")
    response = {"errors": True, "items": [
        {"index": {"_id": R1.id, "status": 201}},
        {"index": {"_id": R2.id, "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "busy"}}},
        {"index": {"_id": actions[2]["_id"], "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad date"}}},
    ]}
    retry, failed = triage_bulk(actions, response)
    assert [a["_id"] for a in retry] == [R2.id]
    assert failed == [f"{actions[2]['_id']}: 400 mapper_parsing_exception bad date"]
    deletes = [{"_op_type": "delete", "_index": "i", "_id": "gone"}]
    assert triage_bulk(deletes, {"items": [{"delete": {"_id": "gone", "status": 404}}]}, missing_ok=True) == ([], [])


class FakeCluster(FakeElasticsearch):
    """Answers _bulk like a busy cluster: the first attempt at each id gets 429, later ones succeed; 'bad' ids get 400."""
    seen: dict[str, int] = {}
    requests: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.read_body().decode()
        self.requests.append(self.path)
        items = []
        for line in body.splitlines():
            entry = json.loads(line)
            op = next(iter(entry))
            if op in ("index", "delete") and isinstance(entry[op], dict) and "_id" in entry[op]:
                rid = entry[op]["_id"]
                self.seen[rid] = self.seen.get(rid, 0) + 1
                status = 400 if rid == BAD.id else (429 if self.seen[rid] == 1 else 200)
                items.append({op: {"_id": rid, "status": status, **({"error": {"type": "x", "reason": "refused"}} if status >= 300 else {})}})
        self.answer(200, {"took": 1, "errors": True, "items": items})

    do_PUT = do_POST


BAD = make_record(url="https://x.example/bad")


def test_bulk_retries_busy_items_and_reports_failures_over_http():
    from elasticsearch import Elasticsearch

    with serving(FakeCluster) as url:
        index = ElasticsearchIndex(Elasticsearch(url), "fcmon-test")
        with pytest.raises(FcmonError, match=r"refused 1 of 3 records \(first: .*400 x refused\)") as caught:
            index.upsert([R1, R2, BAD])
    assert "replay" in caught.value.hint
    assert FakeCluster.seen[R1.id] == 2 and FakeCluster.seen[R2.id] == 2 and FakeCluster.seen[BAD.id] == 1
    assert all(path.startswith("/_bulk") and "refresh=wait_for" in path for path in FakeCluster.requests)


class RetentionCluster(FakeElasticsearch):
    """Answers a scan (search with scroll, scroll, clear) with the records whose purge date is due, and records the query."""
    queries: list[dict] = []
    stored = [make_record(url="https://x.example/due", label_overrides={"purge_by": datetime(2026, 1, 1).date()})]

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.read_body() or b"{}")
        if self.path.startswith("/_search/scroll"):
            return self.answer(200, {"_scroll_id": "s1", "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                                 "hits": {"hits": []}})
        self.queries.append(body["query"])
        hits = [{"_id": r.id, "_source": es_document(r)} for r in self.stored]
        self.answer(200, {"_scroll_id": "s1", "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                          "hits": {"total": {"value": len(hits)}, "hits": hits}})

    def do_DELETE(self) -> None:  # noqa: N802
        self.answer(200, {"succeeded": True, "num_freed": 1})


def test_records_due_are_a_range_query_on_the_label():
    from elasticsearch import Elasticsearch

    with serving(RetentionCluster) as url:
        due = ElasticsearchIndex(Elasticsearch(url), "fcmon-test").due(["purge_by"], datetime(2026, 11, 24).date())
    assert due == RetentionCluster.stored
    assert RetentionCluster.queries == [{"range": {"fcm.labels.purge_by": {"lte": "2026-11-24"}}}]


class RecordingCluster(FakeElasticsearch):
    """Says yes to everything and records the requests (method and path)."""
    requests: list[str] = []

    def _yes(self) -> None:
        self.read_body()
        self.requests.append(f"{self.command} {self.path.split('?')[0]}")
        self.answer(200, {"acknowledged": True, "errors": False, "items": [], "took": 1})

    do_GET = do_POST = do_PUT = do_HEAD = _yes


def test_opening_the_index_sends_nothing_and_the_template_goes_in_before_the_first_write():
    from pipeline.settings import Settings
    with serving(RecordingCluster) as url:
        index = ElasticsearchIndex.from_settings(Settings(index="elasticsearch", elasticsearch_url=url))
        assert RecordingCluster.requests == []  # a search can be logged before any request can fail
        index.upsert([R1])
        index.upsert([R2])
    assert RecordingCluster.requests == ["PUT /_index_template/fcmon-records", "HEAD /_alias/fcmon-records",
                                         "PUT /_bulk", "PUT /_bulk"]
