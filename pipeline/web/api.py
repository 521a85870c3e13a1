"""The JSON API's standing queries, alerts and monitor status, beside /api/search (views.py): HTTP Basic on every
request, refused when a browser says another origin's page sent it; bodies are JSON objects (Content-Type
application/json: a page of another site cannot send one without asking first). docs/openapi.yaml describes them."""
from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from pipeline.state import User
from pipeline.web.forms import Refusal, first
from pipeline.web.request import Req
from pipeline.web.security import from_elsewhere
from pipeline.web.watching import ALERTS_SHOWN

MAX_ALERTS = 1000


def caller(req: Req) -> User:
    if from_elsewhere(req.headers):  # a browser sends remembered Basic credentials on other pages' requests too
        raise Refusal(403, "the API does not answer requests from other sites' pages", "call it from a program, not a page")
    return req.console.basic_user(req.headers.get("authorization"), req.client)


def answer(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, default=str), status, media_type="application/json")


def json_body(req: Req) -> dict[str, Any]:
    kind = req.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise Refusal(415, f"the body is {kind or 'of no declared type'}, not JSON", "send a JSON object with Content-Type: application/json")
    try:
        body = json.loads(req.body or b"null")
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise Refusal(400, f"the body is not JSON: {exc}", "send a JSON object") from None
    if not isinstance(body, dict):
        raise Refusal(400, "the body is not a JSON object", 'send an object, e.g. {"reason": "..."}')
    return body


def text(body: dict[str, Any], name: str, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise Refusal(400, f"{name} must be a string" if name in body else f"{name} is missing", f"give {name} as a JSON string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") is no text: it cannot be audited as sent
        raise Refusal(400, f"{name} is not Unicode text (a lone surrogate)", "send it as UTF-8 text") from None
    return value


def watches(req: Req) -> Response:
    user = caller(req)
    return answer({"watches": [w.to_dict() for w in req.console.watch_desk.listed(user)]})


def add_watch(req: Req) -> Response:
    user = caller(req)
    body = json_body(req)
    made = req.console.watch_desk.add(user, text(body, "tasking"), text(body, "query"), text(body, "webhook", False),
                                      "api", req.client)
    return answer(made.to_dict(), 201)


def end_watch(req: Req) -> Response:
    user = caller(req)
    ended = req.console.watch_desk.remove(user, req.path_params["watch_id"], text(json_body(req), "reason"))
    return answer(ended.to_dict())


def alerts(req: Req) -> Response:
    user = caller(req)
    limit = first(req.params, "limit", str(ALERTS_SHOWN)).strip()
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_ALERTS):
        raise Refusal(400, f"limit {limit!r} is not a number from 1 to {MAX_ALERTS}", f"give the newest alerts wanted, e.g. {ALERTS_SHOWN}")
    desk = req.console.watch_desk
    found = desk.alerts(user, int(limit))
    return answer({"unread": desk.unread_count(user) or 0, "alerts": found})


def mark_read(req: Req) -> Response:
    user = caller(req)
    ids = json_body(req).get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise Refusal(400, "ids must be a list of alert ids", 'send {"ids": ["..."]}, the ids from GET /api/alerts')
    return answer({"marked": req.console.watch_desk.mark_read(user, ids)})


def monitor_status(req: Req) -> Response:
    user = caller(req)
    return answer({"sources": req.console.watch_desk.sources(user)})
