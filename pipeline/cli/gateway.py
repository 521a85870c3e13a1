from __future__ import annotations

import logging

import click

from pipeline.cli import app_options, cli, get_app, progress
from pipeline.errors import FcmonError
from pipeline.gateway import Gateway, serve

log = logging.getLogger(__name__)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise FcmonError(f"--listen {value!r} is not HOST:PORT", "e.g. --listen 127.0.0.1:9201")
    return host or "127.0.0.1", int(port)


@cli.command()
@app_options
@click.option("--listen", default="127.0.0.1:9201", show_default=True, metavar="HOST:PORT", help="Where Kibana connects (its elasticsearch.hosts).")
@click.option("--upstream", metavar="URL", help="Elasticsearch (default: FCMON_ELASTICSEARCH_URL).")
@click.pass_context
def gateway(ctx: click.Context, data_dir: str | None, acting_user: str | None, listen: str, upstream: str | None) -> None:
    """Run the audited Elasticsearch proxy Kibana uses: every data read is logged before it is forwarded.

    Users authenticate with their fcmon password (`fcmon user set-password`); Kibana sends the tasking
    in the X-Fcmon-Tasking header. Runs until interrupted."""
    app = get_app(ctx, data_dir, acting_user)
    settings = app.settings
    upstream = upstream or settings.elasticsearch_url
    if not upstream:
        raise FcmonError("no Elasticsearch to forward to", "pass --upstream URL or set FCMON_ELASTICSEARCH_URL")
    host, port = parse_listen(listen)
    password = settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else None
    proxy = Gateway(app.state, app.audit, upstream, records_alias=settings.elasticsearch_records_alias,
                    service_account=settings.gateway_service_account, kibana_account=settings.gateway_kibana_account,
                    upstream_auth=(settings.elasticsearch_username, password) if password else None)
    try:
        server = serve(proxy, host, port)
    except OSError as exc:
        raise FcmonError(f"cannot listen on {host}:{port} ({exc.strerror})", "choose another --listen address") from exc
    progress(f"gateway: listening on http://{host}:{server.server_port}, forwarding to {upstream}")
    log.info("event=gateway.start listen=%s:%d upstream=%s", host, server.server_port, upstream)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
