"""The local Index adapter: a tantivy index in one folder of the data directory (or in memory: the worker matches
standing queries against each batch's records in one, with this same schema and query parser).

Every record is stored whole (its JSON, unindexed) next to the fields searched and filtered on.
A writer is opened per call and released after its commit, so several processes can write one
after another; readers see each commit.
"""
from __future__ import annotations

import html
import logging
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import tantivy
from tantivy import Document, FieldType, Occur, Query

from pipeline.errors import FcmonError
from pipeline.index import (FILTER_FIELDS, QUERY_HINT, Hit, InvalidQuery, RetentionLabel, SearchPage, SearchQuery,
                            check_window, earliest)
from pipeline.models import IndexedRecord

log = logging.getLogger(__name__)

LOWER_RAW = "fcmon_lower_raw"
SEARCH_FIELDS = ["title", "text"]
RAW_FIELDS = ("tasking_id", "source_kind", "source_id", "sensitivity", "source_reliability",
              "content_validity", "review_status", "criminal_intelligence", "url")
LOWERCASED_FILTERS = frozenset({"author", "criminal_intelligence"})

BIG_BATCH = 5_000
SMALL_WRITER = (64_000_000, 1)
MEMORY_WRITER = (15_000_000, 1)  # tantivy's least heap: a batch's records, matched against standing queries
BIG_WRITER = (256_000_000, 2)
TEXT_SNIPPET_CHARS = 200
TITLE_SNIPPET_CHARS = 300


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    for name in RAW_FIELDS:
        builder.add_text_field(name, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("author", tokenizer_name=LOWER_RAW, index_option="basic")
    builder.add_text_field("title", tokenizer_name="default", index_option="position")
    builder.add_text_field("text", tokenizer_name="default", index_option="position")
    builder.add_date_field("timestamp", indexed=True, fast=True)
    builder.add_bytes_field("record", stored=True, indexed=False)
    return builder.build()


def _lower_raw() -> tantivy.TextAnalyzer:
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw()).filter(tantivy.Filter.lowercase()).build()


def _document(record: IndexedRecord) -> Document:
    labels = record.labels
    doc = Document()  # add_* calls: measurably cheaper than Document(**fields) on big batches
    add = doc.add_text
    add("id", record.id)
    add("tasking_id", record.tasking_id)
    add("source_kind", record.source_kind)
    add("source_id", record.source_id)
    if record.author:
        add("author", record.author.lower())
    add("sensitivity", labels.sensitivity)
    add("source_reliability", labels.source_reliability)
    add("content_validity", labels.content_validity)
    add("review_status", labels.review_status)
    add("criminal_intelligence", "true" if labels.criminal_intelligence else "false")
    add("title", record.title)
    add("text", record.text)
    add("url", record.url)
    if record.final_url != record.url:
        add("url", record.final_url)
    doc.add_date("timestamp", _utc(record.timestamp))
    doc.add_bytes("record", record.model_dump_json().encode())
    return doc


