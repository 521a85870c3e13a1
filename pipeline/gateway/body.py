"""A read's request body, parsed once (so that the ledger's terms, every check and the tasking filter read the same
parse), and the JSON tree helpers the other modules share."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

JSON_MEDIA_TYPES = frozenset({"application/json", "application/x-ndjson", "application/vnd.elasticsearch+json",
                              "application/vnd.elasticsearch+x-ndjson"})
MAX_BODY_DEPTH = 100  # Elasticsearch refuses bool queries nested deeper than 30; deeper bodies are refused unread


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


def msearch_lines(body: bytes) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    if not all(isinstance(line, dict) for line in lines):
        raise ValueError("every line of an NDJSON body must be a JSON object")
    return lines


def objects_in(*trees: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in the trees, each before those inside it."""
    for tree in trees:
        if isinstance(tree, dict):
            yield tree
            tree = list(tree.values())
        if isinstance(tree, list):
            for inner in tree:
                yield from objects_in(inner)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def agg_definitions(aggs: Any) -> list[dict[str, Any]]:
    return [d for d in aggs.values() if isinstance(d, dict)] if isinstance(aggs, dict) else []
