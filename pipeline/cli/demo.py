from __future__ import annotations

import json
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
STACK_STEPS = 2  # with Elasticsearch behind it: the same search through the Kibana gateway, and the audit index


def step(n: int, text: str, total: int = STEPS) -> None:
    progress(f"demo: [{n}/{total}] {text}")


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
    """Run the whole pipeline on a bundled fixture site (default data dir: ./fcmon-demo).

    On the embedded backends by default; with the exports of `scripts/stack up` (FCMON_BUS=kafka,
    FCMON_INDEX=elasticsearch) on Apache Kafka and Elasticsearch, where the search also goes through the Kibana
    gateway and the audit log is indexed from fcm.audit."""
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

    on_stack = app.settings.index == "elasticsearch"
    total = STEPS + (STACK_STEPS if on_stack else 0)
    step(1, f"data directory {chosen}: users and an approved sample tasking (bus {app.settings.bus}, "
            f"index {app.settings.index})", total)
    tasking_id = prepare(app)
    tasking = app.state.tasking(tasking_id)
    with DemoSite(port=app.settings.demo_site_port) as site:
        step(2, f"crawling the fixture site {site.url} as alice under {tasking_id}", total)
        app.acting_user_name = "alice"
        crawl = crawl_under_tasking(app, tasking_id, site.url + "/")
    step(3, "guard worker: deciding each collected item", total)
    chain = GuardChain.from_settings(app.settings)
    stats = Worker(app.settings, app.bus, app.index, app.state, chain).run(until_idle=True).to_dict()
    step(4, f"searching {DEMO_QUERY!r} as alice (the query is audited before it runs)", total)
    event, page = audited_search(app.state, app.audit, app.index, app.state.user("alice"),
                                 SearchQuery(text=DEMO_QUERY, tasking_id=tasking_id), interface="cli")
    stack = on_the_stack(app, tasking_id, total) if on_stack else {}
    step(total - 1, "verifying the audit chain", total)
    verdict = app.audit.verify()
    step(total, "done", total)

    clauses = {g.rule: g.clause for g in chain.guards}
    summary = {
        "data_dir": str(chosen), "site": crawl["start_url"],
        "backends": {"bus": app.settings.bus, "index": app.settings.index,
                     "audit": "local + fcm.audit" if app.settings.bus == "kafka" else "local"},
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
        **stack,
        "audit_verify": verdict.to_dict(),
    }
    emit(summary, as_json, lambda: print_summary(summary))
    if not verdict.ok:
        ctx.exit(1)


def on_the_stack(app: App, tasking_id: str, total: int) -> dict:
    """The demo's search through the Kibana gateway (its decision path, in process, as alice), then fcm.audit
    indexed into the audit alias: what a deployment with Kibana does on Elasticsearch."""
    from pipeline.audit_index import AUDIT_ALIAS, AuditIndexer, AuditIndexWriter
    from pipeline.gateway import TASKING_HEADER, Gateway

    settings = app.settings
    password = settings.elasticsearch_password.get_secret_value() if settings.elasticsearch_password else None
    proxy = Gateway(app.state, app.audit, str(settings.elasticsearch_url),
                    records_alias=settings.elasticsearch_records_alias,
                    service_account=settings.gateway_service_account, kibana_account=settings.gateway_kibana_account,
                    upstream_auth=(settings.elasticsearch_username, password) if password else None)
    step(STEPS - 1, f"the same search through the Kibana gateway to {settings.elasticsearch_url} (audited first)", total)
    body = json.dumps({"query": {"query_string": {"query": DEMO_QUERY, "default_operator": "AND"}}, "size": 20}).encode()
    status, _, payload = proxy.handle(app.state.user("alice"), "POST", f"/{settings.elasticsearch_records_alias}/_search",
                                      {"content-type": "application/json", TASKING_HEADER.lower(): tasking_id}, body,
                                      "demo")
    answer = json.loads(payload)
    if status != 200:
        raise FcmonError(f"the gateway answered {status}: {answer.get('error', answer)}", "see the gateway's log lines")
    hits = answer["hits"]["hits"]
    step(STEPS, f"indexing the audit log from fcm.audit into {AUDIT_ALIAS}", total)
    writer = AuditIndexWriter.from_settings(settings)
    try:
        indexed = AuditIndexer(app.bus, writer).run(until_idle=True).to_dict()
    finally:
        writer.close()
    return {"gateway": {"user": "alice", "status": status, "total": answer["hits"]["total"]["value"],
                        "tasking_ids": sorted({h["_source"]["fcm"]["tasking_id"] for h in hits})},
            "audit_index": {"alias": AUDIT_ALIAS, **indexed}}


def print_summary(s: dict) -> None:
    t, c = s["tasking"], s["crawl"]
    refused = ", ".join(f"{k}={v}" for k, v in sorted(c.get("refused", {}).items())) or "none"
    b = s["backends"]
    click.echo(f"fcmon demo (data directory: {s['data_dir']}; bus {b['bus']}, index {b['index']}, audit {b['audit']})")
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
    if "gateway" in s:
        g, a = s["gateway"], s["audit_index"]
        click.echo(f"  gateway      the same search as {g['user']} through the Kibana gateway: {g['total']} hit(s)")
        click.echo(f"  audit index  {a['indexed']} entries indexed into {a['alias']} ({a['already_indexed']} already there)")
    v = s["audit_verify"]
    click.echo(f"audit verify: ok ({v['entries']} entries)" if v["ok"] else f"audit verify: BROKEN at entry {v['first_broken_seq']}: {v['problem']}")
    if v["ok"]:
        click.echo(f"next: the same search in the web console: printf '%s\\n' \"$PASSPHRASE\" | fcmon --data-dir {s['data_dir']} "
                   f"user set-password alice; fcmon --data-dir {s['data_dir']} serve   # then http://127.0.0.1:8080/")
