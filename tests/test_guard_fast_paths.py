"""The guards' fast paths give exactly what the slow definitions they stand for give (hypothesis)."""
from __future__ import annotations

from urllib.parse import urlsplit

import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from guards.chain import GuardChain
from guards.lexicon import Views, load
from guards.pii import OWN, PATTERNS, alnum, may_introduce_own, may_match, substitute, windows
from guards.scope import host_of, keyword_hits, keyword_pattern
from guards.text import WORD, ItemText, item_text, words_of
from pipeline.settings import Settings
from tests.factories_pipeline import make_context, make_item, make_tasking

# Mostly ASCII with the characters the fast paths must not get wrong: digits of other scripts, odd spaces, case pairs.
TRICKY = "0123456789 \t\n\x1c\x1f\x85\u00a0\u2003-._@+()[]:%/?#İıſKß١٢٣\U00011f50é"
TEXT = st.text(st.sampled_from(list("abcdeklmnrstuABCKS") + list(TRICKY)), max_size=80) | st.text(max_size=80)


@settings(max_examples=500, deadline=None)
@given(TEXT)
def test_words_are_the_regex_words(text):
    lowered = text.lower()
    assert words_of(lowered) == set(WORD.findall(lowered))


@settings(max_examples=500, deadline=None)
@given(scheme=st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", "", "https:/", " https://", "\thttps://"]),
       netloc=st.text(st.sampled_from(list("abcXY09.-_@:[]%é ") + ["\t", "\n", "\x7f"]), max_size=20),
       rest=st.sampled_from(["", "/", "/post/1", "?q=1", "#top", "/a?b#c"]))
@example(scheme="https://", netloc="user@Forum.Example:8443", rest="/")
@example(scheme="https://", netloc="[::1]", rest="/")
def test_host_of_is_urlsplit_hostname(scheme, netloc, rest):
    url = scheme + netloc + rest
    try:
        expected = (urlsplit(url).hostname or "").lower()
    except ValueError:
        expected = ""  # no host: host_of never raises (a hostile item must not stop the chain)
    assert host_of(url) == expected


@settings(max_examples=1000, deadline=None)
@given(kind=st.sampled_from(sorted(PATTERNS)),
       text=st.lists(st.sampled_from(["312", "555", "0101", "(312)", "+1", "1", "4200", "W", "Grand", "Ave", "st", "buddy",
                                      "@", "mail", ".", "example", "com", "-", " ", "\t", "\x0b", "\x0c", "\r", "\x1c", "\u2003", "١٢٣",
                                      "\U00011f50", "main", "Main"]),
                     max_size=14).map("".join) | TEXT)
@example(kind="phone", text="call 312-555-0101")
@example(kind="email", text="mail buddy1@mail.example now")
@example(kind="address", text="at 4200 W Grand Ave")
def test_pii_pretests_never_skip_a_match(kind, text):
    if not may_match(kind, text):
        assert PATTERNS[kind].search(text) is None


def scanned(language, term, view) -> list[tuple[int, int]]:
    """Language.find as defined: every word position tried, each of the term's words compared by its keys."""
    found = []
    for position in range(len(view.words)):
        last = position + len(term.words) - 1
        if term.words and last < len(view.words) and all(language.same(term, j, view.words[position + j])
                                                          for j in range(len(term.words))):
            found.append((view.spans[position][0], view.spans[last][1]))
    return found


LEXICONS = load(Settings())
PHRASES = ["protest", "Rally", "march", "in March", "mosques", "Masjid", "worshippers", "union station", "Union", "strike",
           "torch", "shoot up", "shooting up", "bring a gun", "bible study", "sit-in", "die-in", "pistolety", "kościele",
           "matarlos", "iglesia", "misa", "mis", "المسجد", "مسدسات", "교회에서", "권총을", "papatayin", "İ", "ſteal", "\x1c",
           ",", " ", "\n", "-", "p1st0l", "g l o c k"]


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(PHRASES), max_size=10).map(" ".join) | TEXT)
def test_the_word_index_finds_exactly_what_a_scan_of_every_position_finds(text):
    views = Views.of(text)
    for view, _ in views.each():
        for language in LEXICONS.languages:
            if language.method == "substring":
                continue
            for section in ("protected", "criminal_conduct", "harmless"):
                for term in language.sections.get(section, ()):
                    assert sorted(set(language.find(term, view))) == scanned(language, term, view), (language.code, term.listed)


@settings(max_examples=500, deadline=None)
@given(value=TEXT)
@example(value="K_Bob.Smith-1")
def test_alnum_keeps_exactly_the_letters_and_digits_of_the_lowercased_value(value):
    assert alnum(value) == "".join(c for c in value.lower() if c.isalnum())