def _utc(moment: datetime) -> datetime:
    """tantivy reads naive datetimes as UTC; make that explicit."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class LocalIndex:
    def __init__(self, path: Path | str | None, lock_timeout: float = 10.0):
        """path None: an index in memory, gone when closed."""
        self.path = Path(path) if path is not None else Path(":memory:")
        self.lock_timeout = lock_timeout
        self._schema = _schema()
        self.on_disk = path is not None
        if path is None:
            index = tantivy.Index(self._schema)
            index.register_tokenizer(LOWER_RAW, _lower_raw())
            self._index: tantivy.Index | None = index
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FcmonError(f"cannot create the search index folder {self.path}: {exc.strerror}",
                             "check the data directory's path and permissions") from exc
        try:
            index = tantivy.Index(self._schema, path=str(self.path), reuse=True)
        except ValueError as exc:
            raise FcmonError(f"cannot open the search index in {self.path}: {_one_line(str(exc))}",
                             "the folder holds another index or a different version of it; "
                             "move it away and re-ingest") from exc
        index.register_tokenizer(LOWER_RAW, _lower_raw())
        self._index = index

    # -- writing --------------------------------------------------------------------------------

    def upsert(self, records: list[IndexedRecord]) -> None:
        latest = {record.id: record for record in records}  # a batch may repeat a record: last wins
        if not latest:
            return
        heap, threads = BIG_WRITER if len(latest) >= BIG_BATCH else SMALL_WRITER if self.on_disk else MEMORY_WRITER
        with self._writer(heap, threads) as writer:
            # Nobody else commits while this writer holds the lock, so a reader reloaded now sees every copy there is:
            # only those are deleted (a delete costs more than the lookup, and most records are new).
            index = self._open()
            index.reload()
            held = index.searcher()
            for record_id, record in latest.items():
                if held.doc_freq("id", record_id):
                    writer.delete_documents_by_term("id", record_id)
                writer.add_document(_document(record))

    def delete(self, record_ids: list[str]) -> None:
        if not record_ids:
            return
        with self._writer(*SMALL_WRITER) as writer:
            for record_id in set(record_ids):
                writer.delete_documents_by_term("id", record_id)

    def _writer(self, heap: int, threads: int) -> _Writing:
        index = self._open()
        started = time.monotonic()
        deadline = started + self.lock_timeout
        pause, waited = 0.02, False
        while True:
            try:
                writing = _Writing(self, index.writer(heap, threads))
                if waited:  # workers sharing one local index take turns; this shows how long
                    log.info("event=index_writer_waited ms=%d", (time.monotonic() - started) * 1000)
                return writing
            except ValueError as exc:
                if "LockBusy" not in str(exc):
                    raise FcmonError(f"cannot write the search index in {self.path}: {_one_line(str(exc))}") from exc
                if time.monotonic() >= deadline:
                    raise FcmonError(
                        f"the search index in {self.path} is locked by another writer "
                        f"(waited {self.lock_timeout:.0f} s)",
                        "another fcmon process is writing it; retry when it is done, "
                        "or stop the stuck process") from exc
            time.sleep(pause)
            waited, pause = True, min(pause * 2, 0.05)  # a commit holds the lock for 0.1-0.3 s: wake soon after it ends

    # -- reading --------------------------------------------------------------------------------

    def get(self, record_id: str) -> IndexedRecord | None:
        searcher = self._open().searcher()
        hits = searcher.search(Query.term_query(self._schema, "id", record_id), 1, count=False).hits
        return _record(searcher, hits[0][1]) if hits else None

    def count(self, tasking_id: str | None = None) -> int:
        """Records committed now, by any process (searches see other processes' commits within ~0.5 s)."""
        index = self._open()
        index.reload()
        searcher = index.searcher()
        if tasking_id is None:
            return searcher.num_docs
        return searcher.search(Query.term_query(self._schema, "tasking_id", tasking_id), 1).count

    def ids(self) -> list[str]:
        searcher = self._open().searcher()
        if searcher.num_docs == 0:
            return []
        hits = searcher.search(Query.all_query(), searcher.num_docs, count=False).hits
        return sorted(searcher.doc(address).get_first("id") for _, address in hits)

    def due(self, labels: Sequence[RetentionLabel], on_or_before: date) -> list[IndexedRecord]:
        """A scan of the stored records (a retention run is daily, not per query): the labels' dates are read from each
        record's JSON without parsing it, since an unescaped `"purge_by":"` can only be the label's own key."""
        searcher = self._open().searcher()
        if searcher.num_docs == 0:
            return []
        keys, limit = [f'"{label}":"'.encode() for label in labels], on_or_before.isoformat().encode()
        due = []
        for _, address in searcher.search(Query.all_query(), searcher.num_docs, count=False).hits:
            raw = searcher.doc(address).get_first("record")
            if any(raw[(start := raw.find(key) + len(key)):start + 10] <= limit for key in keys):
                due.append(IndexedRecord.model_validate_json(raw))
        return sorted(due, key=lambda r: earliest(r, labels))

    def search(self, query: SearchQuery) -> SearchPage:
        check_window(query)
        index = self._open()
        user_query = self._parse(query.text)
        clauses = [(Occur.Must, _unscored(Query.term_query(self._schema, "tasking_id", query.tasking_id)))]
        clauses += [(Occur.Must, _unscored(q)) for q in self._filters(query.filters)]
        if query.time_from or query.time_to:
            clauses.append((Occur.Must, _unscored(Query.range_query(
                self._schema, "timestamp", FieldType.Date,
                _utc(query.time_from) if query.time_from else None,
                _utc(query.time_to) if query.time_to else None))))
        if user_query is not None:
            clauses.append((Occur.Must, user_query))
        combined = Query.boolean_query(clauses)

        searcher = index.searcher()
        by_time = query.sort == "time" or user_query is None  # nothing to rank on: newest first
        try:
            result = searcher.search(combined, max(query.limit, 1), count=True, offset=query.offset,
                                     order_by_field="timestamp" if by_time else None, order=tantivy.Order.Desc)
        except ValueError as exc:  # parsed, but not runnable on this index (`title:*` needs a fast field)
            raise InvalidQuery(_describe_parse_error(str(exc), query.text), QUERY_HINT) from exc
        hits_raw = result.hits if query.limit > 0 else []
        highlighter = _Highlighter(searcher, user_query, self._schema) if user_query is not None else None
        hits = []
        for score, address in hits_raw:
            record = _record(searcher, address)
            hits.append(Hit(record=record, score=0.0 if by_time else float(score),
                            highlights=highlighter.highlights(record) if highlighter else []))
        return SearchPage(total=result.count, hits=hits)

    def matching_ids(self, text: str, tasking_id: str, limit: int) -> list[str]:
        """Ids of the tasking's records a query matches, unranked, without highlights (standing queries)."""
        user_query = self._parse(text)
        clauses = [(Occur.Must, Query.term_query(self._schema, "tasking_id", tasking_id))]
        if user_query is not None:
            clauses.append((Occur.Must, user_query))
        searcher = self._open().searcher()
        try:
            hits = searcher.search(Query.boolean_query(clauses), max(limit, 1), count=False).hits
        except ValueError as exc:  # parsed, but not runnable on this index (`title:*` needs a fast field)
            raise InvalidQuery(_describe_parse_error(str(exc), text), QUERY_HINT) from exc
        return [searcher.doc(address).get_first("id") for _, address in hits]

    def check_query(self, text: str) -> None:
        """Raise InvalidQuery when the text is not a query of this language."""
        self._parse(text)

    def _parse(self, text: str) -> Query | None:
        if not text.strip():
            return None
        index = self._open()
        try:
            return index.parse_query(text, SEARCH_FIELDS, conjunction_by_default=True)
        except ValueError as exc:
            if "Only excluding terms given" in str(exc):
                # `-word` / `NOT word` alone: everything but those, as Elasticsearch's query_string does
                return self._parse(f"* ({text})")
            raise InvalidQuery(_describe_parse_error(str(exc), text), QUERY_HINT) from exc

    def _filters(self, filters: dict[str, str]) -> list[Query]:
        queries = []
        for name, value in filters.items():
            if name not in FILTER_FIELDS:
                raise InvalidQuery(f"invalid query: cannot filter on {name!r}",
                                   f"filter on one of: {', '.join(FILTER_FIELDS)}")
            value = str(value).strip()
            queries.append(Query.term_query(self._schema, name, value.lower() if name in LOWERCASED_FILTERS else value))
        return queries

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self._index = None

    def _open(self) -> tantivy.Index:
        if self._index is None:
            raise FcmonError(f"the search index in {self.path} is closed", "open a new LocalIndex")
        return self._index

    def _committed(self) -> None:
        if self._index is not None:
            self._index.reload()


class _Writing:
    """One writer for one batch: commit on success, roll back on error, and always release the lock."""

    def __init__(self, owner: LocalIndex, writer: tantivy.IndexWriter):
        self.owner, self.writer = owner, writer

    def __enter__(self) -> tantivy.IndexWriter:
        return self.writer

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                try:
                    self.writer.commit()
                except ValueError as error:
                    raise FcmonError(f"cannot commit to the search index in {self.owner.path}: {_one_line(str(error))}",
                                     "check free disk space and permissions on the data directory") from error
            else:
                self.writer.rollback()
        finally:
            self.writer.wait_merging_threads()  # finishes merges and releases the writer lock
            del self.writer
        self.owner._committed()


class _Highlighter:
    def __init__(self, searcher: tantivy.Searcher, query: Query, schema: tantivy.Schema):
        self.title = tantivy.SnippetGenerator.create(searcher, query, schema, "title")
        self.title.set_max_num_chars(TITLE_SNIPPET_CHARS)
        self.text = tantivy.SnippetGenerator.create(searcher, query, schema, "text")
        self.text.set_max_num_chars(TEXT_SNIPPET_CHARS)

    def highlights(self, record: IndexedRecord) -> list[str]:
        found = []
        for generator, name, value in ((self.title, "title", record.title), (self.text, "text", record.text)):
            if value:
                rendered = _render(generator.snippet_from_doc(Document(**{name: value})), value)
                if rendered:
                    found.append(rendered)
        return found


def _render(snippet: tantivy.Snippet, whole: str) -> str | None:
    """The fragment as HTML: matches in <mark>, everything else escaped (crawled text is hostile)."""
    ranges = sorted((r.start, r.end) for r in snippet.highlighted())
    if not ranges:
        return None
    fragment = snippet.fragment().encode()  # tantivy's ranges are UTF-8 byte offsets
    parts, position = [], 0
    for start, end in ranges:
        if start < position:
            continue
        parts.append(html.escape(fragment[position:start].decode(errors="replace")))
        parts.append(f"<mark>{html.escape(fragment[start:end].decode(errors='replace'))}</mark>")
        position = end
    parts.append(html.escape(fragment[position:].decode(errors="replace")))
    span = snippet.fragment_range()
    prefix = "…" if span.start > 0 else ""
    suffix = "…" if span.end < len(whole.encode()) else ""
    return prefix + "".join(parts).strip() + suffix


def _record(searcher: tantivy.Searcher, address: tantivy.DocAddress) -> IndexedRecord:
    return IndexedRecord.model_validate_json(searcher.doc(address).get_first("record"))


def _unscored(query: Query) -> Query:
    return Query.const_score_query(query, 0.0)


def _describe_parse_error(error: str, text: str) -> str:
    shown = _one_line(text)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if error.startswith("Field does not exist:"):
        return f"invalid query: unknown field {error.split(':', 1)[1].strip()}"
    if "not declared as indexed" in error:
        return "invalid query: " + _one_line(error).replace("declared as indexed", "searchable")
    if error.startswith("Syntax Error"):
        return f"invalid query: syntax error in {shown!r} (unbalanced quotes or parentheses?)"
    return f"invalid query: {_one_line(error)[:120]} in {shown!r}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
