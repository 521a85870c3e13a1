"""The Elasticsearch adapter: its pure parts (template, documents, query translation, bulk actions and their errors)
without a cluster, then the template, the strict mapping, the alias, the re-index path and per-item bulk errors on the
session's real node (tests/stack.py `es_node`), as fcmon's service account. The shared contract suite runs on that
node too (tests/test_index_contract.py)."""
from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timezone

import pytest

from pipeline.errors import FcmonError, Unavailable
from pipeline.index import FILTER_FIELDS, InvalidQuery, SearchQuery
from pipeline.index.elasticsearch import (FILTER_TARGETS, QUERY_FIELDS, ElasticsearchIndex, bulk_actions, bulk_body,
                                          es_document, es_page, es_record, es_search_body, load_template, triage_bulk)
from pipeline.settings import Settings
from pipeline.stack import free_port
from tests.factories import make_record
from tests.factories_es import FakeElasticsearch
from tests.servers import serving
from tests.test_index_contract import wipe_alias

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


class BusyCluster(FakeElasticsearch):
    """Answers _bulk as a node whose write queue is full: the first attempt at each id gets 429, later ones succeed.

    A stand-in because the real node cannot be made to do this here: 429 per item comes from a saturated write thread
    pool, whose size and queue are static node settings, and the session's node is shared by every test."""
    seen: dict[str, int] = {}

    def do_POST(self) -> None:  # noqa: N802
        items = []
        for line in self.read_body().decode().splitlines():
            entry = json.loads(line)
            op = next(iter(entry))
            if op in ("index", "delete") and isinstance(entry[op], dict) and "_id" in entry[op]:
                rid = entry[op]["_id"]
                self.seen[rid] = self.seen.get(rid, 0) + 1
                busy = self.seen[rid] == 1
                items.append({op: {"_id": rid, "status": 429 if busy else 201, **(
                    {"error": {"type": "es_rejected_execution_exception", "reason": "queue full"}} if busy else {})}})
        self.answer(200, {"took": 1, "errors": True, "items": items})

    do_PUT = do_POST


def test_items_a_busy_node_turns_away_are_retried_until_they_are_in():
    from elasticsearch import Elasticsearch

    with serving(BusyCluster) as url:
        ElasticsearchIndex(Elasticsearch(url), "fcmon-test", refresh=False).upsert([R1, R2])
    assert BusyCluster.seen == {R1.id: 2, R2.id: 2}


# -- on the real node ------------------------------------------------------------------------------

REVIEW_FIELDS = ("reviewed_by", "reviewed_at", "review_note")


@pytest.fixture
def es(es_node):
    """fcmon's service account on the session's node and a fresh alias name; everything behind it wiped afterwards."""
    client = es_node.client()
    alias = f"fcmon-test-{uuid.uuid4().hex[:12]}"
    yield client, alias
    wipe_alias(client, alias)
    client.close()


def older_mapping() -> dict:
    """The records mapping as an older fcmon made <alias>-v1: no analyst review fields, no ignore_above."""
    mapping = copy.deepcopy(MAPPING)
    for name in REVIEW_FIELDS:
        del mapping["properties"]["fcm"]["properties"][name]

    def plain(properties: dict) -> None:
        for spec in properties.values():
            spec.pop("ignore_above", None)
            plain(spec.get("properties", {}))
    plain(mapping["properties"])
    return mapping


def create_older_index(client, alias: str) -> None:
    settings = copy.deepcopy(load_template()["template"]["settings"])
    client.indices.create(index=f"{alias}-v1", settings=settings, mappings=older_mapping(),
                          aliases={alias: {"is_write_index": True}})


