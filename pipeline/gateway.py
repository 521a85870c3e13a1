"""`fcmon gateway`: the one audited door between Kibana and Elasticsearch.

Kibana uses the gateway as its Elasticsearch host. Every request is authenticated against fcmon's
users (the Basic credentials Kibana forwards). What happens next depends on what the request is:

- data reads (`_search`, `_msearch`, `_async_search`, `_count`, `_field_caps`, `_mget`, document and
  source GETs, scroll and point-in-time): need the tasking in `X-Fcmon-Tasking`, may only target the
  records alias, are authorized as any search is (pipeline.search), written to the audit log as a
  QueryEvent with interface "kibana" BEFORE they are forwarded, restricted to the tasking (a filter on
  fcm.tasking_id is added to every query; documents of other taskings come back as not found), and
  their hit counts and returned ids are appended after. What would step around that filter is refused
  and logged as a refused query: other read APIs (`_terms_enum`, `_explain`, `_termvectors`, SQL, ...),
  the `q` and `source` URL parameters (they replace the body's query), search-body keys that reach past
  the query (`suggest`, `knn`, `retriever`, `explain`, ...), clauses that fetch a stored document (terms
  lookups, more_like_this of a document, anything naming an `_index`) and `global` aggregations; significant
  terms and text are compared with the tasking's documents (their background filter is the tasking's); so are
  URL parameters not known to shape a read (QUERY_PARAMS: `filter_path` and `format` would change the answer the
  not-found check and the hit count read), terms aggregations that list every term (`min_doc_count: 0`), and bodies
  that are not JSON (Elasticsearch also reads YAML, CBOR and Smile) or nest deeper than MAX_BODY_DEPTH;
- continuations (async search results, scroll, point-in-time searches) and their cleanups: only for the user who
  opened the search context, under its tasking (Handles; upstream every request is one service account);
- reads of the audit index: supervisors and administrators only, naming no other index, logged as `audit.read` first;
- Kibana's housekeeping (cluster info, nodes, license, privileges, mappings, index resolution): forwarded
  for any authenticated user, since it carries no record content; naming another index or listing every index is
  for audit readers, except index resolution (Kibana's data views and its has-data check resolve `*`), whose answer
  shows others the records' names alone;
- Kibana's own work in its system indices (`.kibana*`, ...): only for Kibana's account (gateway_kibana_account,
  an fcmon user with the password Kibana logs in with), forwarded with Kibana's own credentials;
- writes and deletes anywhere else: only for fcmon's service account; anything else is refused with 403.
- `_security/_authenticate` and `_security/user/_has_privileges` are answered by the gateway for fcmon's users (they
  have no Elasticsearch account; pipeline/gateway_privileges.py says what each role is granted).

An endpoint is one only where Elasticsearch routes it (after the index, or first): `/fcmon-records/_create/_search`
creates a document whose id is `_search`. A request target that is not a path of printable ASCII is refused (400).
If the audit log cannot be written the answer is 503 and nothing is forwarded. Upstream, the gateway
authenticates as fcmon's Elasticsearch service account, never with the user's credentials, and sends only the
request headers in FORWARDED_HEADERS (never run-as, secondary or client authentication).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

from pipeline.audit import AuditLog
from pipeline.audit_bounds import MAX_AUDIT_STRING
from pipeline.errors import AuditUnavailable, FcmonError, Forbidden
from pipeline.gateway_privileges import privileges_answer
from pipeline.httpd import BodyRefused, read_body, threading_server
from pipeline.passwords import BasicAuth, FailedSignIns, SignInRefused, Throttled
from pipeline.review import AUDIT_READERS
from pipeline.search import SEARCH_ROLES, close_query, new_event, open_query, refuse_query
from pipeline.state import State, User

log = logging.getLogger(__name__)

TASKING_HEADER = "X-Fcmon-Tasking"
READ_ENDPOINTS = ("_search", "_msearch", "_async_search", "_count", "_field_caps", "_terms_enum", "_mget",
                  "_doc", "_source", "_pit", "_termvectors", "_mtermvectors", "_explain", "_validate", "_sql",
                  "_eql", "_query", "_knn_search", "_rank_eval", "_graph", "_rollup_search")
GET_ONLY = frozenset({"_doc", "_source"})
FORWARDED_READS = frozenset({"_search", "_msearch", "_async_search", "_count", "_field_caps", "_mget", "_doc", "_source",
                             "_pit"})
WHY_NOT_FORWARDED = {
    "_terms_enum": "its index_filter selects shards, not documents, so it lists terms of every tasking; "
                   "set Kibana's advanced setting autocomplete:valueSuggestionMethod to terms_agg",
}
BODY_OVERRIDES = ("q", "source")  # URL parameters Elasticsearch reads instead of the (restricted) body
# The URL parameters each forwarded read may carry (Elasticsearch splits them on "&" and ";"): those that shape a
# search, not those that change what the answer holds or how it reads (`filter_path` and `format` would hide the
# document of another tasking from the check that answers it as not found, and the hit count from the log),
# nor those that step around the body's checks (`explain`, `suggest_*`, `stored_fields` of `_doc`). Document reads take
# no source filtering: the gateway tells a tasking's documents by the `fcm.tasking_id` of their source, so a read that
# filters it out would answer the user's own document as not found.
COMMON_PARAMS = frozenset({"pretty", "human", "error_trace"})
INDEX_PARAMS = frozenset({"allow_no_indices", "expand_wildcards", "ignore_unavailable", "ignore_throttled", "preference",
                          "routing"})
SEARCH_PARAMS = INDEX_PARAMS | frozenset({
    "allow_partial_search_results", "batched_reduce_size", "ccs_minimize_roundtrips", "max_concurrent_shard_requests",
    "max_concurrent_searches", "pre_filter_shard_size", "request_cache", "rest_total_hits_as_int", "search_type",
    "timeout", "track_total_hits", "track_scores", "typed_keys", "version", "seq_no_primary_term", "terminate_after",
    "size", "from", "sort", "_source", "_source_includes", "_source_excludes", "scroll", "keep_alive",
    "keep_on_completion", "wait_for_completion_timeout", "enable_fields_emulation"})  # not scroll_id: it goes in the body
DOC_PARAMS = frozenset({"preference", "realtime", "refresh", "routing"})
MGET_DOC_KEYS = frozenset({"_index", "_id", "routing"})  # not `_source` or `stored_fields` (see DOC_PARAMS)
QUERY_PARAMS = {
    "_search": SEARCH_PARAMS, "_msearch": SEARCH_PARAMS, "_async_search": SEARCH_PARAMS,
    "_count": INDEX_PARAMS | {"terminate_after", "min_score"},
    "_field_caps": INDEX_PARAMS | {"fields", "include_unmapped", "filters", "types", "include_empty_fields"},
    "_mget": DOC_PARAMS, "_doc": DOC_PARAMS, "_source": DOC_PARAMS,
    "_pit": INDEX_PARAMS | {"keep_alive", "allow_partial_search_results"},
}
MSEARCH_HEADER_KEYS = frozenset({"index", "search_type", "preference", "routing", "request_cache", "allow_no_indices",
                                 "expand_wildcards", "ignore_unavailable", "ignore_throttled",
                                 "allow_partial_search_results", "ccs_minimize_roundtrips"})
JSON_MEDIA_TYPES = frozenset({"application/json", "application/x-ndjson", "application/vnd.elasticsearch+json",
                              "application/vnd.elasticsearch+x-ndjson"})
MAX_BODY_DEPTH = 100  # Elasticsearch refuses bool queries nested deeper than 30; deeper bodies are refused unread
SEARCH_BODY_KEYS = frozenset({
    "query", "aggs", "aggregations", "size", "from", "sort", "_source", "fields", "docvalue_fields", "stored_fields",
    "script_fields", "runtime_mappings", "highlight", "track_total_hits", "track_scores", "version",
    "seq_no_primary_term", "timeout", "terminate_after", "min_score", "post_filter", "search_after", "pit", "collapse",
    "indices_boost", "stats", "slice"})  # not explain or profile (index-wide term statistics), nor rescore (scores)
COUNT_BODY_KEYS = frozenset({"query"})
UNRESTRICTED_AGGS = frozenset({"global"})  # buckets of every document in the index, whatever the query
EVERY_TERM_AGGS = ("terms", "multi_terms", "significant_terms", "significant_text")  # min_doc_count 0: every term there is
BACKGROUND_AGGS = ("significant_terms", "significant_text")  # compared with every document unless given a background
CLEANUP = re.compile(r"^/(_async_search/[^/]+|_pit|_search/scroll(/[^/]+)?)/?$")
SCROLL = re.compile(r"^/_search/scroll(/[^/]+)?/?$")
HOUSEKEEPING = re.compile(r"^/(|_nodes|_cluster/health|_xpack(/usage)?|_license|_security/_authenticate"
                          r"|_security/user/_has_privileges|_security/user/_privileges|_resolve/index/[^/]+"
                          r"|([^/_][^/]*/)?_mapping(/.*)?|_alias(/.*)?|[^/_][^/]*/_alias(/.*)?|_cat/indices(/.*)?)$")
AUDIT_LISTINGS = re.compile(r"^/(_mapping|_alias|_cat/indices)(/.*)?$")  # name every index there is, the audit one too
HANDLE_TTL_S = 24 * 3600  # longer than any keep_alive Kibana asks for
COMPATIBLE_WITH = re.compile(r"vnd\.elasticsearch\+[\w-]+;\s*compatible-with=(\d+)", re.IGNORECASE)
MAX_HANDLES = 100_000  # open search contexts remembered at most (the oldest are forgotten first)
TIME_FIELD = "@timestamp"  # the time picker's range: not a search term
HOUSEKEEPING_PARAMS = frozenset({"filter_path", "pretty", "human", "error_trace", "local", "master_timeout", "timeout",
                                 "wait_for_status", "accept_enterprise", "categories", "ignore_unavailable",
                                 "allow_no_indices", "expand_wildcards", "include_defaults", "flat_settings"})
HOUSEKEEPING_POSTS = re.compile(r"^/_security/user/_has_privileges$")  # Kibana asks what the user may do, with a body
REQUEST_TARGET = re.compile(r"/[\x21-\x7e]*")  # origin-form, printable ASCII: anything else is not forwarded
# Only these request headers go upstream: not the user's credentials, nor Elasticsearch's run-as, secondary or client
# authentication headers, nor anything else fcmon does not know.
FORWARDED_HEADERS = frozenset({"content-type", "user-agent", "x-opaque-id", "x-elastic-product-origin",
                               "x-elastic-client-meta", "traceparent", "tracestate", "elastic-api-version"})
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding", "authorization",
              TASKING_HEADER.lower()}
MAX_LOGGED_NAME = 100  # characters of a refused sign-in's user name kept in the log, as the console keeps
TERM_KEYS = ("query_string", "simple_query_string", "multi_match", "match", "match_phrase", "match_phrase_prefix",
             "match_bool_prefix", "term", "terms", "terms_set", "wildcard", "prefix", "fuzzy", "regexp", "combined_fields",
             "span_term")
VALUE_KEYS = ("query", "value", "term", "wildcard")  # where a term query's field spec holds what was typed
INTERVAL_TERMS = ("query", "prefix", "pattern", "term")  # what the rules of an intervals query match


# -- pure: what a request is ----------------------------------------------------------------------

ROUTE_KINDS = ("read", "audit-read", "housekeeping", "system", "other")  # every kind route() answers
ANSWERED_HERE = ("/_security/_authenticate", "/_security/user/_has_privileges")  # housekeeping the gateway answers


@dataclass(frozen=True)
class Route:
    kind: str  # one of ROUTE_KINDS
    endpoint: str | None
    indices: tuple[str, ...]


def segments(path: str) -> list[str]:
    """The path's segments as Elasticsearch reads them: split on "/", then each percent-decoded."""
    return [unquote(p) for p in urlsplit(path).path.split("/") if p]


