"""Properties (hypothesis): whatever else an item says, credentials sent or a non-GET/HEAD method means it is never indexed."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from guards.chain import GuardChain
from pipeline.models import RequestRecord
from pipeline.settings import Settings
from tests.factories_pipeline import make_context, make_item, make_tasking

CHAIN = GuardChain.from_settings(Settings())
CONTEXT = make_context(make_tasking())
CREDENTIAL = st.sampled_from(["Cookie", "Authorization", "Proxy-Authorization"]).flatmap(
    lambda name: st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(name, upper))))
HEADER_NAME = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z")
HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
TEXTS = st.sampled_from(["Six catalytic converters, $150 each.", "converter for sale, call me", "Rally then torch the converters",
                         "Garden day"])


@settings(max_examples=300, deadline=None)
@given(credential=CREDENTIAL, value=HEADER_VALUE, others=st.dictionaries(HEADER_NAME, HEADER_VALUE, max_size=5),
       method=st.sampled_from(["GET", "HEAD", "get", "head"]), text=TEXTS)
def test_credentials_are_never_indexed(credential, value, others, method, text):
    headers = {**others, credential: value}
    item = make_item(request=RequestRecord(method=method, headers=headers), text=text)
    decision = CHAIN.decide(item, CONTEXT)
    assert decision.decision == "rejected"
    assert decision.reasons[0].rule == "public_provenance"


@settings(max_examples=300, deadline=None)
@given(method=st.from_regex(r"\A[A-Za-z]{1,10}\Z").filter(lambda m: m.upper() not in ("GET", "HEAD")),
       others=st.dictionaries(HEADER_NAME, HEADER_VALUE, max_size=5), text=TEXTS)
def test_non_get_methods_are_never_indexed(method, others, text):
    item = make_item(request=RequestRecord(method=method, headers=others), text=text)
    decision = CHAIN.decide(item, CONTEXT)
    assert decision.decision == "rejected"
