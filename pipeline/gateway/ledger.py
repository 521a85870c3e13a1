"""The ledger: what a read's audit entries hold. The search terms a body carries (what the user typed, as far as
Kibana's query DSL shows it), bounded for the log; the hits an answer reports and the ids it returns; a refused
sign-in's name, cut. Pure: no I/O."""
from __future__ import annotations

import hashlib
from typing import Any

from pipeline.audit_bounds import MAX_AUDIT_STRING
from pipeline.gateway.body import Body, agg_definitions, as_list, objects_in

MAX_LOGGED_NAME = 100  # characters of a refused sign-in's user name kept in the log, as the console keeps
TERM_KEYS = ("query_string", "simple_query_string", "multi_match", "match", "match_phrase", "match_phrase_prefix",
             "match_bool_prefix", "term", "terms", "terms_set", "wildcard", "prefix", "fuzzy", "regexp", "combined_fields",
             "span_term")
VALUE_KEYS = ("query", "value", "term", "wildcard")  # where a term query's field spec holds what was typed
INTERVAL_TERMS = ("query", "prefix", "pattern", "term")  # what the rules of an intervals query match
TIME_FIELD = "@timestamp"  # the time picker's range: not a search term


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
                    found.extend(f"_id:{v}" for v in as_list(inner.get("values")) if not isinstance(v, (dict, list)))
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
                    found.extend(text for text in as_list(inner.get("like")) if isinstance(text, str))
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
    for rescore in as_list(search.get("rescore")):
        if isinstance(rescore, dict) and isinstance(rescore.get("query"), dict):
            found += search_terms(rescore["query"].get("rescore_query"))
    return found + aggregation_terms(search.get("aggs")) + aggregation_terms(search.get("aggregations"))


def aggregation_terms(aggs: Any) -> list[str]:
    """Filters of filter(s) aggregations and backgrounds, and the values a terms aggregation includes or excludes
    (Kibana's value suggestions send what the user typed as `include`)."""
    found: list[str] = []
    for definition in agg_definitions(aggs):
        for kind, settings in definition.items():
            if kind in ("filter", "aggs", "aggregations"):
                continue
            if isinstance(settings, dict):
                field = settings.get("field", kind)
                found += [f"{field}:{v}" for key in ("include", "exclude") for v in as_list(settings.get(key))
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