def decoded(path: str) -> str:
    return "/" + "/".join(segments(path))


def route(method: str, path: str, records_alias: str, audit_alias: str = "fcmon-audit") -> Route:
    parts = segments(path)
    indices = tuple(parts[0].split(",")) if parts and not parts[0].startswith("_") else ()
    at = 1 if indices else 0  # an endpoint follows the index, or starts the path; elsewhere a name is a document id
    endpoint = parts[at] if len(parts) > at and parts[at] in READ_ENDPOINTS else None
    if endpoint in GET_ONLY and (method not in ("GET", "HEAD") or len(parts) != 3):
        endpoint = None  # POST /index/_doc indexes a document: a write, not a read
    if indices and all(i.startswith(".") for i in indices):
        return Route("system", endpoint, indices)
    if endpoint and method in ("GET", "POST", "HEAD"):
        if indices and all(_matches(i, audit_alias) for i in indices):
            return Route("audit-read", endpoint, indices)
        return Route("read", endpoint, indices)
    if method == "DELETE" and CLEANUP.match(decoded(path)):
        return Route("housekeeping", None, indices)  # freeing a search context deletes no data
    if set(parts) & set(READ_ENDPOINTS):  # `/_xpack/_mget`: Elasticsearch routes it as `/{index}/_mget`
        return Route("other", endpoint, indices)
    if method in ("GET", "HEAD") and HOUSEKEEPING.match(decoded(path)):
        return Route("housekeeping", None, indices)
    if method == "POST" and HOUSEKEEPING_POSTS.match(decoded(path)):
        return Route("housekeeping", None, indices)
    return Route("other", endpoint, indices)


