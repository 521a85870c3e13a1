"""The Jinja2 environment of the console's templates (pipeline/web/templates): autoescaping on, and the two helpers
crawled text needs (only http(s) URLs become links; an index highlight keeps no markup but its <mark>s)."""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Iterator

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from pipeline.markup import is_http_url

MARK = re.compile(r"<mark>(.*?)</mark>", re.DOTALL)


def highlight_parts(fragment: str) -> Iterator[tuple[bool, str]]:
    """An index highlight (escaped text, matches in <mark>) as (marked, plain text) pieces, for the template to escape."""
    at = 0
    for found in MARK.finditer(fragment):
        if found.start() > at:
            yield False, html.unescape(fragment[at:found.start()])
        yield True, html.unescape(found.group(1))
        at = found.end()
    if at < len(fragment):
        yield False, html.unescape(fragment[at:])


SHARED_TEMPLATES = Path(__file__).parent.parent / "templates"  # what pages and documents share (the chart macro)
ENV = Environment(loader=FileSystemLoader([Path(__file__).parent / "templates", SHARED_TEMPLATES]), autoescape=select_autoescape(["html"]),
                  trim_blocks=False, lstrip_blocks=False)
ENV.tests["http_url"] = is_http_url
ENV.filters["highlight_parts"] = highlight_parts


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(ENV.get_template(template).render(**context), status_code=status)
