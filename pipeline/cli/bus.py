from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app
from pipeline.errors import FcmonError


@cli.group()
def bus() -> None:
    """Administer the message bus (bus=kafka)."""


@bus.command("create-topics")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print each topic and whether it was created as JSON.")
@click.pass_context
def create_topics_command(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """Create the fcm.* topics that are missing, with their partitions and retention (idempotent)."""
    app = get_app(ctx, data_dir, acting_user)  # needs no data directory
    if app.settings.bus != "kafka":
        raise FcmonError(f"the bus is {app.settings.bus!r}: its topics need no creating", "set FCMON_BUS=kafka to administer Kafka topics")
    from pipeline.bus.kafka import TOPICS, create_topics
    result = create_topics(app.settings)
    rows = [{"topic": t.name, "partitions": t.partitions, "retention_ms": t.retention_ms, "status": result[t.name]} for t in TOPICS]
    emit(rows, as_json, lambda: [click.echo(f"{r['topic']}: {r['status']} (partitions={r['partitions']} "
                                            f"retention_ms={r['retention_ms']})") for r in rows])
