"""The deobfuscated reading of a lowercased text: what a reader sees where the writer hid a word from a filter.

- Letters of another script inside a Latin word ("glоck" with a Cyrillic о) become the Latin letters they are
  confusable with, from Unicode's confusables data (the `confusable_homoglyphs` package); words wholly in one
  script (Cyrillic, Greek) are left alone.
- Leetspeak inside a word that has letters ("p1st0l", "k1ll", "c@talytic", "s4le"): digits and symbols become the
  letters they stand for. Words of digits, or with fewer than two letters, numbers with a unit ("3rd", "9mm", "m30"),
  handles and email addresses are left alone.
- Slang spellings of endings: a dropped g ("shootin", "sellin") and a plural z ("gunz", "pillz") are read as
  "-ing" and "-s".
- Letters spaced or dotted out ("g l o c k", "b.o.m.b", "p-i-s-t-o-l") are joined; trailing digits become a word
  of their own ("g l o c k 2 6" is "glock 26").
The text as written is always read too (guards/lexicon.py); this view only adds what it reveals.
"""
from __future__ import annotations

import functools
import re

import regex
from confusable_homoglyphs import categories, confusables

LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l"})
LEET_WORD = regex.compile(r"(?<![\w@$!|])[\w@$!|]*[@$!|0-9][\w@$!|]*(?![\w@$!|])")
SPACED = regex.compile(r"(?<![\w])(?:[a-z0-9][ .\-_*]){2,}[a-z0-9](?![\w])")
MIXED_WORD = regex.compile(r"\w*\p{Latin}\w*")
SLANG_ENDING = regex.compile(r"\b([a-z]{2,}[b-df-hj-np-tv-xz])(in|z)'?(?![\w'])")
LETTERS_THEN_DIGITS = regex.compile(r"^([a-z]{3,})([0-9]+)$")
# The same three patterns for ASCII text, where `re`'s ASCII classes are `regex`'s Unicode ones and `re` is faster
# (tests/test_guard_fast_paths.py holds them to the same result).
ASCII_LEET_WORD, ASCII_SLANG_ENDING, ASCII_SPACED = (re.compile(p.pattern, re.ASCII) for p in (LEET_WORD, SLANG_ENDING, SPACED))


def deobfuscate(lowered: str) -> str:
    if lowered.isascii():  # and so stays: every replacement is ASCII
        text = ASCII_LEET_WORD.sub(_unleet, lowered)
        return ASCII_SPACED.sub(_join, ASCII_SLANG_ENDING.sub(_ending, text))
    text = LEET_WORD.sub(_unleet, MIXED_WORD.sub(_latin, lowered))
    return SPACED.sub(_join, SLANG_ENDING.sub(_ending, text))


def _ending(m: regex.Match | re.Match) -> str:
    return m.group(1) + ("ing" if m.group(2) == "in" else "s")


def _latin(m: regex.Match) -> str:
    word = m.group(0)
    if word.isascii():
        return word
    return _latin_word(word)


@functools.lru_cache(maxsize=8192)
def _latin_word(word: str) -> str:
    scripts = {categories.alias(c) for c in word if c.isalpha()} - {"COMMON", "INHERITED"}
    if len(scripts) < 2:
        return word
    found = confusables.is_confusable(word, greedy=True, preferred_aliases=["latin"]) or []
    mapping = {}
    for entry in found:
        latin = next((h["c"] for h in entry["homoglyphs"] if h["c"].isascii() and h["c"].isalpha()), None)
        if latin:
            mapping[entry["character"]] = latin.lower()
    return "".join(mapping.get(c, c) for c in word)


NUMBER_WORD = regex.compile(r"^(?:\d+[a-z]{1,3}|[a-z]\d+[a-z]?)$")  # 3rd, 40s, 9mm, 8am; m30, g19, m80s


def _unleet(m: regex.Match | re.Match) -> str:
    word = m.group(0)
    if sum(c.isalpha() for c in word) < 2 or NUMBER_WORD.match(word):
        return word
    if word.startswith("@") or ("@" in word and m.string[m.end():m.end() + 1] == "."):  # a handle, an email address
        return word
    return word.translate(LEET)


def _join(m: regex.Match | re.Match) -> str:
    joined = regex.sub(r"[ .\-_*]", "", m.group(0))
    split = LETTERS_THEN_DIGITS.match(joined)
    return f"{split.group(1)} {split.group(2)}" if split else joined
