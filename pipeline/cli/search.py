from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app, os_account, shown, shown_highlight
from pipeline.index import FILTER_FIELDS, SearchPage, SearchQuery
from pipeline.errors import FcmonError
from pipeline.search import audited_search, hit_dict, new_event, parse_filters, parse_time, refuse_query


def print_hits(page: SearchPage) -> None:
    click.echo(f"{page.total} hit(s)")
    for hit in page.hits:
        r = hit.record
        click.echo(f"- {shown(r.title) or '(untitled)'}  [{shown(r.author) or 'unknown author'}]  {shown(r.final_url)}")
        for fragment in hit.highlights[:1]:
            click.echo(f"    {shown_highlight(fragment)}")


@cli.command()
@app_options
@click.argument("query")
@click.option("--tasking", "tasking_id", required=True, help="The tasking this search serves (required: no tasking, no search).")
@click.option("--filter", "filters", multiple=True, metavar="NAME=VALUE", help=f"Exact filter; NAME in {', '.join(FILTER_FIELDS)}.")
@click.option("--from", "time_from", metavar="DATE", help="Only items published (or fetched) at or after this time.")
@click.option("--to", "time_to", metavar="DATE", help="Only items published (or fetched) before this time.")
@click.option("--sort", type=click.Choice(["relevance", "time"]), default="relevance", show_default=True)
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
@click.pass_context
def search(ctx: click.Context, data_dir: str | None, acting_user: str | None, query: str, tasking_id: str,
           filters: tuple[str, ...], time_from: str | None, time_to: str | None, sort: str, limit: int, offset: int,
           as_json: bool) -> None:
    """Search stored records under a tasking. The query is written to the audit log before it runs.

    QUERY: words (ANDed), "phrases", OR, NOT, parentheses, and field:value for title, text, author."""
    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user()  # any user: a search refused for the role is logged as refused, as any refused search
    try:
        request = SearchQuery(text=query, tasking_id=tasking_id, filters=parse_filters(filters),
                              time_from=parse_time(time_from, "--from"), time_to=parse_time(time_to, "--to"),
                              sort=sort, offset=offset, limit=limit)  # type: ignore[arg-type]
    except FcmonError as refusal:  # one that cannot even be formed is in the ledger too
        asked = {"filters": list(filters), "from": time_from, "to": time_to}
        refuse_query(app.audit, new_event(user, tasking_id, query, asked, "cli", os_account()), refusal)
        raise
    event, page = audited_search(app.state, app.audit, app.index, user, request, interface="cli", client=os_account())
    emit({"query_id": event.id, "total": page.total, "hits": [hit_dict(h) for h in page.hits]}, as_json, lambda: print_hits(page))
