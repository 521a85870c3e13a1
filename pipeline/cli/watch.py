from __future__ import annotations

import click

from pipeline.app import App
from pipeline.cli import app_options, cli, emit, get_app, os_account, shown
from pipeline.search import SEARCH_ROLES
from pipeline.watches import LIST_ROLES, Watch, Watches


def watches(app: App) -> Watches:
    return Watches(app.state, app.audit, app.settings)


def watch_line(w: Watch) -> str:
    end = f" ended {w.ended_at[:19]} by {w.ended_by}: {shown(w.end_reason)}" if w.ended_at else " active"
    hook = f" webhook={w.webhook}" if w.webhook else ""
    return f"{w.id}  {w.owner:<12} {w.tasking_id:<16} {shown(w.query)!r}{hook}{end}"


@cli.group()
def watch() -> None:
    """Standing queries: a saved search run on every newly indexed record of its tasking, alerting its owner."""


@watch.command("add")
@app_options
@click.argument("query")
@click.option("--tasking", "tasking_id", required=True, help="The active tasking the watch searches (as `fcmon search`).")
@click.option("--webhook", help="Also POST each alert's record ids to this internal URL (allowed by FCMON_WATCH_WEBHOOK_ALLOW).")
@click.option("--json", "as_json", is_flag=True, help="Print the watch as JSON.")
@click.pass_context
def add(ctx: click.Context, data_dir: str | None, acting_user: str | None, query: str, tasking_id: str,
        webhook: str | None, as_json: bool) -> None:
    """Save QUERY (the search language of `fcmon search`) as a standing query under --tasking.

    The same gate as a search (role, the tasking's team, an active tasking), audited before the watch exists; its
    terms are in the search-term ledger. It ends with its tasking.
    """
    app = get_app(ctx, data_dir, acting_user)
    made = watches(app).add(app.acting_user(), tasking_id, query, webhook, os_account())
    emit(made.to_dict(), as_json, lambda: click.echo(f"watch {made.id} on {made.tasking_id}: {shown(made.query)!r}"))


@watch.command("list")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """Your watches; a supervisor (or administrator) sees every watch."""
    app = get_app(ctx, data_dir, acting_user)
    listed = watches(app).listed(app.acting_user(*LIST_ROLES))
    emit([w.to_dict() for w in listed], as_json,
         lambda: [click.echo(watch_line(w)) for w in listed] if listed else click.echo("no watches"))


@watch.command("remove")
@app_options
@click.argument("watch_id")
@click.option("--reason", required=True, help="Why the watch ends (audited).")
@click.option("--json", "as_json", is_flag=True, help="Print the ended watch as JSON.")
@click.pass_context
def remove(ctx: click.Context, data_dir: str | None, acting_user: str | None, watch_id: str, reason: str, as_json: bool) -> None:
    """End a watch: its owner or a supervisor, with a reason (audited as watch.end)."""
    app = get_app(ctx, data_dir, acting_user)
    ended = watches(app).remove(app.acting_user(*SEARCH_ROLES), watch_id, reason)
    emit(ended.to_dict(), as_json, lambda: click.echo(watch_line(ended)))


@watch.command("alerts")
@app_options
@click.option("--limit", default=100, show_default=True, help="Newest alerts shown.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def alerts(ctx: click.Context, data_dir: str | None, acting_user: str | None, limit: int, as_json: bool) -> None:
    """Your alerts, newest first: the records each watch matched when they were indexed (each delivery audited)."""
    app = get_app(ctx, data_dir, acting_user)
    found = watches(app).alerts(app.acting_user(*SEARCH_ROLES), limit)

    def text() -> None:
        if not found:
            click.echo("no alerts")
        for a in found:
            click.echo(f"{a['at'][:19]} watch {a['watch_id']} ({a['tasking_id']}) {shown(a['query'])!r}: {len(a['hits'])} new")
            for hit in a["hits"]:
                click.echo(f"    {hit['id']}  {shown(hit['title'])}  {shown(hit['url'])}")

    emit(found, as_json, text)
