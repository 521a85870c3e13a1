from __future__ import annotations

import click

from pipeline.cli import app_options, cli, get_app, progress, run_http
from pipeline.web import Console, serve as serve_console


@cli.command()
@app_options
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT", help="Where the console and API listen.")
@click.pass_context
def serve(ctx: click.Context, data_dir: str | None, acting_user: str | None, listen: str) -> None:
    """Run the web console (sign in with your fcmon password) and its JSON API (GET /api/search, HTTP Basic).

    Every search names a tasking and is written to the audit log first, as interface web or api; put TLS in
    front of it (a reverse proxy) anywhere but 127.0.0.1. Runs until interrupted."""
    app = get_app(ctx, data_dir, acting_user)
    progress("console: bringing the query review up to date with the audit log")
    read = app.query_reviews.sync()  # a long log's first read is here, not on a supervisor's first page
    progress(f"console: query review read {read:,} new audit entries")
    console = Console(app)
    limits = {"max_connections": app.settings.web_max_connections, "backlog": app.settings.web_listen_backlog}
    run_http("console", lambda host, port: serve_console(console, host, port, **limits), listen, " (the web console at /, the API at /api/search)")
