from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.app import App
from pipeline.cli import app_options, cli, emit, get_app, progress
from pipeline.errors import FcmonError
from pipeline.models import Tasking, utcnow

CRAWL_ROLES = ("analyst", "supervisor")


def active_tasking(app: App, tasking_id: str) -> Tasking:
    tasking = app.state.tasking(tasking_id)
    status = tasking.status(utcnow())
    if status != "active":
        hint = f"a supervisor must run `fcmon tasking approve {tasking.id}`" if status == "pending" else "request a new tasking"
        raise FcmonError(f"tasking {tasking.id} is {status}: nothing is collected without an active tasking", hint)
    return tasking


def crawl_under_tasking(app: App, tasking_id: str, start_url: str) -> dict:
    """Collect one public site under an active tasking onto fcm.collected; the run is audited."""
    from crawlers.run import run_crawl  # Scrapy is heavy: import it only when crawling

    user = app.acting_user(*CRAWL_ROLES)
    tasking = active_tasking(app, tasking_id)
    app.audit.append("crawl.start", user.name, {"tasking_id": tasking.id, "start_url": start_url})
    summary = run_crawl(app.settings, app.data_dir, tasking, start_url, progress=True)
    app.audit.append("crawl.end", user.name, {"tasking_id": tasking.id, **summary})
    return summary


def sources_path(app: App, sources_file: str | None) -> Path:
    return Path(sources_file) if sources_file else (app.settings.crawl_sources_file or app.settings.config_dir / "sources.toml")


def crawl_sources(app: App, path: Path, source_id: str | None, tasking_id: str | None) -> list[dict]:
    """Crawl one named source, or every enabled one (source_id None), each under --tasking or its own tasking; audited."""
    from crawlers.run import Job, run_sources
    from crawlers.sources import load_sources

    user = app.acting_user(*CRAWL_ROLES)
    sources = load_sources(path)  # an invalid file is the command's one line of output
    progress(f"crawl: sources={path} source={source_id or '--all'}" + (f" tasking={tasking_id}" if tasking_id else ""))
    chosen = [sources.get(source_id)] if source_id else [s for s in sources.source if s.enabled]
    if not chosen:
        raise FcmonError(f"no enabled source in {path}", "enable one (enabled = true) or name a source")
    jobs = []
    for source in chosen:
        tid = tasking_id or source.tasking
        if not tid:
            raise FcmonError(f"source {source.id} names no tasking", f"pass --tasking ID or set tasking = \"ID\" for it in {path}")
        jobs.append(Job(source, active_tasking(app, tid)))
    for job in jobs:
        app.audit.append("crawl.start", user.name, {"tasking_id": job.tasking.id, "source": job.source.id, "sources_file": str(path)})
    summaries = run_sources(app.settings, app.data_dir, jobs, progress=True)
    for summary in summaries:
        app.audit.append("crawl.end", user.name, summary)
    return summaries


def totals(summaries: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(s[k] for s in summaries) for k in
                           ("requests", "responses", "items", "robots_disallowed", "login_walls", "parse_errors", "errors", "bus_errors")}
    refused: dict[str, int] = {}
    for s in summaries:
        for reason, n in s["refused"].items():
            refused[reason] = refused.get(reason, 0) + n
    return out | {"refused": dict(sorted(refused.items()))}


def summary_line(s: dict) -> str:
    refused = ", ".join(f"{k}={v}" for k, v in sorted(s.get("refused", {}).items())) or "none"
    what = f"{s['source']} ({s['kind']})" if "source" in s else s["start_url"]
    return (f"crawled {what} under {s['tasking_id']}: requests={s['requests']} items={s['items']} "
            f"robots_disallowed={s['robots_disallowed']} login_walls={s['login_walls']} refused: {refused} errors={s['errors']}")


def print_summary(s: dict) -> None:
    click.echo(summary_line(s))


def print_all(result: dict) -> None:
    for s in result["sources"]:
        print_summary(s)
    t = result["totals"]
    refused = ", ".join(f"{k}={v}" for k, v in t["refused"].items()) or "none"
    click.echo(f"total: {len(result['sources'])} sources, requests={t['requests']} items={t['items']} "
               f"login_walls={t['login_walls']} refused: {refused} errors={t['errors']} bus_errors={t['bus_errors']}")


@cli.command()
@app_options
@click.argument("source_id", metavar="[SOURCE]", required=False)
@click.option("--start-url", help="Crawl this public site instead of a source (same host and port only, bounded by depth and page limits).")
@click.option("--all", "crawl_all", is_flag=True, help="Crawl every enabled source of the sources file, in one process.")
@click.option("--tasking", "tasking_id", help="The approved tasking this collection serves (required with --start-url; "
                                              "with SOURCE or --all it overrides each source's own `tasking`).")
@click.option("--sources", "sources_file", type=click.Path(dir_okay=False),
              help="The sources file (default: FCMON_CRAWL_SOURCES_FILE, else config/sources.toml).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def crawl(ctx: click.Context, data_dir: str | None, acting_user: str | None, source_id: str | None, start_url: str | None,
          crawl_all: bool, tasking_id: str | None, sources_file: str | None, as_json: bool) -> None:
    """Collect public content onto fcm.collected (GET/HEAD only, robots.txt obeyed, no cookies or logins).

    `fcmon crawl SOURCE` crawls one source of the sources file, `fcmon crawl --all` every enabled one,
    `fcmon crawl --start-url URL --tasking ID` one site without a sources file.
    """
    if sum(map(bool, (source_id, start_url, crawl_all))) != 1:
        raise FcmonError("name exactly one of SOURCE, --start-url URL or --all", "see `fcmon crawl --help`")
    app = get_app(ctx, data_dir, acting_user)
    if start_url:
        if not tasking_id:
            raise FcmonError("--start-url needs --tasking ID", "name the approved tasking this collection serves")
        progress(f"crawl: start_url={start_url} tasking={tasking_id}")
        summaries = [crawl_under_tasking(app, tasking_id, start_url)]
    else:
        path = sources_path(app, sources_file)
        summaries = crawl_sources(app, path, source_id, tasking_id)
    if crawl_all:
        result: Any = {"sources": summaries, "totals": totals(summaries)}
        emit(result, as_json, lambda: print_all(result))
    else:
        emit(summaries[0], as_json, lambda: print_summary(summaries[0]))
    bus_errors = sum(s.get("bus_errors", 0) for s in summaries)
    if bus_errors:
        raise FcmonError(f"{bus_errors} item(s) could not be written to the bus", "check the bus and crawl again")
