from __future__ import annotations

from typing import Any

import click

from pipeline.cli import app_options, cli, emit, get_app, progress
from pipeline.cli.crawl import CRAWL_ROLES, sources_path
from pipeline.errors import FcmonError

STATUS_READERS = ("analyst", "detective", "supervisor", "admin")


@cli.group()
def monitor() -> None:
    """Collect continuously: every enabled source polled on its own interval, only while its tasking is active."""


@monitor.command("run")
@app_options
@click.option("--sources", "sources_file", type=click.Path(dir_okay=False),
              help="The sources file (default: FCMON_CRAWL_SOURCES_FILE, else config/sources.toml).")
@click.option("--once", is_flag=True, help="Poll every enabled source once, then exit (default: until SIGTERM).")
@click.option("--json", "as_json", is_flag=True, help="Print each source's status as JSON when done.")
@click.pass_context
def run(ctx: click.Context, data_dir: str | None, acting_user: str | None, sources_file: str | None, once: bool,
        as_json: bool) -> None:
    """Poll every enabled source of the sources file on its own `interval`, in one process, onto fcm.collected.

    Each source collects only while its tasking is approved and active, and each start and stop of collection is
    audited (monitor.start, monitor.stop). Polls are incremental (cursors in the data directory, conditional
    requests) and polite (one request budget per host, Retry-After honoured, failing sources back off). SIGTERM
    finishes the running polls cleanly and exits.
    """
    from crawlers.monitor import Monitor, check_jobs  # Scrapy is heavy: import it only when collecting
    from crawlers.sources import load_sources

    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user(*CRAWL_ROLES)
    path = sources_path(app, sources_file)
    chosen = [s for s in load_sources(path).source if s.enabled]
    if not chosen:
        raise FcmonError(f"no enabled source in {path}", "enable one (enabled = true)")
    jobs = []
    for source in chosen:
        if not source.tasking:
            raise FcmonError(f"source {source.id} names no tasking", f"set tasking = \"ID\" for it in {path}")
        jobs.append((source, source.tasking))
    check_jobs(app, jobs)
    progress(f"monitor: sources={path} count={len(jobs)} once={once}")
    statuses = Monitor(app, jobs, user.name, once=once, sources_file=str(path), progress=progress).run()
    emit(statuses, as_json, lambda: [click.echo(status_line(s)) for s in statuses])


def status_line(s: dict[str, Any]) -> str:
    fresh = s.get("freshness") or {}
    shown = (f" freshness p50={fresh['p50_s']}s p95={fresh['p95_s']}s (n={fresh['sample']})"
             if fresh.get("sample") else "")
    return (f"{s['source']} ({s['kind']}, {s['tasking_id']}): {s['state']}; last poll {s['last_poll'] or 'never'}, "
            f"last success {s['last_success'] or 'never'}, new items {s['new_items']} ({s['new_items_last']} last poll), "
            f"errors {s['errors']}" + (f" (last: {s['last_error']})" if s["last_error"] else "") + shown)


@monitor.command("status")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def status(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """Each monitored source: state, last poll and success, new items, errors, and freshness (seconds from a post's
    publication, or first sight, to searchable: p50 and p95 of its newest posts)."""
    from crawlers.cursors import source_statuses

    app = get_app(ctx, data_dir, acting_user)
    app.acting_user(*STATUS_READERS)
    rows = source_statuses(app.data_dir.monitor_db, app.index)
    emit(rows, as_json, lambda: [click.echo(status_line(s)) for s in rows] if rows else click.echo("no source monitored yet"))
