"""The Elasticsearch Index adapter: a thin layer over the official client.

Records are written through an alias (`fcmon-records` -> `fcmon-records-v1`) whose index template
(config/elasticsearch/records-template.json) maps ECS names (`@timestamp`, `message`, `url.full`,
`user.name`) and an `fcm.*` namespace, plus field aliases so the query language of the local adapter
(`title:`, `text:`, `author:`, `source_kind:`, `source_id:`) means the same here. Document ids are
record ids, so a replayed batch overwrites instead of duplicating. The pure parts (document, query
translation, bulk actions, bulk response triage) are functions, unit-tested without a cluster.
"""
from __future__ import annotations

import json
import logging
import re
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from pipeline.errors import FcmonError, Unavailable
from pipeline.index import (FILTER_FIELDS, QUERY_HINT, Hit, InvalidQuery, RetentionLabel, SearchPage, SearchQuery,
                            check_window, earliest)
from pipeline.models import IndexedRecord
from pipeline.settings import REPO_CONFIG_DIR, Settings

log = logging.getLogger(__name__)

TEMPLATE_NAME = "fcmon-records"
TEMPLATE_FILE = REPO_CONFIG_DIR / "elasticsearch" / "records-template.json"
SEARCH_FIELDS = ["fcm.title", "message"]
# Field prefixes a query may use: the local adapter's names, mapped as field aliases in the template.
QUERY_FIELDS = frozenset({"id", "tasking_id", "title", "text", "author", "source_kind", "source_id",
                          "sensitivity", "source_reliability", "content_validity", "review_status",
                          "criminal_intelligence"})
FILTER_TARGETS = {
    "source_kind": "fcm.source_kind", "source_id": "fcm.source_id", "author": "user.name",
    "sensitivity": "fcm.labels.sensitivity", "source_reliability": "fcm.labels.source_reliability",
    "content_validity": "fcm.labels.content_validity", "review_status": "fcm.labels.review_status",
    "criminal_intelligence": "fcm.labels.criminal_intelligence",
}
BULK_CHUNK = 500
RETRY_STATUSES = frozenset({429, 503})
BULK_RETRIES = 4
REASON_CHARS = 200
FIELD_PREFIX = re.compile(r'"(?:[^"\\]|\\.)*"|(?<![\w.\\])([A-Za-z_@][\w.@]*):')


def load_template(path: Path = TEMPLATE_FILE) -> dict[str, Any]:
    return json.loads(path.read_text())


# -- pure: documents ------------------------------------------------------------------------------

# Record fields kept under fcm.* by their own names (guard annotations, quarantine release, analyst review).
RECORD_EXTRAS = ("pii_masked", "non_subject_identifiers", "released_by", "release_reason", "reviewed_by", "reviewed_at",
                 "review_note")


def es_document(record: IndexedRecord) -> dict[str, Any]:
    """The record as its Elasticsearch document (ECS names first, fcm.* for the rest)."""
    doc: dict[str, Any] = {
        "@timestamp": record.timestamp.isoformat(),
        "message": record.text,
        "url": {"original": record.url, "full": record.final_url},
        "event": {"created": record.fetched_at.isoformat(), "ingested": record.indexed_at.isoformat()},
        "fcm": {
            "schema_version": record.schema_version, "record_id": record.id, "tasking_id": record.tasking_id,
            "source_kind": record.source_kind, "source_id": record.source_id, "title": record.title,
            "published_at": record.published_at.isoformat() if record.published_at else None,
            "content_sha256": record.content_sha256,
            "labels": record.labels.model_dump(mode="json"),
            "predicate": record.predicate.model_dump(mode="json"),
            # only those set: an index made before a field was mapped still takes the records that leave it empty
            **record.model_dump(mode="json", include=set(RECORD_EXTRAS), exclude_none=True),
        },
    }
    if record.author is not None:
        doc["user"] = {"name": record.author}
    return doc


def es_record(source: dict[str, Any]) -> IndexedRecord:
    """The inverse of es_document."""
    fcm = source["fcm"]
    return IndexedRecord(
        schema_version=fcm["schema_version"], id=fcm["record_id"], tasking_id=fcm["tasking_id"],
        source_kind=fcm["source_kind"], source_id=fcm["source_id"], url=source["url"]["original"],
        final_url=source["url"]["full"], title=fcm["title"], text=source["message"],
        author=source.get("user", {}).get("name"), published_at=fcm.get("published_at"),
        fetched_at=source["event"]["created"], content_sha256=fcm["content_sha256"], labels=fcm["labels"],
        predicate=fcm["predicate"], indexed_at=source["event"]["ingested"],
        **{name: fcm[name] for name in RECORD_EXTRAS if name in fcm})


