"""The Index port's contract: every adapter must pass these (add an adapter to ADAPTERS).

The Elasticsearch adapter runs on the session's real node (tests/stack.py `es_node`), as fcmon's service account."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timezone

import pytest

from pipeline.errors import FcmonError
from pipeline.index import FILTER_FIELDS, Index, InvalidQuery, SearchPage, SearchQuery
from tests.factories import make_record

ADAPTERS = ["local", "elasticsearch"]
T1, T2 = "T-1", "T-2"
QUERY_HINT = 'use words, "phrases", AND/OR/NOT, parentheses and field:value'


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


R1 = make_record(tasking_id=T1, source_kind="forum_post", source_id="forum.example.org", author="Alice",
                 url="https://forum.example.org/t/1", title="Stolen pallets",
                 text="Crew moving stolen pallets of power tools near the docks.",
                 published_at=utc(2026, 1, 10), label_overrides={"content_validity": "probably_true"})
R2 = make_record(tasking_id=T1, source_kind="mastodon_post", source_id="mastodon.example", author="bob",
                 url="https://mastodon.example/@bob/2", title="Market day",
                 text="Power outage at the market; tools on sale. <script>alert('x')</script> & more",
                 published_at=utc(2026, 2, 10),
                 label_overrides={"sensitivity": "public", "criminal_intelligence": True, "review_status": "reviewed"})
R3 = make_record(tasking_id=T1, source_kind="feed_entry", source_id="news.example.com", author=None,
                 url="https://news.example.com/docks", title="Docks news",
                 text="The docks reopened after the storm. Tools and pallets everywhere.",
                 published_at=None, fetched_at=utc(2026, 3, 10), label_overrides={"source_reliability": "reliable"})
R4 = make_record(tasking_id=T2, source_kind="forum_post", source_id="forum.example.org", author="alice",
                 url="https://forum.example.org/t/9", title="Other tasking",
                 text="Stolen pallets, a secret of the other tasking.", published_at=utc(2026, 1, 15))
CORPUS = [R1, R2, R3, R4]


def open_local(request, tmp_path) -> Iterator[Callable[[], Index]]:
    from pipeline.index.local import LocalIndex
    opened: list[LocalIndex] = []

    def opener() -> Index:
        opened.append(LocalIndex(tmp_path / "index"))
        return opened[-1]

    yield opener
    for index in opened:
        index.close()


def open_elasticsearch(request, tmp_path) -> Iterator[Callable[[], Index]]:
    """A fresh alias `fcmon-test-<uuid>` (its template and <alias>-v1) per test on the session's node, wiped afterwards;
    each opener is a new client, as another process would have."""
    from pipeline.index.elasticsearch import ElasticsearchIndex
    node = request.getfixturevalue("es_node")
    alias = f"fcmon-test-{uuid.uuid4().hex[:12]}"
    client = node.client()
    ElasticsearchIndex(client, alias).ensure()
    opened: list[ElasticsearchIndex] = []

    def opener() -> Index:
        opened.append(ElasticsearchIndex(node.client(), alias))
        return opened[-1]

    yield opener
    for index in opened:
        index.close()
    wipe_alias(client, alias)
    client.close()


def wipe_alias(client, alias: str) -> None:
    """Delete the indices behind an alias and its index template (fcmon's account may: they are fcmon-*)."""
    client.indices.delete(index=f"{alias}-*", ignore_unavailable=True, allow_no_indices=True)
    client.options(ignore_status=404).indices.delete_index_template(name=alias)


OPENERS = {"local": open_local, "elasticsearch": open_elasticsearch}


@pytest.fixture(params=ADAPTERS)
def open_index(request, tmp_path) -> Iterator[Callable[[], Index]]:
    """A function opening the adapter on the same storage each time (a reopen is a new process's view)."""
    yield from OPENERS[request.param](request, tmp_path)


@pytest.fixture
def index(open_index) -> Index:
    opened = open_index()
    opened.upsert(CORPUS)
    return opened


def search(index: Index, text: str = "", tasking_id: str = T1, **kwargs) -> SearchPage:
    return index.search(SearchQuery(text=text, tasking_id=tasking_id, **kwargs))


def found(index: Index, text: str = "", tasking_id: str = T1, **kwargs) -> set[str]:
    page = search(index, text, tasking_id, limit=100, **kwargs)
    assert page.total == len(page.hits)
    return {hit.record.id for hit in page.hits}


def ids(*records) -> set[str]:
    return {record.id for record in records}


# -- storage -------------------------------------------------------------------------------------

def test_upsert_twice_does_not_duplicate(index):
    index.upsert(CORPUS)
    index.upsert([R1, R1])
    assert index.count() == 4
    assert index.ids() == sorted(ids(*CORPUS))
    assert search(index, "stolen pallets").total == 1


def test_upsert_replaces_a_record_with_the_same_id(index):
    reviewed = R1.model_copy(update={"labels": R1.labels.model_copy(update={"review_status": "reviewed"})})
    index.upsert([reviewed])
    assert index.count() == 4
    assert index.get(R1.id).labels.review_status == "reviewed"
    assert found(index, filters={"review_status": "reviewed"}) == ids(R1, R2)


def test_get_returns_the_whole_record(index):
    assert index.get(R2.id) == R2
    assert index.get(R3.id).timestamp == utc(2026, 3, 10)
    assert index.get("no-such-id") is None


def test_delete(index):
    index.delete([R1.id, "no-such-id"])
    assert index.get(R1.id) is None
    assert index.count() == 3
    assert found(index, "pallets") == ids(R3)
    index.delete([])
    assert index.count() == 3


def test_count_per_tasking(index):
    assert index.count() == 4
    assert index.count(T1) == 3
    assert index.count(T2) == 1
    assert index.count("T-unknown") == 0


def test_committed_writes_survive_a_reopen(index, open_index):
    index.close()
    reopened = open_index()
    assert reopened.count() == 4
    assert reopened.get(R4.id) == R4
    assert found(reopened, "stolen pallets") == ids(R1)


def test_writers_take_turns(index, open_index):
    other = open_index()
    extra = make_record(tasking_id=T1, url="https://forum.example.org/t/77", text="later pallets")
    other.upsert([extra])
    index.upsert([make_record(tasking_id=T2, url="https://forum.example.org/t/78")])
    assert index.count() == 6
    assert index.get(extra.id) == extra


def test_upsert_replaces_what_another_writer_committed(index, open_index):
    other = open_index()
    assert index.count() == 4  # this index's reader reloads here, and not again before its upsert below
    new = make_record(tasking_id=T1, url="https://forum.example.org/t/80", text="first version")
    other.upsert([new])
    index.upsert([new.model_copy(update={"text": "second version"})])
    assert index.count() == 5 and other.count() == 5
    assert index.get(new.id).text == "second version"


def test_count_sees_another_writers_commit_at_once(index, open_index):
    other = open_index()
    assert other.count() == 4
    index.upsert([make_record(tasking_id=T2, url="https://forum.example.org/t/79")])
    assert other.count() == 5  # not after a reader happens to notice: workers and benchmarks count on it


def test_empty_index(open_index):
    empty = open_index()
    assert empty.count() == 0
    assert empty.ids() == []
    assert empty.due(["purge_by"], date(2100, 1, 1)) == []
    assert search(empty, "anything").total == 0


def test_records_due_for_review_or_purge(index):
    early = make_record(tasking_id=T2, url="https://forum.example.org/t/5", text='"purge_by":"2031-03-01" in the text',
                        label_overrides={"review_by": date(2026, 6, 1), "purge_by": date(2026, 12, 1)})
    disguised = make_record(tasking_id=T1, url="https://forum.example.org/t/6", title='{"purge_by":"1999-01-01"}',
                            text='labels "review_by":"1999-01-01"')  # crawled text cannot make a record look due
    index.upsert([early, disguised])
    assert index.due(["purge_by"], date(2026, 12, 1)) == [early]
    assert index.due(["purge_by"], date(2026, 11, 30)) == []
    assert index.due(["review_by"], date(2026, 12, 31)) == [early]
    assert index.due(["review_by", "purge_by"], date(2026, 6, 1)) == [early]  # by its review date alone, in one pass
    assert [r.id for r in index.due(["purge_by"], date(2031, 3, 1))] == [early.id] + sorted(r.id for r in [*CORPUS, disguised])


# -- query language ------------------------------------------------------------------------------

def test_words_are_anded_by_default(index):
    assert found(index, "stolen pallets") == ids(R1)
    assert found(index, "pallets tools") == ids(R1, R3)
    assert found(index, "pallets market") == set()
    assert found(index, "pallets AND docks") == ids(R1, R3)


def test_or(index):
    assert found(index, "market OR storm") == ids(R2, R3)
    assert found(index, "(market OR storm) pallets") == ids(R3)


def test_not(index):
    assert found(index, "pallets -stolen") == ids(R3)
    assert found(index, "pallets NOT stolen") == ids(R3)
    assert found(index, "-pallets") == ids(R2)


def test_phrase(index):
    assert found(index, '"power tools"') == ids(R1)
    assert found(index, '"tools power"') == set()
    assert found(index, "tools") == ids(R1, R2, R3)


def test_field_prefixes(index):
    assert found(index, "title:docks") == ids(R3)
    assert found(index, "docks") == ids(R1, R3)
    assert found(index, "text:market") == ids(R2)
    assert found(index, "author:alice") == ids(R1)
    assert found(index, "author:ALICE") == ids(R1)
    assert found(index, "source_kind:feed_entry") == ids(R3)
    assert found(index, 'source_id:"mastodon.example"') == ids(R2)


def test_empty_text_means_the_whole_tasking_newest_first(index):
    for text in ("", "   "):
        page = search(index, text)
        assert page.total == 3
        assert [hit.record.id for hit in page.hits] == [R3.id, R2.id, R1.id]


@pytest.mark.parametrize("name,value,expected", [
    ("source_kind", "mastodon_post", {R2.id}),
    ("source_id", "news.example.com", {R3.id}),
    ("author", "ALICE", {R1.id}),
    ("sensitivity", "public", {R2.id}),
    ("source_reliability", "reliable", {R3.id}),
    ("content_validity", "probably_true", {R1.id}),
    ("review_status", "reviewed", {R2.id}),
    ("criminal_intelligence", "true", {R2.id}),
    ("criminal_intelligence", "false", {R1.id, R3.id}),
])
def test_each_filter(index, name, value, expected):
    assert found(index, filters={name: value}) == expected


def test_filters_combine_with_text(index):
    assert found(index, "tools", filters={"sensitivity": "law_enforcement_sensitive"}) == ids(R1, R3)
    assert found(index, "tools", filters={"sensitivity": "law_enforcement_sensitive", "author": "alice"}) == ids(R1)


def test_every_filter_field_is_covered():
    covered = {"source_kind", "source_id", "author", "sensitivity", "source_reliability",
               "content_validity", "review_status", "criminal_intelligence"}
    assert covered == set(FILTER_FIELDS)


def test_unknown_filter_is_refused(index):
    with pytest.raises(InvalidQuery, match="cannot filter on 'tasking_id'"):
        search(index, filters={"tasking_id": T2})


def test_time_range(index):
    assert found(index, time_from=utc(2026, 2, 1)) == ids(R2, R3)
    assert found(index, time_to=utc(2026, 2, 1)) == ids(R1)
    assert found(index, "tools", time_from=utc(2026, 2, 1), time_to=utc(2026, 3, 1)) == ids(R2)
    assert found(index, time_from=utc(2026, 2, 10), time_to=utc(2026, 2, 10)) == ids(R2)  # bounds included


def test_sort_by_time(index):
    page = search(index, "tools", sort="time")
    assert [hit.record.id for hit in page.hits] == [R3.id, R2.id, R1.id]


def test_sort_by_relevance(index):
    page = search(index, "pallets OR stolen")
    scores = [hit.score for hit in page.hits]
    assert page.hits[0].record.id == R1.id  # both words
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0


def test_pagination(index):
    first = search(index, "tools", sort="time", limit=2)
    second = search(index, "tools", sort="time", offset=2, limit=2)
    beyond = search(index, "tools", sort="time", offset=5, limit=2)
    assert (first.total, second.total, beyond.total) == (3, 3, 3)
    assert [hit.record.id for hit in first.hits] == [R3.id, R2.id]
    assert [hit.record.id for hit in second.hits] == [R1.id]
    assert beyond.hits == []
    with pytest.raises(InvalidQuery):
        search(index, "tools", offset=-1)


def test_highlights_mark_matches_and_escape_everything_else(index):
    page = search(index, "script alert market")
    assert [hit.record.id for hit in page.hits] == [R2.id]
    highlights = " ".join(page.hits[0].highlights)
    assert "<mark>market</mark>" in highlights
    assert "&lt;<mark>script</mark>&gt;" in highlights
    assert "&amp; more" in highlights
    assert "<script" not in highlights and "</script" not in highlights
    assert highlights.replace("<mark>", "").replace("</mark>", "").count("<") == 0


def test_highlights_cover_the_title(index):
    page = search(index, "docks")
    by_id = {hit.record.id: hit.highlights for hit in page.hits}
    assert "<mark>Docks</mark> news" in by_id[R3.id]
    assert any("<mark>docks</mark>" in h for h in by_id[R1.id])


# -- tasking isolation ---------------------------------------------------------------------------

def test_a_search_sees_only_its_tasking(index):
    assert found(index, "secret") == set()
    assert found(index, "stolen pallets", tasking_id=T2) == ids(R4)
    assert found(index, "", tasking_id=T2) == ids(R4)
    assert found(index, "", tasking_id="T-unknown") == set()


@pytest.mark.parametrize("text", [
    "tasking_id:T-2", 'tasking_id:"T-2"', "tasking_id:T-2 OR pallets", "secret OR tasking_id:T-2",
    "(tasking_id:T-2 OR stolen) OR secret", f"id:{R4.id}", "-nothinglikethis",
])
def test_query_text_cannot_reach_another_tasking(index, text):
    hits = found(index, text)
    assert R4.id not in hits
    assert hits <= ids(R1, R2, R3)


def test_filters_cannot_reach_another_tasking(index):
    assert found(index, filters={"author": "alice"}) == ids(R1)


# -- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ['"stolen pallets', "(stolen OR docks", "stolen)", "nosuchfield:x", "stolen AND"])
def test_malformed_query_is_one_user_facing_line(index, text):
    with pytest.raises(InvalidQuery) as caught:
        search(index, text)
    message = str(caught.value)
    assert message.startswith("invalid query: ")
    assert "\n" not in message and "Error" not in message and "QueryParser" not in message
    assert caught.value.hint == QUERY_HINT


# -- local adapter only --------------------------------------------------------------------------

def test_local_writer_lock_times_out_with_a_hint(tmp_path):
    import tantivy

    from pipeline.index.local import LocalIndex
    local = LocalIndex(tmp_path / "index", lock_timeout=0.3)
    holder = tantivy.Index.open(str(tmp_path / "index")).writer(15_000_000, 1)
    try:
        with pytest.raises(FcmonError, match="locked by another writer") as caught:
            local.upsert([R1])
        assert caught.value.hint
    finally:
        holder.wait_merging_threads()
    local.upsert([R1])
    assert local.count() == 1
