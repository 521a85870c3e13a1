"""Relevance scores through the gateway (the outside test's hole 6): Elasticsearch computes them from the statistics of
the whole index, every tasking's documents included, so a score would tell whether other taskings' records hold a
word. The gateway runs the user's query as a filter beside the tasking's: no hit is scored, and Kibana's sorts (time,
fields, _score) still answer. On the session's real Elasticsearch."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterator

import pytest

from pipeline.index.elasticsearch import ElasticsearchIndex
from tests.factories import make_record
from tests.factories_gateway import DAY, RECORDS_ALIAS, call, setup  # noqa: F401  (setup is a fixture)

SCORED = {"query": {"bool": {"should": [{"match": {"message": "converters"}}, {"match": {"message": "cash"}}]}},
          "track_scores": True, "sort": ["_score"]}


def scores(tree: Any) -> Iterator[Any]:
    """Every _score and max_score anywhere in an answer (hits, top_hits, inner hits)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key in ("_score", "max_score"):
                yield value
            yield from scores(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from scores(value)


@pytest.mark.parametrize("path,body,ndjson", [
    ("/fcmon-records/_search", SCORED, False),
    ("/fcmon-records/_search", {"query": {"query_string": {"query": "converters OR platinum"}}}, False),
    ("/fcmon-records/_search", {"size": 0, "query": {"match": {"message": "converters"}},
                                "aggs": {"top": {"top_hits": {"size": 3, "sort": ["_score"]}}}}, False),
    ("/_msearch", [{"index": "fcmon-records"}, SCORED], True),
])
def test_no_answer_carries_a_score(setup, path, body, ndjson):
    _, base, _ = setup
    status, answer = call(base, "POST", path, body, ndjson=ndjson)
    assert status == 200, answer
    found = list(scores(answer))
    assert found and all(s in (0, 0.0, None) for s in found), found


def test_an_answer_is_the_same_whatever_other_taskings_records_hold(setup, es_node):
    _, base, _ = setup
    before = call(base, "POST", "/fcmon-records/_search", SCORED)[1]["hits"]
    index = ElasticsearchIndex(es_node.client(), RECORDS_ALIAS, refresh=True)
    more = [make_record(tasking_id="T-2", title=f"Cash {n}", text="cash cash cash for converters, cash only", url=f"https://harbor.example/more/{n}",
                        published_at=DAY + timedelta(days=5), fetched_at=DAY + timedelta(days=5)) for n in range(40)]
    index.upsert(more)
    try:
        after = call(base, "POST", "/fcmon-records/_search", SCORED)[1]["hits"]
    finally:
        es_node.client().bulk(operations=[{"delete": {"_index": setup.seed.concrete, "_id": r.id}} for r in more],
                              refresh=True)

    def seen(hits: dict) -> tuple:
        return hits["total"], hits["max_score"], sorted((h["_id"], h["_score"]) for h in hits["hits"])
    assert seen(before) == seen(after)


@pytest.mark.parametrize("sort,order", [
    ([{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}}], lambda k: -k[0]),  # Discover's default
    ([{"@timestamp": "asc"}], lambda k: k[0]),
    ([{"fcm.source_kind": {"order": "asc"}}, {"@timestamp": "desc"}], lambda k: (k[0], -k[1])),
    (["_score", {"@timestamp": "desc"}], lambda k: (-k[0], -k[1])),
])
def test_kibanas_sorts_still_order_the_taskings_records(setup, sort, order):
    _, base, _ = setup
    status, answer = call(base, "POST", "/fcmon-records/_search", {"query": {"match": {"message": "cash"}}, "sort": sort})
    assert status == 200, answer
    hits = answer["hits"]["hits"]
    assert len(hits) == 3 and {h["_source"]["fcm"]["tasking_id"] for h in hits} == {"T-1"}
    keys = [h["sort"] for h in hits]
    assert keys == sorted(keys, key=order) and len({tuple(k) for k in keys}) > 1


@pytest.mark.parametrize("body,reason", [
    ({"query": {"match": {"message": "cash"}}, "rescore": {"query": {"rescore_query": {"match": {"message": "pallets"}}}}},
     "'rescore'"),
    ({"query": {"function_score": {"query": {"match": {"message": "cash"}}, "min_score": 0.5}}}, "min_score"),
    ({"query": {"script_score": {"query": {"match": {"message": "cash"}}, "script": {"source": "1"}, "min_score": 1}}},
     "min_score"),
    ({"query": {"more_like_this": {"fields": ["message"], "like": "cash only converters", "min_term_freq": 1}}},
     "more_like_this"),
])
def test_clauses_whose_matches_depend_on_scores_are_refused_and_logged(setup, body, reason):
    app, base, _ = setup
    status, answer = call(base, "POST", "/fcmon-records/_search", body)
    assert status == 403 and reason in answer["error"]["reason"], answer
    assert setup.forwarded == [] and len(list(app.audit.entries(["query.refused"]))) == 1
