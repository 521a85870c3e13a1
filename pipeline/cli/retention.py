from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app, shown
from pipeline.errors import FcmonError
from pipeline.retention import due, review, run


@cli.group()
def retention() -> None:
    """Retention of stored records (28CFR23.20(h)): review before the purge date, purge on it."""


@retention.command("review")
@app_options
@click.argument("record_id", required=False)
@click.option("--tasking", "tasking_id", help="The record's tasking (with RECORD_ID), or only this tasking's records (list).")
@click.option("--keep", "decision", flag_value="keep", help="Validated for continuing compliance (the purge date stays).")
@click.option("--purge", "decision", flag_value="purge", help="Purge the record now (supervisors only).")
@click.option("--reason", help="Why (audited); required with --keep or --purge.")
@click.option("--within", "within_days", type=int, default=30, show_default=True,
              help="List records whose review or purge date is within this many days.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def review_(ctx: click.Context, data_dir: str | None, acting_user: str | None, record_id: str | None, tasking_id: str | None,
            decision: str | None, reason: str | None, within_days: int, as_json: bool) -> None:
    """Without RECORD_ID: the records coming due (supervisors; audited). With it: --keep or --purge it, --reason TEXT."""
    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user()
    if record_id is None:
        if decision:
            raise FcmonError(f"--{decision} needs a RECORD_ID", "name the record: fcmon retention review ID --tasking T ...")
        rows = due(app, user, within_days, tasking_id)

        def text() -> None:
            for r in rows:
                validated = f"  validated by {r['validated']['by']}" if r["validated"] else ""
                click.echo(f"{r['record_id']}  tasking={r['tasking_id']}  review_by={r['review_by']}  purge_by={r['purge_by']}  "
                           f"{r['review_status']}{validated}  {shown(r['title'])[:60]}")
            if not rows:
                click.echo(f"nothing due within {within_days} days")
        emit(rows, as_json, text)
        return
    if not decision or not tasking_id or not reason:
        raise FcmonError("reviewing a record needs --tasking, --keep or --purge, and --reason",
                         "e.g. fcmon retention review ID --tasking T-1 --keep --reason 'case RD-4 still open'")
    result = review(app, user, record_id, tasking_id, decision == "keep", reason)
    emit(result, as_json, lambda: click.echo(f"{record_id} {result['decision']} by {result['by']} (purge_by {result['purge_by']})"))


@retention.command("run")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def run_(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """Purge every record whose purge date has come (supervisor or admin; audited). `fcmon maintain` runs it daily."""
    app = get_app(ctx, data_dir, acting_user)
    result = run(app, app.acting_user())
    emit(result, as_json, lambda: click.echo(
        f"purged {result['purged']} record(s) due on or before {result['on']}"
        + "".join(f"\n  {t}: {n}" for t, n in result["by_tasking"].items())))
