"""The response checks: what the gateway changes in, or answers instead of, Elasticsearch's answer. Documents of other
taskings answered as not found, index resolution narrowed to the records' names, the search contexts (async search,
scroll, point in time) each user opened, and the gateway's own answer to _authenticate."""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from pipeline.gateway.body import Body, as_list
from pipeline.gateway.policy import matches, segments
from pipeline.state import User

HANDLE_TTL_S = 24 * 3600  # longer than any keep_alive Kibana asks for
MAX_HANDLES = 100_000  # open search contexts remembered at most (the oldest are forgotten first)


def records_resolved(status: int, payload: bytes, alias: str) -> bytes:
    """An index resolution narrowed to the records alias and its indices. Anything but a resolution (a name not
    found, say) is answered as the empty one: whether another index exists is not told either."""
    parsed = json_or_none(payload) if status < 300 else None
    if not isinstance(parsed, dict):
        parsed = {}

    def named(kind: str, inner: str) -> list[dict[str, Any]]:
        kept = [dict(e) for e in parsed.get(kind) or [] if isinstance(e, dict) and matches(str(e.get("name")), alias)]
        for entry in kept:
            if isinstance(entry.get(inner), list):
                entry[inner] = [n for n in entry[inner] if matches(str(n), alias)]
        return kept
    return json.dumps({"indices": named("indices", "aliases"), "aliases": named("aliases", "indices"),
                       "data_streams": named("data_streams", "backing_indices")}).encode()


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
        found += as_list(body.value.get("scroll_id"))
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


def authenticate_answer(user: User) -> dict[str, Any]:
    """What Elasticsearch's _security/_authenticate says, for an fcmon user (Kibana shows and checks it)."""
    realm = {"name": "fcmon", "type": "fcmon-gateway"}
    return {"username": user.name, "roles": [f"fcmon_{user.role}"], "full_name": None, "email": None,
            "metadata": {"fcmon_role": user.role}, "enabled": True, "authentication_realm": realm, "lookup_realm": realm,
            "authentication_type": "realm"}


def json_or_none(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None
