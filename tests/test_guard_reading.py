"""How the guards read text: the deobfuscated view, the lexicons' matching per language, the tasking rules' refusal of
protest and cause keywords whatever the spelling, and the one login-wall detector shared with the crawler."""
from __future__ import annotations

import pytest

from crawlers.extract import extract_page
from guards.lexicon import Views, load
from guards.obfuscation import deobfuscate
from guards.tasking_rules import denied_terms, load_tasking_lexicon
from guards.walls import wall_text_reason
from pipeline.settings import Settings

LEXICONS = load(Settings())


@pytest.mark.parametrize("written, read", [
    ("glоck fоr sale", "glock for sale"),            # Cyrillic о inside Latin words
    ("p1st0l no f0id", "pistol no foid"),
    ("g l o c k 2 6", "glock 26"),
    ("b.o.m.b tomorrow", "bomb tomorrow"),
    ("we shootin tonight", "we shooting tonight"),
    ("gunz", "guns"),
])
def test_the_deobfuscated_view_reads_what_a_reader_sees(written, read):
    assert deobfuscate(written) == read


@pytest.mark.parametrize("text", ["m30s and 9mm, the 3rd of march", "москва и київ", "zażółć gęślą jaźń", "교회에서 만나요"])
def test_deobfuscation_leaves_numbers_and_words_of_one_script_alone(text):
    assert deobfuscate(text) == text


@pytest.mark.parametrize("text, signal", [
    ("Jummah at the masjid", "muslim:masjid"), ("Kol Nidre at the shul", "jewish:shul"),
    ("Langar after kirtan at the gurdwara", "sikh:gurdwara"), ("Vesak dharma talk", "buddhist:dharma talk"),
    ("Aarti at the mandir", "hindu:mandir"), ("Misa en la parroquia", "cristiano:parroquia@es"),
    ("Msza w kościele", "chrzescijanski:kościele@pl"), ("교회에서 예배", "christian:교회@ko"),
    ("Nobena sa simbahan", "simbahan:simbahan@tl"), ("周日在教堂礼拜", "christian:教堂@zh"), ("صلاة الجمعة في المسجد", "muslim:مسجد@ar"),
    ("#BlakLivesMatter", "hashtag:blacklivesmatter"), ("protesters marching", "protest:protest"),
])
def test_every_faith_and_language_has_its_protected_terms(text, signal):
    views = Views.of(text)
    assert signal in {m.signal for m in LEXICONS.find("protected", views, LEXICONS.find("not_protected", views))}


@pytest.mark.parametrize("text", ["Pitchfork at Union Park", "They could strike a deal", "Sold it in March", "a mass shooting downtown"])
def test_place_names_and_idioms_are_not_protected_activity(text):
    views = Views.of(text)
    assert not LEXICONS.find("protected", views, LEXICONS.find("not_protected", views))


@pytest.mark.parametrize("keyword", ["#BlakLivesMatter", "pr0test", "#chicagoprotest", "#MarchForOurLifes", "huelgas", "mezquita",
                                     "집회", "罢工", "#NoKings", "Protestors", "#JusticeForSonya"])
def test_a_protest_or_cause_keyword_is_refused_whatever_the_spelling(keyword):
    assert denied_terms([keyword], load_tasking_lexicon(Settings())) == [keyword]


@pytest.mark.parametrize("keyword", ["converter", "pistol", "fireworks", "fentanyl", "protect", "attack", "street takeover"])
def test_keywords_of_crimes_and_events_are_not_refused(keyword):
    assert denied_terms([keyword], load_tasking_lexicon(Settings())) == []


@pytest.mark.parametrize("text", ["Log in to continue.", "Inicia sesión para ver esta publicación.", "Zaloguj się, aby zobaczyć.",
                                  "로그인이 필요합니다.", "请登录后查看。", "يجب تسجيل الدخول لعرض هذا المنشور.",
                                  "This content isn't available. You must log in to see this post."])
def test_the_crawler_and_the_guards_share_one_wall_detector(text):
    html = f"<html><body><p>{text}</p></body></html>"
    reason = wall_text_reason(text)
    assert reason and reason.startswith("wall_text: ")
    assert extract_page(html, "http://h/p").login_wall_reason == reason


def test_a_long_page_that_mentions_members_only_is_no_wall():
    text = "Members only parking behind the hall. " + "The festival runs all weekend with food and music. " * 30
    assert wall_text_reason(text) is None