def test_item_text_is_reused_for_one_item_and_renewed_for_its_masked_copy():
    context = make_context(make_tasking())
    item = make_item(text="Converters, mail buddy1@mail.example")
    first = item_text(item, context)
    assert item_text(item, context) is first
    assert first.keyword_hits(["converters"]) == keyword_hits(["converters"], item.title, item.text) == ["converters"]
    masked = item.model_copy(update={"text": "Converters, mail [email masked]"})
    assert item_text(masked, context).joined == f"{item.title}\nConverters, mail [email masked]"


def test_a_chain_run_leaves_every_item_decided_on_its_own_text():
    chain, context = GuardChain.from_settings(Settings()), make_context(make_tasking())
    protest = make_item(url="https://forum.example/post/2", title="Rally", text="Rally at city hall about the converters")
    plain = make_item(url="https://forum.example/post/3", text="Six catalytic converters, $150 each")
    assert [chain.decide(i, context).decision for i in (protest, plain, protest)] == ["rejected", "indexed", "rejected"]


@settings(max_examples=1000, deadline=None)
@given(text=st.lists(st.sampled_from(["converter", "Converters", "CONVERTER_", "#converter", "x", "_", "-", " ", "\n", "é",
                                      "ſ", "K", "converterſ", "1"]), max_size=10).map("".join) | TEXT,
       keyword=st.sampled_from(["converter", "converters", "#converter", "k", "s", "stolen", "é", "converter-x"]))
def test_keyword_hits_match_the_whole_word_pattern(text, keyword):
    expected = [keyword] if keyword.lower() in text.lower() and keyword_pattern(keyword).search(text) else []
    assert keyword_hits([keyword], text) == expected


SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\u2003", "-", ""])


@settings(max_examples=1000, deadline=None)
@given(kind=st.sampled_from(["address", "phone"]),
       parts=st.lists(st.tuples(st.sampled_from(["4200", "12", "9", "312", "555", "0101", "(312)", "$150", "١٢", "W", "Grand",
                                                 "main", "2nd", "Ave", "ave.", "St", "street", "Hwy", "x"]), SPACE), max_size=6))
@example(kind="address", parts=[("4200", "\x0b"), ("W", "\x0c"), ("Grand", " "), ("Ave", "")])
@example(kind="address", parts=[("12", "\t"), ("2nd", "\r"), ("street", "")])
def test_pii_pretests_never_skip_an_address_or_phone(kind, parts):
    text = "".join(word + space for word, space in parts)
    if not may_match(kind, text):
        assert PATTERNS[kind].search(text) is None


@settings(max_examples=3000, deadline=None)
@given(kind=st.sampled_from(["email", "phone", "address"]),
       text=st.lists(st.sampled_from(["312", "555", "0101", "(312)", "(", ")", "+1", "+", "1", "$150", "buddy", "x_y", "@", "@@",
                                      "mail", ".", "example", "com", "co_", "-", "+", " ", "  ", "\t", "\n", "\u2003", "١٢٣",
                                      "\U00011f50", "é", "_", "4200", "W", "Grand", "Ave", "$150"]), max_size=20).map("".join) | TEXT)
@example(kind="email", text="a@b.co_x @c.org")
@example(kind="email", text="x@y.com@z.org mail me@here.net")
@example(kind="phone", text="+1 (312) 555-0101 or 312.555.0101x")
@example(kind="phone", text="lot 12345, $150, call 312 555 0101 then 3125550102")
def test_pii_windows_hold_every_match(kind, text):
    found = [m.span() for pos, endpos in windows(kind, text) for m in PATTERNS[kind].finditer(text, pos, endpos)]
    assert found == [m.span() for m in PATTERNS[kind].finditer(text)]
    masked = substitute(PATTERNS[kind], lambda m: "[masked]", text, windows(kind, text))
    assert masked == PATTERNS[kind].sub("[masked]", text)


def test_only_ascii_m_e_y_match_them_ignoring_case():
    letters = {letter: regex.compile(f"(?i){letter}") for letter in "mey"}
    folding = {(letter, chr(cp)) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF
               for letter, pattern in letters.items() if pattern.fullmatch(chr(cp))}
    assert folding == {(letter, case) for letter in "mey" for case in (letter, letter.upper())}


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(["call", "Call", "me", "ME", "mE", "my", "MY", "at", "number", "shop", "text", "e-mail", " ",
                                 "\n", "\t", "x", "İ", "é"]), max_size=12).map(" ".join) | TEXT)
@example("Call ME at")
@example("my shop is at")
def test_the_own_pretest_never_skips_a_match(before):
    if not may_introduce_own(before):
        assert OWN.search(before) is None
