from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app
from pipeline.datadir import DataDir
from pipeline.errors import FcmonError


@cli.command()
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def init(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """Create a data directory (local bus, index, audit log, state)."""
    app = get_app(ctx, data_dir, acting_user)
    if app.settings.data_dir is None:
        raise FcmonError("no data directory given", "pass --data-dir DIR or set FCMON_DATA_DIR")
    created = DataDir(app.settings.data_dir).create()
    app.state, app.audit  # creates their files  # noqa: B018
    if created:
        app.audit.append("datadir.init", "(data-dir)", {"path": str(app.settings.data_dir)})
    emit({"data_dir": str(app.settings.data_dir), "created": created}, as_json,
         lambda: click.echo(f"{'created' if created else 'already initialised'}: {app.settings.data_dir}"))