def test_the_template_installs_as_written(es_node, es):
    client, alias = es
    ElasticsearchIndex(client, alias).ensure()
    template = load_template()
    (installed,) = client.indices.get_index_template(name=alias)["index_templates"]
    assert installed["index_template"]["index_patterns"] == [f"{alias}-*"]
    assert installed["index_template"]["_meta"] == template["_meta"]
    assert dict(client.indices.get_alias(name=alias)) == {f"{alias}-v1": {"aliases": {alias: {"is_write_index": True}}}}
    (concrete,) = client.indices.get_mapping(index=alias).values()
    assert concrete["mappings"]["dynamic"] == "strict"
    assert mapped_paths(concrete["mappings"]["properties"]) == PATHS  # every field as the file maps it, none added
    settings = client.indices.get_settings(index=alias)[f"{alias}-v1"]["settings"]["index"]
    assert (settings["number_of_shards"], settings["auto_expand_replicas"], settings["refresh_interval"]) == ("1", "0-1", "5s")
    assert settings["analysis"]["normalizer"]["lowercase"] == {"type": "custom", "filter": ["lowercase"]}
    # one node: no replica to wait for, so the index is green, not yellow for ever
    assert client.cluster.health(index=alias, wait_for_status="green", timeout="10s")["status"] == "green"


def test_the_mapping_is_strict(es):
    from elasticsearch import BadRequestError
    client, alias = es
    ElasticsearchIndex(client, alias).ensure()
    document = es_document(R1)
    with pytest.raises(BadRequestError) as unknown:
        client.index(index=alias, id="x1", document={**document, "nickname": "al"})
    assert unknown.value.error == "strict_dynamic_mapping_exception" and "nickname" in str(unknown.value)
    with pytest.raises(BadRequestError) as nested:
        client.index(index=alias, id="x2", document={**document, "fcm": {**document["fcm"], "score": 3}})
    assert nested.value.error == "strict_dynamic_mapping_exception" and "score" in str(nested.value)
    with pytest.raises(BadRequestError) as wrong_type:
        client.index(index=alias, id="x3", document={**document, "@timestamp": "last tuesday"})
    assert wrong_type.value.error == "document_parsing_exception"
    client.index(index=alias, id=R1.id, document=document, refresh=True)  # the adapter's own document goes in
    assert client.count(index=alias)["count"] == 1


def test_opening_sends_nothing_and_the_template_goes_in_before_the_first_write(es_node, es):
    client, alias = es
    closed = Settings(**es_node.settings(elasticsearch_url=f"http://127.0.0.1:{free_port()}"))
    ElasticsearchIndex.from_settings(closed)  # a request would fail here: nothing listens on that port
    index = ElasticsearchIndex.from_settings(Settings(**es_node.settings(elasticsearch_records_alias=alias)))
    assert not client.indices.exists_index_template(name=alias) and not client.indices.exists_alias(name=alias)
    index.upsert([R1])
    assert client.indices.exists_index_template(name=alias)
    assert list(client.indices.get_alias(name=alias)) == [f"{alias}-v1"]
    assert index.get(R1.id) == R1 and index.count() == 1  # searchable as soon as upsert returns
    index.upsert([R2])
    assert index.count() == 2 and list(client.indices.get_alias(name=alias)) == [f"{alias}-v1"]
    index.close()


def test_crawled_values_too_long_for_a_keyword_are_stored_not_refused(es):
    client, alias = es
    index = ElasticsearchIndex(client, alias, ensured=False)
    huge = make_record(url="https://forum.example.org/t/" + "a" * 40_000, author="b" * 40_000,
                       source_id="forum.example.org/" + "c" * 40_000, non_subject_identifiers=["@" + "d" * 40_000])
    index.upsert([huge, R1])  # Lucene refuses a term above 32766 bytes; over ignore_above the value is kept unindexed
    assert index.get(huge.id) == huge and index.count("T-1") == 2
    assert {h.record.id for h in index.search(SearchQuery(text="", tasking_id="T-1")).hits} == {huge.id, R1.id}


