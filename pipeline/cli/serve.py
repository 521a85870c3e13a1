from __future__ import annotations

import logging

import click

from pipeline.cli import app_options, cli, get_app, progress
from pipeline.cli.gateway import parse_listen
from pipeline.errors import FcmonError
from pipeline.web import Console, serve as serve_console

log = logging.getLogger(__name__)


@cli.command()
@app_options
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT", help="Where the console and API listen.")
@click.pass_context
def serve(ctx: click.Context, data_dir: str | None, acting_user: str | None, listen: str) -> None:
    """Run the web console (sign in with your fcmon password) and its JSON API (GET /api/search, HTTP Basic).

    Every search names a tasking and is written to the audit log first, as interface web or api; put TLS in
    front of it (a reverse proxy) anywhere but 127.0.0.1. Runs until interrupted."""
    app = get_app(ctx, data_dir, acting_user)
    host, port = parse_listen(listen)
    try:
        server = serve_console(Console(app), host, port)
    except OSError as exc:
        raise FcmonError(f"cannot listen on {host}:{port} ({exc.strerror})", "choose another --listen address") from exc
    progress(f"console: http://{host}:{server.server_port}/ (API: /api/search)")
    log.info("event=web.start listen=%s:%d", host, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
