from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from guards.chain import GuardChain
from pipeline.app import App
from pipeline.cli import app_options, build_app, cli, emit, progress, shown
from pipeline.cli.crawl import crawl_under_tasking
from pipeline.cli.search import hit_dict
from pipeline.cli.tasking import read_tasking
from pipeline.datadir import DataDir
from pipeline.errors import FcmonError
from pipeline.index import SearchQuery
from pipeline.models import utcnow
from pipeline.search import audited_search
from pipeline.taskings import approve_tasking, request_tasking
from pipeline.worker import Worker

DEFAULT_DATA_DIR = "fcmon-demo"
DEMO_USERS = {"alice": "analyst", "sam": "supervisor", "dana": "detective", "ada": "admin"}
DEMO_TASKING_FILE = "taskings/demo-criminal-predicate.json"
DEMO_QUERY = "catalytic converters"
STEPS = 6


def step(n: int, text: str) -> None:
    progress(f"demo: [{n}/{STEPS}] {text}")


def prepare(app: App) -> str:
    """Users and an approved sample tasking; idempotent, so a second run reuses them."""
    DataDir(app.settings.data_dir).create()  # type: ignore[arg-type]
    existing = {u.name for u in app.state.users()}
    for name, role in DEMO_USERS.items():
        if name not in existing:
            app.audit.append("user.add", "(data-dir)", app.state.add_user(name, role).to_dict())
    template = read_tasking(Path(app.settings.config_dir) / DEMO_TASKING_FILE)
    if template.id not in {t.id for t in app.state.taskings()}:
        tasking = template.model_copy(update={"expires_at": utcnow() + timedelta(days=90)})
        request_tasking(app, app.state.user(tasking.requested_by), tasking)
        approve_tasking(app, app.state.user("sam"), tasking.id)
    status = app.state.tasking(template.id).status(utcnow())
    if status != "active":
        raise FcmonError(f"the demo tasking {template.id} in {app.settings.data_dir} is {status}",
                         "run the demo on a fresh --data-dir")
    return template.id


@cli.command()
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def demo(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """Run the whole pipeline on a bundled fixture site, on embedded backends (default data dir: ./fcmon-demo)."""
    from pipeline.demosite.server import DemoSite

    root = ctx.find_root().params
    base = build_app(data_dir or root.get("data_dir"), None)
    chosen = base.settings.data_dir or Path(DEFAULT_DATA_DIR)
    # The fixture site lives on 127.0.0.1: allow that host for this crawl only, and do not wait between requests.
    app = App(base.settings.model_copy(update={
        "data_dir": chosen,
        "crawl_allow_hosts": [*base.settings.crawl_allow_hosts, "127.0.0.1"],
        "crawl_download_delay": 0.0}))
    ctx.call_on_close(app.close)

    step(1, f"data directory {chosen}: users and an approved sample tasking")
    tasking_id = prepare(app)
    tasking = app.state.tasking(tasking_id)
    with DemoSite(port=app.settings.demo_site_port) as site:
        step(2, f"crawling the fixture site {site.url} as alice under {tasking_id}")
        app.acting_user_name = "alice"
        crawl = crawl_under_tasking(app, tasking_id, site.url + "/")
    step(3, "guard worker: deciding each collected item")
    chain = GuardChain.from_settings(app.settings)
    stats = Worker(app.settings, app.bus, app.index, app.state, chain).run(until_idle=True).to_dict()
    step(4, f"searching {DEMO_QUERY!r} as alice (the query is audited before it runs)")
    event, page = audited_search(app.state, app.audit, app.index, app.state.user("alice"),
                                 SearchQuery(text=DEMO_QUERY, tasking_id=tasking_id), interface="cli")
    step(5, "verifying the audit chain")
    verdict = app.audit.verify()
    step(6, "done")

    clauses = {g.rule: g.clause for g in chain.guards}
    summary = {
        "data_dir": str(chosen), "site": crawl["start_url"],
        "tasking": {"id": tasking.id, "kind": tasking.kind, "case_number": tasking.case_number,
                    "requested_by": tasking.requested_by, "approved_by": tasking.approved_by},
        "crawl": crawl,
        "collected": crawl["items"], "indexed": stats["indexed"], "quarantined": stats["quarantined"],
        "rejected": stats["rejected"],
        "rejected_by_reason": [{"rule": rule, "clause": clauses.get(rule, ""), "count": n}
                               for rule, n in stats["rejected_by_rule"].items()],
        "index_total_for_tasking": app.index.count(tasking_id),
        "search": {"query": DEMO_QUERY, "user": "alice", "query_id": event.id, "total": page.total,
                   "hits": [hit_dict(h) for h in page.hits]},
        "audit_verify": verdict.to_dict(),
    }
    emit(summary, as_json, lambda: print_summary(summary))
    if not verdict.ok:
        ctx.exit(1)


def print_summary(s: dict) -> None:
    t, c = s["tasking"], s["crawl"]
    refused = ", ".join(f"{k}={v}" for k, v in sorted(c.get("refused", {}).items())) or "none"
    click.echo(f"fcmon demo (data directory: {s['data_dir']})")
    click.echo(f"  tasking      {t['id']}: {t['kind']}, case {t['case_number']}, requested by {t['requested_by']}, approved by {t['approved_by']}")
    click.echo(f"  collected    {s['collected']} items from {s['site']} ({c['requests']} requests; robots.txt disallowed "
               f"{c['robots_disallowed']}; refused before sending: {refused})")
    click.echo(f"  indexed      {s['indexed']}  (the index holds {s['index_total_for_tasking']} records for {t['id']})")
    click.echo(f"  quarantined  {s['quarantined']}  (held for a supervisor's decision)")
    click.echo(f"  rejected     {s['rejected']}  (content dropped; id, reason, rule, clause and hash kept)")
    for r in s["rejected_by_reason"]:
        click.echo(f"      {r['rule']:<20} {r['count']:>3}   {r['clause']}")
    sr = s["search"]
    click.echo(f"  search       {sr['query']!r} as {sr['user']} under {t['id']}: {sr['total']} hit(s), audited as query {sr['query_id'][:12]}")
    for h in sr["hits"]:
        click.echo(f"      - {shown(h['title']) or '(untitled)'} [{shown(h['author']) or '?'}] {shown(h['url'])}")
    v = s["audit_verify"]
    click.echo(f"audit verify: ok ({v['entries']} entries)" if v["ok"] else f"audit verify: BROKEN at entry {v['first_broken_seq']}: {v['problem']}")
    if v["ok"]:
        click.echo(f"next: the same search in the web console: printf '%s\\n' \"$PASSPHRASE\" | fcmon --data-dir {s['data_dir']} "
                   f"user set-password alice; fcmon --data-dir {s['data_dir']} serve   # then http://127.0.0.1:8080/")
