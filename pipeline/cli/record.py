from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app, shown
from pipeline.models import ContentValidity, SourceReliability
from pipeline.records import review, show

RELIABILITY = list(SourceReliability.__args__)  # type: ignore[attr-defined]
VALIDITY = list(ContentValidity.__args__)  # type: ignore[attr-defined]


@cli.group()
def record() -> None:
    """Stored records: read one (audited like a search) or review it (analysts; 28 CFR Part 23 submission)."""


@record.command("show")
@app_options
@click.argument("record_id")
@click.option("--tasking", "tasking_id", required=True, help="The tasking the record is read under (audited).")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.pass_context
def show_(ctx: click.Context, data_dir: str | None, acting_user: str | None, record_id: str, tasking_id: str,
          as_json: bool) -> None:
    """Show one record with its labels and predicate. The read is written to the audit log first."""
    app = get_app(ctx, data_dir, acting_user)
    found = show(app, app.acting_user(), record_id, tasking_id)  # role checked and refusals audited there

    def text() -> None:
        labels = found.labels
        click.echo(f"{found.id}  tasking={found.tasking_id}  {found.source_kind}  {shown(found.final_url)}")
        click.echo(f"  review_status={labels.review_status}  reliability={labels.source_reliability}  "
                   f"validity={labels.content_validity}  criminal_intelligence={str(labels.criminal_intelligence).lower()}  "
                   f"purge_by={labels.purge_by}")
        if found.reviewed_by:
            click.echo(f"  reviewed by {found.reviewed_by} at {found.reviewed_at}: {shown(found.review_note)}")
        click.echo(f"  author: {shown(found.author) or 'unknown'}\n  title: {shown(found.title)}\n  text: {shown(found.text)}")
    emit(found.model_dump(mode="json"), as_json, text)


@record.command("review")
@app_options
@click.argument("record_id")
@click.option("--tasking", "tasking_id", required=True, help="The tasking the record was stored under.")
@click.option("--reliability", required=True, type=click.Choice(RELIABILITY), help="Source reliability (28CFR23.20(g)).")
@click.option("--validity", required=True, type=click.Choice(VALIDITY), help="Content validity (28CFR23.20(g)).")
@click.option("--note", required=True, help="Why (audited; kept on the record).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def review_(ctx: click.Context, data_dir: str | None, acting_user: str | None, record_id: str, tasking_id: str,
            reliability: str, validity: str, note: str, as_json: bool) -> None:
    """Review a record: evaluate and submit it (criminal intelligence only under an active criminal predicate)."""
    app = get_app(ctx, data_dir, acting_user)
    result = review(app, app.acting_user(), record_id, tasking_id, reliability, validity, note)  # type: ignore[arg-type]
    labels = result["labels"]
    emit(result, as_json, lambda: click.echo(
        f"reviewed {record_id} by {result['reviewed_by']}: {labels['source_reliability']}/{labels['content_validity']}, "
        f"criminal_intelligence={str(labels['criminal_intelligence']).lower()}"))
