"""A property of `fcmon gateway` on the real Elasticsearch: whatever search Kibana sends, built from the clauses Kibana
builds (query_string, match, match_phrase, multi_match, bool, range on @timestamp, term and terms on keyword fields,
exists, ids; terms, date_histogram and top_hits aggregations; sort, size and from, _source, highlight; one search or
an _msearch of several), no answer passed to a user holds a record of a tasking the user's search is not under: not
its id, not its content hash, not a word or value only that tasking's records hold, in hits, highlights or buckets.

The same bodies sent straight to Elasticsearch, without the gateway, do reach the other tasking's records (counted,
so the property is not proved on searches that could never have leaked).
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.gateway import serve
from tests.factories_gateway import DAY, OWN_WORDS, RECORDS, call, gateway_app, make_gateway, seeded, straight
from tests.servers import running

VIEWERS = {"T-1": "alice", "T-2": "sue"}  # each the requester of that tasking, and on no other
OTHER = {"T-1": "T-2", "T-2": "T-1"}
TEXT_FIELDS = ["message", "fcm.title"]
KEYWORD_VALUES = {
    "user.name": sorted({r.author for rs in RECORDS.values() for r in rs if r.author}),
    "fcm.source_kind": ["forum_post", "marketplace_listing"],
    "fcm.source_id": sorted({r.source_id for rs in RECORDS.values() for r in rs}),
    "fcm.tasking_id": ["T-1", "T-2"],
    "fcm.record_id": [r.id for rs in RECORDS.values() for r in rs],
    "url.full": [r.final_url for rs in RECORDS.values() for r in rs],
}
WORDS = sorted({w.strip(".,:;$").lower() for rs in RECORDS.values() for r in rs for w in f"{r.title} {r.text}".split()}
               - {""})
PHRASES = [" ".join(r.text.split()[i:i + 2]) for rs in RECORDS.values() for r in rs for i in range(4)]
EXISTING = ["user.name", "message", "fcm.title", "fcm.published_at", "fcm.reviewed_by", "url.full"]
DATES = [f"{DAY + timedelta(days=d):%Y-%m-%dT%H:%M:%S.000Z}" for d in range(-2, 16, 2)]


def foreign_marks(tasking: str) -> tuple[set[str], set[str]]:
    """(strings no part of an answer for `tasking` may contain, strings no value in it may equal)."""
    other = OTHER[tasking]
    contained = {r.id for r in RECORDS[other]} | {r.content_sha256 for r in RECORDS[other]} | set(OWN_WORDS[other])
    return {m.lower() for m in contained}, {other}


def strings(tree: Any) -> Iterator[str]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from strings(value)
    elif tree is not None:
        yield str(tree)


def ids_in(tree: Any) -> Iterator[str]:
    if isinstance(tree, dict):
        if isinstance(tree.get("_id"), str):
            yield tree["_id"]
        for value in tree.values():
            yield from ids_in(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from ids_in(value)


def leaks(answer: Any, tasking: str) -> list[str]:
    """What of the other tasking's records the answer holds."""
    contained, equal = foreign_marks(tasking)
    found = [s for s in strings(answer) if s in equal or any(mark in s.lower() for mark in contained)]
    own = {r.id for r in RECORDS[tasking]}
    return found + [f"_id {i}" for i in ids_in(answer) if i not in own]


# -- the clauses Kibana sends ---------------------------------------------------------------------

words = st.sampled_from(WORDS)
text = st.lists(words, min_size=1, max_size=3).map(" ".join)
keyword_field = st.sampled_from(sorted(KEYWORD_VALUES))


@st.composite
def query_string(draw) -> dict:
    def term() -> str:
        kind = draw(st.sampled_from(["word", "wildcard", "field"]))
        if kind == "wildcard":
            return draw(words)[:4] + "*"
        if kind == "field":
            field = draw(st.sampled_from(["user.name", "fcm.source_kind", "fcm.tasking_id"]))
            return f"{field}:{json.dumps(draw(st.sampled_from(KEYWORD_VALUES[field])))}"
        return draw(words)
    joined = f" {draw(st.sampled_from(['AND', 'OR']))} ".join(term() for _ in range(draw(st.integers(1, 3))))
    spec: dict = {"query": joined, "analyze_wildcard": True}
    if draw(st.booleans()):
        spec["fields"] = draw(st.lists(st.sampled_from(TEXT_FIELDS + ["user.name"]), min_size=1, max_size=3, unique=True))
    return {"query_string": spec}


@st.composite
def term_clause(draw) -> dict:
    field = draw(keyword_field)
    if draw(st.booleans()):
        return {"term": {field: draw(st.sampled_from(KEYWORD_VALUES[field]))}}
    return {"terms": {field: draw(st.lists(st.sampled_from(KEYWORD_VALUES[field]), min_size=1, max_size=4))}}


@st.composite
def time_range(draw) -> dict:
    low, high = sorted(draw(st.lists(st.sampled_from(DATES), min_size=2, max_size=2)))
    return {"range": {"@timestamp": {"gte": low, "lte": high, "format": "strict_date_optional_time"}}}


leaves = st.one_of(
    query_string(),
    st.builds(lambda f, q, op: {"match": {f: {"query": q, "operator": op}}}, st.sampled_from(TEXT_FIELDS), text,
              st.sampled_from(["or", "and"])),
    st.builds(lambda q: {"match_phrase": {"message": q}}, st.sampled_from(PHRASES)),
    st.builds(lambda q, kind, fields: {"multi_match": {"query": q, "type": kind, "lenient": True, **fields}}, text,
              st.sampled_from(["best_fields", "phrase", "most_fields"]),
              st.sampled_from([{}, {"fields": TEXT_FIELDS}, {"fields": ["message^2", "user.name"]}])),
    time_range(),
    term_clause(),
    st.builds(lambda f: {"exists": {"field": f}}, st.sampled_from(EXISTING)),
    st.builds(lambda ids: {"ids": {"values": ids}}, st.lists(st.sampled_from(KEYWORD_VALUES["fcm.record_id"]),
                                                             min_size=1, max_size=4)),
    st.just({"match_all": {}}),
)


