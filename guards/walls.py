"""The one login-wall detector for page text, used by the crawler (crawlers/extract.py) and by the public-provenance
stage, so that a wall the crawler missed, or an item whose flag says none, is still caught before storage.

A text is a wall when it is short (the message is the page: WALL_TEXT_MAX_CHARS) and holds a `login_wall` `wall`
term of any language's lexicon ("subscribe to keep reading", "zaloguj się", "로그인이 필요", "请登录", "تسجيل الدخول"), or
an `auth` term ("log in", "sign up", "iniciar sesión") within WALL_WINDOW characters of an `access` term, before or
after it ("to see", "para ver", "aby zobaczyć"), matched like every lexicon term (guards/lexicon.py).
"""
from __future__ import annotations

import functools

from guards.lexicon import Lexicons, Views, load
from pipeline.settings import Settings

WALL_TEXT_MAX_CHARS = 1000
WALL_WINDOW = 40


@functools.cache
def default_lexicons() -> Lexicons:
    """The lexicons of the settings in force (FCMON_CONFIG_DIR or the repository's), for callers without settings."""
    return load(Settings())


def wall_text_reason(text: str, lexicons: Lexicons | None = None) -> str | None:
    """`wall_text: <term>` when the text is a login or members-only wall, else None."""
    if len(text) > WALL_TEXT_MAX_CHARS or not text.strip():
        return None
    found = (lexicons or default_lexicons()).find("login_wall", Views.of(text))
    walls = sorted((m for m in found if m.category not in ("auth", "access")), key=lambda m: m.start)
    if walls:
        return f"wall_text: {walls[0].term}"
    auth = [m for m in found if m.category == "auth"]
    pairs = sorted((a.start, f"{a.term} {b.term}") for a in auth for b in found if b.category == "access"
                   and a.obfuscated == b.obfuscated and max(a.start, b.start) - min(a.end, b.end) <= WALL_WINDOW)
    return f"wall_text: {pairs[0][1]}" if pairs else None
