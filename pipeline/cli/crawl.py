from __future__ import annotations

import click

from pipeline.app import App
from pipeline.cli import app_options, cli, emit, get_app, progress
from pipeline.errors import FcmonError
from pipeline.models import utcnow

CRAWL_ROLES = ("analyst", "supervisor")


def crawl_under_tasking(app: App, tasking_id: str, start_url: str) -> dict:
    """Collect one public site under an active tasking onto fcm.collected; the run is audited."""
    from crawlers.run import run_crawl  # Scrapy is heavy: import it only when crawling

    user = app.acting_user(*CRAWL_ROLES)
    tasking = app.state.tasking(tasking_id)
    status = tasking.status(utcnow())
    if status != "active":
        hint = f"a supervisor must run `fcmon tasking approve {tasking.id}`" if status == "pending" else "request a new tasking"
        raise FcmonError(f"tasking {tasking.id} is {status}: nothing is collected without an active tasking", hint)
    app.audit.append("crawl.start", user.name, {"tasking_id": tasking.id, "start_url": start_url})
    summary = run_crawl(app.settings, app.data_dir, tasking, start_url, progress=True)
    app.audit.append("crawl.end", user.name, {"tasking_id": tasking.id, **summary})
    return summary


def print_summary(s: dict) -> None:
    refused = ", ".join(f"{k}={v}" for k, v in sorted(s.get("refused", {}).items())) or "none"
    click.echo(f"crawled {s['start_url']} under {s['tasking_id']}: requests={s['requests']} items={s['items']} "
               f"robots_disallowed={s['robots_disallowed']} refused: {refused} errors={s['errors']}")


@cli.command()
@app_options
@click.option("--start-url", required=True, help="Public site to crawl (same host only, bounded by depth and page limits).")
@click.option("--tasking", "tasking_id", required=True, help="The approved tasking this collection serves.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def crawl(ctx: click.Context, data_dir: str | None, acting_user: str | None, start_url: str, tasking_id: str, as_json: bool) -> None:
    """Collect public pages of one site onto fcm.collected (GET/HEAD only, robots.txt obeyed, no cookies or logins)."""
    app = get_app(ctx, data_dir, acting_user)
    progress(f"crawl: start_url={start_url} tasking={tasking_id}")
    summary = crawl_under_tasking(app, tasking_id, start_url)
    emit(summary, as_json, lambda: print_summary(summary))
    if summary.get("bus_errors"):
        raise FcmonError(f"{summary['bus_errors']} item(s) could not be written to the bus", "check the bus and crawl again")