def boolean(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional={
        occur: st.lists(children, min_size=1, max_size=3) for occur in ("must", "should", "filter", "must_not")
    }).map(lambda clauses: {"bool": clauses})


queries = st.recursive(leaves, boolean, max_leaves=8)


@st.composite
def aggregations(draw, depth: int = 0) -> dict:
    aggs: dict = {}
    for n in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["terms", "date_histogram", "top_hits"]))
        if kind == "terms":
            field = draw(keyword_field)
            agg: dict = {"terms": {"field": field, "size": draw(st.integers(1, 10)),
                                   "order": draw(st.sampled_from([{"_count": "desc"}, {"_key": "asc"}]))}}
            if draw(st.booleans()):
                agg["terms"]["include"] = draw(st.sampled_from([".*", "f.*", "T-.*"]))
        elif kind == "date_histogram":
            agg = {"date_histogram": {"field": "@timestamp", "min_doc_count": draw(st.sampled_from([0, 1])),
                                      "time_zone": "UTC", **draw(st.sampled_from([
                                          {"fixed_interval": "1d"}, {"fixed_interval": "3h"},
                                          {"calendar_interval": "week"}]))}}
        else:
            agg = {"top_hits": {"size": draw(st.integers(1, 3)), **draw(st.sampled_from([
                {}, {"sort": [{"@timestamp": {"order": "desc"}}]}, {"_source": {"includes": ["message", "user.*"]}},
                {"_source": False}]))}}
        if kind != "top_hits" and depth < 1 and draw(st.booleans()):
            agg["aggs"] = draw(aggregations(depth + 1))
        aggs[f"{n}"] = agg
    return aggs


@st.composite
def search_bodies(draw) -> dict:
    body: dict = {"query": draw(queries)}
    optional = {
        "size": st.integers(0, 10), "from": st.integers(0, 4),
        "sort": st.lists(st.sampled_from([{"@timestamp": {"order": "desc", "unmapped_type": "boolean"}},
                                          {"@timestamp": "asc"}, {"user.name": {"order": "asc"}}, "_score",
                                          {"fcm.record_id": "asc"}]), min_size=1, max_size=2, unique_by=json.dumps),
        "_source": st.sampled_from([True, False, ["message", "fcm.title"], {"includes": ["fcm.*"]},
                                    {"excludes": ["message"]}]),
        "highlight": st.sampled_from([
            {"pre_tags": ["@kibana-highlighted-field@"], "post_tags": ["@/kibana-highlighted-field@"],
             "fields": {"*": {}}, "fragment_size": 2147483647},
            {"fields": {"message": {"number_of_fragments": 1}, "fcm.title": {}}}]),
        "aggs": aggregations(),
        "track_total_hits": st.booleans(),
        "fields": st.just([{"field": "*", "include_unmapped": "true"}]),
        "post_filter": term_clause(),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


requests = st.one_of(
    st.tuples(st.just("_search"), search_bodies()),
    st.tuples(st.just("_msearch"), st.lists(st.tuples(st.sampled_from([{}, {"index": "fcmon-records"}]), search_bodies()),
                                            min_size=1, max_size=3)),
)


# -- the property ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gateway(request, es_node, tmp_path_factory) -> Iterator[str]:
    """One gateway for the module, straight in front of the node, as `fcmon gateway --upstream URL` runs."""
    seeded(request, es_node)
    app = gateway_app(tmp_path_factory.mktemp("gateway") / "d")
    with running(serve(make_gateway(app, es_node.url, es_node), "127.0.0.1", 0)) as base:
        yield base


def answers(base: str, endpoint: str, search: Any, tasking: str) -> tuple[int, Any]:
    if endpoint == "_msearch":
        lines = [line for header, body in search for line in (header, body)]
        return call(base, "POST", "/fcmon-records/_msearch", lines, user=VIEWERS[tasking], tasking=tasking, ndjson=True)
    return call(base, "POST", "/fcmon-records/_search", search, user=VIEWERS[tasking], tasking=tasking)


def unfiltered(es_node: Any, endpoint: str, search: Any) -> list[Any]:
    bodies = [body for _, body in search] if endpoint == "_msearch" else [search]
    return [straight(es_node, "POST", "/fcmon-records/_search", body, admin=True)[1] for body in bodies]


def test_no_answer_holds_a_record_of_another_tasking(gateway, es_node):
    tally = {"examples": 0, "would_leak": 0, "own_hits": 0}

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(request=requests, tasking=st.sampled_from(sorted(VIEWERS)))
    def check(request, tasking) -> None:
        endpoint, search = request
        status, answer = answers(gateway, endpoint, search, tasking)
        assert status == 200, (search, answer)
        responses = answer["responses"] if endpoint == "_msearch" else [answer]
        assert all(r.get("status", 200) == 200 for r in responses), (search, answer)
        assert leaks(answer, tasking) == [], search
        tally["examples"] += 1
        tally["own_hits"] += any(r["hits"]["hits"] for r in responses)
        tally["would_leak"] += any(leaks(straight_answer, tasking) for straight_answer in unfiltered(es_node, endpoint, search))

    check()
    # the bodies reached the other tasking's records when sent straight to Elasticsearch, and found the user's own
    assert tally["would_leak"] >= tally["examples"] // 5 and tally["own_hits"] >= tally["examples"] // 5, tally
