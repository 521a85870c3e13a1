from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app
from pipeline.periods import parse_period
from pipeline.transparency import transparency_report

REPORT_READERS = ("supervisor", "admin")


@cli.group()
def report() -> None:
    """Reports a department can publish."""


@report.command("transparency")
@app_options
@click.option("--period", required=True, metavar="PERIOD", help="A year (2026), a quarter (2026-Q4) or a month (2026-11), in UTC.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def transparency(ctx: click.Context, data_dir: str | None, acting_user: str | None, period: str, as_json: bool) -> None:
    """Counts for a period: taskings by kind, items collected, indexed, quarantined and rejected by rule,
    queries, packets disseminated and records purged (supervisors and administrators)."""
    start, end = parse_period(period)
    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user(*REPORT_READERS)
    data = transparency_report(app, period, start, end)
    app.audit.append("report.transparency", user.name, {"period": period})

    def text() -> None:
        click.echo(f"Transparency report {period} ({data['from'][:10]} to {data['to'][:10]}, exclusive)")
        for key, value in data.items():
            if key in ("period", "from", "to", "notes"):
                continue
            if isinstance(value, dict):
                shown = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
            else:
                shown = value
            click.echo(f"  {key.replace('_', ' ')}: {shown}")
        for note in data["notes"]:
            click.echo(f"  note: {note}")
    emit(data, as_json, text)