@dataclass(frozen=True)
class Body:
    """A read's request body, parsed once, so that the log's terms, every check and the restriction read one parse."""
    raw: bytes
    value: Any = None  # the JSON value; for _msearch the list of NDJSON lines
    problem: str | None = None  # why it does not parse (None when it does, or is empty)

    @property
    def empty(self) -> bool:
        return not self.raw.strip()


def parse_body(endpoint: str | None, raw: bytes, content_type: str | None) -> Body:
    if not raw.strip():
        return Body(raw)
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:  # Elasticsearch reads YAML, CBOR and Smile too; these checks read JSON
        return Body(raw, problem=f"a body of type {media_type or '(none)'!r} is not read: send JSON (application/json)")
    try:
        value = msearch_lines(raw) if endpoint == "_msearch" else json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        return Body(raw, problem=f"not {'NDJSON' if endpoint == '_msearch' else 'valid JSON'} ({exc})")
    if depth(value) > MAX_BODY_DEPTH:
        return Body(raw, problem=f"nested deeper than {MAX_BODY_DEPTH} levels")
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:  # "\ud800": JSON escapes a lone surrogate, which is no Unicode text to log or match
        return Body(raw, problem=f"it holds a lone surrogate ({exc.object[exc.start:exc.end].encode('unicode_escape').decode()}"
                                 "), which is not Unicode text")
    return Body(raw, value)


def depth(value: Any) -> int:
    """How deeply JSON objects and arrays nest in a value (without recursion: the value may nest very deeply)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, level = pending.pop()
        inner = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if inner is not None:
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in inner)
    return deepest


def query_params(path: str) -> list[tuple[str, str]]:
    """The URL's parameters as Elasticsearch reads them: split on "&" and on ";"."""
    query = urlsplit(path).query
    return parse_qsl(query.replace(";", "&"), keep_blank_values=True) if query else []


def _matches(index: str, alias: str) -> bool:
    return re.fullmatch(re.escape(alias) + r"(-[\w.*-]*|\*)?", index) is not None


def resolved(path: str) -> tuple[str, ...] | None:
    """The names `_resolve/index/{names}` resolves (after a leading `_` segment, so not among Route.indices); None for
    any other path."""
    parts = segments(path)
    return tuple(parts[2].split(",")) if parts[:2] == ["_resolve", "index"] and len(parts) == 3 else None


def records_resolved(status: int, payload: bytes, alias: str) -> bytes:
    """An index resolution narrowed to the records alias and its indices. Anything but a resolution (a name not
    found, say) is answered as the empty one: whether another index exists is not told either."""
    parsed = _json(payload) if status < 300 else None
    if not isinstance(parsed, dict):
        parsed = {}

    def named(kind: str, inner: str) -> list[dict[str, Any]]:
        kept = [dict(e) for e in parsed.get(kind) or [] if isinstance(e, dict) and _matches(str(e.get("name")), alias)]
        for entry in kept:
            if isinstance(entry.get(inner), list):
                entry[inner] = [n for n in entry[inner] if _matches(str(n), alias)]
        return kept
    return json.dumps({"indices": named("indices", "aliases"), "aliases": named("aliases", "indices"),
                       "data_streams": named("data_streams", "backing_indices")}).encode()


def is_scroll(path: str) -> bool:
    return SCROLL.match(decoded(path)) is not None


def continuation(endpoint: str | None, path: str, method: str, body: Body) -> bool:
    """Requests without an index that continue an earlier, gated search rather than start one."""
    if is_scroll(path) or (endpoint == "_async_search" and method == "GET"):
        return True
    return endpoint == "_search" and isinstance(body.value, dict) and "pit" in body.value


def kibana_cluster_call(where: Route, path: str, body: bytes) -> bool:
    """A call of Kibana's own that names no index (templates, tasks, _bulk into its system indices only)."""
    if where.kind != "other" or where.indices:
        return False
    parts = segments(path)
    if parts and parts[0] in ("_reindex", "_update_by_query", "_delete_by_query", "_aliases"):
        return False
    if parts and parts[0] == "_bulk":
        try:
            actions = msearch_lines(body)
        except ValueError:
            return False
        targets = [next(iter(line.values())).get("_index", "") for line in actions
                   if len(line) == 1 and next(iter(line)) in ("index", "create", "update", "delete")
                   and isinstance(next(iter(line.values())), dict)]
        return bool(targets) and all(t.startswith(".") for t in targets)
    return True


def unrestricted_read(endpoint: str | None, path: str, method: str, body: Body) -> str | None:
    """Why a read would not be confined by the tasking filter restrict_body adds, or None if it would be."""
    if endpoint not in FORWARDED_READS:
        return f"{endpoint} is not forwarded through fcmon's gateway: " + WHY_NOT_FORWARDED.get(
            endpoint or "", "it can read or describe documents outside the tasking, and Kibana does not need it")
    names = {name for name, _ in query_params(path)}
    overrides = sorted(names & set(BODY_OVERRIDES))
    if overrides:
        return f"the URL parameter {overrides[0]!r} is not forwarded (it replaces the query): send the query in the body"
    unknown = sorted(names - QUERY_PARAMS[endpoint] - COMMON_PARAMS)
    if unknown:
        return (f"the URL parameter {unknown[0]!r} is not forwarded with {endpoint}: it changes what the answer shows, "
                "reaches past the tasking filter, or fcmon does not know it")
    parts = segments(path)
    after = parts[parts.index(endpoint) + 1:]  # route() found the endpoint among these parts
    if endpoint in ("_search", "_msearch") and after and after[0] != "scroll":
        return f"{endpoint}/{after[0]} is not forwarded: search templates can hold any query; send the query itself"
    if is_scroll(path) or method not in ("GET", "POST") or body.empty:
        return None
    if endpoint in ("_search", "_async_search"):
        return _unrestricted_body(body.value, SEARCH_BODY_KEYS)
    if endpoint == "_count":
        return _unrestricted_body(body.value, COUNT_BODY_KEYS)
    if endpoint == "_msearch":
        if body.problem:
            return f"the _msearch body cannot be used: {body.problem}"
        return next(filter(None, (_unrestricted_body(line, SEARCH_BODY_KEYS) for line in body.value[1::2])), None)
    if endpoint == "_mget" and isinstance(body.value, dict) and isinstance(body.value.get("docs"), list):
        options = sorted({k for d in body.value["docs"] if isinstance(d, dict) for k in d} - MGET_DOC_KEYS)
        if options:
            return (f"{options[0]!r} is not forwarded in an _mget document: each document's tasking is read from its "
                    "whole source; read whole documents")
    return None


def _unrestricted_body(parsed: Any, allowed: frozenset[str]) -> str | None:
    if not isinstance(parsed, dict):
        return None  # not a JSON object (or no JSON at all): restrict_body refuses it
    extra = sorted(set(parsed) - allowed)
    if extra:
        return (f"{extra[0]!r} is not forwarded in a search body: it reaches past the documents the tasking filter "
                "confines (other documents, terms or statistics), or fcmon does not know it")
    for aggs in (parsed.get("aggs"), parsed.get("aggregations")):
        found = _unrestricted_agg(aggs)
        if found:
            return f"{found} is not forwarded: its buckets reach every tasking's documents"
    reaching = reaching_clause(parsed)
    if reaching:
        return f"not forwarded: {reaching}; send the values or the query themselves"
    return lookup_field(parsed) or scored_clause(parsed)


