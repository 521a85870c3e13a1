"""HTML from hostile text: everything crawled or typed is escaped, and only http(s) URLs become links."""
from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def link(url: str) -> str:
    """A link to the URL when it is http(s); a crawled `javascript:` or `data:` URL is shown as text, never linked."""
    if urlsplit(url).scheme.lower() in ("http", "https"):
        return f'<a href="{e(url)}" rel="noreferrer noopener">{e(url)}</a>'
    return e(url)
