"""Whether a tasking's scope covers an item: its domains, accounts and keywords."""
from __future__ import annotations

import functools
from urllib.parse import urlsplit

import regex

from pipeline.models import CollectedItem, TaskingScope


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def host_in(host: str, domains: list[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def keyword_hits(keywords: list[str], *texts: str) -> list[str]:
    """Keywords (or #hashtags) found as whole words, case-insensitively."""
    haystack = "\n".join(texts)
    lowered = haystack.lower()
    return [k for k in keywords if k.lower() in lowered and keyword_pattern(k).search(haystack)]


@functools.lru_cache(maxsize=4096)
def keyword_pattern(keyword: str) -> regex.Pattern:
    return regex.compile(rf"(?<!\w){regex.escape(keyword)}(?!\w)", regex.IGNORECASE)


def uncovered(scope: TaskingScope, item: CollectedItem) -> str | None:
    """None when the scope covers the item, else what lies outside it."""
    host = host_of(item.final_url)
    if scope.domains and not host_in(host, scope.domains):
        return f"host {host} is outside the tasking's domains ({', '.join(scope.domains)})"
    if scope.accounts and (item.author or "").lower().lstrip("@") not in {a.lstrip("@") for a in scope.accounts}:
        return f"author {item.author or '(none)'} is not one of the tasking's accounts"
    if scope.keywords and not keyword_hits(scope.keywords, item.title, item.text):
        return "the item mentions none of the tasking's keywords"
    return None