def test_a_document_the_mapping_refuses_fails_alone_and_is_reported(es):
    client, alias = es
    create_older_index(client, alias)  # an older fcmon's index: the analyst review fields unmapped, no ignore_above
    index = ElasticsearchIndex(client, alias, ensured=False)
    long_url = make_record(url="https://forum.example.org/t/" + "a" * 40_000)
    with pytest.raises(FcmonError) as caught:
        index.upsert([long_url, R1, R3, R2])
    message = str(caught.value)
    assert message.startswith(f"Elasticsearch refused 2 of 4 records (first: {long_url.id}: 400 document_parsing_exception")
    assert "aaaa" not in message and len(message) < 400  # the crawled value Elasticsearch quotes is not repeated
    assert "replay" in caught.value.hint
    assert index.get(R1.id) == R1 and index.get(R2.id) == R2  # the others are in, and searchable
    assert index.get(R3.id) is None and index.get(long_url.id) is None and index.count() == 2
    with pytest.raises(FcmonError, match=rf"refused 1 of 1 records \(first: {R3.id}: 400 strict_dynamic_mapping_exception "
                                         r".*dynamic introduction of \[reviewed_by\]"):
        index.upsert([R3])


def test_reindex_into_v2_and_move_the_alias(es_node, es):
    """When the template changes: a new index from the new template, every record copied, the alias moved in one step;
    fcmon then writes into -v2 without being told, and the old index is left as it was."""
    client, alias = es
    create_older_index(client, alias)
    ElasticsearchIndex(client, alias).upsert([R1, R2])
    index = ElasticsearchIndex.from_settings(Settings(**es_node.settings(elasticsearch_records_alias=alias)))
    assert index.reindex() == (f"{alias}-v2", 2)
    assert dict(client.indices.get_alias(name=alias)) == {f"{alias}-v2": {"aliases": {alias: {"is_write_index": True}}}}
    (v2,) = client.indices.get_mapping(index=f"{alias}-v2").values()
    assert mapped_paths(v2["mappings"]["properties"]) == PATHS  # the template's pattern <alias>-* gave it the mapping
    assert index.get(R1.id) == R1 and index.get(R2.id) == R2
    index.upsert([R3])  # refused by -v1's mapping, taken by -v2's
    assert index.count() == 3 and index.get(R3.id) == R3
    assert client.count(index=f"{alias}-v1")["count"] == 2  # the old index untouched, for the operator to delete
    assert ElasticsearchIndex(client, alias).reindex() == (f"{alias}-v3", 3)
    assert sorted(client.indices.get(index=f"{alias}-*")) == [f"{alias}-v1", f"{alias}-v2", f"{alias}-v3"]
    assert list(client.indices.get_alias(name=alias)) == [f"{alias}-v3"] and index.count() == 3
    index.close()


def test_a_node_that_cannot_be_reached_is_one_user_facing_error(es_node):
    closed = ElasticsearchIndex.from_settings(Settings(**es_node.settings(
        elasticsearch_url=f"http://127.0.0.1:{free_port()}", elasticsearch_records_alias="fcmon-test-closed")))
    for call in (lambda: closed.upsert([R1]), closed.count, lambda: closed.get(R1.id),
                 lambda: closed.search(SearchQuery(text="pallets", tasking_id="T-1"))):
        with pytest.raises(Unavailable) as caught:
            call()
        assert str(caught.value).startswith("Elasticsearch request failed: ConnectionError")
        assert "\n" not in str(caught.value) and "FCMON_ELASTICSEARCH_URL" in caught.value.hint


def test_the_service_account_writes_fcmon_indices_only(es_node):
    """fcmon's role (tests/stack.py, config/elasticsearch/roles.yml) reaches indices fcmon-* only. Its cluster privilege
    manage_index_templates is not limited by name: the template of an alias outside fcmon-* goes in, its index does not."""
    client, admin = es_node.client(), es_node.client(admin=True)
    try:
        with pytest.raises(Unavailable, match="AuthorizationException.*indices:admin/create.*unauthorized for user .fcmon."):
            ElasticsearchIndex(client, "other-records").ensure()
        assert admin.indices.exists_index_template(name="other-records")
        assert not admin.indices.exists(index="other-records-v1")
    finally:
        admin.options(ignore_status=404).indices.delete_index_template(name="other-records")
        client.close(), admin.close()