def bulk_actions(records: Iterable[IndexedRecord], index: str) -> list[dict[str, Any]]:
    """`index` operations keyed by record id (a batch repeating an id keeps its last version)."""
    latest = {record.id: record for record in records}
    return [{"_op_type": "index", "_index": index, "_id": rid, "_source": es_document(r)} for rid, r in latest.items()]


def bulk_body(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The NDJSON lines of a _bulk request for these actions."""
    lines: list[dict[str, Any]] = []
    for action in actions:
        lines.append({action["_op_type"]: {"_index": action["_index"], "_id": action["_id"]}})
        if action["_op_type"] != "delete":
            lines.append(action["_source"])
    return lines


def triage_bulk(actions: list[dict[str, Any]], response: dict[str, Any], *, missing_ok: bool = False
                ) -> tuple[list[dict[str, Any]], list[str]]:
    """Split a _bulk response into actions to retry (429/503) and one-line failures; the rest succeeded."""
    retry, failed = [], []
    for action, item in zip(actions, response.get("items", [])):
        outcome = next(iter(item.values()))
        status = outcome.get("status", 500)
        if status < 300 or (missing_ok and status == 404):
            continue
        if status in RETRY_STATUSES:
            retry.append(action)
            continue
        error = outcome.get("error") or {}
        reason = error.get("reason", "no reason given") if isinstance(error, dict) else str(error)
        failed.append(f"{action['_id']}: {status} {error.get('type', '') if isinstance(error, dict) else ''} "
                      f"{short_reason(reason)}".strip())
    return retry, failed


def short_reason(reason: str) -> str:
    """An item's error reason for a log line: without the preview of the refused value Elasticsearch appends
    (crawled content, up to kilobytes of it), on one line, at most REASON_CHARS long."""
    shown = " ".join(reason.split(" Preview of field's value:")[0].split())
    return shown if len(shown) <= REASON_CHARS else shown[:REASON_CHARS - 3] + "..."


def bulk_retrying(actions: list[dict[str, Any]], send: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], list[str]]],
                  event: str) -> list[str]:
    """Chunks of BULK_CHUNK, each `send` (one _bulk call: what to retry, what failed) until nothing is left to retry,
    with backoff; every failure, after the rest are in."""
    failures: list[str] = []
    for start in range(0, len(actions), BULK_CHUNK):
        pending = actions[start:start + BULK_CHUNK]
        for attempt in range(BULK_RETRIES + 1):
            pending, failed = send(pending)
            failures += failed
            if not pending:
                break
            log.warning("event=%s items=%d attempt=%d", event, len(pending), attempt + 1)
            time.sleep(min(0.5 * 2 ** attempt, 8))
        else:
            failures += [f"{a['_id']}: still refused after {BULK_RETRIES} retries" for a in pending]
    return failures


# -- pure: queries --------------------------------------------------------------------------------

def check_query_fields(text: str) -> None:
    """Field prefixes must exist: Elasticsearch would silently match nothing, the local adapter refuses."""
    for match in FIELD_PREFIX.finditer(text):
        name = match.group(1)
        if name and name not in QUERY_FIELDS:
            raise InvalidQuery(f"invalid query: unknown field {name}", QUERY_HINT)


def filter_clause(name: str, value: str) -> dict[str, Any]:
    if name not in FILTER_FIELDS:
        raise InvalidQuery(f"invalid query: cannot filter on {name!r}", f"filter on one of: {', '.join(FILTER_FIELDS)}")
    value = str(value).strip()
    if name == "criminal_intelligence":
        if value.lower() not in ("true", "false"):
            raise InvalidQuery(f"invalid query: criminal_intelligence is true or false, not {value!r}")
        return {"term": {FILTER_TARGETS[name]: value.lower() == "true"}}
    return {"term": {FILTER_TARGETS[name]: value.lower() if name == "author" else value}}


def es_search_body(query: SearchQuery) -> dict[str, Any]:
    """SearchQuery -> query DSL: the tasking is always a filter, never taken from the query text."""
    check_window(query)
    filters: list[dict[str, Any]] = [{"term": {"fcm.tasking_id": query.tasking_id}}]
    filters += [filter_clause(name, value) for name, value in query.filters.items()]
    if query.time_from or query.time_to:
        bounds = {}
        if query.time_from:
            bounds["gte"] = query.time_from.isoformat()
        if query.time_to:
            bounds["lte"] = query.time_to.isoformat()
        filters.append({"range": {"@timestamp": bounds}})
    body: dict[str, Any] = {"from": query.offset, "size": query.limit, "track_total_hits": True,
                            "query": {"bool": {"filter": filters}}}
    text = query.text.strip()
    if text:
        check_query_fields(text)
        body["query"]["bool"]["must"] = [{"query_string": {
            "query": text, "default_operator": "AND", "fields": SEARCH_FIELDS,
            "allow_leading_wildcard": False, "analyze_wildcard": True}}]
        body["highlight"] = {"pre_tags": ["<mark>"], "post_tags": ["</mark>"], "encoder": "html",
                             "require_field_match": False,
                             "fields": {"fcm.title": {"number_of_fragments": 0},
                                        "message": {"fragment_size": 200, "number_of_fragments": 1}}}
    if query.sort == "time" or not text:
        body["sort"] = [{"@timestamp": {"order": "desc"}}, {"fcm.record_id": {"order": "asc"}}]
    return body


def es_page(response: dict[str, Any], by_time: bool) -> SearchPage:
    hits = []
    for raw in response["hits"]["hits"]:
        marked = raw.get("highlight", {})
        highlights = [*marked.get("fcm.title", []), *marked.get("message", [])]
        hits.append(Hit(record=es_record(raw["_source"]), score=0.0 if by_time else float(raw.get("_score") or 0.0),
                        highlights=highlights))
    total = response["hits"]["total"]
    return SearchPage(total=total["value"] if isinstance(total, dict) else int(total), hits=hits)


def describe_es_error(info: Any, text: str) -> str:
    """One line for a query Elasticsearch refused (a 400), without its Java stack of causes."""
    shown = " ".join(text.split())
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    blob = json.dumps(info) if not isinstance(info, str) else info
    if "parse" in blob.lower():
        return f"invalid query: syntax error in {shown!r} (unbalanced quotes or parentheses?)"
    return f"invalid query: Elasticsearch refused {shown!r}"


# -- the adapter ----------------------------------------------------------------------------------

class ElasticsearchIndex:
    def __init__(self, client: Any, alias: str = "fcmon-records", refresh: bool = True, *, ensured: bool = True):
        # refresh: after each upsert or delete the alias is refreshed once, so what returned is searchable at once
        # (a bulk with refresh=wait_for waits for the template's 5 s refresh interval: up to 5 s per chunk of 500)
        self.client, self.alias, self.refresh = client, alias, refresh
        self._ensured = ensured  # False: install the template and alias before the first write (see ensure)

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchIndex:
        if not settings.elasticsearch_url:
            raise FcmonError("index=elasticsearch needs an Elasticsearch URL", "set FCMON_ELASTICSEARCH_URL")
        client = connect(settings.elasticsearch_url, settings.elasticsearch_username,
                         settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else None)
        return cls(client, settings.elasticsearch_records_alias, ensured=False)  # no request until it is used

    def ensure(self, template_file: Path = TEMPLATE_FILE) -> None:
        """Install the index template and, when the alias is missing, create <alias>-v1 behind it."""
        template = load_template(template_file)
        template["index_patterns"] = [f"{self.alias}-*"]
        es_call(self.client.indices.put_index_template, name=self.alias, meta=template.pop("_meta"), **template)
        if not bool(es_call(self.client.indices.exists_alias, name=self.alias)):
            es_call(self.client.indices.create, index=f"{self.alias}-v1",
                       aliases={self.alias: {"is_write_index": True}})
        self._ensured = True

    def reindex(self, template_file: Path = TEMPLATE_FILE) -> tuple[str, int]:
        """Copy every record into <alias>-v<n+1>, made from the current template, then move the alias to it in one
        step; (the new index, records copied). The old index stays for the operator to delete. Run it with the
        writers stopped (their batches wait uncommitted on the bus). Each record is read back and written as this
        fcmon writes it, so a changed document shape is migrated too (Elasticsearch's _reindex copies sources as
        they are, and the integ-test distribution the tests run on has no reindex module)."""
        from elasticsearch.helpers import scan
        self.ensure(template_file)
        behind = es_call(self.client.indices.get_alias, name=self.alias)
        writing = [name for name, spec in behind.items()
                   if spec["aliases"][self.alias].get("is_write_index", len(behind) == 1)]
        if len(writing) != 1:
            raise FcmonError(f"alias {self.alias} has no single write index ({', '.join(sorted(behind)) or 'none'})",
                             f"point {self.alias} at one index (POST /_aliases) and run the re-index again")
        existing = es_call(self.client.indices.get, index=f"{self.alias}-v*", expand_wildcards="all")
        versions = [int(m.group(1)) for name in existing if (m := re.fullmatch(rf"{re.escape(self.alias)}-v(\d+)", name))]
        target = f"{self.alias}-v{max(versions, default=1) + 1}"
        es_call(self.client.indices.create, index=target)
        copied, batch = 0, []
        try:
            for hit in scan(self.client, index=writing[0], query={"query": {"match_all": {}}}):
                batch.append(es_record(hit["_source"]))
                if len(batch) == BULK_CHUNK:
                    copied += self._bulk(bulk_actions(batch, target), refresh_index=None)
                    batch = []
        except Exception as exc:
            raise _unavailable(exc) from exc
        copied += self._bulk(bulk_actions(batch, target), refresh_index=target)
        es_call(self.client.indices.update_aliases, actions=[
            {"remove": {"index": writing[0], "alias": self.alias}},
            {"add": {"index": target, "alias": self.alias, "is_write_index": True}}])
        log.info("event=es.reindexed alias=%s from=%s to=%s records=%d", self.alias, writing[0], target, copied)
        return target, copied

    def upsert(self, records: list[IndexedRecord]) -> None:
        if not self._ensured:
            self.ensure()
        self._bulk(bulk_actions(records, self.alias), refresh_index=self.alias if self.refresh else None)

    def delete(self, record_ids: list[str]) -> None:
        self._bulk([{"_op_type": "delete", "_index": self.alias, "_id": rid} for rid in set(record_ids)], missing_ok=True,
                   refresh_index=self.alias if self.refresh else None)

    def _bulk(self, actions: list[dict[str, Any]], *, refresh_index: str | None, missing_ok: bool = False) -> int:
        """Items refused with 429/503 are retried with backoff; any other failure raises after the rest are in (and
        searchable in refresh_index, when one is named); the number of actions done."""
        def send(pending: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
            response = es_call(self.client.bulk, operations=bulk_body(pending))
            return triage_bulk(pending, dict(response), missing_ok=missing_ok)

        failures = bulk_retrying(actions, send, "es.bulk.retry")
        if refresh_index and actions:
            es_call(self.client.indices.refresh, index=refresh_index)
        if failures:
            raise FcmonError(f"Elasticsearch refused {len(failures)} of {len(actions)} records (first: {failures[0]})",
                             "the others were written; fix the cause and replay the batch (ids are deterministic)")
        return len(actions)

    def get(self, record_id: str) -> IndexedRecord | None:
        response = es_call(self.client.search, index=self.alias, query={"ids": {"values": [record_id]}}, size=1)
        hits = response["hits"]["hits"]
        return es_record(hits[0]["_source"]) if hits else None

    def count(self, tasking_id: str | None = None) -> int:
        query = {"term": {"fcm.tasking_id": tasking_id}} if tasking_id is not None else {"match_all": {}}
        return int(es_call(self.client.count, index=self.alias, query=query)["count"])

    def ids(self) -> list[str]:
        from elasticsearch.helpers import scan
        return sorted(hit["_id"] for hit in scan(self.client, index=self.alias, query={"query": {"match_all": {}}},
                                                 _source=False))

    def due(self, labels: Sequence[RetentionLabel], on_or_before: date) -> list[IndexedRecord]:
        from elasticsearch.helpers import scan
        ranges = [{"range": {f"fcm.labels.{label}": {"lte": on_or_before.isoformat()}}} for label in labels]
        query = {"query": ranges[0] if len(ranges) == 1 else {"bool": {"should": ranges, "minimum_should_match": 1}}}
        records = [es_record(hit["_source"]) for hit in es_call(lambda: list(scan(self.client, index=self.alias, query=query)))]
        return sorted(records, key=lambda r: earliest(r, labels))

    def search(self, query: SearchQuery) -> SearchPage:
        from elasticsearch import BadRequestError
        body = es_search_body(query)
        try:
            response = self.client.search(index=self.alias, **body)
        except BadRequestError as exc:
            raise InvalidQuery(describe_es_error(exc.info, query.text), QUERY_HINT) from exc
        except Exception as exc:
            raise _unavailable(exc) from exc
        return es_page(dict(response), by_time=query.sort == "time" or not query.text.strip())

    def close(self) -> None:
        self.client.close()


def es_call(method: Any, **kwargs: Any) -> Any:
    """Call the client; any failure becomes one user-facing FcmonError."""
    try:
        return method(**kwargs)
    except Exception as exc:
        raise _unavailable(exc) from exc


def connect(url: str, username: str | None, password: str | None) -> Any:
    try:
        from elasticsearch import Elasticsearch
    except ImportError as exc:
        raise FcmonError("index=elasticsearch needs the Elasticsearch client",
                         "pip install 'fcmon[elasticsearch]'") from exc
    auth = (username, password) if username and password else None
    return Elasticsearch(url, basic_auth=auth, request_timeout=30, retry_on_timeout=True, max_retries=3)


def _unavailable(exc: Exception) -> FcmonError:
    if isinstance(exc, FcmonError):
        return exc
    detail = " ".join(str(exc).split())[:160]
    return Unavailable(f"Elasticsearch request failed: {type(exc).__name__}: {detail}",
                      "check FCMON_ELASTICSEARCH_URL, the cluster's health and fcmon's credentials")
