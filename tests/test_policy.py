"""The policy matrix holds: every enforced clause names tests that exist, and docs/compliance.md is current."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from guards.policy import MATRIX, markdown

ROOT = Path(__file__).resolve().parent.parent


def collected(files: set[str]) -> set[str]:
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *sorted(files)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return {line.strip() for line in result.stdout.splitlines() if "::" in line}


def test_every_enforced_clause_names_existing_tests():
    named = {t for c in MATRIX for t in c.tests}
    existing = collected({t.split("::")[0] for t in named})
    assert not [c.id for c in MATRIX if c.cls == "enforced" and not c.tests]
    assert sorted(named - existing) == []


def test_the_matrix_covers_every_source():
    ids = {c.id for c in MATRIX}
    assert {f"28CFR23.20({x})" for x in "abcdefghi"} <= ids
    assert {p for i in ids for p in ("D1", "D2", "D3") if i.startswith(p + ".")} == {"D1", "D2", "D3"}
    assert len(ids) == len(MATRIX)


def test_compliance_page_is_current():
    assert (ROOT / "docs" / "compliance.md").read_text() == markdown(), "run: fcmon compliance-report --format markdown > docs/compliance.md"
