"""The policy: which requests pass the gateway and where they go. route() says what a request is (a read of the
records, a read of the audit index, Kibana's housekeeping, Kibana's system indices, anything else); the rest say why a
read would step around the tasking filter (an endpoint, URL parameter, body key, clause or aggregation that reaches
other taskings' documents, terms, statistics or scores), or None when it would not. Pure: no I/O."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pipeline.gateway.body import Body, agg_definitions, as_list, msearch_lines, objects_in

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
SEARCH_BODY_KEYS = frozenset({
    "query", "aggs", "aggregations", "size", "from", "sort", "_source", "fields", "docvalue_fields", "stored_fields",
    "script_fields", "runtime_mappings", "highlight", "track_total_hits", "track_scores", "version",
    "seq_no_primary_term", "timeout", "terminate_after", "min_score", "post_filter", "search_after", "pit", "collapse",
    "indices_boost", "stats", "slice"})  # not explain or profile (index-wide term statistics), nor rescore (scores)
COUNT_BODY_KEYS = frozenset({"query"})
UNRESTRICTED_AGGS = frozenset({"global"})  # buckets of every document in the index, whatever the query
EVERY_TERM_AGGS = ("terms", "multi_terms", "significant_terms", "significant_text")  # min_doc_count 0: every term there is
CLEANUP = re.compile(r"^/(_async_search/[^/]+|_pit|_search/scroll(/[^/]+)?)/?$")
SCROLL = re.compile(r"^/_search/scroll(/[^/]+)?/?$")
HOUSEKEEPING = re.compile(r"^/(|_nodes|_cluster/health|_xpack(/usage)?|_license|_security/_authenticate"
                          r"|_security/user/_has_privileges|_security/user/_privileges|_resolve/index/[^/]+"
                          r"|([^/_][^/]*/)?_mapping(/.*)?|_alias(/.*)?|[^/_][^/]*/_alias(/.*)?|_cat/indices(/.*)?)$")
AUDIT_LISTINGS = re.compile(r"^/(_mapping|_alias|_cat/indices)(/.*)?$")  # name every index there is, the audit one too
HOUSEKEEPING_PARAMS = frozenset({"filter_path", "pretty", "human", "error_trace", "local", "master_timeout", "timeout",
                                 "wait_for_status", "accept_enterprise", "categories", "ignore_unavailable",
                                 "allow_no_indices", "expand_wildcards", "include_defaults", "flat_settings"})
HOUSEKEEPING_POSTS = re.compile(r"^/_security/user/_has_privileges$")  # Kibana asks what the user may do, with a body
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
        if indices and all(matches(i, audit_alias) for i in indices):
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


def query_params(path: str) -> list[tuple[str, str]]:
    """The URL's parameters as Elasticsearch reads them: split on "&" and on ";"."""
    query = urlsplit(path).query
    return parse_qsl(query.replace(";", "&"), keep_blank_values=True) if query else []


def matches(index: str, alias: str) -> bool:
    return re.fullmatch(re.escape(alias) + r"(-[\w.*-]*|\*)?", index) is not None


def resolved(path: str) -> tuple[str, ...] | None:
    """The names `_resolve/index/{names}` resolves (after a leading `_` segment, so not among Route.indices); None for
    any other path."""
    parts = segments(path)
    return tuple(parts[2].split(",")) if parts[:2] == ["_resolve", "index"] and len(parts) == 3 else None


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
                    isinstance(item, dict) for side in ("like", "unlike") for item in as_list(value.get(side))):
                return "more_like_this of a stored document reads it, whatever its tasking"
            if key == "wrapper":
                return "a 'wrapper' query hides its query from these checks and from the search-term ledger"
    return None


def _unrestricted_agg(aggs: Any) -> str | None:
    for definition in agg_definitions(aggs):
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
