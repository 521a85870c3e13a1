"""Hostile input to every parser of outside input (tests/fuzz_targets.py): the stored corpus and generated inputs
(hypothesis), each stored safely or refused with a reason, none crashing or taking longer than the bound.
FUZZ_EXAMPLES sets the examples per parser (CI: 60); bench/bench_fuzz.py runs 10,000 and counts."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz_targets import TARGETS, Outcome, run

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
CORPUS = [(name, key) for name, target in TARGETS.items() for key in target.corpus_inputs()]


def accounted(outcome: Outcome) -> None:
    assert outcome.stored > 0 or outcome.refused, "neither stored nor refused with a reason"
    assert all(isinstance(r, str) and r for r in outcome.refused)


@pytest.mark.parametrize("name,key", CORPUS, ids=[f"{n}:{k}" for n, k in CORPUS])
def test_corpus(name, key):
    target = TARGETS[name]
    accounted(run(target, target.corpus_inputs()[key]))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_generated(name):
    target = TARGETS[name]

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(target.inputs)
    def check(data: bytes) -> None:
        accounted(run(target, data))

    check()
