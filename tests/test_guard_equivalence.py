"""The lexicons' one-pass matching and the ASCII deobfuscation give exactly what their straightforward definitions give
(hypothesis, on texts that mix the languages' terms, obfuscated). bench/guard_decisions.py compares whole decisions
of two versions of the chain on the corpus, the benchmark's items and random texts."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from guards import obfuscation
from guards.lexicon import FUZZY_LETTERS, Lexicons, Match, load
from guards.views import Views
from pipeline.settings import Settings
from tests.test_guard_fast_paths import scanned

LEXICONS = load(Settings())
SECTIONS = ("protected", "not_protected", "criminal_conduct", "threat", "harmless", "lawful", "login_wall")
TERMS = sorted({t.listed for language in LEXICONS.languages for terms in language.sections.values() for t in terms})
LEET = str.maketrans("aeiost", "4310$7")


def obfuscations(phrase: str) -> st.SearchStrategy[str]:
    return st.sampled_from([phrase, phrase.upper(), phrase.translate(LEET), " ".join(phrase), ".".join(phrase),
                            phrase.replace("o", "\u043e").replace("a", "\u0430"), phrase + "in", phrase + "z",
                            phrase + "s", phrase + "ed", phrase.replace(" ", "\u00ad")])


PHRASE = st.sampled_from(TERMS).flatmap(obfuscations) | st.sampled_from(
    ["the", "no", "to", "for", "a", "$150 each", "2 for $40", "in march", "glue gun", "oh shoot, ", "#freepalestine",
     "blacklivesmater", "tomorrow", "gonna", "로그인", "请登录", "تسجيل", "x", "12", "_", "@user", "buddy1@mail.example"])
TEXT = st.lists(PHRASE, max_size=24).flatmap(
    lambda phrases: st.lists(st.sampled_from([" ", " ", ", ", ". ", "\n", "-", "", "! "]), min_size=len(phrases),
                             max_size=len(phrases)).map(lambda glue: "".join(p + g for p, g in zip(phrases, glue))))


def positions_of(language, term, view) -> list[tuple[int, int]]:
    """Where the term stands, by its definition: every word position tried, each of its words compared by its keys
    (substring matching: every occurrence of the text)."""
    if language.method == "substring":
        return list(language.find(term, view))
    return scanned(language, term, view)


def defined_find(lexicons: Lexicons, section: str, views: Views, masked=()) -> list[Match]:
    """Lexicons.find as defined: per view, per language in order, each term in the lexicon's order where it stands,
    then the fuzzy words and the patterns, leaving out what overlaps a masked match of the same view."""
    found = []
    for view, obfuscated in views.each():
        blocked = [(m.start, m.end) for m in masked if m.obfuscated == obfuscated]
        free = lambda start, end: not any(start < e and s < end for s, e in blocked)
        for language in lexicons.languages:
            if not view.in_script(language):
                continue
            for term in language.sections.get(section, ()):
                found += [Match(section, term.category, term.listed, language.code, s, e, obfuscated)
                          for s, e in positions_of(language, term, view) if free(s, e)]
            for category, word, pattern in language.fuzzy.get(section, ()):
                for position, candidate in enumerate(view.words):
                    if abs(len(candidate) - len(word)) <= len(word) // FUZZY_LETTERS and pattern.fullmatch(candidate):
                        if free(*view.spans[position]):
                            found.append(Match(section, category, word, language.code, *view.spans[position], obfuscated))
            for category, pattern in language.patterns.get(section, ()):
                found += [Match(section, category, pattern.pattern, language.code, m.start(), m.end(), obfuscated)
                          for m in pattern.finditer(view.text) if free(m.start(), m.end())]
    return found


@settings(max_examples=200, deadline=None)
@given(title=TEXT, text=TEXT)
@example(title="Rally", text="Selling two pistols after church Sunday, no FOID, inicia sesión para ver")
@example(title="", text="m0sques and the g l o c k 2 6 — kościele, misa, المسجد, 교회에서, 请登录查看")
@example(title="x", text="nagbebenta ng baril, rezamos en la mezquita, musulmanes, offering, log in to see")
def test_the_one_pass_finds_exactly_the_definition_in_its_order(title, text):
    views = Views.of(f"{title}\n{text}")
    harmless = LEXICONS.find("harmless", views)
    for section in SECTIONS:
        assert LEXICONS.find(section, views) == defined_find(LEXICONS, section, views), section
    for section, masked in (("criminal_conduct", harmless), ("threat", harmless), ("protected", LEXICONS.find("not_protected", views))):
        assert LEXICONS.find(section, views, masked) == defined_find(LEXICONS, section, views, masked), section


@settings(max_examples=200, deadline=None)
@given(text=TEXT, keyword=st.sampled_from(["converter", "converters", "bomb", "kill", "disparar", "strzelać", "patayin",
                                            "pistolet", "glock 19", "for sale", "#converter", "폭탄", "炸弹", "قنبلة"]))
def test_keywords_are_found_where_a_scan_of_every_position_finds_them(text, keyword):
    views = Views.of(text)
    compiled = LEXICONS.keyword_terms(keyword)
    expected = [(language.code, s, e, obfuscated) for view, obfuscated in views.each() for language, term in compiled
                for s, e in positions_of(language, term, view)]
    assert [(m.lang, m.start, m.end, m.obfuscated) for m in LEXICONS.keyword_matches(compiled, views)] == expected


ASCII = st.lists(st.sampled_from(list("abcegiklnopstz0134579@$!|_-.* \n'") + ["in ", "z ", "ing", "9mm", "m30", "@x.com"]),
                 max_size=120).map("".join)


@settings(max_examples=1000, deadline=None)
@given(text=ASCII | TEXT.filter(str.isascii).map(str.lower))
@example(text="g l o c k 2 6 p1st0l k1ll shootin gunz mail buddy1@mail.example @me 3rd 9mm")
def test_the_ascii_deobfuscation_is_the_unicode_one(text):
    leet = obfuscation.LEET_WORD.sub(obfuscation._unleet, text)
    slang = obfuscation.SLANG_ENDING.sub(obfuscation._ending, leet)
    assert obfuscation.deobfuscate(text) == obfuscation.SPACED.sub(obfuscation._join, slang)
