"""Documentation that is generated from the code must be current; the README's contracts must hold."""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.docs import DOCS_DIR, PAGES

ROOT = Path(__file__).resolve().parent.parent


def test_generated_pages_are_current():
    for name, render in PAGES.items():
        assert (DOCS_DIR / name).read_text() == render(), f"docs/{name} is stale: run `python -m pipeline.docs`"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    test_command = re.search(r"Run the tests:\s*```(?:sh|bash)?\n(.+?)\n```", readme, re.S).group(1).strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()
    lint_command = re.search(r"Run the security lint and the dependency audit:\s*```(?:sh|bash)?\n(.+?)\n```", readme,
                             re.S).group(1).strip()
    commands = [line.split("#")[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    linted = next(i for i, c in enumerate(commands) if c == lint_command or c.startswith(lint_command + " "))
    assert linted < commands.index(test_command)  # CI lints and audits, then tests