def scored_clause(tree: Any) -> str | None:
    """Why a clause would make what matches depend on relevance scores, which Elasticsearch computes from every
    tasking's documents (restrict_query keeps them out of the answer itself): a min_score of function_score or
    script_score, or more_like_this, which picks its terms by their frequency in the whole index."""
    for node in objects_in(tree):
        for key, value in node.items():
            if key in ("function_score", "script_score") and isinstance(value, dict) and "min_score" in value:
                return (f"a {key!r} with min_score is not forwarded: which documents pass it depends on scores computed "
                        "over every tasking's records")
            if key == "more_like_this":
                return ("more_like_this is not forwarded: it picks its terms by how often they occur in every tasking's "
                        "records; send the words themselves (match)")
    return None


def lookup_field(parsed: dict[str, Any]) -> str | None:
    """A runtime field of type lookup fetches documents by id from any index: refused."""
    mappings = parsed.get("runtime_mappings")
    if isinstance(mappings, dict) and any(isinstance(m, dict) and m.get("type") == "lookup" for m in mappings.values()):
        return "a 'lookup' runtime field is not forwarded: it fetches documents of any index and tasking by id"
    return None


def reaching_clause(tree: Any) -> str | None:
    """Why a clause would reach past the tasking filter or the search-term ledger: it makes Elasticsearch fetch a
    stored document by reference (a terms lookup, more_like_this of a document, a percolate or indexed shape, anything
    naming an `_index`), or it hides its query (`wrapper`)."""
    for node in objects_in(tree):
        for key, value in node.items():
            if key in ("_index", "indexed_shape", "percolate"):
                return f"the {key!r} clause reads a stored document, of any tasking or index"
            if key == "terms" and isinstance(value, dict) and any(
                    isinstance(v, dict) and {"id", "path"} <= v.keys() for v in value.values()):  # not a terms aggregation
                return "a terms lookup reads a stored document, of any tasking or index"
            if key == "more_like_this" and isinstance(value, dict) and any(
                    isinstance(item, dict) for side in ("like", "unlike") for item in _as_list(value.get(side))):
                return "more_like_this of a stored document reads it, whatever its tasking"
            if key == "wrapper":
                return "a 'wrapper' query hides its query from these checks and from the search-term ledger"
    return None


