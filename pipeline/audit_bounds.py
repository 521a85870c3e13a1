"""How big an audit entry can be: every string in it at most MAX_AUDIT_STRING characters.

The log is append-only and nothing that needs it runs without it, so whatever a request can make it hold must be
bounded, or a few large requests fill the disk and stop every search. A longer string is cut, and what was cut is
recorded in the entry's `cut` (by the string's place: its full length and SHA-256, so that a copy kept elsewhere can
still be matched to the entry).
"""
from __future__ import annotations

import hashlib
from typing import Any

MAX_AUDIT_STRING = 8192  # characters


def bounded(actor: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The actor and payload with every over-long string (names too) cut; `payload["cut"]` says what was cut."""
    cut: dict[str, dict[str, Any]] = {}
    actor = _text(actor, "(actor)", cut)
    kept = _bound(payload, "", cut)
    if cut:
        kept["cut"] = cut
    return actor, kept


def _text(value: str, place: str, cut: dict[str, dict[str, Any]]) -> str:
    if len(value) <= MAX_AUDIT_STRING:
        return value
    cut[place] = {"chars": len(value), "sha256": hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()}
    return value[:MAX_AUDIT_STRING]


def _bound(value: Any, place: str, cut: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, str):
        return _text(value, place or "(value)", cut)
    if isinstance(value, dict):
        kept = {}
        for name, inner in value.items():
            where = (f"{place}.{name}" if place else str(name))[:200]
            kept[_text(name, where + " (name)", cut) if isinstance(name, str) else name] = _bound(inner, where, cut)
        return kept
    if isinstance(value, (list, tuple)):
        return [_bound(inner, f"{place}[{i}]", cut) for i, inner in enumerate(value)]
    return value
