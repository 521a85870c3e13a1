"""The tasking filter: what the gateway adds to every read it forwards. The user's query becomes a filter beside the
tasking's (no document is scored: scores are computed over every tasking's documents), and significant terms are
compared with the tasking's documents. Pure: no I/O."""
from __future__ import annotations

import json
from typing import Any

from pipeline.gateway.body import Body, agg_definitions

BACKGROUND_AGGS = ("significant_terms", "significant_text")  # compared with every document unless given a background


def restrict_aggs(aggs: Any, tasking_id: str) -> None:
    """Significant terms and text compare the query's documents with a background set: make it the tasking's."""
    for definition in agg_definitions(aggs):
        for kind in BACKGROUND_AGGS:
            if isinstance(definition.get(kind), dict):
                settings = definition[kind]
                settings["background_filter"] = restrict_query(settings.get("background_filter"), tasking_id)
        restrict_aggs(definition.get("aggs"), tasking_id)
        restrict_aggs(definition.get("aggregations"), tasking_id)


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
