"""What a view is given: the request's fields read and bounded, and who sent it (checked by routes.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from pipeline.state import User
from pipeline.web.console import Console, Session
from pipeline.web.forms import Fields


@dataclass
class Req:
    console: Console
    method: str
    path: str
    client: str
    headers: Mapping[str, str]
    cookies: Mapping[str, str]
    params: Fields  # the query string's fields
    form: Fields  # a posted form's fields (urlencoded, at most MAX_FORM_BYTES; none for a JSON body)
    path_params: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""  # the body as sent (the API's JSON; at most MAX_FORM_BYTES)
    session: Session | None = None
    user: User | None = None  # always set for routes that need a session
