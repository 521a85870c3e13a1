from __future__ import annotations

import click

from pipeline.audit_index import AUDIT_ALIAS, GROUP, AuditIndexer, AuditIndexWriter
from pipeline.cli import app_options, emit, get_app, progress
from pipeline.cli.audit import audit


@audit.command("index-es")
@app_options
@click.option("--until-idle", is_flag=True, help="Index everything pending, then exit (default: run until stopped).")
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
@click.pass_context
def index_es(ctx: click.Context, data_dir: str | None, acting_user: str | None, until_idle: bool, as_json: bool) -> None:
    """Index fcm.audit into the Elasticsearch audit alias (supervisors only, via the gateway); commits after each bulk."""
    app = get_app(ctx, data_dir, acting_user)
    writer = AuditIndexWriter.from_settings(app.settings)
    ctx.call_on_close(writer.close)
    progress(f"audit index-es: group={GROUP} bus={app.settings.bus} alias={AUDIT_ALIAS}")
    indexer = AuditIndexer(app.bus, writer, progress=lambda s: progress(
        "audit index-es: consumed={consumed} indexed={indexed} already={already_indexed} "
        "dead_lettered={dead_lettered} lag={lag}".format(**s)))
    stats = indexer.run(until_idle=until_idle).to_dict()
    emit(stats, as_json, lambda: click.echo(
        "consumed {consumed}: indexed {indexed}, already indexed {already_indexed}, "
        "dead-lettered {dead_lettered}".format(**stats)))
