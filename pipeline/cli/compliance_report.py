from __future__ import annotations

import click

from guards.policy import MATRIX, as_rows, markdown
from pipeline.cli import cli, emit


@cli.command("compliance-report")
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text", show_default=True,
              help="markdown: the page docs/compliance.md is generated from.")
def compliance_report(as_json: bool, fmt: str) -> None:
    """The policy matrix: each clause of D1, D2, D3 and 28 CFR 23.20, its class, mechanism and tests."""
    def text() -> None:
        if fmt == "markdown":
            click.echo(markdown(), nl=False)
            return
        for c in MATRIX:
            click.echo(f"{c.id:<16} {c.cls:<14} {c.text}\n{'':<16} via {c.mechanism}" +
                       (f"\n{'':<16} tests: {len(c.tests)} ({c.tests[0]}{', ...' if len(c.tests) > 1 else ''})" if c.tests else ""))
    emit(as_rows(), as_json, text)
