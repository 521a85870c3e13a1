"""Links from hostile text: only http(s) URLs become links, in the console's pages and in packets alike (the
templates escape everything else)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def is_http_url(url: Any) -> bool:
    """A crawled `javascript:` or `data:` URL is shown as text, never linked."""
    return isinstance(url, str) and urlsplit(url).scheme.lower() in ("http", "https")
