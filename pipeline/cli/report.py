from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app
from pipeline.periods import parse_period
from pipeline.errors import FcmonError
from pipeline.transparency import transparency_report
from pipeline.pdf import html_to_pdf
from pipeline.transparency_document import FORMATS, check_out, report_html, write

REPORT_READERS = ("supervisor", "admin")


@cli.group()
def report() -> None:
    """Reports a department can publish."""


@report.command("transparency")
@app_options
@click.option("--period", required=True, metavar="PERIOD", help="A year (2026), a quarter (2026-Q4) or a month (2026-11), in UTC.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--format", "fmt", type=click.Choice(["text", *FORMATS]), default="text", show_default=True,
              help="text (printed), or a document with charts and their numbers: html or pdf (needs --out).")
@click.option("--out", metavar="FILE", help="Where --format html or pdf writes (report.html, report.pdf).")
@click.pass_context
def transparency(ctx: click.Context, data_dir: str | None, acting_user: str | None, period: str, as_json: bool,
                 fmt: str, out: str | None) -> None:
    """Counts for a period: taskings by kind, items collected, indexed, quarantined and rejected by rule,
    queries, packets disseminated and records purged (supervisors and administrators); as text, JSON, or an HTML
    or PDF document with charts."""
    start, end = parse_period(period)
    if fmt in FORMATS:
        if as_json:
            raise FcmonError(f"--json and --format {fmt} ask for two outputs", "choose one")
        path = check_out(fmt, out)
    elif out:
        raise FcmonError("--out is for --format html or pdf", f"add --format {'pdf' if out.lower().endswith('.pdf') else 'html'}")
    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user(*REPORT_READERS)
    data = transparency_report(app, period, start, end)
    if fmt in FORMATS:
        document = report_html(app, data, start, end)
        content = html_to_pdf(document) if fmt == "pdf" else document.encode()
        app.audit.append("report.transparency", user.name, {"period": period, "format": fmt, "file": path.name})
        write(path, content)
        click.echo(f"wrote {path} (transparency report {period}, {fmt}, {len(content):,} bytes)")
        return
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