def objects_in(*trees: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in the trees, each before those inside it."""
    for tree in trees:
        if isinstance(tree, dict):
            yield tree
            tree = list(tree.values())
        if isinstance(tree, list):
            for inner in tree:
                yield from objects_in(inner)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _unrestricted_agg(aggs: Any) -> str | None:
    for definition in _agg_definitions(aggs):
        found = next((f"a {kind!r} aggregation" for kind in definition if kind in UNRESTRICTED_AGGS), None)
        found = found or next((f"a {kind!r} aggregation with min_doc_count 0" for kind in EVERY_TERM_AGGS
                               if isinstance(definition.get(kind), dict) and _lists_every_term(definition[kind])), None)
        found = found or _unrestricted_agg(definition.get("aggs")) or _unrestricted_agg(definition.get("aggregations"))
        if found:
            return found
    return None


def _lists_every_term(settings: dict[str, Any]) -> bool:
    try:
        return int(settings.get("min_doc_count", 1)) < 1
    except (TypeError, ValueError, OverflowError):
        return True  # not a count: Elasticsearch refuses it, and so does the gateway


def _agg_definitions(aggs: Any) -> list[dict[str, Any]]:
    return [d for d in aggs.values() if isinstance(d, dict)] if isinstance(aggs, dict) else []


def restrict_aggs(aggs: Any, tasking_id: str) -> None:
    """Significant terms and text compare the query's documents with a background set: make it the tasking's."""
    for definition in _agg_definitions(aggs):
        for kind in BACKGROUND_AGGS:
            if isinstance(definition.get(kind), dict):
                settings = definition[kind]
                settings["background_filter"] = restrict_query(settings.get("background_filter"), tasking_id)
        restrict_aggs(definition.get("aggs"), tasking_id)
        restrict_aggs(definition.get("aggregations"), tasking_id)


def msearch_lines(body: bytes) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    if not all(isinstance(line, dict) for line in lines):
        raise ValueError("every line of an NDJSON body must be a JSON object")
    return lines


def restrict_query(query: dict[str, Any] | None, tasking_id: str) -> dict[str, Any]:
    """The query, ANDed with the tasking filter (the filter is ours, never taken from the request). Both are filters:
    no document is scored, since Elasticsearch computes a score from the statistics of the whole index, every
    tasking's documents included (every hit answers `_score` 0, and a sort on `_score` leaves the next sort to order)."""
    return {"bool": {"filter": [{"term": {"fcm.tasking_id": tasking_id}}, *([query] if query else [])]}}


def restrict_body(endpoint: str, body: Body, tasking_id: str) -> bytes:
    """Add the tasking filter to every query a parsed read carries (the caller refuses one whose body did not parse),
    and to the background set of significant terms. Raises ValueError for a body that is not the JSON object the
    endpoint takes. It changes the parse in place: call it last."""
    if endpoint not in ("_msearch", "_search", "_async_search", "_count", "_field_caps"):
        return body.raw
    if endpoint == "_msearch":
        lines = body.value or []
        for position in range(1, len(lines), 2):
            restrict_search(lines[position], tasking_id)
        return ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
    parsed = {} if body.empty else body.value
    if not isinstance(parsed, dict):
        raise ValueError(f"{endpoint} takes a JSON object")
    if endpoint == "_field_caps":  # its index_filter picks indices, not documents; field names are all it shows
        parsed["index_filter"] = restrict_query(parsed.get("index_filter"), tasking_id)
    else:
        restrict_search(parsed, tasking_id)
    return json.dumps(parsed).encode()


def restrict_search(search: dict[str, Any], tasking_id: str) -> None:
    search["query"] = restrict_query(search.get("query"), tasking_id)
    restrict_aggs(search.get("aggs"), tasking_id)
    restrict_aggs(search.get("aggregations"), tasking_id)


def search_terms(value: Any) -> list[str]:
    """What the user typed, as far as Kibana's query DSL shows it: query strings, matched and filtered values."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, inner in node.items():
                if key in TERM_KEYS:
                    leaf(inner)
                elif key == "exists" and isinstance(inner, dict):
                    found.append(f"exists:{inner.get('field')}")
                elif key == "ids" and isinstance(inner, dict):
                    found.extend(f"_id:{v}" for v in _as_list(inner.get("values")) if not isinstance(v, (dict, list)))
                elif key == "range" and isinstance(inner, dict):
                    found.extend(f"{field}:{op}{bound}" for field, spec in inner.items() if field != TIME_FIELD
                                 and isinstance(spec, dict) for op, bound in spec.items()
                                 if op in ("gt", "gte", "lt", "lte") and not isinstance(bound, (dict, list)))
                elif key == "script" and isinstance(inner, dict) and isinstance(inner.get("script"), dict):
                    params = inner["script"].get("params")
                    found.extend(f"script:{k}={v}" for k, v in (params.items() if isinstance(params, dict) else [])
                                 if not isinstance(v, (dict, list)))
                elif key == "intervals" and isinstance(inner, dict):
                    for field, rules in inner.items():
                        found.extend(f"{field}:{text}" for text in strings_under(rules, INTERVAL_TERMS))
                elif key == "more_like_this" and isinstance(inner, dict):
                    found.extend(text for text in _as_list(inner.get("like")) if isinstance(text, str))
                else:
                    walk(inner)
        elif isinstance(node, list):
            for inner in node:
                walk(inner)

    def leaf(inner: Any) -> None:
        if isinstance(inner, dict) and "query" in inner and not isinstance(inner["query"], (dict, list)):
            found.append(str(inner["query"]))
            return
        if isinstance(inner, dict):
            for field, spec in inner.items():
                if isinstance(spec, dict):
                    values = [spec[k] for k in VALUE_KEYS if k in spec and not isinstance(spec[k], (dict, list))]
                    values += spec["terms"] if isinstance(spec.get("terms"), list) else []  # terms_set
                    found.extend(f"{field}:{v}" for v in values if not isinstance(v, (dict, list)))
                    if not values:
                        walk({field: spec})  # a query inside (span_multi's match holds a prefix, wildcard, ...)
                elif isinstance(spec, list):
                    found.extend(f"{field}:{v}" for v in spec if not isinstance(v, (dict, list)))
                elif not field.startswith("_") and field not in ("boost", "case_insensitive"):
                    found.append(f"{field}:{spec}")

    walk(value)
    return found


def strings_under(tree: Any, keys: tuple[str, ...]) -> list[str]:
    """The string values of these keys anywhere in a JSON tree."""
    return [v for node in objects_in(tree) for k, v in node.items() if k in keys and isinstance(v, str)]


def request_terms(endpoint: str | None, body: Body) -> list[str]:
    if body.empty or body.problem:
        return []
    if endpoint == "_msearch":
        return [t for line in body.value[1::2] for t in body_terms(line)]
    parsed = body.value
    if not isinstance(parsed, dict):
        return search_terms(parsed)
    return body_terms(parsed) + ([str(parsed["string"])] if parsed.get("string") else [])


def body_terms(search: dict[str, Any]) -> list[str]:
    """The terms of every query a search body holds: its query, post filter, rescore queries and aggregations."""
    found = search_terms(search.get("query")) + search_terms(search.get("post_filter")) + search_terms(search.get("index_filter"))
    highlight = search.get("highlight")
    found += search_terms(highlight.get("highlight_query")) if isinstance(highlight, dict) else []
    for rescore in _as_list(search.get("rescore")):
        if isinstance(rescore, dict) and isinstance(rescore.get("query"), dict):
            found += search_terms(rescore["query"].get("rescore_query"))
    return found + aggregation_terms(search.get("aggs")) + aggregation_terms(search.get("aggregations"))


def aggregation_terms(aggs: Any) -> list[str]:
    """Filters of filter(s) aggregations and backgrounds, and the values a terms aggregation includes or excludes
    (Kibana's value suggestions send what the user typed as `include`)."""
    found: list[str] = []
    for definition in _agg_definitions(aggs):
        for kind, settings in definition.items():
            if kind in ("filter", "aggs", "aggregations"):
                continue
            if isinstance(settings, dict):
                field = settings.get("field", kind)
                found += [f"{field}:{v}" for key in ("include", "exclude") for v in _as_list(settings.get(key))
                          if isinstance(v, (str, int, float))]
                found += search_terms(settings.get("filters")) + search_terms(settings.get("background_filter"))
        found += search_terms(definition.get("filter"))
        found += aggregation_terms(definition.get("aggs")) + aggregation_terms(definition.get("aggregations"))
    return found


def response_hits(endpoint: str | None, payload: Any) -> tuple[int, list[str]]:
    """(hits total, ids returned) as the upstream answer shows them."""
    if not isinstance(payload, dict):
        return 0, []
    if endpoint == "_msearch":
        total, ids = 0, list[str]()
        for answer in payload.get("responses", []):
            t, i = response_hits("_search", answer)
            total, ids = total + t, ids + i
        return total, ids
    if endpoint == "_count":
        return int(payload.get("count", 0)), []
    if endpoint in ("_doc", "_source"):
        return (1, [str(payload.get("_id"))]) if payload.get("found", True) and payload.get("_id") else (0, [])
    if endpoint == "_mget":
        ids = [str(d["_id"]) for d in payload.get("docs", []) if d.get("found")]
        return len(ids), ids
    answer = payload.get("response") or payload
    hits = answer.get("hits") or {}
    ids = [str(h.get("_id")) for h in hits.get("hits", []) if isinstance(h, dict)]
    total = hits.get("total")
    total = total.get("value", 0) if isinstance(total, dict) else int(total or 0)
    # documents that come back elsewhere in the answer (top_hits aggregations, inner_hits) are returned ids too
    ids += [str(h.get("_id")) for node in objects_in({k: v for k, v in answer.items() if k != "hits"}, hits.get("hits"))
            for h in _nested_hits(node)]
    return max(total, len(hits.get("hits", []))), ids  # with track_total_hits false: at least what came back


def _nested_hits(node: dict[str, Any]) -> list[dict[str, Any]]:
    inner = node.get("hits")
    found = inner.get("hits") if isinstance(inner, dict) else None
    return [h for h in found if isinstance(h, dict) and "_id" in h] if isinstance(found, list) else []


def foreign_docs(endpoint: str | None, payload: Any, tasking_id: str) -> Any:
    """Documents of other taskings, answered as not found (doc and source GETs, _mget)."""
    def own(doc: dict[str, Any]) -> bool:
        source = doc.get("_source") if "_source" in doc else doc
        return isinstance(source, dict) and (source.get("fcm") or {}).get("tasking_id") == tasking_id

    if endpoint == "_doc" and isinstance(payload, dict) and payload.get("found") and not own(payload):
        return {"_index": payload.get("_index"), "_id": payload.get("_id"), "found": False}
    if endpoint == "_source" and isinstance(payload, dict) and not own(payload):
        return None
    if endpoint == "_mget" and isinstance(payload, dict):
        payload["docs"] = [d if not d.get("found") or own(d) else {"_index": d.get("_index"), "_id": d.get("_id"), "found": False}
                           for d in payload.get("docs", [])]
    return payload


def opened_handles(endpoint: str | None, payload: Any) -> list[str]:
    """Ids of the search contexts an answer opens or renews: async search, point in time, scroll."""
    if not isinstance(payload, dict):
        return []
    found = [payload.get("_scroll_id"), payload.get("pit_id")]
    if endpoint in ("_async_search", "_pit"):
        found.append(payload.get("id"))
    return [h for h in found if isinstance(h, str) and h]


def continued_handles(path: str, body: Body) -> list[str]:
    """Ids of the search contexts a request continues or frees: in its path (async search, scroll) or body."""
    parts = segments(path)
    found: list[Any] = []
    if parts[:1] == ["_async_search"] and len(parts) > 1:
        found.append(parts[-1])
    if parts[:2] == ["_search", "scroll"] and len(parts) > 2:
        found += parts[2].split(",")
    if isinstance(body.value, dict):
        found += _as_list(body.value.get("scroll_id"))
        pit = body.value.get("pit")
        found.append(pit.get("id") if isinstance(pit, dict) else None)
        if parts == ["_pit"]:
            found.append(body.value.get("id"))
    return [h for h in found if h is not None]


class Handles:
    """Who opened each search context (async search, scroll, point in time) under which tasking. Upstream every
    request is fcmon's one service account, so Elasticsearch's own owner check sees one user for everyone: the gateway
    forwards a continuation, or frees a context, only for the user (and tasking) that opened it. Kept in memory: after
    a restart a context is continued by nobody, and Kibana runs its search again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._owners: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()

    def remember(self, handles: list[str], user: str, tasking_id: str) -> None:
        if not handles:
            return
        now = self._clock()
        with self._lock:
            for handle in handles:
                self._owners.pop(handle, None)  # re-inserted last: the dict stays in the order of last use
                self._owners[handle] = (user, tasking_id, now + HANDLE_TTL_S)
            while len(self._owners) > MAX_HANDLES:
                del self._owners[next(iter(self._owners))]

    def forget(self, handles: list[str]) -> None:
        with self._lock:
            for handle in handles:
                self._owners.pop(handle, None)

    def refusal(self, handles: list[str], user: str, tasking_id: str | None = None) -> str | None:
        """Why the user may not continue or free these contexts (under this tasking), or None."""
        if not handles or not all(isinstance(h, str) for h in handles):
            return "name the search context to continue or free by its id (a string); '_all' and none are not forwarded"
        now = self._clock()
        with self._lock:
            for handle in handles:
                owner = self._owners.get(handle)
                if owner is None or owner[2] < now or owner[0] != user or (tasking_id is not None and owner[1] != tasking_id):
                    return ("a search context is continued or freed only by the user who opened it, under the tasking it "
                            "was opened for (this one is not known to this gateway as theirs): run the search again")
        return None


# -- the server -----------------------------------------------------------------------------------

class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Gateway:
    def __init__(self, state: State, audit: AuditLog, upstream: str, *, records_alias: str, service_account: str,
                 kibana_account: str = "kibana_system", upstream_auth: tuple[str, str] | None = None,
                 audit_alias: str = "fcmon-audit", timeout: float = 60, max_body_bytes: int = 100 * 1024 * 1024):
        self.state, self.audit = state, audit
        self.max_body_bytes = max_body_bytes
        self.upstream = upstream.rstrip("/")
        self.records_alias, self.audit_alias = records_alias, audit_alias
        self.service_account, self.kibana_account = service_account, kibana_account
        self.upstream_auth = "Basic " + base64.b64encode(":".join(upstream_auth).encode()).decode() if upstream_auth else None
        self.timeout = timeout
        self.handles = Handles()
        self.lock = threading.Lock()  # one SQLite connection each for state and audit, shared by the handler threads
        # every user signs in through Kibana's one address, so failures count per user name, not per client
        self.basic = BasicAuth(state.password_hash, self.lock, FailedSignIns())

    # authentication
    def authenticate(self, header: str | None, client: str) -> User:
        try:
            name = self.basic.user_name(header)
        except SignInRefused as exc:  # audited, as the console's are: a supervisor sees the guessing
            throttled = isinstance(exc, Throttled)
            if not throttled or self.basic.failures is None or self.basic.failures.first_refusal(exc.name):
                shown = logged_name(exc.name)  # once a window when throttled: a throttled try costs nothing to repeat
                self._append("gateway.login.refused", shown or "(none)",
                             {"user": shown, "client": client, "reason": "throttled" if throttled else str(exc)})
            raise Refusal(429 if throttled else 401, str(exc) if len(exc.name) <= MAX_LOGGED_NAME
                          else str(exc).replace(exc.name, logged_name(exc.name))) from exc
        except ValueError as exc:
            raise Refusal(401, f"{exc}" if header else "authentication required: Kibana must forward the user's Basic credentials") from exc
        with self.lock:
            return self.state.user(name)

    # the decision for one request, from an authenticated user
    def handle(self, user: User, method: str, path: str, headers: dict[str, str], body: bytes, client: str
               ) -> tuple[int, dict[str, str], bytes]:
        where = route(method, path, self.records_alias, self.audit_alias)
        service, kibana = user.name == self.service_account, user.name == self.kibana_account
        if kibana and (where.kind in ("system", "housekeeping") or kibana_cluster_call(where, path, body)):
            return self.forward(method, path, headers, body, own_credentials=True)
        if where.kind == "housekeeping" and body.strip() and method in ("GET", "HEAD"):
            raise Refusal(400, f"{method} {decoded(path)} carries no body through fcmon's gateway")
        if where.kind == "housekeeping" and decoded(path) == "/_security/_authenticate":
            return 200, {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}, \
                json.dumps(authenticate_answer(user)).encode()
        if where.kind == "housekeeping" and decoded(path) == "/_security/user/_has_privileges":
            parsed = parse_body(None, body, headers.get("content-type"))  # answered for the user, not the service account
            try:
                if parsed.problem:
                    raise ValueError(parsed.problem)
                answer = privileges_answer(user, parsed.value, lambda n: _matches(n, self.records_alias),
                                           lambda n: _matches(n, self.audit_alias))
            except ValueError as exc:
                raise Refusal(400, f"the privileges asked cannot be read: {exc}") from exc
            return 200, {"Content-Type": "application/json", "X-Elastic-Product": "Elasticsearch"}, json.dumps(answer).encode()
        if where.kind == "read":
            return self._read(user, where, method, path, headers, body, client)
        if method == "DELETE" and where.kind == "housekeeping":  # freeing a search context: only its owner's
            return self._free(user, path, headers, body)
        if where.kind == "housekeeping" and set(dict(query_params(path))) - HOUSEKEEPING_PARAMS:
            raise Refusal(403, f"{decoded(path)}: a URL parameter fcmon's gateway does not forward there "
                               f"(it takes {', '.join(sorted(HOUSEKEEPING_PARAMS))})")
        # housekeeping that names anything but the records index (a pattern can match the audit index's concrete
        # name), or lists every index, is for those who may see the audit index
        names_audit = where.kind == "audit-read" or (where.kind == "housekeeping" and (
            any(not _matches(i, self.records_alias) for i in where.indices) or AUDIT_LISTINGS.match(decoded(path)) is not None))
        names = resolved(path) if where.kind == "housekeeping" else None
        if names is not None and user.role not in AUDIT_READERS and not all(_matches(n, self.records_alias) for n in names):
            status, out_headers, payload = self.forward("GET", path, headers, body)  # a HEAD too: its status would tell
            return 200, out_headers, records_resolved(status, payload, self.records_alias)
        if names_audit and user.role not in AUDIT_READERS:
            raise Refusal(403, f"{user.name} is {user.role}; the audit index is for supervisors and administrators")
        if where.kind == "audit-read":
            parsed = parse_body(where.endpoint, body, headers.get("content-type"))
            try:
                self._check_targets(where, path, method, parsed, self.audit_alias)
                unrestricted = unrestricted_read(where.endpoint, path, method, parsed)  # lookups reach the records too
                if unrestricted:
                    raise Forbidden(unrestricted)
            except Forbidden as refusal:
                raise Refusal(403, str(refusal)) from refusal
            if parsed.problem:
                raise Refusal(400, f"the request body cannot be used: {parsed.problem}")
            self._append("audit.read", user.name, {"method": method, "path": path, "client": client,
                                                   "terms": request_terms(where.endpoint, parsed)})
            return self.forward(method, path, headers, body)
        if where.kind == "system":
            raise Refusal(403, f"{', '.join(where.indices)}: Kibana's system indices are for Kibana's own account only")
        if where.kind == "housekeeping" or service:
            return self.forward(method, path, headers, body)
        if method in ("GET", "HEAD"):
            raise Refusal(403, f"{method} {urlsplit(path).path} is not something Kibana needs through fcmon's gateway")
        raise Refusal(403, f"{method} {urlsplit(path).path}: writes and deletes are for fcmon's service account only")

    def _read(self, user: User, where: Route, method: str, path: str, headers: dict[str, str], raw: bytes,
              client: str) -> tuple[int, dict[str, str], bytes]:
        tasking_id = headers.get(TASKING_HEADER.lower(), "").strip()
        body = parse_body(where.endpoint, raw, headers.get("content-type"))
        terms = request_terms(where.endpoint, body)
        kept, cut = logged_terms(terms)
        # the body whole: the audit log cuts it to MAX_AUDIT_STRING characters and records its length and SHA-256
        filters = {"method": method, "path": path, "endpoint": where.endpoint, "terms": kept,
                   "body": raw.decode(errors="replace"), **({"terms_cut": cut} if cut else {})}
        event = new_event(user, tasking_id, " ".join(terms), filters, "kibana", client)
        try:
            if user.role not in SEARCH_ROLES:
                raise Forbidden(f"{user.name} is {user.role}; searching needs the role analyst, detective or supervisor")
            if not tasking_id:
                raise Forbidden(f"no tasking: Kibana must send the {TASKING_HEADER} header",
                                "set it per space or per user in Kibana's custom headers")
            self._check_targets(where, path, method, body, self.records_alias)
            unrestricted = unrestricted_read(where.endpoint, path, method, body)
            if unrestricted:
                raise Forbidden(unrestricted)
            if continuation(where.endpoint, path, method, body):
                owned = self.handles.refusal(continued_handles(path, body), user.name, tasking_id)
                if owned:
                    raise Forbidden(owned)
        except Forbidden as refusal:
            self._locked(refuse_query, self.audit, event, refusal)
            raise Refusal(403, str(refusal)) from refusal
        try:
            event = self._locked(open_query, self.state, self.audit, user, event)
        except AuditUnavailable:
            raise
        except FcmonError as refusal:
            raise Refusal(403, str(refusal)) from refusal
        try:
            status, out_headers, payload, total, ids = self._forward_read(user, where, method, path, headers, body,
                                                                          tasking_id)
        except BaseException:
            self._locked(close_query, self.audit, event, 0, [])  # whatever went wrong, the logged query is closed
            raise
        self._locked(close_query, self.audit, event, total, ids)
        return status, out_headers, payload

    def _forward_read(self, user: User, where: Route, method: str, path: str, headers: dict[str, str], body: Body,
                      tasking_id: str) -> tuple[int, dict[str, str], bytes, int, list[str]]:
        try:
            if body.problem:  # whatever the endpoint: scroll bodies are forwarded as they are, so they must be JSON too
                raise ValueError(body.problem)
            restricted = body.raw if is_scroll(path) else restrict_body(where.endpoint or "", body, tasking_id)
        except ValueError as exc:
            raise Refusal(400, f"the request body cannot be used: {exc}") from exc
        # a HEAD would answer 200 for another tasking's document: ask for it, and answer as the GET would
        forwarded = "GET" if method == "HEAD" and where.endpoint in GET_ONLY else method
        status, out_headers, payload = self.forward(forwarded, path, headers, restricted)
        parsed = _json(payload)
        if status < 300 and parsed is None:  # YAML, CBOR, ...: an answer the checks below cannot read is not passed on
            raise Refusal(502, "Elasticsearch answered in a form fcmon's gateway cannot check; nothing was passed on")
        if where.endpoint in ("_doc", "_source", "_mget") and status < 300:
            parsed = foreign_docs(where.endpoint, parsed, tasking_id)
            if parsed is None or (where.endpoint == "_doc" and parsed.get("found") is False):
                status = 404
            payload = json.dumps(parsed if parsed is not None else {"found": False}).encode()
        if status >= 300:
            return status, out_headers, payload, 0, []
        self.handles.remember(opened_handles(where.endpoint, parsed), user.name, tasking_id)
        total, ids = response_hits(where.endpoint, parsed)
        if where.endpoint == "_source":  # the answer is the document's source alone: its id is the path's
            total, ids = 1, [segments(path)[-1]]
        return status, out_headers, payload, total, ids

    def _check_targets(self, where: Route, path: str, method: str, body: Body, alias: str) -> None:
        """Every index the request names, in its path or its body, is `alias` (the records', or for an audit read the
        audit index's)."""
        which = "audit" if alias == self.audit_alias else "records"
        targets = list(where.indices)
        if where.endpoint == "_msearch":
            if body.problem:
                raise Forbidden(f"the _msearch body cannot be used: {body.problem}")
            for header in (body.value or [])[0::2]:
                unknown = sorted(set(header) - MSEARCH_HEADER_KEYS)
                if unknown:
                    raise Forbidden(f"the _msearch header key {unknown[0]!r} is not forwarded: it may name another index, "
                                    "or fcmon does not know it")
                named = [i for i in str(header.get("index", "")).split(",") if i]
                if "index" in header and not named:  # "" or ",": Elasticsearch reads every index, not the path's
                    raise Forbidden("an _msearch header's index names no index (Elasticsearch would search every index)")
                if not named and not where.indices:
                    raise Forbidden(f"every _msearch header must name the {which} index ({alias})")
                targets += named
        if where.endpoint == "_mget":  # each document may name its own index
            docs = body.value.get("docs") if isinstance(body.value, dict) else None
            if isinstance(docs, list):
                targets += [str(d["_index"]) for d in docs if isinstance(d, dict) and d.get("_index")]
        if not targets:
            if continuation(where.endpoint, path, method, body):
                return  # scroll, async-search results, point-in-time searches: continuations of a gated search
            raise Forbidden(f"name the {which} index ({alias}) in the request", "searches across every index are not forwarded")
        outside = [i for i in targets if not _matches(i, alias)]
        if outside:
            raise Forbidden(f"{', '.join(outside)}: only {alias} may be searched through the gateway")

    def _free(self, user: User, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        body = parse_body(None, raw, headers.get("content-type"))
        if body.problem or query_params(path):  # a body Elasticsearch reads otherwise, or `source=` in its place
            raise Refusal(400, "freeing a search context takes its ids in the path or a JSON body, and no URL parameters")
        handles = continued_handles(path, body)
        refusal = self.handles.refusal(handles, user.name)
        if refusal:
            raise Refusal(403, refusal)
        answer = self.forward("DELETE", path, headers, raw)
        if answer[0] < 300:
            self.handles.forget(handles)
        return answer

    def _append(self, kind: str, actor: str, payload: dict[str, Any]) -> None:
        self._locked(self.audit.append, kind, actor, payload)

    def _locked(self, fn: Any, *args: Any) -> Any:
        with self.lock:
            return fn(*args)

    # forwarding
    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes, *, own_credentials: bool = False
                ) -> tuple[int, dict[str, str], bytes]:
        out = {k: v for k, v in headers.items() if k.lower() in FORWARDED_HEADERS}
        # never the client's Accept: the answers are checked and counted as JSON. Elasticsearch 8 wants a versioned
        # Accept when the Content-Type is versioned (Kibana's client sends compatible-with=8), and answers JSON to both.
        version = COMPATIBLE_WITH.search(headers.get("content-type", ""))
        out["Accept"] = f"application/vnd.elasticsearch+json; compatible-with={version.group(1)}" if version else "application/json"
        if own_credentials and headers.get("authorization"):
            out["Authorization"] = headers["authorization"]
        elif self.upstream_auth:
            out["Authorization"] = self.upstream_auth
        data = body if body or method in ("POST", "PUT") else None
        if data is not None and not any(k.lower() == "content-type" for k in out):
            # a body the gateway added (the tasking filter of a bodiless count or field caps): without this, urllib
            # labels it a form, and Elasticsearch refuses that with 406
            out["Content-Type"] = "application/json"
        request = urllib.request.Request(self.upstream + path, data=data, method=method, headers=out)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.status, dict(answer.headers.items()), answer.read()
        except urllib.error.HTTPError as answer:
            return answer.code, dict(answer.headers.items()), answer.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: a request http.client will not send
            raise Refusal(502, f"Elasticsearch at {self.upstream} did not answer ({exc})") from exc


def logged_name(name: str) -> str:
    """A user name as a refused sign-in logs it: MAX_LOGGED_NAME characters and the full length (nobody is signed in,
    and the append-only log must not be fillable with made-up names)."""
    return name if len(name) <= MAX_LOGGED_NAME else f"{name[:MAX_LOGGED_NAME]}... ({len(name):,} characters)"


def logged_terms(terms: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    """The search terms a query's entry lists: those that fit in MAX_AUDIT_STRING characters together, and when some
    do not, how many there were and the SHA-256 of them all (one a line), so a kept copy of the body can be matched."""
    kept, size = [], 0
    for term in terms:
        size += len(term) + 1
        if size > MAX_AUDIT_STRING:
            return kept, {"terms": len(terms), "kept": len(kept),
                          "sha256": hashlib.sha256("\n".join(terms).encode("utf-8", "surrogatepass")).hexdigest()}
        kept.append(term)
    return kept, None


def authenticate_answer(user: User) -> dict[str, Any]:
    """What Elasticsearch's _security/_authenticate says, for an fcmon user (Kibana shows and checks it)."""
    realm = {"name": "fcmon", "type": "fcmon-gateway"}
    return {"username": user.name, "roles": [f"fcmon_{user.role}"], "full_name": None, "email": None,
            "metadata": {"fcmon_role": user.role}, "enabled": True, "authentication_realm": realm, "lookup_realm": realm,
            "authentication_type": "realm"}


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def make_handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            method = self.command
            headers = {k.lower(): v for k, v in self.headers.items()}
            client = self.client_address[0]
            try:
                try:
                    if not REQUEST_TARGET.fullmatch(self.path):
                        raise Refusal(400, "the request target must be a path of printable ASCII characters starting with /")
                    user = gateway.authenticate(headers.get("authorization"), client)  # before a byte of the body is read
                except Refusal:
                    self.close_connection = True  # its body, unread, must not be taken for the next request
                    raise
                try:
                    body = read_body(self, gateway.max_body_bytes)
                except BodyRefused as refused:
                    raise Refusal(refused.status, str(refused)) from refused
                status, out_headers, payload = gateway.handle(user, method, self.path, headers, body, client)
            except Refusal as refusal:
                status, out_headers, payload = refusal.status, {}, _error(refusal.status, str(refusal))
                if refusal.status == 401:
                    out_headers["WWW-Authenticate"] = 'Basic realm="fcmon", charset="UTF-8"'
            except AuditUnavailable as exc:
                status, out_headers, payload = 503, {}, _error(503, str(exc))
            except FcmonError as exc:
                status, out_headers, payload = 403, {}, _error(403, str(exc))
            except Exception:  # noqa: BLE001  (a bug must still answer, not drop the connection)
                log.exception("event=gateway.error method=%s path=%s", method, urlsplit(self.path).path)
                self.close_connection = True
                status, out_headers, payload = 500, {}, _error(500, "the request could not be completed; see the gateway's log")
            log.info("event=gateway.request client=%s method=%s path=%s status=%d", client, method, self.path, status)
            self.send_response(status)
            for name, value in out_headers.items():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            if "content-type" not in {n.lower() for n in out_headers}:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _error(status: int, message: str) -> bytes:
    return json.dumps({"error": {"type": "fcmon_gateway", "reason": message}, "status": status}).encode()


# Longer than Kibana's elasticsearch.idleSocketTimeout (60 s): Kibana closes an idle keep-alive socket before the
# gateway does, so no request is ever written to a socket the gateway is closing.
GATEWAY_IDLE_TIMEOUT_S = 120.0


def serve(gateway: Gateway, host: str, port: int, idle_timeout_s: float = GATEWAY_IDLE_TIMEOUT_S) -> ThreadingHTTPServer:
    return threading_server(host, port, make_handler(gateway), idle_timeout_s)
