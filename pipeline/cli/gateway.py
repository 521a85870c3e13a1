from __future__ import annotations

import click

from pipeline.cli import app_options, cli, get_app, run_http
from pipeline.errors import FcmonError
from pipeline.gateway import Gateway, serve


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
    password = settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else None
    proxy = Gateway(app.state, app.audit, upstream, records_alias=settings.elasticsearch_records_alias,
                    service_account=settings.gateway_service_account, kibana_account=settings.gateway_kibana_account,
                    upstream_auth=(settings.elasticsearch_username, password) if password else None,
                    max_body_bytes=settings.gateway_max_body_bytes)
    limits = {"max_connections": settings.gateway_max_connections, "backlog": settings.gateway_listen_backlog}
    run_http("gateway", lambda host, port: serve(proxy, host, port, **limits), listen, f", forwarding to {upstream}")
